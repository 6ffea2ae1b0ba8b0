/**
 * The doctor's `network` verdict: which case this host is in, and the `--join` line to use.
 *
 *   case               when                                                    status
 *   multicast          the round trip works and members are heard on the group PASS (WARN when seeds
 *                                                                              list members not heard
 *                                                                              on it: keep --join)
 *   unicast-seeds      the round trip works, the group is silent, a seed       WARN, with the line
 *                      answered by unicast
 *   multicast-blocked  our own multicast does not come back in through this   FAIL
 *                      host (a firewall drops it on input)
 *   unicast-only       --transport unicast and a seed answered                 PASS, with the line
 *   alone              nothing answers: neither the group nor a seed           WARN without seeds,
 *                                                                              FAIL with seeds given
 * The line names the seeds that answered, as the user gave them.
 */
import net from 'node:net';
import { localIPv4, parseJoin, resolveSeeds, UsageError } from '../network.js';
import { readRememberedAddresses } from '../../storage/store.js';
import { REJOIN_CANDIDATES_MAX } from '../../p2p/join/index.js';
import { parseAddress } from '../../p2p/transport/transport.js';
import { databaseFiles } from './checks.js';
import type { PeerId } from '../../p2p/wire.js';
import type { CheckResult } from './checks.js';
import type { DoctorSeed, Observation } from './probe.js';

export const NETWORK_CASES = [
  'multicast',
  'unicast-seeds',
  'multicast-blocked',
  'unicast-only',
  'alone',
] as const;
export type NetworkCase = (typeof NETWORK_CASES)[number];

/** The verdict in `--json`: the case, and the command line to use (null when none is needed). */
export interface NetworkVerdict {
  case: NetworkCase;
  joinLine: string | null;
}

/**
 * The `--join` values as given, each resolved to an address. A value that is not HOST[:PORT] is
 * bad input (UsageError: exit 2); a name that does not resolve is one of the doctor's findings.
 */
export async function doctorSeeds(values: readonly string[], port: number): Promise<DoctorSeed[]> {
  const out: DoctorSeed[] = [];
  for (const s of parseJoin(values, port)) {
    const given = `${s.host}:${s.port}`;
    try {
      const [address] = await resolveSeeds([s], true);
      out.push({ given, address });
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      out.push({ given, error: 'does not resolve (check the name, or give an IPv4 address)' });
    }
  }
  return out;
}

/**
 * Without --join, the peers this data dir's databases remember (read-only): `peer up` tries them at
 * start, so they are this host's seeds. At most REJOIN_CANDIDATES_MAX, as `peer up` tries; an
 * address that is not IPv4:PORT (the file is hostile until checked) is left out.
 */
export function rememberedSeeds(dataDir: string, name: string | undefined): DoctorSeed[] {
  const out = new Map<string, DoctorSeed>();
  for (const file of databaseFiles(dataDir, name)) {
    for (const address of readRememberedAddresses(file, REJOIN_CANDIDATES_MAX)) {
      const { host, port } = parseAddress(address);
      if (!net.isIPv4(host) || !Number.isInteger(port) || port < 1 || port > 65535) continue;
      const canonical = `${host}:${port}`;
      if (out.size < REJOIN_CANDIDATES_MAX)
        out.set(canonical, { given: canonical, address: canonical, remembered: true });
    }
  }
  return [...out.values()];
}

export interface NetworkInputs {
  group: string;
  port: number;
  /** The interface address multicast uses. */
  address: string;
  roundTripOk: boolean;
  /** --transport unicast: no multicast is tried, the seeds are the only way in. */
  unicastOnly?: boolean;
  /** The observer's findings; null when it could not run. */
  observed: Observation | null;
  seeds: readonly DoctorSeed[];
}

