/**
 * Shared pieces of `peer replicate` and `peer reconcile`: what they install on their peer, the
 * --dir flag, the replica file as a protocol sink, waiting on conditions with deadlines, and the
 * reconcile table.
 */
import { Flags } from '@oclif/core';
import { ReplicaFile } from '../storage/replica.js';
import {
  type Entry,
  acksSatisfied,
  type AckPolicy,
  type ReplicaSink,
  LARGE_MESSAGE_BYTES_MAX,
  Replication,
  envelopeOverhead,
} from '../p2p/replication/index.js';
import type { PeerNode } from '../p2p/node.js';
import { ReliableDelivery } from '../p2p/reliable/index.js';
import type { StorageHealth } from '../storage/health.js';
import { failureReason, type WriteFailureKind } from '../p2p/write-failure.js';
import { table } from './output.js';
import { escapeForTerminal } from './sanitize.js';

/** How long a one-shot command listens for holders' answers to its probe before acting. */
export const HOLDER_DISCOVERY_MS = 300;
/** Reconcile listens longer: a holder's probe answer lost costs one heartbeat interval (750 ms on lan). */
export const ROUND_DISCOVERY_MS = 850;
export const POLL_MS = 20;

/**
 * What `peer replicate` installs: reliable delivery for what does not fit a datagram (an append
 * or a catch-up over it), and replication over it; a holder passes its `sink`, a one-shot writer
 * none. `peer kv` installs the same way (cli/kv.ts installKeyValue).
 */
export function installReplication(
  node: PeerNode,
  sink?: ReplicaSink,
): { rp: Replication; large: ReliableDelivery } {
  const large = node.install(
    (ctx, n) => new ReliableDelivery(ctx, n.membership, { messageBytesMax: LARGE_MESSAGE_BYTES_MAX }),
  );
  const rp = node.install(
    (ctx, n) =>
      new Replication(ctx, n.membership, { sink, envelopeBytes: envelopeOverhead(node.name), large }),
  );
  return { rp, large };
}

export const dirFlag = {
  dir: Flags.string({
    summary: 'Directory of the replica files (<name>.txt).',
    env: 'PEER_REPLICA_DIR',
    default: 'replicas',
  }),
};

/** The replica file as the protocol's sink; every write's outcome goes to `health`. */
export function fileSink(file: ReplicaFile, health: StorageHealth): ReplicaSink {
  return {
    set: file.set,
    apply: (entries: readonly Entry[]) => {
      const r = file.apply(entries);
      // Only an append that was tried says something about the disk.
      if (r.failure || r.added.length > 0) health.record(file.file, 'replica', r.failure ?? null);
      return r;
    },
    flush: () => health.attempt(file.file, 'replica', () => file.flush()) === null,
    rewriteCanonical: () => {
      let sha: string | null = null;
      health.attempt(file.file, 'replica', () => (sha = file.rewriteCanonical()));
      return sha;
    },
  };
}

/**
 * Whether holders that said they cannot store a write (a full or failing disk) leave too few
 * others to satisfy `policy`: the writer then fails at once instead of waiting out --timeout.
 */
export function refusedTooMany(
  policy: AckPolicy,
  st: { acked: readonly unknown[]; known: number; refused: readonly unknown[] },
): boolean {
  return st.refused.length > 0 && !acksSatisfied(policy, st.known - st.refused.length, st.known);
}

/** ["h1 (disk full)", "h2 (I/O error)"]: the holders that refused a write, and why, sorted. */
export function refusals(refused: ReadonlyArray<{ name: string; reason: WriteFailureKind }>): string[] {
  return refused.map((r) => `${r.name} (${failureReason(r.reason)})`).sort();
}

/** Resolves true once `cond` holds, false at the deadline; checks every POLL_MS. */
export async function waitFor(cond: () => boolean, timeoutMs: number, onPoll?: () => void): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (cond()) return true;
    if (Date.now() >= deadline) return false;
    onPoll?.();
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

export interface ReplicaRow {
  replica: string;
  before: number;
  after: number;
  added: number;
  /** SHA-256 of the file's content (online: after the rewrite; '' if not rewritten). */
  sha256: string;
  /** Set digest (online only): XOR of the entries' hashes, what holders compare. */
  digest?: string;
}

export function replicaTable(rows: ReplicaRow[]): string {
  return table(
    ['REPLICA', 'BEFORE', 'AFTER', 'ADDED', 'DIGEST'],
    rows.map((r) => [
      escapeForTerminal(r.replica), // a holder's name, or a file name on disk
      String(r.before),
      String(r.after),
      String(r.added),
      escapeForTerminal(r.sha256 ? r.sha256.slice(0, 16) : `(set ${r.digest ?? '?'})`),
    ]),
  );
}
