/**
 * The peer's SQLite file: one per peer name under the data dir.
 *
 * WAL mode, synchronous=NORMAL: a transaction that returned is durable against a crash of the
 * process (kill -9), since it is in the WAL file the OS already holds; only a power loss or a
 * kernel crash can take the last transactions back. Capabilities that promise more (issue 8's
 * acknowledged messages) set their own level on their own writes.
 *
 * This module owns identity (id, incarnation) and the peers seen (the `peers` table).
 * Each capability keeps its own tables in its own store module on the same connection, created
 * idempotently, so a capability plugs its state in without touching this file.
 *
 * A file that is not what it should be is never taken for a new peer. Before SQLite touches it,
 * `checkDatabaseFiles` refuses an empty database, a database missing beside its WAL, and a WAL
 * missing while the WAL index (`-shm`) says it held pages the database lacks; after opening, a
 * database holding tables but none of ours is refused as foreign, and a database that lost its
 * peer id is refused instead of given a new one. Only a data dir with no file for the name starts a
 * new peer. While a peer runs, `walProblem` notices a WAL deleted or replaced under it (see
 * docs/recovery.md, "A lost WAL").
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import type { MemberView } from '../p2p/protocol.js';
import { loadable } from '../p2p/bounds.js';
import { writeFailure } from './health.js';

/**
 * The error to give when opening `file` failed because its disk is full, or undefined for any other
 * failure: the file is not at fault then, so the usual advice (move it aside) would be wrong.
 */
export function diskFullError(file: string, err: unknown): StoreError | undefined {
  if (writeFailure(file, err).kind !== 'full') return undefined;
  return new StoreError(
    `cannot open ${file}: the disk holding ${path.dirname(file)} is full; free some space there (or pass another --data-dir) and start again`,
  );
}

export class StoreError extends Error {
  override name = 'StoreError';
}

/** Tables named in the error line about a foreign database before "...". */
const FOREIGN_TABLES_SHOWN = 3;
/** Tables that only a peer database holds (store.ts and checkpoint.ts). */
const PEER_TABLES = ['meta', 'checkpoints'];

/**
 * The WAL index header (sqlite.org/walformat.html): two copies of 48 bytes, then the checkpoint
 * information. Written in the machine's byte order.
 */
const WAL_INDEX_VERSION = 3007000;
const WAL_INDEX_HEADER_BYTES = 48;
const WAL_INDEX_IS_INIT_OFFSET = 12;
const WAL_INDEX_MX_FRAME_OFFSET = 16;
const WAL_INDEX_N_BACKFILL_OFFSET = 96;
const WAL_INDEX_READ_BYTES = WAL_INDEX_N_BACKFILL_OFFSET + 4;

/**
 * Remembered peers (the `peers` table, join/remembered.ts): at most REMEMBERED_PEERS_MAX rows, so
 * a forger that joins fake members one after another cannot grow the file. When the cap is passed,
 * rows of gone members that were seen for less than REMEMBERED_PROTECT_ALIVE_MS go first (oldest
 * last seen first), so such churn cannot push out the live and long-lived peers a restart needs. Rows not seen for
 * REMEMBERED_PEER_TTL_MS are dropped at start: a peer gone for three days is not worth a datagram.
 */
export const REMEMBERED_PEERS_MAX = 256;
export const REMEMBERED_PROTECT_ALIVE_MS = 10 * 60_000;
export const REMEMBERED_PEER_TTL_MS = 72 * 3_600_000;

export interface PeerRow {
  id: string;
  name: string;
  address: string;
  firstSeen: number;
  lastSeen: number;
  connected: boolean;
}

/** A file of peer `name` in the data dir: `<name><suffix>` (the database, its lock, ...). */
export function peerFile(dataDir: string, name: string, suffix: string): string {
  // Names may hold characters a file system dislikes; encoding keeps simple names readable.
  return path.join(dataDir, `${encodeURIComponent(name)}${suffix}`);
}

export function databasePath(dataDir: string, name: string): string {
  return peerFile(dataDir, name, '.db');
}

export class PeerStore {
  /** Device and inode of the WAL this connection writes, as found at open. */
  private wal: string | null = null;

