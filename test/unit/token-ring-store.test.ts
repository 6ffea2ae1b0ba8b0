/**
 * The token ring's acceptor state (issue 8): a save commits at synchronous=FULL and leaves the
 * shared connection at its own level (NORMAL) for the other capabilities' writes.
 */
import { describe, expect, it } from 'vitest';
import { PeerStore } from '../../src/storage/store.js';
import { TokenRingStore } from '../../src/storage/token-ring.js';
import { tempDir } from '../support/proc.js';

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
});
