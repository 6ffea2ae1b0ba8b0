import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import { Election, ranksAbove, rankMembers, coordinatorFromTags } from '../../src/p2p/election.js';
import type { LinkFaults, SimHostOptions } from '../../src/p2p/transport/sim.js';
import { Codec, PROTOCOL_VERSION } from '../../src/p2p/wire.js';

const P = PROFILES.lan;
/**
 * Elections started, summed over the peers, in one run of the unicast-only test below: a start
 * and 4 crashes or restarts of 5 peers make 14 or 15; twice that is a storm.
 */
const ELECTIONS_PER_RUN_MAX = 30;
const SEEDS = Array.from({ length: 40 }, (_, i) => i + 1);
/** The target of issue 5: agreement on a new coordinator within this after the old one is seen dead. */
const AGREEMENT_AFTER_DEATH_MS_MAX = 500;

interface Setup {
  c: SimCluster;
  el: Map<SimPeer, Election>;
  /** Priorities by peer name (names are unique in these tests); read at every boot. */
  prio: Map<string, number>;
}

const isFollower = (p: SimPeer) => p.name.startsWith('follower');

/** N peers with seeded priorities in 0..2 (ties broken by id), each running an Election. */
async function setup(
  seed: number,
  n: number,
  faults: Partial<LinkFaults> = {},
  host: SimHostOptions = {},
): Promise<Setup> {
  const el = new Map<SimPeer, Election>();
  const prio = new Map<string, number>();
  const c = new SimCluster(seed, faults, P, (node, peer) => {
    const priority = prio.get(peer.name) ?? 0;
    el.set(
      peer,
      node.install(
        (ctx, nd) =>
          new Election(ctx, nd.membership, { timings: P.election, priority, candidate: !isFollower(peer) }),
      ),
    );
  });
  const s = { c, el, prio };
  for (let i = 0; i < n; i++) await addPeer(s, `p${i}`, Math.floor(c.rt.random() * 3), host);
  return s;
}

async function addPeer(
  s: Setup,
  name: string,
  priority: number,
  host: SimHostOptions = {},
): Promise<SimPeer> {
  s.prio.set(name, priority);
  return s.c.add(name, {}, host);
}

function candidatesUp(s: Setup): SimPeer[] {
  return s.c.live().filter((p) => !isFollower(p));
}

/** The highest-ranked live candidate: who must lead once things settle. */
function expected(s: Setup, among = candidatesUp(s)): SimPeer {
  return among.reduce((best, p) =>
    ranksAbove(s.prio.get(p.name)!, p.node.id, s.prio.get(best.name)!, best.node.id) ? p : best,
  );
}

/** Every peer in `group` follows `leader`, and `leader` alone thinks it leads. */
function agreeOn(s: Setup, leader: SimPeer, group = s.c.live()): boolean {
  return group.every(
    (p) => s.el.get(p)!.coordinator() === leader.node.id && s.el.get(p)!.isCoordinator() === (p === leader),
  );
}

/** Safety over the whole history: no term ever had two winners, nor two coordinators in any view. */
function coordinatorsByTerm(s: Setup): Map<number, Set<string>> {
  const byTerm = new Map<number, Set<string>>();
  const add = (term: number, id: string) => {
    if (!byTerm.has(term)) byTerm.set(term, new Set());
    byTerm.get(term)!.add(id);
  };
  for (const p of s.c.peers) {
    for (const e of p.events) {
      if (e.kind === 'elected') add(e.term, p.node.id);
      if (e.kind === 'coordinator-changed' && e.coordinator !== null) add(e.term, e.coordinator);
    }
  }
  return byTerm;
}

function expectOneCoordinatorPerTerm(s: Setup): void {
  const doubles = [...coordinatorsByTerm(s)].filter(([, ids]) => ids.size > 1);
  expect(doubles.map(([t, ids]) => `term ${t}: ${[...ids].join(', ')}`)).toEqual([]);
}

/** Within one life of a peer (between restarts), the terms it follows only rise. */
function expectTermsRise(s: Setup): void {
  for (const p of s.c.peers) {
    let last = -1;
    for (const e of p.events) {
      if (e.kind === 'coordinator-changed') {
        expect(e.term).toBeGreaterThanOrEqual(last);
        last = e.term;
      }
    }
  }
}

