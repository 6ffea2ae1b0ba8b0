/**
 * Reliable group delivery: every message a live sender multicasts reaches every live member
 * exactly once, in the sender's order, or the receiver is told how many it lost.
 *
 * Negative acknowledgements, as in SRM/PGM, plus cumulative positive acks. This class is the one
 * Protocol the node installs: it routes each message type to the role that owns it and holds the
 * public API. The roles, each in its file:
 *   sender.ts    the multicast sender: numbering, packing, the repair buffer, announces, acks for callers
 *   receiver.ts  the multicast receiver: streams, gaps and NACKs, delivery order, loss reports
 *   unicast.ts   sendTo() and its receiving end
 *   durable.ts   acks that wait for the handlers' durable writes
 * and what they share: messages.ts (the wire), packer.ts and datagram.ts (the attachment and the
 * room in a datagram), send-buffer.ts, limits.ts, shared.ts (context, counters, checks on numbers
 * from the network), handlers.ts, delivery.ts (the types callers see).
 *
 * Failure modes:
 * - Sender crash: messages no receiver got are gone with it; a receiver that saw a gap, or heard
 *   a higher sequence announced, reports the missing count as lost once membership declares the
 *   sender dead or left (or after RELIABLE_GAP_TIMEOUT_MS without repair). Repair comes only from
 *   the original sender, never from other receivers, so what one receiver got and another lost
 *   from a crashed sender stays lost for the second one (and is reported).
 * - A receiver more than RELIABLE_BUFFER_MESSAGES_MAX messages behind loses the difference
 *   (reported as lost with reason 'evicted').
 * - Forged or corrupt numbers (open group: anyone can claim a sender's id). A stream is taken
 *   only from one address, its sender's (a process sends everything from its unicast socket):
 *   membership's word decides where that is. A stream's epoch is never above its sender's
 *   incarnation (as membership knows it, and as the envelope says); a sequence further than
 *   RELIABLE_SEQ_STEP_MAX ahead of where a stream stands is refused (bounds.ts). Skipping a gap
 *   reports the missing run as one range whatever its length. A sender repairs only what it
 *   sent, once and in order, whatever ranges a NACK lists, and takes acks only from the member's
 *   address and never past what it sent. Each refusal is counted under its bound's name
 *   ('address', 'epoch', 'seq', 'lamport'). Limit: while a forger can move membership's idea of
 *   a member's address (membership.ts decides), it can interleave with that member's stream.
 * - Memory: the send buffer is bounded in messages and bytes; each receiver stream holds at most
 *   RELIABLE_RECEIVE_WINDOW_MESSAGES_MAX out-of-order messages and all streams together at most
 *   RELIABLE_HELD_MESSAGES_TOTAL_MAX; streams are at most RELIABLE_STREAMS_MAX (closed ones are
 *   forgotten first); unicast queues are bounded per destination and in total.
 * - Messages are not delivered to their own sender (the caller has them already).
 */
import type { Envelope, PeerId } from '../wire.js';
import type { Protocol, ProtocolContext } from '../protocol.js';
import type { Address } from '../transport/transport.js';
import type {
  AckStatus,
  DeliveryHandler,
  LostReport,
  MembershipView,
  MessageId,
  ReliableOptions,
  SendResult,
} from './delivery.js';
import { DatagramRoom } from './datagram.js';
import { Handlers } from './handlers.js';
import {
  ATTACHMENTS,
  checkMessage,
  DATA,
  MESSAGES,
  messagesOf,
  originOf,
  payloadBytes,
  REPLIES,
  UNICAST,
} from './messages.js';
import { MulticastReceiver } from './receiver.js';
import { MulticastSender } from './sender.js';
import { newStats, Shared } from './shared.js';
import { UnicastReceiver, UnicastSender } from './unicast.js';

export class ReliableDelivery implements Protocol {
  readonly messages = MESSAGES.checks;
  readonly attachments = ATTACHMENTS;
  /** The stream epoch: our incarnation when built, fixed for the life of the process. */
  readonly epoch: number;
  readonly stats = newStats();

  private readonly shared: Shared;
  private readonly handlers: Handlers;
  private readonly sender: MulticastSender;
  private readonly receiver: MulticastReceiver;
  private readonly unicastOut: UnicastSender;
  private readonly unicastIn: UnicastReceiver;
  private flushScheduled = false;

  constructor(
    private readonly ctx: ProtocolContext,
    membership: MembershipView,
    opts: ReliableOptions = {},
  ) {
    this.shared = new Shared(ctx, membership, this.stats);
    this.epoch = this.shared.epoch;
    this.handlers = new Handlers(ctx, this.stats);
    const room = new DatagramRoom(ctx.self.name);
    this.sender = new MulticastSender(this.shared, room, opts.audience ?? (() => true));
    this.receiver = new MulticastReceiver(this.shared, this.handlers);
    this.unicastOut = new UnicastSender(this.shared, room);
    this.unicastIn = new UnicastReceiver(this.shared, this.handlers);
  }

