/**
 * Reliable unicast, both directions. sendTo() unicasts to one peer in its own per-destination
 * stream (`rm.u`, FIFO, acked by `rm.ua`), retried every RELIABLE_UNICAST_RETRY_MS until acked,
 * the peer is gone, or RELIABLE_UNICAST_TIMEOUT_MS passes; its callback says which. Each datagram
 * carries one message and the stream's base (its oldest unacked sequence): what lies below the
 * base the sender gave up on, and the receiver reports it as lost ('abandoned').
 *
 * The bulk lane (`rb.u`) runs the same streams for the fragments of large messages
 * (fragments.ts): a message's fragments take consecutive sequences, at most
 * RELIABLE_UNICAST_WINDOW_MESSAGES of a stream are in flight, the rest wait in its queue, and the
 * callback runs once for the whole message: ok when its last fragment is acked, failed (and the
 * rest of it given up, so the receiver drops what it holds) when any fragment fails, or refused
 * when the receiver said so on its acks.
 *
 * As for multicast streams (receiver.ts): a stream is taken from one address, its epoch is
 * bounded by its sender's incarnation, and its numbers by RELIABLE_SEQ_STEP_MAX; acks are taken
 * only from the member's address and never past what was sent. Queues are bounded per
 * destination and in total; the acks wait for durable writes (durable.ts). A message the receiver
 * said it received is not sent again while its write is pending, but the ack of that write can be
 * lost like any datagram: the sender asks again (askDurable), so 'timeout' means the receiver
 * never told us within RELIABLE_UNICAST_TIMEOUT_MS, not that one ack went astray.
 */
import type { PeerId } from '../wire.js';
import type { Origin } from '../kit/message.js';
import type { Address } from '../transport/transport.js';
import { isLive, type MessageId, type SendFailure, type SendResult } from './delivery.js';
import type { DatagramRoom } from './datagram.js';
import { PendingWrites } from './durable.js';
import { REFUSAL_REASONS, Split, type StreamRef } from './fragments.js';
import {
  RELIABLE_QUEUE_BYTES_MAX,
  RELIABLE_STREAMS_MAX,
  RELIABLE_UNICAST_PENDING_MAX,
  RELIABLE_UNICAST_PENDING_TOTAL_MAX,
  RELIABLE_UNICAST_RETRY_MS,
  RELIABLE_UNICAST_TIMEOUT_MS,
  RELIABLE_UNICAST_WINDOW_MESSAGES,
  RELIABLE_WRITES_AHEAD_MAX,
} from './limits.js';
import { BULK, type LaneWire, type UnicastAckBody, type UnicastBody } from './messages.js';
import { Packer } from './packer.js';
import { heldBelow, type Shared } from './shared.js';
import type { Sequenced, StreamSink } from './sink.js';

/** One message of sendTo(): its callback runs once, for the whole of it. */
interface OutMessage {
  id: MessageId;
  lastSeq: number;
  done?: (r: SendResult) => void;
  settled: boolean;
}

/** A datagram's message sent and not acked yet (a whole small message, or one fragment). */
interface Pending {
  seq: number;
  topic: string;
  lamport: number;
  payload: Buffer;
  firstSent: number;
  lastSent: number;
  owner: OutMessage;
}

/** A large message whose fragments are not all sent yet. */
interface Queued {
  owner: OutMessage;
  topic: string;
  lamport: number;
  data: Buffer;
  split: Split;
  /** The next fragment to send. */
  next: number;
  /** The small lane's last sequence to the same peer when this was sent: its first fragment waits for that. */
  after: number;
}

/** Our stream to one destination. */
interface OutStream {
  to: PeerId;
  nextSeq: number;
  pending: Map<number, Pending>;
  queue: Queued[];
  /**
   * Messages received whole, their callbacks waiting for the receiver's durable write (durable.ts):
   * since when, and their last datagram, sent again to ask for a durable ack that was lost.
   */
  writing: Map<OutMessage, { since: number; last: Pending }>;
  /** When an ack last came, or we last asked for one while messages were writing. */
  askedAt: number;
}

/** One sender's stream to us. */
interface InStream<M> {
  ref: StreamRef;
  from: PeerId;
  epoch: number;
  next: number;
  held: Map<number, M>;
  /** Delivered messages whose handlers' writes have not committed yet. */
  writes: PendingWrites;
  /** The sender's address: where acks go, and the one address its messages are taken from. */
  ackTo: Address;
  ackDue: boolean;
}

