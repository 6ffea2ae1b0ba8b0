/**
 * Reliable group delivery: every message a live sender multicasts reaches every live member
 * exactly once, in the sender's order, or the receiver is told how many it lost.
 *
 * Algorithm (negative acknowledgements, as in SRM/PGM, plus cumulative positive acks):
 * - Streams. Each sender numbers its messages 1, 2, 3 ... in one stream keyed by (sender id,
 *   epoch). The epoch is the sender's incarnation when this module was built and never changes
 *   for the life of the process (the incarnation also rises on refutation, the stream must not).
 *   A restart gives a higher incarnation, hence a new stream.
 * - Packing. Messages published in one burst (before the injected `defer` callback runs) are
 *   packed into as few datagrams as fit DATAGRAM_PAYLOAD_BYTES_MAX: `rm.d {e, jp, k: [topics]}`
 *   with the messages in the binary attachment (wire.ts), each encoded as
 *     varint seq delta (>= 1; the first from 0) | varint Lamport delta (the first from 0)
 *     | u8 index into k | varint payload bytes | payload, UTF-8
 *   A message is written into the open datagram when it is published, so a burst costs one copy
 *   of each payload and no JSON; Lamport times never fall along a stream, so the deltas are >= 0.
 * - Lamport times. Each message is stamped with its own time when it is published (ctx.stamp(),
 *   one clock tick per message), so a burst packed into one datagram keeps its order in Lamport
 *   time too. Every message's time is below its datagram's envelope time (the node ticks again to
 *   send the datagram, and repairs and retries are sent later still), and a datagram carrying a
 *   message at or above it is refused and counted as 'lamport': so merging the envelope's time,
 *   which the node bounds, also merges every message's, and a forged message time cannot reach
 *   further than a forged envelope time could.
 * - Receivers deliver in sequence order per stream and hold out-of-order messages (bounded
 *   window). A gap older than RELIABLE_NACK_DELAY_MS is asked for by a unicast `rm.nak` listing
 *   the missing ranges, again every RELIABLE_NACK_INTERVAL_MS while it lasts.
 * - The sender repairs by unicast from a bounded buffer of its last messages, at a bounded rate
 *   (token bucket). What left the buffer is answered with `rm.gone {lo}`: the receiver then
 *   reports the missing messages below lo as a `lost` event with their count and moves on.
 * - Receivers send cumulative acks (`rm.ack {e, f, a}`: "I hold everything from f to a") at most
 *   once per tick, and at once whenever RELIABLE_ACK_EVERY_MESSAGES more can be acked, so a fast
 *   sender's window moves faster than the tick (window / tick would cap its rate). While a
 *   tracked receiver lags, the sender multicasts `rm.hi {e, hi, jp}` every RELIABLE_ANNOUNCE_MS,
 *   and every RELIABLE_IDLE_ANNOUNCE_MS anyway, so a lost tail message is detected as a gap, and
 *   a lost ack is sent again. A multicast data datagram counts as an announcement (it shows the
 *   newest sequence and the join point too), so a sender that keeps sending announces nothing:
 *   its next datagram reveals a gap, and announcing on top of it only cost every member a receive.
 * - Joining. A receiver that meets a stream for the first time starts at the join point `jp`
 *   carried by every data and announce message: the lowest position a receiver the sender tracks
 *   still needs (or the start of the buffer when it tracks none). So a member that was there
 *   before a message was published gets it even if the first datagrams it heard came later.
 * - Acks for callers: publish() can take a callback that runs once every member that was live
 *   (and in the audience) when the message was published has acked it or is gone. sendTo()
 *   unicasts to one peer in its own per-destination stream (`rm.u`, FIFO, acked by `rm.ua`),
 *   retried every RELIABLE_UNICAST_RETRY_MS until acked, the peer is gone, or
 *   RELIABLE_UNICAST_TIMEOUT_MS passes; its callback says which.
 * - Acks after durability. A topic handler that must make a message durable before the sender
 *   may count it as received returns a promise (e.g. of its group-committed write). The message
 *   is then acked (multicast `rm.ack`, unicast `rm.ua`) only once every promise returned for it
 *   has resolved; being cumulative, the ack also waits for every earlier message of the stream.
 *   Resolution only marks the ack due; the next tick sends it through the context. A promise that
 *   rejects withholds the ack of that message and of everything after it in its stream for good
 *   (counted in `stats.writesFailed`): the sender sees the receiver as pending, then gone, never
 *   as having acked what it may not hold. A handler that returns nothing is acked at delivery.
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
import {
  ByteReader,
  DATAGRAM_PAYLOAD_BYTES_MAX,
  is,
  PROTOCOL_VERSION,
  varintBytes,
  writeVarint,
  type AttachmentDecoder,
  type Check,
  type Envelope,
  type PeerId,
} from '../wire.js';
import type { MemberView, Protocol, ProtocolContext } from '../protocol.js';
import { adoptable, COUNTER_MAX } from '../bounds.js';
import { SendBuffer } from './send-buffer.js';
import type { Address } from '../transport/transport.js';

/** Messages the sender keeps for repair (a power of two). A receiver further behind loses the difference. */
export const RELIABLE_BUFFER_MESSAGES_MAX = 8192;
/** Payload bytes the sender keeps for repair (with RELIABLE_BUFFER_MESSAGES_MAX, whichever is hit first). */
export const RELIABLE_BUFFER_BYTES_MAX = 4 * 1024 * 1024;
/** Largest payload, in UTF-8 bytes; one message always fits one datagram. */
export const RELIABLE_PAYLOAD_BYTES_MAX = 700;
/** Topic names: short, [a-z0-9.-]. */
export const RELIABLE_TOPIC_CHARS_MAX = 24;
/** Messages in one datagram (the byte limit usually binds first). */
export const RELIABLE_BATCH_MESSAGES_MAX = 128;
/** Out-of-order messages one receiver holds per stream while waiting for a gap to be repaired. */
export const RELIABLE_RECEIVE_WINDOW_MESSAGES_MAX = 8192;
/** Out-of-order messages held over all streams. */
export const RELIABLE_HELD_MESSAGES_TOTAL_MAX = 65_536;
/** Streams (senders) tracked at once by a receiver. */
export const RELIABLE_STREAMS_MAX = 1024;
/** A receiver acks at once, without waiting for its tick, when this many more messages can be acked. */
export const RELIABLE_ACK_EVERY_MESSAGES = 512;
/** A gap must be this old before it is NACKed: datagrams reordered by a few ms fill it first. */
export const RELIABLE_NACK_DELAY_MS = 5;
/** Between two NACKs for the same gap (the repair may itself be lost). */
export const RELIABLE_NACK_INTERVAL_MS = 40;
/** Ranges and messages asked for in one NACK. */
export const RELIABLE_NACK_RANGES_MAX = 32;
export const RELIABLE_NACK_MESSAGES_MAX = 1024;
/** Repair rate per sender: a token bucket of messages. */
export const RELIABLE_REPAIR_MESSAGES_PER_S = 100_000;
export const RELIABLE_REPAIR_BURST_MESSAGES = 4096;
/** While a tracked receiver has not acked the newest message, the sender announces it this often. */
export const RELIABLE_ANNOUNCE_MS = 50;
/** Announce period otherwise, for receivers the sender does not know yet. */
export const RELIABLE_IDLE_ANNOUNCE_MS = 1000;
/** A gap not repaired for this long, while the sender still looks alive, is reported lost. */
export const RELIABLE_GAP_TIMEOUT_MS = 10_000;
/** Closed streams (sender dead, left or restarted) are remembered this long to ignore late datagrams. */
export const RELIABLE_CLOSED_RETENTION_MS = 60_000;
/** Unicast: retry period, give-up time, and queue bounds. */
export const RELIABLE_UNICAST_RETRY_MS = 100;
export const RELIABLE_UNICAST_TIMEOUT_MS = 5000;
export const RELIABLE_UNICAST_PENDING_MAX = 1024;
export const RELIABLE_UNICAST_PENDING_TOTAL_MAX = 8192;
/** publish() callbacks waiting for acks at once. */
export const RELIABLE_WAITERS_MAX = 4096;
/**
 * How far ahead of a stream's next position a sequence from the network may be (a message's
 * sequence, an announced `hi`, a unicast base): further is refused and counted as 'seq'
 * (bounds.ts), never adopted, so one forged number cannot move a stream past everything its sender
 * will ever send. Why 2^23 (8.4 million messages):
 * - at least RELIABLE_RECEIVE_WINDOW_MESSAGES_MAX + RELIABLE_BUFFER_MESSAGES_MAX (16,384), so no
 *   message we could still hold or have repaired is ever refused;
 * - a live sender is ahead of us by what it published while none of its datagrams reached us.
 *   Publishing is not flow-controlled, so that is its rate times the silence: the fastest sender
 *   measured (bench/chat.ts) publishes about 200,000 messages/s, and a sender silent for longer
 *   than membership's death timeout, at most (1 + HEALTH_SCORE_MAX) x deadAfterMs (22.5 s with
 *   the local profile), is declared dead, its stream closed, and rejoined at its join point when
 *   it comes back (a rejoin is gated by membership, not by this step). 200,000 x 22.5 s is 4.5
 *   million: the step leaves about twice that.
 * A forged value within the step is still adopted: the step makes the damage bounded, not nil.
 */
