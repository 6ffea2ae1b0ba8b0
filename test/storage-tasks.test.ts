import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PeerStore } from '../src/storage/store.js';
import { TaskStore } from '../src/storage/tasks.js';
import { STORAGE_RECOVERED_AFTER_MS, StorageHealth } from '../src/storage/health.js';
import type { TaskRecord } from '../src/p2p/tasks/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function open(): { store: PeerStore; tasks: TaskStore; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-tasks-store-'));
  dirs.push(dir);
  const store = PeerStore.open(dir, 'alice');
  return { store, tasks: TaskStore.of(store), dir };
}

const rec = (id: string, over: Partial<TaskRecord> = {}): TaskRecord => ({
  id,
  op: 'sum',
  args: [1, 2],
  state: 'queued',
  worker: null,
  workerName: null,
  submitter: 'aaaaaaaaaaaaaaaa',
  submittedAt: 1000,
  startedAt: null,
  finishedAt: null,
  result: null,
  error: null,
  ...over,
});

describe('task store (SQLite)', () => {
  it('records every state change, the result once, and never touches a finished task again', () => {
    const { store, tasks } = open();
    tasks.save(rec('0000000000000001'));
    tasks.save(
      rec('0000000000000001', {
        state: 'running',
        worker: 'bbbbbbbbbbbbbbbb',
        workerName: 'w1',
        startedAt: 1100,
        submittedAt: 5000,
      }),
    );
    expect(tasks.get('0000000000000001')).toMatchObject({
      state: 'running',
      workerName: 'w1',
      submittedAt: 1000,
    });
    const done = rec('0000000000000001', {
      state: 'done',
      worker: 'bbbbbbbbbbbbbbbb',
      workerName: 'w1',
      startedAt: 1100,
      finishedAt: 1300,
      result: '3',
    });
    expect(tasks.finish(done)).toEqual({ first: true, failed: null });
    expect(tasks.finish({ ...done, result: '4', workerName: 'w2' })).toEqual({ first: false, failed: null });
    tasks.save(rec('0000000000000001', { state: 'queued' }));
    expect(tasks.get('0000000000000001')).toMatchObject({
      state: 'done',
      result: '3',
      workerName: 'w1',
      args: [1, 2],
    });
    expect(tasks.outstanding(10)).toEqual([]);
    store.close();
  });

  it('lists newest first, pages, counts, and returns outstanding oldest first', () => {
    const { store, tasks } = open();
    for (let i = 1; i <= 5; i++) tasks.save(rec(`000000000000000${i}`));
    tasks.finish(rec('0000000000000002', { state: 'failed', error: 'boom', finishedAt: 2000 }));
    expect(tasks.count()).toBe(5);
    expect(tasks.list(0, 2).map((r) => r.id)).toEqual(['0000000000000005', '0000000000000004']);
    expect(tasks.list(4, 10).map((r) => r.id)).toEqual(['0000000000000001']);
    expect(tasks.outstanding(3).map((r) => r.id)).toEqual([
      '0000000000000001',
      '0000000000000003',
      '0000000000000004',
    ]);
    store.close();
  });

  it('survives a reopen (the coordinator that restarts finds its tasks) and reads a damaged row as failed', () => {
    const { store, tasks, dir } = open();
    tasks.save(rec('0000000000000001'));
    tasks.save(rec('0000000000000002'));
    store.db.prepare("UPDATE tasks SET args = 'not json' WHERE id = ?").run('0000000000000002');
    store.close();
    const again = PeerStore.open(dir, 'alice');
    const t2 = TaskStore.of(again);
    expect(t2.get('0000000000000001')).toMatchObject({ state: 'queued', args: [1, 2] });
    expect(t2.get('0000000000000002')).toMatchObject({
      state: 'failed',
      error: expect.stringMatching(/damaged row/),
    });
    expect(t2.outstanding(10).map((r) => r.id)).toEqual(['0000000000000001']);
    again.close();
  });

  it('a write SQLite refuses (a full database) is returned and said once, never stored; writes resume', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-tasks-store-'));
    dirs.push(dir);
    const store = PeerStore.open(dir, 'alice');
    const lines: string[] = [];
    let now = 0;
    const health = new StorageHealth(
      (l) => lines.push(l),
      () => now,
    );
    const tasks = TaskStore.of(store, health);
    // A page limit makes SQLite fail as on a full disk (SQLITE_FULL), from the next new page on.
    store.db.pragma(`max_page_count = ${store.db.pragma('page_count', { simple: true }) as number}`);
    const id = (i: number) => i.toString(16).padStart(16, '0');
    let full = 0;
    for (let i = 1; i <= 2000 && full === 0; i++) if (tasks.save(rec(id(i))).failed) full = i;
    expect(full, 'the page limit was never reached').toBeGreaterThan(0);
    expect(tasks.save(rec(id(full)))).toEqual({ first: false, failed: 'full' });
    expect(tasks.get(id(full))).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/failing \(disk full\)/);
    store.db.pragma('max_page_count = 1000000');
    expect(tasks.save(rec(id(full)))).toEqual({ first: true, failed: null });
    expect(tasks.get(id(full))).toMatchObject({ state: 'queued' });
    // Said once the quiet period passed with no failure (health.ts).
    expect(lines).toHaveLength(1);
    now += STORAGE_RECOVERED_AFTER_MS;
    health.tick();
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/work again/);
    store.close();
  });
});
