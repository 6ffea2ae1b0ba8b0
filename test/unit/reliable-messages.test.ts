/**
 * Reliable delivery's messages, declared with the message kit (src/p2p/reliable/messages.ts), go
 * on the wire byte for byte as the hand-written builders wrote them, and are accepted and refused
 * exactly as the hand-written checks did: the reference builders and checks below are those, as
 * they were before the kit.
 */
import { envelopeOf, expectSameVerdicts } from '../support/messages.js';
import { describe, expect, it } from 'vitest';
import { Codec, is, type Check, type Envelope } from '../../src/p2p/wire.js';
import {
  ACK,
  ANNOUNCE,
  ATTACHMENTS,
  DATA,
  GONE,
  MESSAGES,
  NACK,
  UNICAST,
  UNICAST_ACK,
} from '../../src/p2p/reliable/messages.js';
import {
  RELIABLE_BATCH_MESSAGES_MAX,
  RELIABLE_NACK_RANGES_MAX,
  RELIABLE_TOPIC_CHARS_MAX,
} from '../../src/p2p/reliable/limits.js';

const TOPIC_RE = /^[a-z0-9][a-z0-9.-]*$/;
const uint = is.uint();
const TOPIC: Check = (v) => typeof v === 'string' && v.length <= RELIABLE_TOPIC_CHARS_MAX && TOPIC_RE.test(v);
const TOPICS: Check = (v) =>
  Array.isArray(v) && v.length >= 1 && v.length <= RELIABLE_BATCH_MESSAGES_MAX && v.every(TOPIC);
const RANGE: Check = (v) => Array.isArray(v) && v.length === 2 && uint(v[0]) && uint(v[1]) && v[0] <= v[1];

/** The checks as they were written by hand before the kit. */
const BEFORE: Record<string, Check> = {
  'rm.d': is.object({ e: uint, jp: uint, k: TOPICS }),
  'rm.hi': is.object({ e: uint, hi: uint, jp: uint }),
  'rm.nak': is.object({ e: uint, r: is.array(RANGE, RELIABLE_NACK_RANGES_MAX) }),
  'rm.gone': is.object({ e: uint, lo: uint }),
  'rm.ack': is.object({ e: uint, f: uint, a: uint }),
  'rm.u': is.object({ e: uint, to: is.peerId(), b: uint, k: TOPICS }),
  'rm.ua': is.object({ e: uint, a: uint }),
};

const PEER = '0123456789abcdef';
const BIG = Number.MAX_SAFE_INTEGER;

/**
 * Each type: the body as the old builder wrote it (dataBody(epoch, joinPoint, topics) and so on),
 * and the same body through the declaration.
 */
const CASES: Array<[type: string, before: unknown, after: [string, Record<string, unknown>]]> = [
  [
    'rm.d',
    { e: 3, jp: 17, k: ['chat', 'kv.put'] },
    DATA.out({ epoch: 3, joinPoint: 17, topics: ['chat', 'kv.put'] }),
  ],
  ['rm.d', { e: BIG, jp: BIG, k: [] }, DATA.out({ epoch: BIG, joinPoint: BIG, topics: [] })],
  ['rm.hi', { e: 3, hi: 99, jp: 1 }, ANNOUNCE.out({ epoch: 3, highest: 99, joinPoint: 1 })],
  [
    'rm.nak',
    {
      e: 3,
      r: [
        [4, 7],
        [9, 9],
      ],
    },
    NACK.out({
      epoch: 3,
      missing: [
        [4, 7],
        [9, 9],
      ],
    }),
  ],
  ['rm.gone', { e: 3, lo: BIG }, GONE.out({ epoch: 3, oldestKept: BIG })],
  ['rm.gone', { e: 0, lo: 12 }, GONE.out({ epoch: 0, oldestKept: 12 })],
  ['rm.ack', { e: 3, f: 2, a: 40 }, ACK.out({ epoch: 3, joinedAt: 2, ackedUpTo: 40 })],
  [
    'rm.u',
    { e: 3, to: PEER, b: 5, k: ['chat'] },
    UNICAST.out({ epoch: 3, to: PEER, base: 5, topics: ['chat'] }),
  ],
  ['rm.ua', { e: 3, a: 8 }, UNICAST_ACK.out({ epoch: 3, ackedUpTo: 8 })],
];

/** An envelope around `b`, as the node stamps it. */
const envelope = (t: string, b: unknown): Envelope => envelopeOf(t, b, PEER);

describe('reliable delivery messages: the wire is unchanged', () => {
  it('every type is encoded byte for byte as its hand-written builder encoded it', () => {
    const codec = new Codec(MESSAGES.checks, ATTACHMENTS);
    const attachment = Uint8Array.of(1, 2, 3);
    for (const [type, before, [t, after]] of CASES) {
      expect(t).toBe(type);
      expect(Buffer.from(JSON.stringify(after))).toEqual(Buffer.from(JSON.stringify(before)));
      const carries = type === 'rm.d' || type === 'rm.u' ? attachment : undefined;
      expect(codec.encode(envelope(t, after), carries)).toEqual(
        codec.encode(envelope(type, before), carries),
      );
    }
  });

  it('a body read back from the wire has its domain names', () => {
    expect(DATA.of(envelope('rm.d', { e: 3, jp: 17, k: ['chat'] }))).toEqual({
      epoch: 3,
      joinPoint: 17,
      topics: ['chat'],
    });
    expect(NACK.of(envelope('rm.nak', { e: 1, r: [[2, 4]] }))).toEqual({ epoch: 1, missing: [[2, 4]] });
    expect(ACK.of(envelope('rm.ack', { e: 1, f: 2, a: 3 }))).toEqual({ epoch: 1, joinedAt: 2, ackedUpTo: 3 });
    expect(UNICAST.of(envelope('rm.ua', { e: 1, a: 3 }))).toBeUndefined();
  });

  it('every type accepts and refuses exactly as its hand-written check did', () => {
    const after = MESSAGES.checks;
    expect(Object.keys(after).sort()).toEqual(Object.keys(BEFORE).sort());
    const samples: Record<string, unknown[]> = {};
    for (const [type, before] of CASES) (samples[type] ??= []).push(before);
    samples['rm.nak']!.push({ e: 1, r: [[5, 4]] }, { e: 1, r: [[1, 2, 3]] });
    samples['rm.d']!.push(
      { e: 1, jp: 1, k: ['Bad'] },
      { e: 1, jp: 1, k: ['x'.repeat(RELIABLE_TOPIC_CHARS_MAX + 1)] },
    );
    samples['rm.u']!.push({ e: 1, to: 'nope', b: 1, k: ['chat'] });
    for (const [type, before] of Object.entries(BEFORE)) {
      const check = after[type]!;
      const own = samples[type]!;
      expectSameVerdicts(type, before, check, own);
    }
  });
});
