/**
 * The security layers a CLI peer runs with, between its UDP transport and its node:
 *
 *   with a key:  UdpTransport -> SecureTransport -> PeerNode
 *   open group:  UdpTransport -> GuardedTransport (per-source rate limit) -> PeerNode
 *
 * With a key, the rate limits live inside SecureTransport and apply only to datagrams from senders
 * not yet authenticated: a per-source limit in front of everything would let a stranger silence a
 * member by flooding from the member's (spoofed) address. An open group has no way to tell a
 * member from a stranger, so it limits every source. Also here: the notices a user must see (the group is open; a key file is readable by
 * others; a peer on the group uses another key or none) and the counters of what was dropped and
 * why, which are per process: `peer up` prints its own on SIGUSR1 and on exit, `peer stats`
 * listens as an observer and prints what it dropped.
 */
import { GuardedTransport, type GuardStats, type RateGuard } from '../p2p/transport/guard.js';
import { Keyring } from '../p2p/transport/keyring.js';
import { SecureTransport, type SecureDropReason, type SecureStats } from '../p2p/transport/secure.js';
import type { Address, Transport } from '../p2p/transport/transport.js';
import type { NodeStats, PeerNode } from '../p2p/node.js';
import type { LocalHealth } from '../p2p/membership.js';
import { loadKeyFile } from './keyfile.js';
import { UsageError } from './network.js';

/** Sources named in "uses another key" notices per process: enough to diagnose, not to flood a terminal. */
export const DROP_NOTICES_MAX = 8;

export interface KeySettings {
  file: string;
  keys: Buffer[];
  warning: string | null;
}

/**
 * Reads and checks --key-file; null when none was given (an open group). `open` is --open (or
 * PEER_OPEN): the user says the group runs without a key on purpose, which a key file contradicts.
 */
export function keySettings(file: string | undefined, open = false): KeySettings | null {
  const none = file === undefined || file === '';
  if (open && !none)
    throw new UsageError(
      `--open (or PEER_OPEN) runs the group without a key, but --key-file (or PEER_KEY_FILE) gives ${file}; pass one of them`,
    );
  if (none) return null;
  return { file, ...loadKeyFile(file) };
}

/**
 * Whether this process has said that its group is open. Said once per process, however many peers
 * it starts (kv bench starts one per client): a warning repeated on every line is one nobody reads.
 */
let openNoticeSaid = false;

export interface SecurityLayers {
  /** What the node sends and receives through. */
  transport: Transport;
  /** Open group only: the per-source rate limit. */
  guard: GuardedTransport | null;
  /** Null when the group runs open. */
  secure: SecureTransport | null;
  keyFile: string | null;
  /** Re-reads the key file into the running keyring (SIGHUP); throws UsageError on a bad file. */
  reload(): { keyIds: string[]; warning: string | null };
  /** Prints the start-up notices (open group, key file mode); call once the peer is up, so a
   * command that fails to start prints its error alone. */
  announce(): void;
}

export interface SecurityOptions {
  /** The group runs open on purpose (--open, PEER_OPEN): no notice that it is open. */
  openOnPurpose?: boolean;
  /** Where notices go (default: stderr). */
  notify?: (line: string) => void;
}

/**
 * Keeps the open group's rate guard told which addresses are live members, which refill at the
 * member rate (guard.ts): a member's file transfer must not be throttled like a stranger's flood.
 * Any event about a member may change the set.
 */
export function guardFollowsMembers(guard: RateGuard, node: Pick<PeerNode, 'on' | 'membership'>): void {
  node.on((e) => {
    if ('member' in e) guard.setMembers(new Set(node.membership.live().map((m) => m.address)));
  });
}

