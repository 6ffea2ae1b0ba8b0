/**
 * What every role of reliable delivery shares: the node's context, membership's view, the
 * counters, the budget of held messages, and the checks every role runs on numbers and
 * addresses from the network before it adopts them (bounds.ts).
 */
import type { PeerId } from '../wire.js';
import type { Origin } from '../kit/message.js';
import type { ProtocolContext } from '../protocol.js';
import type { Address } from '../transport/transport.js';
import { adoptable } from '../bounds.js';
import type { MembershipView } from './delivery.js';
import { RELIABLE_HELD_MESSAGES_TOTAL_MAX, RELIABLE_SEQ_STEP_MAX } from './limits.js';

export function newStats() {
  return {
    published: 0,
    datagramsSent: 0,
    delivered: 0,
    duplicates: 0,
    lost: 0,
    repairsSent: 0,
    repairsRateLimited: 0,
    nacksSent: 0,
    droppedOutOfWindow: 0,
    streamsRefused: 0,
    unicastFailed: 0,
    handlerErrors: 0,
    lastHandlerError: '',
    /** Messages whose handler's durable write failed: never acked (see durable.ts). */
    writesFailed: 0,
    /** Fragments of messages this receiver did not see begin, or already lost or refused. */
    fragmentsDropped: 0,
    /** Fragments that did not continue their message as its first fragment said (dropped whole). */
    fragmentsMalformed: 0,
    /**
     * First fragments of messages in several fragments left untaken because membership did not
     * know their sender yet (fragments.ts): a NACK or a resend brings them again.
     */
    fragmentsLeft: 0,
    /** Messages refused for a receiver's bounds (fragments.ts), and refusals senders heard of. */
    messagesRefused: 0,
    refusalsHeard: 0,
  };
}
export type ReliableStats = ReturnType<typeof newStats>;

export class Shared {
  /** The stream epoch: our incarnation when built, fixed for the life of the process. */
  readonly epoch: number;
  /** Out-of-order messages held over all streams, multicast and unicast. */
  heldTotal = 0;
  /** Lamport time stamped on the message of the last publish() or sendTo(). */
  lastLamport = 0;
  /** Callers' callbacks due from inside a call that must not run them itself; run at the next tick. */
  readonly deferredResults: Array<() => void> = [];

  constructor(
    readonly ctx: ProtocolContext,
    readonly membership: MembershipView,
    readonly stats: ReliableStats,
  ) {
    this.epoch = ctx.self.incarnation;
  }

  /** Ticks the Lamport clock for one message of ours (see sender.ts) and remembers its time. */
  stamp(): number {
    return (this.lastLamport = this.ctx.stamp());
  }

  /** Whether one more out-of-order message may be held. */
  mayHold(): boolean {
    return this.heldTotal < RELIABLE_HELD_MESSAGES_TOTAL_MAX;
  }

  /**
   * Whether a statement in `peer`'s name (an ack: "I hold these") comes from where membership
   * places it; counts it if not. Only the member itself may say what it holds.
   */
  fromMember(peer: PeerId, from: Address): boolean {
    if (this.membership.get(peer)?.address === from) return true;
    this.ctx.refuse('address');
    return false;
  }

  /**
   * Whether a stream's epoch, from the network, is within its bound: a stream's epoch is its
   * sender's incarnation when it started, so never above the one it has now, as membership knows
   * it (bounded there) and as this envelope says. Counts it if not.
   */
  epochPlausible(origin: Origin, epoch: number): boolean {
    const m = this.membership.get(origin.id);
    if (epoch <= origin.incarnation && (!m || epoch <= m.incarnation)) return true;
    this.ctx.refuse('epoch');
    return false;
  }

  /** Whether `seq` may be adopted by a stream that stands at `next` (bounds.ts); counts it if not. */
  seqAdoptable(next: number, seq: number): boolean {
    if (adoptable(next, seq, RELIABLE_SEQ_STEP_MAX)) return true;
    this.ctx.refuse('seq');
    return false;
  }

  /**
   * Whether every message of a datagram is stamped below the datagram's own Lamport time (see
   * "Lamport times" in sender.ts), given its newest (the highest time); counts it if not.
   */
  stampedBefore(origin: Origin, newest: { lamport: number }): boolean {
    if (newest.lamport < origin.lamport) return true;
    this.ctx.refuse('lamport');
    return false;
  }
}

/** Sequences of the held messages below `to`, in increasing order. */
export function heldBelow(held: Map<number, unknown>, to: number): number[] {
  const seqs: number[] = [];
  for (const seq of held.keys()) if (seq < to) seqs.push(seq);
  return seqs.sort((a, b) => a - b);
}
