/**
 * The multicast sender: numbers our messages in one stream, packs them into datagrams, keeps the
 * newest for repair, answers NACKs, announces its highest sequence, and tells callers when every
 * member has acked.
 *
 * - Lamport times. Each message is stamped with its own time when it is published (ctx.stamp(),
 *   one clock tick per message), so a burst packed into one datagram keeps its order in Lamport
 *   time too. Every message's time is below its datagram's envelope time (the node ticks again to
 *   send the datagram, and repairs and retries are sent later still), and a datagram carrying a
 *   message at or above it is refused and counted as 'lamport': so merging the envelope's time,
 *   which the node bounds, also merges every message's, and a forged message time cannot reach
 *   further than a forged envelope time could.
 * - Repair. The sender repairs by unicast from a bounded buffer of its last messages
 *   (send-buffer.ts), at a bounded rate (token bucket). What left the buffer is answered with
 *   `rm.gone {lo}`: the receiver then reports the missing messages below lo as lost and moves on.
 *   It repairs only what it sent, once and in order, whatever ranges a NACK lists.
 * - Announcing. While a tracked receiver lags, the sender multicasts `rm.hi` every
 *   RELIABLE_ANNOUNCE_MS, and every RELIABLE_IDLE_ANNOUNCE_MS anyway, so a lost tail message is
 *   detected as a gap, and a lost ack is sent again; once every tracked receiver has acked the
 *   newest, that period doubles at each announce up to RELIABLE_IDLE_ANNOUNCE_MAX_MS. A multicast data datagram counts as an
 *   announcement (it shows the newest sequence and the join point too), so a sender that keeps
 *   sending announces nothing: its next datagram reveals a gap, and announcing on top of it only
 *   cost every member a receive.
 * - Join point. Every data and announce message carries `jp`: the lowest position a receiver the
 *   sender tracks still needs (or the start of the buffer when it tracks none), where a receiver
 *   meeting the stream for the first time starts.
 * - Acks for callers: publish() can take a callback that runs once every member that was live
 *   (and in the audience) when the message was published has acked it or is gone. Acks are taken
 *   only from the member's address and never past what we sent.
 */
import type { PeerId } from '../wire.js';
import type { MemberView } from '../protocol.js';
import type { Address } from '../transport/transport.js';
import type { AckStatus, MessageId } from './delivery.js';
import type { DatagramRoom } from './datagram.js';
import type { Window } from './flow.js';
import {
  CONTINUATION,
  FRAGMENT_FRAME,
  framePrefix,
  REFUSAL_REASONS,
  type RefusalReason,
} from './fragments.js';
import {
  RELIABLE_ANNOUNCE_MS,
  RELIABLE_IDLE_ANNOUNCE_MAX_MS,
  RELIABLE_IDLE_ANNOUNCE_MS,
  RELIABLE_OBSERVER_HEARD_MS,
  RELIABLE_NACK_MESSAGES_MAX,
  RELIABLE_SILENT_RECEIVER_MS,
  RELIABLE_UNREACHED_WAIT_MS,
  RELIABLE_WAITERS_MAX,
} from './limits.js';
import { RESTARTED_LO, type AckBody, type LaneWire, type NackBody } from './messages.js';
import { Packer } from './packer.js';
import { SendBuffer } from './send-buffer.js';
import type { Shared } from './shared.js';

const MS_PER_S = 1000;

/** A member we expect to ack our stream. */
interface Receiver {
  id: PeerId;
  /** Highest sequence known acked (or assumed: what was published before we tracked it). */
  acked: number;
  /** Highest sequence it said it received, durable or not (durable.ts): what flow control waits for. */
  received: number;
  /**
   * Since when it owes us an ack (null: we published nothing since we tracked it, or our group
   * sends do not reach it yet: reached()). Silence is counted from here, not from when it was
   * tracked: a member has nothing to ack while we publish nothing or send it nothing, and a quiet
   * spell must not make it one we stop waiting for (see waitedFor()).
   */
  owedSince: number | null;
  trackedAt: number;
  heard: boolean;
}

/** A publish() callback waiting for the acks of its message (keyed by its first sequence). */
interface Waiter {
  id: MessageId;
  /** The message's last sequence (a large message's last fragment). */
  lastSeq: number;
  required: Set<PeerId>;
  acked: Set<PeerId>;
  gone: Set<PeerId>;
  refused: Map<PeerId, RefusalReason>;
  done: (s: AckStatus) => void;
}