export function securityLayers(
  udp: Transport,
  group: string,
  keys: KeySettings | null,
  opts: SecurityOptions = {},
): SecurityLayers {
  const notify = opts.notify ?? ((line: string) => process.stderr.write(`peer: ${line}\n`));
  if (!keys) {
    const guard = new GuardedTransport(udp, { now: () => performance.now() });
    return {
      transport: guard,
      guard,
      secure: null,
      keyFile: null,
      reload: () => ({ keyIds: [], warning: null }),
      announce: () => {
        if (opts.openOnPurpose || openNoticeSaid) return;
        openNoticeSaid = true;
        notify(
          `no --key-file: traffic on ${group} is neither encrypted nor authenticated (if intended, pass --open)`,
        );
      },
    };
  }
  const keyring = new Keyring(keys.keys);
  const noticed = new Set<string>();
  const onDrop = (reason: SecureDropReason, from: Address) => {
    const text =
      reason === 'plaintext'
        ? 'sends unencrypted datagrams (no --key-file?)'
        : reason === 'key'
          ? 'sends datagrams sealed with a key not in our key file'
          : null;
    if (!text || noticed.size >= DROP_NOTICES_MAX) return;
    const k = `${reason} ${from}`;
    if (noticed.has(k)) return;
    noticed.add(k);
    notify(`${from} ${text}; ignored`);
  };
  const secure = new SecureTransport(udp, { keyring, group, onDrop, now: () => performance.now() });
  return {
    transport: secure,
    guard: null,
    secure,
    keyFile: keys.file,
    reload: () => {
      const next = loadKeyFile(keys.file);
      keyring.replace(next.keys);
      return { keyIds: keyring.ids(), warning: next.warning };
    },
    announce: () => {
      if (keys.warning) notify(keys.warning);
    },
  };
}

/** Everything this process dropped, and why. */
export interface SecurityReport {
  encrypted: boolean;
  keyIds: string[];
  /** Per-source rate limit: of every datagram in an open group; with a key, of datagrams from
   * senders not yet authenticated (the key layer counts all of those it refused as `limited`). */
  guard: GuardStats;
  /** Sealing layer; null for an open group. */
  secure: SecureStats | null;
  /** Envelopes the kernel refused after decryption (or in an open group), by reason. */
  decode: NodeStats['dropped'];
  /** Messages refused because a counter in them went past its bound, or because they spoke for a member from elsewhere (bounds.ts, membership.ts). */
  refused: NodeStats['refused'];
  datagramsIn: number;
  datagramsOut: number;
  /** This peer's local health (membership.ts): under a flood, why it is slower to call deaths. */
  health: LocalHealth;
  /** Whether our multicasts reach other processes on this host (off while no peer shares it: node.ts). */
  multicastLoopback: boolean;
}

export function securityReport(layers: SecurityLayers, node: PeerNode): SecurityReport {
  const s = layers.secure;
  return {
    encrypted: s !== null,
    keyIds: s ? s.keyring.ids() : [],
    guard: { ...(s ? s.stats.unverifiedSources : layers.guard!.stats) },
    secure: s
      ? {
          ...s.stats,
          dropped: { ...s.stats.dropped },
          openedByKey: { ...s.stats.openedByKey },
          unverifiedSources: { ...s.stats.unverifiedSources },
        }
      : null,
    decode: { ...node.stats.dropped },
    refused: { ...node.stats.refused },
    datagramsIn: node.stats.datagramsIn,
    datagramsOut: node.stats.datagramsOut,
    health: node.membership.health,
    multicastLoopback: node.multicastLoopback,
  };
}

const nonzero = (o: Record<string, number>) =>
  Object.entries(o)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ') || 'none';

/** A few plain lines for a terminal. */
export function describeReport(r: SecurityReport): string {
  return [
    r.encrypted
      ? `encrypted, keys ${r.keyIds.join(' ')} (first: sending)`
      : 'open group: no encryption, no authentication',
    `accepted ${r.datagramsIn} datagrams, sent ${r.datagramsOut}`,
    r.secure
      ? `not yet authenticated senders: sources tracked ${r.guard.sourcesTracked}, evicted ${r.guard.sourcesEvicted}`
      : `rate-limited ${r.guard.rateLimited} (sources tracked ${r.guard.sourcesTracked}, evicted ${r.guard.sourcesEvicted})`,
    ...(r.secure
      ? [
          `refused by the key layer: ${nonzero(r.secure.dropped)}`,
          `accepted per key: ${nonzero(r.secure.openedByKey)}; replay windows ${r.secure.sendersTracked} (moved to a new address ${r.secure.sendersMoved})`,
        ]
      : []),
    `refused by the decoder: ${nonzero(r.decode)}`,
    `refused for a counter past its bound or a member spoken for from elsewhere: ${nonzero(r.refused)}`,
    `local health: score ${r.health.score} (suspicion and death timeouts x${r.health.score + 1})` +
      (r.health.heartbeatLoss === null
        ? ''
        : `, heartbeat loss ${Math.round(r.health.heartbeatLoss * 100)} %`),
    r.multicastLoopback
      ? 'multicast loopback: on (another peer on this host, or start-up)'
      : 'multicast loopback: off (no other peer on this host; a new one is heard and turns it back on)',
  ].join('\n');
}
