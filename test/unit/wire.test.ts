import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  Codec,
  DATAGRAM_PAYLOAD_BYTES_MAX,
  is,
  isPeerName,
  OversizeError,
  PROTOCOL_VERSION,
  type Envelope,
  FRAME_BYTES_MAX,
  FRAME_HEADER_BYTES,
  FRAME_MARK,
  decodeFrame,
  frameHeader,
} from '../../src/p2p/wire.js';
import { SimCluster } from '../support/cluster.js';
import { SECURE_FORMAT_VERSION } from '../../src/p2p/transport/secure.js';

const codec = new Codec({
  hb: is.object({ g: is.tags(4, 8, 8) }),
  msg: is.object({ text: is.str(100) }, { to: is.peerId() }),
});
const valid: Envelope = {
  v: PROTOCOL_VERSION,
  t: 'msg',
  i: '0123456789abcdef',
  n: 'alice',
  c: 3,
  s: 9,
  l: 42,
  b: { text: 'hi' },
};

describe('wire codec', () => {
  it('round-trips a valid envelope', () => {
    const r = codec.decode(codec.encode(valid));
    expect(r).toEqual({ ok: true, env: valid });
  });

  it('refuses at send anything over the datagram limit, and accepts exactly the limit', () => {
    const big = { ...valid, b: { text: 'x'.repeat(DATAGRAM_PAYLOAD_BYTES_MAX) } };
    expect(() => codec.encode(big)).toThrow(OversizeError);
    const loose = new Codec({ msg: is.object({ text: is.str(2000) }) });
    const overhead = loose.encode({ ...valid, b: { text: '' } }).length;
    const exact = { ...valid, b: { text: 'x'.repeat(DATAGRAM_PAYLOAD_BYTES_MAX - overhead) } };
    expect(loose.encode(exact).length).toBe(DATAGRAM_PAYLOAD_BYTES_MAX);
    expect(() => loose.encode({ ...exact, b: { text: exact.b.text + 'x' } })).toThrow(OversizeError);
    expect(loose.decode(Buffer.alloc(DATAGRAM_PAYLOAD_BYTES_MAX + 1, 0x20))).toEqual({
      ok: false,
      reason: 'oversize',
    });
  });

  it.each([
    ['another version', { ...valid, v: PROTOCOL_VERSION + 1 }, 'version'],
    ['a bad id', { ...valid, i: 'XYZ' }, 'envelope'],
    ['a control character in the name', { ...valid, n: 'a\u0007' }, 'envelope'],
    ['a line separator in the name', { ...valid, n: 'a\u2028b' }, 'envelope'],
    ['a paragraph separator in the name', { ...valid, n: 'a\u2029b' }, 'envelope'],
    ['a lone surrogate in the name', { ...valid, n: 'a\ud800b' }, 'envelope'],
    ['a negative incarnation', { ...valid, c: -1 }, 'envelope'],
    ['a fractional Lamport time', { ...valid, l: 1.5 }, 'envelope'],
    ['an extra field', { ...valid, x: 1 }, 'envelope'],
    ['an unknown type', { ...valid, t: 'nope' }, 'type'],
    ['an extra body field', { ...valid, b: { text: 'a', evil: 1 } }, 'body'],
    ['a too-long body string', { ...valid, b: { text: 'x'.repeat(101) } }, 'body'],
  ])('drops %s with a reason', (_what, env, reason) => {
    const r = codec.decode(Buffer.from(JSON.stringify(env)));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toBe(reason);
  });

  it('never throws on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1400 }), (bytes) => {
        const r = codec.decode(bytes);
        expect(r.ok).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on mutated valid datagrams, and accepts only valid envelopes', () => {
    const base = codec.encode(valid);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 8,
        }),
        (edits) => {
          const b = Buffer.from(base);
          for (const [at, byte] of edits) b[at] = byte;
          const r = codec.decode(b);
          if (r.ok) {
            // Whatever got through must still satisfy every rule.
            expect(r.env.v).toBe(PROTOCOL_VERSION);
            expect(isPeerName(r.env.n)).toBe(true);
            expect(Number.isSafeInteger(r.env.l)).toBe(true);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('never throws on arbitrary JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(codec.decode(Buffer.from(JSON.stringify(v) ?? 'null')).ok).toBe(false);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('a live peer under garbage', () => {
  it('counts and drops random and mutated datagrams, and stays in the group', async () => {
    const c = new SimCluster(99);
    const a = await c.add('a');
    const b = await c.add('b');
    c.rt.runFor(500);
    const attacker = c.net.transport();
    await attacker.start(() => {});
    const sample = Buffer.from(
      JSON.stringify({
        v: PROTOCOL_VERSION,
        t: 'hb',
        i: 'fedcba9876543210',
        n: 'x',
        c: 1,
        s: 1,
        l: 5,
        b: { g: {} },
      }),
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 1300 }),
          fc.array(fc.tuple(fc.nat(sample.length - 1), fc.nat(255)), { maxLength: 6 }).map((edits) => {
            const m = Buffer.from(sample);
            for (const [at, byte] of edits) m[at] = byte;
            return m;
          }),
        ),
        (bytes) => {
          attacker.send(a.address, bytes);
          attacker.broadcast(bytes);
          c.rt.runFor(1);
        },
      ),
      { numRuns: 2000 },
    );
    c.rt.runFor(3000);
    const dropped = Object.values(a.node.stats.dropped).reduce((x, y) => x + y, 0);
    expect(dropped).toBeGreaterThan(1000);
    expect(c.handlerErrors()).toEqual([]);
    expect(a.node.membership.get(b.node.id)?.state).toBe('alive');
    expect(b.node.membership.get(a.node.id)?.state).toBe('alive');
    // Forged heartbeats that happen to be valid create members that then fall silent and die;
    // what matters is that no real peer was ever declared dead.
    expect(a.events.filter((e) => e.kind === 'dead' && e.member.id === b.node.id)).toEqual([]);
    expect(b.events.filter((e) => e.kind === 'dead' && e.member.id === a.node.id)).toEqual([]);
  });
});

describe('frames (bulk data without an envelope)', () => {
  const id = '0123456789abcdef';

  it('a header and body read back as they were written', () => {
    const data = Buffer.concat([frameHeader(7, id), Buffer.from('body')]);
    expect(data[0]).toBe(FRAME_MARK);
    expect(data.length).toBe(FRAME_HEADER_BYTES + 4);
    const r = decodeFrame(data);
    expect(r).toEqual({ ok: true, kind: 7, sender: id, body: Buffer.from('body') });
  });

  it('another version, a short header or an oversize frame is refused with its reason', () => {
    const other = frameHeader(1, id);
    other[1] = PROTOCOL_VERSION + 1;
    expect(decodeFrame(other)).toEqual({ ok: false, reason: 'version', version: PROTOCOL_VERSION + 1 });
    expect(decodeFrame(frameHeader(1, id).subarray(0, FRAME_HEADER_BYTES - 1))).toMatchObject({
      ok: false,
      reason: 'envelope',
    });
    expect(decodeFrame(Buffer.alloc(FRAME_BYTES_MAX + 1, FRAME_MARK))).toMatchObject({
      ok: false,
      reason: 'oversize',
    });
  });

  it('neither a JSON envelope nor a sealed datagram starts like a frame', () => {
    expect('{'.charCodeAt(0)).not.toBe(FRAME_MARK);
    expect(SECURE_FORMAT_VERSION).not.toBe(FRAME_MARK);
  });
});
