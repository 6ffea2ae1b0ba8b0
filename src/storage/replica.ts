/**
 * Replica files: the file a holder keeps its entries in, and the offline reconciler. The entry
 * model, the line format and the in-memory set are protocol data and live in
 * src/p2p/replication/ (entry.ts, line.ts, replica-set.ts, parse-replica.ts); this file does the
 * file I/O (the CLI wraps a ReplicaFile as the ReplicaSink that replication writes through).
 *
 * Durability: ReplicaFile.append writes and fsyncs before it returns, so a holder acknowledges an
 * entry only once it is on disk; an entry joins the in-memory set (and so the digest, and what
 * counts as a duplicate) only after that, and a failed append (disk full, I/O error, a short
 * write) is returned as a failure with its torn tail cut off (see ReplicaFile.apply). A rewrite
 * goes to a temp file that is fsynced, renamed over the replica, and the directory is fsynced, so
 * a crash leaves either the old or the new file, whole.
 * A line that does not parse is never dropped silently: it is appended, with its line number and
 * the reason, to `<name>.rejected` next to the replica (fsynced) before the file is rewritten
 * without it, and the caller gets the list to report. A file is read as bytes, so a line that is
 * not valid UTF-8 is rejected and kept aside byte for byte, never decoded into U+FFFD and rewritten.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { writeFailure } from './health.js';
import {
  ReplicaSet,
  parseReplica,
  serialize,
  type ApplyResult,
  type Entry,
  type Rejection,
} from '../p2p/replication/index.js';

export const REPLICA_FILE_SUFFIX = '.txt';
export const REJECTED_FILE_SUFFIX = '.rejected';

export class ReplicaError extends Error {
  override name = 'ReplicaError';
  /** The error code of the failed operation (ENOSPC, EIO...), when it had one. */
  code?: string;
}

export function replicaPath(dir: string, name: string): string {
  return path.join(dir, `${name}${REPLICA_FILE_SUFFIX}`);
}

function ioError(what: string, file: string, err: unknown): ReplicaError {
  const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  const e = new ReplicaError(
    `cannot ${what} ${file} (${code}); check the directory's permissions or pass --dir`,
  );
  e.code = (err as NodeJS.ErrnoException).code;
  return e;
}

/**
 * Writes all of `data` at the end of an O_APPEND file: a write may store only part (a disk that
 * fills up mid-write), so it loops; a write that stores nothing is an error.
 */
function writeAll(fd: number, data: Buffer): void {
  for (let off = 0; off < data.length;) {
    const n = fs.writeSync(fd, data, off);
    if (n <= 0) throw Object.assign(new Error('write stored no byte'), { code: 'EIO' });
    off += n;
  }
}

/** Creates the directory if needed and checks that it is writable: one clear error otherwise. */
export function ensureWritableDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (err) {
    throw ioError('write to the replica directory', dir, err);
  }
}

/** Writes a whole file atomically: temp file, fsync, rename, fsync of the directory. */
export function writeFileAtomic(file: string, data: string): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'w', 0o644);
    try {
      fs.writeSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    fsyncDir(dir);
  } catch (err) {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // the original error is the one worth reporting
    }
    throw ioError('rewrite', file, err);
  }
}

/** Makes a rename or a new name in `dir` durable. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * One replica file, open for appends. Reads and checks the file on open; rejected lines are moved
 * to `<name>.rejected` and the file is rewritten without them, so what is on disk always parses.
 */
export class ReplicaFile {
  private fd: number | null = null;
  /** A held entry was replaced by the version that wins; the file needs a rewrite (flush). */
  private dirty = false;
  /**
   * Bytes of the file that hold whole, fsynced lines. A failed append may leave part of a line
   * after them (a torn write); it is cut off before anything else is appended, since a line
   * appended after a torn one would join it and be rejected at the next open, acknowledged or not.
   */
  private whole = 0;
  /** A failed append's torn tail could not be cut off yet (see `whole`). */
  private torn = false;

  private constructor(
    readonly file: string,
    readonly set: ReplicaSet,
    readonly rejected: Rejection[],
  ) {}

  static open(dir: string, name: string): ReplicaFile {
    ensureWritableDir(dir);
    const file = replicaPath(dir, name);
    let content = Buffer.alloc(0);
    try {
      content = fs.readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('read', file, err);
    }
    const { set, rejected } = parseReplica(content);
    if (rejected.length > 0) {
      keepAside(file, rejected);
      writeFileAtomic(file, serialize(set.entries));
    } else if (content.length > 0 && content.at(-1) !== 0x0a) {
      // A last line without its newline (a crash mid-append, or an editor): complete it.
      writeFileAtomic(file, serialize(set.entries));
    }
    const rf = new ReplicaFile(file, set, rejected);
    rf.reopen();
    return rf;
  }

  /** Opens the file for appends; `measure`: it was (re)written whole, so all of it is `whole`. */
  private reopen(measure = true): void {
    try {
      this.fd = fs.openSync(this.file, 'a', 0o644);
      if (measure) this.whole = fs.fstatSync(this.fd).size;
    } catch (err) {
      throw ioError('open for appending', this.file, err);
    }
  }

