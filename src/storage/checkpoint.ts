/**
 * The durability core (issue 8): group-committed writes, an inbox of received messages with a
 * processed flag, checksummed checkpoints of every capability's state, and a log of replica
 * entries to rebuild a replica file from.
 *
 * Durability contract.
 * - This module opens its OWN connection to the peer's SQLite file with `synchronous = FULL` in
 *   WAL mode (store.ts's connection stays at NORMAL for the cheap, rebuildable writes of other
 *   modules). At FULL, SQLite fsyncs the WAL at every commit, so a committed transaction survives
 *   kill -9 AND a power cut or kernel crash (as far as the disk honours fsync).
 * - Writes are batched (group commit): `submit()` queues an operation; the queue is committed as
 *   one transaction when GROUP_COMMIT_OPS_MAX operations are waiting or GROUP_COMMIT_DELAY_MS_MAX
 *   after the first one was queued, whichever comes first. One fsync then covers the whole batch:
 *   that is how FULL reaches >= 100,000 ops/s.
 * - The promise of `submit()` (and of receive(), processed(), logReplica()) settles only after
 *   the commit returned: a caller that acknowledges (a chat ack, a replicate ack, exit 0) only
 *   after it resolves never acknowledges something a crash can take back. Before it resolves,
 *   nothing is promised: a crash loses the whole batch, never part of one (a transaction is
 *   atomic).
 *
 * Integrity. Each inbox row and each replica-log row carries a CRC-32 of its content; each
 * checkpoint carries a SHA-256 of its JSON. Rows are validated on read: a damaged row is counted
 * and skipped (reported, never silently used), and a damaged checkpoint falls back to the previous
 * good one (CHECKPOINTS_KEPT are kept). A file SQLite itself cannot read, an empty or foreign
 * database and a lost WAL are refused with one line and never written to (PeerStore.open and
 * openCheckpoints both check before any write, through store.ts's checks).
 *
 * Exactly once. `processed(id, effect)` runs the effect's SQL and sets the processed flag in one
 * transaction, so after any crash a message is either processed with its effect or neither:
 * replay (recovery.ts) processes exactly the rows still flagged unprocessed.
 */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import Database from 'better-sqlite3';
import { StoreError, checkDatabaseFiles, checkNotForeign, databasePath, requireDatabase } from './store.js';
import { checkIntegrity, type IntegrityLevel } from './recovery.js';

/** Longest a queued write waits before its batch is committed. */
export const GROUP_COMMIT_DELAY_MS_MAX = 10;
/** A batch is committed at once when this many operations wait. */
export const GROUP_COMMIT_OPS_MAX = 8192;
/** Checkpoints kept, newest first: a damaged newest falls back to an older one. */
export const CHECKPOINTS_KEPT = 8;
/**
 * Payload of one inbox message (bytes of UTF-8): a chat line of 1 MiB of text (CHAT_TEXT_BYTES_MAX)
 * as JSON, which is up to 6 MiB when every character is escaped, with its other fields.
 */
export const INBOX_PAYLOAD_BYTES_MAX = 8 * 1024 * 1024;
/** Rows read per query while replaying. */
export const REPLAY_BATCH_ROWS = 10_000;
/** A capability's checkpointed state, as JSON (bytes). */
export const CHECKPOINT_STATE_BYTES_MAX = 1024 * 1024;

export interface InboxMessage {
  /** Unique message id (de-duplication key), e.g. a reliable messageKey. */
  id: string;
  topic: string;
  sender: string;
  lamport: number;
  payload: string;
}

export interface StoredMessage extends InboxMessage {
  rowid: number;
  receivedAt: number;
  processed: boolean;
}

/** What a capability puts into a checkpoint. capture() must be cheap and return plain JSON. */
export interface CheckpointSource {
  capture(): unknown;
  /** One short phrase for the recovery line, e.g. "token generation 57". */
  describe?(state: unknown): string | null;
  /**
   * Whether a restart from `saved` (what the last checkpoint holds) does as well as one from
   * `now`, so that no new checkpoint is needed for this source (checkpoint's `ifChanged`). By
   * default: the two are the same JSON.
   */
  serves?(saved: unknown, now: unknown): boolean;
  /**
   * Whether capture() reads nothing but this database. Such a source is captured again only when
   * the database may have changed since its last capture (Checkpoints.databaseVersion): an idle
   * peer's checkpoint timer then runs one query a second, not one or two per source.
   */
  fromDatabase?: boolean;
}

