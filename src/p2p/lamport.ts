/**
 * Lamport logical clock (Lamport 1978): tick before every send, and on receive take the maximum of
 * the local and the received time, plus one. Every envelope carries the sender's time, so every
 * message is ordered consistently with causality.
 *
 * Bounded adoption (bounds.ts). Any datagram can carry any time, and a merged time can never be
 * given back: one forged 2^53-1 used to freeze every clock of the group for good (saved, and
 * spread again by restarted peers). So a received time is merged only when it is at most
 * LAMPORT_STEP_MAX ahead of ours and not beyond COUNTER_MAX; otherwise the node drops the whole
 * envelope and counts it (`stats.refused.lamport`). A time behind ours is always fine.
 *
 * Why that step is enough for peers that hear each other: every receive lifts the receiver to the
 * sender's time + 1, so two members in contact differ by the events one of them counts between two
 * of its datagrams the other hears: events/s x a heartbeat interval or two. Even at 1,000,000
 * events/s (a chat or kv bench ticks once per message) and 1.1 s of loss that is about 2^20;
 * LAMPORT_STEP_MAX is 2^24, about 15 times that. What the step costs a forger: with catching up
 * capped (below), walking a clock from LAMPORT_CATCH_UP_MAX to COUNTER_MAX takes about 4.7 x 10^8
 * accepted datagrams, over an hour of a 100,000/s flood.
 *
 * Catching up. A legitimate group can be much further ahead: a fresh peer joins a group that has
 * counted for days (2^24 is 4 days at 50 events/s), a partition heals after a busy side counted
 * on, a lone peer keeps the time of a long history. Such a peer must not be cut off, so a
 * far-ahead time is adopted once claims that agree (all within one step of each other) come
 *   - from LAMPORT_CATCH_UP_SENDERS_MIN different addresses: a newcomer's probe is answered at
 *     once by every member, so it joins a group of two or more within a round trip; or
 *   - for a while: at least LAMPORT_CATCH_UP_CLAIMS_MIN of them over at least LAMPORT_CATCH_UP_MS,
 *     with no silence that long between two; a lone member heartbeats 4-5 times a second, so a
 *     peer behind it catches up about a second after it first hears it (refusing its datagrams
 *     until then, as if it heard nobody).
 * One forged datagram, or a burst of copies from one socket, does neither. The lowest agreeing
 * claim is adopted (the least harm if it was forged), and a lower cluster of claims replaces a
 * higher one, so a forger claiming higher cannot hold back a real catch-up. The trade-off,
 * stated: in an open group, a forger sending one time from two sockets, or from one for a
 * second, moves every clock to it, as a far-ahead group would. That is why catching up stops at
 * LAMPORT_CATCH_UP_MAX, which no group reaches by counting (350 years at 100,000 events/s), so
 * the clocks keep 7.9 x 10^15 of room to count on afterwards. A keyed group admits no forger.
 */
import { adoptable, loadable } from './bounds.js';

/** Largest jump a received Lamport time may make our clock take, in ticks (see above). */
export const LAMPORT_STEP_MAX = 2 ** 24;
/** A far-ahead time must be claimed over at least this long before we adopt it, in ms. */
export const LAMPORT_CATCH_UP_MS = 1000;
/** ... and by at least this many envelopes (a live member heartbeats 4-5 times per second). */
export const LAMPORT_CATCH_UP_CLAIMS_MIN = 3;
/** Agreeing far-ahead claims from this many addresses are adopted at once (a group answering a probe). */
export const LAMPORT_CATCH_UP_SENDERS_MIN = 2;
/** No time above this is ever caught up with, only reached by counting or in steps. */
export const LAMPORT_CATCH_UP_MAX = 2 ** 50;

/** Far-ahead claims that agree: their lowest and highest time, when and from where they came. */
interface Claim {
  low: number;
  high: number;
  first: number;
  last: number;
  count: number;
  /** Addresses they came from, up to LAMPORT_CATCH_UP_SENDERS_MIN. */
  senders: Set<string>;
}

export class LamportClock {
  private t: number;
  private claim: Claim | null = null;

  constructor(start = 0) {
    if (!loadable(start))
      throw new Error(`Lamport time must be a uint up to the counter bound, got ${start}`);
    this.t = start;
  }

  get time(): number {
    return this.t;
  }

  /** Advances for a local event or a send; returns the time to stamp on it. */
  tick(): number {
    this.t = Math.min(this.t + 1, Number.MAX_SAFE_INTEGER);
    return this.t;
  }

  /**
   * A time received at `now` (ms) from address `from`: merged, returning true, when the bounds
   * allow it or it completes a catch-up; false when the whole envelope must be refused.
   */
  receive(received: number, now: number, from: string): boolean {
    if (!adoptable(this.t, received, LAMPORT_STEP_MAX)) {
      if (received > LAMPORT_CATCH_UP_MAX || !this.claimed(received, now, from)) return false;
      this.merge(this.claim!.low);
      this.claim = null;
    }
    this.merge(received);
    return true;
  }

  private merge(received: number): void {
    this.t = Math.min(Math.max(this.t, received) + 1, Number.MAX_SAFE_INTEGER);
  }

  /** Records a far-ahead claim; true once the agreeing claims are enough to adopt. */
  private claimed(time: number, now: number, from: string): boolean {
    const c = this.claim;
    if (!c || now - c.last > LAMPORT_CATCH_UP_MS || time < c.high - LAMPORT_STEP_MAX) {
      // None yet, gone silent, or a lower cluster: start over from this claim.
      this.claim = { low: time, high: time, first: now, last: now, count: 1, senders: new Set([from]) };
      return false;
    }
    if (time > c.low + LAMPORT_STEP_MAX) return false; // a higher claim that disagrees
    c.low = Math.min(c.low, time);
    c.high = Math.max(c.high, time);
    c.last = now;
    c.count++;
    if (c.senders.size < LAMPORT_CATCH_UP_SENDERS_MIN) c.senders.add(from);
    return (
      c.senders.size >= LAMPORT_CATCH_UP_SENDERS_MIN ||
      (c.count >= LAMPORT_CATCH_UP_CLAIMS_MIN && now - c.first >= LAMPORT_CATCH_UP_MS)
    );
  }
}
