import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { rogue } from '../support/rogue.js';
import { PROFILES } from '../../src/p2p/config.js';
import {
  Election,
  PRIORITY_MAX,
  TERM_CATCH_UP_MAX,
  TERM_STEP_MAX,
  coordinatorFromTags,
  ranksAbove,
} from '../../src/p2p/election.js';
import { COUNTER_MAX } from '../../src/p2p/bounds.js';
import type { LinkFaults } from '../../src/p2p/transport/sim.js';

const P = PROFILES.lan;
/** Crash detection of the profile: silent for deadAfterMs, seen at the next tick (config.ts). */
const DETECTION_MS = P.membership.deadAfterMs + P.tickMs;
/** Issue 17: after a forger stops, the group is whole again within twice the detection time. */
const RECOVERY_MS = 2 * DETECTION_MS;

/** N candidates with priorities 0..2, each running an Election; peers added later only follow. */
async function setup(seed: number, n: number, faults: Partial<LinkFaults> = {}) {
  const el = new Map<SimPeer, Election>();
  const prio = new Map<string, number>();
  const c = new SimCluster(seed, { delayMaxMs: 2, ...faults }, P, (node, peer) => {
    el.set(
      peer,
      node.install(
        (ctx, nd) =>
          new Election(ctx, nd.membership, {
            timings: P.election,
            priority: prio.get(peer.name) ?? 0,
            candidate: prio.has(peer.name),
          }),
      ),
    );
  });
  for (let i = 0; i < n; i++) {
    prio.set(`p${i}`, i % 3);
    await c.add(`p${i}`);
  }
  const top = c.peers.reduce((best, p) =>
    ranksAbove(prio.get(p.name)!, p.node.id, prio.get(best.name)!, best.node.id) ? p : best,
  );
  /** Every peer follows `top`, and only `top` thinks it leads. */
  const whole = () =>
    c.peers.every(
      (p) => el.get(p)!.coordinator() === top.node.id && el.get(p)!.isCoordinator() === (p === top),
    );
  return { c, el, prio, top, whole };
}

/**
 * A group whose term is past one step from 0: a member that outranks all claims a term a full step
 * ahead (within the bound), then falls silent and the group holds an ordinary election.
 */
async function farAheadGroup(seed: number, n = 4) {
  const s = await setup(seed, n);
  const { c, el, top, whole } = s;
  expect(c.rt.runUntilTrue(whole, 3_000)).toBe(true);
  const r = await rogue(c.net);
  r.broadcast('hb', { g: { prio: PRIORITY_MAX, coord: false, term: 0 } });
  c.rt.runFor(5);
  r.broadcast('el.coord', { term: el.get(top)!.term() + TERM_STEP_MAX, prio: PRIORITY_MAX });
  c.rt.runFor(5);
  for (const p of c.peers) expect(el.get(p)!.coordinator()).toBe(r.id);
  expect(
    c.rt.runUntilTrue(() => c.peers.every((p) => p.node.membership.get(r.id)?.state === 'dead'), 3_000),
  ).toBe(true);
  expect(c.rt.runUntilTrue(whole, 3_000)).toBe(true);
  const groupTerm = el.get(top)!.term();
  expect(groupTerm).toBeGreaterThan(TERM_STEP_MAX);
  /** Every peer follows `leader` in one term, and only `leader` thinks it leads. */
  const allFollow = (leader: SimPeer) =>
    c.peers.every(
      (p) =>
        el.get(p)!.coordinator() === leader.node.id &&
        el.get(p)!.isCoordinator() === (p === leader) &&
        el.get(p)!.term() === el.get(leader)!.term(),
    );
  return { ...s, groupTerm, allFollow };
}

/**
 * `holds` comes true within twice the detection time (RECOVERY_MS), the term is then above what
 * the forger left (`termAbove`), and `holds` is still true 3 s later, with no handler error.
 */
function recoversAndHolds(c: SimCluster, holds: () => boolean, termAbove: () => boolean): void {
  expect(c.rt.runUntilTrue(holds, RECOVERY_MS)).toBe(true);
  expect(termAbove()).toBe(true);
  c.rt.runFor(3_000);
  expect(holds()).toBe(true);
  expect(c.handlerErrors()).toEqual([]);
}