  // ---- public API ------------------------------------------------------------------------------

  /**
   * Registers a delivery handler for a topic; returns a function that removes it. A handler that
   * returns a promise defers the message's ack until it resolves (durable.ts).
   */
  on(topic: string, handler: DeliveryHandler): () => void {
    return this.handlers.on(topic, handler);
  }

  /** Registers a handler for lost-message reports (also emitted as `lost` peer events). */
  onLost(handler: (r: LostReport) => void): () => void {
    return this.handlers.onLost(handler);
  }

  /** Returns the payload's size in bytes, or throws a RangeError when a topic or payload breaks the limits. */
  static check(topic: string, payload: string): number {
    return checkMessage(topic, payload);
  }

  /**
   * A payload's size as the limit counts it: its UTF-8 bytes (a lone surrogate, which UTF-8
   * cannot carry, counts and travels as U+FFFD).
   */
  static payloadBytes(payload: string): number {
    return payloadBytes(payload);
  }

  /**
   * Multicasts a message to the group. `onSettled` runs once every member live (and in the
   * audience) now has acked it or is gone; `complete` says whether all acked. The message is
   * sent soon (ctx.soon), packed with the others published in the same burst.
   */
  publish(topic: string, payload: string, onSettled?: (s: AckStatus) => void): MessageId {
    const bytes = checkMessage(topic, payload);
    const id = this.sender.publish(topic, payload, bytes, onSettled);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.ctx.soon(() => this.flush());
    }
    return id;
  }

  /**
   * Unicasts a message to one peer, acknowledged and retried. `done` runs exactly once (never
   * from inside this call): ok when acked, or the reason it failed.
   */
  sendTo(to: PeerId, topic: string, payload: string, done?: (r: SendResult) => void): MessageId {
    const bytes = checkMessage(topic, payload);
    return this.unicastOut.sendTo(to, topic, payload, bytes, done);
  }

  /** Ack status of a message still in the send buffer (undefined once it left it). */
  ackStatus(id: MessageId): AckStatus | undefined {
    if (id.to || id.origin !== this.shared.ctx.self.id || id.epoch !== this.epoch) return undefined;
    return this.sender.ackStatus(id);
  }

  /** Sends the open datagram of publish(); called soon after a publish() and by tick. */
  flush(): void {
    this.flushScheduled = false;
    this.sender.flush();
  }

  /** Lamport time stamped on the message of the last publish() or sendTo(). */
  get lastLamport(): number {
    return this.shared.lastLamport;
  }

  /** Highest sequence published in our stream. */
  get highestSeq(): number {
    return this.sender.highest;
  }

  /** Memory in use, for tests and `peer doctor`: messages held by each part. */
  memory(): {
    buffered: number;
    bufferBytes: number;
    held: number;
    streams: number;
    unicastPending: number;
    waiters: number;
  } {
    const sent = this.sender.memory();
    return {
      buffered: sent.buffered,
      bufferBytes: sent.bufferBytes,
      held: this.shared.heldTotal,
      streams: this.receiver.streamCount,
      unicastPending: this.unicastOut.pendingTotal,
      waiters: sent.waiters,
    };
  }

  // ---- protocol --------------------------------------------------------------------------------

  onMessage(env: Envelope, from: Address): void {
    const data = DATA.of(env);
    if (data) return this.receiver.onData(data, originOf(env, from), messagesOf(env));
    const unicast = UNICAST.of(env);
    if (unicast) return this.unicastIn.onMessage(unicast, originOf(env, from), messagesOf(env));
    this.onReply(env, from);
  }

  private readonly onReply = REPLIES.dispatch({
    'rm.hi': (body, origin) => this.receiver.onAnnounce(body, origin),
    'rm.gone': (body, origin) => this.receiver.onGone(body, origin),
    'rm.nak': (body, origin) => this.sender.onNack(body, origin.address),
    'rm.ack': (body, origin) => this.sender.onAck(origin.id, body, origin.address),
    'rm.ua': (body, origin) => this.unicastOut.onAck(body, origin),
  });

  tick(now: number): void {
    this.flush();
    for (const f of this.shared.deferredResults.splice(0)) f();
    this.sender.tick(now);
    this.unicastOut.tick(now);
    this.receiver.tick(now);
    this.unicastIn.tick();
  }

  /** Sends what is queued and announces our highest sequence, so receivers can detect a lost tail. */
  leave(): void {
    this.flush();
    this.sender.leave();
  }
}
