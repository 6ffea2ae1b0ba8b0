/**
 * The token ring's acceptor state (issue 8): a save commits at synchronous=FULL and leaves the
 * shared connection at its own level (NORMAL) for the other capabilities' writes.
 */
import { describe, expect, it } from 'vitest';
import { PeerStore } from '../../src/storage/store.js';
import { reportingDurable, TokenRingStore } from '../../src/storage/token-ring.js';
import { STORAGE_RECOVERED_AFTER_MS, StorageHealth } from '../../src/storage/health.js';
import { tempDir } from '../support/proc.js';
import { COUNTER_MAX } from '../../src/p2p/bounds.js';

describe('TokenRingStore durability', () => {
  it('saves a promise that a reopened store loads, and restores the connection level', () => {
    const dir = tempDir('token-store');
    const store = PeerStore.open(dir, 'tr');
    const levels: number[] = [];
    const trs = TokenRingStore.on(store);
    const pragma = store.db.pragma.bind(store.db);
    // Records the level in force when the row is written.
    store.db.pragma = ((source: string, opts?: { simple?: boolean }) => {
      const r = pragma(source, opts);
      if (source.startsWith('synchronous = ')) levels.push(pragma('synchronous', { simple: true }) as number);
      return r;
    }) as typeof store.db.pragma;
    trs.save({ promised: 7, epoch: 6, gen: 41, cfg: ['0123456789abcdef'] });
    store.db.pragma = pragma;
    expect(levels).toEqual([2, 1]); // FULL for the write, then NORMAL again
    expect(store.db.pragma('synchronous', { simple: true })).toBe(1);
    store.close();
    const again = PeerStore.open(dir, 'tr');
    expect(TokenRingStore.on(again).load()).toEqual({
      promised: 7,
      epoch: 6,
      gen: 41,
      cfg: ['0123456789abcdef'],
    });
    again.close();
  });

  it('treats a saved counter past COUNTER_MAX as damage, not state', () => {
    const store = PeerStore.open(tempDir('token-store'), 'tr');
    const trs = TokenRingStore.on(store);
    for (const [field, value] of [
      ['promised', Number.MAX_SAFE_INTEGER],
      ['epoch', COUNTER_MAX + 1],
      ['gen', Number.MAX_SAFE_INTEGER],
    ] as const) {
      trs.save({ promised: 7, epoch: 6, gen: 41, cfg: [] });
      // As a torn or hostile write would leave it: the row bypasses save()'s own check.
      const state = JSON.stringify({ promised: 7, epoch: 6, gen: 41, cfg: [], [field]: value });
      store.db.prepare('UPDATE token_ring_state SET state = ? WHERE k = 1').run(state);
      expect(trs.load()).toBeNull();
    }
    expect(trs.damaged).toBe(3);
    trs.save({ promised: 7, epoch: COUNTER_MAX, gen: COUNTER_MAX, cfg: [] });
    expect(trs.load()).toEqual({ promised: 7, epoch: COUNTER_MAX, gen: COUNTER_MAX, cfg: [] });
    store.close();
  });

  it('a failed write is returned, said once, and never taken as stored; writes resume by themselves', () => {
    const store = PeerStore.open(tempDir('token-store'), 'tr');
    const trs = TokenRingStore.on(store);
    const lines: string[] = [];
    let now = 0;
    const health = new StorageHealth(
      (l) => lines.push(l),
      () => now,
    );
    const durable = reportingDurable(trs, health);
    expect(durable.save({ promised: 1, epoch: 1, gen: 5, cfg: [] })).toBe(true);
    // What better-sqlite3 throws on a full disk (SqliteError, code SQLITE_FULL).
    const write = (trs as unknown as { write: { run: (...a: unknown[]) => unknown } }).write;
    const run = write.run.bind(write);
    write.run = () => {
      throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    };
    expect(trs.save({ promised: 2, epoch: 2, gen: 9, cfg: [] })).toMatchObject({
      kind: 'full',
      code: 'SQLITE_FULL',
    });
    expect(durable.save({ promised: 2, epoch: 2, gen: 9, cfg: [] })).toBe(false);
    expect(durable.save({ promised: 2, epoch: 2, gen: 9, cfg: [] })).toBe(false);
    expect(store.db.pragma('synchronous', { simple: true })).toBe(1);
    expect(trs.load()).toEqual({ promised: 1, epoch: 1, gen: 5, cfg: [] });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/writes to .* failing \(disk full\)/);
    write.run = run;
    expect(durable.save({ promised: 2, epoch: 2, gen: 9, cfg: [] })).toBe(true);
    // Said once the quiet period passed with no failure (health.ts).
    expect(lines).toHaveLength(1);
    now += STORAGE_RECOVERED_AFTER_MS;
    health.tick();
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/work again/);
    expect(trs.load()).toEqual({ promised: 2, epoch: 2, gen: 9, cfg: [] });
    store.close();
  });
});
