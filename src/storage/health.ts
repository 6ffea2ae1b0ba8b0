/**
 * Failed writes: what kind of failure a write met, and what a peer says about it.
 *
 * A write that failed (ENOSPC, EIO, SQLITE_FULL, SQLITE_IOERR, or a short write) is never counted
 * as held: the stores return it as a WriteFailure instead of adding the entry to anything a
 * protocol advertises, so a retry is written again rather than taken for a duplicate, and nothing
 * is acknowledged before it is durable.
 *
 * A full disk fails thousands of writes in a row; StorageHealth turns them into one line when
 * writes to a directory start failing and one when they work again. Writes keep being tried (each
 * failure is cheap), which is how a peer notices by itself that space came back: no restart. The
 * recovery is announced only after a quiet period without a failure (STORAGE_RECOVERED_AFTER_MS),
 * from `tick()`, which the peer's checkpoint timer calls: no timer of its own.
 */
import path from 'node:path';
import { failureReason, type WriteFailure, type WriteFailureKind } from '../p2p/write-failure.js';

/** An error without a code is named by the first line of its message, cut to this length. */
export const FAILURE_CODE_CHARS_MAX = 200;

/** Error codes that mean "no space": the disk, or the user's quota, is full. */
const FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);

/** Classifies an error thrown by a write (fs or better-sqlite3) into a WriteFailure. */
export function writeFailure(file: string, err: unknown): WriteFailure {
  const e = err as { code?: unknown; message?: unknown };
  const code =
    typeof e?.code === 'string'
      ? e.code
      : String(e?.message ?? err)
          .split('\n')[0]!
          .slice(0, FAILURE_CODE_CHARS_MAX);
  const kind: WriteFailureKind = FULL_CODES.has(code)
    ? 'full'
    : code === 'EIO' || code.startsWith('SQLITE_IOERR')
      ? 'io'
      : 'other';
  return { kind, file, code };
}

/**
 * Who writes, for StorageHealth: a recovery is announced only once each writer that failed has
 * written again. SQLite's small background writes (checkpoints every second, the replica log,
 * peers seen, the incarnation) are one writer: they share a WAL, and the checkpoint timer retries
 * them all every second. A replica file's appends and rewrites are another; kv commits and chat
 * lines and user events (each a write a sender waits on) are one each, as are the token ring's state (a promise or
 * a fencing token, written before it is acted on) and task records (written before a task is
 * accepted or its result acknowledged).
 */
export type Writer =
  'background' | 'replica' | 'kv' | 'chat' | 'token-ring' | 'tasks' | 'files' | 'runs' | 'events';

/**
 * How long writes to a directory must go without a failure, once every writer that failed there
 * has written again, before they are said to work again. On a full disk a small write can squeeze
 * into space something else just freed (a WAL reset, a temporary file removed), and the next one
 * fails again: announcing at the first success made the lines flap "work again" / "failing". What
 * failed is retried about every second (the checkpoint timer, a sender's retransmissions, a
 * token-ring turn), so on a disk still full a failure comes well within five seconds, and a disk
 * really freed is announced a few seconds late, no more.
 */
export const STORAGE_RECOVERED_AFTER_MS = 5_000;

/** A directory whose writes were said to fail, until they are said to work again. */
interface Episode {
  /** The writers (writer and file) whose last write there failed. */
  failing: Set<string>;
  /** When the last of them wrote again (the injected clock), or null while one still fails. */
  quietSince: number | null;
}

/**
 * One line when writes to a directory start failing, one when every writer whose write there
 * failed has written again and STORAGE_RECOVERED_AFTER_MS passed with no failure there. Keyed by
 * directory, so a replica file and the SQLite file next to it on one full disk make one line, not
 * two; and by writer (kv, checkpoint...), so a small write that squeezes into a freed page does
 * not start the quiet period while the next large one still fails. A failure during the quiet
 * period keeps the episode open without a line: failing is said at most once per episode.
 */
export class StorageHealth {
  /** Per directory whose writes were said to fail: what still fails, and since when none does. */
  private readonly episodes = new Map<string, Episode>();

  /** `now`: a monotonic clock in milliseconds (the quiet period is measured on it). */
  constructor(
    private readonly say: (line: string) => void,
    private readonly now: () => number,
  ) {}

  /** Records a failed write; says so if it opens an episode in its directory. */
  failed(f: WriteFailure, writer: Writer): void {
    const dir = path.dirname(f.file);
    let episode = this.episodes.get(dir);
    if (!episode) {
      this.episodes.set(dir, (episode = { failing: new Set(), quietSince: null }));
      const until = f.kind === 'full' ? 'until space returns' : 'until a write succeeds again';
      this.say(
        `storage: writes to ${dir} failing (${failureReason(f.kind, f.code)}); refusing new writes ${until}`,
      );
    }
    episode.failing.add(`${writer}\0${f.file}`);
    episode.quietSince = null;
  }

  /** Records a write that reached the disk; the last failing writer of a directory starts its quiet period. */
  succeeded(file: string, writer: Writer): void {
    const episode = this.episodes.get(path.dirname(file));
    if (!episode?.failing.delete(`${writer}\0${file}`) || episode.failing.size > 0) return;
    episode.quietSince = this.now();
  }

  /** Says "work again" for each directory whose quiet period has passed; called periodically. */
  tick(): void {
    const now = this.now();
    for (const [dir, episode] of this.episodes) {
      if (episode.quietSince === null || now - episode.quietSince < STORAGE_RECOVERED_AFTER_MS) continue;
      this.episodes.delete(dir);
      this.say(`storage: writes to ${dir} work again; accepting new writes`);
    }
  }

  /** Runs a background write (a checkpoint, a log): a failure is recorded, never thrown. */
  attempt(file: string, writer: Writer, write: () => void): WriteFailure | null {
    try {
      write();
    } catch (err) {
      const f = writeFailure(file, err);
      this.failed(f, writer);
      return f;
    }
    this.succeeded(file, writer);
    return null;
  }

  /** Records the outcome of a write that returned its failure (or null when it is durable). */
  record(file: string, writer: Writer, failure: WriteFailure | null): void {
    if (failure) this.failed(failure, writer);
    else this.succeeded(file, writer);
  }

  /** Whether writes somewhere were said to fail and not yet said to work again. */
  get isFailing(): boolean {
    return this.episodes.size > 0;
  }
}
