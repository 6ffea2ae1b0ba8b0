/**
 * What every holder role shares: the replica it keeps (a ReplicaSink), storing what others send,
 * writing conflict replacements once they stop arriving, and advertising the replica's digest.
 *
 * Conflicts. Entries are immutable, so two versions of one identity come only from a hand-edited
 * file (or a reused origin id). Every holder keeps the preferred version (entry.ts preferred()),
 * whatever order it meets them in, so they still converge; a replacement is in memory at once and
 * written by one atomic rewrite once replacements stop arriving (FLUSH_QUIET_MS). A crash before
 * that leaves the old version in the file, and anti-entropy replaces it again.
 */
import type { ProtocolContext } from '../protocol.js';
import type { PeerId } from '../wire.js';
import { REPLICA_TAG, type Directory } from './directory.js';
import { entryProblem, type Entry } from './entry.js';
import type { OwnSequence } from './own-sequence.js';
import type { ApplyResult, ReplicaSink } from './sink.js';

/** Replacements (conflict winners) are written once none arrived for this long... */
export const FLUSH_QUIET_MS = 500;
/** ...or at the latest this long after the first one. */
export const FLUSH_DELAY_MAX_MS = 10_000;
/** Least time between two digest tag updates (each sends a heartbeat at once). */
export const DIGEST_TAG_INTERVAL_MS = 100;

export class Holder {
  private lastReplace = -Infinity;
  private flushPendingSince: number | null = null;
  private lastTag = -Infinity;
  private tagged = '';

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly dir: Directory,
    readonly sink: ReplicaSink,
    private readonly ownSeqs: OwnSequence,
    private readonly reject: () => void,
  ) {
    ownSeqs.learn(sink.set.entries);
  }

  get set(): ReplicaSink['set'] {
    return this.sink.set;
  }

  /** This holder's digest tag value, "<digest>:<count>". */
  get digestTag(): string {
    return `${this.sink.set.digest()}:${this.sink.set.size}`;
  }

  /**
   * Stores entries another peer sent (valid ones: the caller checked them). Nothing is stored when
   * the write fails (`failure`): the caller does not confirm them, so they are sent again.
   */
  store(entries: Entry[], from: PeerId, via: 'append' | 'repair'): ApplyResult {
    this.ownSeqs.learn(entries);
    const result = this.sink.apply(entries);
    if (result.added.length) this.ctx.emit({ kind: 'replica-append', entries: result.added, from, via });
    if (result.replaced.length) this.noteReplaced(from, result.replaced);
    return result;
  }

  /**
   * Stores repaired entries (pushed to us, or fetched by us), the invalid ones rejected: `stored`
   * are the valid ones, none when the write failed.
   */
  storeRepair(entries: Entry[], from: PeerId): { stored: Entry[]; failed: boolean } {
    const valid = entries.filter((e) => {
      if (entryProblem(e) === null) return true;
      this.reject();
      return false;
    });
    const failed = this.store(valid, from, 'repair').failure !== undefined;
    return { stored: failed ? [] : valid, failed };
  }

  private noteReplaced(from: PeerId, replaced: Entry[]): void {
    const now = this.ctx.now();
    this.lastReplace = now;
    if (this.flushPendingSince === null) this.flushPendingSince = now;
    this.ctx.emit({ kind: 'replica-replace', entries: replaced, from });
  }

  /**
   * Rewrites the file once replacements stop arriving (or at least every FLUSH_DELAY_MAX_MS) and
   * advertises a changed digest (at most every DIGEST_TAG_INTERVAL_MS); returns when it next needs
   * a tick for either, Infinity when nothing is pending (what changes the replica also ticks us).
   */
  tick(now: number): number {
    this.maybeFlush(now);
    const tag = this.digestTag;
    if (tag !== this.tagged && now - this.lastTag >= DIGEST_TAG_INTERVAL_MS) {
      this.lastTag = now;
      this.tagged = tag;
      this.dir.setTags({ ...this.dir.ownTags, [REPLICA_TAG]: tag });
    }
    const since = this.flushPendingSince;
    const flushAt =
      since === null ? Infinity : Math.min(this.lastReplace + FLUSH_QUIET_MS, since + FLUSH_DELAY_MAX_MS);
    return Math.min(flushAt, tag === this.tagged ? Infinity : this.lastTag + DIGEST_TAG_INTERVAL_MS);
  }

  private maybeFlush(now: number): void {
    const since = this.flushPendingSince;
    if (since === null) return;
    if (now - this.lastReplace < FLUSH_QUIET_MS && now - since < FLUSH_DELAY_MAX_MS) return;
    this.flushPendingSince = null;
    // A failed rewrite keeps the replacements pending: try again after another quiet period.
    if (!this.sink.flush()) this.lastReplace = this.flushPendingSince = now;
  }
}