export class UnicastSender {
  private readonly streams = new Map<PeerId, OutStream>();
  /** Messages (fragments) pending over all destinations. */
  pendingTotal = 0;
  /** Bytes of large messages waiting for their turn in a stream's window. */
  queuedBytes = 0;

  constructor(
    private readonly shared: Shared,
    private readonly wire: LaneWire,
    private readonly room: DatagramRoom,
    /**
     * The bulk lane's: the small lane's sender, whose earlier messages to a peer a large one
     * waits for (each lane is delivered on its own, so it would overtake one being retried).
     */
    private readonly small: UnicastSender | null = null,
  ) {}

  /**
   * Sends a message (checked already) to one peer, acknowledged and retried. `done` runs exactly
   * once (never from inside this call): ok when acked, or the reason it failed.
   */
  sendTo(to: PeerId, topic: string, payload: string, done?: (r: SendResult) => void): MessageId {
    const b = this.begin(to, 1, done, (out) => out.pending.size >= RELIABLE_UNICAST_PENDING_MAX);
    if (b.ok) {
      const p = { seq: b.owner.id.seq, topic, lamport: b.lamport, payload: Buffer.from(payload, 'utf8') };
      this.sendPending(b.out, { ...p, owner: b.owner }, b.address);
    }
    return b.owner.id;
  }

  /** As sendTo(), a message of any size, in fragments (fragments.ts) sent as the window allows. */
  sendFragments(to: PeerId, topic: string, data: Buffer, done?: (r: SendResult) => void): MessageId {
    const split = new Split(data.length, this.room.payloadRoom(topic));
    const b = this.begin(
      to,
      split.count,
      done,
      (out) =>
        out.queue.length >= RELIABLE_UNICAST_PENDING_MAX ||
        this.queuedBytes + data.length > RELIABLE_QUEUE_BYTES_MAX,
    );
    if (b.ok) {
      const after = this.small?.lastSentTo(to) ?? 0;
      b.out.queue.push({ owner: b.owner, topic, lamport: b.lamport, data, split, next: 0, after });
      this.queuedBytes += data.length;
      this.pump(b.out, b.address);
    }
    return b.owner.id;
  }

  /** The last sequence numbered in our stream to `to`. */
  lastSentTo(to: PeerId): number {
    return (this.streams.get(to)?.nextSeq ?? 1) - 1;
  }

  /** Whether everything numbered up to `seq` in our stream to `to` is acked or given up. */
  settledTo(to: PeerId, seq: number): boolean {
    const out = this.streams.get(to);
    if (!out) return true;
    for (const s of out.pending.keys()) if (s <= seq) return false;
    return true;
  }

  /** Whether a message of `topic` to `to` is still on its way (so a small one must follow it here). */
  outstanding(to: PeerId, topic: string): boolean {
    const out = this.streams.get(to);
    if (!out) return false;
    for (const p of out.pending.values()) if (p.topic === topic) return true;
    return out.queue.some((q) => q.topic === topic);
  }

  onAck({ epoch, ackedUpTo, refused, received }: UnicastAckBody, origin: Origin): void {
    const { ctx } = this.shared;
    const out = this.streams.get(origin.id);
    if (!out || epoch !== this.shared.epoch || !this.shared.fromMember(origin.id, origin.address)) return;
    if (ackedUpTo >= out.nextSeq || (received ?? 0) >= out.nextSeq) {
      ctx.refuse('seq'); // an ack of messages we never sent
      return;
    }
    for (const [firstSeq, reason] of refused ?? []) {
      const owner = this.ownerOf(out, firstSeq);
      if (!owner || owner.settled) continue;
      this.shared.stats.refusalsHeard++;
      this.fail(owner, REFUSAL_REASONS[reason]!);
      this.dequeue(out, owner);
    }
    // Received (durable or not) leaves the window; the callback waits for durable.
    const now = ctx.now();
    out.askedAt = now;
    const got = Math.max(ackedUpTo, received ?? 0);
    for (const [seq, p] of out.pending) {
      if (seq > got) continue;
      out.pending.delete(seq);
      this.pendingTotal--;
      if (seq === p.owner.lastSeq && !p.owner.settled) out.writing.set(p.owner, { since: now, last: p });
    }
    for (const owner of out.writing.keys()) {
      if (owner.lastSeq > ackedUpTo) continue;
      out.writing.delete(owner);
      if (owner.settled) continue;
      owner.settled = true;
      owner.done?.({ ok: true, id: owner.id });
    }
    this.pump(out, origin.address);
  }

