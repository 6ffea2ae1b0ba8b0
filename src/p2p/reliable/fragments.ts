/**
 * Fragmentation: messages larger than one datagram, up to RELIABLE_MESSAGE_BYTES_MAX, as runs of
 * fragments in the bulk lane's streams (`rb.*`), reassembled and delivered whole, exactly once, or
 * reported lost whole: never half a message. As JGroups' FRAG above its NAK layer: each fragment
 * is one message of the lane's stream, so the streams' NACKs repair fragments, their acks move
 * the sender's window, and their loss reports say which fragments will never come.
 *
 * A message's fragments take consecutive sequences of its stream (the bulk sender numbers a
 * message's fragments before the next message's: bulk.ts), and each carries, before its bytes,
 *   u8 kind: 1 the first fragment, 0 the others
 *   first only: varint message bytes | varint fragment count
 * so a receiver knows at the first fragment how large the message is (and refuses it there when
 * it is over its bounds, before holding a byte of it) and which sequence ends it.
 *
 * The first fragment travels in an `rb.d` envelope, which opens the stream and names the topic
 * and the message's Lamport time. The others of a multicast message travel as frames (wire.ts:
 * no envelope), larger and nearly all header-free:
 *   frame header | varint stream epoch | varint sequence | the fragment (kind 0, bytes)
 * taken only into a stream an envelope opened, in its epoch, from its address (receiver.ts);
 * a framed fragment inherits its message's topic and time. Unicast fragments all go in `rb.u`.
 *
 * Memory: a receiver holds partial messages only from senders membership knows as live, within
 * RELIABLE_REASSEMBLY_BYTES_PER_SENDER_MAX per sender and RELIABLE_REASSEMBLY_BYTES_TOTAL_MAX in
 * all, counted from the first fragment (the whole message's size). The first fragment of a
 * message in several, from a sender membership does not know yet (its first heartbeat lost, or
 * still on its way), is left untaken (takes()): the stream keeps its place and holds nothing of
 * it, so a flood of them from strangers costs no memory, and the stream's NACK (or the unicast
 * sender's resend) brings it again, taken once the sender is known. A message over a bound or
 * over the receiver's own message limit is refused: its fragments are acked and dropped, and the
 * refusal rides on the stream's acks (`rf`) for RELIABLE_REFUSAL_REPEAT_MS so the sender's
 * callback hears of it (sender.ts). So is one from a sender still unknown when its stream gives
 * up waiting (a gap timed out, the sender's base moved past it).
 */
import {
  ByteReader,
  FRAME_BYTES_MAX,
  FRAME_HEADER_BYTES,
  varintBytes,
  writeVarint,
  type PeerId,
} from '../wire.js';
import { messageKey, type Delivery, type LostReason, type MessageId } from './delivery.js';
import type { Handlers } from './handlers.js';
import {
  RELIABLE_FRAGMENTS_MAX,
  RELIABLE_MESSAGE_BYTES_MAX,
  RELIABLE_REASSEMBLY_BYTES_PER_SENDER_MAX,
  RELIABLE_REASSEMBLY_BYTES_TOTAL_MAX,
  RELIABLE_REFUSAL_REPEAT_MS,
  RELIABLE_REFUSALS_MAX,
} from './limits.js';
import type { ReliableStats } from './shared.js';
import type { StreamSink } from './sink.js';

const FIRST = 1;
/** The kind byte of a fragment after its message's first. */
export const CONTINUATION = 0;
/** The header of every fragment after its message's first: only read (copied into the send buffer). */
const CONTINUATION_HEADER = Buffer.of(CONTINUATION);
/** Bytes a first fragment's count may take: RELIABLE_FRAGMENTS_MAX fits 3 varint bytes. */
const COUNT_VARINT_BYTES_MAX = 3;

/** Why a receiver refused a message; on the wire (`rf`), its index here. */
export const REFUSAL_REASONS = ['too-large', 'no-room', 'unknown-sender'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];
/** A refusal as acks carry it: the message's first sequence and the reason's index. */
export type WireRefusal = [firstSeq: number, reason: number];

/** The frame kind (wire.ts) of a multicast message's fragments after its first. */
export const FRAGMENT_FRAME = 1;
/** Bytes a framed fragment's sequence may take: 2^35 fragments (some 34 TB) per process. */
const SEQ_VARINT_BYTES_MAX = 5;

