/**
 * The multicast receiver: one stream per sender, delivered in sequence order, gaps NACKed,
 * acks sent, and what cannot be repaired reported as lost.
 *
 * - Streams. Each sender numbers its messages 1, 2, 3 ... in one stream keyed by (sender id,
 *   epoch). The epoch is the sender's incarnation when its module was built and never changes
 *   for the life of the process (the incarnation also rises on refutation, the stream must not).
 *   A restart gives a higher incarnation, hence a new stream.
 * - Receivers deliver in sequence order per stream and hold out-of-order messages (bounded
 *   window). A gap older than RELIABLE_NACK_DELAY_MS is asked for by a unicast `rm.nak` listing
 *   the missing ranges, again every RELIABLE_NACK_INTERVAL_MS while it lasts. The bulk lane, whose
 *   window waits for its oldest gap, asks sooner: as data arrives, every
 *   RELIABLE_BULK_NACK_INTERVAL_MS, several NACKs a round, new gaps first (RELIABLE_BULK_RENACK_MS).
 * - Receivers send cumulative acks (`rm.ack`: "I hold everything from f to a") at most once per
 *   tick, and at once whenever RELIABLE_ACK_EVERY_MESSAGES more can be acked, so a fast sender's
 *   window moves faster than the tick (window / tick would cap its rate). An ack waits for the
 *   handlers' durable writes (durable.ts).
 * - Joining. A receiver that meets a stream for the first time starts at the join point `jp`
 *   carried by every data and announce message (sender.ts). So a member that was there before a
 *   message was published gets it even if the first datagrams it heard came later.
 * - Loss. A receiver that saw a gap, or heard a higher sequence announced, reports the missing
 *   count as lost once membership declares the sender dead or left (or after
 *   RELIABLE_GAP_TIMEOUT_MS without repair), or when the sender says it can no longer repair
 *   (`rm.gone`). Repair comes only from the original sender, never from other receivers.
 * - Forged numbers. A stream is taken only from one address, its sender's; its epoch is bounded by
 *   its sender's incarnation, and a sequence further than RELIABLE_SEQ_STEP_MAX ahead of where it
 *   stands is refused (shared.ts). Skipping a gap reports the missing run as one range whatever
 *   its length.
 */
import { COUNTER_MAX } from '../bounds.js';
import type { PeerId } from '../wire.js';
import type { Origin } from '../kit/message.js';
import type { Address } from '../transport/transport.js';
import { isLive, type LostReason } from './delivery.js';
import { PendingWrites } from './durable.js';
import type { StreamRef } from './fragments.js';
import {
  RELIABLE_ACK_EVERY_MESSAGES,
  RELIABLE_BULK_RENACK_MS,
  RELIABLE_CLOSED_RETENTION_MS,
  RELIABLE_GAP_TIMEOUT_MS,
  RELIABLE_NACK_DELAY_MS,
  RELIABLE_NACK_INTERVAL_MS,
  RELIABLE_NACK_MESSAGES_MAX,
  RELIABLE_NACK_RANGES_MAX,
  RELIABLE_RECEIVE_WINDOW_MESSAGES_MAX,
  RELIABLE_SEQ_STEP_MAX,
  RELIABLE_STREAMS_MAX,
  RELIABLE_WRITES_AHEAD_MAX,
} from './limits.js';
import {
  RESTARTED_LO,
  type AnnounceBody,
  type DataBody,
  type GoneBody,
  type LaneWire,
  type SeqRange,
} from './messages.js';
import { heldBelow, type Shared } from './shared.js';
import type { Sequenced, StreamSink } from './sink.js';