  /** Retries what is due, fails what can no longer be sent, and sends what the windows allow. */
  tick(now: number): void {
    for (const out of this.streams.values()) {
      if (out.pending.size === 0 && out.queue.length === 0 && out.writing.size === 0) continue;
      const m = this.shared.membership.get(out.to);
      const live = m !== undefined && isLive(m);
      for (const [owner, { since }] of out.writing) {
        const reason = !live ? 'gone' : now - since >= RELIABLE_UNICAST_TIMEOUT_MS ? 'timeout' : null;
        if (!reason) continue;
        out.writing.delete(owner);
        this.fail(owner, reason, false);
      }
      for (const p of out.pending.values()) {
        const reason = !live ? 'gone' : now - p.firstSent >= RELIABLE_UNICAST_TIMEOUT_MS ? 'timeout' : null;
        if (reason) {
          this.fail(p.owner, reason, false);
          this.abandon(out, p.owner);
        } else if (m && now - p.lastSent >= RELIABLE_UNICAST_RETRY_MS) {
          p.lastSent = now;
          this.send(out, p, m.address);
        }
      }
      if (live) {
        this.askDurable(out, now, m.address);
        this.pump(out, m.address);
      } else
        for (const q of [...out.queue]) {
          this.fail(q.owner, 'gone', false);
          this.abandon(out, q.owner);
        }
    }
  }

  /** Whether nothing waits to be sent, acked or written (else the lane ticks at its cadence). */
  quiet(): boolean {
    for (const out of this.streams.values())
      if (out.pending.size > 0 || out.queue.length > 0 || out.writing.size > 0) return false;
    return true;
  }

  /**
   * Numbers a message of `count` datagrams in the stream to `to` and checks it may be sent;
   * fails it (its callback deferred) when not.
   */
  private begin(
    to: PeerId,
    count: number,
    done: ((r: SendResult) => void) | undefined,
    full: (out: OutStream) => boolean,
  ):
    | { ok: true; out: OutStream; owner: OutMessage; lamport: number; address: Address }
    | { ok: false; owner: OutMessage } {
    const { ctx, epoch } = this.shared;
    // A restarted peer keeps our stream: its new process starts it afresh at the base we send.
    let out = this.streams.get(to);
    if (!out) {
      out = { to, nextSeq: 1, pending: new Map(), queue: [], writing: new Map(), askedAt: 0 };
      this.streams.set(to, out);
    }
    const seq = out.nextSeq;
    out.nextSeq += count;
    const lamport = this.shared.stamp();
    const owner: OutMessage = {
      id: { origin: ctx.self.id, epoch, seq, to, ...(this.wire === BULK ? { bulk: true as const } : {}) },
      lastSeq: seq + count - 1,
      done,
      settled: false,
    };
    const m = this.shared.membership.get(to);
    if (!m || !isLive(m)) {
      this.fail(owner, 'gone');
      return { ok: false, owner };
    }
    if (full(out) || this.pendingTotal >= RELIABLE_UNICAST_PENDING_TOTAL_MAX) {
      this.fail(owner, 'busy');
      return { ok: false, owner };
    }
    return { ok: true, out, owner, lamport, address: m.address };
  }

  /**
   * The receiver sends a durable ack once, when the write commits: lost, nothing would bring it
   * back before the timeout, although the message is stored. So, as retries do, a stream whose
   * messages wait for their writes and that heard no ack for RELIABLE_UNICAST_RETRY_MS sends the
   * newest one's last datagram again: a duplicate, which the receiver acks with where it stands.
   * Not while datagrams are pending: their retries bring the same cumulative ack.
   */
  private askDurable(out: OutStream, now: number, address: Address): void {
    if (out.writing.size === 0 || out.pending.size > 0 || now - out.askedAt < RELIABLE_UNICAST_RETRY_MS)
      return;
    let newest: Pending | undefined;
    for (const { last } of out.writing.values()) if (!newest || last.seq > newest.seq) newest = last;
    out.askedAt = now;
    this.send(out, newest!, address);
  }

