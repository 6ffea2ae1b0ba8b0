/**
 * What the election tells its node (and so `peer up`'s log): when a coordinator wins again in a
 * higher term, `coordinator-changed` carries the new term even though the person did not change
 * (before, the coordinator's own log stayed at its first term while its followers moved on).
 */
import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import { Election } from '../../src/p2p/election.js';

const P = PROFILES.lan;
const SEEDS = Array.from({ length: 12 }, (_, i) => i + 1);

/** The (coordinator, term) a peer's events last announced. */
function announced(p: SimPeer): { coordinator: string | null; term: number } | undefined {
  const last = p.events.filter((e) => e.kind === 'coordinator-changed').at(-1);
  return last && { coordinator: last.coordinator, term: last.term };
}

describe('election events', () => {
  it.each(SEEDS)(
    'after a heal the top wins a new term, and every peer, the top itself included, announces that term, seed %i',
    async (seed) => {
      const el = new Map<SimPeer, Election>();
      const prio: Record<string, number> = { low: 1, mid: 2, top: 3 };
      const c = new SimCluster(seed, { delayMaxMs: 2 }, P, (node, peer) => {
        el.set(
          peer,
          node.install(
            (ctx, n) => new Election(ctx, n.membership, { timings: P.election, priority: prio[peer.name]! }),
          ),
        );
      });
      const low = await c.add('low');
      const mid = await c.add('mid');
      const top = await c.add('top');
      const all = [low, mid, top];
      const agree = () => all.every((p) => el.get(p)!.coordinator() === top.node.id);
      expect(c.rt.runUntilTrue(agree, 3_000)).toBe(true);
      const before = el.get(top)!.term();
      // mid alone elects itself; after the heal top must bully it with a higher term.
      c.net.partition([top.address, low.address], [mid.address]);
      expect(c.rt.runUntilTrue(() => el.get(mid)!.isCoordinator(), 5_000)).toBe(true);
      c.heal();
      expect(c.rt.runUntilTrue(() => agree() && el.get(top)!.term() > before, 5_000)).toBe(true);
      c.rt.runFor(2_000);
      const term = el.get(top)!.term();
      for (const p of all) {
        expect(el.get(p)!.term()).toBe(term);
        expect(announced(p)).toEqual({ coordinator: top.node.id, term });
      }
      expect(c.handlerErrors()).toEqual([]);
    },
  );
});
