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
 * far-ahead time is adopted once claims that agree (within one step of each other) come
 *   - from LAMPORT_CATCH_UP_SENDERS_MIN different addresses within LAMPORT_CATCH_UP_MS: a
 *     newcomer's probe is answered at once by every member, so it joins a group of two or more
 *     within a round trip; or
 *   - for a while: at least LAMPORT_CATCH_UP_CLAIMS_MIN of them over at least LAMPORT_CATCH_UP_MS,
 *     with no silence that long between two; a lone member heartbeats 4-5 times a second, so a
 *     peer behind it catches up about a second after it first hears it (refusing its datagrams
 *     until then, though membership still counts them as signs of life: node.ts).
 * One forged datagram, or a burst of copies from one socket, does neither. The lowest agreeing
 * claim is adopted (the least harm if it was forged). For the first rule each address's latest
 * far-ahead claim is kept on its own, so what one address sends can neither stand in for a
 * second address nor push another address's claim out: a forger sending disagreeing times in
 * between cannot keep a peer from catching up with two members that agree. That matters once a
 * forger has split the group (members that caught up with different forged times at different
 * moments): the members left behind then catch up with the others at their next heartbeats,
 * whatever the forger goes on sending. For the second rule all claims form one cluster, a lower
 * cluster replacing a higher one, so a forger claiming higher cannot hold back a real catch-up
 * from a lone member either (one claiming lower, in between, can, while it sends). The trade-off,
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
/**
 * Addresses whose latest far-ahead claim is kept for the rule of several senders (the oldest is
 * pushed out), so each far-ahead claim costs at most this many comparisons under a flood. Hiding
 * members' claims takes this many sockets, and two sockets already make their own agreement.
 */
export const LAMPORT_CLAIMERS_MAX = 16;

/** Far-ahead claims that agree: their lowest and highest time, and when they came. */
interface Claim {
  low: number;
  high: number;
  first: number;
  last: number;
  count: number;
}

/** One address's latest far-ahead claim. */
interface Latest {
  time: number;
  at: number;
}

export class LamportClock {
  private t: number;
  private claim: Claim | null = null;
  /** By address, oldest first: the latest far-ahead claim of each, for the rule of several senders. */
  private readonly latest = new Map<string, Latest>();

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
      if (received > LAMPORT_CATCH_UP_MAX) return false;
      const agreed = this.agreed(received, now, from);
      const sustained = this.claimed(received, now) ? this.claim!.low : null;
      if (agreed === null && sustained === null) return false;
      this.merge(Math.min(agreed ?? Infinity, sustained ?? Infinity));
      this.claim = null;
      this.latest.clear();
    }
    this.merge(received);
    return true;
  }

  private merge(received: number): void {
    this.t = Math.min(Math.max(this.t, received) + 1, Number.MAX_SAFE_INTEGER);
  }

  /**
   * Records `from`'s latest far-ahead claim; once other addresses' recent claims agree with it,
   * enough of them to adopt, the lowest of those times, else null.
   */
  private agreed(time: number, now: number, from: string): number | null {
    this.latest.delete(from); // re-inserted below, so the map stays oldest first
    let agreeing = 1;
    let lowest = time;
    for (const [address, claim] of this.latest) {
      if (now - claim.at > LAMPORT_CATCH_UP_MS) this.latest.delete(address);
      else if (Math.abs(claim.time - time) <= LAMPORT_STEP_MAX) {
        agreeing++;
        lowest = Math.min(lowest, claim.time);
      }
    }
    this.latest.set(from, { time, at: now });
    if (this.latest.size > LAMPORT_CLAIMERS_MAX) this.latest.delete(this.latest.keys().next().value!);
    return agreeing >= LAMPORT_CATCH_UP_SENDERS_MIN ? lowest : null;
  }

  /** Records a far-ahead claim in the cluster; true once it has been claimed long enough to adopt. */
  private claimed(time: number, now: number): boolean {
    const c = this.claim;
    if (!c || now - c.last > LAMPORT_CATCH_UP_MS || time < c.high - LAMPORT_STEP_MAX) {
      // None yet, gone silent, or a lower cluster: start over from this claim.
      this.claim = { low: time, high: time, first: now, last: now, count: 1 };
      return false;
    }
    if (time > c.low + LAMPORT_STEP_MAX) return false; // a higher claim that disagrees
    c.low = Math.min(c.low, time);
    c.high = Math.max(c.high, time);
    c.last = now;
    c.count++;
    return c.count >= LAMPORT_CATCH_UP_CLAIMS_MIN && now - c.first >= LAMPORT_CATCH_UP_MS;
  }
}
