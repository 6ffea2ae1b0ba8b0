/**
 * Reliable unicast, both directions. sendTo() unicasts to one peer in its own per-destination
 * stream (`rm.u`, FIFO, acked by `rm.ua`), retried every RELIABLE_UNICAST_RETRY_MS until acked,
 * the peer is gone, or RELIABLE_UNICAST_TIMEOUT_MS passes; its callback says which. Each datagram
 * carries one message and the stream's base (its oldest unacked sequence): what lies below the
 * base the sender gave up on, and the receiver reports it as lost ('abandoned').
 *
 * As for multicast streams (receiver.ts): a stream is taken from one address, its epoch is
 * bounded by its sender's incarnation, and its numbers by RELIABLE_SEQ_STEP_MAX; acks are taken
 * only from the member's address and never past what was sent. Queues are bounded per
 * destination and in total; the acks wait for durable writes (durable.ts).
 */
import type { PeerId } from '../wire.js';
import type { Origin } from '../kit/message.js';
import type { Address } from '../transport/transport.js';
import { isLive, StreamMessage, type MessageId, type SendResult } from './delivery.js';
import type { DatagramRoom } from './datagram.js';
import { PendingWrites } from './durable.js';
import type { Handlers } from './handlers.js';
import {
  RELIABLE_STREAMS_MAX,
  RELIABLE_UNICAST_PENDING_MAX,
  RELIABLE_UNICAST_PENDING_TOTAL_MAX,
  RELIABLE_UNICAST_RETRY_MS,
  RELIABLE_UNICAST_TIMEOUT_MS,
} from './limits.js';
import { UNICAST, UNICAST_ACK, type UnicastAckBody, type UnicastBody } from './messages.js';
import { Packer } from './packer.js';
import { heldBelow, type Shared } from './shared.js';

/** A message sent and not acked yet. */
interface Pending {
  message: StreamMessage;
  firstSent: number;
  lastSent: number;
  done?: (r: SendResult) => void;
}

/** Our stream to one destination. */
interface OutStream {
  to: PeerId;
  nextSeq: number;
  pending: Map<number, Pending>;
}

/** One sender's stream to us. */
interface InStream {
  from: PeerId;
  epoch: number;
  next: number;
  held: Map<number, StreamMessage>;
  /** Delivered messages whose handlers' writes have not committed yet. */
  writes: PendingWrites;
  /** The sender's address: where acks go, and the one address its messages are taken from. */
  ackTo: Address;
  ackDue: boolean;
}

export class UnicastSender {
  private readonly streams = new Map<PeerId, OutStream>();
  /** Messages pending over all destinations. */
  pendingTotal = 0;

  constructor(
    private readonly shared: Shared,
    private readonly room: DatagramRoom,
  ) {}

  /**
   * Sends a message (of `bytes` payload bytes, already checked) to one peer, acknowledged and
   * retried. `done` runs exactly once (never from inside this call): ok when acked, or the reason
   * it failed.
   */
  sendTo(
    to: PeerId,
    topic: string,
    payload: string,
    bytes: number,
    done?: (r: SendResult) => void,
  ): MessageId {
    const { ctx, stats, epoch } = this.shared;
    const m = this.shared.membership.get(to);
    // A restarted peer keeps our stream: its new process starts it afresh at the base we send.
    let out = this.streams.get(to);
    if (!out) {
      out = { to, nextSeq: 1, pending: new Map() };
      this.streams.set(to, out);
    }
    const seq = out.nextSeq++;
    const lamport = this.shared.stamp();
    const id: MessageId = { origin: ctx.self.id, epoch, seq, to };
    const fail = (reason: 'gone' | 'busy') => {
      stats.unicastFailed++;
      if (done) this.shared.deferredResults.push(() => done({ ok: false, id, reason }));
    };
    if (!m || !isLive(m)) {
      fail('gone');
      return id;
    }
    if (
      out.pending.size >= RELIABLE_UNICAST_PENDING_MAX ||
      this.pendingTotal >= RELIABLE_UNICAST_PENDING_TOTAL_MAX
    ) {
      fail('busy');
      return id;
    }
    const now = ctx.now();
    const p: Pending = {
      message: new StreamMessage(seq, topic, payload, lamport, bytes),
      firstSent: now,
      lastSent: now,
      done,
    };
    out.pending.set(seq, p);
    this.pendingTotal++;
    this.send(out, p.message, m.address);
    return id;
  }

