/**
 * One process per peer name and data dir: two processes writing one identity would both announce
 * it, each with its own view, and interleave their writes in one file.
 *
 * The lock is a POSIX advisory (fcntl) lock, which the kernel drops when its process ends, however
 * it ends (kill -9 included): a crash never leaves a stale lock behind to block a restart or
 * `peer recover`. A pid file alone could not promise that, since after a crash its pid may belong
 * to another process. Node has no flock(), so the lock is taken through SQLite, whose unix VFS
 * uses fcntl locks: a small SQLite file `<name>.lock` next to the database, written once by a
 * connection in locking_mode=EXCLUSIVE, which then keeps its exclusive lock until it closes. No
 * other connection, in this process or another, can take it meanwhile, and busy_timeout 0 makes
 * the second one fail at once instead of waiting.
 *
 * Who holds it is written to `<name>.pid` after the lock is taken, only to name the holder in the
 * second process's error line; it never decides anything. The lock file itself is never deleted:
 * a process that opened it just before a deletion would lock a file nobody else sees.
 *
 * Who takes it: every command that runs a peer with a database (startPeer, observers excepted) and
 * `peer recover`, which writes. Read-only tools (`chat --history`, `task list --local`,
 * `peer doctor`) do not: SQLite's WAL lets them read while the peer writes.
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { StoreError, ensureDataDir, peerFile } from './store.js';

export const LOCK_FILE_SUFFIX = '.lock';
export const HOLDER_FILE_SUFFIX = '.pid';

export class DataDirLock {
  private constructor(
    private readonly db: Database.Database,
    readonly file: string,
    private readonly holderFile: string,
  ) {}

  /** Takes the lock of peer `name` in `dataDir` (creating the dir), or throws one line saying who holds it. */
  static acquire(dataDir: string, name: string): DataDirLock {
    ensureDataDir(dataDir);
    const file = peerFile(dataDir, name, LOCK_FILE_SUFFIX);
    const holderFile = peerFile(dataDir, name, HOLDER_FILE_SUFFIX);
    let db: Database.Database | undefined;
    try {
      db = new Database(file, { timeout: 0 });
      db.pragma('locking_mode = EXCLUSIVE');
      // No journal file beside the lock: it holds nothing worth a rollback.
      db.pragma('journal_mode = MEMORY');
      // The first write takes the exclusive lock, and EXCLUSIVE mode keeps it until close.
      db.transaction(() => db!.pragma(`user_version = ${process.pid}`))();
    } catch (err) {
      db?.close();
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_BUSY')
        throw new StoreError(
          `a peer named '${name}' already runs on ${dataDir}${holderOf(holderFile)}; stop it first, or pass another --name or --data-dir`,
        );
      if (code === 'SQLITE_NOTADB')
        throw new StoreError(`${file} is not a lock file (no peer holds it); delete it and start again`);
      throw new StoreError(
        `cannot lock ${file} (${code ?? (err as Error).message}); pass --data-dir with a writable directory`,
      );
    }
    try {
      fs.writeFileSync(holderFile, `${process.pid} ${new Date().toISOString()}\n`);
    } catch {
      // Only the error line of a second process reads it: the lock holds without it.
    }
    return new DataDirLock(db, file, holderFile);
  }

  /** Releases the lock (the kernel does it anyway when the process ends). Safe to call twice. */
  release(): void {
    if (!this.db.open) return;
    fs.rmSync(this.holderFile, { force: true });
    this.db.close();
  }
}

/** " (pid N since T)" from the holder file, or "" when it is missing or odd. */
function holderOf(holderFile: string): string {
  let text: string;
  try {
    text = fs.readFileSync(holderFile, 'utf8');
  } catch {
    return '';
  }
  const m = /^(\d{1,10}) (\S{1,40})\n$/.exec(text);
  return m ? ` (pid ${m[1]} since ${m[2]})` : '';
}