/** One sender's multicast stream, as this receiver follows it. */
interface InStream<M> {
  ref: StreamRef;
  from: PeerId;
  epoch: number;
  address: Address;
  /** Where we joined the stream. */
  start: number;
  /** Next sequence to deliver. */
  next: number;
  /** Highest sequence known to exist. */
  highest: number;
  held: Map<number, M>;
  gapSince: number | null;
  lastNack: number;
  /** When a NACK last asked from the stream's next position, and the last sequence NACKs asked for since. */
  lastFullNack: number;
  nackedThrough: number;
  ackedSent: number;
  /** What the last ack said was received (durable.ts: flow control does not wait for the disk). */
  receivedSent: number;
  ackDue: boolean;
  closedAt: number | null;
  /** Delivered messages whose handlers' writes have not committed yet. */
  writes: PendingWrites;
}

/** How a lane's receiver acks and NACKs (the bulk lane's differ from the small lane's defaults). */
export interface ReceiverTuning {
  /** Ack at once when this many more messages can be acked (the bulk lane's window needs more). */
  ackEvery: number;
  /**
   * NACK as data arrives, every this many ms while a gap lasts, not only on the tick (null): the
   * bulk lane's window waits for the oldest gap, so the tick's pace would set the transfer's.
   */
  nackEagerMs: number | null;
  /** NACKs sent at once when more gaps remain than one lists (see nack()). */
  nacksPerRound: number;
}

const SMALL_LANE_TUNING: ReceiverTuning = {
  ackEvery: RELIABLE_ACK_EVERY_MESSAGES,
  nackEagerMs: null,
  nacksPerRound: 1,
};

export class MulticastReceiver<M extends Sequenced> {
  private readonly streams = new Map<PeerId, InStream<M>>();

  constructor(
    private readonly shared: Shared,
    private readonly wire: LaneWire,
    private readonly sink: StreamSink<M>,
    private readonly tuning: ReceiverTuning = SMALL_LANE_TUNING,
  ) {}

  get streamCount(): number {
    return this.streams.size;
  }

  /** `messages`: those of the datagram's attachment. */
  onData({ epoch, joinPoint }: DataBody, origin: Origin, messages: M[]): void {
    const newest = messages[messages.length - 1];
    if (!newest || !this.shared.stampedBefore(origin, newest)) return;
    const s = this.stream(origin, epoch, joinPoint, newest.seq);
    if (s) this.take(s, messages);
  }

  /**
   * A message of a stream that is already open, from a frame (wire.ts: no envelope, from a live
   * member at its address, as the node checked): taken only in the stream's epoch, from the
   * stream's address, within the sequence bound; it opens, reopens or moves nothing else.
   */
  onFramed(sender: PeerId, from: Address, epoch: number, message: M): void {
    const s = this.streams.get(sender);
    if (!s || s.epoch !== epoch || s.closedAt !== null) return;
    if (from !== s.address) {
      this.shared.ctx.refuse('address');
      return;
    }
    if (this.shared.seqAdoptable(s.next, message.seq)) this.take(s, [message]);
  }

  /** Delivers, holds or drops each message of a stream (in sequence order within `messages`). */
  private take(s: InStream<M>, messages: M[]): void {
    const { stats } = this.shared;
    for (const message of messages) {
      const seq = message.seq;
      if (seq > s.highest) s.highest = seq;
      if (seq < s.next || s.held.has(seq)) {
        stats.duplicates++;
        s.ackDue = true;
        continue;
      }
      if (seq === s.next) {
        if (this.sink.takes(s.ref, message)) this.deliver(s, message);
        else stats.fragmentsLeft++; // a gap now: NACKed, and asked again when repaired
        continue;
      }
      if (seq - s.next > RELIABLE_RECEIVE_WINDOW_MESSAGES_MAX || !this.shared.mayHold()) {
        stats.droppedOutOfWindow++; // NACKed again once the window moves
        continue;
      }
      s.held.set(seq, message);
      this.shared.heldTotal++;
    }
    this.drain(s);
    if (s.highest >= s.next) {
      this.noteGap(s);
      const now = this.shared.ctx.now();
      if (
        this.tuning.nackEagerMs !== null &&
        now - s.gapSince! >= RELIABLE_NACK_DELAY_MS &&
        now - s.lastNack >= this.tuning.nackEagerMs
      )
        // Only gaps past those asked for lately: their repairs may be on their way.
        this.nack(s, now, now - s.lastFullNack < RELIABLE_BULK_RENACK_MS ? s.nackedThrough + 1 : s.next);
    }
    const upTo = s.writes.ackable(s.next);
    if (Math.max(upTo, this.receivable(s)) - Math.max(s.ackedSent, s.receivedSent) >= this.tuning.ackEvery)
      this.sendAck(s, upTo);
  }

