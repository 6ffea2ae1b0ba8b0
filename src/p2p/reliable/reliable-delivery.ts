/**
 * Reliable group delivery: every message a live sender multicasts reaches every live member
 * exactly once, in the sender's order per topic, or the receiver is told what it lost.
 *
 * Negative acknowledgements, as in SRM/PGM, plus cumulative positive acks. This class is the one
 * Protocol the node installs: it holds the public API and two lanes (lane.ts) of the same
 * streams: the small lane (`rm.*`) carries messages that fit one datagram, packed several to a
 * datagram; the bulk lane (`rb.*`) carries larger messages (up to RELIABLE_MESSAGE_BYTES_MAX) and
 * binary ones as fragments (fragments.ts), sent as its window allows (bulk.ts, flow.ts) and
 * delivered whole. Two lanes so that small messages never wait behind a large one's fragments;
 * a small message of a topic that has a large one on its way follows it in the bulk lane, so one
 * topic's messages keep their order. (A large message may still overtake a small one of its
 * topic published just before it while that one waits for a repair.)
 * The roles of each lane, each in its file:
 *   sender.ts    the multicast sender: numbering, packing, the repair buffer, announces, acks for callers
 *   receiver.ts  the multicast receiver: streams, gaps and NACKs, delivery order, loss reports
 *   unicast.ts   sendTo() and its receiving end
 *   durable.ts   acks that wait for the handlers' durable writes
 * and what they share: messages.ts (the wire), packer.ts and datagram.ts (the attachment and the
 * room in a datagram), send-buffer.ts, limits.ts, shared.ts (context, counters, checks on numbers
 * from the network), sink.ts (where a lane's receivers deliver), handlers.ts, delivery.ts (the
 * types callers see).
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
 *   forgotten first); unicast queues are bounded per destination and in total. Large messages:
 *   what waits for the windows is bounded (RELIABLE_QUEUE_BYTES_MAX), and receivers reassemble
 *   within per-sender and total bounds, only from members (fragments.ts).
 * - Messages are not delivered to their own sender (the caller has them already).
 */
import type { Envelope, PeerId } from '../wire.js';
import type { Protocol, ProtocolContext } from '../protocol.js';
import type { Address } from '../transport/transport.js';
import {
  isLive,
  type AckStatus,
  type DeliveryHandler,
  type LostReport,
  type MembershipView,
  type MessageId,
  type ReliableOptions,
  type SendResult,
  type StreamMessage,
} from './delivery.js';
import { BulkSender } from './bulk.js';
import { DatagramRoom } from './datagram.js';
import { Window } from './flow.js';
import {
  decodeFramed,
  DEFAULT_REASSEMBLY_LIMITS,
  FRAGMENT_FRAME,
  framedRoom,
  Reassembler,
  type Fragment,
} from './fragments.js';
import { Handlers } from './handlers.js';
import { Lane } from './lane.js';
import {
  RELIABLE_BUFFER_BYTES_MAX,
  RELIABLE_BULK_ACK_EVERY_MESSAGES,
  RELIABLE_BUFFER_MESSAGES_MAX,
  RELIABLE_BULK_BUFFER_BYTES_MAX,
  RELIABLE_BULK_BUFFER_MESSAGES_MAX,
  RELIABLE_BULK_NACK_INTERVAL_MS,
  RELIABLE_BULK_NACKS_PER_ROUND,
  RELIABLE_MESSAGE_BYTES_MAX,
  RELIABLE_PAYLOAD_BYTES_MAX,
  RELIABLE_REPAIR_BURST_MESSAGES,
  RELIABLE_REPAIR_MESSAGES_PER_S,
  RELIABLE_BULK_REPAIR_BURST_MESSAGES,
  RELIABLE_BULK_REPAIR_MESSAGES_PER_S,
} from './limits.js';
import {
  ATTACHMENTS,
  BULK,
  BULK_ATTACHMENTS,
  BULK_MESSAGES,
  checkTopic,
  fragmentsOf,
  MESSAGES,
  messagesOf,
  payloadBytes,
  SMALL,
} from './messages.js';
import { MulticastReceiver } from './receiver.js';
import { MulticastSender } from './sender.js';
import { newStats, Shared } from './shared.js';
import { TextSink } from './sink.js';
import { UnicastReceiver, UnicastSender } from './unicast.js';

export class ReliableDelivery implements Protocol {
  readonly messages = { ...MESSAGES.checks, ...BULK_MESSAGES.checks };
  readonly attachments = { ...ATTACHMENTS, ...BULK_ATTACHMENTS };
  readonly frames = {
    [FRAGMENT_FRAME]: (sender: PeerId, body: Buffer, from: Address) => {
      const framed = decodeFramed(body);
      if (framed) this.bulk.receiver.onFramed(sender, from, framed.epoch, framed.fragment);
      else this.stats.fragmentsMalformed++;
      this.ctx.wakeAt(this.ctx.now());
    },
  };
  /** The stream epoch: our incarnation when built, fixed for the life of the process. */
  readonly epoch: number;
  readonly stats = newStats();