export interface Checkpoint {
  seq: number;
  takenAt: number;
  /** Highest inbox rowid when it was taken: rows above it arrived later. */
  inboxRowid: number;
  states: Record<string, unknown>;
}

export interface ReplicaLogEntry {
  origin: string;
  seq: number;
  lamport: number;
  text: string;
}

export interface GroupCommitStats {
  commits: number;
  ops: number;
  /** Largest batch committed. */
  batchMax: number;
  /** Operations that failed (their promise rejected). */
  failed: number;
}

interface Pending {
  op: (db: Database.Database) => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export function inboxCrc(m: InboxMessage): number {
  return crc32(`${m.id}\n${m.topic}\n${m.sender}\n${m.lamport}\n${m.payload}`);
}

function replicaCrc(e: ReplicaLogEntry): number {
  return crc32(`${e.origin}\n${e.seq}\n${e.lamport}\n${e.text}`);
}

function sha(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/**
 * Opens the checkpoint connection. With `mustExist` (peer recover) a missing file is an error
 * instead of a new database; with `integrity` SQLite's own check runs before anything is written.
 */
export function openCheckpoints(
  dataDir: string,
  name: string,
  opts: { mustExist?: boolean; integrity?: IntegrityLevel } = {},
): Checkpoints {
  const file = opts.mustExist ? requireDatabase(dataDir, name) : databasePath(dataDir, name);
  // An empty database, or a WAL lost with pages the database lacks, is refused before any write.
  checkDatabaseFiles(file);
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { fileMustExist: opts.mustExist ?? false });
    // Reading the schema first makes a file that is not a database fail here, before any write.
    checkNotForeign(db, file);
    // Checked before the constructor's CREATE TABLE and pragmas: a damaged file is never written.
    checkIntegrity(db, file, opts.integrity ?? 'none');
    return new Checkpoints(db, file);
  } catch (err) {
    db?.close();
    if (err instanceof StoreError) throw err;
    throw new StoreError(
      `${file} cannot be read as a peer database (${(err as Error).message}); it was left untouched: move it aside and restore a backup`,
    );
  }
}

export class Checkpoints {
  readonly stats: GroupCommitStats = { commits: 0, ops: 0, batchMax: 0, failed: 0 };
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly sources = new Map<string, CheckpointSource>();
  private readonly stmt: Record<string, Database.Statement>;
  /** Each source's state as JSON in the last checkpoint this connection committed (see `ifChanged`). */
  private committed: Map<string, { state: unknown; json: string }> | null = null;
  /** The last capture of every source, and the database's version it was taken at (see fromDatabase). */
  private captured: { version: string; states: Map<string, { state: unknown; json: string }> } | null = null;

