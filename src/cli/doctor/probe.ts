/**
 * Does anybody answer? A peer in observer mode (as `peer peers` runs) probes the group, and syncs
 * with the `--join` seeds as a one-shot command does (`ms.sync`, read-only: an observer is never
 * added as a member and writes no remembered peer); members answer at once by unicast. What it
 * records serves three checks: `peers answer` (the group), `seeds answer` (the seeds) and the
 * `network` verdict (network.ts), which compares whom the seeds list with whom we hear on the
 * group. It also counts what explains silence: datagrams sealed with another key or sent in the
 * clear, and peers speaking another protocol version.
 */
import { startPeer, type NetworkSettings } from '../peer.js';
import type { PeerId } from '../../p2p/wire.js';
import type { Address } from '../../p2p/transport/transport.js';
import type { MemberView } from '../../p2p/protocol.js';
import type { CheckResult } from './checks.js';

/**
 * Default wait for answers: a probe is answered in a round trip, and 2 s holds 2 or 3 of each
 * member's heartbeats on lan (every 750 ms; 8 on local), which tell whether multicast reaches us.
 */
export const PROBE_WAIT_MS = 2000;

/** A `--join` seed as the user gave it (`host:port`), and its address once resolved. */
export interface DoctorSeed {
  given: string;
  address?: Address;
  /** Why it has no address (a name that does not resolve). */
  error?: string;
  /** Not given: a peer this data dir remembers (doctor without --join). */
  remembered?: boolean;
}

/** What one seed answered: how many members it counts, and the ids its pages listed. */
export interface SeedAnswer {
  total: number;
  listed: Set<PeerId>;
}

export interface Observation {
  waitMs: number;
  /** Live members at the end of the wait. */
  live: MemberView[];
  /** Those of them whose multicast reached us (reach.ts `weHear`). */
  heardOnGroup: MemberView[];
  /** Answers by seed address. */
  seeds: Map<Address, SeedAnswer>;
  otherKey: number;
  clear: number;
  version: number;
}

export async function observeGroup(settings: NetworkSettings, waitMs = PROBE_WAIT_MS): Promise<Observation> {
  const seeds = new Map<Address, SeedAnswer>();
  const peer = await startPeer(settings, {
    observer: true,
    install: (node) =>
      node.join.onSeedPage((seed, page) => {
        const answer = seeds.get(seed) ?? { total: 0, listed: new Set<PeerId>() };
        answer.total = page.total;
        for (const h of page.hints) answer.listed.add(h.id);
        seeds.set(seed, answer);
      }),
  });
  try {
    await new Promise((r) => setTimeout(r, waitMs));
    const live = peer.node.membership.live();
    const dropped = peer.security.secure?.stats.dropped;
    return {
      waitMs,
      live,
      heardOnGroup: live.filter((m) => peer.node.reach.weHear(m.id) === true),
      seeds,
      otherKey: (dropped?.key ?? 0) + (dropped?.auth ?? 0),
      clear: dropped?.plaintext ?? 0,
      version: peer.node.stats.dropped.version,
    };
  } finally {
    await peer.stop();
  }
}

/** Datagrams that explain silence: another key, no key, another version; undefined if none came. */
function silenceExplained(o: Observation, keyFile: string | undefined): CheckResult | undefined {
  if (o.otherKey > 0)
    return {
      id: 'peers',
      title: 'peers answer',
      status: 'fail',
      detail: `${o.otherKey} datagram(s) arrived sealed with a key not in ${keyFile}`,
      fix: 'give every peer the same key file (or add their key to yours: rotation, docs/security.md)',
    };
  if (o.clear > 0)
    return {
      id: 'peers',
      title: 'peers answer',
      status: 'fail',
      detail: `${o.clear} unencrypted datagram(s) arrived: those peers run without --key-file`,
      fix: 'give every peer the same --key-file, or run this one without it',
    };
  if (o.version > 0)
    return {
      id: 'peers',
      title: 'peers answer',
      status: 'fail',
      detail: `${o.version} datagram(s) from peers speaking another protocol version`,
      fix: 'run the same peer version on every machine',
    };
  return undefined;
}

export function checkPeersAnswer(o: Observation, settings: NetworkSettings): CheckResult {
  if (o.live.length > 0) {
    const names = o.live.map((m) => `${m.name} (${m.address})`).join(', ');
    return {
      id: 'peers',
      title: 'peers answer',
      status: 'pass',
      detail: `${o.live.length} answered within ${o.waitMs} ms: ${names}`,
    };
  }
  return (
    silenceExplained(o, settings.keys?.file) ?? {
      id: 'peers',
      title: 'peers answer',
      status: 'warn',
      detail: `no peer answered within ${o.waitMs} ms on ${settings.group}:${settings.port} via ${settings.interface}`,
      fix: 'if peers should be running: same --group/--port/--interface subnet on all, UDP port open in their firewalls, and on managed switches IGMP snooping needs a querier; or start one: peer up',
    }
  );
}

/** Whether every seed answered (pass), some (warn) or none (fail). */
export function checkSeedsAnswer(
  o: Observation | null,
  seeds: readonly DoctorSeed[],
  settings: { port: number; keyFile?: string },
): CheckResult {
  const remembered = seeds.length > 0 && seeds.every((s) => s.remembered);
  const title = remembered ? 'remembered peers answer' : 'seeds answer';
  const said = seeds.map((s) => {
    const a = s.address === undefined ? undefined : o?.seeds.get(s.address);
    if (a) return `${s.given} answered (${a.total} member(s))`;
    return `${s.given} ${s.error ?? 'did not answer'}`;
  });
  const answered = seeds.filter((s) => s.address !== undefined && o?.seeds.has(s.address)).length;
  const detail = `${remembered ? 'peers this data dir remembers (no --join given): ' : ''}${said.join('; ')}${o ? ` (waited ${o.waitMs} ms)` : ''}`;
  if (answered === seeds.length) return { id: 'seeds', title, status: 'pass', detail };
  // Peers met once may have stopped or moved since: one that answers is enough.
  if (remembered && answered > 0) return { id: 'seeds', title, status: 'pass', detail };
  if (remembered)
    return {
      id: 'seeds',
      title,
      status: 'warn',
      detail: `${detail}: they may have stopped or moved since`,
      fix: 'if the group runs beyond this subnet, pass --join HOST of a running peer',
    };
  const why = o && silenceExplained(o, settings.keyFile);
  const fix =
    why?.fix ??
    `check that a peer runs there (peer up: the first one on a host answers on its group port, ${settings.port} unless it was given another --port), that the address is right, and that its firewall and the routers between let UDP to that port through`;
  return {
    id: 'seeds',
    title,
    status: answered > 0 ? 'warn' : 'fail',
    detail: why ? `${detail}; ${why.detail}` : detail,
    fix,
  };
}