  private readonly shared: Shared;
  private readonly handlers: Handlers;
  private readonly small: Lane<StreamMessage>;
  private readonly bulk: Lane<Fragment>;
  private readonly bulkOut: BulkSender;
  private readonly reassembler: Reassembler;
  private flushScheduled = false;

  constructor(
    private readonly ctx: ProtocolContext,
    membership: MembershipView,
    opts: ReliableOptions = {},
  ) {
    const shared = (this.shared = new Shared(ctx, membership, this.stats));
    this.epoch = shared.epoch;
    this.handlers = new Handlers(ctx, this.stats);
    const room = new DatagramRoom(ctx.self.name);
    const audience = opts.audience ?? (() => true);
    const text = new TextSink(this.handlers);
    this.small = new Lane(
      SMALL,
      new MulticastSender(shared, SMALL, room, audience, {
        messagesMax: RELIABLE_BUFFER_MESSAGES_MAX,
        bytesMax: RELIABLE_BUFFER_BYTES_MAX,
        payloadBytesMax: RELIABLE_PAYLOAD_BYTES_MAX,
        repairsPerS: RELIABLE_REPAIR_MESSAGES_PER_S,
        repairBurst: RELIABLE_REPAIR_BURST_MESSAGES,
      }),
      new MulticastReceiver(shared, SMALL, text),
      new UnicastSender(shared, SMALL, room),
      new UnicastReceiver(shared, SMALL, text),
      messagesOf,
    );
    this.reassembler = new Reassembler(
      this.handlers,
      this.stats,
      { ...DEFAULT_REASSEMBLY_LIMITS, messageBytesMax: opts.messageBytesMax ?? RELIABLE_MESSAGE_BYTES_MAX },
      () => ctx.now(),
      (id) => {
        const m = membership.get(id);
        return m !== undefined && isLive(m);
      },
    );
    const bulkSender = new MulticastSender(
      shared,
      BULK,
      room,
      audience,
      {
        messagesMax: RELIABLE_BULK_BUFFER_MESSAGES_MAX,
        bytesMax: RELIABLE_BULK_BUFFER_BYTES_MAX,
        payloadBytesMax: Math.max(room.payloadRoom('x'), framedRoom(shared.epoch)),
        repairsPerS: RELIABLE_BULK_REPAIR_MESSAGES_PER_S,
        repairBurst: RELIABLE_BULK_REPAIR_BURST_MESSAGES,
      },
      new Window(),
    );
    this.bulk = new Lane(
      BULK,
      bulkSender,
      new MulticastReceiver(shared, BULK, this.reassembler, {
        ackEvery: RELIABLE_BULK_ACK_EVERY_MESSAGES,
        nackEagerMs: RELIABLE_BULK_NACK_INTERVAL_MS,
        nacksPerRound: RELIABLE_BULK_NACKS_PER_ROUND,
      }),
      new UnicastSender(shared, BULK, room, this.small.unicastOut),
      new UnicastReceiver(shared, BULK, this.reassembler),
      fragmentsOf,
    );
    this.bulkOut = new BulkSender(shared, bulkSender, room, this.small.sender);
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
  static check(topic: string, payload: string | Uint8Array): number {
    checkTopic(topic);
    const bytes = typeof payload === 'string' ? payloadBytes(payload) : payload.length;
    if (bytes > RELIABLE_MESSAGE_BYTES_MAX)
      throw new RangeError(`message is ${bytes} bytes, over the ${RELIABLE_MESSAGE_BYTES_MAX}-byte limit`);
    return bytes;
  }

  /**
   * A payload's size as the limit counts it: its UTF-8 bytes (a lone surrogate, which UTF-8
   * cannot carry, counts and travels as U+FFFD).
   */
  static payloadBytes(payload: string): number {
    return payloadBytes(payload);
  }

  /**
   * Multicasts a message of up to RELIABLE_MESSAGE_BYTES_MAX bytes to the group. `onSettled` runs
   * once every member live (and in the audience) now has acked it, refused it, or is gone;
   * `complete` says whether all acked and none refused. A message that fits one datagram is
   * sent soon (ctx.soon), packed with the others published in the same burst; a larger one (or
   * binary) goes in fragments as the bulk lane's window allows.
   *
   * Order: the messages of one topic are delivered in publish order; another topic's small
   * messages may overtake a large one (they do not wait for its fragments).
   */
  publish(topic: string, payload: string | Uint8Array, onSettled?: (s: AckStatus) => void): MessageId {
    const bytes = ReliableDelivery.check(topic, payload);
    const id =
      typeof payload === 'string' && bytes <= RELIABLE_PAYLOAD_BYTES_MAX && !this.bulkOut.outstanding(topic)
        ? this.small.sender.publish(topic, payload, bytes, onSettled)
        : this.bulkOut.publish(topic, bufferOf(payload), onSettled);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.ctx.soon(() => this.flush());
    }
    this.ctx.wakeAt(this.ctx.now()); // acks to wait for: the lane ticks at its cadence again
    return id;
  }

