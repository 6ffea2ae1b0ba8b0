import { describe, expect, it } from 'vitest';
import {
  PIGGYBACK_UPDATES_MAX,
  PROBE_INTERVAL_MS,
  SUSPECT_CONFIRMATIONS_MIN,
  SUSPICION_MAX_RATIO,
  SUSPICION_MULT,
  UPDATES_QUEUE_MAX,
  UpdateQueue,
  suspicionTimeoutMs,
  type WireUpdate,
} from '../../src/p2p/swim.js';
import { seededRandom } from '../../src/p2p/transport/sim.js';
import { PROFILES } from '../../src/p2p/config.js';

const id = (n: number) => n.toString(16).padStart(16, '0');

describe('suspicionTimeoutMs (Lifeguard)', () => {
  it('is the shortest with enough confirmations, and grows with the group as log10 N', () => {
    const min = SUSPICION_MULT * PROBE_INTERVAL_MS;
    expect(suspicionTimeoutMs(5, SUSPECT_CONFIRMATIONS_MIN)).toBeCloseTo(min);
    expect(suspicionTimeoutMs(5, 10)).toBeCloseTo(min);
    expect(suspicionTimeoutMs(1000, SUSPECT_CONFIRMATIONS_MIN)).toBeCloseTo(3 * min);
    expect(suspicionTimeoutMs(50, SUSPECT_CONFIRMATIONS_MIN)).toBeCloseTo(min * Math.log10(50));
  });

  it('shrinks from the longest as confirmations come in', () => {
    const min = SUSPICION_MULT * PROBE_INTERVAL_MS;
    expect(suspicionTimeoutMs(5, 0)).toBe(SUSPICION_MAX_RATIO * min);
    const times = [0, 1, 2, 3].map((c) => suspicionTimeoutMs(5, c));
    for (let i = 1; i < times.length; i++) expect(times[i]).toBeLessThan(times[i - 1]!);
  });

  it("never goes under the floor membership gives (the local profile's suspicion stage)", () => {
    const t = PROFILES.local.membership;
    const floor = t.deadAfterMs - t.suspectAfterMs;
    expect(suspicionTimeoutMs(5, SUSPECT_CONFIRMATIONS_MIN, floor)).toBeCloseTo(floor);
    expect(suspicionTimeoutMs(5, 0, floor)).toBe(SUSPICION_MAX_RATIO * floor);
  });
});

describe('UpdateQueue', () => {
  it('sends each update up to its limit, least sent first, at most PIGGYBACK_UPDATES_MAX at once', () => {
    const q = new UpdateQueue();
    for (let i = 0; i < PIGGYBACK_UPDATES_MAX + 2; i++) q.add([1, id(i), 1]);
    expect(q.take(2)).toHaveLength(PIGGYBACK_UPDATES_MAX);
    // The two not sent yet go first.
    expect(
      q
        .take(2)!
        .slice(0, 2)
        .map((u) => u[1]),
    ).toEqual([id(PIGGYBACK_UPDATES_MAX), id(PIGGYBACK_UPDATES_MAX + 1)]);
    let sends = 0;
    for (let u = q.take(2); u; u = q.take(2)) sends += u.length;
    expect(q.length).toBe(0);
    // Each of the 10 updates went out exactly twice in all.
    expect(2 * PIGGYBACK_UPDATES_MAX + sends).toBe(2 * (PIGGYBACK_UPDATES_MAX + 2));
  });

  it('takes what a stable sort by times sent would, in queue order among equals (random adds and takes)', () => {
    const random = seededRandom(7);
    const q = new UpdateQueue();
    // The reference: the queue as a list in insertion order, sorted whole at every take.
    let model: Array<{ u: WireUpdate; sent: number }> = [];
    for (let step = 0; step < 5_000; step++) {
      if (random() < 0.7) {
        const u: WireUpdate = [1, id(Math.floor(random() * 200)), step];
        q.add(u);
        model = model.filter((e) => e.u[1] !== u[1]);
        model.push({ u, sent: 0 });
      } else {
        const limit = 1 + Math.floor(random() * 4);
        const want = [...model].sort((a, b) => a.sent - b.sent).slice(0, PIGGYBACK_UPDATES_MAX);
        for (const e of want) e.sent++;
        model = model.filter((e) => !want.includes(e) || e.sent < limit);
        expect(q.take(limit) ?? []).toEqual(want.map((e) => e.u));
      }
    }
  });

  it('keeps one entry per member, the newest', () => {
    const q = new UpdateQueue();
    q.add([1, id(1), 3]);
    q.add([0, id(1), 4, '10.0.0.1:7000']);
    expect(q.take(1)).toEqual([[0, id(1), 4, '10.0.0.1:7000']]);
    expect(q.length).toBe(0);
  });

  it(`holds at most ${UPDATES_QUEUE_MAX}, dropping the most sent first`, () => {
    const q = new UpdateQueue();
    q.add([1, id(0), 1]);
    q.take(100);
    for (let i = 1; i <= UPDATES_QUEUE_MAX; i++) q.add([1, id(i), 1]);
    expect(q.length).toBe(UPDATES_QUEUE_MAX);
    // id(0), the only one sent, made room.
    const left = new Set<string>();
    for (let u = q.take(1); u; u = q.take(1)) for (const x of u) left.add(x[1]);
    expect(left.has(id(0))).toBe(false);
    expect(left.size).toBe(UPDATES_QUEUE_MAX);
  });
});