  constructor(
    readonly db: Database.Database,
    readonly file: string,
  ) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    db.exec(`
      CREATE TABLE IF NOT EXISTS inbox (
        id TEXT PRIMARY KEY,
        topic TEXT NOT NULL,
        sender TEXT NOT NULL,
        lamport INTEGER NOT NULL,
        payload TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        processed INTEGER NOT NULL DEFAULT 0,
        crc INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS inbox_unprocessed ON inbox (processed) WHERE processed = 0;
      CREATE TABLE IF NOT EXISTS checkpoints (
        seq INTEGER PRIMARY KEY,
        taken_at INTEGER NOT NULL,
        inbox_rowid INTEGER NOT NULL,
        state TEXT NOT NULL,
        sha TEXT NOT NULL
      ) STRICT;
      CREATE TABLE IF NOT EXISTS replica_log (
        replica TEXT NOT NULL,
        origin TEXT NOT NULL,
        seq INTEGER NOT NULL,
        lamport INTEGER NOT NULL,
        text TEXT NOT NULL,
        crc INTEGER NOT NULL,
        PRIMARY KEY (replica, origin, seq)
      ) STRICT;
    `);
    this.stmt = {
      receive: db.prepare(
        `INSERT OR IGNORE INTO inbox (id, topic, sender, lamport, payload, received_at, processed, crc)
         VALUES (?, ?, ?, ?, ?, ?, 0, ?)`,
      ),
      processed: db.prepare('UPDATE inbox SET processed = 1 WHERE id = ? AND processed = 0'),
      exists: db.prepare('SELECT processed FROM inbox WHERE id = ?'),
      unprocessed: db.prepare(
        `SELECT rowid, id, topic, sender, lamport, payload, received_at, processed, crc FROM inbox
         WHERE processed = 0 AND rowid > ? ORDER BY rowid LIMIT ?`,
      ),
      countUnprocessed: db.prepare('SELECT count(*) AS n FROM inbox WHERE processed = 0'),
      maxRowid: db.prepare('SELECT COALESCE(MAX(rowid), 0) AS r FROM inbox'),
      lamportAfter: db.prepare('SELECT COALESCE(MAX(lamport), 0) AS l FROM inbox WHERE rowid > ?'),
      insertCheckpoint: db.prepare(
        'INSERT INTO checkpoints (seq, taken_at, inbox_rowid, state, sha) VALUES (?, ?, ?, ?, ?)',
      ),
      lastSeq: db.prepare('SELECT COALESCE(MAX(seq), 0) AS s FROM checkpoints'),
      prune: db.prepare('DELETE FROM checkpoints WHERE seq <= ?'),
      checkpoints: db.prepare(
        'SELECT seq, taken_at, inbox_rowid, state, sha FROM checkpoints ORDER BY seq DESC',
      ),
      logReplica: db.prepare(
        'INSERT OR REPLACE INTO replica_log (replica, origin, seq, lamport, text, crc) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      replicaRows: db.prepare(
        'SELECT origin, seq, lamport, text, crc FROM replica_log WHERE replica = ? ORDER BY lamport, origin, seq',
      ),
      replicaCount: db.prepare('SELECT count(*) AS n FROM replica_log WHERE replica = ?'),
      version: db.prepare(
        `SELECT total_changes() AS c, (SELECT data_version FROM pragma_data_version) AS d,
                (SELECT schema_version FROM pragma_schema_version) AS s`,
      ),
    };
  }

  // ---- group commit -------------------------------------------------------------------------

  /** Queues an operation; resolves with its result once the batch holding it is durable. */
  submit<T>(op: (db: Database.Database) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (!this.db.open) return reject(new Error(`checkpoint store ${this.file} is closed`));
      this.queue.push({ op, resolve: resolve as (v: unknown) => void, reject });
      if (this.queue.length >= GROUP_COMMIT_OPS_MAX) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), GROUP_COMMIT_DELAY_MS_MAX);
    });
  }

  /** Commits what is queued now (also called on close). Synchronous: durable when it returns. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    if (!this.db.open) {
      for (const p of batch) p.reject(new Error(`checkpoint store ${this.file} is closed`));
      return;
    }
    let results: unknown[];
    try {
      results = this.db.transaction(() => batch.map((p) => p.op(this.db)))();
    } catch {
      // One bad operation must not fail its neighbours: run them one transaction each.
      for (const p of batch) {
        try {
          p.resolve(this.db.transaction(() => p.op(this.db))());
          this.stats.commits++;
          this.stats.ops++;
        } catch (err) {
          this.stats.failed++;
          p.reject(err);
        }
      }
      return;
    }
    this.stats.commits++;
    this.stats.ops += batch.length;
    this.stats.batchMax = Math.max(this.stats.batchMax, batch.length);
    for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]);
  }

  get queued(): number {
    return this.queue.length;
  }

  // ---- inbox ----------------------------------------------------------------------------------

  /**
   * Records a received message. Resolves once durable with `duplicate: true` when the id was
   * already in the inbox (a retransmission: ack it again, do not process it again).
   */
  receive(m: InboxMessage, receivedAt = Date.now()): Promise<{ duplicate: boolean }> {
    checkMessage(m);
    return this.submit(() => ({ duplicate: !this.receiveNow(m, receivedAt) }));
  }

  /**
   * Records several messages (e.g. one datagram's worth) as one operation: one promise instead of
   * many. Resolves once durable with, per message, whether it was a duplicate.
   */
  receiveMany(ms: readonly InboxMessage[], receivedAt = Date.now()): Promise<boolean[]> {
    for (const m of ms) checkMessage(m);
    return this.submit(() => ms.map((m) => !this.receiveNow(m, receivedAt)));
  }

  /** The body of receive(), for an operation that receives and processes in one transaction. */
  receiveNow(m: InboxMessage, receivedAt = Date.now()): boolean {
    checkMessage(m);
    const r = this.stmt.receive!.run(
      m.id,
      m.topic,
      m.sender,
      m.lamport,
      m.payload,
      Math.round(receivedAt),
      inboxCrc(m),
    );
    return r.changes > 0;
  }

  /**
   * Marks a message processed, running `effect` (its SQL writes) in the same transaction. Resolves
   * false, without running the effect, when it was already processed or was never received.
   */
  processed(id: string, effect?: (db: Database.Database) => void): Promise<boolean> {
    return this.submit(() => this.processNow(id, effect));
  }

  /** The body of processed(), for callers already inside a transaction (replay). */
  processNow(id: string, effect?: (db: Database.Database) => void): boolean {
    if (this.stmt.processed!.run(id).changes === 0) return false;
    effect?.(this.db);
    return true;
  }

  /** 'new', 'received' (not processed) or 'processed'. Reads committed state only. */
  status(id: string): 'new' | 'received' | 'processed' {
    const r = this.stmt.exists!.get(id) as { processed: number } | undefined;
    return !r ? 'new' : r.processed ? 'processed' : 'received';
  }

  unprocessedCount(): number {
    return (this.stmt.countUnprocessed!.get() as { n: number }).n;
  }

  /** Unprocessed messages in arrival order, a page at a time; damaged rows are returned apart. */
  unprocessed(
    afterRowid: number,
    limit = REPLAY_BATCH_ROWS,
  ): { rows: StoredMessage[]; damaged: StoredMessage[] } {
    const raw = this.stmt.unprocessed!.all(afterRowid, limit) as Array<{
      rowid: number;
      id: string;
      topic: string;
      sender: string;
      lamport: number;
      payload: string;
      received_at: number;
      processed: number;
      crc: number;
    }>;
    const rows: StoredMessage[] = [];
    const damaged: StoredMessage[] = [];
    for (const r of raw) {
      const m: StoredMessage = {
        rowid: r.rowid,
        id: r.id,
        topic: r.topic,
        sender: r.sender,
        lamport: r.lamport,
        payload: r.payload,
        receivedAt: r.received_at,
        processed: r.processed === 1,
      };
      (inboxCrc(m) === r.crc ? rows : damaged).push(m);
    }
    return { rows, damaged };
  }

  // ---- checkpoints ----------------------------------------------------------------------------

  /** A capability plugs its state in under a unique name. */
  register(name: string, source: CheckpointSource): void {
    if (this.sources.has(name)) throw new Error(`checkpoint source '${name}' registered twice`);
    this.sources.set(name, source);
  }

  /** Every registered source's state now (what a checkpoint or a snapshot records). */
  capture(): Record<string, unknown> {
    const states: Record<string, unknown> = {};
    for (const [name, s] of this.sources) states[name] = s.capture();
    return states;
  }

  describe(name: string, state: unknown): string | null {
    return this.sources.get(name)?.describe?.(state) ?? null;
  }

  /**
   * Captures every registered source and commits one checkpoint (after flushing the queue, so the
   * checkpoint never runs ahead of the writes it describes). Returns its sequence number.
   *
   * With `ifChanged`, nothing is written (null is returned) when the last checkpoint committed on
   * this connection still serves every source (CheckpointSource.serves): an idle peer's periodic
   * checkpoint was a transaction and an fsync every second that said nothing new.
   */
  checkpoint(now = Date.now(), opts: { ifChanged?: boolean } = {}): number | null {
    this.flush();
    const version = this.databaseVersion();
    const kept = this.captured?.version === version ? this.captured.states : null;
    const captured = new Map<string, { state: unknown; json: string }>();
    for (const [name, s] of this.sources) {
      const last = s.fromDatabase ? kept?.get(name) : undefined;
      if (last) {
        captured.set(name, last);
        continue;
      }
      const state = s.capture();
      captured.set(name, { state, json: JSON.stringify(state) ?? '' });
    }
    this.captured = { version, states: captured };
    if (opts.ifChanged && this.committed && this.serves(this.committed, captured)) return null;
    const json = JSON.stringify(Object.fromEntries([...captured].map(([name, c]) => [name, c.state])));
    if (Buffer.byteLength(json) > CHECKPOINT_STATE_BYTES_MAX)
      throw new Error(
        `checkpoint state is ${Buffer.byteLength(json)} bytes, over ${CHECKPOINT_STATE_BYTES_MAX}`,
      );
    const seq = this.db.transaction(() => {
      const seq = (this.stmt.lastSeq!.get() as { s: number }).s + 1;
      const inboxRowid = (this.stmt.maxRowid!.get() as { r: number }).r;
      this.stmt.insertCheckpoint!.run(
        seq,
        Math.round(now),
        inboxRowid,
        json,
        sha(`${seq}\n${inboxRowid}\n${json}`),
      );
      this.stmt.prune!.run(seq - CHECKPOINTS_KEPT);
      return seq;
    })();
    this.committed = captured;
    // Our own rows moved total_changes; no source reads the checkpoints table, so what they
    // captured still holds at the version after them.
    this.captured = { version: this.databaseVersion(), states: captured };
    return seq;
  }

  /**
   * Changes made on this connection, commits by any other (another process on the same data
   * directory, or another connection of this one), and the schema (a table created): between two
   * equal readings a query of this database returns what it returned before.
   */
  private databaseVersion(): string {
    const v = this.stmt.version!.get() as { c: number; d: number; s: number };
    return `${v.c}:${v.d}:${v.s}`;
  }

  /** Whether a checkpoint of `saved` serves every source as well as one of `now` would. */
  private serves(
    saved: Map<string, { state: unknown; json: string }>,
    now: Map<string, { state: unknown; json: string }>,
  ): boolean {
    if (saved.size !== now.size) return false;
    for (const [name, n] of now) {
      const s = saved.get(name);
      if (!s) return false;
      const serves = this.sources.get(name)?.serves;
      if (serves ? !serves(s.state, n.state) : s.json !== n.json) return false;
    }
    return true;
  }

  /** The newest checkpoint whose checksum and JSON are good, and how many newer ones were damaged. */
  latest(): { checkpoint: Checkpoint | null; damaged: number } {
    let damaged = 0;
    for (const r of this.stmt.checkpoints!.iterate() as Iterable<{
      seq: number;
      taken_at: number;
      inbox_rowid: number;
      state: string;
      sha: string;
    }>) {
      if (sha(`${r.seq}\n${r.inbox_rowid}\n${r.state}`) === r.sha) {
        try {
          const states: unknown = JSON.parse(r.state);
          if (typeof states === 'object' && states !== null && !Array.isArray(states))
            return {
              checkpoint: {
                seq: r.seq,
                takenAt: r.taken_at,
                inboxRowid: r.inbox_rowid,
                states: states as Record<string, unknown>,
              },
              damaged,
            };
        } catch {
          /* counted below */
        }
      }
      damaged++;
    }
    return { checkpoint: null, damaged };
  }

  /** Highest Lamport time of messages that arrived after inbox row `rowid`. */
  lamportAfter(rowid: number): number {
    return (this.stmt.lamportAfter!.get(rowid) as { l: number }).l;
  }

  // ---- replica log ----------------------------------------------------------------------------

  /** Logs replica entries (a later version of an identity replaces the logged one); resolves once durable. */
  logReplica(replica: string, entries: readonly ReplicaLogEntry[]): Promise<number> {
    return this.submit(() => {
      let added = 0;
      for (const e of entries)
        added += this.stmt.logReplica!.run(
          replica,
          e.origin,
          e.seq,
          e.lamport,
          e.text,
          replicaCrc(e),
        ).changes;
      return added;
    });
  }

  /** The logged entries of a replica in canonical order; damaged rows are counted, not returned. */
  replicaEntries(replica: string): { entries: ReplicaLogEntry[]; damaged: number } {
    const entries: ReplicaLogEntry[] = [];
    let damaged = 0;
    for (const r of this.stmt.replicaRows!.iterate(replica) as Iterable<ReplicaLogEntry & { crc: number }>) {
      const e = { origin: r.origin, seq: r.seq, lamport: r.lamport, text: r.text };
      if (replicaCrc(e) === r.crc) entries.push(e);
      else damaged++;
    }
    return { entries, damaged };
  }

  replicaLogged(replica: string): number {
    return (this.stmt.replicaCount!.get(replica) as { n: number }).n;
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  /** Commits what is queued and closes the connection. Safe to call twice. */
  close(): void {
    if (!this.db.open) return;
    this.flush();
    this.db.close();
  }
}

