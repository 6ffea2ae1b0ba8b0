/**
 * Where a lane's receivers hand what their streams deliver, in sequence order: the small lane's
 * messages go straight to the topic handlers (TextSink); the bulk lane's fragments go to the
 * Reassembler (fragments.ts), which hands whole messages to the same handlers.
 */
import type { LostReason, StreamMessage } from './delivery.js';
import type { StreamRef, WireRefusal } from './fragments.js';
import type { Handlers } from './handlers.js';

export interface StreamSink<M> {
  /**
   * Whether it takes the stream's next message now. Not taken, the message is left as if never
   * received: the stream keeps its place (nothing held), so a NACK or the sender's resend brings it
   * again later, and it is asked once more then. A stream giving up (lost runs, a sender's base)
   * delivers what it holds without asking.
   */
  takes(s: StreamRef, message: M): boolean;
  /** The stream's next message; returns the promises that defer its ack (durable.ts), if any. */
  deliver(s: StreamRef, message: M): Array<PromiseLike<unknown>> | null;
  /** The stream gave up on sequences first..last (`count` of them when some between were delivered). */
  lost(s: StreamRef, first: number, last: number, reason: LostReason, count?: number): void;
  /** The stream ended (its sender gone or restarted). */
  closed(s: StreamRef, reason: LostReason): void;
  /** What the stream's acks must say was refused. */
  refused(s: StreamRef): WireRefusal[] | undefined;
}

/** A message of one datagram, in sequence order. */
export interface Sequenced {
  readonly seq: number;
  readonly lamport: number;
}

export class TextSink implements StreamSink<StreamMessage> {
  constructor(private readonly handlers: Handlers) {}

  /** A message of one datagram is whole in hand: taking it holds nothing more, from anyone. */
  takes(): boolean {
    return true;
  }

  deliver(s: StreamRef, message: StreamMessage): Array<PromiseLike<unknown>> | null {
    message.from = s.from;
    message.fromName = s.fromName;
    message.epoch = s.epoch;
    message.to = s.to;
    return this.handlers.dispatch(message);
  }

  lost(s: StreamRef, first: number, last: number, reason: LostReason, count?: number): void {
    this.handlers.reportLost(s.from, s.fromName, s.epoch, first, last, reason, s.to !== null, count);
  }

  closed(): void {}

  refused(): undefined {
    return undefined;
  }
}
