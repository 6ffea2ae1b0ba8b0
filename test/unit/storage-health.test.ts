import { describe, expect, it } from 'vitest';
import { StorageHealth, writeFailure } from '../../src/storage/health.js';
import { WriteFailedError } from '../../src/p2p/write-failure.js';

describe('StorageHealth', () => {
  it('says one line when writes to a directory start failing and one when every failed writer wrote again', () => {
    const said: string[] = [];
    const h = new StorageHealth((l) => said.push(l));
    const full = (file: string) => writeFailure(file, Object.assign(new Error('x'), { code: 'ENOSPC' }));
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
    expect(said[1]).toBe('storage: writes to /d work again; accepting new writes');
    h.succeeded('/d/r1.txt', 'replica');
    expect(said).toHaveLength(2);
    expect(h.isFailing).toBe(false);
  });

  it('classifies fs and SQLite errors, and a background write never throws', () => {
    const said: string[] = [];
    const h = new StorageHealth((l) => said.push(l));
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