export function checkNetwork(n: NetworkInputs): { check: CheckResult; verdict: NetworkVerdict } {
  const answered = n.seeds.filter((s) => s.address !== undefined && n.observed?.seeds.has(s.address));
  // Seeds the data dir remembers, not given: their silence is no failure (they may be gone).
  const remembered = n.seeds.length > 0 && n.seeds.every((s) => s.remembered);
  const joins = answered.map((s) => `--join ${s.given}`).join(' ');
  const exportLine = `export PEER_JOIN=${answered.map((s) => s.given).join(',')}`;
  const first = answered[0]?.given;
  const on = `${n.group}:${n.port}`;
  const make = (
    c: NetworkCase,
    status: CheckResult['status'],
    detail: string,
    fix: string | undefined,
    joinLine: string | null,
  ) => ({
    check: {
      id: 'network',
      title: 'network',
      status,
      detail,
      ...(fix === undefined ? {} : { fix }),
    },
    verdict: { case: c, joinLine },
  });
  if (n.unicastOnly) {
    if (answered.length === 0)
      return make(
        'alone',
        'fail',
        n.seeds.length === 0
          ? 'with --transport unicast this host finds no one by itself, and no seed was given'
          : `with --transport unicast the seeds are the only way in, and none answered (${n.seeds.map((s) => s.given).join(', ')})`,
        n.seeds.length === 0
          ? 'pass --join HOST of a running peer (or: export PEER_JOIN=HOST)'
          : 'start a peer there (peer up) or check the seeds: see the seeds check above',
        null,
      );
    const total = Math.max(...answered.map((s) => n.observed!.seeds.get(s.address!)!.total));
    const line = `peer up --transport unicast ${joins}`;
    return make(
      'unicast-only',
      'pass',
      `unicast only (--transport unicast, no multicast tried): ${answered.map((s) => s.given).join(', ')} answered (${total} member(s))`,
      undefined,
      line,
    );
  }
  if (!n.roundTripOk) {
    const iface = localIPv4().find((l) => l.address === n.address)?.iface ?? '?';
    const line = `peer up --transport unicast ${joins || '--join HOST'}`;
    return make(
      'multicast-blocked',
      'fail',
      `multicast is blocked on this interface (${n.address}, ${iface}): a datagram to ${on} does not come back in through this host${first ? `; ${first} answered by unicast` : ''}`,
      `allow UDP to ${on} in (nft/iptables), or run without multicast: ${line}`,
      answered.length > 0 ? line : null,
    );
  }
  const heard = n.observed?.heardOnGroup ?? [];
  if (heard.length > 0) {
    const heardIds = new Set<PeerId>(heard.map((m) => m.id));
    const onlyUnicast = new Set<PeerId>();
    for (const s of answered)
      for (const id of n.observed!.seeds.get(s.address!)!.listed) if (!heardIds.has(id)) onlyUnicast.add(id);
    const works = `multicast works: ${heard.length} peer(s) heard on ${on}`;
    if (onlyUnicast.size === 0)
      return make(
        'multicast',
        'pass',
        n.seeds.length > 0
          ? `${works}, every member the ${remembered ? 'remembered peers' : 'seeds'} list among them`
          : `${works}; no --join needed for them`,
        undefined,
        null,
      );
    const line = `peer up ${joins}`;
    return make(
      'multicast',
      'warn',
      `${works}; ${onlyUnicast.size} member(s) listed by ${answered.map((s) => s.given).join(', ')} answer only by unicast (another subnet, or multicast dropped on the way)`,
      `keep the seeds: ${line}   (or: ${exportLine})`,
      line,
    );
  }
  if (answered.length > 0) {
    const total = Math.max(...answered.map((s) => n.observed!.seeds.get(s.address!)!.total));
    const line = `peer up ${joins}`;
    const who = `${remembered ? 'remembered peer(s) ' : ''}${answered.map((s) => s.given).join(', ')}`;
    return make(
      'unicast-seeds',
      'warn',
      `the group is silent here but ${who} answered by unicast (${total} member(s)): multicast does not reach this host from them (another subnet, a router, or a switch or Wi-Fi that drops multicast)`,
      remembered
        ? `peer up tries the peers it remembers, so it finds them; to keep finding them after they move, give a seed: ${line}   (or: ${exportLine})`
        : `${line}   (or: ${exportLine})`,
      line,
    );
  }
  if (n.seeds.length > 0 && !remembered)
    return make(
      'alone',
      'fail',
      `nothing answers: no peer on ${on} here, and no seed answered (${n.seeds.map((s) => s.given).join(', ')})`,
      'start a peer (peer up) or check the seeds: see the seeds check above',
      null,
    );
  return make(
    'alone',
    'warn',
    `no peer answered on ${on} here`,
    'if peers run on another subnet or a VPN: pass --join HOST of one of them; else start one: peer up',
    null,
  );
}
