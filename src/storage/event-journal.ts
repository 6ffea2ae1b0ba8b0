/**
 * The journal of user events an agent acknowledged (src/p2p/events/journal.ts), in table
 * `event_journal` of the peer's SQLite file.
 *
 * It writes on its own connection at synchronous=FULL, as checkpoints do: an event is acked once
 * its row is written, so the row must survive a power loss, not only a crash of the process. One
 * insert per event (an fsync: about a millisecond), and one delete when its handlers ended, so the
 * table holds only what waits (bounded by EVENTS_JOURNAL_EVENTS_MAX). A write that fails is
 * returned as a WriteFailure and told to StorageHealth, which says so once per episode.
 *
 * Rows read back are checked (isJournaledEvent): they came from the network, and the file may be
 * damaged. A bad row is skipped and counted in `rejectedLastRead`, never handed to a handler.
 */
import Database from 'better-sqlite3';
import {
  isEventName,
  isJournaledEvent,
  type EventJournal,
  type JournaledEvent,
} from '../p2p/events/index.js';
import type { WriteFailure } from '../p2p/write-failure.js';
import { writeFailure, type StorageHealth } from './health.js';
import type { PeerStore } from './store.js';

interface Row {
  key: string;
  name: string;
  payload: Buffer;
  lamport: number;
  from_name: string;
  coalesce: number;
}

export class SqliteEventJournal implements EventJournal {
  private readonly insert: Database.Statement;
  private readonly remove: Database.Statement;
  private readonly oldest: Database.Statement;
  /** Rows the last pending() skipped because they failed their checks. */
  rejectedLastRead = 0;

  private constructor(
    private readonly db: Database.Database,
    private readonly health: StorageHealth,
    readonly file: string,
  ) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS event_journal (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        payload BLOB NOT NULL,
        lamport INTEGER NOT NULL,
        from_name TEXT NOT NULL,
        coalesce INTEGER NOT NULL
      ) STRICT;
    `);
    this.insert = db.prepare(
      `INSERT OR IGNORE INTO event_journal (key, name, payload, lamport, from_name, coalesce)
       VALUES (@key, @name, @payload, @lamport, @fromName, @coalesce)`,
    );
    this.remove = db.prepare('DELETE FROM event_journal WHERE key = ?');
    this.oldest = db.prepare(
      'SELECT key, name, payload, lamport, from_name, coalesce FROM event_journal ORDER BY seq LIMIT ?',
    );
  }

  /** Opens the journal on the file of `store` (already checked and opened by it). */
  static open(store: PeerStore, health: StorageHealth): SqliteEventJournal {
    const db = new Database(store.file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    return new SqliteEventJournal(db, health, store.file);
  }

  append(e: JournaledEvent): WriteFailure | null {
    try {
      this.insert.run({ ...e, coalesce: e.coalesce ? 1 : 0 });
    } catch (err) {
      const f = writeFailure(this.file, err);
      this.health.failed(f, 'events');
      return f;
    }
    this.health.succeeded(this.file, 'events');
    return null;
  }

  done(key: string): void {
    // A failed delete only means the event may run again after a restart (docs/events.md).
    this.health.attempt(this.file, 'events', () => this.remove.run(key));
  }

  pending(max: number): JournaledEvent[] {
    const events: JournaledEvent[] = [];
    this.rejectedLastRead = 0;
    for (const r of this.oldest.all(max) as Row[]) {
      const e: JournaledEvent = {
        key: r.key,
        name: r.name,
        payload: r.payload,
        lamport: r.lamport,
        fromName: r.from_name,
        coalesce: r.coalesce === 1,
      };
      if ((r.coalesce === 0 || r.coalesce === 1) && isJournaledEvent(e, isEventName)) events.push(e);
      else this.rejectedLastRead++;
    }
    return events;
  }

  close(): void {
    this.db.close();
  }
}
