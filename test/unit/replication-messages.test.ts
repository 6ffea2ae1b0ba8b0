/**
 * Replication's messages, declared with the message kit (src/p2p/replication/messages.ts): each
 * body must go on the wire as the very bytes the hand-written mapping put there (key order
 * included), reach the roles by domain names, and be accepted or refused exactly as the
 * hand-written checks did. BEFORE and WIRE below are those checks and bodies, as they were.
 */
import { expectSameVerdicts } from '../support/messages.js';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ACK,
  ACK_HOLDERS_MAX,
  APPEND,
  ENTRIES,
  ENTRIES_PER_MESSAGE_MAX,
  GET,
  IBLT_CELLS_PER_REQUEST_MAX,
  IBLT_REPLY,
  IBLT_REQUEST,
  MESSAGES,
  PUT,
  PUT_STORED,
  REFUSAL,
  ROUND_FINISH,
  ROUND_POLL,
  ROUND_STATUS,
  TREE_REPLY,
  TREE_REQUEST,
  entryOf,
  packKeys,
  unpackKeys,
  wireEntry,
} from '../../src/p2p/replication/messages.js';
import {
  DIGEST_LEVELS,
  ENTRY_TEXT_BYTES_MAX,
  IBLT_CELLS_MAX,
  IBLT_CELLS_MIN,
  envelopeOverhead,
} from '../../src/p2p/replication/index.js';
import type { Message } from '../../src/p2p/kit/message.js';
import {
  Codec,
  DATAGRAM_PAYLOAD_BYTES_MAX,
  NAME_CHARS_MAX,
  PROTOCOL_VERSION,
  is,
  isPeerId,
  type Check,
  type Envelope,
} from '../../src/p2p/wire.js';

const ID = '0123456789abcdef';
const OTHER = 'fedcba9876543210';
const BYTES = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
const B64 = BYTES.toString('base64');

/** The hand-written checks, as they were before the kit. */
const wireEntryBefore: Check = (v) =>
  Array.isArray(v) &&
  v.length === 4 &&
  isPeerId(v[0]) &&
  is.int(1, Number.MAX_SAFE_INTEGER)(v[1]) &&
  is.uint()(v[2]) &&
  is.str(ENTRY_TEXT_BYTES_MAX)(v[3]);
const Q = is.uint();
const B64_BEFORE = is.str(DATAGRAM_PAYLOAD_BYTES_MAX);
const BEFORE: Record<string, Check> = {
  'rp.app': is.object({ e: wireEntryBefore }),
  'rp.ack': is.object({ o: is.peerId(), s: is.uint(), k: is.array(is.peerId(), ACK_HOLDERS_MAX) }),
  'rp.nak': is.object({ o: is.peerId(), s: is.uint(), r: is.literal('full', 'io', 'other') }),
  'rp.tq': is.object({
    q: Q,
    ln: is.literal(0, 1),
    lv: is.int(1, DIGEST_LEVELS),
    p: is.array(is.uint(), 64),
  }),
  'rp.tr': is.object({ q: Q, h: B64_BEFORE }),
  'rp.iq': is.object({
    q: Q,
    z: Q,
    m: is.int(IBLT_CELLS_MIN, IBLT_CELLS_MAX),
    f: Q,
    n: is.int(1, IBLT_CELLS_PER_REQUEST_MAX),
  }),
  'rp.ir': is.object({ q: Q, c: B64_BEFORE }),
  'rp.get': is.object({ q: Q, k: B64_BEFORE }),
  'rp.ent': is.object({ q: Q, e: is.array(wireEntryBefore, ENTRIES_PER_MESSAGE_MAX) }),
  'rp.put': is.object({ q: Q, e: is.array(wireEntryBefore, ENTRIES_PER_MESSAGE_MAX) }),
  'rp.got': is.object({ q: Q }),
  'rp.rnd': is.object({ r: Q }),
  'rp.st': is.object({
    r: Q,
    n: Q,
    h: is.str(16, 16),
    b: Q,
    d: is.str(64),
    k: is.array(is.peerId(), ACK_HOLDERS_MAX),
  }),
  'rp.fin': is.object({ r: Q, h: is.str(16, 16) }),
};

const entryA = { origin: ID, seq: 1, lamport: 2, text: 'a' };
const entryB = { origin: OTHER, seq: 4, lamport: 5, text: 'b' };