  /**
   * Unicasts a message of up to RELIABLE_MESSAGE_BYTES_MAX bytes to one peer, acknowledged and
   * retried. `done` runs exactly once (never from inside this call): ok when acked, or the reason
   * it failed. Order as for publish(), per destination.
   */
  sendTo(to: PeerId, topic: string, payload: string | Uint8Array, done?: (r: SendResult) => void): MessageId {
    const bytes = ReliableDelivery.check(topic, payload);
    const bulk = this.bulk.unicastOut;
    this.ctx.wakeAt(this.ctx.now());
    return typeof payload === 'string' && bytes <= RELIABLE_PAYLOAD_BYTES_MAX && !bulk.outstanding(to, topic)
      ? this.small.unicastOut.sendTo(to, topic, payload, done)
      : bulk.sendFragments(to, topic, bufferOf(payload), done);
  }

  /**
   * Bytes published or sent and not on the wire yet, waiting for the bulk lane's windows: a long
   * transfer publishes its next part while this is small.
   */
  queuedBytes(): number {
    return this.bulkOut.queuedBytes + this.bulk.unicastOut.queuedBytes;
  }

  /** Ack status of a message still in a send buffer (undefined once it left it). */
  ackStatus(id: MessageId): AckStatus | undefined {
    if (id.to || id.origin !== this.shared.ctx.self.id || id.epoch !== this.epoch) return undefined;
    return (id.bulk ? this.bulk : this.small).sender.ackStatus(id);
  }

  /** Sends the open datagrams of publish(); called soon after a publish() and by tick. */
  flush(): void {
    this.flushScheduled = false;
    this.small.sender.flush();
    this.bulk.sender.flush();
  }

  /** Lamport time stamped on the message of the last publish() or sendTo(). */
  get lastLamport(): number {
    return this.shared.lastLamport;
  }

  /** Highest sequence published in our stream of small messages. */
  get highestSeq(): number {
    return this.small.sender.highest;
  }

  /** Memory in use, for tests and `peer doctor`: messages and bytes held by each part. */
  memory(): {
    buffered: number;
    bufferBytes: number;
    held: number;
    streams: number;
    unicastPending: number;
    waiters: number;
    bulkBufferBytes: number;
    queuedBytes: number;
    reassemblyBytes: number;
  } {
    const sent = this.small.sender.memory();
    const bulk = this.bulk.sender.memory();
    return {
      buffered: sent.buffered + bulk.buffered,
      bufferBytes: sent.bufferBytes,
      held: this.shared.heldTotal,
      streams: this.small.receiver.streamCount + this.bulk.receiver.streamCount,
      unicastPending: this.small.unicastOut.pendingTotal + this.bulk.unicastOut.pendingTotal,
      waiters: sent.waiters + bulk.waiters,
      bulkBufferBytes: bulk.bufferBytes,
      queuedBytes: this.queuedBytes(),
      reassemblyBytes: this.reassembler.heldBytes,
    };
  }

  // ---- protocol --------------------------------------------------------------------------------

  /** Data, acks and NACKs make work for the ticks (an ack to send, a repair, a gap to time). */
  onMessage(env: Envelope, from: Address): void {
    if (!this.small.onMessage(env, from)) this.bulk.onMessage(env, from);
    this.ctx.wakeAt(this.ctx.now());
  }

  /**
   * At the fixed cadence while anything is under way in either lane; idle, at the next announce
   * (sender.ts backs it off once every receiver has acked our newest message).
   */
  tick(now: number): number | void {
    this.flush();
    for (const f of this.shared.deferredResults.splice(0)) f();
    this.small.tick(now);
    this.bulkOut.pump();
    this.bulk.tick(now);
    if (this.shared.deferredResults.length > 0 || !this.bulkOut.idle) return;
    const small = this.small.quietUntil();
    const bulk = this.bulk.quietUntil();
    if (small === null || bulk === null) return;
    return Math.max(now, Math.min(small, bulk));
  }

  /** Sends what is queued and announces our highest sequences, so receivers can detect a lost tail. */
  leave(): void {
    this.flush();
    this.small.sender.leave();
    this.bulk.sender.leave();
  }
}

/** The bytes of a payload: a string's UTF-8, or a view of the caller's bytes (not copied). */
function bufferOf(payload: string | Uint8Array): Buffer {
  return typeof payload === 'string'
    ? Buffer.from(payload, 'utf8')
    : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}
