/**
 * Scale (issue 22), small enough for CI: a large group started all at once meets from one seed,
 * keeps its per-peer traffic within what today's failure detector costs, and a crash is seen by
 * every survivor within membership's bound. The full measure (1,000 peers, 10 virtual minutes at
 * 10 % loss) is `npm run bench -- scale`.
 *
 * Today every peer heartbeats every member: per peer, HEARTBEATS_PER_S datagrams by multicast
 * whatever N, or as many times N-1 unicast copies in a unicast-only group. SWIM probing (a slow
 * heartbeat regime above 32 members, probes to a few members per interval) should bring the
 * unicast bound down to a constant, independent of N; UNICAST_DATAGRAMS_PER_S_MAX and the unicast
 * group's size here are what it should lower and raise.
 */
import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import { SIM_DOOR_PORT } from '../../src/p2p/transport/sim.js';
import { parseAddress, type TransportMode } from '../../src/p2p/transport/transport.js';
import { REACH_REFRESH_MS } from '../../src/p2p/reach.js';

const P = PROFILES.lan;
const T = P.membership;
const HEARTBEATS_PER_S = 1000 / T.heartbeatIntervalMs;
/**
 * Group sizes: 200 by multicast; unicast-only, every heartbeat is N-1 datagrams, so 200 such
 * peers cost the simulator four times 100 (a minute of CPU on a loaded 2-core runner).
 */
const CASES: Array<[TransportMode, number]> = [
  ['multicast', 200],
  ['unicast', 100],
];
/** From every peer started at once to every peer holding every other alive (and in its fan-out). */
const CONVERGE_MS = 5_000;
const CONVERGE_STEP_MS = 100;
/** Once converged: the last syncs and reach statements end, then traffic is counted. */
const SETTLE_MS = 1_000;
/** A whole period of reach's restatements (REACH_REFRESH_MS), which come every other second. */
const TRAFFIC_MS = REACH_REFRESH_MS;
/** Silence to `dead` (membership's bound), plus a little for the deadline tick. */
const DETECT_MS = T.deadAfterMs + 300;
/**
 * Datagrams a peer sends per second, once converged. By multicast: its heartbeats, one copy each
 * whatever N (5 measured at 200), plus a little for answers. Unicast-only, per member: its
 * heartbeats, reach's restatement of "your multicast does not reach me" every REACH_REFRESH_MS and
 * the answer to the member's own (1 a second: 6 measured at 50 and at 100), and a margin for the
 * last hellos and list exchanges this soon after meeting (7 measured at 100 over a 1 s window).
 */
const MULTICAST_DATAGRAMS_PER_S_MAX = HEARTBEATS_PER_S + 1;
const UNICAST_DATAGRAMS_PER_S_MAX = (n: number) => (HEARTBEATS_PER_S + 2) * (n - 1);

/** About 5 virtual seconds of a group this size: 10 s of CPU on a quiet 2-core machine, more on a busy one. */
const TEST_TIMEOUT_MS = 120_000;

const doorOf = (p: SimPeer) => `${parseAddress(p.address).host}:${SIM_DOOR_PORT}`;

/** A seed holding its door, then n-1 peers at the same instant: unicast-only ones given only the seed. */
async function group(mode: TransportMode, n: number) {
  const deaths: Array<{ by: string; id: string; at: number }> = [];
  const c: SimCluster = new SimCluster(1, { loss: 0, delayMaxMs: 2 }, P, (node, peer) =>
    node.on((e) => e.kind === 'dead' && deaths.push({ by: peer.name, id: e.member.id, at: c.rt.now() })),
  );
  const seed = await c.add('s0', {}, { mode }, { door: true });
  const join = mode === 'unicast' ? { seeds: [doorOf(seed)], hello: false } : {};
  for (let i = 1; i < n; i++) await c.add(`s${i}`, {}, { mode }, join);
  return { c, deaths };
}

/** Runs until converged, checking every CONVERGE_STEP_MS (a check looks at every pair); false after `withinMs`. */
function converge(c: SimCluster, withinMs: number): boolean {
  for (let t = 0; t < withinMs; t += CONVERGE_STEP_MS) {
    c.rt.runFor(CONVERGE_STEP_MS);
    if (c.converged()) return true;
  }
  return false;
}

describe('a large group in the simulator (issue 22)', () => {
  it.each(CASES)(
    '%s: %i peers meet from one seed, send within the bound, and all see a crash',
    async (mode, n) => {
      const { c, deaths } = await group(mode, n);
      expect(converge(c, CONVERGE_MS)).toBe(true);

      c.rt.runFor(SETTLE_MS);
      const before = c.peers.map((p) => p.node.stats.datagramsOut);
      c.rt.runFor(TRAFFIC_MS);
      const perS = c.peers.map((p, i) => (p.node.stats.datagramsOut - before[i]!) / (TRAFFIC_MS / 1000));
      const bound = mode === 'unicast' ? UNICAST_DATAGRAMS_PER_S_MAX(n) : MULTICAST_DATAGRAMS_PER_S_MAX;
      expect(Math.max(...perS)).toBeLessThanOrEqual(bound);
      // Each peer heartbeats every member: not idle by doing nothing.
      expect(Math.min(...perS)).toBeGreaterThanOrEqual(
        (HEARTBEATS_PER_S - 1) * (mode === 'unicast' ? n - 1 : 1),
      );

      const victim = c.peers[n >> 1]!;
      const survivors = c.peers.filter((p) => p !== victim);
      const at = c.rt.now();
      await c.crash(victim);
      const seenBy = () => new Set(deaths.filter((d) => d.id === victim.node.id).map((d) => d.by));
      expect(c.rt.runUntilTrue(() => seenBy().size === survivors.length, DETECT_MS)).toBe(true);
      expect(Math.max(...deaths.map((d) => d.at - at))).toBeLessThanOrEqual(DETECT_MS);
      // Nobody else was ever declared dead.
      expect(deaths.filter((d) => d.id !== victim.node.id)).toEqual([]);
      expect(c.handlerErrors()).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});
