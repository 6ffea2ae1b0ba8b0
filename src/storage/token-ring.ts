/**
 * The token ring's durable state on the peer's SQLite file: the highest epoch this peer promised
 * to a claimer, the newest epoch it knows with that epoch's quorum set, and the newest gen. This is
 * Paxos acceptor state: a peer that forgot a promise after kill -9 could confirm two claims for one
 * epoch. Written when an epoch changes, a promise is made, or before a turn with a fencing token
 * above the stored gen (so a restarted ring starts above every token a resource saw); read once at
 * start, and validated both ways; a row that fails validation is ignored, and the protocol's quiet
 * period after a restart (no acks, no confirms for one lease) covers what it would have held.
 */
import type Database from 'better-sqlite3';
import { isPeerId } from '../p2p/wire.js';
import { loadable } from '../p2p/bounds.js';
import { RING_CONFIG_MAX, type TokenRingDurable, type TokenRingOptions } from '../p2p/token-ring/index.js';
import type { PeerStore } from './store.js';
import { writeFailure, type StorageHealth } from './health.js';
import type { WriteFailure } from '../p2p/write-failure.js';

const uint = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * A well-formed state whose counters pass `counter`: on save any safe uint (our own counting may
 * go on past COUNTER_MAX); on load `loadable`, since a saved counter past COUNTER_MAX is damage.
 */
function valid(d: unknown, counter: (v: unknown) => boolean): d is TokenRingDurable {
  if (typeof d !== 'object' || d === null) return false;
  const o = d as Record<string, unknown>;
  return (
    counter(o.promised) &&
    counter(o.epoch) &&
    counter(o.gen) &&
    Array.isArray(o.cfg) &&
    o.cfg.length <= RING_CONFIG_MAX &&
    o.cfg.every(isPeerId)
  );
}

export class TokenRingStore {
  private readonly read: Database.Statement;
  private readonly write: Database.Statement;
  /** Rows found damaged at load (counted, then ignored). */
  damaged = 0;

  constructor(
    private readonly db: Database.Database,
    /** The database file, named in write failures. */
    readonly file: string,
  ) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS token_ring_state (
        k INTEGER PRIMARY KEY CHECK (k = 1),
        state TEXT NOT NULL,
        saved_at INTEGER NOT NULL
      ) STRICT;
    `);
    this.read = db.prepare('SELECT state FROM token_ring_state WHERE k = 1');
    this.write = db.prepare(
      'INSERT INTO token_ring_state (k, state, saved_at) VALUES (1, ?, ?) ON CONFLICT (k) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at',
    );
  }

  static on(store: PeerStore): TokenRingStore {
    return new TokenRingStore(store.db, store.file);
  }

  load(): TokenRingDurable | null {
    const row = this.read.get() as { state: string } | undefined;
    if (!row) return null;
    try {
      const d: unknown = JSON.parse(row.state);
      if (valid(d, loadable)) return d;
    } catch {
      /* counted below */
    }
    this.damaged++;
    return null;
  }

  /**
   * Commits at synchronous=FULL (one fsync; this connection is otherwise at NORMAL): the caller
   * sends a confirm right after, and a promise forgotten in a power cut could let two claims of
   * one epoch be confirmed. At most once per turn, so no group commit is needed; the
   * connection's own level is restored after. A write that failed (SQLITE_FULL, an I/O error) is
   * returned, never thrown: the protocol then acts as if nothing was stored.
   */
  save(d: TokenRingDurable): WriteFailure | null {
    if (!valid(d, uint))
      throw new Error(`refusing to save an invalid token ring state: ${JSON.stringify(d)}`);
    const level = this.db.pragma('synchronous', { simple: true }) as number;
    this.db.pragma('synchronous = FULL');
    try {
      this.write.run(JSON.stringify(d), Date.now());
      return null;
    } catch (err) {
      return writeFailure(this.file, err);
    } finally {
      this.db.pragma(`synchronous = ${level}`);
    }
  }
}

/**
 * The store as the protocol sees it: every write's outcome goes to `health` (one line when writes
 * start failing, one when they work again), and the protocol learns only whether it is durable.
 */
export function reportingDurable(
  trs: TokenRingStore,
  health: StorageHealth,
): NonNullable<TokenRingOptions['durable']> {
  return {
    load: () => trs.load(),
    save: (d) => {
      const failure = trs.save(d);
      health.record(trs.file, 'token-ring', failure);
      return failure === null;
    },
  };
}