  /** Runs a message's callback with a failure, once; from inside a call, at the next tick. */
  private fail(owner: OutMessage, reason: SendFailure, deferred = true): void {
    if (owner.settled) return;
    owner.settled = true;
    this.shared.stats.unicastFailed++;
    const done = owner.done;
    if (!done) return;
    const result: SendResult = { ok: false, id: owner.id, reason };
    if (deferred) this.shared.deferredResults.push(() => done(result));
    else done(result);
  }

  /** Gives up the rest of a message: what is pending or queued of it is never sent again. */
  private abandon(out: OutStream, owner: OutMessage): void {
    for (const [seq, p] of out.pending) {
      if (p.owner !== owner) continue;
      out.pending.delete(seq);
      this.pendingTotal--;
    }
    out.writing.delete(owner);
    this.dequeue(out, owner);
  }

  private dequeue(out: OutStream, owner: OutMessage): void {
    const i = out.queue.findIndex((q) => q.owner === owner);
    if (i < 0) return;
    this.queuedBytes -= out.queue[i]!.data.length;
    out.queue.splice(i, 1);
  }

  private ownerOf(out: OutStream, firstSeq: number): OutMessage | undefined {
    for (const p of out.pending.values()) if (p.owner.id.seq === firstSeq) return p.owner;
    return out.queue.find((q) => q.owner.id.seq === firstSeq)?.owner;
  }

  /** Sends the next fragments of queued messages while the stream's window has room. */
  private pump(out: OutStream, address: Address): void {
    while (out.pending.size < RELIABLE_UNICAST_WINDOW_MESSAGES) {
      const q = out.queue[0];
      if (!q || (q.next === 0 && this.small && !this.small.settledTo(out.to, q.after))) return;
      const i = q.next++;
      const [start, end] = q.split.range(i);
      const payload = Buffer.concat([q.split.header(i), q.data.subarray(start, end)]);
      this.sendPending(
        out,
        { seq: q.owner.id.seq + i, topic: q.topic, lamport: q.lamport, payload, owner: q.owner },
        address,
      );
      if (q.next === q.split.count) {
        out.queue.shift();
        this.queuedBytes -= q.data.length;
      }
    }
  }

  private sendPending(out: OutStream, p: Omit<Pending, 'firstSent' | 'lastSent'>, address: Address): void {
    const now = this.shared.ctx.now();
    const pending: Pending = { ...p, firstSent: now, lastSent: now };
    out.pending.set(p.seq, pending);
    this.pendingTotal++;
    this.send(out, pending, address);
  }

  private send(out: OutStream, p: Pending, address: Address): void {
    // The base: the oldest sequence not given up, sent or still queued.
    let base = out.nextSeq;
    for (const seq of out.pending.keys()) base = Math.min(base, seq);
    const q = out.queue[0];
    if (q) base = Math.min(base, q.owner.id.seq + q.next);
    const one = new Packer(this.room, (topics, attachment) =>
      this.shared.ctx.send(
        address,
        ...this.wire.UNICAST.out({ epoch: this.shared.epoch, to: out.to, base, topics }),
        attachment,
      ),
    );
    one.addBytes(p.seq, p.lamport, p.topic, p.payload.length, p.payload, 0);
    one.flush();
  }
}

export class UnicastReceiver<M extends Sequenced> {
  private readonly streams = new Map<PeerId, InStream<M>>();

  constructor(
    private readonly shared: Shared,
    private readonly wire: LaneWire,
    private readonly sink: StreamSink<M>,
  ) {}

