import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import { Election } from '../../src/p2p/election.js';
import {
  ClockSync,
  FORWARD_JUMP_MS_MAX,
  GROUP_STEP_MS_MAX,
  REQUESTERS_MAX,
  ROUND_REQUEST_RETRY_MS,
  STRANGER_POLLS_PER_S,
  berkeleyAverage,
  median,
  TAG_CLOCK,
} from '../../src/p2p/clock-sync.js';
import { parseFakeClock, withFakeClock, type FakeClock } from '../../src/p2p/runtime.js';
import { Codec, PROTOCOL_VERSION } from '../../src/p2p/wire.js';
import type { LinkFaults } from '../../src/p2p/transport/sim.js';
import { rogue } from '../support/rogue.js';

const P = PROFILES.lan;
const SEEDS = Array.from({ length: 40 }, (_, i) => i + 1);
/** Issue 5's target: one round brings the largest pairwise error under this. */
const PAIRWISE_ERROR_MS_MAX = 1;
const SKEW_MS = 1_000;
const DRIFT_PPM = 100;
/** Symmetric links: Cristian's rtt/2 is then exact, up to drift during the round trip. */
const SYMMETRIC: Partial<LinkFaults> = { delayMinMs: 0.3, delayMaxMs: 0.3 };

interface Setup {
  c: SimCluster;
  el: Map<SimPeer, Election>;
  clk: Map<SimPeer, ClockSync>;
  fake: Map<string, FakeClock>;
}

async function setup(
  seed: number,
  n: number,
  faults: Partial<LinkFaults> = SYMMETRIC,
  fakeFor: (i: number, rnd: () => number) => FakeClock = (_, rnd) => ({
    offsetMs: (rnd() * 2 - 1) * SKEW_MS,
    driftPpm: (rnd() * 2 - 1) * DRIFT_PPM,
  }),
): Promise<Setup> {
  const el = new Map<SimPeer, Election>();
  const clk = new Map<SimPeer, ClockSync>();
  const fake = new Map<string, FakeClock>();
  const c = new SimCluster(seed, faults, P, (node, peer) => {
    const e = node.install(
      (ctx, nd) => new Election(ctx, nd.membership, { timings: P.election, priority: 0 }),
    );
    el.set(peer, e);
    clk.set(
      peer,
      node.install((ctx, nd) => new ClockSync(ctx, nd.membership, { timings: P.clock, coordinator: e })),
    );
  });
  for (let i = 0; i < n; i++) {
    const f = fakeFor(i, c.rt.random);
    fake.set(`p${i}`, f);
    await c.add(`p${i}`, { runtime: withFakeClock(c.rt.forPeer(), f) });
  }
  return { c, el, clk, fake };
}

function coordinatorOf(s: Setup): SimPeer | undefined {
  return s.c.live().find((p) => s.el.get(p)!.isCoordinator());
}

/** Largest minus smallest group clock over the live peers, read at one virtual instant. */
function spread(s: Setup, read: (p: SimPeer) => number = (p) => s.clk.get(p)!.groupNow()): number {
  const g = s.c.live().map(read);
  return Math.max(...g) - Math.min(...g);
}

/** Reads every live peer's group clock every millisecond and records any step back. */
function watchMonotonic(s: Setup): { backwards: string[]; stop: () => void } {
  const last = new Map<SimPeer, number>();
  const backwards: string[] = [];
  const stop = s.c.rt.forPeer().every(1, () => {
    for (const p of s.c.live()) {
      const g = s.clk.get(p)!.groupNow();
      const before = last.get(p);
      if (before !== undefined && g < before) backwards.push(`${p.name} ${before} -> ${g}`);
      last.set(p, g);
    }
  });
  return { backwards, stop };
}

function roundsDone(s: Setup, leader: SimPeer): number {
  return leader.events.filter((e) => e.kind === 'clock-round').length;
}

