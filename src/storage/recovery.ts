/**
 * Restoring a peer from its SQLite file after a crash: check the file, read the newest good
 * checkpoint, work out the Lamport time to start from, and process every message that was
 * received but not processed, exactly once.
 *
 * Exactly once: each replayed message is processed by `Checkpoints.processNow` inside one
 * transaction per batch, which sets the processed flag and runs the topic's effect together; a
 * crash during replay leaves the batch entirely unprocessed, to be replayed again. A handler that
 * finds its effect already present (e.g. a chat line already stored by the chat module, whose
 * write is not in our transaction) reports a duplicate, which is counted and suppressed.
 *
 * The Lamport time restarts above anything the peer can have stamped: the checkpointed time plus
 * LAMPORT_RESTART_MARGIN_TICKS after a crash (the clock kept ticking after the last checkpoint:
 * a running peer writes one when its clock ran LAMPORT_CHECKPOINT_SLACK_TICKS past the saved
 * time, checked every CHECKPOINT_INTERVAL_MS, and the margin is that slack plus more than a peer
 * ticks in one interval), exactly the checkpointed time after a clean stop, and never below a
 * message received since the checkpoint.
 */
import type Database from 'better-sqlite3';
import { StoreError } from './store.js';
import type { Checkpoints, StoredMessage } from './checkpoint.js';

/** How often a running peer writes a checkpoint. */
export const CHECKPOINT_INTERVAL_MS = 1000;
/** Added to the last checkpointed Lamport time after a crash (see the header). */
export const LAMPORT_RESTART_MARGIN_TICKS = 100_000;
/**
 * How far the Lamport time alone may run past the last checkpoint before a periodic one is
 * written (cli/checkpointing.ts): half the restart margin, so the other half still covers more
 * than a peer ticks in one CHECKPOINT_INTERVAL_MS. An idle group ticks about 50 a second.
 */
export const LAMPORT_CHECKPOINT_SLACK_TICKS = LAMPORT_RESTART_MARGIN_TICKS / 2;
/** Problems listed in an integrity error before "...". */
const INTEGRITY_PROBLEMS_SHOWN = 3;

export type IntegrityLevel = 'full' | 'quick' | 'none';

/**
 * Processes one replayed message inside the replay transaction. Returns 'done' (effect applied) or
 * 'duplicate' (the effect was already there: suppressed). A topic without a handler is left
 * unprocessed for the command that owns it.
 */
export type ReplayHandler = (m: StoredMessage, db: Database.Database) => 'done' | 'duplicate';

export interface LamportState {
  time: number;
  /** Written by a graceful stop: no tick can have happened after it. */
  clean: boolean;
}

/**
 * How the previous run ended, as its newest good checkpoint says: `clean` when it was the final
 * checkpoint of a graceful stop, `crash` when it was a periodic one (nothing ran the stop), and
 * `unknown` without any checkpoint.
 */
export type PreviousExit = 'clean' | 'crash' | 'unknown';

export interface RecoveryReport {
  file: string;
  previousExit: PreviousExit;
  integrity: IntegrityLevel;
  checkpointSeq: number | null;
  checkpointAt: number | null;
  /** Newer checkpoints skipped because their checksum or JSON was bad. */
  checkpointsDamaged: number;
  /** Last checkpointed Lamport time, and the time to start from. */
  lamport: number;
  lamportStart: number;
  /** Capability states restored, by source name. */
  restored: Record<string, unknown>;
  /** Short phrases from the sources ("token generation 57"). */
  phrases: string[];
  unprocessedBefore: number;
  replayed: number;
  duplicatesSuppressed: number;
  /** Unprocessed messages whose topic no handler took: kept for the command that owns it. */
  pending: number;
  /** Inbox rows whose checksum failed: kept, never processed, reported. */
  damagedMessages: number;
  ms: number;
}

/** Runs SQLite's own check; throws a one-line StoreError when the file is damaged. */
export function checkIntegrity(db: Database.Database, file: string, level: IntegrityLevel): void {
  if (level === 'none') return;
  let rows: Array<Record<string, string>>;
  try {
    rows = db.pragma(level === 'full' ? 'integrity_check' : 'quick_check') as Array<Record<string, string>>;
  } catch (err) {
    throw new StoreError(
      `${file} is damaged (integrity check failed: ${(err as Error).message}); it was left untouched: restore a backup or move it aside`,
    );
  }
  const problems = rows.map((r) => Object.values(r)[0] ?? '').filter((v) => v !== 'ok');
  if (problems.length > 0)
    throw new StoreError(
      `${file} is damaged (integrity check: ${problems.slice(0, INTEGRITY_PROBLEMS_SHOWN).join('; ')}${problems.length > INTEGRITY_PROBLEMS_SHOWN ? '; ...' : ''}); it was left untouched: restore a backup or move it aside`,
    );
}