  /** Appends the entries not present yet; they are on disk (fsynced) when this returns them. */
  append(entries: readonly Entry[]): Entry[] {
    const r = this.apply(entries);
    if (r.failure) throw ioError('append to', this.file, r.failure);
    return r.added;
  }

  /**
   * Appends new identities (on disk, fsynced, when this returns) and replaces held versions that
   * lose a conflict (see preferred()) in memory; flush() writes those with one atomic rewrite.
   * The set changes only after the append is durable: a failed one (disk full, I/O error) is
   * returned as `failure`, with nothing added or replaced, so a retry is written again.
   */
  apply(entries: readonly Entry[]): ApplyResult {
    const { added, replaced } = this.set.plan(entries);
    if (added.length > 0) {
      if (this.fd === null) throw new ReplicaError(`${this.file} is closed`);
      const data = Buffer.from(serialize(added));
      try {
        if (this.torn) this.cutTornTail();
        writeAll(this.fd, data);
        fs.fsyncSync(this.fd);
      } catch (err) {
        this.torn = true;
        try {
          this.cutTornTail();
        } catch {
          // cut before the next append (torn stays set)
        }
        return { added: [], replaced: [], failure: writeFailure(this.file, err) };
      }
      this.whole += data.length;
    }
    for (const e of [...added, ...replaced]) this.set.resolve(e);
    if (replaced.length > 0) this.dirty = true;
    return { added, replaced };
  }

  private cutTornTail(): void {
    fs.ftruncateSync(this.fd!, this.whole);
    fs.fsyncSync(this.fd!);
    this.torn = false;
  }

  /** Writes pending replacements: one atomic rewrite in the current order. */
  flush(): void {
    if (!this.dirty) return;
    this.rewrite(serialize(this.set.entries));
  }

  /** Rewrites the file atomically in canonical order; returns the SHA-256 of the new content. */
  rewriteCanonical(): string {
    this.set.sortCanonical();
    const data = serialize(this.set.entries);
    this.rewrite(data);
    return createHash('sha256').update(data).digest('hex');
  }

  /** A failed rewrite leaves the old file (and `dirty`) as they were, open for appends. */
  private rewrite(data: string): void {
    this.close();
    let written = false;
    try {
      writeFileAtomic(this.file, data);
      written = true;
      this.dirty = false;
      this.torn = false;
    } finally {
      // After a failed rewrite the old file may still end in a torn tail: `whole` stays as it was.
      this.reopen(written);
    }
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

/**
 * Appends rejected lines, with their line numbers and reasons, to `<name>.rejected` (fsynced). A
 * line that is not valid UTF-8 is written byte for byte.
 */
export function keepAside(file: string, rejected: Rejection[]): string {
  const aside = file.slice(0, -REPLICA_FILE_SUFFIX.length) + REJECTED_FILE_SUFFIX;
  const stamp = new Date().toISOString();
  const text = Buffer.concat(
    rejected.flatMap((r) => [
      Buffer.from(`# ${stamp} ${path.basename(file)} line ${r.line}: ${r.reason}\n`),
      r.raw ?? Buffer.from(r.text),
      Buffer.from('\n'),
    ]),
  );
  try {
    const fd = fs.openSync(aside, 'a', 0o644);
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw ioError('keep rejected lines in', aside, err);
  }
  return aside;
}

export interface ReconcileRow {
  replica: string;
  before: number;
  after: number;
  added: number;
  /** Entries whose version changed: another file held a version of the identity that wins. */
  replaced: number;
  rejected: number;
  /** SHA-256 of the file after the rewrite. */
  digest: string;
}

/**
 * The offline reconciler: the union of every replica in `dir`, without duplicates, in
 * canonical order, written identically (and atomically) into every file.
 */
export function reconcileDirectory(dir: string): ReconcileRow[] {
  ensureWritableDir(dir);
  let names: string[];
  try {
    names = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith(REPLICA_FILE_SUFFIX) && !f.startsWith('.'))
      .map((f) => f.slice(0, -REPLICA_FILE_SUFFIX.length))
      .sort();
  } catch (err) {
    throw ioError('list', dir, err);
  }
  const files = names.map((name) => ReplicaFile.open(dir, name));
  try {
    // Where two files hold two versions of one identity, every file gets the preferred one.
    const union = new ReplicaSet();
    for (const f of files) for (const e of f.set.entries) union.resolve(e);
    const data = serialize(union.canonical());
    const digest = createHash('sha256').update(data).digest('hex');
    return files.map((f, i) => {
      const before = f.set.size;
      const replaced = f.set.entries.filter((e) => {
        const u = union.get(e)!;
        return u.lamport !== e.lamport || u.text !== e.text;
      }).length;
      f.close();
      writeFileAtomic(f.file, data);
      return {
        replica: names[i]!,
        before,
        after: union.size,
        added: union.size - before,
        replaced,
        rejected: f.rejected.length,
        digest,
      };
    });
  } finally {
    for (const f of files) f.close();
  }
}