/** One fragment as decoded from a datagram. */
export class Fragment {
  constructor(
    readonly seq: number,
    /** Its message's topic and Lamport time; a framed fragment inherits its message's ('' and 0). */
    readonly topic: string,
    readonly lamport: number,
    /** Set on a message's first fragment. */
    readonly head: { bytes: number; count: number } | null,
    readonly data: Buffer,
    /** Came in a frame. */
    readonly framed = false,
  ) {}
}

/** The payload room of a framed fragment from a stream of `epoch`. */
export function framedRoom(epoch: number): number {
  return FRAME_BYTES_MAX - FRAME_HEADER_BYTES - varintBytes(epoch) - SEQ_VARINT_BYTES_MAX;
}

/** A framed fragment's body before its payload: the stream's epoch and the fragment's sequence. */
export function framePrefix(epoch: number, seq: number): Buffer {
  if (varintBytes(seq) > SEQ_VARINT_BYTES_MAX)
    throw new RangeError(`sequence ${seq} past what a frame carries`);
  const out = Buffer.allocUnsafe(varintBytes(epoch) + varintBytes(seq));
  writeVarint(out, writeVarint(out, 0, epoch), seq);
  return out;
}

/** A framed fragment (a continuation: kind 0) with its stream's epoch; undefined when malformed. */
export function decodeFramed(body: Buffer): { epoch: number; fragment: Fragment } | undefined {
  const r = new ByteReader(body);
  const epoch = r.varint();
  const seq = r.varint();
  if (r.bad || seq === 0 || r.u8() !== CONTINUATION) return undefined;
  return { epoch, fragment: new Fragment(seq, '', 0, null, body.subarray(r.offset), true) };
}

/** The PayloadReader (packer.ts) of the bulk lane. */
export function decodeFragment(
  seq: number,
  topic: string,
  lamport: number,
  r: ByteReader,
  length: number,
): Fragment | undefined {
  const end = r.offset + length;
  const kind = r.u8();
  let head: Fragment['head'] = null;
  if (kind === FIRST) {
    const bytes = r.varint();
    const count = r.varint();
    // Every fragment but the last carries at least one byte, so count <= bytes + 1.
    if (
      bytes > RELIABLE_MESSAGE_BYTES_MAX ||
      count < 1 ||
      count > RELIABLE_FRAGMENTS_MAX ||
      count > bytes + 1
    )
      return undefined;
    head = { bytes, count };
  } else if (kind !== CONTINUATION) return undefined;
  if (r.bad || r.offset > end || end > r.buf.length) return undefined;
  const data = r.buf.subarray(r.offset, end);
  r.offset = end;
  return new Fragment(seq, topic, lamport, head, data);
}

/**
 * How a message of `bytes` splits into fragments: the first of at most `firstRoom` payload bytes
 * (the room of one message in one envelope: datagram.ts), the others of at most `nextRoom`
 * (the same, or a frame's: framedRoom()).
 */
export class Split {
  readonly count: number;
  private readonly firstData: number;
  private readonly nextData: number;

  constructor(
    readonly bytes: number,
    firstRoom: number,
    nextRoom = firstRoom,
  ) {
    this.firstData = firstRoom - 1 - varintBytes(bytes) - COUNT_VARINT_BYTES_MAX;
    this.nextData = nextRoom - 1;
    this.count = 1 + Math.ceil(Math.max(0, bytes - this.firstData) / this.nextData);
  }

  /** Where fragment i's data starts and ends in the message. */
  range(i: number): [start: number, end: number] {
    const start = i === 0 ? 0 : this.firstData + (i - 1) * this.nextData;
    const end = i === 0 ? this.firstData : start + this.nextData;
    return [start, Math.min(end, this.bytes)];
  }

  /** Fragment i's header (before its data): the ones after the first share one (never written to). */
  header(i: number): Buffer {
    if (i > 0) return CONTINUATION_HEADER;
    const out = Buffer.allocUnsafe(1 + varintBytes(this.bytes) + varintBytes(this.count));
    out[0] = FIRST;
    writeVarint(out, writeVarint(out, 1, this.bytes), this.count);
    return out;
  }
}