describe('Berkeley clock sync (simulation)', () => {
  it.each(SEEDS)(
    'one round from skew +-1 s and drift +-100 ppm brings every pairwise error under 1 ms, seed %i',
    async (seed) => {
      const s = await setup(seed, 5);
      const mono = watchMonotonic(s);
      expect(s.c.rt.runUntilTrue(() => coordinatorOf(s) !== undefined, 3_000)).toBe(true);
      const leader = coordinatorOf(s)!;
      const skewBefore = spread(s);
      expect(skewBefore).toBeGreaterThan(100); // the seeds really are skewed
      expect(
        s.c.rt.runUntilTrue(
          () => leader.events.some((e) => e.kind === 'clock-round' && e.peers === 5),
          3_000,
        ),
      ).toBe(true);
      s.c.rt.runFor(P.tickMs); // the adjustments are in flight for one link delay
      expect(roundsDone(s, leader)).toBe(1);
      // Targets agree at once: each peer knows where its group clock is going.
      const targets = spread(s, (p) => p.node.runtime.wall() + s.clk.get(p)!.status().targetOffsetMs);
      expect(targets).toBeLessThan(PAIRWISE_ERROR_MS_MAX);
      // Backward corrections slew at slewRate: the largest (2 s) is absorbed within 2 s / rate.
      s.c.rt.runFor((2 * SKEW_MS) / P.clock.slewRate + P.tickMs);
      expect(roundsDone(s, leader)).toBe(1); // still one round: T has not elapsed
      expect(spread(s)).toBeLessThan(PAIRWISE_ERROR_MS_MAX);
      for (const p of s.c.live()) {
        const st = s.clk.get(p)!.status();
        expect(st.offsetMs).toBe(st.targetOffsetMs);
        expect(st.lastSyncMs).not.toBeNull();
        expect(st.accuracyMs).not.toBeNull();
        expect(st.accuracyMs!).toBeLessThan(PAIRWISE_ERROR_MS_MAX);
      }
      mono.stop();
      expect(mono.backwards).toEqual([]);
      expect(s.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 20))(
    'a second round while clocks still slew keeps the targets and the group time, seed %i',
    async (seed) => {
      const s = await setup(seed, 5);
      expect(s.c.rt.runUntilTrue(() => coordinatorOf(s) !== undefined, 3_000)).toBe(true);
      const leader = coordinatorOf(s)!;
      expect(
        s.c.rt.runUntilTrue(
          () => leader.events.some((e) => e.kind === 'clock-round' && e.peers === 5),
          3_000,
        ),
      ).toBe(true);
      s.c.rt.runFor(P.tickMs);
      const target = (p: SimPeer) => p.node.runtime.wall() + s.clk.get(p)!.status().targetOffsetMs;
      const groupBefore = target(leader) - s.c.rt.now();
      // Ask for another round at once: backward corrections of up to 2 s are still slewing.
      const follower = s.c.live().find((p) => p !== leader)!;
      s.clk.get(follower)!.requestRound();
      expect(s.c.rt.runUntilTrue(() => roundsDone(s, leader) === 2, 2_000)).toBe(true);
      s.c.rt.runFor(P.tickMs);
      expect(spread(s, target)).toBeLessThan(PAIRWISE_ERROR_MS_MAX);
      // The round measured targets, not lagging clocks: group time did not jump.
      expect(Math.abs(target(leader) - s.c.rt.now() - groupBefore)).toBeLessThan(PAIRWISE_ERROR_MS_MAX);
    },
  );

  it.each(SEEDS.slice(0, 10))('periodic rounds keep drifting clocks together, seed %i', async (seed) => {
    const s = await setup(seed, 5);
    const mono = watchMonotonic(s);
    s.c.rt.runFor(10_000);
    // Between rounds two peers drift apart by up to 200 ppm x T = 1 ms; check over several rounds.
    let worst = 0;
    for (let i = 0; i < 40; i++) {
      s.c.rt.runFor(500);
      worst = Math.max(worst, spread(s));
    }
    expect(worst).toBeLessThan(2 * DRIFT_PPM * 1e-6 * P.clock.roundIntervalMs + 0.5);
    mono.stop();
    expect(mono.backwards).toEqual([]);
  });

  it.each(SEEDS.slice(0, 10))(
    'a broken clock is an outlier: it is corrected, not averaged, seed %i',
    async (seed) => {
      const HOUR_MS = 3_600_000;
      const s = await setup(seed, 5, SYMMETRIC, (i, rnd) => ({
        offsetMs: i === 3 ? HOUR_MS : (rnd() * 2 - 1) * 20,
        driftPpm: 0,
      }));
      expect(s.c.rt.runUntilTrue(() => coordinatorOf(s) !== undefined, 3_000)).toBe(true);
      const leader = coordinatorOf(s)!;
      expect(
        s.c.rt.runUntilTrue(
          () => leader.events.some((e) => e.kind === 'clock-round' && e.peers === 5),
          3_000,
        ),
      ).toBe(true);
      const round = leader.events.find((e) => e.kind === 'clock-round');
      expect(round && round.kind === 'clock-round' && round.used).toBe(4);
      s.c.rt.runFor(200);
      // The group time is the mean of the four good clocks, not dragged an hour towards the bad one.
      const goodMean =
        [0, 1, 2, 4].reduce((sum, i) => sum + s.fake.get(`p${i}`)!.offsetMs, 0) / 4 + 1_700_000_000_000;
      const behind = (p: SimPeer) => s.clk.get(p)!.groupNow() - s.c.rt.now() - goodMean;
      for (const p of s.c.live()) {
        const st = s.clk.get(p)!.status();
        expect(Math.abs(p.node.runtime.wall() + st.targetOffsetMs - s.c.rt.now() - goodMean)).toBeLessThan(1);
        if (p.name !== 'p3') expect(Math.abs(behind(p))).toBeLessThan(1);
      }
      // The broken clock may not step back an hour: it slews, and says how far off it still is.
      const bad = s.c.peers[3]!;
      const gap = behind(bad);
      expect(gap).toBeGreaterThan(HOUR_MS - 1_000);
      expect(s.clk.get(bad)!.status().accuracyMs!).toBeGreaterThan(gap - 1);
      s.c.rt.runFor(1_000);
      expect(behind(bad)).toBeCloseTo(gap - 1_000 * P.clock.slewRate, 0);
    },
  );

  it.each(SEEDS.slice(0, 10))(
    'under 10 percent loss and a coordinator crash, the new coordinator keeps the group in sync, seed %i',
    async (seed) => {
      const s = await setup(seed, 5, { loss: 0.1, delayMinMs: 0.2, delayMaxMs: 0.4 });
      const mono = watchMonotonic(s);
      s.c.rt.runFor(6_000);
      const old = coordinatorOf(s)!;
      await s.c.crash(old);
      s.c.rt.runFor(3 * P.clock.roundIntervalMs);
      const leader = coordinatorOf(s)!;
      expect(leader).toBeDefined();
      expect(leader).not.toBe(old);
      expect(leader.events.some((e) => e.kind === 'clock-round')).toBe(true);
      // Random (asymmetric) delays of 0.2-0.4 ms bias each estimate by up to 0.1 ms; drift adds 1 ms per T.
      expect(spread(s)).toBeLessThan(2);
      mono.stop();
      expect(mono.backwards).toEqual([]);
      expect(s.c.handlerErrors()).toEqual([]);
    },
  );

  // Clocks kept by NTP hardly drift: rounds every T measured them for nothing, and were most of
  // an idle group's traffic besides heartbeats. Drifting clocks keep T (the test above).
  // Random delays of 0-1 ms each way (asymmetric): each reading is off by up to its rtt/2, more
  // than CLOCK_AGREE_MS, and the adjustments of clocks that agree are that error. Held to 0.25 ms,
  // the interval fell back to T after nearly every round (28 and 46 rounds in 5 minutes in two of
  // the runs). Now only now and then, when what the last round left adds to a reading's error:
  // 10 to 18 rounds over 40 seeds in each transport mode. `exact`: every round after the first
  // three is roundIntervalMaxMs apart.
  const LINKS: Array<[string, Partial<LinkFaults>, boolean]> = [
    ['symmetric 0.3 ms links', SYMMETRIC, true],
    ['random 0-1 ms links', { delayMinMs: 0, delayMaxMs: 1 }, false],
  ];
  it.each(
    SEEDS.slice(0, 10).flatMap((seed) =>
      LINKS.map(([what, links, exact]) => [what, seed, links, exact] as const),
    ),
  )(
    'clocks that agree are measured less and less often, up to roundIntervalMaxMs, and stay together, %s, seed %i',
    async (_what, seed, links, exact) => {
      const s = await setup(seed, 5, links, (_, rnd) => ({
        offsetMs: (rnd() * 2 - 1) * SKEW_MS,
        driftPpm: 0,
      }));
      expect(s.c.rt.runUntilTrue(() => coordinatorOf(s) !== undefined, 3_000)).toBe(true);
      const leader = coordinatorOf(s)!;
      const mono = watchMonotonic(s);
      const MINUTES = 5;
      let worst = 0;
      for (let i = 0; i < MINUTES * 60; i++) {
        s.c.rt.runFor(1_000);
        if (i > 10) worst = Math.max(worst, spread(s));
      }
      expect(coordinatorOf(s)).toBe(leader);
      // Intervals of T, 2T, 4T, then roundIntervalMaxMs: at T throughout it was 60. A follower
      // that thought itself left out would have asked for rounds of its own, and there are none.
      const rounds = roundsDone(s, leader);
      if (exact)
        expect(rounds).toBeLessThanOrEqual(4 + Math.ceil((MINUTES * 60_000) / P.clock.roundIntervalMaxMs));
      expect(rounds).toBeLessThanOrEqual((MINUTES * 60_000) / P.clock.roundIntervalMs / 3);
      expect(rounds).toBeGreaterThanOrEqual(Math.floor((MINUTES * 60_000) / P.clock.roundIntervalMaxMs));
      expect(worst).toBeLessThan(PAIRWISE_ERROR_MS_MAX);
      mono.stop();
      expect(mono.backwards).toEqual([]);
      expect(s.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 10))(
    'a clock member that joins while rounds are far apart is measured within T, seed %i',
    async (seed) => {
      const s = await setup(seed, 4, SYMMETRIC, () => ({ offsetMs: 0, driftPpm: 0 }));
      s.c.rt.runFor(3 * 60_000);
      const leader = coordinatorOf(s)!;
      const late = await s.c.add('late', {
        runtime: withFakeClock(s.c.rt.forPeer(), { offsetMs: 300, driftPpm: 0 }),
      });
      const joinedAt = s.c.rt.now();
      const adjusted = () => late.events.some((e) => e.kind === 'clock-adjusted');
      expect(s.c.rt.runUntilTrue(adjusted, P.clock.roundIntervalMs + 2_000)).toBe(true);
      expect(s.c.rt.now() - joinedAt).toBeLessThan(P.clock.roundIntervalMs + 2_000);
      expect(coordinatorOf(s)).toBe(leader);
      s.c.rt.runFor(P.tickMs);
      expect(spread(s, (p) => p.node.runtime.wall() + s.clk.get(p)!.status().targetOffsetMs)).toBeLessThan(
        PAIRWISE_ERROR_MS_MAX,
      );
    },
  );

  it('every N application messages at the coordinator start a round', async () => {
    const s = await setup(3, 3);
    expect(s.c.rt.runUntilTrue(() => coordinatorOf(s) !== undefined, 3_000)).toBe(true);
    const leader = coordinatorOf(s)!;
    s.c.rt.runFor(1_000);
    const before = roundsDone(s, leader);
    for (let i = 0; i < P.clock.messagesPerRound - 1; i++) s.clk.get(leader)!.noteMessage();
    s.c.rt.runFor(500);
    expect(roundsDone(s, leader)).toBe(before);
    s.clk.get(leader)!.noteMessage();
    s.c.rt.runFor(P.tickMs + P.clock.collectMs + P.tickMs);
    expect(roundsDone(s, leader)).toBe(before + 1);
  });

  it('a follower can ask for a round and query every status', async () => {
    const s = await setup(4, 4);
    expect(s.c.rt.runUntilTrue(() => coordinatorOf(s) !== undefined, 3_000)).toBe(true);
    s.c.rt.runFor(1_000);
    const leader = coordinatorOf(s)!;
    const follower = s.c.live().find((p) => p !== leader)!;
    const before = roundsDone(s, leader);
    expect(s.clk.get(follower)!.requestRound()).toBe(true);
    s.c.rt.runFor(P.clock.roundGapMinMs + P.clock.collectMs + 2 * P.tickMs);
    expect(roundsDone(s, leader)).toBe(before + 1);
    s.clk.get(follower)!.queryStatuses();
    s.c.rt.runFor(10);
    const statuses = s.clk.get(follower)!.peerStatuses();
    expect(statuses.map((x) => x.name).sort()).toEqual(
      s.c
        .live()
        .filter((p) => p !== follower)
        .map((p) => p.name)
        .sort(),
    );
    for (const st of statuses) {
      expect(st.lamport).toBeGreaterThan(0);
      expect(st.lastSyncMs).not.toBeNull();
      expect(st.term).toBe(s.el.get(leader)!.term());
    }
    expect(leader.node.membership.ownTags[TAG_CLOCK]).toBe(true);
  });

  it('ignores polls and adjustments from a stale term or a peer that is not the coordinator', async () => {
    const s = await setup(9, 3);
    expect(s.c.rt.runUntilTrue(() => coordinatorOf(s) !== undefined, 3_000)).toBe(true);
    s.c.rt.runFor(1_000);
    const target = s.c.live().find((p) => !s.el.get(p)!.isCoordinator())!;
    const term = s.el.get(target)!.term();
    expect(term).toBeGreaterThan(0);
    const rogue = s.c.net.transport();
    const answers: string[] = [];
    const codec = new Codec({
      'clk.poll': () => true,
      'clk.adj': () => true,
      'clk.time': () => true,
    });
    await rogue.start((d) => {
      const r = codec.decode(d);
      if (r.ok) answers.push(r.env.t);
    });
    const send = (t: string, b: unknown, seq: number) =>
      rogue.send(
        target.address,
        codec.encode({ v: PROTOCOL_VERSION, t, i: 'ffffffffffffffff', n: 'rogue', c: 1, s: seq, l: 1, b }),
      );
    const offsetBefore = s.clk.get(target)!.status().targetOffsetMs;
    send('clk.poll', { term: term - 1, r: 1, k: 0 }, 1);
    s.c.rt.runFor(5);
    expect(answers).toEqual([]); // a deposed coordinator gets no reading
    send('clk.poll', { term, r: 7, k: 0 }, 2);
    s.c.rt.runFor(5);
    expect(answers).toEqual(['clk.time']); // same term: answered (it may be a claim we have not heard)
    send('clk.adj', { term, r: 7, a: 5_000, acc: 0 }, 3);
    s.c.rt.runFor(5);
    // Same term, but the rogue is not the coordinator we follow: ignored.
    expect(s.clk.get(target)!.status().targetOffsetMs).toBe(offsetBefore);
  });
});

// peer clock is a one-shot observer that asks the coordinator for a round and waits for its own
// adjustment. Rounds far apart (clocks agreeing), it had one chance: a lost request, or a reply
// slower than the members' (a node process starting on a busy host) that came after the round
// had ended, left it unsynced (CI saw a loopback run exit with a clock that never synced).
describe('Berkeley clock sync: a one-shot peer clock asks for a round', () => {
  it.each(SEEDS.slice(0, 10))(
    'is adjusted though its first request is lost and it answers later than the members, seed %i',
    async (seed) => {
      const el = new Map<SimPeer, Election>();
      const clk = new Map<SimPeer, ClockSync>();
      const c = new SimCluster(seed, SYMMETRIC, P, (node, peer) => {
        const observer = peer.name === 'clock';
        const e = node.install(
          (ctx, nd) =>
            new Election(ctx, nd.membership, { timings: P.election, priority: 0, candidate: !observer }),
        );
        el.set(peer, e);
        clk.set(
          peer,
          node.install(
            (ctx, nd) => new ClockSync(ctx, nd.membership, { timings: P.clock, coordinator: e, observer }),
          ),
        );
      });
      for (let i = 0; i < 4; i++) await c.add(`p${i}`);
      c.rt.runFor(60_000); // the clocks agree: rounds are roundIntervalMaxMs apart by now
      const leader = c.live().find((p) => el.get(p)!.isCoordinator())!;
      const ob = await c.add('clock', { observer: true });
      const clock = clk.get(ob)!;
      expect(c.rt.runUntilTrue(() => el.get(ob)!.coordinator() === leader.node.id, 3_000)).toBe(true);
      // Its replies take 20 ms (the members' 0.3 ms), within rttMaxMs; its first request is lost.
      const slow = { loss: 0, delayMinMs: 20, delayMaxMs: 20 };
      c.net.setLink(ob.address, leader.address, { ...slow, loss: 1 });
      expect(clock.requestRound()).toBe(true);
      c.rt.runFor(1);
      c.net.setLink(ob.address, leader.address, slow);
      const askedAt = c.rt.now();
      expect(c.rt.runUntilTrue(() => clock.status().lastSyncMs !== null, 2_000)).toBe(true);
      expect(c.rt.now() - askedAt).toBeLessThan(ROUND_REQUEST_RETRY_MS + P.clock.roundGapMinMs + 200);
      expect(c.handlerErrors()).toEqual([]);
    },
  );
});

describe('Berkeley average and fake clocks', () => {
  it('keeps everything within the floor and drops far outliers', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(berkeleyAverage([0, 1, 2, 3])).toEqual({ kept: [0, 1, 2, 3], average: 1.5 });
    const r = berkeleyAverage([0, 10, -10, 5, 3_600_000]);
    expect(r.kept).toEqual([0, 1, 2, 3]);
    expect(r.average).toBeCloseTo(1.25);
    // Wide but consistent skew (the +-1 s case) keeps every clock.
    expect(berkeleyAverage([0, -900, 850, 400, -300]).kept).toHaveLength(5);
  });

  it('parses PEER_FAKE_CLOCK and refuses nonsense with a clear message', () => {
    expect(parseFakeClock('-850,75')).toEqual({ offsetMs: -850, driftPpm: 75 });
    expect(parseFakeClock(' 1000 , -100 ')).toEqual({ offsetMs: 1000, driftPpm: -100 });
    for (const bad of ['', '5', '1,2,3', 'a,b', ',5', '1e12,0', '0,1e9', 'Infinity,0'])
      expect(() => parseFakeClock(bad)).toThrow(/PEER_FAKE_CLOCK.*offsetMs,driftPpm/);
  });

  it('offsets and drifts only the wall clock', () => {
    const c = new SimCluster(1);
    const base = c.rt.forPeer();
    const rt = withFakeClock(base, { offsetMs: 500, driftPpm: 100 });
    const w0 = rt.wall() - base.wall();
    c.rt.runFor(10_000);
    expect(w0).toBe(500);
    expect(rt.wall() - base.wall()).toBeCloseTo(501, 6);
    expect(rt.now()).toBe(base.now());
  });
});

describe('Berkeley clock sync under forged readings and adjustments', () => {
  const DAY_MS = 86_400_000;
  const EPOCH_MS = 1_700_000_000_000;
  const noSkew = () => ({ offsetMs: 0, driftPpm: 0 });
  /** How far a peer's group clock is from true time (every wall clock here is exact). */
  const error = (s: Setup, p: SimPeer) => s.clk.get(p)!.groupNow() - EPOCH_MS - s.c.rt.now();

  it('an adjustment from anyone but the coordinator followed, in its term, is ignored', async () => {
    const s = await setup(21, 3, SYMMETRIC, noSkew);
    expect(s.c.rt.runUntilTrue(() => coordinatorOf(s) !== undefined, 3_000)).toBe(true);
    s.c.rt.runFor(1_000);
    const target = s.c.live().find((p) => !s.el.get(p)!.isCoordinator())!;
    const term = s.el.get(target)!.term();
    const r = await rogue(s.c.net);
    // A poll and an adjustment "from a coordinator of a newer term" that nobody elected.
    r.send(target.address, 'clk.poll', { term: term + 1, r: 1, k: 0 });
    s.c.rt.runFor(5);
    r.send(target.address, 'clk.adj', { term: term + 1, r: 1, a: DAY_MS, acc: 0 });
    s.c.rt.runFor(5);
    expect(Math.abs(error(s, target))).toBeLessThan(1);
    s.c.rt.runFor(2 * P.clock.roundIntervalMs);
    for (const p of s.c.live()) expect(Math.abs(error(s, p))).toBeLessThan(1);
  });

  it('readings under ids that are not clock members are not averaged', async () => {
    const s = await setup(22, 3, SYMMETRIC, noSkew);
    expect(s.c.rt.runUntilTrue(() => coordinatorOf(s) !== undefined, 3_000)).toBe(true);
    const r = await rogue(s.c.net);
    // Five made-up ids answer every poll a day ahead: a majority of the readings.
    r.onHeard = (h) => {
      if (h.t !== 'clk.poll') return;
      for (let k = 0; k < 5; k++)
        r.send(h.from, 'clk.time', { ...h.b, g: EPOCH_MS + s.c.rt.now() + DAY_MS }, `e0000000000000${k}0`);
    };
    const leader = coordinatorOf(s)!;
    expect(
      // The clocks agree, so the round after the first comes after twice the interval.
      s.c.rt.runUntilTrue(
        () => leader.events.some((e) => e.kind === 'clock-round' && e.peers === 8),
        2 * P.clock.roundIntervalMs + 1_000,
      ),
    ).toBe(true);
    s.c.rt.runFor(100);
    for (const p of s.c.live()) expect(Math.abs(error(s, p))).toBeLessThan(1);
  });

  it('a forging member alone with the coordinator moves the group time at most GROUP_STEP_MS_MAX a round', async () => {
    const s = await setup(23, 1, SYMMETRIC, noSkew);
    expect(s.c.rt.runUntilTrue(() => coordinatorOf(s) !== undefined, 3_000)).toBe(true);
    const leader = coordinatorOf(s)!;
    const r = await rogue(s.c.net, '0000000000000001');
    const hb = () => r.broadcast('hb', { g: { [TAG_CLOCK]: true } });
    hb();
    const stop = s.c.rt.forPeer().every(P.membership.heartbeatIntervalMs, hb);
    r.onHeard = (h) => {
      if (h.t === 'clk.poll') r.send(h.from, 'clk.time', { ...h.b, g: EPOCH_MS + s.c.rt.now() + DAY_MS });
    };
    expect(s.c.rt.runUntilTrue(() => roundsDone(s, leader) === 1, 2 * P.clock.roundIntervalMs)).toBe(true);
    s.c.rt.runFor(100);
    stop();
    expect(error(s, leader)).toBeGreaterThan(0);
    expect(error(s, leader)).toBeLessThanOrEqual(GROUP_STEP_MS_MAX + 1);
  });

  it('requests and answers under ids that are not members draw at most STRANGER_POLLS_PER_S unicast polls a second', async () => {
    const s = await setup(25, 2, SYMMETRIC, noSkew);
    expect(s.c.rt.runUntilTrue(() => coordinatorOf(s) !== undefined, 3_000)).toBe(true);
    const leader = coordinatorOf(s)!;
    const forger = await rogue(s.c.net);
    // A host that runs no peer: the forger's datagrams name its address as their source.
    const victim = await rogue(s.c.net, 'eeeeeeeeeeeeeeee', 'victim');
    let polled = 0;
    victim.onHeard = (h) => {
      if (h.t === 'clk.poll' && (h.b as { k: number }).k > 0) polled++;
    };
    let id = 0;
    const fresh = () => (id++).toString(16).padStart(16, 'd');
    // Every round: a full set of requesters, and answers to the group's poll, under fresh ids.
    forger.onHeard = (h) => {
      if (h.t !== 'clk.poll') return;
      for (let i = 0; i < 32; i++)
        forger.send(
          leader.address,
          'clk.time',
          { ...h.b, g: EPOCH_MS + s.c.rt.now() },
          fresh(),
          victim.address,
        );
    };
    const ask = () => {
      for (let i = 0; i < REQUESTERS_MAX; i++)
        forger.send(leader.address, 'clk.req', {}, fresh(), victim.address);
    };
    const stop = s.c.rt.forPeer().every(P.clock.roundGapMinMs, ask);
    const seconds = 10;
    s.c.rt.runFor(seconds * 1000);
    stop();
    // Still polled (a real `peer clock` is not a member either), but no more than the budget.
    expect(polled).toBeGreaterThan(0);
    expect(polled).toBeLessThanOrEqual((seconds + 1) * STRANGER_POLLS_PER_S);
    // And the rounds went on, the members' clocks unmoved.
    expect(roundsDone(s, leader)).toBeGreaterThan(2);
    for (const p of s.c.live()) expect(Math.abs(error(s, p))).toBeLessThan(1);
  });

  it('a forward adjustment past FORWARD_JUMP_MS_MAX is slewed, not stepped', async () => {
    const s = await setup(24, 2, SYMMETRIC, noSkew);
    expect(s.c.rt.runUntilTrue(() => coordinatorOf(s) !== undefined, 3_000)).toBe(true);
    const leader = coordinatorOf(s)!;
    const follower = s.c.live().find((p) => p !== leader)!;
    expect(s.c.rt.runUntilTrue(() => roundsDone(s, leader) === 1, 2 * P.clock.roundIntervalMs)).toBe(true);
    s.c.rt.runFor(100);
    const term = s.el.get(follower)!.term();
    // As a coordinator gone wrong would: its own poll, then a day forward. It binds the follower
    // only through its slew, which its own next round (or the next coordinator's) corrects.
    const send = (t: string, b: unknown) => leader.node.context.send(follower.address, t, b);
    send('clk.poll', { term, r: 999, k: 0 });
    s.c.rt.runFor(5);
    send('clk.adj', { term, r: 999, a: DAY_MS, acc: 0 });
    s.c.rt.runFor(5);
    expect(error(s, follower)).toBeGreaterThanOrEqual(FORWARD_JUMP_MS_MAX);
    expect(error(s, follower)).toBeLessThan(FORWARD_JUMP_MS_MAX + 10);
    s.c.rt.runFor(1_000);
    expect(error(s, follower)).toBeCloseTo(FORWARD_JUMP_MS_MAX + 1_000 * P.clock.slewRate, -1);
  });
});
