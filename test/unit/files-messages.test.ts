/**
 * File transfer's messages (src/p2p/files/messages.ts): offers, answers and requests are checked
 * field by field as they come from the network, chunk headers are parsed or refused, and names
 * that could leave a folder are refused.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ANSWER,
  NEED,
  OFFER,
  decodeChunk,
  decodeControl,
  encodeChunk,
  encodeControl,
  fileNameProblem,
  isChunkPayload,
  parseControl,
  type Offer,
} from '../../src/p2p/files/messages.js';
import { FILE_BYTES_MAX, FILE_CHUNKS_MAX, FILE_NEED_RANGES_MAX } from '../../src/p2p/files/index.js';

const offer: Offer = {
  id: '0123456789abcdef',
  name: 'report.pdf',
  bytes: 5_000_000,
  sha256: 'a'.repeat(64),
  chunkBytes: 1024 * 1024,
};
const roundTrip = <B>(m: Parameters<typeof encodeControl<B>>[0], b: B) =>
  decodeControl(m, parseControl(encodeControl(m, b)));

describe('file names', () => {
  it.each([
    ['', 'empty'],
    ['.', 'not a file name'],
    ['..', 'not a file name'],
    ['a/b', 'slash'],
    ['../etc', 'slash'],
    ['a\\b', 'slash'],
    ['a\0b', 'control'],
    ['a\nb', 'control'],
    ['a\u202eb', 'control'],
    ['x'.repeat(256), 'over 255 bytes'],
    ['é'.repeat(128), 'over 255 bytes'],
  ])('refuses %j', (name, why) => {
    expect(fileNameProblem(name)).toContain(why);
  });

  it.each(['report.pdf', '.bashrc', '...', 'a b', 'x'.repeat(255), 'naïve ☃.txt'])('takes %j', (name) => {
    expect(fileNameProblem(name)).toBeNull();
  });
});

describe('control messages', () => {
  it('go through as sent', () => {
    expect(roundTrip(OFFER, offer)).toEqual(offer);
    const a = { id: offer.id, status: 'refused' as const, reason: 'too large' };
    expect(roundTrip(ANSWER, a)).toEqual(a);
    const n = { id: offer.id, missing: [[0, 3] as [number, number], [7, 7] as [number, number]] };
    expect(roundTrip(NEED, n)).toEqual(n);
  });

  it('are refused when a field is out of bounds or of another type', () => {
    const bad: Array<Record<string, unknown>> = [
      { ...offer, id: 'ABCDEF0123456789' },
      { ...offer, name: '../x' },
      { ...offer, bytes: FILE_BYTES_MAX + 1 },
      { ...offer, bytes: -1 },
      { ...offer, sha256: 'a'.repeat(63) },
      { ...offer, chunkBytes: 0 },
      { ...offer, extra: 1 },
    ];
    for (const b of bad) expect(decodeControl(OFFER, { t: OFFER.type, b })).toBeUndefined();
    expect(
      decodeControl(ANSWER, { t: ANSWER.type, b: { id: offer.id, status: 'maybe', reason: '' } }),
    ).toBeUndefined();
    const ranges = (missing: unknown) => decodeControl(NEED, { t: NEED.type, b: { id: offer.id, missing } });
    expect(ranges([[3, 2]])).toBeUndefined();
    expect(ranges([[0, FILE_CHUNKS_MAX]])).toBeUndefined();
    expect(ranges(Array.from({ length: FILE_NEED_RANGES_MAX + 1 }, () => [0, 0]))).toBeUndefined();
  });

  it('of one type are not taken for another', () => {
    expect(decodeControl(ANSWER, parseControl(encodeControl(OFFER, offer)))).toBeUndefined();
    expect(parseControl('{nope')).toBeUndefined();
  });

  it('never throw on any JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        decodeControl(OFFER, v);
        decodeControl(ANSWER, v);
        decodeControl(NEED, v);
        decodeControl(OFFER, { t: OFFER.type, b: v });
      }),
      { numRuns: 500, seed: 11 },
    );
  });
});

describe('chunks', () => {
  it('carry their transfer, index and bytes', () => {
    const data = Uint8Array.from([1, 2, 3, 0, 255]);
    const p = encodeChunk(offer.id, 70_000, data);
    expect(isChunkPayload(p)).toBe(true);
    expect(isChunkPayload(Buffer.from(encodeControl(OFFER, offer)))).toBe(false);
    const c = decodeChunk(p)!;
    expect([c.id, c.index, [...c.data]]).toEqual([offer.id, 70_000, [...data]]);
  });

  it('with a cut header or an index past any file are refused; any bytes never throw', () => {
    const p = encodeChunk(offer.id, 1, new Uint8Array(0));
    expect(decodeChunk(p)).toBeDefined();
    expect(decodeChunk(p.subarray(0, p.length - 1))).toBeUndefined();
    expect(decodeChunk(encodeChunk(offer.id, FILE_CHUNKS_MAX, new Uint8Array(1)))).toBeUndefined();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (b) => {
        decodeChunk(b);
        decodeChunk(Uint8Array.from([0, ...b]));
      }),
      { numRuns: 500, seed: 12 },
    );
  });
});
