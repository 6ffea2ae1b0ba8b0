/**
 * The security layers a CLI peer runs with, between its UDP transport and its node:
 *
 *   UdpTransport -> GuardedTransport (per-source rate limit) -> SecureTransport (if a key) -> PeerNode
 *
 * The guard runs with or without a key, so an open group is still protected against a flood from
 * one host. Also here: the notices a user must see (the group is open; a key file is readable by
 * others; a peer on the group uses another key or none) and the counters of what was dropped and
 * why, which are per process: `peer up` prints its own on SIGUSR1 and on exit, `peer stats`
 * listens as an observer and prints what it dropped.
 */
import { GuardedTransport, type GuardStats } from '../p2p/transport/guard.js';
import { Keyring } from '../p2p/transport/keyring.js';
import { SecureTransport, type SecureDropReason, type SecureStats } from '../p2p/transport/secure.js';
import type { Address, Transport } from '../p2p/transport/transport.js';
import type { NodeStats, PeerNode } from '../p2p/node.js';
import { loadKeyFile } from './keyfile.js';

/** Sources named in "uses another key" notices per process: enough to diagnose, not to flood a terminal. */
export const DROP_NOTICES_MAX = 8;

export interface KeySettings {
  file: string;
  keys: Buffer[];
  warning: string | null;
}

/** Reads and checks --key-file; null when none was given (an open group). */
export function keySettings(file: string | undefined): KeySettings | null {
  if (file === undefined || file === '') return null;
  return { file, ...loadKeyFile(file) };
}

export interface SecurityLayers {
  /** What the node sends and receives through. */
  transport: Transport;
  guard: GuardedTransport;
  /** Null when the group runs open. */
  secure: SecureTransport | null;
  keyFile: string | null;
  /** Re-reads the key file into the running keyring (SIGHUP); throws UsageError on a bad file. */
  reload(): { keyIds: string[]; warning: string | null };
  /** Prints the start-up notices (open group, key file mode); call once the peer is up, so a
   * command that fails to start prints its error alone. */
  announce(): void;
}

export function securityLayers(
  udp: Transport,
  group: string,
  keys: KeySettings | null,
  notify: (line: string) => void = (line) => process.stderr.write(`peer: ${line}\n`),
): SecurityLayers {
  const guard = new GuardedTransport(udp, { now: () => performance.now() });
  if (!keys) {
    return {
      transport: guard,
      guard,
      secure: null,
      keyFile: null,
      reload: () => ({ keyIds: [], warning: null }),
      announce: () => notify(`no --key-file: traffic on ${group} is neither encrypted nor authenticated`),
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
  const secure = new SecureTransport(guard, { keyring, group, onDrop });
  return {
    transport: secure,
    guard,
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
  /** Datagrams refused by the rate guard, before any other work. */
  guard: GuardStats;
  /** Sealing layer; null for an open group. */
  secure: Omit<SecureStats, 'openedByKey'> & { openedByKey: Record<string, number> };
  /** Envelopes the kernel refused after decryption (or in an open group), by reason. */
  decode: NodeStats['dropped'];
  datagramsIn: number;
  datagramsOut: number;
}

export function securityReport(layers: SecurityLayers, node: PeerNode): SecurityReport {
  const s = layers.secure;
  return {
    encrypted: s !== null,
    keyIds: s ? s.keyring.ids() : [],
    guard: { ...layers.guard.stats },
    secure: s
      ? { ...s.stats, dropped: { ...s.stats.dropped }, openedByKey: { ...s.stats.openedByKey } }
      : {
          sealed: 0,
          opened: 0,
          dropped: { short: 0, oversize: 0, plaintext: 0, format: 0, key: 0, auth: 0, replay: 0, stale: 0 },
          openedByKey: {},
          sendersTracked: 0,
          sendersEvicted: 0,
        },
    decode: { ...node.stats.dropped },
    datagramsIn: node.stats.datagramsIn,
    datagramsOut: node.stats.datagramsOut,
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
    `rate-limited ${r.guard.rateLimited} (sources tracked ${r.guard.sourcesTracked}, evicted ${r.guard.sourcesEvicted})`,
    ...(r.encrypted
      ? [
          `refused by the key layer: ${nonzero(r.secure.dropped)}`,
          `accepted per key: ${nonzero(r.secure.openedByKey)}; replay windows ${r.secure.sendersTracked}`,
        ]
      : []),
    `refused by the decoder: ${nonzero(r.decode)}`,
  ].join('\n');
}
