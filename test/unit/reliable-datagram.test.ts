import type { ProtocolContext } from '../../src/p2p/protocol.js';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ReliableDelivery } from '../../src/p2p/reliable/index.js';
import {
  Codec,
  DATAGRAM_PAYLOAD_BYTES_MAX,
  NAME_CHARS_MAX,
  OversizeError,
  PEER_ID_HEX_CHARS,
  PROTOCOL_VERSION,
  writeVarint,
} from '../../src/p2p/wire.js';

interface Sent {
  messages: Array<{ seq: number; lamport: number; topic: string; payload: string }>;
}

const BIG = Number.MAX_SAFE_INTEGER;
const ID = 'f'.repeat(PEER_ID_HEX_CHARS);
/** A datagram's room as datagram.ts counts it: the first topic's comma, which it lacks, is counted. */
const ROOM_BYTES = DATAGRAM_PAYLOAD_BYTES_MAX - 1;

/**
 * Bytes of the larger of an `rm.d` and an `rm.u` datagram carrying these messages, with every
 * number of the envelope at its largest (the room a sender reserves serves both types), the
 * attachment written by hand; the codec measures it (and refuses it when too big).
 */
function datagramBytes(codec: Codec, name: string, messages: Sent['messages']): number {
  const topics = [...new Set(messages.map((m) => m.topic))];
  const buf = Buffer.alloc(DATAGRAM_PAYLOAD_BYTES_MAX * 2);
  let o = 0;
  let seq = 0;
  let lamport = 0;
  for (const m of messages) {
    o = writeVarint(buf, o, m.seq - seq);
    o = writeVarint(buf, o, m.lamport - lamport);
    buf[o++] = topics.indexOf(m.topic);
    o = writeVarint(buf, o, Buffer.byteLength(m.payload));
    o += buf.write(m.payload, o);
    seq = m.seq;
    lamport = m.lamport;
  }
  const env = { v: PROTOCOL_VERSION, i: ID, n: name, c: BIG, s: BIG, l: BIG };
  const measure = (t: string, b: unknown) => {
    try {
      return codec.encode({ ...env, t, b }, buf.subarray(0, o)).length;
    } catch (err) {
      if (err instanceof OversizeError) return err.bytes;
      throw err;
    }
  };
  return Math.max(
    measure('rm.d', { e: BIG, jp: BIG, k: topics }),
    measure('rm.u', { e: BIG, to: ID, b: BIG, k: topics }),
  );
}

describe('reliable delivery: the room in a datagram', () => {
  it('a burst fills each datagram to its last byte but one (datagram.ts counts a comma for the first topic, which has none): with the largest numbers it fits, and one message more would not', () => {
    let datagrams = 0;
    fc.assert(
      fc.property(
        fc
          .tuple(fc.integer({ min: 1, max: NAME_CHARS_MAX }), fc.constantFrom('a', 'é', '€'))
          .map(([length, char]) => char.repeat(length)),
        fc.array(
          fc.record({
            topic: fc.constantFrom('t', 'chat', 'a'.repeat(24), 'x.y-z'),
            // Short and long, one to three bytes a character.
            payload: fc
              .tuple(fc.nat(100), fc.constantFrom('x', 'é', '€'), fc.nat(8))
              .map(([n, char, tail]) => char.repeat(n) + 'x'.repeat(tail)),
            lamportStep: fc.constantFrom(1, 200, 20_000),
          }),
          { minLength: 20, maxLength: 80 },
        ),
        (name, burst) => {
          let lamport = 0;
          const sent: Sent[] = [];
          const capture = (b: unknown, a?: Uint8Array) => {
            const r = codec.decode(
              codec.encode({ v: PROTOCOL_VERSION, t: 'rm.d', i: ID, n: name, c: 1, s: 1, l: BIG, b }, a),
            );
            if (!r.ok || !Array.isArray(r.env.a))
              throw new Error('the sender sent a datagram it cannot read');
            sent.push({ messages: r.env.a });
            return 0;
          };
          const ctx: ProtocolContext = {
            self: { id: ID, name, incarnation: 1 },
            now: () => 0,
            wall: () => 0,
            random: () => 0,
            lamport: () => lamport,
            stamp: () => lamport,
            broadcast: (_t, b, a) => capture(b, a),
            send: (_to, _t, b, a) => capture(b, a),
            emit: () => {},
            refuse: () => {},
            soon: () => {}, // the test flushes the whole burst itself
            sendFrame: () => {},
            bodyBytesMax: () => 0, // reliable delivery sizes its datagrams itself (datagram.ts)
            wakeAt: () => {},
          };
          const rd = new ReliableDelivery(ctx, { live: () => [], get: () => undefined });
          const codec = new Codec(rd.messages, rd.attachments);
          for (const m of burst) {
            lamport += m.lamportStep;
            rd.publish(m.topic, m.payload);
          }
          rd.flush();
          datagrams += sent.length;
          expect(sent.flatMap((d) => d.messages.map((m) => m.payload))).toEqual(burst.map((m) => m.payload));
          for (const [i, d] of sent.entries()) {
            expect(datagramBytes(codec, name, d.messages)).toBeLessThanOrEqual(ROOM_BYTES);
            const next = sent[i + 1]?.messages[0];
            if (next) expect(datagramBytes(codec, name, [...d.messages, next])).toBeGreaterThan(ROOM_BYTES);
          }
        },
      ),
      { seed: 19, numRuns: 300 },
    );
    expect(datagrams).toBeGreaterThan(2 * 300); // most bursts took several datagrams
  });
});