  private constructor(
    readonly db: Database.Database,
    readonly file: string,
  ) {}

  get walFile(): string {
    return `${this.file}-wal`;
  }

  /** Opens (creating if needed) the database of peer `name`. Never overwrites a damaged file. */
  static open(dataDir: string, name: string): PeerStore {
    ensureDataDir(dataDir);
    const file = databasePath(dataDir, name);
    checkDatabaseFiles(file);
    let db: Database.Database | undefined;
    try {
      db = new Database(file);
      checkNotForeign(db, file);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
        CREATE TABLE IF NOT EXISTS peers (
          id TEXT PRIMARY KEY,
          name TEXT NOT NULL,
          address TEXT NOT NULL,
          first_seen INTEGER NOT NULL,
          last_seen INTEGER NOT NULL,
          connected INTEGER NOT NULL DEFAULT 0
        ) STRICT;
      `);
    } catch (err) {
      db?.close();
      if (err instanceof StoreError) throw err;
      throw (
        diskFullError(file, err) ??
        new StoreError(
          `${file} cannot be opened as a peer database (${(err as Error).message}); it was left untouched: move it aside or run 'peer recover'`,
        )
      );
    }
    const store = new PeerStore(db, file);
    store.wal = fileIdentity(store.walFile);
    return store;
  }

  /**
   * The identity to start with: a stable random id, and an incarnation one above any used before,
   * so the group can tell this start from the last one.
   */
  startIdentity(): { id: string; incarnation: number } {
    return this.db.transaction(() => {
      let id = this.getMeta('peer_id');
      if (id === undefined && this.metaKeys() === 0) {
        id = randomBytes(8).toString('hex');
        this.setMeta('peer_id', id);
      } else if (id === undefined || !/^[0-9a-f]{16}$/.test(id))
        // A peer that was started before: a new id would be a new peer under the old name.
        throw new StoreError(
          `${this.file} has ${id === undefined ? 'lost its peer id' : 'a damaged peer id'}, and starting would make this name a new peer; it was left untouched: restore it from a backup, or move it aside to start a new peer`,
        );
      const saved = this.getMeta('incarnation') ?? '0';
      const incarnation = Number(saved) + 1;
      // A value we could not have saved (bounds.ts) is damage: counting on from it would be refused
      // by every other peer, so say so rather than start as a peer nobody hears.
      if (!loadable(incarnation))
        throw new StoreError(
          `${this.file} is damaged: its saved incarnation '${saved}' is past what a peer can count from; it was left untouched: restore a backup, or move it aside to start this peer afresh under a new id`,
        );
      this.setMeta('incarnation', String(incarnation));
      return { id, incarnation };
    })();
  }

  saveIncarnation(incarnation: number): void {
    this.setMeta('incarnation', String(incarnation));
  }

  private metaKeys(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM meta').get() as { n: number }).n;
  }

  getMeta(key: string): string | undefined {
    const row = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as
      { value: string } | undefined;
    return row?.value;
  }

  setMeta(key: string, value: string): void {
    this.db
      .prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      )
      .run(key, value);
  }

  /**
   * Records members as seen now (connected) or dead, and forgets those that left, in one
   * transaction, then evicts past REMEMBERED_PEERS_MAX (see there).
   */
  rememberPeers(changes: ReadonlyArray<{ member: MemberView; connected: boolean }>, wallMs: number): void {
    const upsert = this.db.prepare(
      `INSERT INTO peers (id, name, address, first_seen, last_seen, connected) VALUES (@id, @name, @address, @now, @now, @c)
       ON CONFLICT(id) DO UPDATE SET name = excluded.name, address = excluded.address, last_seen = excluded.last_seen, connected = excluded.connected`,
    );
    const forget = this.db.prepare('DELETE FROM peers WHERE id = ?');
    const now = Math.round(wallMs);
    this.db.transaction(() => {
      for (const { member: m, connected } of changes)
        if (m.state === 'left') forget.run(m.id);
        else upsert.run({ id: m.id, name: m.name, address: m.address, now, c: connected ? 1 : 0 });
      this.db
        .prepare(
          `DELETE FROM peers WHERE id IN (SELECT id FROM peers
             ORDER BY (connected = 1 OR last_seen - first_seen >= @protect) DESC, last_seen DESC, id LIMIT -1 OFFSET @cap)`,
        )
        .run({ protect: REMEMBERED_PROTECT_ALIVE_MS, cap: REMEMBERED_PEERS_MAX });
    })();
  }

  /** Drops the rows not seen for REMEMBERED_PEER_TTL_MS; returns how many. */
  forgetExpiredPeers(wallMs: number): number {
    return this.db
      .prepare('DELETE FROM peers WHERE last_seen < ?')
      .run(Math.round(wallMs - REMEMBERED_PEER_TTL_MS)).changes;
  }

  /** The addresses of up to `limit` remembered peers, the most recently seen first. */
  peerAddresses(limit: number): string[] {
    return rememberedAddresses(this.db, limit);
  }

  peers(): PeerRow[] {
    const rows = this.db
      .prepare('SELECT id, name, address, first_seen, last_seen, connected FROM peers ORDER BY name, id')
      .all() as Array<{
      id: string;
      name: string;
      address: string;
      first_seen: number;
      last_seen: number;
      connected: number;
    }>;
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      address: r.address,
      firstSeen: r.first_seen,
      lastSeen: r.last_seen,
      connected: r.connected === 1,
    }));
  }

  /**
   * One line when the WAL this connection writes is no longer the file at `<file>-wal` (deleted
   * or replaced under the running peer), else null. SQLite keeps writing the file it opened, so
   * what goes there now would vanish with the process.
   */
  walProblem(): string | null {
    const now = fileIdentity(this.walFile);
    if (this.wal === null) this.wal = now;
    if (now === this.wal) return null;
    return `${this.walFile} was ${now === null ? 'deleted' : 'replaced'} while the peer ran`;
  }

  /**
   * After the WAL was lost: copies every page SQLite still holds in it (it keeps the deleted file
   * open) into the main file, which the checkpoint fsyncs, then refuses every later write on this
   * connection and `others` (query_only), so nothing more is acknowledged into a file that is
   * gone. Returns what was saved, as a phrase for the log line.
   */
  saveAndRefuseWrites(others: readonly Database.Database[] = []): string {
    let saved: string;
    try {
      const [r] = this.db.pragma('wal_checkpoint(FULL)') as Array<{
        busy: number;
        log: number;
        checkpointed: number;
      }>;
      saved =
        r && r.busy === 0 && r.log === r.checkpointed
          ? `its ${r.log} page(s) were saved into ${this.file}`
          : `only ${r?.checkpointed ?? 0} of its ${r?.log ?? '?'} page(s) could be saved into ${this.file}`;
    } catch (err) {
      saved = `nothing could be saved into ${this.file} (${(err as Error).message})`;
    }
    for (const db of [this.db, ...others]) if (db.open) db.pragma('query_only = ON');
    return saved;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/** Why `dir` cannot be a data dir because it, or a part of its path, is a file; else null. */
export function notADirectory(dir: string): string | null {
  try {
    return fs.statSync(dir).isDirectory() ? null : `${dir} is not a directory`;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOTDIR'
      ? `${dir} is not a directory (a part of its path is a file)`
      : null;
  }
}

/** Creates the data dir if needed and checks that it can be written; one line saying why not. */
export function ensureDataDir(dir: string): void {
  const notDir = notADirectory(dir);
  if (notDir) throw new StoreError(`data dir ${notDir}; pass --data-dir with a directory`);
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new StoreError(
      code === 'EROFS'
        ? `data dir ${dir} is read-only (EROFS: read-only file system); make it writable, or copy it to a writable directory and pass that as --data-dir`
        : `data dir ${dir} is not writable (${code}); pass --data-dir with a writable directory`,
    );
  }
}

/** Throws when the database of peer `name` is not in `dataDir` (peer recover's precondition). */
export function requireDatabase(dataDir: string, name: string): string {
  const file = databasePath(dataDir, name);
  const notDir = notADirectory(dataDir);
  if (notDir) throw new StoreError(`data dir ${notDir}; pass --data-dir with a directory`);
  if (!fs.existsSync(file))
    throw new StoreError(
      `no database for peer '${name}' in ${dataDir} (${file}); check --name and --data-dir`,
    );
  return file;
}

/** Up to `limit` remembered addresses, the most recently seen first; a row that is not text is left out. */
function rememberedAddresses(db: Database.Database, limit: number): string[] {
  return (
    db.prepare('SELECT address FROM peers ORDER BY last_seen DESC, id LIMIT ?').all(limit) as Array<{
      address: unknown;
    }>
  )
    .map((r) => r.address)
    .filter((a): a is string => typeof a === 'string');
}

/**
 * The remembered peers of the database `file`, read-only (`peer doctor`), the most recently seen
 * first; none when it has no peers table or cannot be read (the doctor's database check says why).
 */
export function readRememberedAddresses(file: string, limit: number): string[] {
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    return rememberedAddresses(db, limit);
  } catch {
    return [];
  } finally {
    db?.close();
  }
}

/**
 * Checks the files of a database before SQLite opens it (SQLite would take each of these for a
 * new or a smaller database without a word). Every refusal leaves the files untouched.
 */
export function checkDatabaseFiles(file: string): void {
  const wal = `${file}-wal`;
  const shm = `${file}-shm`;
  const size = fileSize(file);
  if (size === null) {
    if (fs.existsSync(wal) || fs.existsSync(shm))
      throw new StoreError(
        `${file} is missing but ${fs.existsSync(wal) ? wal : shm} is there: the database was moved or deleted; put it back, or move ${wal} and ${shm} aside to start a new peer`,
      );
    return;
  }
  if (size === 0)
    throw new StoreError(
      `${file} is empty (0 bytes): it no longer holds this peer's id or state; it was left untouched: restore it from a backup, or move it aside to start a new peer`,
    );
  if (fileSize(wal) !== null) return;
  const frames = walIndexFrames(shm);
  if (frames && frames.written > frames.saved)
    throw new StoreError(
      `${wal} is missing but ${shm} says it held ${frames.written - frames.saved} page(s) not yet in ${file}: the last writes went with it; restore ${wal} from a backup, or move ${shm} aside to start from what ${file} holds`,
    );
}

/** Refuses a database that holds tables but none of a peer's: another program's file. */
export function checkNotForeign(db: Database.Database, file: string): void {
  const tables = (
    db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{
      name: string;
    }>
  ).map((r) => r.name);
  if (tables.length > 0 && !tables.some((t) => PEER_TABLES.includes(t)))
    throw new StoreError(
      `${file} is not a peer database (it holds the tables ${tables.slice(0, FOREIGN_TABLES_SHOWN).join(', ')}${tables.length > FOREIGN_TABLES_SHOWN ? ', ...' : ''}); it was left untouched: pass another --data-dir or --name`,
    );
}

function fileSize(file: string): number | null {
  try {
    return fs.statSync(file).size;
  } catch {
    return null;
  }
}

function fileIdentity(file: string): string | null {
  try {
    const st = fs.statSync(file);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

/**
 * Frames written to the WAL and frames already copied into the database, from the WAL index; null
 * when there is no index or its header does not check out (then it says nothing).
 */
function walIndexFrames(shm: string): { written: number; saved: number } | null {
  const buf = Buffer.alloc(WAL_INDEX_READ_BYTES);
  let n: number;
  try {
    const fd = fs.openSync(shm, 'r');
    try {
      n = fs.readSync(fd, buf, 0, buf.length, 0);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return null;
  }
  if (n < buf.length) return null;
  const le = os.endianness() === 'LE';
  const u32 = (at: number) => (le ? buf.readUInt32LE(at) : buf.readUInt32BE(at));
  const first = buf.subarray(0, WAL_INDEX_HEADER_BYTES);
  const second = buf.subarray(WAL_INDEX_HEADER_BYTES, 2 * WAL_INDEX_HEADER_BYTES);
  if (u32(0) !== WAL_INDEX_VERSION || buf[WAL_INDEX_IS_INIT_OFFSET] !== 1 || !first.equals(second))
    return null;
  return { written: u32(WAL_INDEX_MX_FRAME_OFFSET), saved: u32(WAL_INDEX_N_BACKFILL_OFFSET) };
}
