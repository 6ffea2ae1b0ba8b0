/**
 * What every receiver of bench/chat.ts does with a delivered message, peer driver and Redis
 * subscriber alike, so both sides of the comparison do the same application work per message:
 * read the sender index, the message number and the send time from the payload and count the
 * message, so exactly-once delivery can be checked afterwards.
 *
 * Payload: `<sender index> <message number> <send time, ns of CLOCK_MONOTONIC> <padding>`.
 * Fields are read digit by digit (no substrings, no BigInt): a send time in ns stays an exact
 * double for 104 days of uptime.
 */

export const hr = () => process.hrtime.bigint();

/** A payload of exactly `size` bytes (more if the head alone is longer). */
export function benchPayload(index: number, n: number, size: number): string {
  const head = `${index} ${n} ${hr()} `;
  return head.length >= size ? head : head + 'x'.repeat(size - head.length);
}

export interface SenderTally {
  distinct: number;
  duplicates: number;
  maxN: number;
  holes: number;
}

export class Tally {
  deliveries = 0;
  /** CLOCK_MONOTONIC ns when the `markAt`-th message was counted (0n until then). */
  markedAt = 0n;
  /** Send time of the last payload counted, ns of CLOCK_MONOTONIC. */
  sentAt = 0;
  /** Per sender index: how often each message number was delivered (index = number). */
  private counts = new Map<number, Uint8Array>();

  /** markAt: the delivery count to stamp `markedAt` at (0: never), e.g. the end of a run's early part. */
  constructor(private readonly markAt = 0) {}

  /** Counts one payload and returns its message number (0 if the payload is malformed). */
  add(p: string): number {
    let i = 0;
    let k = 0;
    let n = 0;
    let t = 0;
    let c: number;
    while (i < p.length && (c = p.charCodeAt(i++)) !== 32) k = k * 10 + c - 48;
    while (i < p.length && (c = p.charCodeAt(i++)) !== 32) n = n * 10 + c - 48;
    while (i < p.length && (c = p.charCodeAt(i++)) !== 32) t = t * 10 + c - 48;
    if (!(n >= 1)) return 0;
    let arr = this.counts.get(k);
    if (!arr || arr.length <= n) {
      const bigger = new Uint8Array(Math.max(1024, (n + 1) * 2));
      if (arr) bigger.set(arr);
      arr = bigger;
      this.counts.set(k, arr);
    }
    if (arr[n]! < 255) arr[n]!++;
    this.sentAt = t;
    if (++this.deliveries === this.markAt) this.markedAt = hr();
    return n;
  }

  perSender(): Record<string, SenderTally> {
    const out: Record<string, SenderTally> = {};
    for (const [k, arr] of this.counts) {
      let distinct = 0;
      let duplicates = 0;
      let maxN = 0;
      for (let n = 1; n < arr.length; n++) {
        if (arr[n]! > 0) {
          distinct++;
          duplicates += arr[n]! - 1;
          maxN = n;
        }
      }
      out[k] = { distinct, duplicates, maxN, holes: maxN - distinct };
    }
    return out;
  }
}