/**
 * One body of each type: as the protocol has always put it on the wire (the literal object the
 * hand-written mapping built, key order included), and as a role now gives it to the kit.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const CASES: Array<[Message<string, any>, string, unknown]> = [
  [
    APPEND,
    `{"e":["${ID}",3,17,"hello\\tworld"]}`,
    { entry: wireEntry({ origin: ID, seq: 3, lamport: 17, text: 'hello\tworld' }) },
  ],
  [ACK, `{"o":"${ID}","s":3,"k":["${OTHER}"]}`, { origin: ID, seq: 3, holders: [OTHER] }],
  [REFUSAL, `{"o":"${ID}","s":3,"r":"full"}`, { origin: ID, seq: 3, reason: 'full' }],
  [TREE_REQUEST, `{"q":7,"ln":1,"lv":2,"p":[0,5]}`, { request: 7, lane: 1, level: 2, parents: [0, 5] }],
  [TREE_REPLY, `{"q":7,"h":"${B64}"}`, { request: 7, hashes: BYTES.toString('base64') }],
  [
    IBLT_REQUEST,
    `{"q":8,"z":12345,"m":48,"f":24,"n":24}`,
    { request: 8, session: 12345, cells: 48, first: 24, count: 24 },
  ],
  [IBLT_REPLY, `{"q":8,"c":"${B64}"}`, { request: 8, cells: BYTES.toString('base64') }],
  [
    GET,
    `{"q":9,"k":"${B64}"}`,
    {
      request: 9,
      keys: packKeys([[0x04030201, 0x08070605]]),
    },
  ],
  [
    ENTRIES,
    `{"q":9,"e":[["${ID}",1,2,"a"],["${OTHER}",4,5,"b"]]}`,
    { request: 9, entries: [entryA, entryB].map(wireEntry) },
  ],
  [PUT, `{"q":10,"e":[["${ID}",1,2,"a"]]}`, { request: 10, entries: [entryA].map(wireEntry) }],
  [PUT_STORED, `{"q":10}`, { request: 10 }],
  [ROUND_POLL, `{"r":99}`, { round: 99 }],
  [
    ROUND_STATUS,
    `{"r":99,"n":4,"h":"00112233aabbccdd","b":2,"d":"","k":["${ID}","${OTHER}"]}`,
    { round: 99, entries: 4, digest: '00112233aabbccdd', before: 2, sha256: '', holders: [ID, OTHER] },
  ],
  [ROUND_FINISH, `{"r":99,"h":"00112233aabbccdd"}`, { round: 99, digest: '00112233aabbccdd' }],
];

function envelope(type: string, b: unknown): Envelope {
  return { v: PROTOCOL_VERSION, t: type, i: OTHER, n: 'h1', c: 1, s: 1, l: 1, b };
}

describe('replication messages', () => {
  it('declares every type it had, each once', () => {
    expect(Object.keys(MESSAGES.checks).sort()).toEqual(Object.keys(BEFORE).sort());
    expect(CASES.map(([m]) => m.type).sort()).toEqual(Object.keys(BEFORE).sort());
  });

  it.each(CASES.map(([m, wire, domain]) => [m.type, m, wire, domain] as const))(
    '%s: a body a role gives the kit encodes to the very bytes the old literal body did',
    (type, m, wire, domain) => {
      const codec = new Codec(MESSAGES.checks);
      const before = codec.encode(envelope(type, JSON.parse(wire)));
      const after = codec.encode(envelope(type, m.toWire(domain)));
      expect(after.equals(before)).toBe(true);
      const [t, body] = m.out(domain);
      expect(t).toBe(type);
      expect(JSON.stringify(body)).toBe(wire);
    },
  );

  it.each(CASES.map(([m, wire, domain]) => [m.type, m, wire, domain] as const))(
    '%s: a received body reaches the roles by domain names',
    (type, m, wire, domain) => {
      expect(m.check(JSON.parse(wire))).toBe(true);
      expect(m.of(envelope(type, JSON.parse(wire)))).toEqual(domain);
    },
  );

  it('entries and packed keys come back as they went', () => {
    const app = APPEND.of(envelope('rp.app', { e: [ID, 3, 17, 'hello\tworld'] }))!;
    expect(entryOf(app.entry)).toEqual({ origin: ID, seq: 3, lamport: 17, text: 'hello\tworld' });
    expect(
      unpackKeys(
        packKeys([
          [1, 2],
          [0xffffffff, 0],
        ]),
      ),
    ).toEqual([
      [1, 2],
      [0xffffffff, 0],
    ]);
  });

  it('every type accepts and refuses exactly as its hand-written check did', () => {
    for (const [m, wire] of CASES) {
      const before = BEFORE[m.type]!;
      const sample = JSON.parse(wire) as Record<string, unknown>;
      expectSameVerdicts(m.type, before, m.check, [sample]);
    }
  });
});

describe('replication sizing', () => {
  /** The envelope arithmetic replication did by hand before it used wire.ts's bodyBytesMax. */
  function overheadBefore(name: string): number {
    const env = {
      v: PROTOCOL_VERSION,
      t: 'x'.repeat(16),
      i: '0'.repeat(16),
      n: name,
      c: 2 ** 53,
      s: 2 ** 53,
      l: 2 ** 53,
      b: 0,
    };
    return Buffer.byteLength(JSON.stringify(env)) - 1;
  }

  it('sizes bodies for an envelope exactly as it did, for any name', () => {
    const names = fc.oneof(
      fc.string({ maxLength: NAME_CHARS_MAX }),
      fc.string({ unit: 'grapheme', maxLength: 16 }),
    );
    fc.assert(
      fc.property(names, (name) => envelopeOverhead(name) === overheadBefore(name)),
      { numRuns: 500, seed: 7 },
    );
    expect(envelopeOverhead('h1')).toBe(overheadBefore('h1'));
  });
});