  /** `messages`: those of the datagram's attachment (one: its decoder takes no more). */
  onMessage({ epoch, to, base }: UnicastBody, origin: Origin, messages: M[]): void {
    const { ctx, stats } = this.shared;
    const { id: sender, address: from } = origin;
    if (to !== ctx.self.id) return; // meant for a previous owner of this address
    const [message] = messages;
    if (!message || !this.shared.stampedBefore(origin, message)) return;
    let u = this.streams.get(sender);
    if (u && epoch < u.epoch) return;
    // As for multicast streams (receiver.ts): one stream, one address, unless membership places
    // the sender at the new one (then an impostor opened the stream we hold, and it starts afresh).
    if (u && epoch === u.epoch && from !== u.ackTo && !this.shared.fromMember(sender, from)) return;
    const fresh = !u || epoch > u.epoch || from !== u.ackTo;
    if (fresh && !this.shared.epochPlausible(origin, epoch)) return;
    // The base and the message's sequence, from where the stream stands (or starts: at the base).
    const at = u && !fresh ? u.next : Math.max(base, 1);
    if (!this.shared.seqAdoptable(at, base) || !this.shared.seqAdoptable(Math.max(at, base), message.seq))
      return;
    if (!u || fresh) {
      if (!u && this.streams.size >= RELIABLE_STREAMS_MAX) {
        // Forget the oldest stream; a sender coming back starts afresh at its base.
        const [first] = this.streams.keys();
        if (first) this.drop(first);
      }
      if (u) this.drop(sender);
      const opened: InStream<M> = {
        ref: { from: sender, fromName: origin.name, epoch, to: ctx.self.id },
        from: sender,
        epoch,
        next: Math.max(base, 1),
        held: new Map(),
        writes: new PendingWrites(stats, () => (opened.ackDue = true)),
        ackTo: from,
        ackDue: false,
      };
      u = opened;
      this.streams.set(sender, u);
    }
    if (base > u.next) {
      // The sender gave up on these (its caller was told); say so here too. As in the multicast
      // receiver's skipTo, the work is in the held messages, not in the length of the run.
      const lostFrom = u.next;
      let delivered = 0;
      for (const seq of heldBelow(u.held, base)) {
        const held = u.held.get(seq)!;
        u.held.delete(seq);
        this.shared.heldTotal--;
        delivered++;
        this.deliver(held, u);
      }
      u.next = base;
      const count = base - lostFrom - delivered;
      if (count > 0) this.sink.lost(u.ref, lostFrom, base - 1, 'abandoned', count);
    }
    const seq = message.seq;
    if (seq < u.next || u.held.has(seq)) stats.duplicates++;
    else if (seq === u.next) {
      // Not taken yet (fragments.ts): not acked, so the sender sends it again.
      for (let next: M | undefined = message; next; next = u.held.get(u.next)) {
        if (next !== message) {
          u.held.delete(u.next);
          this.shared.heldTotal--;
        }
        if (!this.sink.takes(u.ref, next)) {
          stats.fragmentsLeft++;
          break;
        }
        u.next++;
        this.deliver(next, u);
      }
    } else if (seq - u.next <= RELIABLE_UNICAST_PENDING_MAX && this.shared.mayHold()) {
      u.held.set(seq, message);
      this.shared.heldTotal++;
    }
    this.sendAck(u, from);
  }

  /** Whether no write is pending and no ack due (else the lane ticks at its cadence). */
  quiet(): boolean {
    for (const u of this.streams.values()) if (u.ackDue || u.writes.pending > 0) return false;
    return true;
  }

  /** Sends the acks that durable writes made due since the last tick. */
  tick(): void {
    for (const u of this.streams.values()) {
      if (!u.ackDue) continue;
      u.ackDue = false;
      this.sendAck(u, u.ackTo);
    }
  }

  private sendAck(u: InStream<M>, to: Address): void {
    const ackedUpTo = u.writes.ackable(u.next);
    // What was received, while few writes wait (durable.ts): the sender's window moves on it.
    const received =
      u.writes.pending <= RELIABLE_WRITES_AHEAD_MAX && u.next - 1 > ackedUpTo ? u.next - 1 : undefined;
    const ack = { epoch: u.epoch, ackedUpTo, refused: this.sink.refused(u.ref), received };
    this.shared.ctx.send(to, ...this.wire.UNICAST_ACK.out(ack));
  }

  private drop(from: PeerId): void {
    const u = this.streams.get(from);
    if (!u) return;
    this.shared.heldTotal -= u.held.size;
    this.streams.delete(from);
    this.sink.closed(u.ref, 'sender-restarted');
  }

  private deliver(message: M, u: InStream<M>): void {
    const writes = this.sink.deliver(u.ref, message);
    if (writes) u.writes.hold(message.seq, writes);
  }
}