  onAck({ epoch, ackedUpTo }: UnicastAckBody, origin: Origin): void {
    const { ctx } = this.shared;
    const out = this.streams.get(origin.id);
    if (!out || epoch !== this.shared.epoch || !this.shared.fromMember(origin.id, origin.address)) return;
    if (ackedUpTo >= out.nextSeq) {
      ctx.refuse('seq'); // an ack of messages we never sent
      return;
    }
    for (const [seq, p] of out.pending) {
      if (seq > ackedUpTo) continue;
      out.pending.delete(seq);
      this.pendingTotal--;
      const done = p.done;
      if (done) done({ ok: true, id: { origin: ctx.self.id, epoch: this.shared.epoch, seq, to: out.to } });
    }
  }

  /** Retries what is due and fails what can no longer be sent. */
  tick(now: number): void {
    const { ctx, stats, epoch } = this.shared;
    for (const out of this.streams.values()) {
      if (out.pending.size === 0) continue;
      const m = this.shared.membership.get(out.to);
      for (const [seq, p] of out.pending) {
        const reason =
          !m || !isLive(m) ? 'gone' : now - p.firstSent >= RELIABLE_UNICAST_TIMEOUT_MS ? 'timeout' : null;
        if (reason) {
          out.pending.delete(seq);
          this.pendingTotal--;
          stats.unicastFailed++;
          p.done?.({ ok: false, id: { origin: ctx.self.id, epoch, seq, to: out.to }, reason });
        } else if (m && now - p.lastSent >= RELIABLE_UNICAST_RETRY_MS) {
          p.lastSent = now;
          this.send(out, p.message, m.address);
        }
      }
    }
  }

  private send(out: OutStream, message: StreamMessage, address: Address): void {
    let base = out.nextSeq;
    for (const seq of out.pending.keys()) base = Math.min(base, seq);
    const one = new Packer(this.room, (topics, attachment) =>
      this.shared.ctx.send(
        address,
        ...UNICAST.out({ epoch: this.shared.epoch, to: out.to, base, topics }),
        attachment,
      ),
    );
    one.add(message);
    one.flush();
  }
}

export class UnicastReceiver {
  private readonly streams = new Map<PeerId, InStream>();

  constructor(
    private readonly shared: Shared,
    private readonly handlers: Handlers,
  ) {}

  /** `messages`: those of the datagram's attachment (one: its decoder takes no more). */
  onMessage({ epoch, to, base }: UnicastBody, origin: Origin, messages: StreamMessage[]): void {
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
      const opened: InStream = {
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
        this.deliver(origin, held, u);
      }
      u.next = base;
      const count = base - lostFrom - delivered;
      if (count > 0)
        this.handlers.reportLost(sender, origin.name, epoch, lostFrom, base - 1, 'abandoned', true, count);
    }
    const seq = message.seq;
    if (seq < u.next || u.held.has(seq)) stats.duplicates++;
    else if (seq === u.next) {
      u.next++;
      this.deliver(origin, message, u);
      for (let held = u.held.get(u.next); held; held = u.held.get(u.next)) {
        u.held.delete(u.next);
        this.shared.heldTotal--;
        u.next++;
        this.deliver(origin, held, u);
      }
    } else if (seq - u.next <= RELIABLE_UNICAST_PENDING_MAX && this.shared.mayHold()) {
      u.held.set(seq, message);
      this.shared.heldTotal++;
    }
    ctx.send(from, ...UNICAST_ACK.out({ epoch, ackedUpTo: u.writes.ackable(u.next) }));
  }

  /** Sends the acks that durable writes made due since the last tick. */
  tick(): void {
    for (const u of this.streams.values()) {
      if (!u.ackDue) continue;
      u.ackDue = false;
      this.shared.ctx.send(
        u.ackTo,
        ...UNICAST_ACK.out({ epoch: u.epoch, ackedUpTo: u.writes.ackable(u.next) }),
      );
    }
  }

  private drop(from: PeerId): void {
    const u = this.streams.get(from);
    if (!u) return;
    this.shared.heldTotal -= u.held.size;
    this.streams.delete(from);
  }

  private deliver(origin: Origin, message: StreamMessage, u: InStream): void {
    message.from = origin.id;
    message.fromName = origin.name;
    message.epoch = u.epoch;
    message.to = this.shared.ctx.self.id;
    const writes = this.handlers.dispatch(message);
    if (writes) u.writes.hold(message.seq, writes);
  }
}
