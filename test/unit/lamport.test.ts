/**
 * The Lamport clock's bounds (lamport.ts): what it merges at once, what it refuses, and when a
 * far-ahead time is caught up with.
 */
import { describe, expect, it } from 'vitest';
import {
  LAMPORT_CATCH_UP_MAX,
  LAMPORT_CATCH_UP_MS,
  LAMPORT_CATCH_UP_SENDERS_MIN,
  LAMPORT_STEP_MAX,
  LamportClock,
} from '../../src/p2p/lamport.js';
import { COUNTER_MAX } from '../../src/p2p/bounds.js';

const A = '10.0.0.1:7000';

/** Offers `time(k)` from address A every `everyMs` from `start` for `n` claims; the first accepted one's index, or -1. */
function claims(clock: LamportClock, n: number, everyMs: number, time: (k: number) => number, start = 0) {
  for (let k = 0; k < n; k++) if (clock.receive(time(k), start + k * everyMs, A)) return k;
  return -1;
}

describe('Lamport clock bounds', () => {
  it('merges a time within the step and refuses one past it or past the counter bound', () => {
    const clock = new LamportClock(100);
    expect(clock.receive(100 + LAMPORT_STEP_MAX, 0, A)).toBe(true);
    expect(clock.time).toBe(101 + LAMPORT_STEP_MAX);
    expect(clock.receive(clock.time + LAMPORT_STEP_MAX + 1, 0, A)).toBe(false);
    expect(clock.receive(Number.MAX_SAFE_INTEGER, 0, A)).toBe(false);
    expect(clock.time).toBe(101 + LAMPORT_STEP_MAX);
    // A time behind ours is always fine.
    expect(clock.receive(5, 0, A)).toBe(true);
  });

  it('catches up at once when members at different addresses agree on a far-ahead time', () => {
    const far = 2 ** 40;
    const clock = new LamportClock();
    let accepted = -1;
    for (let k = 0; k < LAMPORT_CATCH_UP_SENDERS_MIN && accepted < 0; k++)
      if (clock.receive(far + k, 1, `10.0.0.${k + 2}:7000`)) accepted = k;
    expect(accepted).toBe(LAMPORT_CATCH_UP_SENDERS_MIN - 1);
    expect(clock.time).toBeGreaterThan(far);
    // Two addresses that disagree by more than a step do not.
    const split = new LamportClock();
    expect(split.receive(far, 1, '10.0.0.2:7000')).toBe(false);
    expect(split.receive(far + 2 * LAMPORT_STEP_MAX, 1, '10.0.0.3:7000')).toBe(false);
    expect(split.time).toBe(0);
  });

  it('catches up with a far-ahead time from one address once it has been claimed for the catch-up time', () => {
    const far = 2 ** 40;
    const clock = new LamportClock();
    // Heartbeats every 200 ms, the sender's clock counting on: the claim at 1000 ms completes it.
    expect(claims(clock, 10, 200, (k) => far + k)).toBe(LAMPORT_CATCH_UP_MS / 200);
    expect(clock.time).toBeGreaterThan(far);
    // A burst at one instant is one datagram's worth, however many copies.
    const burst = new LamportClock();
    expect(claims(burst, 50, 0, () => far)).toBe(-1);
    expect(burst.time).toBe(0);
  });

  it('starts the span over after a silence, and never catches up past LAMPORT_CATCH_UP_MAX', () => {
    const far = 2 ** 40;
    const clock = new LamportClock();
    expect(claims(clock, 2, LAMPORT_CATCH_UP_MS + 1, () => far)).toBe(-1);
    expect(claims(clock, 5, 200, () => far, 2 * LAMPORT_CATCH_UP_MS + 2)).toBe(-1);
    expect(clock.time).toBe(0);
    const capped = new LamportClock();
    expect(claims(capped, 20, 200, () => LAMPORT_CATCH_UP_MAX + 1)).toBe(-1);
    expect(claims(capped, 20, 200, () => COUNTER_MAX)).toBe(-1);
    expect(capped.time).toBe(0);
  });

  it('a forger claiming higher times in between cannot hold back or redirect a real catch-up', () => {
    const group = 2 ** 40;
    const forged = 2 ** 45;
    const clock = new LamportClock();
    let accepted = -1;
    for (let k = 0; k < 20 && accepted < 0; k++) {
      clock.receive(forged + k, k * 100, '10.0.0.66:7000'); // refused: a higher claim that disagrees
      if (clock.receive(group + k, k * 100 + 50, A)) accepted = k;
    }
    expect(accepted).toBeGreaterThan(0);
    expect(clock.time).toBeGreaterThan(group);
    expect(clock.time).toBeLessThan(group + LAMPORT_STEP_MAX);
  });

  it('two members that agree are caught up with at once, whatever a third address sends in between', () => {
    const group = 2 ** 40;
    const clock = new LamportClock();
    // The forger's claims are ever lower, each starting a new cluster, and fall between the
    // members' heartbeats; each address's claim still counts on its own.
    for (let k = 0; k < 10; k++)
      clock.receive(group - (k + 2) * 2 * LAMPORT_STEP_MAX, k * 10, '10.0.0.66:7000');
    expect(clock.receive(group, 100, A)).toBe(false);
    clock.receive(group - 20 * 2 * LAMPORT_STEP_MAX, 110, '10.0.0.66:7000');
    expect(clock.receive(group + 7, 120, '10.0.0.2:7000')).toBe(true);
    // The lower of the two agreeing times.
    expect(clock.time).toBe(group + 8);
    // A claim older than the catch-up time does not count as agreement.
    const late = new LamportClock();
    expect(late.receive(group, 0, A)).toBe(false);
    expect(late.receive(group, LAMPORT_CATCH_UP_MS + 1, '10.0.0.2:7000')).toBe(false);
    expect(late.time).toBe(0);
  });

  it('a lone member ahead is caught up with after the catch-up time, whatever another address sends in between', () => {
    const lone = 2 ** 40;
    const forger = '10.0.0.66:7000';
    // Ever lower times, each disagreeing with the last, every 20 ms; the member heartbeats every 200 ms.
    const clock = new LamportClock();
    let accepted = -1;
    for (let k = 0; k < 100 && accepted < 0; k++) {
      clock.receive(lone - (k + 2) * 2 * LAMPORT_STEP_MAX, k * 20, forger);
      if (k % 10 === 5 && clock.receive(lone + k, k * 20, A)) accepted = k * 20;
    }
    expect(accepted - 100).toBe(LAMPORT_CATCH_UP_MS);
    // The first of the member's claims in its run, then the one that completed it.
    expect(clock.time).toBe(lone + accepted / 20 + 1);
  });
});
