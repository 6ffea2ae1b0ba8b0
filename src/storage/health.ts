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
 * failure is cheap), which is how a peer notices by itself that space came back: no restart, no
 * timer of its own.
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
 * lines (each a write a sender waits on) are one each, as are the token ring's state (a promise or
 * a fencing token, written before it is acted on) and task records (written before a task is
 * accepted or its result acknowledged).
 */
export type Writer = 'background' | 'replica' | 'kv' | 'chat' | 'token-ring' | 'tasks' | 'files';

/**
 * One line when writes to a directory start failing, one when every writer whose write there
 * failed has written again. Keyed by directory, so a replica file and the SQLite file next to it
 * on one full disk make one line, not two; and by writer (kv, checkpoint...), so a small write
 * that squeezes into a freed page does not announce a recovery the next large one takes back.
 */
export class StorageHealth {
  /** Per directory: the writers (writer and file) whose last write failed. */
  private readonly failing = new Map<string, Set<string>>();

  constructor(private readonly say: (line: string) => void) {}

  /** Records a failed write; says so if it is the first failure in its directory. */
  failed(f: WriteFailure, writer: Writer): void {
    const dir = path.dirname(f.file);
    let files = this.failing.get(dir);
    if (!files) {
      this.failing.set(dir, (files = new Set()));
      const until = f.kind === 'full' ? 'until space returns' : 'until a write succeeds again';
      this.say(
        `storage: writes to ${dir} failing (${failureReason(f.kind, f.code)}); refusing new writes ${until}`,
      );
    }
    files.add(`${writer}\0${f.file}`);
  }

  /** Records a write that reached the disk; says so once its directory has no failing file left. */
  succeeded(file: string, writer: Writer): void {
    const dir = path.dirname(file);
    const files = this.failing.get(dir);
    if (!files?.delete(`${writer}\0${file}`) || files.size > 0) return;
    this.failing.delete(dir);
    this.say(`storage: writes to ${dir} work again; accepting new writes`);
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

  get isFailing(): boolean {
    return this.failing.size > 0;
  }
}
