/**
 * Choosing and checking the network settings a peer runs with. Everything here fails with one
 * clear sentence that says what to pass instead.
 */
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import dns from 'node:dns/promises';
import { JOIN_SEEDS_MAX } from '../p2p/join/index.js';
import { formatAddress, type Address } from '../p2p/transport/transport.js';

export class UsageError extends Error {
  override name = 'UsageError';
}

/** IPv4 addresses of this machine's interfaces, by interface name. */
export function localIPv4(): Array<{ iface: string; address: string }> {
  const out: Array<{ iface: string; address: string }> = [];
  for (const [iface, addrs] of Object.entries(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4') out.push({ iface, address: a.address });
  }
  return out;
}

/** The interface of the default route, from the kernel's routing table (Linux). */
export function defaultRouteInterface(): string | undefined {
  let table: string;
  try {
    table = fs.readFileSync('/proc/net/route', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of table.split('\n').slice(1)) {
    const [iface, destination, , , , , , mask] = line.trim().split(/\s+/);
    if (destination === '00000000' && mask === '00000000') return iface;
  }
  return undefined;
}

/** Resolves --interface: an IPv4 address of this machine, or the default route's address. */
export function resolveInterface(requested: string | undefined): string {
  const locals = localIPv4();
  const known = locals.map((l) => `${l.address} (${l.iface})`).join(', ') || 'none';
  if (requested) {
    if (net.isIPv4(requested)) {
      if (!locals.some((l) => l.address === requested))
        throw new UsageError(
          `--interface ${requested} is not an address of this machine; use one of: ${known}`,
        );
      return requested;
    }
    // An interface name is accepted too: its first IPv4 address.
    const byName = locals.find((l) => l.iface === requested);
    if (byName) return byName.address;
    throw new UsageError(
      `--interface ${requested} is neither an IPv4 address nor an interface name of this machine; use one of: ${known}`,
    );
  }
  const iface = defaultRouteInterface();
  const address = iface && locals.find((l) => l.iface === iface)?.address;
  if (!address)
    throw new UsageError(
      `no default route to pick an interface from; pass --interface with one of: ${known}`,
    );
  return address;
}

export function checkGroup(group: string): string {
  if (!net.isIPv4(group))
    throw new UsageError(
      `--group ${group} is not an IPv4 address; use a multicast address such as 239.255.77.77`,
    );
  const first = Number(group.split('.')[0]);
  if (first < 224 || first > 239)
    throw new UsageError(
      `--group ${group} is not a multicast address (224.0.0.0 to 239.255.255.255); 239.255.x.x is for local use`,
    );
  return group;
}

/** A `--join` seed as given: an IPv4 address or a host name, and a port. */
export interface JoinSeed {
  host: string;
  port: number;
}

/** A host name as DNS takes it: labels of letters, digits and hyphens, dot-separated. */
const HOST_NAME_RE =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

/**
 * Parses `--join` values (each may hold several, comma-separated, as PEER_JOIN does): HOST or
 * HOST:PORT, the port defaulting to `port` (the group port: a host's door, udp.ts).
 */
export function parseJoin(values: string | readonly string[], port: number): JoinSeed[] {
  const seeds: JoinSeed[] = [];
  // oclif hands a multiple flag set by its environment variable over as one string.
  for (const raw of [values].flat().flatMap((v) => v.split(','))) {
    const value = raw.trim();
    if (value === '') continue;
    const colon = value.lastIndexOf(':');
    const host = colon < 0 ? value : value.slice(0, colon);
    const portText = colon < 0 ? null : value.slice(colon + 1);
    if (host.includes(':') || host.startsWith('['))
      throw new UsageError(`--join ${value}: IPv6 is not supported; use an IPv4 address or a host name`);
    if (!net.isIPv4(host) && !HOST_NAME_RE.test(host))
      throw new UsageError(
        `--join ${value}: '${host}' is neither an IPv4 address nor a host name; use HOST or HOST:PORT`,
      );
    const p = portText === null ? port : Number(portText);
    if (!/^\d{1,5}$/.test(portText ?? '1') || !Number.isInteger(p) || p < 1 || p > 65535)
      throw new UsageError(
        `--join ${value}: the port must be a number from 1 to 65535; use HOST or HOST:PORT`,
      );
    if (!seeds.some((s) => s.host === host && s.port === p)) seeds.push({ host, port: p });
  }
  if (seeds.length > JOIN_SEEDS_MAX)
    throw new UsageError(`--join names ${seeds.length} seeds; give at most ${JOIN_SEEDS_MAX}`);
  return seeds;
}

/**
 * The addresses of seeds: IPv4 addresses as they are, host names looked up (IPv4). With `strict`
 * (at start) a name that does not resolve is an error; later (names are looked up again every
 * SEED_RESOLVE_INTERVAL_MS, startPeer) it is skipped and the caller keeps what it had.
 */
/** Why a name did not resolve, in words rather than the resolver's code. */
function unresolved(err: unknown): string {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'ENOTFOUND':
      return 'no such name';
    case 'EAI_AGAIN':
      return 'the name could not be looked up now (no DNS server answered)';
    default:
      return `the name does not resolve (${(err as Error).message})`;
  }
}

export async function resolveSeeds(seeds: readonly JoinSeed[], strict: boolean): Promise<Address[]> {
  const out: Address[] = [];
  for (const s of seeds) {
    if (net.isIPv4(s.host)) {
      out.push(formatAddress(s.host, s.port));
      continue;
    }
    try {
      const { address } = await dns.lookup(s.host, { family: 4 });
      out.push(formatAddress(address, s.port));
    } catch (err) {
      if (strict)
        throw new UsageError(`--join ${s.host}: ${unresolved(err)}; check the name or give an IPv4 address`);
    }
  }
  return out;
}
