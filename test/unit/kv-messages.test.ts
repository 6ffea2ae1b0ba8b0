/**
 * kv's own messages (kv.read, kv.val, kv.scan, kv.rows), declared with the message kit
 * (src/p2p/kv/protocol.ts), go on the wire byte for byte as the literal bodies the protocol built
 * before, and are accepted and refused exactly as the hand-written checks did: the reference
 * checks below are those, as they were before the kit. (Replication's messages on the kv channel
 * are replication's, checked in replication-messages.test.ts.)
 */
import { envelopeOf, expectSameVerdicts } from '../support/messages.js';
import { describe, expect, it } from 'vitest';
import { Codec, is, isPeerId, type Check, type Envelope } from '../../src/p2p/wire.js';
import {
  HOLDERS_COUNT_MAX,
  KV_KEY_BYTES_MAX,
  KV_MESSAGES,
  KV_SCAN_ROWS_MAX,
  KV_VALUE_BYTES_MAX,
  READ,
  ROWS,
  SCAN,
  VALUE,
} from '../../src/p2p/kv/index.js';

const row: Check = (v) =>
  Array.isArray(v) &&
  v.length === 5 &&
  is.str(KV_KEY_BYTES_MAX, 1)(v[0]) &&
  (v[1] === null || is.str(KV_VALUE_BYTES_MAX)(v[1])) &&
  is.uint()(v[2]) &&
  isPeerId(v[3]) &&
  is.uint()(v[4]) &&
  (v[4] as number) >= 1;
const Q = is.uint();

/** The checks as they were written by hand before the kit. */
const BEFORE: Record<string, Check> = {
  'kv.read': is.object({ q: Q, k: is.str(KV_KEY_BYTES_MAX, 1) }),
  'kv.val': is.object({ q: Q, w: is.nullable(row), n: is.uint(HOLDERS_COUNT_MAX) }),
  'kv.scan': is.object({ q: Q, a: is.nullable(is.str(KV_KEY_BYTES_MAX, 1)), n: is.int(1, KV_SCAN_ROWS_MAX) }),
  'kv.rows': is.object({ q: Q, r: is.array(row, KV_SCAN_ROWS_MAX), m: is.bool() }),
};

const PEER = '0123456789abcdef';
const ROW: [string, string | null, number, string, number] = ['colour', 'blue', 41, PEER, 3];
const TOMBSTONE: [string, string | null, number, string, number] = ['gone', null, 42, PEER, 4];

/** Each type: the body as the protocol wrote it as a literal, and the same body through the declaration. */
const CASES: Array<[type: string, before: unknown, after: [string, Record<string, unknown>]]> = [
  ['kv.read', { q: 7, k: 'colour' }, READ.out({ query: 7, key: 'colour' })],
  ['kv.val', { q: 7, w: ROW, n: 3 }, VALUE.out({ query: 7, version: ROW, holders: 3 })],
  ['kv.val', { q: 8, w: null, n: 1 }, VALUE.out({ query: 8, version: null, holders: 1 })],
  ['kv.scan', { q: 9, a: null, n: 64 }, SCAN.out({ query: 9, after: null, pageRows: 64 })],
  ['kv.scan', { q: 10, a: 'colour', n: 5 }, SCAN.out({ query: 10, after: 'colour', pageRows: 5 })],
  [
    'kv.rows',
    { q: 9, r: [ROW, TOMBSTONE], m: true },
    ROWS.out({ query: 9, rows: [ROW, TOMBSTONE], more: true }),
  ],
  ['kv.rows', { q: 11, r: [], m: false }, ROWS.out({ query: 11, rows: [], more: false })],
];

/** An envelope around `b`, as the node stamps it. */
const envelope = (t: string, b: unknown): Envelope => envelopeOf(t, b, PEER);

describe('kv messages: the wire is unchanged', () => {
  it('every type is encoded byte for byte as the literal body the protocol built', () => {
    const codec = new Codec(KV_MESSAGES.checks);
    for (const [type, before, [t, after]] of CASES) {
      expect(t).toBe(type);
      expect(codec.encode(envelope(t, after))).toEqual(codec.encode(envelope(type, before)));
    }
  });

  it('a body read back from the wire has its domain names', () => {
    expect(VALUE.of(envelope('kv.val', { q: 7, w: ROW, n: 3 }))).toEqual({
      query: 7,
      version: ROW,
      holders: 3,
    });
    expect(SCAN.of(envelope('kv.scan', { q: 9, a: null, n: 64 }))).toEqual({
      query: 9,
      after: null,
      pageRows: 64,
    });
    expect(ROWS.of(envelope('kv.rows', { q: 9, r: [], m: false }))).toEqual({
      query: 9,
      rows: [],
      more: false,
    });
    expect(READ.of(envelope('kv.val', { q: 7, w: null, n: 3 }))).toBeUndefined();
  });

  it('every type accepts and refuses exactly as its hand-written check did', () => {
    const after = KV_MESSAGES.checks;
    expect(Object.keys(after).sort()).toEqual(Object.keys(BEFORE).sort());
    const samples: Record<string, unknown[]> = {};
    for (const [type, before] of CASES) (samples[type] ??= []).push(before);
    samples['kv.val']!.push(
      { q: 1, w: ['k', 'v', 1, PEER, 0], n: 1 },
      { q: 1, w: null, n: HOLDERS_COUNT_MAX + 1 },
    );
    samples['kv.rows']!.push({ q: 1, r: [['', 'v', 1, PEER, 1]], m: false });
    samples['kv.scan']!.push({ q: 1, a: '', n: 1 }, { q: 1, a: null, n: 0 });
    for (const [type, before] of Object.entries(BEFORE)) {
      const check = after[type]!;
      const own = samples[type]!;
      expectSameVerdicts(type, before, check, own);
    }
  });
});
