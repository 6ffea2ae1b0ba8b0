import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import { HEALTH_SCORE_MAX, Membership, binomialTail, scoreForLoss } from '../../src/p2p/membership.js';
import type { PeerEvent, ProtocolContext } from '../../src/p2p/protocol.js';

const T = PROFILES.lan.membership;
const TICK = PROFILES.lan.tickMs;
const SEEDS = Array.from({ length: 20 }, (_, i) => i + 1);
/**
 * Some checks below are of rare events: at 10 % loss the score still rises by chance in a few runs
 * in a hundred (5 peers for 5 minutes: 4 of seeds 1-100; a cut: 5 to 7 of 200). Which seeds those
 * are moves whenever a datagram is added to the simulation (its random stream shifts), so these
 * tests count such runs over every seed and bound the count, rather than leave chosen seeds out.
 */
const CHANCE_RUNS_MAX = 3;

async function cluster(seed: number, n: number, faults = {}) {
  const c = new SimCluster(seed, faults);
  for (let i = 0; i < n; i++) await c.add(`p${i}`);
  expect(c.rt.runUntilTrue(() => c.converged(), 2_000)).toBe(true);
  return c;
}

/** Every datagram towards `victim` is lost with probability `loss` (its own receive path). */
function impairInbound(c: SimCluster, victim: SimPeer, loss: number) {
  for (const p of c.peers) if (p !== victim) c.net.setLink(p.address, victim.address, { loss });
}

const deaths = (p: SimPeer) => p.events.filter((e) => e.kind === 'dead');
const scores = (p: SimPeer) => p.events.flatMap((e) => (e.kind === 'health' ? [e.score] : []));

