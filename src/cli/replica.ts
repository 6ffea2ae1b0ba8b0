/**
 * Shared pieces of `peer replicate` and `peer reconcile`: the --dir flag, the replica file as a
 * protocol sink, waiting on conditions with deadlines, and the reconcile table.
 */
import { Flags } from '@oclif/core';
import { ReplicaFile, type Entry } from '../storage/replica.js';
import type { ReplicaSink } from '../p2p/replication.js';
import { table } from './output.js';
import { escapeForTerminal } from './sanitize.js';

/** How long a one-shot command listens for holders' answers to its probe before acting. */
export const HOLDER_DISCOVERY_MS = 300;
/** Reconcile listens longer: a holder's probe answer lost costs one heartbeat interval (200 ms). */
export const ROUND_DISCOVERY_MS = 600;
export const POLL_MS = 20;
/** A command that runs longer than this shows a progress line (on a terminal). */
export const PROGRESS_AFTER_MS = 1_000;

export const dirFlag = {
  dir: Flags.string({
    summary: 'Directory of the replica files (<name>.txt).',
    env: 'PEER_REPLICA_DIR',
    default: 'replicas',
  }),
};

export function fileSink(file: ReplicaFile): ReplicaSink {
  return {
    set: file.set,
    apply: (entries: readonly Entry[]) => file.apply(entries),
    flush: () => file.flush(),
    rewriteCanonical: () => file.rewriteCanonical(),
  };
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

/** A one-line progress indicator on stderr, only on a terminal. */
export class Progress {
  private shown = false;
  private readonly started = Date.now();

  update(text: string): void {
    if (!process.stderr.isTTY || Date.now() - this.started < PROGRESS_AFTER_MS) return;
    const spin = '|/-\\'[Math.floor((Date.now() - this.started) / 120) % 4];
    process.stderr.write(`\r\x1b[2K${spin} ${escapeForTerminal(text)}`); // text names holders
    this.shown = true;
  }

  done(): void {
    if (this.shown) process.stderr.write('\r\x1b[2K');
    this.shown = false;
  }
}