describe('bully election (simulation)', () => {
  it.each(SEEDS)('elects the highest-ranked peer and only it, seed %i', async (seed) => {
    const s = await setup(seed, 5, { loss: 0.02, delayMaxMs: 2 });
    const top = expected(s);
    expect(s.c.rt.runUntilTrue(() => agreeOn(s, top), 3_000)).toBe(true);
    s.c.rt.runFor(5_000);
    expect(agreeOn(s, top)).toBe(true);
    expectOneCoordinatorPerTerm(s);
    expect(s.c.handlerErrors()).toEqual([]);
  });

  it.each(SEEDS)(
    'after a crash of the coordinator all agree on the next within 500 ms of its detection, seed %i',
    async (seed) => {
      const loss = seed % 2 === 0 ? 0.1 : 0;
      const s = await setup(seed, 5, { loss, delayMinMs: 0.1, delayMaxMs: 2 });
      const top = expected(s);
      expect(s.c.rt.runUntilTrue(() => agreeOn(s, top), 5_000)).toBe(true);
      s.c.rt.runFor(1_000);
      const termBefore = s.el.get(top)!.term();
      await s.c.crash(top);
      const survivors = s.c.live();
      const next = expected(s);
      const detected = () => survivors.some((p) => p.node.membership.get(top.node.id)?.state === 'dead');
      expect(s.c.rt.runUntilTrue(detected, 3_000)).toBe(true);
      const detectedAt = s.c.rt.now();
      expect(s.c.rt.runUntilTrue(() => agreeOn(s, next, survivors), 2_000)).toBe(true);
      expect(s.c.rt.now() - detectedAt).toBeLessThanOrEqual(AGREEMENT_AFTER_DEATH_MS_MAX);
      expect(s.el.get(next)!.term()).toBeGreaterThan(termBefore);
      s.c.rt.runFor(5_000);
      expect(agreeOn(s, next, survivors)).toBe(true);
      expectOneCoordinatorPerTerm(s);
      expectTermsRise(s);
      expect(s.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 20))(
    'under 10 percent loss with crashes and restarts there is exactly one coordinator once stable, seed %i',
    async (seed) => {
      const s = await setup(seed, 6, { loss: 0.1, duplicate: 0.02, delayMinMs: 0.1, delayMaxMs: 3 });
      const rnd = s.c.rt.random;
      for (let round = 0; round < 6; round++) {
        s.c.rt.runFor(1_000 + rnd() * 2_000);
        const live = s.c.live();
        const down = s.c.peers.filter((p) => !p.up);
        if (down.length > 0 && (rnd() < 0.5 || live.length <= 3)) await s.c.restart(down[0]!);
        else {
          // Crash the coordinator half of the time, anyone else otherwise.
          const victim = rnd() < 0.5 ? expected(s) : live[Math.floor(rnd() * live.length)]!;
          await s.c.crash(victim);
        }
      }
      const top = expected(s);
      expect(s.c.rt.runUntilTrue(() => agreeOn(s, top), 5_000)).toBe(true);
      s.c.rt.runFor(10_000);
      expect(agreeOn(s, top)).toBe(true);
      expect(s.c.live().filter((p) => s.el.get(p)!.isCoordinator())).toEqual([top]);
      expectOneCoordinatorPerTerm(s);
      expect(s.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 20))(
    'a partition gives one coordinator per side, and one again after it heals, seed %i',
    async (seed) => {
      const s = await setup(seed, 5, { loss: 0.02, delayMaxMs: 2 });
      const top = expected(s);
      expect(s.c.rt.runUntilTrue(() => agreeOn(s, top), 3_000)).toBe(true);
      // The coordinator's side is the minority: the others must elect their own.
      const others = s.c.peers.filter((p) => p !== top);
      const withTop = [top, others[seed % others.length]!];
      const rest = others.filter((p) => !withTop.includes(p));
      s.c.net.partition(
        withTop.map((p) => p.address),
        rest.map((p) => p.address),
      );
      const restTop = expected(s, rest);
      expect(s.c.rt.runUntilTrue(() => agreeOn(s, restTop, rest) && agreeOn(s, top, withTop), 5_000)).toBe(
        true,
      );
      s.c.rt.runFor(2_000);
      expect(agreeOn(s, restTop, rest) && agreeOn(s, top, withTop)).toBe(true);
      s.c.heal();
      expect(s.c.rt.runUntilTrue(() => agreeOn(s, top), 3_000)).toBe(true);
      s.c.rt.runFor(5_000);
      expect(agreeOn(s, top)).toBe(true);
      expect(s.c.live().filter((p) => s.el.get(p)!.isCoordinator())).toEqual([top]);
      expectOneCoordinatorPerTerm(s);
      expect(s.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 20))('a higher-priority newcomer takes over, seed %i', async (seed) => {
    const s = await setup(seed, 4, { loss: 0.05, delayMaxMs: 2 });
    const top = expected(s);
    expect(s.c.rt.runUntilTrue(() => agreeOn(s, top), 3_000)).toBe(true);
    const before = s.el.get(top)!.term();
    const boss = await addPeer(s, 'boss', 10);
    expect(s.c.rt.runUntilTrue(() => agreeOn(s, boss), 2_000)).toBe(true);
    expect(s.el.get(boss)!.term()).toBeGreaterThan(before);
    expect(boss.events.some((e) => e.kind === 'elected')).toBe(true);
    s.c.rt.runFor(3_000);
    expect(agreeOn(s, boss)).toBe(true);
    expectOneCoordinatorPerTerm(s);
  });

  it.each(SEEDS.slice(0, 10))(
    'a graceful leave of the coordinator is followed faster than a crash, seed %i',
    async (seed) => {
      const s = await setup(seed, 5, { delayMaxMs: 2 });
      const top = expected(s);
      expect(s.c.rt.runUntilTrue(() => agreeOn(s, top), 3_000)).toBe(true);
      await s.c.leave(top);
      const at = s.c.rt.now();
      const next = expected(s);
      expect(s.c.rt.runUntilTrue(() => agreeOn(s, next), 2_000)).toBe(true);
      // No failure detection to wait for: a tick, a claim, a round trip.
      expect(s.c.rt.now() - at).toBeLessThan(P.tickMs * 3);
      expect(next.events.some((e) => e.kind === 'elected')).toBe(true);
      expectOneCoordinatorPerTerm(s);
    },
  );

  it.each(SEEDS.slice(0, 20))(
    'a false death seen by one peer ends with the highest peer leading again, seed %i',
    async (seed) => {
      const s = await setup(seed, 5, { loss: 0.02, delayMaxMs: 2 });
      const top = expected(s);
      expect(s.c.rt.runUntilTrue(() => agreeOn(s, top), 3_000)).toBe(true);
      // One peer stops hearing the coordinator (a one-way fault) long enough to call it dead.
      const victim = s.c.peers.find((p) => p !== top)!;
      s.c.net.setLink(top.address, victim.address, { loss: 1 });
      expect(
        s.c.rt.runUntilTrue(() => victim.node.membership.get(top.node.id)?.state === 'dead', 3_000),
      ).toBe(true);
      s.c.rt.runFor(300);
      s.c.net.setLink(top.address, victim.address, { loss: 0.02 });
      expect(s.c.rt.runUntilTrue(() => agreeOn(s, top), 3_000)).toBe(true);
      s.c.rt.runFor(3_000);
      expect(agreeOn(s, top)).toBe(true);
      expectOneCoordinatorPerTerm(s);
      expectTermsRise(s);
      expect(s.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 10))(
    'a follower (candidate: false) follows but never leads, seed %i',
    async (seed) => {
      const s = await setup(seed, 3);
      const f = await addPeer(s, 'follower', 1_000);
      const top = expected(s);
      expect(s.c.rt.runUntilTrue(() => agreeOn(s, top), 3_000)).toBe(true);
      for (const p of s.c.live()) if (p !== f) await s.c.crash(p);
      s.c.rt.runFor(3_000);
      expect(s.el.get(f)!.coordinator()).toBeNull();
      expect(f.events.some((e) => e.kind === 'elected' || e.kind === 'election-started')).toBe(false);
    },
  );

  it('the tags tell an observer who leads and how peers rank', async () => {
    const s = await setup(5, 4);
    const top = expected(s);
    expect(s.c.rt.runUntilTrue(() => agreeOn(s, top), 3_000)).toBe(true);
    s.c.rt.runFor(P.membership.heartbeatIntervalMs * 2);
    const obs = await s.c.add('observer', { observer: true });
    s.c.rt.runFor(50);
    const members = obs.node.membership.list();
    expect(coordinatorFromTags(members)).toBe(top.node.id);
    const ranks = rankMembers(members);
    expect(ranks.get(top.node.id)).toBe(1);
    expect([...ranks.values()].sort()).toEqual([1, 2, 3, 4]);
  });

  it('ignores stale, unknown and malformed claims', async () => {
    const s = await setup(12, 3);
    const top = expected(s);
    expect(s.c.rt.runUntilTrue(() => agreeOn(s, top), 3_000)).toBe(true);
    const target = s.c.peers.find((p) => p !== top)!;
    const term = s.el.get(target)!.term();
    const codec = new Codec({ 'el.coord': () => true, hb: () => true });
    const rogue = s.c.net.transport();
    await rogue.start(() => {});
    let seq = 0;
    const send = (t: string, b: unknown, id = 'ffffffffffffffff') =>
      rogue.send(
        target.address,
        codec.encode({ v: PROTOCOL_VERSION, t, i: id, n: 'rogue', c: 1, s: ++seq, l: 1, b }),
      );
    // Not a member (no heartbeat yet): a claim, even for a higher term and top priority, is ignored.
    send('el.coord', { term: term + 5, prio: 1_000_000 });
    s.c.rt.runFor(5);
    expect(s.el.get(target)!.coordinator()).toBe(top.node.id);
    // A member now, but claiming a stale term: ignored.
    send('hb', { g: { prio: 1_000_000, coord: false, term: 0 } });
    send('el.coord', { term: term - 1, prio: 1_000_000 });
    s.c.rt.runFor(5);
    expect(s.el.get(target)!.coordinator()).toBe(top.node.id);
    expect(s.el.get(target)!.term()).toBe(term);
    // Malformed bodies are dropped by the codec and counted, never handled.
    const before = target.node.stats.dropped.body;
    send('el.coord', { term: -1, prio: 1 });
    send('el.coord', { term: 1, prio: 1_000_001 });
    send('el.coord', { term: 1, prio: 1, extra: true });
    s.c.rt.runFor(5);
    expect(target.node.stats.dropped.body - before).toBe(3);
    expect(s.el.get(target)!.coordinator()).toBe(top.node.id);
    expect(s.c.handlerErrors()).toEqual([]);
  });

  // Unicast-only, group sends reach a member only once its address answered a nonce (reach.ts): a
  // candidate that claimed while a higher one was known but not yet reached gave two coordinators
  // one term at startup or after a restart (in about one run in ten at 10 % loss). Every run counts.
  // A coordinator that held a higher-ranked member without its tags (met before its election set
  // them, its heartbeats not yet fanned out to us) took it for no candidate: it claimed at once at
  // every term the others moved to, and the member outranked it again, 5 ms apart, for seconds
  // (136 elections in one run instead of 14 or 15). Every run counts.
  it('unicast-only under 10 percent loss, with startups, crashes and restarts, no term has two coordinators and no election storms', async () => {
    const runs = 40;
    const doubled: string[] = [];
    const storms: string[] = [];
    for (let seed = 1; seed <= runs; seed++) {
      const s = await setup(seed, 5, { loss: 0.1, delayMinMs: 0.1, delayMaxMs: 3 }, { mode: 'unicast' });
      const rnd = s.c.rt.random;
      for (let round = 0; round < 4; round++) {
        s.c.rt.runFor(1_500 + rnd() * 1_500);
        const down = s.c.peers.filter((p) => !p.up);
        if (down.length > 0) await s.c.restart(down[0]!);
        else await s.c.crash(rnd() < 0.5 ? expected(s) : s.c.live()[Math.floor(rnd() * s.c.live().length)]!);
      }
      const top = expected(s);
      expect(s.c.rt.runUntilTrue(() => agreeOn(s, top), 5_000)).toBe(true);
      for (const [term, ids] of coordinatorsByTerm(s))
        if (ids.size > 1) doubled.push(`seed ${seed} term ${term}`);
      const elections = s.c.peers.flatMap((p) => p.events).filter((e) => e.kind === 'election-started');
      if (elections.length > ELECTIONS_PER_RUN_MAX)
        storms.push(`seed ${seed}: ${elections.length} elections`);
      expect(s.c.handlerErrors()).toEqual([]);
    }
    expect(doubled).toEqual([]);
    expect(storms).toEqual([]);
  });

  it('refuses a priority out of range', async () => {
    const c = new SimCluster(1);
    const p = await c.add('x');
    expect(
      () => new Election(p.node.context, p.node.membership, { timings: P.election, priority: -1 }),
    ).toThrow(/priority/);
    expect(
      () => new Election(p.node.context, p.node.membership, { timings: P.election, priority: 1.5 }),
    ).toThrow(/priority/);
  });
});