/** Where a stream comes from, as the lane's receivers know it. */
export interface StreamRef {
  from: PeerId;
  fromName: string;
  epoch: number;
  /** This peer for a unicast stream, null for a multicast one. */
  to: PeerId | null;
}

/** A whole message, reassembled: what the topic handlers get. */
class WholeMessage implements Delivery {
  private text: string | null = null;

  constructor(
    readonly id: MessageId,
    readonly from: PeerId,
    readonly fromName: string,
    readonly to: PeerId | null,
    readonly topic: string,
    readonly lamport: number,
    readonly data: Buffer,
  ) {}

  get key(): string {
    return messageKey(this.id);
  }

  get payload(): string {
    return (this.text ??= this.data.toString('utf8'));
  }
}

/** A message being reassembled (or refused: then `buf` is null and its fragments are dropped). */
interface Partial {
  topic: string;
  lamport: number;
  firstSeq: number;
  lastSeq: number;
  nextSeq: number;
  buf: Buffer | null;
  filled: number;
}

interface Refusal {
  firstSeq: number;
  reason: RefusalReason;
  at: number;
}

/** The receivers' bounds on what they reassemble. */
export interface ReassemblyLimits {
  /** Messages larger than this are refused ('too-large'). */
  messageBytesMax: number;
  perSenderBytesMax: number;
  totalBytesMax: number;
}

export const DEFAULT_REASSEMBLY_LIMITS: ReassemblyLimits = {
  messageBytesMax: RELIABLE_MESSAGE_BYTES_MAX,
  perSenderBytesMax: RELIABLE_REASSEMBLY_BYTES_PER_SENDER_MAX,
  totalBytesMax: RELIABLE_REASSEMBLY_BYTES_TOTAL_MAX,
};

/**
 * The bulk lane's receiving end above its streams: fragments come in sequence order per stream
 * (the receivers deliver them so), and whole messages go to the topic handlers.
 */
export class Reassembler implements StreamSink<Fragment> {
  private readonly partials = new Map<string, Partial>();
  private readonly refusals = new Map<string, Refusal[]>();
  private readonly bySender = new Map<PeerId, number>();
  /** Bytes of the partial messages held, over all streams. */
  heldBytes = 0;

  constructor(
    private readonly handlers: Handlers,
    private readonly stats: ReliableStats,
    private readonly limits: ReassemblyLimits,
    private readonly now: () => number,
    /** Whether membership knows the sender as live: nobody else may make us hold bytes. */
    private readonly isMember: (id: PeerId) => boolean,
  ) {}

  /** Leaves a message's first fragment untaken while its sender is unknown (see the header). */
  takes(s: StreamRef, f: Fragment): boolean {
    return f.head === null || f.head.count === 1 || this.isMember(s.from);
  }

  /**
   * The next fragment of a stream, in order. Returns the promises of the handlers that defer the
   * ack when it completes a message (the ack of its last fragment waits for them: durable.ts).
   */
  deliver(s: StreamRef, f: Fragment): Array<PromiseLike<unknown>> | null {
    const key = streamKey(s);
    let p = this.partials.get(key);
    if (f.head) {
      if (p) this.drop(s, key, p, 'timeout'); // its end never came (lost() says so first, normally)
      p = this.open(s, key, f);
    } else if (!p || f.seq !== p.nextSeq) {
      // Joined the stream mid-message, or the rest of a message already reported lost or refused.
      this.stats.fragmentsDropped++;
      return null;
    }
    p.nextSeq = f.seq + 1;
    if (p.buf) {
      const inherits = f.framed || (f.topic === p.topic && f.lamport === p.lamport);
      if (!inherits || p.filled + f.data.length > p.buf.length) {
        this.stats.fragmentsMalformed++;
        this.drop(s, key, p, 'timeout');
        return null;
      }
      p.filled += f.data.copy(p.buf, p.filled);
    }
    if (f.seq < p.lastSeq) return null;
    this.forget(s, key, p);
    if (!p.buf) return null;
    if (p.filled !== p.buf.length) {
      this.stats.fragmentsMalformed++;
      this.handlers.reportLost(
        s.from,
        s.fromName,
        s.epoch,
        p.firstSeq,
        p.lastSeq,
        'timeout',
        s.to !== null,
        1,
      );
      return null;
    }
    const id: MessageId =
      s.to === null
        ? { origin: s.from, epoch: s.epoch, seq: p.firstSeq, bulk: true }
        : { origin: s.from, epoch: s.epoch, seq: p.firstSeq, to: s.to, bulk: true };
    return this.handlers.dispatch(new WholeMessage(id, s.from, s.fromName, s.to, p.topic, p.lamport, p.buf));
  }