/** The bounds of a lane's repair buffer. */
export interface BufferBounds {
  messagesMax: number;
  bytesMax: number;
  /** The largest message the lane sends. */
  payloadBytesMax: number;
  /** Repairs: a token bucket of messages (RELIABLE_REPAIR_* for the small lane, RELIABLE_BULK_REPAIR_* for the bulk lane). */
  repairsPerS: number;
  repairBurst: number;
}

export class MulticastSender {
  /** Our messages kept for repair: `sent.lo` is the oldest still repairable, `sent.hi` our newest. */
  private readonly sent: SendBuffer;
  /** The open multicast datagram of publish(), and one for repairs to `repairTo`. */
  private readonly outbox: Packer;
  private readonly repairs: Packer;
  private repairTo: Address = '';
  private repairJoinPoint = 0;
  private readonly receivers = new Map<PeerId, Receiver>();
  private readonly waiters = new Map<number, Waiter>();
  private lastAnnounce = -Infinity;
  /** Membership's version when receivers were last tracked. */
  private trackedVersion: number | undefined = undefined;
  /** The idle announce period now, and the newest sequence the last announce showed. */
  private idleAnnounceMs = RELIABLE_IDLE_ANNOUNCE_MS;
  private announcedHi = 0;
  private repairTokens: number;
  private repairRefilledAt: number;
  /** The slowest waited-for receiver's position when the window last heard of it. */
  private slowestSeen = 0;
  /** Runs when acks moved the slowest receiver (the bulk sender sends more: bulk.ts). */
  onProgress: () => void = () => {};

  constructor(
    private readonly shared: Shared,
    private readonly wire: LaneWire,
    room: DatagramRoom,
    /** Which live members are expected to run this module and ack. */
    private readonly audience: (m: MemberView) => boolean,
    private readonly bounds: BufferBounds,
    /**
     * The bulk lane's flow control (flow.ts), which also sends a message's fragments after its
     * first as frames (fragments.ts); null: the small lane, which publishes at once.
     */
    private readonly window: Window | null = null,
  ) {
    this.sent = new SendBuffer(bounds.messagesMax, bounds.bytesMax, bounds.payloadBytesMax);
    this.repairTokens = bounds.repairBurst;
    this.outbox = new Packer(room, (topics, a) => this.sendData(null, topics, a, this.joinPoint()));
    this.repairs = new Packer(room, (topics, a) =>
      this.sendData(this.repairTo, topics, a, this.repairJoinPoint),
    );
    this.repairRefilledAt = shared.ctx.now();
  }

  /** Highest sequence published in our stream. */
  get highest(): number {
    return this.sent.hi;
  }

  /**
   * Numbers a message (of `bytes` payload bytes, already checked) and writes it into the open
   * datagram. `onSettled` runs once every member live (and in the audience) now has acked it or
   * is gone.
   */
  publish(topic: string, payload: string, bytes: number, onSettled?: (s: AckStatus) => void): MessageId {
    const { ctx, stats, epoch } = this.shared;
    // Members tracked from now on need only what comes after: track before numbering this one,
    // and whenever membership changed since (a member that joined since the last tick must not
    // be tracked after this message, as if it had it: ticks no longer come every few ms).
    const version = this.shared.membership.version;
    if (onSettled || (version !== undefined && version !== this.trackedVersion)) this.trackReceivers();
    const evicted = this.makeRoom(bytes);
    const lamport = this.shared.stamp();
    const at = this.sent.push(topic, payload, bytes, lamport);
    const seq = this.sent.hi;
    const id: MessageId = { origin: ctx.self.id, epoch, seq };
    stats.published++;
    // A full datagram goes out at once, and this message opens the next.
    this.outbox.addBytes(seq, lamport, topic, bytes, this.sent.ring, at);
    // Callbacks only now that this message is in place: one may publish again at once.
    if (onSettled) this.addWaiter(id, seq, onSettled);
    // Past the buffer nobody can repair them: whoever has not acked by now never will.
    for (const w of evicted) this.settle(w, true);
    return id;
  }

  /**
   * Whether the window (flow.ts) and the repair buffer have room for a fragment of `bytes` now,
   * without dropping one a waited-for receiver has not acked.
   */
  mayPush(bytes: number): boolean {
    const slowest = this.slowestReceived();
    const inFlight = this.sent.bytesAfter(slowest);
    if (this.window && inFlight > 0 && inFlight + bytes > this.window.bytes) return false;
    while (!this.sent.fits(bytes)) {
      if (this.sent.size === 0 || this.sent.lo > slowest) return false;
      this.sent.dropOldest();
    }
    return true;
  }