export const RELIABLE_SEQ_STEP_MAX = 2 ** 23;

export interface MessageId {
  origin: PeerId;
  epoch: number;
  seq: number;
  /** Set for unicast messages: their sequence is per destination. */
  to?: PeerId;
}

/** A message id as one string: `origin/epoch/seq` or `origin/epoch/to/seq`. */
export function messageKey(id: MessageId): string {
  return id.to ? `${id.origin}/${id.epoch}/${id.to}/${id.seq}` : `${id.origin}/${id.epoch}/${id.seq}`;
}

export interface Delivery {
  id: MessageId;
  /** messageKey(id). */
  key: string;
  from: PeerId;
  fromName: string;
  /** This peer for a unicast message, null for a multicast one. */
  to: PeerId | null;
  topic: string;
  payload: string;
  /** Lamport time the sender stamped at publish. */
  lamport: number;
}

/**
 * A topic handler. Returning a promise (any thenable) defers the message's ack until it resolves
 * (the handler's durable write committed); any other result is ignored and the message is acked at
 * delivery. See "Acks after durability" above.
 */
export type DeliveryHandler = (d: Delivery) => unknown;

export type LostReason = 'evicted' | 'sender-gone' | 'sender-restarted' | 'timeout' | 'abandoned';

export interface LostReport {
  from: PeerId;
  fromName: string;
  epoch: number;
  /** First and last sequence of the run of lost messages (inclusive). */
  firstSeq: number;
  lastSeq: number;
  count: number;
  reason: LostReason;
  unicast: boolean;
}

export interface AckStatus {
  id: MessageId;
  /** Every member required to ack has acked. */
  complete: boolean;
  acked: PeerId[];
  /** Required members that died, left, restarted, or started listening after the message. */
  gone: PeerId[];
  /** Still live, not acked yet (only when the status is read before it settles). */
  pending: PeerId[];
}

export type SendResult =
  { ok: true; id: MessageId } | { ok: false; id: MessageId; reason: 'gone' | 'timeout' | 'busy' };

declare module '../protocol.js' {
  interface PeerEventMap {
    lost: LostReport;
  }
}

export interface ReliableOptions {
  /** Which live members are expected to run this module and ack (default: every live member). */
  audience?: (m: MemberView) => boolean;
  /**
   * Runs `fn` soon, after the current burst of publish() calls (setImmediate in a process, a
   * zero-delay event in the simulation). Without it every publish is sent at once, unpacked.
   */
  defer?: (fn: () => void) => void;
}

/** What the module needs from membership (kept narrow so tests can fake it). */
export interface MembershipView {
  live(): MemberView[];
  get(id: PeerId): MemberView | undefined;
}

/**
 * One message as decoded from a datagram (held while out of order) and then handed to the
 * handlers: the same object, so a delivery allocates nothing beyond what decoding did. The
 * stream's fields are filled in at delivery. Unicast senders keep their pending messages as
 * Items too (the multicast send buffer keeps bytes).
 */
class Item implements Delivery {
  from: PeerId = '';
  fromName = '';
  to: PeerId | null = null;
  epoch = 0;

  constructor(
    readonly seq: number,
    readonly topic: string,
    readonly payload: string,
    readonly lamport: number,
    /** The payload's UTF-8 bytes. */
    readonly bytes: number,
  ) {}

  get id(): MessageId {
    return this.to === null
      ? { origin: this.from, epoch: this.epoch, seq: this.seq }
      : { origin: this.from, epoch: this.epoch, seq: this.seq, to: this.to };
  }

  /** Built only if a handler reads it (most never do). */
  get key(): string {
    return messageKey(this.id);
  }
}

interface Receiver {
  id: PeerId;
  /** Highest sequence known acked (or assumed: what was published before we tracked it). */
  acked: number;
  trackedAt: number;
  heard: boolean;
}

interface Waiter {
  id: MessageId;
  required: Set<PeerId>;
  acked: Set<PeerId>;
  gone: Set<PeerId>;
  done: (s: AckStatus) => void;
}

interface InStream {
  from: PeerId;
  name: string;
  epoch: number;
  address: Address;
  /** Where we joined the stream. */
  start: number;
  /** Next sequence to deliver. */
  next: number;
  /** Highest sequence known to exist. */
  hi: number;
  held: Map<number, Item>;
  gapSince: number | null;
  lastNack: number;
  ackedSent: number;
  ackDue: boolean;
  closedAt: number | null;
  /** Delivered messages whose handlers' writes have not committed yet, in increasing order. */
  unacked: Set<number>;
}

interface OutUnicast {
  to: PeerId;
  nextSeq: number;
  pending: Map<number, { item: Item; firstSent: number; lastSent: number; done?: (r: SendResult) => void }>;
}

interface InUnicast {
  from: PeerId;
  epoch: number;
  next: number;
  held: Map<number, Item>;
  /** As InStream.unacked. */
  unacked: Set<number>;
  /** The sender's address: where acks go, and the one address its messages are taken from. */
  ackTo: Address;
  ackDue: boolean;
}

/** `rm.gone` lo meaning "that stream ended with a restart". */
const RESTARTED_LO = Number.MAX_SAFE_INTEGER;
/** A tracked receiver that never acked for this long is not waited for by announces and join points. */
export const RELIABLE_SILENT_RECEIVER_MS = 5000;

