import { describe, expect, it } from 'vitest';
import { STORAGE_RECOVERED_AFTER_MS, StorageHealth, writeFailure } from '../../src/storage/health.js';
import { WriteFailedError } from '../../src/p2p/write-failure.js';

describe('StorageHealth', () => {
  const full = (file: string) => writeFailure(file, Object.assign(new Error('x'), { code: 'ENOSPC' }));

  it('says one line when writes to a directory start failing and one when every failed writer wrote again', () => {
    const said: string[] = [];
    let now = 0;
    const h = new StorageHealth(
      (l) => said.push(l),
      () => now,
    );
    for (let i = 0; i < 100; i++) h.failed(full('/d/r1.txt'), 'replica');
    h.failed(writeFailure('/d/r1.db', Object.assign(new Error('x'), { code: 'SQLITE_FULL' })), 'background');
    expect(said).toEqual([
      'storage: writes to /d failing (disk full); refusing new writes until space returns',
    ]);
    // A small SQLite write getting through does not announce a recovery the replica file still waits for.
    h.succeeded('/d/r1.db', 'background');
    expect(said).toHaveLength(1);
    expect(h.isFailing).toBe(true);
    h.succeeded('/d/r1.txt', 'replica');
    now += STORAGE_RECOVERED_AFTER_MS;
    h.tick();
    expect(said[1]).toBe('storage: writes to /d work again; accepting new writes');
    h.succeeded('/d/r1.txt', 'replica');
    h.tick();
    expect(said).toHaveLength(2);
    expect(h.isFailing).toBe(false);
  });

  it('says "work again" only after a quiet period without a failure; a failure inside it says nothing', () => {
    const said: string[] = [];
    let now = 0;
    const h = new StorageHealth(
      (l) => said.push(l),
      () => now,
    );
    const failing = 'storage: writes to /d failing (disk full); refusing new writes until space returns';
    h.failed(full('/d/k.db'), 'kv');
    // On a full disk a small write squeezes into space something else freed: not a recovery yet.
    h.succeeded('/d/k.db', 'kv');
    expect(said).toEqual([failing]);
    now += STORAGE_RECOVERED_AFTER_MS - 1;
    h.tick();
    expect(said).toEqual([failing]);
    // The next write fails: the same episode goes on, without a second line.
    h.failed(full('/d/k.db'), 'kv');
    now += STORAGE_RECOVERED_AFTER_MS;
    h.tick();
    expect(said).toEqual([failing]);
    expect(h.isFailing).toBe(true);
    // Space really returned: the quiet period starts again from this success.
    h.succeeded('/d/k.db', 'kv');
    now += STORAGE_RECOVERED_AFTER_MS - 1;
    h.tick();
    expect(said).toEqual([failing]);
    now += 1;
    h.tick();
    expect(said).toEqual([failing, 'storage: writes to /d work again; accepting new writes']);
    expect(h.isFailing).toBe(false);
    // A later failure is a new episode, said again.
    h.failed(full('/d/k.db'), 'kv');
    expect(said).toEqual([failing, 'storage: writes to /d work again; accepting new writes', failing]);
  });

  it('classifies fs and SQLite errors, and a background write never throws', () => {
    const said: string[] = [];
    const h = new StorageHealth(
      (l) => said.push(l),
      () => 0,
    );
    expect(writeFailure('/f', { code: 'SQLITE_IOERR_WRITE' }).kind).toBe('io');
    expect(writeFailure('/f', { code: 'EIO' }).kind).toBe('io');
    expect(writeFailure('/f', { code: 'EDQUOT' }).kind).toBe('full');
    expect(writeFailure('/f', new Error('weird\nsecond line'))).toEqual({
      kind: 'other',
      file: '/f',
      code: 'weird',
    });
    const f = h.attempt('/e/x.db', 'background', () => {
      throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
    });
    expect(f?.kind).toBe('io');
    expect(said).toEqual([
      'storage: writes to /e failing (I/O error); refusing new writes until a write succeeds again',
    ]);
    expect(new WriteFailedError(f!).message).toMatch(
      /^cannot store the entry: writes to \/e\/x\.db fail \(I\/O error\); /,
    );
  });
});