  /**
   * Numbers a fragment (`head` then `data` from `start` to `end`; mayPush() said yes) and writes
   * it into the open datagram.
   */
  pushFragment(
    topic: string,
    head: Uint8Array,
    data: Buffer,
    start: number,
    end: number,
    lamport: number,
  ): void {
    const at = this.sent.pushBytes(topic, head, data, start, end, lamport);
    const bytes = head.length + end - start;
    this.shared.stats.published++;
    if (this.framed(at)) {
      this.outbox.flush(); // what came before it goes first
      this.sendFramed(null, this.sent.hi, at, bytes);
    } else this.outbox.addBytes(this.sent.hi, lamport, topic, bytes, this.sent.ring, at);
  }

  /** Sends the open datagram of publish(). */
  flush(): void {
    this.outbox.flush();
  }

  /** Ack status of a message still in the send buffer (undefined once it left it). */
  ackStatus(id: MessageId): AckStatus | undefined {
    const w = this.waiters.get(id.seq);
    if (w) return statusOf(w);
    if (!this.sent.has(id.seq)) return undefined;
    const acked: PeerId[] = [];
    const pending: PeerId[] = [];
    for (const r of this.receivers.values()) (r.acked >= id.seq ? acked : pending).push(r.id);
    return { id, complete: pending.length === 0, acked, gone: [], pending, refused: [] };
  }

  tick(now: number): void {
    this.trackReceivers();
    this.announce(now);
  }

  /** Announces our highest sequence, so receivers can detect a lost tail. */
  leave(): void {
    const hi = this.sent.hi;
    if (hi > 0)
      this.shared.ctx.broadcast(
        ...this.wire.ANNOUNCE.out({ epoch: this.shared.epoch, highest: hi, joinPoint: this.joinPoint() }),
      );
  }

  memory(): { buffered: number; bufferBytes: number; waiters: number } {
    return { buffered: this.sent.size, bufferBytes: this.sent.bytes, waiters: this.waiters.size };
  }

  onAck(peer: PeerId, { epoch, joinedAt, ackedUpTo, refused, received }: AckBody, from: Address): void {
    const r = this.receivers.get(peer);
    if (epoch !== this.shared.epoch || !r || !this.shared.fromMember(peer, from)) return;
    // A receiver acks what it got from where it joined: never past what we sent, never from past
    // what it acks (it joined at joinedAt <= ackedUpTo + 1).
    if (ackedUpTo > this.sent.hi || joinedAt > ackedUpTo + 1 || (received ?? 0) > this.sent.hi) {
      this.shared.ctx.refuse('seq');
      return;
    }
    // The receiver joined our stream at joinedAt: what lies between its known position and f it never got.
    const missed = joinedAt > r.acked + 1 ? joinedAt : 0;
    r.heard = true;
    if (ackedUpTo > r.acked) r.acked = ackedUpTo;
    r.received = Math.max(r.received, r.acked, received ?? 0);
    // Refused messages were acked without being held: say so before the ack counts them.
    for (const [firstSeq, reason] of refused ?? []) {
      const w = this.waiters.get(firstSeq);
      if (!w || !w.required.has(peer) || w.refused.has(peer)) continue;
      this.shared.stats.refusalsHeard++;
      w.refused.set(peer, REFUSAL_REASONS[reason]!);
    }
    this.checkWaiters(peer, ackedUpTo, missed);
    const slowest = this.slowestReceived();
    if (slowest > this.slowestSeen) {
      this.window?.acked(this.sent.bytesAfter(this.slowestSeen) - this.sent.bytesAfter(slowest));
      this.slowestSeen = slowest;
      this.onProgress();
    }
  }