export function isLamportState(v: unknown): v is LamportState {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return Number.isSafeInteger(o.time) && (o.time as number) >= 0 && typeof o.clean === 'boolean';
}

export interface RecoverOptions {
  integrity?: IntegrityLevel;
  handlers?: Record<string, ReplayHandler>;
}

export function recover(cp: Checkpoints, opts: RecoverOptions = {}): RecoveryReport {
  const started = performance.now();
  const integrity = opts.integrity ?? 'quick';
  checkIntegrity(cp.db, cp.file, integrity);
  const { checkpoint, damaged } = cp.latest();
  const states = checkpoint?.states ?? {};
  const lam = isLamportState(states.lamport) ? states.lamport : { time: 0, clean: true };
  const afterCheckpoint = cp.lamportAfter(checkpoint?.inboxRowid ?? 0);
  const lamportStart = Math.max(
    lam.clean ? lam.time : lam.time + (checkpoint ? LAMPORT_RESTART_MARGIN_TICKS : 0),
    afterCheckpoint,
  );
  const phrases: string[] = [];
  for (const [name, state] of Object.entries(states)) {
    const p = cp.describe(name, state);
    if (p) phrases.push(p);
  }
  const unprocessedBefore = cp.unprocessedCount();
  const r = replay(cp, opts.handlers ?? {});
  return {
    file: cp.file,
    previousExit: !checkpoint || !isLamportState(states.lamport) ? 'unknown' : lam.clean ? 'clean' : 'crash',
    integrity,
    checkpointSeq: checkpoint?.seq ?? null,
    checkpointAt: checkpoint?.takenAt ?? null,
    checkpointsDamaged: damaged,
    lamport: lam.time,
    lamportStart,
    restored: states,
    phrases,
    unprocessedBefore,
    ...r,
    ms: performance.now() - started,
  };
}

/** Processes every unprocessed message a handler takes, each exactly once. */
export function replay(
  cp: Checkpoints,
  handlers: Record<string, ReplayHandler>,
): { replayed: number; duplicatesSuppressed: number; pending: number; damagedMessages: number } {
  let replayed = 0;
  let duplicatesSuppressed = 0;
  let pending = 0;
  let damagedMessages = 0;
  let after = 0;
  for (;;) {
    const { rows, damaged } = cp.unprocessed(after);
    if (rows.length === 0 && damaged.length === 0) break;
    damagedMessages += damaged.length;
    after = Math.max(after, ...rows.map((m) => m.rowid), ...damaged.map((m) => m.rowid));
    cp.db.transaction(() => {
      for (const m of rows) {
        const h = handlers[m.topic];
        if (!h) {
          pending++;
          continue;
        }
        let outcome: 'done' | 'duplicate' | null = null;
        // The handler runs inside processNow, so flag and effect commit together or not at all.
        cp.processNow(m.id, (db) => {
          outcome = h(m, db);
        });
        if (outcome === 'done') replayed++;
        else if (outcome === 'duplicate') duplicatesSuppressed++;
      }
    })();
  }
  return { replayed, duplicatesSuppressed, pending, damagedMessages };
}

const RECOVERY_LINE_HEAD: Record<PreviousExit, string> = {
  clean: 'resumed after a clean exit',
  crash: 'recovered after a crash',
  unknown: 'recovered',
};

/**
 * The one line a restarted command prints: how the last run ended, then what was restored. The
 * Lamport time is called the message clock (the counter that orders messages), and a jump after a
 * crash says why it happened.
 */
export function recoveryLine(r: RecoveryReport): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const parts = [
    r.lamportStart <= r.lamport
      ? `message clock at ${n(r.lamport)}`
      : `message clock moved ahead from ${n(r.lamport)} to ${n(r.lamportStart)} (${r.previousExit === 'clean' ? 'past the messages received after the last save' : 'past any time stamped before the crash'})`,
  ];
  if (r.checkpointSeq === null) parts.push('no checkpoint yet');
  if (r.checkpointsDamaged > 0) parts.push(`${r.checkpointsDamaged} damaged checkpoint(s) skipped`);
  parts.push(
    `${r.replayed} unprocessed message${r.replayed === 1 ? '' : 's'} replayed`,
    ...(r.duplicatesSuppressed > 0 ? [`${r.duplicatesSuppressed} duplicates suppressed`] : []),
    ...(r.pending > 0 ? [`${r.pending} kept for their command`] : []),
    ...(r.damagedMessages > 0 ? [`${r.damagedMessages} damaged messages kept aside`] : []),
    ...r.phrases,
  );
  return `${RECOVERY_LINE_HEAD[r.previousExit]}: ${parts.join(', ')}`;
}
