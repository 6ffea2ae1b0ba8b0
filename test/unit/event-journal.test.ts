/**
 * The events journal on SQLite (src/storage/event-journal.ts): what is appended is there after a
 * reopen until it is done; a damaged row is skipped, never handed on; a failed write is returned
 * and said once.
 */
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { PeerStore } from '../../src/storage/store.js';
import { StorageHealth } from '../../src/storage/health.js';
import { SqliteEventJournal } from '../../src/storage/event-journal.js';
import type { JournaledEvent } from '../../src/p2p/events/index.js';
import { tempDir } from '../support/proc.js';

const event = (n: number): JournaledEvent => ({
  key: `sender/1/b${n}`,
  name: 'deploy',
  payload: Buffer.from([0, 1, n]),
  lamport: 10 + n,
  fromName: 'ops',
  coalesce: n % 2 === 0,
});

describe('SqliteEventJournal', () => {
  it('keeps what was appended across a reopen, oldest first, until it is done', () => {
    const dir = tempDir('journal');
    const said: string[] = [];
    const health = new StorageHealth(
      (l) => said.push(l),
      () => 0,
    );
    let store = PeerStore.open(dir, 'a');
    let j = SqliteEventJournal.open(store, health);
    for (const n of [1, 2, 3]) expect(j.append(event(n))).toBeNull();
    expect(j.append(event(2))).toBeNull(); // the same message again: one row
    j.done(event(2).key);
    j.close();
    store.close();
    store = PeerStore.open(dir, 'a');
    j = SqliteEventJournal.open(store, health);
    expect(j.pending(10)).toEqual([event(1), event(3)]);
    expect(j.pending(1)).toEqual([event(1)]);
    j.close();
    store.close();
    expect(said).toEqual([]);
  });

  it('skips a damaged row and counts it', () => {
    const dir = tempDir('journal-bad');
    const health = new StorageHealth(
      () => {},
      () => 0,
    );
    const store = PeerStore.open(dir, 'a');
    const j = SqliteEventJournal.open(store, health);
    j.append(event(1));
    j.append(event(3));
    new Database(store.file)
      .prepare("UPDATE event_journal SET name = 'bad name' WHERE key = ?")
      .run(event(1).key);
    expect(j.pending(10)).toEqual([event(3)]);
    expect(j.rejectedLastRead).toBe(1);
    j.close();
    store.close();
  });

  it('returns a failed write and says so once', () => {
    const dir = tempDir('journal-fail');
    const said: string[] = [];
    const health = new StorageHealth(
      (l) => said.push(l),
      () => 0,
    );
    const store = PeerStore.open(dir, 'a');
    const j = SqliteEventJournal.open(store, health);
    // The table gone under it: every insert fails, as on a disk that refuses them.
    new Database(store.file).exec('DROP TABLE event_journal');
    const first = j.append(event(1));
    expect(first?.file).toBe(store.file);
    expect(j.append(event(2))).not.toBeNull();
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/^storage: writes to .* failing/);
    j.close();
    store.close();
  });
});
