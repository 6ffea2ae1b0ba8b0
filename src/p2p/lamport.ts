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
 * on, a lone peer keeps the time of a long history. Such a peer must not be cut off, so each
 * address's far-ahead claims are kept on their own (its run of claims within one step of each
 * other, started over when one disagrees or after a silence of LAMPORT_CATCH_UP_MS), and a
 * far-ahead time is adopted once
 *   - LAMPORT_CATCH_UP_SENDERS_MIN different addresses claimed times that agree within
 *     LAMPORT_CATCH_UP_MS: a newcomer's probe is answered at once by every member, so it joins a
 *     group of two or more within a round trip; or
 *   - one address has claimed it for a while: at least LAMPORT_CATCH_UP_CLAIMS_MIN times over at
 *     least LAMPORT_CATCH_UP_MS; a lone member heartbeats 4-5 times a second, so a peer behind it
 *     catches up about a second after it first hears it (refusing its datagrams until then,
 *     though membership still counts them as signs of life: node.ts).
 * One forged datagram, or a burst of copies from one socket, does neither. What is adopted is the
 * lowest of the agreeing times and of any other address's run of at least
 * LAMPORT_CATCH_UP_CLAIMS_MIN claims in the last LAMPORT_CATCH_UP_MS (the least harm if one was
 * forged, and a lone member's time that is not yet a second old is not jumped over); a claim
 * still far ahead of that stays refused until its own turn comes. Because each address counts on
 * its own, what a forger sends from one socket can neither stand in for a second address nor
 * reset anyone else's run: a forger that split the group (members that caught up with different
 * forged times at different moments) cannot keep the members left behind from catching up with
 * the others, by their agreement or after a second of one's heartbeats, whatever it sends in
 * between; repeated lower times can delay it only while they go on, and for at most
 * LAMPORT_CATCH_UP_MS after. The trade-off, stated: in an open group, a forger sending one time
 * from two sockets, or from one for a second, moves every clock to it, as a far-ahead group
 * would. That is why catching up stops at LAMPORT_CATCH_UP_MAX, which no group reaches by
 * counting (350 years at 100,000 events/s), so the clocks keep 7.9 x 10^15 of room to count on
 * afterwards. A keyed group admits no forger.
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
 * Addresses whose far-ahead claims are kept (the one heard from longest ago is pushed out), so
 * each far-ahead claim costs at most this many comparisons under a flood. Hiding members' claims
 * takes this many sockets, and two sockets already make their own agreement.
 */
export const LAMPORT_CLAIMERS_MAX = 16;

/** One address's run of far-ahead claims that agree: their lowest and highest time, and when. */
interface Claims {
  low: number;
  high: number;
  first: number;
  last: number;
  count: number;
}

export class LamportClock {
  private t: number;
  /** By address, the one heard from longest ago first. */
  private readonly claims = new Map<string, Claims>();

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
   * allow it or once a catch-up brings it within them; false when the whole envelope must be refused.
   */
  receive(received: number, now: number, from: string): boolean {
    if (!adoptable(this.t, received, LAMPORT_STEP_MAX)) {
      if (received > LAMPORT_CATCH_UP_MAX) return false;
      const caughtUp = this.claimed(received, now, from);
      if (caughtUp === null) return false;
      this.merge(caughtUp);
      if (!adoptable(this.t, received, LAMPORT_STEP_MAX)) return false;
    }
    this.merge(received);
    return true;
  }

  private merge(received: number): void {
    this.t = Math.min(Math.max(this.t, received) + 1, Number.MAX_SAFE_INTEGER);
  }

  /** Records a far-ahead claim from `from`; once the claims are enough, the time to catch up with. */
  private claimed(time: number, now: number, from: string): number | null {
    let own = this.claims.get(from);
    this.claims.delete(from); // set again below: the map stays ordered by when each was heard
    if (!own || now - own.last > LAMPORT_CATCH_UP_MS || Math.abs(time - own.high) > LAMPORT_STEP_MAX)
      own = { low: time, high: time, first: now, last: now, count: 0 };
    own.low = Math.min(own.low, time);
    own.high = Math.max(own.high, time);
    own.last = now;
    own.count++;
    this.claims.set(from, own);
    if (this.claims.size > LAMPORT_CLAIMERS_MAX) this.claims.delete(this.claims.keys().next().value!);
    let ready = own.count >= LAMPORT_CATCH_UP_CLAIMS_MIN && now - own.first >= LAMPORT_CATCH_UP_MS;
    let agreeing = 1;
    let lowest = own.low;
    for (const [address, c] of this.claims) {
      if (c === own) continue;
      // Gone silent, or no longer ahead (we caught up with it or beyond): forgotten.
      if (now - c.last > LAMPORT_CATCH_UP_MS || adoptable(this.t, c.high, LAMPORT_STEP_MAX)) {
        this.claims.delete(address);
      } else if (Math.abs(c.high - time) <= LAMPORT_STEP_MAX) {
        agreeing++;
        lowest = Math.min(lowest, c.low);
      } else if (c.count >= LAMPORT_CATCH_UP_CLAIMS_MIN) {
        lowest = Math.min(lowest, c.low);
      }
    }
    ready ||= agreeing >= LAMPORT_CATCH_UP_SENDERS_MIN;
    return ready ? lowest : null;
  }
}