  /** The stream gave up on sequences first..last: a message with a fragment among them is lost whole. */
  lost(s: StreamRef, first: number, last: number, reason: LostReason): void {
    const key = streamKey(s);
    const p = this.partials.get(key);
    let from = first;
    if (p && p.nextSeq >= first && p.nextSeq <= last) {
      this.drop(s, key, p, reason);
      from = p.lastSeq + 1;
    }
    // What else lay in the run was at least one message this receiver never saw begin.
    if (from <= last)
      this.handlers.reportLost(s.from, s.fromName, s.epoch, from, last, reason, s.to !== null, 1);
  }

  /** The stream ended (sender gone, restarted): a message it left unfinished is lost whole. */
  closed(s: StreamRef, reason: LostReason): void {
    const key = streamKey(s);
    const p = this.partials.get(key);
    if (p) this.drop(s, key, p, reason);
    this.refusals.delete(key);
  }

  /** The messages this receiver refused lately, for the stream's acks. */
  refused(s: StreamRef): WireRefusal[] | undefined {
    const key = streamKey(s);
    const list = this.refusals.get(key);
    if (!list) return undefined;
    const now = this.now();
    const recent = list.filter((r) => now - r.at < RELIABLE_REFUSAL_REPEAT_MS);
    if (recent.length === 0) {
      this.refusals.delete(key);
      return undefined;
    }
    this.refusals.set(key, recent);
    return recent.map((r) => [r.firstSeq, REFUSAL_REASONS.indexOf(r.reason)]);
  }

  private open(s: StreamRef, key: string, f: Fragment): Partial {
    const { bytes, count } = f.head!;
    const partial: Partial = {
      topic: f.topic,
      lamport: f.lamport,
      firstSeq: f.seq,
      lastSeq: f.seq + count - 1,
      nextSeq: f.seq,
      buf: null,
      filled: 0,
    };
    const reason = this.refusal(s.from, bytes, count);
    if (reason) {
      this.stats.messagesRefused++;
      const list = this.refusals.get(key) ?? [];
      list.push({ firstSeq: f.seq, reason, at: this.now() });
      if (list.length > RELIABLE_REFUSALS_MAX) list.shift();
      this.refusals.set(key, list);
    } else {
      partial.buf = Buffer.allocUnsafe(bytes);
      this.heldBytes += bytes;
      this.bySender.set(s.from, (this.bySender.get(s.from) ?? 0) + bytes);
    }
    this.partials.set(key, partial);
    return partial;
  }

  private refusal(from: PeerId, bytes: number, count: number): RefusalReason | null {
    if (bytes > this.limits.messageBytesMax) return 'too-large';
    // A message whole in its first fragment is in hand already: taking it holds nothing more, as
    // the small lane takes any stream's. One in several is delivered here from an unknown sender
    // only when its stream gave up waiting for the sender to be known (takes()).
    if (count > 1 && !this.isMember(from)) return 'unknown-sender';
    const mine = this.bySender.get(from) ?? 0;
    if (mine + bytes > this.limits.perSenderBytesMax || this.heldBytes + bytes > this.limits.totalBytesMax)
      return 'no-room';
    return null;
  }

  private drop(s: StreamRef, key: string, p: Partial, reason: LostReason): void {
    this.forget(s, key, p);
    if (p.buf)
      this.handlers.reportLost(s.from, s.fromName, s.epoch, p.firstSeq, p.lastSeq, reason, s.to !== null, 1);
  }

  private forget(s: StreamRef, key: string, p: Partial): void {
    this.partials.delete(key);
    if (!p.buf) return;
    this.heldBytes -= p.buf.length;
    const left = (this.bySender.get(s.from) ?? 0) - p.buf.length;
    if (left > 0) this.bySender.set(s.from, left);
    else this.bySender.delete(s.from);
  }
}

function streamKey(s: StreamRef): string {
  return `${s.from}/${s.epoch}/${s.to === null ? 'm' : 'u'}`;
}