  /** What an ack may say was received: all delivered, while few writes wait (durable.ts). */
  private receivable(s: InStream<M>): number {
    return s.writes.pending <= RELIABLE_WRITES_AHEAD_MAX ? s.next - 1 : s.receivedSent;
  }

  onAnnounce({ epoch, highest, joinPoint }: AnnounceBody, origin: Origin): void {
    const s = this.stream(origin, epoch, joinPoint, highest);
    if (!s) return;
    if (highest > s.highest) s.highest = highest;
    if (s.highest >= s.next) this.noteGap(s);
    else s.ackDue = true; // we are up to date: the sender lacks our ack
  }

  onGone({ epoch, oldestKept }: GoneBody, origin: Origin): void {
    const s = this.streams.get(origin.id);
    if (!s || s.epoch !== epoch || s.closedAt !== null) return;
    if (origin.address !== s.address) {
      this.shared.ctx.refuse('address'); // see stream()
      return;
    }
    if (oldestKept === RESTARTED_LO) this.close(s, 'sender-restarted');
    else {
      this.skipTo(s, Math.min(oldestKept, s.highest + 1), 'evicted');
      this.drain(s);
    }
  }

  tick(now: number): void {
    for (const s of this.streams.values()) this.tickStream(s, now);
  }

  /**
   * When a tick next has something to do for these streams, while none has a gap, a write
   * pending or an ack to send (null otherwise: the lane ticks at its cadence): a closed stream's
   * end of retention.
   */
  quietUntil(): number | null {
    let at = Infinity;
    for (const s of this.streams.values()) {
      if (s.closedAt !== null) at = Math.min(at, s.closedAt + RELIABLE_CLOSED_RETENTION_MS);
      else if (
        s.gapSince !== null ||
        s.ackDue ||
        s.writes.pending > 0 ||
        s.writes.ackable(s.next) > s.ackedSent ||
        this.receivable(s) > s.receivedSent
      )
        return null;
    }
    return at;
  }

  /**
   * The stream of this envelope's sender, created (at the join point) or replaced (restart);
   * null, changing nothing, when the message must be dropped: from an older epoch, from another
   * address than the stream's, or carrying an epoch or a sequence (`highest`, the highest it
   * shows) past its bound.
   */
  private stream(origin: Origin, epoch: number, joinPoint: number, highest: number): InStream<M> | null {
    const { ctx, membership } = this.shared;
    const { id, address: from } = origin;
    const s = this.streams.get(id);
    if (s && epoch < s.epoch) return null; // from before the sender restarted
    let impostor = false;
    if (s && epoch === s.epoch) {
      if (from === s.address) return this.resume(s, id, joinPoint, highest);
      // A process sends everything from one address (udp.ts) and a stream lives as long as its
      // process, so the same stream from another address is an impostor's: unless membership
      // places the sender there, and then it was the stream we hold that an impostor opened.
      if (membership.get(id)?.address !== from) {
        ctx.refuse('address');
        return null;
      }
      impostor = true;
    }
    // A stream is opened only from where membership places its sender, when it knows it.
    const m = membership.get(id);
    if (m && m.address !== from) {
      ctx.refuse('address');
      return null;
    }
    if (!this.shared.epochPlausible(origin, epoch)) return null;
    // A new stream starts at the join point: nothing of ours to measure it from but the range.
    if (joinPoint > COUNTER_MAX) {
      ctx.refuse('seq');
      return null;
    }
    if (!this.shared.seqAdoptable(Math.max(joinPoint, 1), highest)) return null;
    if (s && impostor)
      this.shared.heldTotal -= s.held.size; // nothing of it was the sender's to report
    else if (s) this.close(s, 'sender-restarted'); // a new epoch: the old stream cannot be repaired
    if (!s && this.streams.size >= RELIABLE_STREAMS_MAX && !this.evictStream()) {
      this.shared.stats.streamsRefused++;
      return null;
    }
    const start = Math.max(joinPoint, 1);
    const opened: InStream<M> = {
      ref: { from: id, fromName: origin.name, epoch, to: null },
      from: id,
      epoch,
      address: from,
      start,
      next: start,
      highest: start - 1,
      held: new Map(),
      gapSince: null,
      lastNack: -Infinity,
      lastFullNack: -Infinity,
      nackedThrough: 0,
      ackedSent: start - 1,
      receivedSent: start - 1,
      ackDue: true,
      closedAt: null,
      writes: new PendingWrites(this.shared.stats, () => (opened.ackDue = true)),
    };
    this.streams.set(id, opened);
    return opened;
  }