const TOPIC_RE = /^[a-z0-9][a-z0-9.-]*$/;
const uint = is.uint();
const TOPIC: Check = (v) => typeof v === 'string' && v.length <= RELIABLE_TOPIC_CHARS_MAX && TOPIC_RE.test(v);
const TOPICS: Check = (v) =>
  Array.isArray(v) && v.length >= 1 && v.length <= RELIABLE_BATCH_MESSAGES_MAX && v.every(TOPIC);
const RANGE: Check = (v) => Array.isArray(v) && v.length === 2 && uint(v[0]) && uint(v[1]) && v[0] <= v[1];

const BODIES = {
  'rm.d': is.object({ e: uint, jp: uint, k: TOPICS }),
  'rm.hi': is.object({ e: uint, hi: uint, jp: uint }),
  'rm.nak': is.object({ e: uint, r: is.array(RANGE, RELIABLE_NACK_RANGES_MAX) }),
  'rm.gone': is.object({ e: uint, lo: uint }),
  'rm.ack': is.object({ e: uint, f: uint, a: uint }),
  'rm.u': is.object({ e: uint, to: is.peerId(), b: uint, k: TOPICS }),
  'rm.ua': is.object({ e: uint, a: uint }),
};

/** Parses the messages of an `rm.d` or `rm.u` attachment (layout in the header); undefined if malformed. */
function decodeItems(maxItems: number): AttachmentDecoder {
  return (bytes, body) => {
    const topics = (body as { k: string[] }).k;
    const r = new ByteReader(bytes);
    const items: Item[] = [];
    let seq = 0;
    let lamport = 0;
    while (!r.done) {
      if (items.length >= maxItems) return undefined;
      const dSeq = r.varint();
      const dLamport = r.varint();
      const topic = topics[r.u8()];
      const len = r.varint();
      if (r.bad || dSeq === 0 || topic === undefined || len > RELIABLE_PAYLOAD_BYTES_MAX) return undefined;
      seq += dSeq;
      lamport += dLamport;
      if (seq > Number.MAX_SAFE_INTEGER || lamport > Number.MAX_SAFE_INTEGER) return undefined;
      const payload = r.utf8(len);
      if (r.bad) return undefined;
      items.push(new Item(seq, topic, payload, lamport, len));
    }
    return items.length > 0 ? items : undefined;
  };
}

const ATTACHMENTS: Record<string, AttachmentDecoder> = {
  'rm.d': decodeItems(RELIABLE_BATCH_MESSAGES_MAX),
  'rm.u': decodeItems(1),
};

type DataBody = { e: number; jp: number; k: string[] };
type UnicastBody = { e: number; to: PeerId; b: number; k: string[] };

/**
 * Bytes of the JSON part of an `rm.d` or `rm.u` datagram with an empty topic list, at the largest
 * values its numbers can take, plus the byte that ends the JSON. Each topic adds its length + 3.
 */
function datagramOverheadBytes(name: string): number {
  const big = Number.MAX_SAFE_INTEGER;
  const env = (t: string, b: unknown) => ({
    v: PROTOCOL_VERSION,
    t,
    i: '0'.repeat(16),
    n: name,
    c: big,
    s: big,
    l: big,
    b,
  });
  return (
    Math.max(
      Buffer.byteLength(JSON.stringify(env('rm.d', { e: big, jp: big, k: [] }))),
      Buffer.byteLength(JSON.stringify(env('rm.u', { e: big, to: '0'.repeat(16), b: big, k: [] }))),
    ) + 1
  );
}

/**
 * Builds datagram attachments message by message: add() writes a message into the open
 * datagram, sending it first when the message does not fit; flush() sends the open datagram.
 * `send` gets the topic list and the attachment, which it must encode before returning (the
 * bytes are reused).
 */
class Packer {
  count = 0;
  private readonly buf = Buffer.allocUnsafe(DATAGRAM_PAYLOAD_BYTES_MAX);
  private off = 0;
  private topics: string[] = [];
  private topicBytes = 0;
  private prevSeq = 0;
  private prevLamport = 0;

  constructor(
    private readonly overheadBytes: number,
    private readonly send: (topics: string[], attachment: Buffer) => void,
  ) {}

  add(it: Item): void {
    const o = this.header(it.seq, it.lamport, it.topic, it.bytes);
    this.off = o + this.buf.write(it.payload, o, 'utf8');
  }

  /** As add(), the payload being `bytes` bytes of `src` from `start` (the send buffer's ring). */
  addBytes(seq: number, lamport: number, topic: string, bytes: number, src: Buffer, start: number): void {
    const o = this.header(seq, lamport, topic, bytes);
    this.off = o + src.copy(this.buf, o, start, start + bytes);
  }

  flush(): void {
    if (this.count === 0) return;
    const topics = this.topics;
    const attachment = this.buf.subarray(0, this.off);
    this.off = this.count = this.topicBytes = this.prevSeq = this.prevLamport = 0;
    this.topics = [];
    this.send(topics, attachment);
  }

  /** Opens room for one message (sending the datagram first if full) and writes all of it but the payload. */
  private header(seq: number, lamport: number, topic: string, bytes: number): number {
    if (
      this.count > 0 &&
      (this.count >= RELIABLE_BATCH_MESSAGES_MAX || !this.fits(seq, lamport, topic, bytes))
    )
      this.flush();
    let t = this.topics.indexOf(topic);
    if (t < 0) {
      t = this.topics.push(topic) - 1;
      this.topicBytes += topic.length + 3;
    }
    let o = writeVarint(this.buf, this.off, seq - this.prevSeq);
    o = writeVarint(this.buf, o, lamport - this.prevLamport);
    this.buf[o++] = t;
    o = writeVarint(this.buf, o, bytes);
    this.prevSeq = seq;
    this.prevLamport = lamport;
    this.count++;
    return o;
  }

  private fits(seq: number, lamport: number, topic: string, bytes: number): boolean {
    const topicBytes = this.topics.includes(topic) ? 0 : topic.length + 3;
    const itemBytes =
      varintBytes(seq - this.prevSeq) +
      varintBytes(lamport - this.prevLamport) +
      1 +
      varintBytes(bytes) +
      bytes;
    return (
      this.overheadBytes + this.topicBytes + topicBytes + this.off + itemBytes <= DATAGRAM_PAYLOAD_BYTES_MAX
    );
  }
}

export class ReliableDelivery implements Protocol {
  readonly messages: Record<string, Check> = BODIES;
  readonly attachments = ATTACHMENTS;
  /** The stream epoch: our incarnation when built, fixed for the life of the process. */
  readonly epoch: number;
  readonly stats = {
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
    /** Messages whose handler's durable write failed: never acked (see the header). */
    writesFailed: 0,
  };

  private readonly handlers = new Map<string, DeliveryHandler[]>();
  private readonly lostHandlers: Array<(r: LostReport) => void> = [];
  private readonly audience: (m: MemberView) => boolean;
  private readonly overheadBytes: number;
  /** The open multicast datagram of publish(), and one for repairs to `repairTo`. */
  private readonly outbox: Packer;
  private readonly repairs: Packer;
  private repairTo: Address = '';
  private repairJp = 0;