describe('election under forged terms (simulation)', () => {
  it.each([1, 2, 3, 4, 5])(
    'a member claiming term 2^53-1 is refused, and one coordinator remains after it goes quiet, seed %i',
    async (seed) => {
      const { c, el, whole } = await setup(seed, 4);
      expect(c.rt.runUntilTrue(whole, 3_000)).toBe(true);
      // The forger joins as a member that outranks everyone, then claims the last safe term.
      const r = await rogue(c.net);
      r.broadcast('hb', { g: { prio: PRIORITY_MAX, coord: false, term: 0 } });
      c.rt.runFor(5);
      r.broadcast('el.coord', { term: Number.MAX_SAFE_INTEGER, prio: PRIORITY_MAX });
      r.broadcast('el.elect', { term: Number.MAX_SAFE_INTEGER, prio: PRIORITY_MAX });
      c.rt.runFor(5);
      // Then it falls silent: it is declared dead and must leave exactly one coordinator behind.
      expect(
        c.rt.runUntilTrue(() => c.peers.every((p) => p.node.membership.get(r.id)?.state === 'dead'), 3_000),
      ).toBe(true);
      expect(c.rt.runUntilTrue(whole, 3_000)).toBe(true);
      c.rt.runFor(3_000);
      expect(whole()).toBe(true);
      for (const p of c.peers) {
        expect(el.get(p)!.term()).toBeLessThan(COUNTER_MAX);
        expect(p.node.stats.refused.term).toBe(2);
      }
      expect(c.handlerErrors()).toEqual([]);
    },
  );

  it('a claim within the step is followed, one beyond it is not', async () => {
    const { c, el, top, whole } = await setup(7, 3);
    expect(c.rt.runUntilTrue(whole, 3_000)).toBe(true);
    const r = await rogue(c.net);
    r.broadcast('hb', { g: { prio: PRIORITY_MAX, coord: false, term: 0 } });
    c.rt.runFor(5);
    const term = el.get(top)!.term();
    r.broadcast('el.coord', { term: term + TERM_STEP_MAX + 1, prio: PRIORITY_MAX });
    c.rt.runFor(5);
    expect(whole()).toBe(true);
    // The highest-ranked member in an open group may lead: a step within the bound is a claim like any.
    r.broadcast('el.coord', { term: term + TERM_STEP_MAX, prio: PRIORITY_MAX });
    c.rt.runFor(5);
    for (const p of c.peers) expect(el.get(p)!.coordinator()).toBe(r.id);
  });

  it('a peer that restarts knowing no term follows a group whose term has grown large', async () => {
    const { c, el, whole } = await setup(8, 3);
    expect(c.rt.runUntilTrue(whole, 3_000)).toBe(true);
    // A long history of elections, compressed: a member that outranks all claims two far terms.
    const r = await rogue(c.net);
    r.broadcast('hb', { g: { prio: PRIORITY_MAX, coord: false, term: 0 } });
    c.rt.runFor(5);
    for (const step of [1, 2]) {
      r.broadcast('el.coord', { term: step * 60_000, prio: PRIORITY_MAX });
      c.rt.runFor(5);
    }
    for (const p of c.peers) expect(el.get(p)!.term()).toBe(120_000);
    expect(
      c.rt.runUntilTrue(() => c.peers.every((p) => p.node.membership.get(r.id)?.state === 'dead'), 3_000),
    ).toBe(true);
    expect(c.rt.runUntilTrue(whole, 3_000)).toBe(true);
    // Terms are not saved: a restarted peer starts from nothing and must take the group's.
    const p = c.peers.find((x) => !el.get(x)!.isCoordinator())!;
    await c.crash(p);
    c.rt.runFor(100);
    await c.restart(p);
    expect(c.rt.runUntilTrue(whole, 3_000)).toBe(true);
    expect(el.get(p)!.term()).toBeGreaterThan(120_000);
  });

  it.each([
    [1, 4],
    [2, 4],
    [3, 4],
    [4, 2],
    [5, 2],
  ])(
    'the top-ranked peer restarted knowing no term leads again above a group term past one step, seed %i, %i peers',
    async (seed, n) => {
      const { c, el, top, groupTerm, allFollow } = await farAheadGroup(seed, n);
      await c.crash(top);
      // The others elect among themselves first, in a term above the group's.
      const rest = c.peers.filter((p) => p !== top);
      const restLed = () => {
        const leaders = new Set(rest.map((p) => el.get(p)!.coordinator()));
        return leaders.size === 1 && rest.some((p) => el.get(p)!.isCoordinator());
      };
      expect(c.rt.runUntilTrue(restLed, 3_000)).toBe(true);
      await c.restart(top);
      // Within twice the detection time of the restart, all follow it again, above the group's term.
      recoversAndHolds(
        c,
        () => allFollow(top),
        () => el.get(top)!.term() > groupTerm,
      );
    },
  );

  it.each([1, 2, 3])(
    'a lower-ranked peer restarted knowing no term follows a group term past one step, seed %i',
    async (seed) => {
      const { c, el, top, groupTerm, allFollow } = await farAheadGroup(seed);
      const p = c.peers.find((x) => x !== top)!;
      await c.crash(p);
      c.rt.runFor(100);
      await c.restart(p);
      recoversAndHolds(
        c,
        () => allFollow(top),
        () => el.get(p)!.term() >= groupTerm,
      );
    },
  );

  it.each([1, 2, 3])(
    'a brand-new peer that outranks all takes over a group whose term is past one step, seed %i',
    async (seed) => {
      const { c, el, prio, groupTerm, allFollow } = await farAheadGroup(seed);
      prio.set('newcomer', PRIORITY_MAX);
      const n = await c.add('newcomer');
      recoversAndHolds(
        c,
        () => allFollow(n),
        () => el.get(n)!.term() > groupTerm,
      );
    },
  );

  it('one forged heartbeat whose tags show a term far past the step moves no term', async () => {
    const { c, el, groupTerm, allFollow, top } = await farAheadGroup(11);
    const r = await rogue(c.net, '5151515151515151', 'stranger');
    r.broadcast('hb', { g: { prio: 0, coord: false, term: groupTerm + 3 * TERM_STEP_MAX } });
    c.rt.runFor(3_000);
    expect(allFollow(top)).toBe(true);
    for (const p of c.peers) expect(el.get(p)!.term()).toBe(groupTerm);
  });

  it('members at two addresses agreeing on a far-ahead term move the group to it, but never past the catch-up cap', async () => {
    const { c, el, top, whole } = await setup(12, 3);
    expect(c.rt.runUntilTrue(whole, 3_000)).toBe(true);
    const a = await rogue(c.net, '5151515151515151', 'a');
    const b = await rogue(c.net, '5252525252525252', 'b');
    const publish = (term: number) => {
      for (let t = 0; t < 1_500; t += 200) {
        a.broadcast('hb', { g: { coord: false, term } });
        b.broadcast('hb', { g: { coord: false, term } });
        c.rt.runFor(200);
      }
    };
    publish(TERM_CATCH_UP_MAX + 1);
    expect(whole()).toBe(true);
    for (const p of c.peers) expect(el.get(p)!.term()).toBeLessThan(TERM_STEP_MAX);
    // The open group's trade-off, as for Lamport time: two agreeing sockets look like a group.
    publish(TERM_CATCH_UP_MAX);
    expect(whole()).toBe(true);
    expect(el.get(top)!.term()).toBe(TERM_CATCH_UP_MAX + 1);
    for (const p of c.peers) expect(el.get(p)!.term()).toBe(TERM_CATCH_UP_MAX + 1);
  });

  it('members forged from one socket are one address: their far-ahead tags wait a second like a lone member', async () => {
    const { c, el, whole } = await setup(13, 3);
    expect(c.rt.runUntilTrue(whole, 3_000)).toBe(true);
    const r = await rogue(c.net, '5151515151515151', 'a');
    const far = 3 * TERM_STEP_MAX;
    const publish = (ms: number) => {
      for (let t = 0; t < ms; t += 200) {
        for (const as of ['5151515151515151', '5252525252525252', '5353535353535353'])
          for (const p of c.peers) r.send(p.address, 'hb', { g: { coord: false, term: far } }, as);
        c.rt.runFor(200);
      }
    };
    publish(800);
    for (const p of c.peers) expect(el.get(p)!.term()).toBeLessThan(TERM_STEP_MAX);
    publish(600);
    for (const p of c.peers) expect(el.get(p)!.term()).toBeGreaterThan(far);
    expect(whole()).toBe(true);
  });

  it('an observer does not show a member whose tags claim a term past the safe range as coordinator', async () => {
    const { c, top, whole } = await setup(9, 3);
    expect(c.rt.runUntilTrue(whole, 3_000)).toBe(true);
    const r = await rogue(c.net);
    const obs = await c.add('observer', { observer: true });
    c.rt.runFor(50);
    r.broadcast('hb', { g: { prio: PRIORITY_MAX, coord: true, term: Number.MAX_SAFE_INTEGER } });
    c.rt.runFor(5);
    expect(obs.node.membership.get(r.id)).toBeDefined();
    expect(coordinatorFromTags(obs.node.membership.list())).toBe(top.node.id);
    expect(c.rt.runUntilTrue(whole, 1_000)).toBe(true);
  });

  it.each([
    ['a lower-ranked candidate', 1, 0],
    ['a lower-ranked candidate', 2, 0],
    ['a lower-ranked candidate', 3, 0.1],
    ['a lower-ranked candidate', 4, 0.1],
    ['a member that never stands', 5, 0],
    ['a member that never stands', 6, 0],
    ['a member that never stands', 7, 0.1],
    ['a member that never stands', 8, 0.1],
  ] as const)(
    'a stranger that claims to lead %s alone, nearly a step ahead, does not keep it apart, seed %i, loss %d',
    async (kind, seed, loss) => {
      const { c, el, top, whole } = await setup(seed, 4, { loss });
      if (kind === 'a member that never stands') await c.add('follower');
      expect(c.rt.runUntilTrue(whole, 3_000)).toBe(true);
      const victim = c.peers.find((p) =>
        kind === 'a member that never stands' ? p.name === 'follower' : p !== top,
      )!;
      // The stranger becomes a member of the victim's view alone and claims, to it alone, a term
      // nearly a full step ahead. Nobody else hears of that term but from the victim's tags.
      const r = await rogue(c.net, '5151515151515151', 'stranger');
      c.net.setLink(r.address, victim.address, { loss: 0 }); // its two datagrams arrive; all else is lossy
      r.send(victim.address, 'hb', { g: {} });
      expect(c.rt.runUntilTrue(() => victim.node.membership.get(r.id) !== undefined, 10)).toBe(true);
      const forged = el.get(victim)!.term() + TERM_STEP_MAX - 1;
      r.send(victim.address, 'el.coord', { term: forged, prio: PRIORITY_MAX });
      expect(c.rt.runUntilTrue(() => el.get(victim)!.coordinator() === r.id, 10)).toBe(true);
      expect(el.get(victim)!.term()).toBe(forged);
      // Within twice the detection time (by then the silent stranger is dead to the victim), all
      // follow the top peer again in one term, above the forged one: terms a peer follows only rise.
      const oneTerm = () => c.peers.every((p) => el.get(p)!.term() === el.get(top)!.term());
      recoversAndHolds(
        c,
        () => whole() && oneTerm(),
        () => el.get(top)!.term() > forged,
      );
    },
  );

  it.each([
    [1, 0],
    [2, 0],
    [3, 0.1],
    [4, 0.1],
  ] as const)(
    'a member pushed several steps ahead by claims sent to it alone is followed again, seed %i, loss %d',
    async (seed, loss) => {
      const { c, el, top, whole } = await setup(seed, 4, { loss });
      expect(c.rt.runUntilTrue(whole, 3_000)).toBe(true);
      const victim = c.peers.find((p) => p !== top)!;
      const r = await rogue(c.net, '5151515151515151', 'stranger');
      c.net.setLink(r.address, victim.address, { loss: 0 });
      r.send(victim.address, 'hb', { g: {} });
      expect(c.rt.runUntilTrue(() => victim.node.membership.get(r.id) !== undefined, 10)).toBe(true);
      // Three claims in a few ms, each within the step of the last: before its tags (sent every
      // 200 ms) show the first, the victim is beyond the step of every other member.
      let forged = el.get(victim)!.term();
      for (let i = 0; i < 3; i++) {
        forged += TERM_STEP_MAX - 1;
        r.send(victim.address, 'el.coord', { term: forged, prio: PRIORITY_MAX });
        expect(c.rt.runUntilTrue(() => el.get(victim)!.term() === forged, 10)).toBe(true);
      }
      const oneTerm = () => c.peers.every((p) => el.get(p)!.term() === el.get(top)!.term());
      recoversAndHolds(
        c,
        () => whole() && oneTerm(),
        () => el.get(top)!.term() > forged,
      );
    },
  );
});