  /** `s` for a message of its sender from its address, or null when the message must be dropped (see stream()). */
  private resume(s: InStream<M>, sender: PeerId, joinPoint: number, highest: number): InStream<M> | null {
    let rejoin = false;
    if (s.closedAt !== null) {
      // Declared dead, yet here it is (a healed partition, a false death): same process, same
      // stream. What we skipped was reported lost; what it sends from now on is repairable. If
      // it got further ahead than the step meanwhile, we rejoin at its join point: membership
      // vouches for it being back, and what lies before was never ours to repair.
      const m = this.shared.membership.get(sender);
      if (!m || !isLive(m)) return null;
      rejoin = joinPoint - s.next > RELIABLE_SEQ_STEP_MAX && joinPoint <= COUNTER_MAX;
    }
    if (!this.shared.seqAdoptable(rejoin ? joinPoint : s.next, highest)) return null;
    if (s.closedAt !== null) {
      s.closedAt = null;
      if (rejoin) this.skipTo(s, joinPoint, 'sender-gone');
    }
    return s;
  }

  /**
   * Makes room for a new stream: forgets the oldest closed one or, failing that, the oldest open
   * one whose sender membership does not know. Made-up sender ids never close (nobody declares
   * them dead), so without the second a flood of them would lock every new sender out for good;
   * a real sender is known within a heartbeat, and one forgotten before that rejoins at its join
   * point.
   */
  private evictStream(): boolean {
    let oldest: InStream<M> | undefined;
    for (const s of this.streams.values())
      if (s.closedAt !== null && (!oldest || s.closedAt < (oldest.closedAt ?? 0))) oldest = s;
    if (!oldest)
      for (const s of this.streams.values())
        if (!this.shared.membership.get(s.from)) {
          oldest = s;
          break;
        }
    if (!oldest) return false;
    this.shared.heldTotal -= oldest.held.size;
    this.streams.delete(oldest.from);
    return true;
  }

  private sendAck(s: InStream<M>, upTo: number): void {
    s.ackedSent = upTo;
    s.receivedSent = Math.max(s.receivedSent, this.receivable(s));
    s.ackDue = false;
    const refused = this.sink.refused(s.ref);
    const received = s.receivedSent > upTo ? s.receivedSent : undefined;
    this.shared.ctx.send(
      s.address,
      ...this.wire.ACK.out({ epoch: s.epoch, joinedAt: s.start, ackedUpTo: upTo, refused, received }),
    );
  }

  private noteGap(s: InStream<M>): void {
    if (s.gapSince === null) s.gapSince = this.shared.ctx.now();
  }

  /** Delivers held messages that have become next in line, until one the sink does not take yet. */
  private drain(s: InStream<M>): void {
    for (;;) {
      const message = s.held.get(s.next);
      if (!message) break;
      s.held.delete(s.next);
      this.shared.heldTotal--;
      if (!this.sink.takes(s.ref, message)) {
        this.shared.stats.fragmentsLeft++;
        break;
      }
      this.deliver(s, message);
    }
    if (s.next > s.highest) s.gapSince = null;
  }