describe('local health (Lifeguard) in simulation', () => {
  it.each(SEEDS)(
    'a peer losing 60 percent of its inbound datagrams for 3 min declares no false death, and recovers, seed %i',
    async (seed) => {
      const c = await cluster(seed, 5, { loss: 0.01, delayMaxMs: 2 });
      const victim = c.peers[0]!;
      impairInbound(c, victim, 0.6);
      const measured: number[] = [];
      for (let s = 0; s < 180; s++) {
        c.rt.runFor(1_000);
        measured.push(victim.node.membership.health.heartbeatLoss ?? 0);
      }
      expect(deaths(victim)).toEqual([]);
      // It knew why: its score rose, and it measured the loss (gaps show when a member is heard
      // again, so the 2-second window reads a little under the real 60 %).
      expect(Math.max(...scores(victim))).toBeGreaterThanOrEqual(3);
      expect(victim.node.membership.health.score).toBeGreaterThan(0);
      expect(measured.reduce((a, b) => a + b) / measured.length).toBeGreaterThan(0.5);
      // Its neighbours hear it fine: their detectors stay at normal speed.
      for (const p of c.peers.slice(1)) expect(scores(p)).toEqual([]);

      impairInbound(c, victim, 0);
      const recovered = () => victim.node.membership.health.score === 0;
      // The decayed loss counts fade within a few memories, then one step per the loss memory.
      expect(c.rt.runUntilTrue(recovered, 30_000)).toBe(true);
      expect(victim.events.at(-1)).toMatchObject({ kind: 'health', score: 0 });
      expect(c.converged()).toBe(true);
      expect(c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS)(
    'while one peer is impaired, a crash is detected in the normal bound by the others and within the max multiplier by it, seed %i',
    async (seed) => {
      const c = await cluster(seed, 5, { loss: 0.01, delayMaxMs: 2 });
      const [victim, , , dying] = c.peers as [SimPeer, SimPeer, SimPeer, SimPeer, SimPeer];
      impairInbound(c, victim, 0.6);
      c.rt.runFor(20_000);
      const crashedAt = c.rt.now();
      await c.crash(dying);
      const healthy = c.live().filter((p) => p !== victim);
      const seenDeadBy = (p: SimPeer) => p.node.membership.get(dying.node.id)?.state === 'dead';
      expect(c.rt.runUntilTrue(() => healthy.every(seenDeadBy), 5_000)).toBe(true);
      expect(c.rt.now() - crashedAt).toBeLessThanOrEqual(T.deadAfterMs + TICK + 5);
      expect(c.rt.runUntilTrue(() => seenDeadBy(victim), 20_000)).toBe(true);
      expect(c.rt.now() - crashedAt).toBeLessThanOrEqual((1 + HEALTH_SCORE_MAX) * T.deadAfterMs + TICK + 5);
      // The victim still declared nobody else dead.
      expect(deaths(victim).map((e) => e.member.id)).toEqual([dying.node.id]);
      expect(c.handlerErrors()).toEqual([]);
    },
  );

  it('at 10 percent loss everywhere the score stays 0 for 5 minutes (5 peers), but in a rare run', async () => {
    const rose: number[] = [];
    for (const seed of SEEDS) {
      const c = await cluster(seed, 5, { loss: 0.1, duplicate: 0.01, delayMinMs: 0.1, delayMaxMs: 3 });
      c.rt.runFor(5 * 60_000);
      if (c.peers.some((p) => scores(p).length > 0)) rose.push(seed);
    }
    expect(rose.length, `seeds where a score rose: ${rose.join(', ')}`).toBeLessThanOrEqual(CHANCE_RUNS_MAX);
  });

  it.each(SEEDS)(
    'one member losing 90 percent of its datagrams is its own problem, seed %i',
    async (seed) => {
      const c = await cluster(seed, 4, { loss: 0.01, delayMaxMs: 2 });
      const flaky = c.peers[3]!;
      for (const p of c.peers) if (p !== flaky) c.net.setLink(flaky.address, p.address, { loss: 0.9 });
      c.rt.runFor(60_000);
      for (const p of c.peers.slice(0, 3)) expect(scores(p)).toEqual([]);
    },
  );
});

describe('local health: the stalled tick', () => {
  function lone() {
    let now = 0;
    const events: PeerEvent[] = [];
    const ctx: ProtocolContext = {
      self: { id: '00000000000000aa', name: 'me', incarnation: 1 },
      now: () => now,
      wall: () => now,
      random: () => 0.5,
      lamport: () => 0,
      stamp: () => 0,
      broadcast: () => 0,
      send: () => 0,
      soon: (fn) => fn(),
      sendFrame: () => {},
      bodyBytesMax: () => 0,
      wakeAt: () => {},
      emit: (e) => events.push(e),
      refuse: () => {},
    };
    const m = new Membership(ctx, {
      timings: T,
      observer: false,
      membersMax: 16,
      raiseIncarnation: (n) => n,
      observerProbed: () => {},
    });
    const at = (t: number) => {
      now = t;
      m.tick(t);
    };
    return { m, events, at, setNow: (t: number) => (now = t) };
  }

  it('a peer cut off from the others under 10 percent loss sees them dead in the normal bound: a cut is not a flood (3 and 4 peers, every seed but a rare run)', async () => {
    const rose: string[] = [];
    for (const seed of SEEDS)
      for (const n of [3, 4]) {
        const c = await cluster(seed, n, { loss: 0.1, delayMaxMs: 2 });
        c.rt.runFor(3_000); // heartbeat gaps from the background loss fill the loss memory
        const [cut, ...rest] = c.peers;
        c.net.partition(
          [cut!.address],
          rest.map((p) => p.address),
        );
        c.rt.runFor(T.deadAfterMs + 2 * TICK);
        // With 1 or 2 members to go by over the 5 heartbeats of a silence, ordinary loss often
        // passes the ratio threshold; only a loss 10 % rarely explains raises a score
        // (docs/membership.md), and then that peer's timeouts are longer: such a run is counted.
        if (c.peers.some((p) => scores(p).length > 0)) {
          rose.push(`${seed}/${n}`);
          continue;
        }
        for (const q of rest)
          expect(cut!.node.membership.get(q.node.id)?.state, `${seed}/${n} ${q.name}`).toBe('dead');
        // The others, which still hear each other, see it dead in the normal bound too.
        for (const q of rest)
          expect(q.node.membership.get(cut!.node.id)?.state, `${seed}/${n} ${q.name}`).toBe('dead');
        c.heal();
        expect(
          c.rt.runUntilTrue(() => c.converged(), T.heartbeatIntervalMs * 5),
          `${seed}/${n}`,
        ).toBe(true);
      }
    expect(rose.length, `runs where a score rose: ${rose.join(', ')}`).toBeLessThanOrEqual(CHANCE_RUNS_MAX);
  });

  it('a tick late by N heartbeat intervals raises the score by N before the timeouts are checked', () => {
    const { m, events, at, setNow } = lone();
    at(0);
    setNow(10);
    m.observe(
      { v: 1, t: 'hb', i: '00000000000000bb', n: 'other', c: 1, s: 1, l: 1, b: { g: {}, h: 1 } },
      'x:1',
    );
    at(TICK);
    // Starved for 1.2 s past the next heartbeat's deadline: the member looks silent past
    // suspectAfterMs, through no fault of its own.
    at(T.heartbeatIntervalMs + 1_200);
    expect(events.filter((e) => e.kind === 'suspect')).toEqual([]);
    expect(m.health.score).toBe(Math.floor(1_200 / T.heartbeatIntervalMs));
    expect(events.at(-1)).toMatchObject({ kind: 'health', cause: 'stall', stalledMs: 1_200 });
    // On time again: one step down per the loss memory.
    for (let t = T.heartbeatIntervalMs + 1_200; t <= 20_000; t += TICK) at(t);
    expect(m.health.score).toBe(0);
    // The member stayed silent all along: declared dead once the score came down.
    expect(m.get('00000000000000bb')?.state).toBe('dead');
  });

  it('the chance of a loss at the designed rate is a binomial tail', () => {
    expect(binomialTail(3, 5, 0.1)).toBeCloseTo(0.00856, 8);
    expect(binomialTail(2, 5, 0.1)).toBeCloseTo(0.08146, 8);
    expect(binomialTail(6, 15, 0.1)).toBeCloseTo(0.00224967, 8);
    expect(binomialTail(13, 40, 0.1)).toBeCloseTo(8.8448e-5, 8);
    expect(binomialTail(0, 5, 0.1)).toBe(1);
    expect(binomialTail(6, 5, 0.1)).toBe(0);
    expect(binomialTail(400, 1000, 0.1)).toBeLessThan(1e-100);
  });

  it('the score for a measured loss keeps the designed margin and is bounded', () => {
    // The timeouts need ln(0.1) / ln(p) times as many heartbeats lost in a row: x4 at 55 %, x5 at 60 %.
    expect(scoreForLoss(0.1)).toBe(0);
    expect(scoreForLoss(0.55)).toBe(3);
    expect(scoreForLoss(0.6)).toBe(4);
    expect(scoreForLoss(0.75)).toBe(HEALTH_SCORE_MAX);
    expect(scoreForLoss(1)).toBe(HEALTH_SCORE_MAX);
  });
});
