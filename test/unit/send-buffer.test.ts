import { describe, expect, it } from 'vitest';
import { SendBuffer } from '../../src/p2p/reliable/send-buffer.js';
import { seededRandom } from '../../src/p2p/transport/sim.js';

const PAYLOAD_MAX = 700;

/** A payload of `bytes` UTF-8 bytes that names its message (multi-byte characters included). */
function payloadOf(seq: number, bytes: number): string {
  const head = `${seq}é`;
  if (bytes < Buffer.byteLength(head)) return 'z'.repeat(bytes);
  return head + 'x'.repeat(bytes - Buffer.byteLength(head));
}

describe('SendBuffer (repair buffer of reliable delivery)', () => {
  it('holds exactly what a model holds, byte for byte, under random pushes and drops (50 seeds)', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const r = seededRandom(seed);
      const messagesMax = 64;
      const bytesMax = 8 * 1024;
      const b = new SendBuffer(messagesMax, bytesMax, PAYLOAD_MAX, 1024);
      const model = new Map<number, { topic: string; payload: string; lamport: number }>();
      // Checked with plain comparisons (a million expect() calls would take seconds).
      const problems: string[] = [];
      const check = (ok: boolean, what: string) => {
        if (!ok && problems.length < 10) problems.push(`seed ${seed}: ${what}`);
      };
      let lo = 1;
      let dropped = 0;
      const drop = () => {
        check(b.dropOldest() === lo, `dropOldest gave not ${lo}`);
        model.delete(lo++);
      };
      for (let seq = 1; seq <= 2000; seq++) {
        // Mostly small payloads, some empty, some at the limit: wraps, growth and drops all happen.
        const x = r();
        const bytes = x < 0.1 ? 0 : x < 0.2 ? PAYLOAD_MAX : Math.floor(r() * 200);
        const payload = payloadOf(seq, bytes);
        const topic = seq % 3 === 0 ? 'a' : 'b.c';
        while (!b.fits(bytes)) {
          drop();
          dropped++;
        }
        if (r() < 0.05 && b.size > 0) drop();
        const at = b.push(topic, payload, bytes, seq * 2);
        check(b.ring.toString('utf8', at, at + bytes) === payload, `payload ${seq} written wrong`);
        model.set(seq, { topic, payload, lamport: seq * 2 });
        check(b.lo === lo && b.hi === seq && b.size === model.size, `bounds at ${seq}`);
        check(b.size <= messagesMax && b.bytes <= bytesMax, `limits at ${seq}`);
        check(b.ring.length <= bytesMax + 2 * PAYLOAD_MAX, `ring size at ${seq}`);
        for (const [s, m] of model) {
          const o = b.offsetOf(s);
          check(
            b.has(s) &&
              b.ring.toString('utf8', o, o + b.bytesOf(s)) === m.payload &&
              b.topicOf(s) === m.topic &&
              b.lamportOf(s) === m.lamport,
            `message ${s} damaged after pushing ${seq}`,
          );
        }
        check(!b.has(lo - 1) && !b.has(seq + 1), `has() outside the bounds at ${seq}`);
      }
      expect(problems).toEqual([]);
      expect(dropped).toBeGreaterThan(0);
    }
  });

  it('starts small and grows only as far as the messages held need', () => {
    const b = new SendBuffer(8192, 4 * 1024 * 1024, PAYLOAD_MAX);
    expect(b.ring.length).toBe(0);
    for (let i = 0; i < 10; i++) {
      expect(b.fits(64)).toBe(true);
      b.push('chat', 'x'.repeat(64), 64, i);
    }
    expect(b.ring.length).toBe(64 * 1024);
    for (let i = 0; i < 8192; i++) {
      while (!b.fits(500)) b.dropOldest();
      b.push('chat', 'y'.repeat(500), 500, i);
    }
    expect(b.size).toBe(8192);
    expect(b.bytes).toBe(8192 * 500);
    expect(b.ring.length).toBeLessThanOrEqual(4 * 1024 * 1024 + 2 * PAYLOAD_MAX);
  });

  it('refuses a slot count that is not a power of two', () => {
    expect(() => new SendBuffer(1000, 1024, PAYLOAD_MAX)).toThrow(/power of two/);
  });
});
