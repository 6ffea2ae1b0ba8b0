/**
 * The peer's SQLite file: one per peer name under the data dir.
 *
 * WAL mode, synchronous=NORMAL: a transaction that returned is durable against a crash of the
 * process (kill -9), since it is in the WAL file the OS already holds; only a power loss or a
 * kernel crash can take the last transactions back. Capabilities that promise more (issue 8's
 * acknowledged messages) set their own level on their own writes.
 *
 * This module owns identity (id, incarnation) and the peers seen (seed 000's `clients` table).
 * Each capability keeps its own tables in its own store module on the same connection, created
 * idempotently, so a capability plugs its state in without touching this file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import type { MemberView } from '../p2p/protocol.js';
import { loadable } from '../p2p/bounds.js';

export class StoreError extends Error {
  override name = 'StoreError';
}

export interface PeerRow {
  id: string;
  name: string;
  address: string;
  firstSeen: number;
  lastSeen: number;
  connected: boolean;
}

export function databasePath(dataDir: string, name: string): string {
  // Names may hold characters a file system dislikes; encoding keeps simple names readable.
  return path.join(dataDir, `${encodeURIComponent(name)}.db`);
}

export class PeerStore {
  private constructor(
    readonly db: Database.Database,
    readonly file: string,
  ) {}

  /** Opens (creating if needed) the database of peer `name`. Never overwrites a damaged file. */
  static open(dataDir: string, name: string): PeerStore {
    try {
      fs.mkdirSync(dataDir, { recursive: true });
      fs.accessSync(dataDir, fs.constants.W_OK);
    } catch (err) {
      throw new StoreError(
        `data dir ${dataDir} is not writable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); pass --data-dir with a writable directory`,
      );
    }
    const file = databasePath(dataDir, name);
    let db: Database.Database | undefined;
    try {
      db = new Database(file);
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
      throw new StoreError(
        `${file} cannot be opened as a peer database (${(err as Error).message}); it was left untouched: move it aside or run 'peer recover'`,
      );
    }
    return new PeerStore(db, file);
  }

  /**
   * The identity to start with: a stable random id, and an incarnation one above any used before,
   * so the group can tell this start from the last one.
   */
  startIdentity(): { id: string; incarnation: number } {
    return this.db.transaction(() => {
      let id = this.getMeta('peer_id');
      if (!id || !/^[0-9a-f]{16}$/.test(id)) {
        id = randomBytes(8).toString('hex');
        this.setMeta('peer_id', id);
      }
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

  /** Records a member as seen now (connected) or gone (dead, left). */
  recordPeer(m: MemberView, connected: boolean, wallMs: number): void {
    this.db
      .prepare(
        `INSERT INTO peers (id, name, address, first_seen, last_seen, connected) VALUES (@id, @name, @address, @now, @now, @c)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name, address = excluded.address, last_seen = excluded.last_seen, connected = excluded.connected`,
      )
      .run({ id: m.id, name: m.name, address: m.address, now: Math.round(wallMs), c: connected ? 1 : 0 });
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

  close(): void {
    if (this.db.open) this.db.close();
  }
}