  onNack({ epoch, missing }: NackBody, from: Address): void {
    const { ctx, stats } = this.shared;
    if (epoch < this.shared.epoch) {
      // A stream of our previous life: nothing of it survived the restart.
      ctx.send(from, ...this.wire.GONE.out({ epoch, oldestKept: RESTARTED_LO }));
      return;
    }
    if (epoch !== this.shared.epoch) return;
    this.window?.loss(this.sent.hi, this.slowestReceived());
    const now = ctx.now();
    this.repairTokens = Math.min(
      this.bounds.repairBurst,
      this.repairTokens + ((now - this.repairRefilledAt) * this.bounds.repairsPerS) / MS_PER_S,
    );
    this.repairRefilledAt = now;
    let goneBelow = 0;
    const seqs: number[] = [];
    // Ranges in order, each taken from past the previous one, and only what we sent: a crafted
    // NACK with overlapping, unordered or far-off ranges must not make us repair a message twice
    // or out of order (a datagram's sequences must rise), nor walk sequences we never had.
    const ranges = missing.length > 1 ? [...missing].sort((x, y) => x[0] - y[0]) : missing;
    let past = 1;
    nack: for (const [first, last] of ranges) {
      const lo = Math.max(first, past);
      const hi = Math.min(last, this.sent.hi);
      if (lo > hi) continue;
      past = hi + 1;
      if (lo < this.sent.lo) goneBelow = this.sent.lo;
      for (let seq = Math.max(lo, this.sent.lo); seq <= hi; seq++) {
        if (seqs.length >= RELIABLE_NACK_MESSAGES_MAX) break nack;
        if (this.repairTokens < 1) {
          stats.repairsRateLimited++;
          break nack;
        }
        this.repairTokens--;
        seqs.push(seq);
      }
    }
    if (goneBelow > 0)
      ctx.send(from, ...this.wire.GONE.out({ epoch: this.shared.epoch, oldestKept: goneBelow }));
    if (seqs.length === 0) return;
    this.repairTo = from;
    this.repairJoinPoint = this.joinPoint();
    const s = this.sent;
    for (const seq of seqs) {
      const at = s.offsetOf(seq);
      if (this.framed(at)) {
        this.repairs.flush();
        this.sendFramed(from, seq, at, s.bytesOf(seq));
      } else this.repairs.addBytes(seq, s.lamportOf(seq), s.topicOf(seq), s.bytesOf(seq), s.ring, at);
    }
    this.repairs.flush();
    stats.repairsSent += seqs.length;
  }

  /** Whether the message at `at` in the buffer goes as a frame: a bulk fragment after its message's first. */
  private framed(at: number): boolean {
    return this.window !== null && this.sent.ring[at] === CONTINUATION;
  }

  private sendFramed(to: Address | null, seq: number, at: number, bytes: number): void {
    const { ctx, stats, epoch } = this.shared;
    stats.datagramsSent++;
    ctx.sendFrame(to, FRAGMENT_FRAME, framePrefix(epoch, seq), this.sent.ring.subarray(at, at + bytes));
    if (to === null) this.lastAnnounce = ctx.now();
  }

  private sendData(to: Address | null, topics: string[], attachment: Buffer, joinPoint: number): void {
    const { ctx, stats, epoch } = this.shared;
    const [type, body] = this.wire.DATA.out({ epoch, joinPoint, topics });
    stats.datagramsSent++;
    if (to === null) {
      ctx.broadcast(type, body, attachment);
      this.lastAnnounce = ctx.now();
    } else ctx.send(to, type, body, attachment);
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

  /** What the slowest receiver we wait for has received (our newest when we wait for none). */
  slowestReceived(): number {
    let slowest = this.sent.hi;
    const now = this.shared.ctx.now();
    for (const r of this.receivers.values())
      if (this.waitedFor(r, now) && r.received < slowest) slowest = r.received;
    return slowest;
  }

  /**
   * Whether every tracked receiver acked `seq`. One never heard from is waited for at most
   * RELIABLE_SILENT_RECEIVER_MS from `since` (or from when it first owed an ack, if later): it
   * may not run this module.
   */
  ackedByAll(seq: number, since: number): boolean {
    const now = this.shared.ctx.now();
    for (const r of this.receivers.values())
      if (r.acked < seq && (r.heard || (this.waitedFor(r, now) && now - since < RELIABLE_SILENT_RECEIVER_MS)))
        return false;
    return true;
  }

  /** Where a receiver meeting our stream starts: the lowest position a tracked receiver needs. */
  private joinPoint(): number {
    let joinPoint = Infinity;
    const now = this.shared.ctx.now();
    for (const r of this.receivers.values())
      if (this.waitedFor(r, now)) joinPoint = Math.min(joinPoint, r.received + 1);
    if (joinPoint === Infinity) joinPoint = this.sent.lo;
    return Math.max(this.sent.lo, Math.min(joinPoint, this.sent.hi + 1));
  }

  /**
   * A member that never acked anything for long after it owed an ack probably does not run this
   * module. One that owes nothing yet is waited for: the join point must not pass it, or a member
   * that missed the first datagram after a quiet spell would join the stream past that message
   * and never hear of it (not delivered, not reported lost).
   */
  private waitedFor(r: Receiver, now: number): boolean {
    return r.heard || r.owedSince === null || now - r.owedSince < RELIABLE_SILENT_RECEIVER_MS;
  }

  /** Calls `done` once every receiver tracked now has acked up to `lastSeq` or is gone. */
  addWaiter(id: MessageId, lastSeq: number, done: (s: AckStatus) => void): void {
    this.trackReceivers();
    const required = new Set<PeerId>();
    for (const r of this.receivers.values()) if (r.acked < lastSeq) required.add(r.id);
    const w: Waiter = { id, lastSeq, required, acked: new Set(), gone: new Set(), refused: new Map(), done };
    this.waiters.set(id.seq, w);
    if (required.size === 0) this.shared.deferredResults.push(() => this.settle(w, false));
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
      else if (w.lastSeq <= upTo) w.acked.add(peer);
      else continue;
      if (w.acked.size + w.gone.size === w.required.size) this.settle(w, false);
    }
  }