function checkMessage(m: InboxMessage): void {
  if (typeof m.id !== 'string' || m.id.length === 0 || m.id.length > 256)
    throw new Error('inbox message id must be 1-256 characters');
  if (!Number.isSafeInteger(m.lamport) || m.lamport < 0)
    throw new Error('inbox Lamport time must be a safe uint');
  if (Buffer.byteLength(m.payload) > INBOX_PAYLOAD_BYTES_MAX)
    throw new Error(`inbox payload over ${INBOX_PAYLOAD_BYTES_MAX} bytes`);
}

// ---- tools for benchmarks and tests -------------------------------------------------------------

export interface ThroughputResult {
  ops: number;
  ms: number;
  opsPerS: number;
  commits: number;
  batchMax: number;
}

/**
 * Writes `ops` inbox messages through group commit, `inFlight` calls outstanding at a time (as many
 * concurrent senders would), `perCall` messages per call (1: receive(); more: receiveMany(), as a
 * receiver of packed datagrams would), and reports throughput at synchronous=FULL. For the bench.
 */
export async function measureGroupCommit(
  cp: Checkpoints,
  ops: number,
  inFlight = GROUP_COMMIT_OPS_MAX,
  perCall = 1,
): Promise<ThroughputResult> {
  const before = { ...cp.stats };
  const started = performance.now();
  let next = 0;
  const payload = 'x'.repeat(64);
  const message = (i: number) => ({
    id: `bench/${started}/${i}`,
    topic: 'bench',
    sender: 'b',
    lamport: i,
    payload,
  });
  const worker = async () => {
    while (next < ops) {
      const from = next;
      next = Math.min(ops, next + perCall);
      if (perCall === 1) await cp.receive(message(from));
      else await cp.receiveMany(Array.from({ length: next - from }, (_, k) => message(from + k)));
    }
  };
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(inFlight, Math.ceil(ops / perCall))) }, worker),
  );
  const ms = performance.now() - started;
  return {
    ops,
    ms,
    opsPerS: Math.round((ops / ms) * 1000),
    commits: cp.stats.commits - before.commits,
    batchMax: cp.stats.batchMax,
  };
}

/**
 * Fills the inbox with `total` messages, all processed except the last `unprocessed`, in large
 * transactions (fast setup for the 1,000,000-message recovery bench), then takes a checkpoint.
 */
export function fillInbox(cp: Checkpoints, total: number, unprocessed = 0): void {
  const insert = cp.db.prepare(
    'INSERT OR IGNORE INTO inbox (id, topic, sender, lamport, payload, received_at, processed, crc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const chunk = 50_000;
  for (let from = 0; from < total; from += chunk) {
    cp.db.transaction(() => {
      for (let i = from; i < Math.min(total, from + chunk); i++) {
        const m = { id: `fill/${i}`, topic: 'fill', sender: 'f', lamport: i + 1, payload: `message ${i}` };
        insert.run(
          m.id,
          m.topic,
          m.sender,
          m.lamport,
          m.payload,
          0,
          i < total - unprocessed ? 1 : 0,
          inboxCrc(m),
        );
      }
    })();
  }
  cp.checkpoint();
}
