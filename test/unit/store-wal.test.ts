/**
 * A WAL lost under an open store (store.ts): noticed as deleted or replaced; what SQLite still
 * holds in the deleted WAL, from both of the peer's connections and written after the deletion
 * too, is saved into the main file; every later write is refused on both connections.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { PeerStore, databasePath } from '../../src/storage/store.js';
import { openCheckpoints } from '../../src/storage/checkpoint.js';

const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-wal-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const message = (i: number) => ({ id: `m/${i}`, topic: 't', sender: 's', lamport: i + 1, payload: `p${i}` });

describe('a WAL lost under an open store', () => {
  it('is noticed, its pages are saved into the main file, and later writes are refused', async () => {
    const dir = tmp();
    const store = PeerStore.open(dir, 'alice');
    const { id } = store.startIdentity();
    const cp = openCheckpoints(dir, 'alice');
    for (let i = 0; i < 10; i++) await cp.receive(message(i));
    expect(store.walProblem()).toBeNull();

    fs.rmSync(store.walFile);
    // Still written after the deletion, into the WAL SQLite keeps open.
    for (let i = 10; i < 15; i++) await cp.receive(message(i));
    store.setMeta('after', 'deletion');
    expect(store.walProblem()).toBe(`${store.walFile} was deleted while the peer ran`);
    expect(store.saveAndRefuseWrites([cp.db])).toMatch(/^its \d+ page\(s\) were saved into .*alice\.db$/);
    expect(() => store.setMeta('later', 'x')).toThrow(/readonly/);
    await expect(cp.receive(message(99))).rejects.toThrow(/readonly/);

    // The main file alone, as a crash right now would leave it, holds every write.
    const copy = tmp();
    fs.copyFileSync(databasePath(dir, 'alice'), databasePath(copy, 'alice'));
    const db = new Database(databasePath(copy, 'alice'), { readonly: true });
    expect((db.prepare('SELECT count(*) AS n FROM inbox').get() as { n: number }).n).toBe(15);
    expect(db.prepare("SELECT value FROM meta WHERE key = 'peer_id'").get()).toEqual({ value: id });
    expect(db.prepare("SELECT value FROM meta WHERE key = 'after'").get()).toEqual({ value: 'deletion' });
    db.close();
    cp.close();
    store.close();
  });

  it('a WAL replaced by another file is noticed too', () => {
    const dir = tmp();
    const store = PeerStore.open(dir, 'alice');
    store.startIdentity();
    fs.rmSync(store.walFile);
    fs.writeFileSync(store.walFile, '');
    expect(store.walProblem()).toBe(`${store.walFile} was replaced while the peer ran`);
    store.close();
  });
});
