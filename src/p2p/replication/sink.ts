/**
 * Where a holder keeps its entries, declared here and implemented outside p2p: a replica file in
 * the CLI (src/cli/replica.ts fileSink over src/storage/replica.ts ReplicaFile), memory in the
 * simulation (test/support/memory-replica.ts).
 */
import type { WriteFailure } from '../write-failure.js';
import type { Entry } from './entry.js';
import type { ReplicaSet } from './replica-set.js';

/** What a write of entries did: what it added and replaced, or why it wrote nothing. */
export interface ApplyResult {
  added: Entry[];
  replaced: Entry[];
  /** The write failed: nothing was added or replaced, in memory or on disk. */
  failure?: WriteFailure;
}

export interface ReplicaSink {
  readonly set: ReplicaSet;
  /**
   * Adds new identities, durably before it returns; replaces a held version that loses a conflict
   * (preferred()) in memory, written by the next flush(). A write that failed comes back as
   * `failure` and leaves `set` as it was: what is not durable is never held (nor acknowledged,
   * nor in the digest anti-entropy compares).
   */
  apply(entries: readonly Entry[]): ApplyResult;
  /** Writes pending replacements (an atomic rewrite of a file); false when that failed. */
  flush(): boolean;
  /** Rewrites the replica in canonical order; the SHA-256 (hex) of its content, null on failure. */
  rewriteCanonical(): string | null;
}