  // Sender side.
  /** Our messages kept for repair: `sent.lo` is the oldest still repairable, `sent.hi` our newest. */
  private readonly sent = new SendBuffer(
    RELIABLE_BUFFER_MESSAGES_MAX,
    RELIABLE_BUFFER_BYTES_MAX,
    RELIABLE_PAYLOAD_BYTES_MAX,
  );
  private get hi(): number {
    return this.sent.hi;
  }
  private flushScheduled = false;
  private readonly receivers = new Map<PeerId, Receiver>();
  private readonly waiters = new Map<number, Waiter>();
  private lastAnnounce = -Infinity;
  private repairTokens = RELIABLE_REPAIR_BURST_MESSAGES;
  private repairRefilledAt = 0;
  private readonly outUnicast = new Map<PeerId, OutUnicast>();
  private unicastPending = 0;
  private readonly deferredResults: Array<() => void> = [];

  // Receiver side.
  private readonly streams = new Map<PeerId, InStream>();
  private heldTotal = 0;
  private readonly inUnicast = new Map<PeerId, InUnicast>();

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly membership: MembershipView,
    private readonly opts: ReliableOptions = {},
  ) {
    this.epoch = ctx.self.incarnation;
    this.audience = opts.audience ?? (() => true);
    this.overheadBytes = datagramOverheadBytes(ctx.self.name);
    this.outbox = new Packer(this.overheadBytes, (k, a) => this.sendData(null, k, a, this.joinPoint()));
    this.repairs = new Packer(this.overheadBytes, (k, a) =>
      this.sendData(this.repairTo, k, a, this.repairJp),
    );
    this.repairRefilledAt = ctx.now();
  }

  // ---- public API ------------------------------------------------------------------------------

  /**
   * Registers a delivery handler for a topic; returns a function that removes it. A handler that
   * returns a promise defers the message's ack until it resolves.
   */
  on(topic: string, handler: DeliveryHandler): () => void {
    const list = this.handlers.get(topic) ?? [];
    list.push(handler);
    this.handlers.set(topic, list);
    return () =>
      this.handlers.set(
        topic,
        (this.handlers.get(topic) ?? []).filter((h) => h !== handler),
      );
  }

  /** Registers a handler for lost-message reports (also emitted as `lost` peer events). */
  onLost(handler: (r: LostReport) => void): () => void {
    this.lostHandlers.push(handler);
    return () => {
      const i = this.lostHandlers.indexOf(handler);
      if (i >= 0) this.lostHandlers.splice(i, 1);
    };
  }

  /** Throws a RangeError when a topic or payload breaks the limits (a caller's bug, or user input to check first). */
  /** Returns the payload's size in bytes, or throws a RangeError when a topic or payload breaks the limits. */
  static check(topic: string, payload: string): number {
    if (topic.length === 0 || topic.length > RELIABLE_TOPIC_CHARS_MAX || !TOPIC_RE.test(topic))
      throw new RangeError(`topic '${topic}' must be 1-${RELIABLE_TOPIC_CHARS_MAX} chars of a-z 0-9 . -`);
    const bytes = ReliableDelivery.payloadBytes(payload);
    if (bytes > RELIABLE_PAYLOAD_BYTES_MAX)
      throw new RangeError(
        `payload is ${bytes} bytes encoded, over the ${RELIABLE_PAYLOAD_BYTES_MAX}-byte limit`,
      );
    return bytes;
  }

  /**
   * A payload's size as the limit counts it: its UTF-8 bytes (a lone surrogate, which UTF-8
   * cannot carry, counts and travels as U+FFFD).
   */
  static payloadBytes(payload: string): number {
    return Buffer.byteLength(payload);
  }

  /**
   * Multicasts a message to the group. `onSettled` runs once every member live (and in the
   * audience) now has acked it or is gone; `complete` says whether all acked.
   */
  publish(topic: string, payload: string, onSettled?: (s: AckStatus) => void): MessageId {
    const bytes = ReliableDelivery.check(topic, payload);
    // Members tracked from now on need only what comes after: track before numbering this one.
    if (onSettled) this.trackReceivers();
    const evicted = this.makeRoom(bytes);
    const lamport = (this.lastLamport = this.ctx.stamp());
    const at = this.sent.push(topic, payload, bytes, lamport);
    const seq = this.sent.hi;
    const id: MessageId = { origin: this.ctx.self.id, epoch: this.epoch, seq };
    this.stats.published++;
    // A full datagram goes out at once, and this message opens the next.
    this.outbox.addBytes(seq, lamport, topic, bytes, this.sent.ring, at);
    // Callbacks only now that this message is in place: one may publish again at once.
    if (onSettled) this.addWaiter(id, onSettled);
    // Past the buffer nobody can repair them: whoever has not acked by now never will.
    for (const w of evicted) this.settle(w, true);
    if (!this.opts.defer) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.opts.defer(() => this.flush());
    }
    return id;
  }

  /**
   * Unicasts a message to one peer, acknowledged and retried. `done` runs exactly once (never
   * from inside this call): ok when acked, or the reason it failed.
   */
  sendTo(to: PeerId, topic: string, payload: string, done?: (r: SendResult) => void): MessageId {
    const bytes = ReliableDelivery.check(topic, payload);
    const m = this.membership.get(to);
    // A restarted peer keeps our stream: its new process starts it afresh at the base we send.
    let out = this.outUnicast.get(to);
    if (!out) {
      out = { to, nextSeq: 1, pending: new Map() };
      this.outUnicast.set(to, out);
    }
    const seq = out.nextSeq++;
    const lamport = (this.lastLamport = this.ctx.stamp());
    const id: MessageId = { origin: this.ctx.self.id, epoch: this.epoch, seq, to };
    const fail = (reason: 'gone' | 'busy') => {
      this.stats.unicastFailed++;
      if (done) this.deferredResults.push(() => done({ ok: false, id, reason }));
    };
    if (!m || !isLive(m)) {
      fail('gone');
      return id;
    }
    if (
      out.pending.size >= RELIABLE_UNICAST_PENDING_MAX ||
      this.unicastPending >= RELIABLE_UNICAST_PENDING_TOTAL_MAX
    ) {
      fail('busy');
      return id;
    }
    const now = this.ctx.now();
    const p = {
      item: new Item(seq, topic, payload, lamport, bytes),
      firstSent: now,
      lastSent: now,
      done,
    };
    out.pending.set(seq, p);
    this.unicastPending++;
    this.sendUnicast(out, p.item, m.address);
    return id;
  }

  /** Ack status of a message still in the send buffer (undefined once it left it). */
  ackStatus(id: MessageId): AckStatus | undefined {
    if (id.to || id.origin !== this.ctx.self.id || id.epoch !== this.epoch) return undefined;
    const w = this.waiters.get(id.seq);
    if (w) return statusOf(w);
    if (!this.sent.has(id.seq)) return undefined;
    const acked: PeerId[] = [];
    const pending: PeerId[] = [];
    for (const r of this.receivers.values()) (r.acked >= id.seq ? acked : pending).push(r.id);
    return { id, complete: pending.length === 0, acked, gone: [], pending };
  }

  /** Sends the open datagram of publish(); called by `defer` and by tick. */
  flush(): void {
    this.flushScheduled = false;
    this.outbox.flush();
  }

  /** Lamport time stamped on the message of the last publish() or sendTo(). */
  lastLamport = 0;

  /** Highest sequence published in our stream. */
  get highestSeq(): number {
    return this.hi;
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
    return {
      buffered: this.sent.size,
      bufferBytes: this.sent.bytes,
      held: this.heldTotal,
      streams: this.streams.size,
      unicastPending: this.unicastPending,
      waiters: this.waiters.size,
    };
  }

  // ---- protocol --------------------------------------------------------------------------------

  onMessage(env: Envelope, from: Address): void {
    switch (env.t) {
      case 'rm.d':
        return this.onData(env as Envelope<DataBody>, from);
      case 'rm.hi': {
        const b = env.b as { e: number; hi: number; jp: number };
        const s = this.stream(env, from, b.e, b.jp, b.hi);
        if (!s) return;
        if (b.hi > s.hi) s.hi = b.hi;
        if (s.hi >= s.next) this.noteGap(s);
        else s.ackDue = true; // we are up to date: the sender lacks our ack
        return;
      }
      case 'rm.nak':
        return this.onNack(env.b as { e: number; r: Array<[number, number]> }, from);
      case 'rm.gone': {
        const b = env.b as { e: number; lo: number };
        const s = this.streams.get(env.i);
        if (!s || s.epoch !== b.e || s.closedAt !== null) return;
        if (from !== s.address) {
          this.ctx.refuse('address'); // see stream()
          return;
        }
        if (b.lo === RESTARTED_LO) this.close(s, 'sender-restarted');
        else {
          this.skipTo(s, Math.min(b.lo, s.hi + 1), 'evicted');
          this.drain(s);
        }
        return;
      }
      case 'rm.ack':
        return this.onAck(env.i, env.b as { e: number; f: number; a: number }, from);
      case 'rm.u':
        return this.onUnicast(env as Envelope<UnicastBody>, from);
      case 'rm.ua': {
        const b = env.b as { e: number; a: number };
        const out = this.outUnicast.get(env.i);
        if (!out || b.e !== this.epoch || !this.fromMember(env.i, from)) return;
        if (b.a >= out.nextSeq) {
          this.ctx.refuse('seq'); // an ack of messages we never sent
          return;
        }
        for (const [seq, p] of out.pending) {
          if (seq > b.a) continue;
          out.pending.delete(seq);
          this.unicastPending--;
          const done = p.done;
          if (done) done({ ok: true, id: { origin: this.ctx.self.id, epoch: this.epoch, seq, to: out.to } });
        }
        return;
      }
    }
  }

  tick(now: number): void {
    this.flush();
    for (const f of this.deferredResults.splice(0)) f();
    this.trackReceivers();
    this.announce(now);
    this.retryUnicast(now);
    for (const s of this.streams.values()) this.tickStream(s, now);
    for (const u of this.inUnicast.values()) {
      if (!u.ackDue) continue;
      u.ackDue = false;
      this.ctx.send(u.ackTo, 'rm.ua', { e: u.epoch, a: ackable(u.next, u.unacked) });
    }
  }

  /** Sends what is queued and announces our highest sequence, so receivers can detect a lost tail. */
  leave(): void {
    this.flush();
    if (this.hi > 0) this.ctx.broadcast('rm.hi', { e: this.epoch, hi: this.hi, jp: this.joinPoint() });
  }

  // ---- sender ----------------------------------------------------------------------------------

  private sendData(to: Address | null, topics: string[], attachment: Buffer, jp: number): void {
    const body: DataBody = { e: this.epoch, jp, k: topics };
    this.stats.datagramsSent++;
    if (to === null) {
      this.ctx.broadcast('rm.d', body, attachment);
      this.lastAnnounce = this.ctx.now();
    } else this.ctx.send(to, 'rm.d', body, attachment);
  }

  /** Drops our oldest messages until one of `bytes` more fits the send buffer; returns their waiters. */
  private makeRoom(bytes: number): Waiter[] {
    const evicted: Waiter[] = [];
    while (!this.sent.fits(bytes)) {
      const w = this.waiters.get(this.sent.dropOldest());
      if (w) evicted.push(w);
    }
    return evicted;
  }

  /** Where a receiver meeting our stream starts: the lowest position a tracked receiver needs. */
  private joinPoint(): number {
    let jp = Infinity;
    const now = this.ctx.now();
    for (const r of this.receivers.values()) if (this.waitedFor(r, now)) jp = Math.min(jp, r.acked + 1);
    if (jp === Infinity) jp = this.sent.lo;
    return Math.max(this.sent.lo, Math.min(jp, this.hi + 1));
  }

  /** A member that never acked anything for long probably does not run this module. */
  private waitedFor(r: Receiver, now: number): boolean {
    return r.heard || now - r.trackedAt < RELIABLE_SILENT_RECEIVER_MS;
  }

  private addWaiter(id: MessageId, done: (s: AckStatus) => void): void {
    this.trackReceivers();
    const required = new Set<PeerId>();
    for (const r of this.receivers.values()) if (r.acked < id.seq) required.add(r.id);
    const w: Waiter = { id, required, acked: new Set(), gone: new Set(), done };
    this.waiters.set(id.seq, w);
    if (required.size === 0) this.deferredResults.push(() => this.settle(w, false));
    if (this.waiters.size > RELIABLE_WAITERS_MAX) {
      // Oldest first: it has had the longest to settle. Ours is in place first, so a callback
      // that publishes again keeps the waiters in sequence order.
      const [oldest] = this.waiters.values();
      if (oldest) this.settle(oldest, true);
    }
  }

  private settle(w: Waiter, abandon: boolean): void {
    if (!this.waiters.delete(w.id.seq)) return;
    if (abandon) for (const p of w.required) if (!w.acked.has(p)) w.gone.add(p);
    w.done({ ...statusOf(w), pending: [] });
  }

  private checkWaiters(peer: PeerId, upTo: number, goneBelow = 0): void {
    for (const w of this.waiters.values()) {
      if (!w.required.has(peer) || w.acked.has(peer) || w.gone.has(peer)) continue;
      if (w.id.seq < goneBelow) w.gone.add(peer);
      else if (w.id.seq <= upTo) w.acked.add(peer);
      else continue;
      if (w.acked.size + w.gone.size === w.required.size) this.settle(w, false);
    }
  }

  /** Follows membership: new audience members are tracked, departed ones released. */
  private trackReceivers(): void {
    const live = new Map<PeerId, MemberView>();
    for (const m of this.membership.live()) if (this.audience(m)) live.set(m.id, m);
    // A higher incarnation may be a refutation (same process) or a restart: a restarted receiver
    // shows itself by acking from a later start (onAck), so both keep their record here.
    for (const id of this.receivers.keys()) {
      if (!live.has(id)) {
        this.receivers.delete(id);
        this.checkWaiters(id, 0, Infinity);
      }
    }
    const now = this.ctx.now();
    for (const m of live.values()) {
      if (!this.receivers.has(m.id))
        this.receivers.set(m.id, { id: m.id, acked: this.hi, trackedAt: now, heard: false });
    }
  }

  private onAck(peer: PeerId, b: { e: number; f: number; a: number }, from: Address): void {
    const r = this.receivers.get(peer);
    if (b.e !== this.epoch || !r || !this.fromMember(peer, from)) return;
    // A receiver acks what it got from where it joined: never past what we sent, never from past
    // what it acks (it joined at f <= a + 1).
    if (b.a > this.hi || b.f > b.a + 1) {
      this.ctx.refuse('seq');
      return;
    }
    // The receiver joined our stream at f: what lies between its known position and f it never got.
    const missed = b.f > r.acked + 1 ? b.f : 0;
    r.heard = true;
    if (b.a > r.acked) r.acked = b.a;
    this.checkWaiters(peer, b.a, missed);
  }

  private announce(now: number): void {
    if (this.hi === 0) return;
    let lagging = false;
    for (const r of this.receivers.values()) if (r.acked < this.hi && this.waitedFor(r, now)) lagging = true;
    const period = lagging ? RELIABLE_ANNOUNCE_MS : RELIABLE_IDLE_ANNOUNCE_MS;
    if (now - this.lastAnnounce < period) return;
    this.lastAnnounce = now;
    this.ctx.broadcast('rm.hi', { e: this.epoch, hi: this.hi, jp: this.joinPoint() });
  }

  private onNack(b: { e: number; r: Array<[number, number]> }, from: Address): void {
    if (b.e < this.epoch) {
      // A stream of our previous life: nothing of it survived the restart.
      this.ctx.send(from, 'rm.gone', { e: b.e, lo: RESTARTED_LO });
      return;
    }
    if (b.e !== this.epoch) return;
    const now = this.ctx.now();
    this.repairTokens = Math.min(
      RELIABLE_REPAIR_BURST_MESSAGES,
      this.repairTokens + ((now - this.repairRefilledAt) * RELIABLE_REPAIR_MESSAGES_PER_S) / 1000,
    );
    this.repairRefilledAt = now;
    let goneBelow = 0;
    const seqs: number[] = [];
    // Ranges in order, each taken from past the previous one, and only what we sent: a crafted
    // NACK with overlapping, unordered or far-off ranges must not make us repair a message twice
    // or out of order (a datagram's sequences must rise), nor walk sequences we never had.
    const ranges = b.r.length > 1 ? [...b.r].sort((x, y) => x[0] - y[0]) : b.r;
    let past = 1;
    nack: for (const [a, z] of ranges) {
      const lo = Math.max(a, past);
      const hi = Math.min(z, this.hi);
      if (lo > hi) continue;
      past = hi + 1;
      if (lo < this.sent.lo) goneBelow = this.sent.lo;
      for (let seq = Math.max(lo, this.sent.lo); seq <= hi; seq++) {
        if (seqs.length >= RELIABLE_NACK_MESSAGES_MAX) break nack;
        if (this.repairTokens < 1) {
          this.stats.repairsRateLimited++;
          break nack;
        }
        this.repairTokens--;
        seqs.push(seq);
      }
    }
    if (goneBelow > 0) this.ctx.send(from, 'rm.gone', { e: this.epoch, lo: goneBelow });
    if (seqs.length === 0) return;
    this.repairTo = from;
    this.repairJp = this.joinPoint();
    const s = this.sent;
    for (const seq of seqs)
      this.repairs.addBytes(seq, s.lamportOf(seq), s.topicOf(seq), s.bytesOf(seq), s.ring, s.offsetOf(seq));
    this.repairs.flush();
    this.stats.repairsSent += seqs.length;
  }

  private sendUnicast(out: OutUnicast, item: Item, address: Address): void {
    let base = out.nextSeq;
    for (const seq of out.pending.keys()) base = Math.min(base, seq);
    const one = new Packer(this.overheadBytes, (k, a) =>
      this.ctx.send(address, 'rm.u', { e: this.epoch, to: out.to, b: base, k } satisfies UnicastBody, a),
    );
    one.add(item);
    one.flush();
  }

  private retryUnicast(now: number): void {
    for (const out of this.outUnicast.values()) {
      if (out.pending.size === 0) continue;
      const m = this.membership.get(out.to);
      for (const [seq, p] of out.pending) {
        const reason =
          !m || !isLive(m) ? 'gone' : now - p.firstSent >= RELIABLE_UNICAST_TIMEOUT_MS ? 'timeout' : null;
        if (reason) {
          out.pending.delete(seq);
          this.unicastPending--;
          this.stats.unicastFailed++;
          p.done?.({
            ok: false,
            id: { origin: this.ctx.self.id, epoch: this.epoch, seq, to: out.to },
            reason,
          });
        } else if (m && now - p.lastSent >= RELIABLE_UNICAST_RETRY_MS) {
          p.lastSent = now;
          this.sendUnicast(out, p.item, m.address);
        }
      }
    }
  }

  // ---- receiver --------------------------------------------------------------------------------

  /**
   * The stream of this envelope's sender, created (at the join point) or replaced (restart);
   * null, changing nothing, when the message must be dropped: from an older epoch, from another
   * address than the stream's, or carrying an epoch or a sequence (`highest`, the highest it
   * shows) past its bound.
   */
  private stream(env: Envelope, from: Address, epoch: number, jp: number, highest: number): InStream | null {
    let s = this.streams.get(env.i);
    if (s && epoch < s.epoch) return null; // from before the sender restarted
    let impostor = false;
    if (s && epoch === s.epoch) {
      if (from === s.address) return this.resume(s, env, jp, highest);
      // A process sends everything from one address (udp.ts) and a stream lives as long as its
      // process, so the same stream from another address is an impostor's: unless membership
      // places the sender there, and then it was the stream we hold that an impostor opened.
      if (this.membership.get(env.i)?.address !== from) {
        this.ctx.refuse('address');
        return null;
      }
      impostor = true;
    }
    // A stream's epoch is its sender's incarnation when it started: never above the one it has
    // now, as membership knows it (bounded there) and as this envelope says. And a stream is
    // opened only from where membership places its sender, when it knows it.
    const m = this.membership.get(env.i);
    if (m && m.address !== from) {
      this.ctx.refuse('address');
      return null;
    }
    if (epoch > env.c || (m && epoch > m.incarnation)) {
      this.ctx.refuse('epoch');
      return null;
    }
    // A new stream starts at the join point: nothing of ours to measure it from but the range.
    if (jp > COUNTER_MAX) {
      this.ctx.refuse('seq');
      return null;
    }
    if (!this.seqAdoptable(Math.max(jp, 1), highest)) return null;
    if (s && impostor)
      this.heldTotal -= s.held.size; // nothing of it was the sender's to report
    else if (s) this.close(s, 'sender-restarted'); // a new epoch: the old stream cannot be repaired
    if (!s && this.streams.size >= RELIABLE_STREAMS_MAX && !this.evictStream()) {
      this.stats.streamsRefused++;
      return null;
    }
    const start = Math.max(jp, 1);
    s = {
      from: env.i,
      name: env.n,
      epoch,
      address: from,
      start,
      next: start,
      hi: start - 1,
      held: new Map(),
      gapSince: null,
      lastNack: -Infinity,
      ackedSent: start - 1,
      ackDue: true,
      closedAt: null,
      unacked: new Set(),
    };
    this.streams.set(env.i, s);
    return s;
  }

  /**
   * Whether a statement in `peer`'s name (an ack: "I hold these") comes from where membership
   * places it; counts it if not. Only the member itself may say what it holds.
   */
  private fromMember(peer: PeerId, from: Address): boolean {
    if (this.membership.get(peer)?.address === from) return true;
    this.ctx.refuse('address');
    return false;
  }

  /** `s` for a message of its sender from its address, or null when the message must be dropped (see stream()). */
  private resume(s: InStream, env: Envelope, jp: number, highest: number): InStream | null {
    let rejoin = false;
    if (s.closedAt !== null) {
      // Declared dead, yet here it is (a healed partition, a false death): same process, same
      // stream. What we skipped was reported lost; what it sends from now on is repairable. If
      // it got further ahead than the step meanwhile, we rejoin at its join point: membership
      // vouches for it being back, and what lies before was never ours to repair.
      const m = this.membership.get(env.i);
      if (!m || !isLive(m)) return null;
      rejoin = jp - s.next > RELIABLE_SEQ_STEP_MAX && jp <= COUNTER_MAX;
    }
    if (!this.seqAdoptable(rejoin ? jp : s.next, highest)) return null;
    if (s.closedAt !== null) {
      s.closedAt = null;
      if (rejoin) this.skipTo(s, jp, 'sender-gone');
    }
    return s;
  }

  /** Whether `seq` may be adopted by a stream that stands at `next` (bounds.ts); counts it if not. */
  private seqAdoptable(next: number, seq: number): boolean {
    if (adoptable(next, seq, RELIABLE_SEQ_STEP_MAX)) return true;
    this.ctx.refuse('seq');
    return false;
  }

  /**
   * Whether every message of a datagram is stamped below the datagram's own Lamport time (see
   * "Lamport times" in the header); counts it if not. The last message has the highest time.
   */
  private stampedBefore(env: Envelope): boolean {
    const items = env.a as Item[];
    if (items[items.length - 1]!.lamport < env.l) return true;
    this.ctx.refuse('lamport');
    return false;
  }

  /**
   * Makes room for a new stream: forgets the oldest closed one or, failing that, the oldest open
   * one whose sender membership does not know. Made-up sender ids never close (nobody declares
   * them dead), so without the second a flood of them would lock every new sender out for good;
   * a real sender is known within a heartbeat, and one forgotten before that rejoins at its join
   * point.
   */
  private evictStream(): boolean {
    let oldest: InStream | undefined;
    for (const s of this.streams.values())
      if (s.closedAt !== null && (!oldest || s.closedAt < (oldest.closedAt ?? 0))) oldest = s;
    if (!oldest)
      for (const s of this.streams.values())
        if (!this.membership.get(s.from)) {
          oldest = s;
          break;
        }
    if (!oldest) return false;
    this.heldTotal -= oldest.held.size;
    this.streams.delete(oldest.from);
    return true;
  }

  private onData(env: Envelope<DataBody>, from: Address): void {
    const b = env.b;
    const items = env.a as Item[];
    if (!this.stampedBefore(env)) return;
    const s = this.stream(env, from, b.e, b.jp, items[items.length - 1]!.seq);
    if (!s) return;
    for (const item of items) {
      const seq = item.seq;
      if (seq > s.hi) s.hi = seq;
      if (seq < s.next || s.held.has(seq)) {
        this.stats.duplicates++;
        s.ackDue = true;
        continue;
      }
      if (seq === s.next) {
        this.deliver(s, item);
        continue;
      }
      if (
        seq - s.next > RELIABLE_RECEIVE_WINDOW_MESSAGES_MAX ||
        this.heldTotal >= RELIABLE_HELD_MESSAGES_TOTAL_MAX
      ) {
        this.stats.droppedOutOfWindow++; // NACKed again once the window moves
        continue;
      }
      s.held.set(seq, item);
      this.heldTotal++;
    }
    this.drain(s);
    if (s.hi >= s.next) this.noteGap(s);
    const upTo = ackable(s.next, s.unacked);
    if (upTo - s.ackedSent >= RELIABLE_ACK_EVERY_MESSAGES) this.sendAck(s, upTo);
  }

  private sendAck(s: InStream, upTo: number): void {
    s.ackedSent = upTo;
    s.ackDue = false;
    this.ctx.send(s.address, 'rm.ack', { e: s.epoch, f: s.start, a: upTo });
  }

  private noteGap(s: InStream): void {
    if (s.gapSince === null) s.gapSince = this.ctx.now();
  }

  /** Delivers held messages that have become next in line. */
  private drain(s: InStream): void {
    for (;;) {
      const item = s.held.get(s.next);
      if (!item) break;
      s.held.delete(s.next);
      this.heldTotal--;
      this.deliver(s, item);
    }
    if (s.next > s.hi) s.gapSince = null;
  }

  /**
   * Gives up on everything below `to`: held messages are delivered, each missing run between them
   * reported lost as one range. The work is in the held messages (bounded), never in the length
   * of the runs, which a sender's number sets.
   */
  private skipTo(s: InStream, to: number, reason: LostReason): void {
    for (const seq of heldBelow(s.held, to)) {
      if (seq > s.next) this.reportLost(s.from, s.name, s.epoch, s.next, seq - 1, reason, false);
      const item = s.held.get(seq)!;
      s.held.delete(seq);
      this.heldTotal--;
      this.deliver(s, item);
    }
    if (to > s.next) {
      this.reportLost(s.from, s.name, s.epoch, s.next, to - 1, reason, false);
      s.next = to;
    }
    if (s.hi < s.next - 1) s.hi = s.next - 1;
    if (s.next > s.hi) s.gapSince = null;
    s.ackDue = true;
  }

  private close(s: InStream, reason: LostReason): void {
    this.skipTo(s, s.hi + 1, reason);
    this.heldTotal -= s.held.size;
    s.held.clear();
    s.closedAt = this.ctx.now();
  }

  private tickStream(s: InStream, now: number): void {
    if (s.closedAt !== null) {
      if (now - s.closedAt > RELIABLE_CLOSED_RETENTION_MS) this.streams.delete(s.from);
      return;
    }
    const m = this.membership.get(s.from);
    if (m && (m.state === 'dead' || m.state === 'left')) {
      this.close(s, 'sender-gone');
      return;
    }
    if (s.gapSince !== null) {
      if (now - s.gapSince > RELIABLE_GAP_TIMEOUT_MS) {
        this.skipTo(s, s.hi + 1, 'timeout');
      } else if (
        now - s.gapSince >= RELIABLE_NACK_DELAY_MS &&
        now - s.lastNack >= RELIABLE_NACK_INTERVAL_MS
      ) {
        this.nack(s, now);
      }
    }
    const upTo = ackable(s.next, s.unacked);
    if (upTo > s.ackedSent || s.ackDue) this.sendAck(s, upTo);
  }

  private nack(s: InStream, now: number): void {
    const ranges: Array<[number, number]> = [];
    let asked = 0;
    const last = Math.min(s.hi, s.next + RELIABLE_RECEIVE_WINDOW_MESSAGES_MAX);
    let seq = s.next;
    while (seq <= last && ranges.length < RELIABLE_NACK_RANGES_MAX && asked < RELIABLE_NACK_MESSAGES_MAX) {
      if (s.held.has(seq)) {
        seq++;
        continue;
      }
      const a = seq;
      while (seq <= last && !s.held.has(seq) && asked < RELIABLE_NACK_MESSAGES_MAX) {
        seq++;
        asked++;
      }
      ranges.push([a, seq - 1]);
    }
    if (ranges.length === 0) return;
    s.lastNack = now;
    this.stats.nacksSent++;
    this.ctx.send(s.address, 'rm.nak', { e: s.epoch, r: ranges });
  }

  private onUnicast(env: Envelope<UnicastBody>, from: Address): void {
    const b = env.b;
    if (b.to !== this.ctx.self.id) return; // meant for a previous owner of this address
    if (!this.stampedBefore(env)) return;
    const item = (env.a as Item[])[0]!;
    let u = this.inUnicast.get(env.i);
    if (u && b.e < u.epoch) return;
    // As for multicast streams (stream()): one stream, one address, unless membership places the
    // sender at the new one (then an impostor opened the stream we hold, and it starts afresh).
    if (u && b.e === u.epoch && from !== u.ackTo && !this.fromMember(env.i, from)) return;
    const fresh = !u || b.e > u.epoch || from !== u.ackTo;
    if (fresh) {
      // As for multicast streams (stream()): the epoch is bounded by the sender's incarnation.
      const m = this.membership.get(env.i);
      if (b.e > env.c || (m && b.e > m.incarnation)) {
        this.ctx.refuse('epoch');
        return;
      }
    }
    // The base and the message's sequence, from where the stream stands (or starts: at the base).
    const at = fresh ? Math.max(b.b, 1) : u!.next;
    if (!this.seqAdoptable(at, b.b) || !this.seqAdoptable(Math.max(at, b.b), item.seq)) return;
    if (!u || fresh) {
      if (!u && this.inUnicast.size >= RELIABLE_STREAMS_MAX) {
        // Forget the oldest stream; a sender coming back starts afresh at its base.
        const [first] = this.inUnicast.keys();
        if (first) this.dropUnicastStream(first);
      }
      if (u) this.dropUnicastStream(env.i);
      u = {
        from: env.i,
        epoch: b.e,
        next: Math.max(b.b, 1),
        held: new Map(),
        unacked: new Set(),
        ackTo: from,
        ackDue: false,
      };
      this.inUnicast.set(env.i, u);
    }
    if (b.b > u.next) {
      // The sender gave up on these (its caller was told); say so here too. As in skipTo, the
      // work is in the held messages, not in the length of the run.
      const lostFrom = u.next;
      let delivered = 0;
      for (const seq of heldBelow(u.held, b.b)) {
        const it = u.held.get(seq)!;
        u.held.delete(seq);
        this.heldTotal--;
        delivered++;
        this.deliverUnicast(env, it, u);
      }
      u.next = b.b;
      const count = b.b - lostFrom - delivered;
      if (count > 0) this.reportLost(env.i, env.n, b.e, lostFrom, b.b - 1, 'abandoned', true, count);
    }
    const seq = item.seq;
    if (seq < u.next || u.held.has(seq)) this.stats.duplicates++;
    else if (seq === u.next) {
      u.next++;
      this.deliverUnicast(env, item, u);
      for (let it = u.held.get(u.next); it; it = u.held.get(u.next)) {
        u.held.delete(u.next);
        this.heldTotal--;
        u.next++;
        this.deliverUnicast(env, it, u);
      }
    } else if (
      seq - u.next <= RELIABLE_UNICAST_PENDING_MAX &&
      this.heldTotal < RELIABLE_HELD_MESSAGES_TOTAL_MAX
    ) {
      u.held.set(seq, item);
      this.heldTotal++;
    }
    this.ctx.send(from, 'rm.ua', { e: b.e, a: ackable(u.next, u.unacked) });
  }

  private dropUnicastStream(from: PeerId): void {
    const u = this.inUnicast.get(from);
    if (!u) return;
    this.heldTotal -= u.held.size;
    this.inUnicast.delete(from);
  }

  /** Delivers the next message of a stream; the position moves first, so a throwing handler cannot cause a redelivery. */
  private deliver(s: InStream, item: Item): void {
    const seq = item.seq;
    s.next = seq + 1;
    item.from = s.from;
    item.fromName = s.name;
    item.epoch = s.epoch;
    const writes = this.dispatch(item);
    if (writes) this.holdAck(s.unacked, seq, writes, () => (s.ackDue = true));
  }

  private deliverUnicast(env: Envelope<{ e: number }>, item: Item, u: InUnicast): void {
    item.from = env.i;
    item.fromName = env.n;
    item.epoch = env.b.e;
    item.to = this.ctx.self.id;
    const writes = this.dispatch(item);
    if (writes) this.holdAck(u.unacked, item.seq, writes, () => (u.ackDue = true));
  }

  /** Runs the topic's handlers; returns the promises of those that defer the ack, if any. */
  private dispatch(d: Delivery): Array<PromiseLike<unknown>> | null {
    this.stats.delivered++;
    let writes: Array<PromiseLike<unknown>> | null = null;
    const handlers = this.handlers.get(d.topic);
    if (!handlers) return null;
    for (const h of handlers) {
      try {
        const r = h(d);
        if (isThenable(r)) (writes ??= []).push(r);
      } catch (err) {
        // A caller's bug must not stall the stream; tests assert this stays zero.
        this.stats.handlerErrors++;
        this.stats.lastHandlerError = (err as Error).stack ?? String(err);
      }
    }
    return writes;
  }

  /**
   * Keeps `seq` out of the stream's acks until every write resolved, then marks the ack due (the
   * next tick sends it). Messages are delivered in increasing order, so `unacked` stays sorted.
   * A rejected write leaves `seq` in `unacked` for good: nothing from it on is ever acked.
   */
  private holdAck(
    unacked: Set<number>,
    seq: number,
    writes: Array<PromiseLike<unknown>>,
    due: () => void,
  ): void {
    unacked.add(seq);
    Promise.all(writes).then(
      () => {
        unacked.delete(seq);
        due();
      },
      (err: unknown) => {
        this.stats.writesFailed++;
        this.stats.lastHandlerError = (err as Error)?.stack ?? String(err);
      },
    );
  }

  private reportLost(
    from: PeerId,
    fromName: string,
    epoch: number,
    firstSeq: number,
    lastSeq: number,
    reason: LostReason,
    unicast: boolean,
    count = lastSeq - firstSeq + 1,
  ): void {
    const r: LostReport = { from, fromName, epoch, firstSeq, lastSeq, count, reason, unicast };
    this.stats.lost += count;
    for (const h of this.lostHandlers) h(r);
    this.ctx.emit({ kind: 'lost', ...r });
  }
}

/** Sequences of the held messages below `to`, in increasing order. */
function heldBelow(held: Map<number, Item>, to: number): number[] {
  const seqs: number[] = [];
  for (const seq of held.keys()) if (seq < to) seqs.push(seq);
  return seqs.sort((a, b) => a - b);
}

/** Highest sequence a stream may ack: everything delivered, up to the first write not yet durable. */
function ackable(next: number, unacked: Set<number>): number {
  for (const seq of unacked) return seq - 1; // the first is the lowest (see holdAck)
  return next - 1;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

function isLive(m: MemberView): boolean {
  return m.state === 'alive' || m.state === 'suspect';
}

function statusOf(w: Waiter): AckStatus {
  const pending = [...w.required].filter((p) => !w.acked.has(p) && !w.gone.has(p));
  return {
    id: w.id,
    complete: w.acked.size === w.required.size,
    acked: [...w.acked],
    gone: [...w.gone],
    pending,
  };
}