  /** Follows membership: new audience members are tracked, departed ones released. */
  trackReceivers(): void {
    this.trackedVersion = this.shared.membership.version;
    const live = new Map<PeerId, MemberView>();
    for (const m of this.shared.membership.live()) if (this.audience(m)) live.set(m.id, m);
    // A higher incarnation may be a refutation (same process) or a restart: a restarted receiver
    // shows itself by acking from a later start (onAck), so both keep their record here.
    for (const id of this.receivers.keys()) {
      if (!live.has(id)) {
        this.receivers.delete(id);
        this.checkWaiters(id, 0, Infinity);
      }
    }
    const now = this.shared.ctx.now();
    for (const m of live.values()) {
      if (this.receivers.has(m.id)) continue;
      this.idleAnnounceMs = RELIABLE_IDLE_ANNOUNCE_MS;
      this.receivers.set(m.id, {
        id: m.id,
        acked: this.sent.hi,
        received: this.sent.hi,
        owedSince: null,
        trackedAt: now,
        heard: false,
      });
    }
    // Acks only move `acked` once heard, so one not heard owes from our first message after it
    // was tracked that reached it: noted here, at the latest a tick after that message.
    for (const r of this.receivers.values())
      if (r.owedSince === null && r.acked < this.sent.hi && this.reached(r, now)) r.owedSince = now;
  }

  /**
   * Whether our group sends reach `r` (ctx.groupReaches): unicast-only, a member met before its
   * address was proved got none of our messages, and joined past them it would never hear of
   * them. One never reached counts as reached RELIABLE_UNREACHED_WAIT_MS after we tracked it.
   */
  private reached(r: Receiver, now: number): boolean {
    const reaches = this.shared.ctx.groupReaches;
    return !reaches || now - r.trackedAt >= RELIABLE_UNREACHED_WAIT_MS || reaches(r.id);
  }

  private announce(now: number): void {
    const hi = this.sent.hi;
    if (hi === 0) return;
    let lagging = false;
    let allAcked = true;
    for (const r of this.receivers.values()) {
      if (r.acked >= hi) continue;
      allAcked = false;
      if (this.waitedFor(r, now)) lagging = true;
    }
    const observed =
      now - (this.shared.membership.observerProbedAt ?? -Infinity) < RELIABLE_OBSERVER_HEARD_MS;
    if (!allAcked || observed || hi !== this.announcedHi) this.idleAnnounceMs = RELIABLE_IDLE_ANNOUNCE_MS;
    const period = lagging ? RELIABLE_ANNOUNCE_MS : this.idleAnnounceMs;
    if (now - this.lastAnnounce < period) return;
    this.lastAnnounce = now;
    this.announcedHi = hi;
    if (allAcked && !observed)
      this.idleAnnounceMs = Math.min(2 * this.idleAnnounceMs, RELIABLE_IDLE_ANNOUNCE_MAX_MS);
    this.shared.ctx.broadcast(
      ...this.wire.ANNOUNCE.out({ epoch: this.shared.epoch, highest: hi, joinPoint: this.joinPoint() }),
    );
  }

  /**
   * When the next announce is due, while nothing else is: no message waits for acks and every
   * tracked receiver has acked the newest (null otherwise: the lane ticks at its cadence). Asked
   * after a tick, which flushed the open datagram.
   */
  quietUntil(): number | null {
    const hi = this.sent.hi;
    if (this.waiters.size > 0) return null;
    for (const r of this.receivers.values()) if (r.acked < hi) return null;
    return hi === 0 ? Infinity : this.lastAnnounce + this.idleAnnounceMs;
  }
}

function statusOf(w: Waiter): AckStatus {
  const pending = [...w.required].filter((p) => !w.acked.has(p) && !w.gone.has(p));
  const refused = [...w.refused].map(([peer, reason]) => ({ peer, reason }));
  return {
    id: w.id,
    complete: w.acked.size === w.required.size && refused.length === 0,
    acked: [...w.acked].filter((p) => !w.refused.has(p)),
    gone: [...w.gone],
    pending,
    refused,
  };
}
