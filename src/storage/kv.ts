/**
 * The key-value store of `peer kv`: the operation encoding, the conflict rule, and a holder's
 * tables in its SQLite file.
 *
 * A kv operation is a replicated entry (p2p/replication/entry.ts Entry: origin, seq, Lamport time, text)
 * whose text encodes the operation:
 *     put:    'P' <key length in UTF-16 units> ':' <key> <value>     e.g. P5:colorblue
 *     delete: 'D' <key>                                              e.g. Dcolor
 * The entry's identity (origin:seq) and Lamport time come from the replication layer, so the op
 * log is replicated, acknowledged and repaired by the same code as `peer replicate`.
 *
 * Conflict rule: last writer wins by (Lamport time, origin peer id, origin sequence), compared in
 * that order. It is a total order on entries, so folding any set of operations in any order, with
 * duplicates, gives one table: every holder that holds the same log holds the same table. A delete
 * is a tombstone: a row with no value that wins and loses like a put, so an older put arriving
 * late never brings a deleted key back. Tombstones are kept (no garbage collection yet).
 *
 * Tables (on the peer's own database, created idempotently; store.ts is not touched):
 *   kv_log  every entry held (the replica), text stored as a JSON string so any string, even one
 *           SQLite would mangle, round-trips exactly (the anti-entropy digest hashes it)
 *   kv      the fold: one row per key, the winning version (value NULL for a tombstone)
 * Both change in one transaction, so the table always equals the fold of the log. A holder opens
 * its database at synchronous=FULL (see KvStore.open): an acknowledged write survives a power loss.
 * An operation joins the in-memory set (what anti-entropy advertises and what counts as a
 * duplicate) only once its transaction committed; a commit that failed holds nothing (apply()).
 */
import type Database from 'better-sqlite3';
import { ReplicaSet, entryProblem, type ApplyResult, type Entry } from '../p2p/replication/index.js';
import { writeFailure } from './health.js';
import { loadable } from '../p2p/bounds.js';

/** Longest key, in UTF-8 bytes. */
export const KV_KEY_BYTES_MAX = 128;
/** Longest value, in UTF-8 bytes. With the key and the op header it fits one replicated entry. */
export const KV_VALUE_BYTES_MAX = 512;
/** Rows a scan returns at most per call (a dump pages through the table). */
export const KV_SCAN_ROWS_MAX = 64;

export type KvOp = { kind: 'put'; key: string; value: string } | { kind: 'delete'; key: string };

/** The winning version of a key: value null for a tombstone. */
export interface KvVersion {
  key: string;
  value: string | null;
  lamport: number;
  origin: string;
  seq: number;
}

// Keys end up in shell commands, terminal tables and log lines: printable, no whitespace.
const KEY_RE = /^[^\p{Cc}\p{Cf}\p{Z}\s]+$/u;