  /**
   * Gives up on everything below `to`: held messages are delivered, each missing run between them
   * reported lost as one range. The work is in the held messages (bounded), never in the length
   * of the runs, which a sender's number sets.
   */
  private skipTo(s: InStream<M>, to: number, reason: LostReason): void {
    for (const seq of heldBelow(s.held, to)) {
      if (seq > s.next) this.sink.lost(s.ref, s.next, seq - 1, reason);
      const message = s.held.get(seq)!;
      s.held.delete(seq);
      this.shared.heldTotal--;
      this.deliver(s, message);
    }
    if (to > s.next) {
      this.sink.lost(s.ref, s.next, to - 1, reason);
      s.next = to;
    }
    if (s.highest < s.next - 1) s.highest = s.next - 1;
    if (s.next > s.highest) s.gapSince = null;
    s.ackDue = true;
  }

  private close(s: InStream<M>, reason: LostReason): void {
    this.skipTo(s, s.highest + 1, reason);
    this.shared.heldTotal -= s.held.size;
    s.held.clear();
    s.closedAt = this.shared.ctx.now();
    this.sink.closed(s.ref, reason);
  }

  private tickStream(s: InStream<M>, now: number): void {
    if (s.closedAt !== null) {
      if (now - s.closedAt > RELIABLE_CLOSED_RETENTION_MS) this.streams.delete(s.from);
      return;
    }
    const m = this.shared.membership.get(s.from);
    if (m && (m.state === 'dead' || m.state === 'left')) {
      this.close(s, 'sender-gone');
      return;
    }
    if (s.gapSince !== null) {
      if (now - s.gapSince > RELIABLE_GAP_TIMEOUT_MS) {
        this.skipTo(s, s.highest + 1, 'timeout');
      } else if (
        now - s.gapSince >= RELIABLE_NACK_DELAY_MS &&
        now - s.lastNack >= RELIABLE_NACK_INTERVAL_MS
      ) {
        this.nack(s, now);
      }
    }
    const upTo = s.writes.ackable(s.next);
    if (upTo > s.ackedSent || this.receivable(s) > s.receivedSent || s.ackDue) this.sendAck(s, upTo);
  }

  /**
   * Asks for the missing messages: one NACK of up to RELIABLE_NACK_RANGES_MAX ranges, or, in the
   * bulk lane, up to `nacksPerRound` of them one after the other (random loss over a window of
   * thousands of fragments leaves hundreds of gaps, and its window waits for them).
   */
  private nack(s: InStream<M>, now: number, from = s.next): void {
    const last = Math.min(s.highest, s.next + RELIABLE_RECEIVE_WINDOW_MESSAGES_MAX);
    let seq = Math.max(from, s.next);
    if (seq === s.next) s.lastFullNack = now;
    for (let round = 0; round < this.tuning.nacksPerRound && seq <= last; round++) {
      const missing: SeqRange[] = [];
      let asked = 0;
      while (seq <= last && missing.length < RELIABLE_NACK_RANGES_MAX && asked < RELIABLE_NACK_MESSAGES_MAX) {
        if (s.held.has(seq)) {
          seq++;
          continue;
        }
        const first = seq;
        while (seq <= last && !s.held.has(seq) && asked < RELIABLE_NACK_MESSAGES_MAX) {
          seq++;
          asked++;
        }
        missing.push([first, seq - 1]);
      }
      if (missing.length === 0) return;
      s.lastNack = now;
      s.nackedThrough = seq - 1;
      this.shared.stats.nacksSent++;
      this.shared.ctx.send(s.address, ...this.wire.NACK.out({ epoch: s.epoch, missing }));
    }
  }

  /** Delivers the next message of a stream; the position moves first, so a throwing handler cannot cause a redelivery. */
  private deliver(s: InStream<M>, message: M): void {
    const seq = message.seq;
    s.next = seq + 1;
    const writes = this.sink.deliver(s.ref, message);
    if (writes) s.writes.hold(seq, writes);
  }
}
