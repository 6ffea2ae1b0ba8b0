/**
 * A kv holder's tables in its SQLite file. The operations and the conflict rule they are folded
 * by are the protocol's (p2p/kv/ops.ts); this is where a holder keeps them.
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
import {
  KV_SCAN_ROWS_MAX,
  foldLww,
  versionOf,
  wins,
  type KvHolderStore,
  type KvVersion,
} from '../p2p/kv/index.js';

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
      // that (p2p/replication/), and a restarted holder's clock would start above it.
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