function wellFormed(s: string): boolean {
  // No lone surrogates: they do not survive UTF-8 (SQLite, the terminal) unchanged.
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/** Why a key is not acceptable, or null. */
export function keyProblem(key: string): string | null {
  if (key.length === 0) return 'the key is empty';
  if (!wellFormed(key)) return 'the key is not valid Unicode (a lone surrogate)';
  const bytes = Buffer.byteLength(key);
  if (bytes > KV_KEY_BYTES_MAX)
    return `the key is ${bytes} bytes; keys are at most ${KV_KEY_BYTES_MAX} bytes`;
  if (!KEY_RE.test(key))
    return 'the key holds whitespace or control characters; use printable characters only';
  return null;
}

/** Why a value is not acceptable, or null. */
export function valueProblem(value: string): string | null {
  if (!wellFormed(value)) return 'the value is not valid Unicode (a lone surrogate)';
  const bytes = Buffer.byteLength(value);
  if (bytes > KV_VALUE_BYTES_MAX)
    return `the value is ${bytes} bytes; values are at most ${KV_VALUE_BYTES_MAX} bytes`;
  return null;
}

/** Why an operation cannot be written, or null: the limits above, and one entry per operation. */
export function opProblem(op: KvOp): string | null {
  const k = keyProblem(op.key);
  if (k) return k;
  if (op.kind === 'put') {
    const v = valueProblem(op.value);
    if (v) return v;
  }
  // Escaping (quotes, backslashes, control characters in the value) can push an op that is within
  // both limits over the entry limit; say so rather than fail later.
  const probe: Entry = { origin: '0'.repeat(16), seq: 1, lamport: 0, text: encodeOp(op) };
  if (entryProblem(probe))
    return 'the key and value are too long once escaped (quotes, backslashes and control characters count double or more); shorten them';
  return null;
}

export function encodeOp(op: KvOp): string {
  return op.kind === 'put' ? `P${op.key.length}:${op.key}${op.value}` : `D${op.key}`;
}

/** The operation an entry's text encodes, or null when it is not a valid kv operation. */
export function decodeOp(text: string): KvOp | null {
  if (text.startsWith('D')) {
    const key = text.slice(1);
    return keyProblem(key) ? null : { kind: 'delete', key };
  }
  const m = /^P([1-9][0-9]{0,3}):/.exec(text);
  if (!m) return null;
  const n = Number(m[1]);
  const start = m[0].length;
  if (start + n > text.length) return null;
  const key = text.slice(start, start + n);
  const value = text.slice(start + n);
  if (keyProblem(key) || valueProblem(value)) return null;
  return { kind: 'put', key, value };
}

/** True when version a wins over version b (last writer wins; see the header). */
export function wins(
  a: Pick<KvVersion, 'lamport' | 'origin' | 'seq'>,
  b: Pick<KvVersion, 'lamport' | 'origin' | 'seq'>,
): boolean {
  if (a.lamport !== b.lamport) return a.lamport > b.lamport;
  if (a.origin !== b.origin) return a.origin > b.origin;
  return a.seq > b.seq;
}

export function versionOf(e: Entry): KvVersion | null {
  const op = decodeOp(e.text);
  if (!op) return null;
  return {
    key: op.key,
    value: op.kind === 'put' ? op.value : null,
    lamport: e.lamport,
    origin: e.origin,
    seq: e.seq,
  };
}

/**
 * The reference model: the table a set of operations folds into (tombstones included). Tests and
 * `peer kv bench` compute the expected state with it.
 */
export function foldLww(entries: Iterable<Entry>): Map<string, KvVersion> {
  const out = new Map<string, KvVersion>();
  for (const e of entries) {
    const v = versionOf(e);
    if (!v) continue;
    const cur = out.get(v.key);
    if (!cur || wins(v, cur)) out.set(v.key, v);
  }
  return out;
}

/** What a kv holder offers the protocol: the replica (a ReplicaSink's shape) and reads. */
export interface KvHolderStore {
  readonly set: ReplicaSet;
  apply(entries: readonly Entry[]): ApplyResult;
  flush(): boolean;
  rewriteCanonical(): string | null;
  get(key: string): KvVersion | undefined;
  /** Rows in key order after `after` (null: from the start), tombstones included. */
  scan(after: string | null, limit: number): KvVersion[];
}

export class KvStoreError extends Error {
  override name = 'KvStoreError';
}

interface LogRow {
  origin: string;
  seq: number;
  lamport: number;
  text: string;
}

interface KvRow {
  key: string;
  value: string | null;
  lamport: number;
  origin: string;
  seq: number;
}

/** A holder's kv tables on its SQLite connection. */
export class KvStore implements KvHolderStore {
  readonly set = new ReplicaSet();
  /** Log entries whose text is not a kv operation (kept for convergence, ignored by the fold). */
  ignored = 0;
  private readonly st: {
    insertLog: Database.Statement;
    updateLog: Database.Statement;
    logKey: Database.Statement;
    logByKey: Database.Statement;
    get: Database.Statement;
    upsert: Database.Statement;
    remove: Database.Statement;
    scanFrom: Database.Statement;
    scanAll: Database.Statement;
  };

  private constructor(
    private readonly db: Database.Database,
    private readonly beforeCommit: ((bytes: number) => void) | null,
  ) {
    this.st = {
      insertLog: db.prepare(
        'INSERT OR IGNORE INTO kv_log (origin, seq, lamport, text, key) VALUES (?, ?, ?, ?, ?)',
      ),
      updateLog: db.prepare('UPDATE kv_log SET lamport = ?, text = ?, key = ? WHERE origin = ? AND seq = ?'),
      logKey: db.prepare('SELECT key FROM kv_log WHERE origin = ? AND seq = ?'),
      logByKey: db.prepare('SELECT origin, seq, lamport, text FROM kv_log WHERE key = ?'),
      get: db.prepare('SELECT key, value, lamport, origin, seq FROM kv WHERE key = ?'),
      upsert: db.prepare(
        `INSERT INTO kv (key, value, lamport, origin, seq) VALUES (@key, @value, @lamport, @origin, @seq)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, lamport = excluded.lamport,
           origin = excluded.origin, seq = excluded.seq`,
      ),
      remove: db.prepare('DELETE FROM kv WHERE key = ?'),
      scanFrom: db.prepare(
        'SELECT key, value, lamport, origin, seq FROM kv WHERE key > ? ORDER BY key LIMIT ?',
      ),
      scanAll: db.prepare('SELECT key, value, lamport, origin, seq FROM kv ORDER BY key LIMIT ?'),
    };
  }

  /**
   * Opens the kv tables on `db` and loads the log into memory (the replica set anti-entropy
   * compares). `durable` sets synchronous=FULL on the connection: the holder acknowledges a write
   * only after the transaction holding it is fsynced, like a replica file's append.
   */
  static open(
    db: Database.Database,
    opts: {
      durable?: boolean;
      /**
       * Called inside every write transaction before it commits, with the bytes of text written;
       * a throw rolls the transaction back as a failed commit would (simulated disk faults).
       */
      beforeCommit?: (bytes: number) => void;
    } = {},
  ): KvStore {
    try {
      if (opts.durable) db.pragma('synchronous = FULL');
      db.exec(`
        CREATE TABLE IF NOT EXISTS kv_log (
          origin TEXT NOT NULL,
          seq INTEGER NOT NULL,
          lamport INTEGER NOT NULL,
          text TEXT NOT NULL,
          key TEXT,
          PRIMARY KEY (origin, seq)
        ) STRICT;
        CREATE INDEX IF NOT EXISTS kv_log_key ON kv_log (key);
        CREATE TABLE IF NOT EXISTS kv (
          key TEXT PRIMARY KEY,
          value TEXT,
          lamport INTEGER NOT NULL,
          origin TEXT NOT NULL,
          seq INTEGER NOT NULL
        ) STRICT;
      `);
    } catch (err) {
      throw new KvStoreError(`cannot open the kv tables (${(err as Error).message})`);
    }
    const store = new KvStore(db, opts.beforeCommit ?? null);
    const rows = db.prepare('SELECT origin, seq, lamport, text FROM kv_log').all() as LogRow[];
    for (const r of rows) {
      let text: unknown;
      try {
        text = JSON.parse(r.text);
      } catch {
        text = undefined;
      }
      const e: Entry = { origin: r.origin, seq: r.seq, lamport: r.lamport, text: text as string };
      // A Lamport time or seq past COUNTER_MAX is damage: entries from others are refused before
      // that (replication.ts), and a restarted holder's clock would start above it.
      if (typeof text !== 'string' || entryProblem(e) || !loadable(e.lamport) || !loadable(e.seq))
        throw new KvStoreError(
          `kv_log row ${r.origin}:${r.seq} is damaged; move the database aside or run 'peer recover'`,
        );
      store.set.resolve(e);
      if (!versionOf(e)) store.ignored++;
    }
    return store;
  }

  /** Highest Lamport time held: a restarted holder starts its clock above it. */
  maxLamport(): number {
    let m = 0;
    for (const e of this.set.entries) if (e.lamport > m) m = e.lamport;
    return m;
  }

  /**
   * Writes the operations the log lacks (and preferred versions of held ones) in one transaction,
   * and only once it committed puts them in the in-memory set anti-entropy advertises: a commit
   * that failed (SQLITE_FULL, SQLITE_IOERR) is returned as `failure` with nothing held, so a retry
   * is written again instead of being taken for a duplicate.
   */
  apply(entries: readonly Entry[]): ApplyResult {
    const { added, replaced } = this.set.plan(entries);
    if (added.length === 0 && replaced.length === 0) return { added, replaced };
    let ignored = 0;
    try {
      this.db.transaction(() => {
        let bytes = 0;
        for (const e of added) {
          const v = versionOf(e);
          const text = JSON.stringify(e.text);
          bytes += text.length;
          this.st.insertLog.run(e.origin, e.seq, e.lamport, text, v?.key ?? null);
          if (v) this.foldOne(v);
          else ignored++;
        }
        for (const e of replaced) {
          // Another version of an identity (a reused id): keep the preferred one and fold the
          // affected keys again from the log, since the loser may have been a key's winner.
          const before = this.st.logKey.get(e.origin, e.seq) as { key: string | null } | undefined;
          const v = versionOf(e);
          const text = JSON.stringify(e.text);
          bytes += text.length;
          this.st.updateLog.run(e.lamport, text, v?.key ?? null, e.origin, e.seq);
          for (const key of new Set([before?.key ?? null, v?.key ?? null]))
            if (key !== null) this.refold(key);
        }
        this.beforeCommit?.(bytes);
      })();
    } catch (err) {
      return { added: [], replaced: [], failure: writeFailure(this.db.name, err) };
    }
    this.ignored += ignored;
    for (const e of [...added, ...replaced]) this.set.resolve(e);
    return { added, replaced };
  }

  /** SQLite is written in apply(): nothing is pending. */
  flush(): boolean {
    return true;
  }

  /** The kv log has no file order to rewrite; the content hash names the set. */
  rewriteCanonical(): string {
    this.set.sortCanonical();
    return this.set.digest();
  }

  get(key: string): KvVersion | undefined {
    return this.st.get.get(key) as KvRow | undefined;
  }

  scan(after: string | null, limit: number): KvVersion[] {
    const n = Math.max(1, Math.min(limit, KV_SCAN_ROWS_MAX));
    return (after === null ? this.st.scanAll.all(n) : this.st.scanFrom.all(after, n)) as KvRow[];
  }

  /** Every row (tests, `peer kv dump --local`). */
  all(): KvVersion[] {
    return this.db.prepare('SELECT key, value, lamport, origin, seq FROM kv ORDER BY key').all() as KvRow[];
  }

  private foldOne(v: KvVersion): void {
    const cur = this.get(v.key);
    if (!cur || wins(v, cur)) this.st.upsert.run(v);
  }

  private refold(key: string): void {
    const rows = this.st.logByKey.all(key) as LogRow[];
    const fold = foldLww(rows.map((r) => ({ ...r, text: JSON.parse(r.text) as string })));
    const v = fold.get(key);
    if (v) this.st.upsert.run(v);
    else this.st.remove.run(key);
  }
}
