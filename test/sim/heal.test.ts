/**
 * A partition healed with no seed in common (join/: re-contact of dead and remembered peers, then
 * the list exchange): two halves on two segments (no multicast between them), each with its own
 * seed, cut apart for longer than members are kept after their death, so each half has forgotten
 * the other but for its remembered peers. Once the cut heals, every peer meets every peer of the
 * other half again within HEAL_MS.
 */
import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import { SIM_DOOR_PORT } from '../../src/p2p/transport/sim.js';
import { parseAddress } from '../../src/p2p/transport/transport.js';
import { RECONNECT_INTERVAL_MS } from '../../src/p2p/join/index.js';

const P = PROFILES.lan;
const SEEDS = [1, 2, 3, 4, 5];
/** One reconnect interval to find the other half, then a few exchanges (the design allows 30 s). */
const HEAL_MS = 3 * RECONNECT_INTERVAL_MS;
const CUT_MS = P.membership.deadRetentionMs + 30_000;

const doorOf = (p: SimPeer) => `${parseAddress(p.address).host}:${SIM_DOOR_PORT}`;

/** `p` took `q` as live (joined, back alive, restarted) at or after `since`. */
const metSince = (p: SimPeer, q: SimPeer, since: number, at: Map<object, number>) =>
  p.events.some(
    (e) =>
      (e.kind === 'join' || e.kind === 'alive' || e.kind === 'restart') &&
      e.member.id === q.node.id &&
      (at.get(e) ?? 0) >= since,
  );

describe('partition heal with no common seed (simulation)', () => {
  it.each(SEEDS)('seed %i: halves that forgot each other meet again after the cut heals', async (seed) => {
    const at = new Map<object, number>();
    const c = new SimCluster(seed, { loss: 0.01, delayMaxMs: 2 }, P, (node) =>
      node.on((e) => at.set(e, c.rt.now())),
    );
    const s1 = await c.add('s1', {}, { segment: 0 }, { door: true, remember: true });
    const s2 = await c.add('s2', {}, { segment: 1 }, { door: true, remember: true });
    const both = [doorOf(s1), doorOf(s2)];
    const h1 = [s1];
    const h2 = [s2];
    for (let i = 0; i < 3; i++) {
      h1.push(await c.add(`a${i}`, {}, { segment: 0 }, { seeds: both, remember: true }));
      h2.push(await c.add(`b${i}`, {}, { segment: 1 }, { seeds: both, remember: true }));
    }
    s1.node.join.setSeeds(both);
    s2.node.join.setSeeds(both);
    const everyone = [...h1, ...h2];
    expect(
      c.rt.runUntilTrue(
        () => everyone.every((p) => everyone.every((q) => p === q || metSince(p, q, 0, at))),
        5000,
      ),
    ).toBe(true);
    c.rt.runFor(1000);
    // From now on each half knows only its own seed.
    for (const p of h1) p.node.join.setSeeds([doorOf(s1)]);
    for (const p of h2) p.node.join.setSeeds([doorOf(s2)]);
    c.net.partition(
      h1.map((p) => p.address),
      h2.map((p) => p.address),
    );
    c.rt.runFor(CUT_MS);
    // Each half has forgotten the other (past deadRetentionMs), remembered peers aside.
    for (const p of h1) for (const q of h2) expect(p.node.membership.get(q.node.id)).toBeUndefined();
    for (const p of h2) for (const q of h1) expect(p.node.membership.get(q.node.id)).toBeUndefined();
    c.net.heal();
    const healed = c.rt.now();
    const across = () =>
      h1.every((p) => h2.every((q) => metSince(p, q, healed, at) && metSince(q, p, healed, at)));
    expect(c.rt.runUntilTrue(across, HEAL_MS)).toBe(true);
    expect(c.handlerErrors()).toEqual([]);
  });
});
