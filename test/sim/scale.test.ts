/**
 * Scale (issue 22), small enough for CI: a large group started all at once meets from one seed,
 * each peer sends a bounded number of datagrams a second whatever N, and a crash is seen by every
 * survivor. The full measure (1,000 peers, 10 virtual minutes at 10 % loss) is
 * `npm run bench -- scale`.
 *
 * Above HEARTBEAT_FANOUT_MAX members a unicast-only peer heartbeats nobody by unicast, and above
 * REGIME_SLOW_ABOVE_MEMBERS a multicast group heartbeats slowly: members are probed (SWIM, one
 * probe per PROBE_INTERVAL_MS, relayed through INDIRECT_PROBES members when unanswered), and
 * reach restates "your multicast does not reach me" at a pace that stretches with N. So a peer's
 * datagrams per second do not depend on N: the same bound holds at 50 and at 100 unicast-only.
 */
import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import { SIM_DOOR_PORT } from '../../src/p2p/transport/sim.js';
import { parseAddress, type TransportMode } from '../../src/p2p/transport/transport.js';
import { REACH_REFRESH_MS, reachRefreshMs } from '../../src/p2p/reach.js';
import { PROBE_INTERVAL_MS } from '../../src/p2p/swim.js';

const P = PROFILES.lan;
/** Group sizes: 200 by multicast; 50 and 100 unicast-only (100 unicast-only peers meeting from one seed cost about as much CPU as 200 by multicast). */
const CASES: Array<[TransportMode, number]> = [
  ['multicast', 200],
  ['unicast', 50],
  ['unicast', 100],
];
/** From every peer started at once to every peer holding every other alive (and in its fan-out). */
const CONVERGE_MS = 5_000;
const CONVERGE_STEP_MS = 100;
/** Once converged: the last syncs and reach statements end, then traffic is counted. */
const SETTLE_MS = 10_000;
/**
 * Traffic is counted over several of reach's smallest refresh periods (REACH_REFRESH_MS), and
 * unicast-only over one whole period of its restatements at least (reachRefreshMs): the group met
 * at once, so they come in one burst a period later, which a shorter window may miss.
 */
const trafficMs = (mode: TransportMode, n: number): number =>
  Math.max(3 * REACH_REFRESH_MS, mode === 'unicast' ? reachRefreshMs(n - 1) : 0);
/**
 * From the crash to every survivor's `dead`: the first probe of the victim (about N probes a second
 * land on it in all, one per PROBE_INTERVAL_MS from each peer), the relays' probes, suspicions
 * spread by piggyback and confirmed by three members, then Lifeguard's suspicion timeout, which
 * grows with log N (swim.ts). Measured with this seed: 200 by multicast p50 5.2 s, p99 7.0 s,
 * max 8.4 s; 100 unicast-only max 4.1 s; 50 max 1.4 s. A margin over the slowest.
 */
const DETECT_MS = 12_000;
/**
 * Datagrams a peer sends per second once converged, whatever N: its probes and the relays it is
 * asked for (about 1000 / PROBE_INTERVAL_MS each), its acks, slow heartbeats and reach's
 * restatements. Measured (the busiest peer over the window): 12.5 by multicast at 200, 20.9
 * unicast-only at 50 and 20.6 at 100 (11.3 and 17.3 over a window that missed the restatements).
 */
const DATAGRAMS_PER_S_MAX = 30;
/**
 * Reach entries a tick looks at, on average over the window, as a share of the n - 1 it looked at
 * every time before it kept track. Measured, in entries: 5.8 at 200 by multicast (scans on members'
 * deadlines), 1.6 unicast-only at both 50 and 100.
 */
const REACH_EXAMINED_SHARE_MAX = 0.1;
/** Not quiet by doing nothing: each peer probes someone every PROBE_INTERVAL_MS. */
const DATAGRAMS_PER_S_MIN = 1000 / PROBE_INTERVAL_MS;

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
      const looked = () => c.peers.reduce((a, p) => a + p.node.reach.stats.examined, 0);
      const ticks = () => c.peers.reduce((a, p) => a + p.node.stats.ticks, 0);
      const [looked0, ticks0] = [looked(), ticks()];
      const windowMs = trafficMs(mode, n);
      c.rt.runFor(windowMs);
      const perS = c.peers.map((p, i) => (p.node.stats.datagramsOut - before[i]!) / (windowMs / 1000));
      expect(Math.max(...perS)).toBeLessThanOrEqual(DATAGRAMS_PER_S_MAX);
      expect(Math.min(...perS)).toBeGreaterThanOrEqual(DATAGRAMS_PER_S_MIN);
      // A tick looks at the members heard since the last one, and at all only on a deadline: not
      // at all n - 1 every time (per datagram, that was most of a large group's CPU).
      const perTick = (looked() - looked0) / (ticks() - ticks0);
      expect(perTick).toBeLessThan((n - 1) * REACH_EXAMINED_SHARE_MAX);

      const victim = c.peers[n >> 1]!;
      const survivors = c.peers.filter((p) => p !== victim);
      await c.crash(victim);
      const seenBy = () => new Set(deaths.filter((d) => d.id === victim.node.id).map((d) => d.by));
      expect(c.rt.runUntilTrue(() => seenBy().size === survivors.length, DETECT_MS)).toBe(true);
      // Nobody else was ever declared dead.
      expect(deaths.filter((d) => d.id !== victim.node.id)).toEqual([]);
      expect(c.handlerErrors()).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});
