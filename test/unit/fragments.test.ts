/**
 * The fragment layout (fragments.ts): how a message splits, what its headers say, and that the
 * bulk lane's decoder survives any bytes (fuzzed) and accepts only what its bounds allow.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeFragment, Fragment, Split } from '../../src/p2p/reliable/fragments.js';
import { BULK_ATTACHMENTS } from '../../src/p2p/reliable/messages.js';
import { DatagramRoom } from '../../src/p2p/reliable/datagram.js';
import {
  RELIABLE_FRAGMENTS_MAX,
  RELIABLE_MESSAGE_BYTES_MAX,
  RELIABLE_BATCH_MESSAGES_MAX,
} from '../../src/p2p/reliable/limits.js';
import { ByteReader, NAME_CHARS_MAX } from '../../src/p2p/wire.js';

const ROOM = new DatagramRoom('x'.repeat(NAME_CHARS_MAX)).payloadRoom('y'.repeat(24));

describe('fragments', () => {
  it('a split covers the message exactly, in order, each fragment with its header within the room', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300_000 }), (bytes) => {
        const s = new Split(bytes, ROOM);
        let at = 0;
        for (let i = 0; i < s.count; i++) {
          const [start, end] = s.range(i);
          expect(start).toBe(at);
          expect(end).toBeGreaterThanOrEqual(start);
          if (i < s.count - 1) expect(end).toBeGreaterThan(start); // only the last may be empty
          expect(s.header(i).length + end - start).toBeLessThanOrEqual(ROOM);
          at = end;
        }
        expect(at).toBe(bytes);
        // What the first header says is what the decoder reads back.
        const head = s.header(0);
        const f = decodeFragment(1, 't', 0, new ByteReader(head), head.length);
        expect(f?.head).toEqual({ bytes, count: s.count });
      }),
      { numRuns: 200 },
    );
  });

  it('the largest message splits into no more fragments than a message may have', () => {
    expect(new Split(RELIABLE_MESSAGE_BYTES_MAX, ROOM).count).toBeLessThanOrEqual(RELIABLE_FRAGMENTS_MAX);
  });

  it('a first fragment claiming more than the largest message, or an impossible count, is refused', () => {
    const read = (bytes: number[]) =>
      decodeFragment(1, 't', 0, new ByteReader(Buffer.from(bytes)), bytes.length);
    expect(read([1, 0, 1])).toBeInstanceOf(Fragment); // an empty message: one fragment
    expect(read([1, 0, 2])).toBeUndefined(); // two fragments for no bytes
    expect(read([1, 0, 0])).toBeUndefined(); // no fragments
    expect(read([2, 0, 1])).toBeUndefined(); // unknown kind
    // 64 MiB + 1 as a varint: 0x80 0x80 0x80 0x20 is 2^26, then + 1.
    expect(read([1, 0x81, 0x80, 0x80, 0x20, 1])).toBeUndefined();
  });

  it('the bulk decoder never throws on any bytes, and what it accepts keeps every bound (fuzzed)', () => {
    const decode = BULK_ATTACHMENTS['rb.d']!;
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 1400 }),
        fc.array(fc.constantFrom('a', 'big', 'chat.file'), { minLength: 1, maxLength: 4 }),
        (bytes, k) => {
          const out = decode(Buffer.from(bytes), { e: 1, jp: 1, k });
          if (out === undefined) return;
          expect(Array.isArray(out)).toBe(true);
          const list = out as Fragment[];
          expect(list.length).toBeGreaterThan(0);
          expect(list.length).toBeLessThanOrEqual(RELIABLE_BATCH_MESSAGES_MAX);
          let prev = 0;
          for (const f of list) {
            expect(f).toBeInstanceOf(Fragment);
            expect(f.seq).toBeGreaterThan(prev);
            prev = f.seq;
            expect(k).toContain(f.topic);
            if (f.head) {
              expect(f.head.bytes).toBeLessThanOrEqual(RELIABLE_MESSAGE_BYTES_MAX);
              expect(f.head.count).toBeGreaterThanOrEqual(1);
              expect(f.head.count).toBeLessThanOrEqual(Math.min(RELIABLE_FRAGMENTS_MAX, f.head.bytes + 1));
            }
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});
