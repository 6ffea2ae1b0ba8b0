/** Chunk bookkeeping of file transfer (src/p2p/files/chunks.ts): cutting, holding, what is missing, persisting. */
import { describe, expect, it } from 'vitest';
import { ChunkSet, FILE_CHUNKS_MAX, chunkCount, chunkLength } from '../../src/p2p/files/index.js';

describe('cutting a file into chunks', () => {
  it('counts whole and partial chunks, none for an empty file', () => {
    expect(chunkCount(0, 4)).toBe(0);
    expect(chunkCount(1, 4)).toBe(1);
    expect(chunkCount(8, 4)).toBe(2);
    expect(chunkCount(9, 4)).toBe(3);
  });

  it('gives the last chunk what is left', () => {
    expect([0, 1, 2].map((i) => chunkLength(9, 4, i))).toEqual([4, 4, 1]);
    expect(chunkLength(8, 4, 1)).toBe(4);
  });
});

describe('ChunkSet', () => {
  it('holds what was added once, and knows when it is complete', () => {
    const s = new ChunkSet(10);
    s.add(3);
    s.add(3);
    s.add(9);
    expect([s.size, s.has(3), s.has(9), s.has(4), s.complete]).toEqual([2, true, true, false, false]);
    for (let i = 0; i < 10; i++) s.add(i);
    expect(s.complete).toBe(true);
  });

  it('names the missing runs in order, at most as many as asked', () => {
    const s = new ChunkSet(12);
    for (const i of [0, 1, 4, 5, 9]) s.add(i);
    expect(s.missing(10)).toEqual([
      [2, 3],
      [6, 8],
      [10, 11],
    ]);
    expect(s.missing(2)).toEqual([
      [2, 3],
      [6, 8],
    ]);
  });

  it('refuses a chunk outside the file', () => {
    const s = new ChunkSet(3);
    expect(() => s.add(3)).toThrow(RangeError);
    expect(() => s.add(-1)).toThrow(RangeError);
    expect(() => new ChunkSet(FILE_CHUNKS_MAX + 1)).toThrow(RangeError);
  });

  it('with() leaves the set as it was', () => {
    const s = new ChunkSet(4);
    const t = s.with(2);
    expect([s.has(2), t.has(2), t.size]).toEqual([false, true, 1]);
  });

  it('reads back what it persisted, and refuses bytes no set of that size could be', () => {
    const s = new ChunkSet(11);
    for (const i of [0, 7, 10]) s.add(i);
    const back = ChunkSet.fromBytes(11, s.toBytes())!;
    expect([back.size, back.has(0), back.has(7), back.has(10), back.has(1)]).toEqual([
      3,
      true,
      true,
      true,
      false,
    ]);
    expect(ChunkSet.fromBytes(11, new Uint8Array(1))).toBeNull(); // too short
    expect(ChunkSet.fromBytes(11, new Uint8Array(3))).toBeNull(); // too long
    expect(ChunkSet.fromBytes(11, Uint8Array.from([0, 0b0001_0000]))).toBeNull(); // bit 11 set
    expect(ChunkSet.fromBytes(FILE_CHUNKS_MAX + 1, new Uint8Array(0))).toBeNull();
  });
});
