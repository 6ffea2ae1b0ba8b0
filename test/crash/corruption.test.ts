/**
 * Damage to the peer's SQLite file: a corrupted page, a truncated WAL, a damaged last checkpoint,
 * a damaged inbox row, a file that is not a database. Each ends in a clear error or a fallback to
 * good data, never in silent loss, and a damaged file is never written to.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/proc.js';
import { PeerStore, StoreError, databasePath } from '../../src/storage/store.js';
import {
  GROUP_COMMIT_DELAY_MS_MAX,
  GROUP_COMMIT_OPS_MAX,
  fillInbox,
  openCheckpoints,
  type Checkpoints,
} from '../../src/storage/checkpoint.js';
import { recover, recoveryLine } from '../../src/storage/recovery.js';

function fresh(label: string): { dir: string; cp: Checkpoints } {
  const dir = tempDir(label);
  PeerStore.open(dir, 'p').close();
  return { dir, cp: openCheckpoints(dir, 'p') };
}

const digest = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

describe('group commit', () => {
  it('resolves only after the batch commits, reports duplicates, flushes at the op limit', async () => {
    const { cp } = fresh('gc');
    const first = cp.receive({ id: 'a', topic: 't', sender: 's', lamport: 1, payload: 'x' });
    // Nothing is committed until the batch is: another connection cannot see it yet.
    expect(cp.queued).toBe(1);
    expect(cp.status('a')).toBe('new');
    expect(await first).toEqual({ duplicate: false });
    expect(cp.status('a')).toBe('received');
    expect(await cp.receive({ id: 'a', topic: 't', sender: 's', lamport: 1, payload: 'x' })).toEqual({
      duplicate: true,
    });
    expect(await cp.processed('a')).toBe(true);
    expect(await cp.processed('a')).toBe(false);
    expect(await cp.processed('never-received')).toBe(false);
    const many = Array.from({ length: GROUP_COMMIT_OPS_MAX }, (_, i) =>
      cp.receive({ id: `m${i}`, topic: 't', sender: 's', lamport: i, payload: '' }),
    );
    // The op limit commits at once, without waiting for the delay.
    expect(cp.queued).toBe(0);
    await Promise.all(many);
    expect(cp.stats.batchMax).toBe(GROUP_COMMIT_OPS_MAX);
    cp.close();
  });

  it('commits within the bounded delay', async () => {
    const { cp } = fresh('gc-delay');
    const t0 = performance.now();
    await cp.receive({ id: 'a', topic: 't', sender: 's', lamport: 1, payload: 'x' });
    // Timer granularity and fsync add a little; far below 10x the bound.
    expect(performance.now() - t0).toBeLessThan(GROUP_COMMIT_DELAY_MS_MAX * 10);
    cp.close();
  });

  it('a failing operation fails alone; its batch neighbours commit', async () => {
    const { cp } = fresh('gc-fail');
    const good = cp.submit(
      (db) => db.prepare("INSERT INTO checkpoints VALUES (100, 0, 0, '{}', 'x')").run().changes,
    );
    const bad = cp.submit((db) => db.prepare('INSERT INTO no_such_table VALUES (1)').run());
    await expect(bad).rejects.toThrow(/no_such_table/);
    expect(await good).toBe(1);
    expect(cp.stats.failed).toBe(1);
    cp.close();
  });
});

describe('damage', () => {
  it('a damaged last checkpoint falls back to the previous good one', () => {
    const { cp } = fresh('ckpt');
    let gen = 0;
    cp.register('token', {
      capture: () => ({ gen }),
      describe: (s) => `token generation ${(s as { gen: number }).gen}`,
    });
    for (gen = 1; gen <= 3; gen++) cp.checkpoint();
    cp.db.prepare(`UPDATE checkpoints SET state = '{"token":{"gen":999}}' WHERE seq = 3`).run();
    const r = recover(cp, { integrity: 'full' });
    expect(r.checkpointSeq).toBe(2);
    expect(r.checkpointsDamaged).toBe(1);
    expect(r.restored).toEqual({ token: { gen: 2 } });
    expect(recoveryLine(r)).toMatch(/1 damaged checkpoint\(s\) skipped.*token generation 2/);
    cp.close();
  });

  it('a damaged inbox row is counted and never processed', () => {
    const { cp } = fresh('row');
    fillInbox(cp, 10, 3);
    cp.db.prepare("UPDATE inbox SET payload = 'tampered' WHERE id = 'fill/8'").run();
    const r = recover(cp, { handlers: { fill: () => 'done' } });
    expect(r.replayed).toBe(2);
    expect(r.damagedMessages).toBe(1);
    expect(cp.status('fill/8')).toBe('received');
    cp.close();
  });

  it('a corrupted page: a clear one-line error, and the file is not written', () => {
    const { dir, cp } = fresh('page');
    fillInbox(cp, 20_000, 0);
    cp.db.pragma('wal_checkpoint(TRUNCATE)');
    cp.close();
    const file = databasePath(dir, 'p');
    const size = fs.statSync(file).size;
    const fd = fs.openSync(file, 'r+');
    // Garbage over two pages in the middle: b-tree pages of the inbox or its index.
    fs.writeSync(fd, Buffer.alloc(8192, 0xa5), 0, 8192, Math.floor(size / 2 / 4096) * 4096);
    fs.closeSync(fd);
    const before = digest(file);
    let error: unknown = null;
    try {
      PeerStore.open(dir, 'p').close();
      const again = openCheckpoints(dir, 'p', { mustExist: true });
      try {
        recover(again, { integrity: 'full' });
      } finally {
        again.close();
      }
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(StoreError);
    expect((error as Error).message).not.toContain('\n');
    expect((error as Error).message).toMatch(/left untouched/);
    expect(digest(file)).toBe(before);
  });

  it('a file that is not a database is refused and left as it was', () => {
    const dir = tempDir('notdb');
    const file = databasePath(dir, 'p');
    fs.writeFileSync(file, 'this is not sqlite '.repeat(500));
    const before = digest(file);
    expect(() => openCheckpoints(dir, 'p')).toThrow(StoreError);
    expect(() => PeerStore.open(dir, 'p')).toThrow(StoreError);
    expect(digest(file)).toBe(before);
    expect(() => openCheckpoints(dir, 'missing', { mustExist: true })).toThrow(
      /no database for peer 'missing'/,
    );
  });

  it('a truncated WAL keeps a prefix of the committed transactions, intact', async () => {
    const { dir, cp } = fresh('wal');
    cp.db.pragma('wal_autocheckpoint = 0');
    for (let b = 0; b < 40; b++)
      await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          cp.receive({ id: `b${b}/${i}`, topic: 't', sender: 's', lamport: b, payload: 'y'.repeat(100) }),
        ),
      );
    // The state a kill -9 leaves: database plus WAL, not checkpointed. Copy it, cut the WAL.
    const crashed = tempDir('wal-copy');
    const src = databasePath(dir, 'p');
    const dst = databasePath(crashed, 'p');
    fs.copyFileSync(src, dst);
    const wal = fs.readFileSync(`${src}-wal`);
    fs.writeFileSync(`${dst}-wal`, wal.subarray(0, Math.floor(wal.length / 2)));
    cp.close();

    PeerStore.open(crashed, 'p').close();
    const after = openCheckpoints(crashed, 'p', { mustExist: true });
    recover(after, { integrity: 'full' });
    const batches = after.db
      .prepare('SELECT lamport AS b, count(*) AS n FROM inbox GROUP BY lamport ORDER BY lamport')
      .all() as Array<{ b: number; n: number }>;
    after.close();
    // Some, not all, batches survive; each whole, and they are the first ones.
    expect(batches.length).toBeGreaterThan(0);
    expect(batches.length).toBeLessThan(40);
    expect(batches.every((r, i) => r.b === i && r.n === 200)).toBe(true);
    expect(path.basename(dst)).toBe('p.db');
  });
});
