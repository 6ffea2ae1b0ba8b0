/**
 * The sending role: one file to the group (or to one member), from offer to every receiver's last
 * word.
 *
 * Algorithm.
 * 1. Offer: the offer goes to the receivers on FILE_TOPIC (multicast to the group; unicast to a
 *    `--to` target). Each answers accepted or refused (with its reason) by unicast. A receiver
 *    that has not answered gets the offer again by unicast every FILE_OFFER_RETRY_MS: one that
 *    joined our stream just after the offer never sees it in the stream. A group send may name its
 *    audience (the chat members): a member of it found later is offered the file then, by
 *    unicast, and asks (3.) for the chunks that went by before it came.
 * 2. Chunks: once every receiver answered, or FILE_OFFER_WAIT_MS passed, the chunks follow on the
 *    same topic, read from the file one at a time and only while reliable delivery holds fewer than
 *    FILE_QUEUED_BYTES_MAX bytes not yet on the wire: memory is a few chunks whatever the file's
 *    size, and the pace is what reliable delivery's flow control lets through. Nothing is sent
 *    when every receiver refused.
 * 3. Repair by request: a receiver that restarted mid-transfer asks (NEED) for the chunks it lacks;
 *    those already published go to it by unicast, first in line; the rest it gets with the group.
 * 4. End: a receiver is finished when it says done (it holds the file, SHA-256 verified) or failed,
 *    refused, or when nothing came from it (an answer, an ack, a request) for
 *    FILE_RECEIVER_SILENT_MS: then "gone" if membership no longer sees it live, else "timed out".
 *    The transfer ends when every receiver is finished; it succeeded when every one said done.
 *
 * Failure modes: a lost chunk is repaired by reliable delivery, or asked for again; a receiver
 * that refuses a chunk as too large is failed with that reason; a file that cannot be read (it
 * shrank, a disk error) fails the transfer for everyone with the error. A file that cannot be
 * read, or a send the user interrupts (cancel()), tells every receiver still receiving to drop
 * what it holds (CANCEL), instead of leaving it to wait FILE_STALLED_MS for the rest.
 */
import type { PeerId } from '../wire.js';
import type { MemberView, ProtocolContext } from '../protocol.js';
import type { FileChannel, MemberLookup, Settled, Sent } from './channel.js';
import { ChunkSet, chunkCount, chunkLength } from './chunks.js';
import {
  CANCEL,
  FILE_CONTROL_TOPIC,
  FILE_TOPIC,
  OFFER,
  encodeChunk,
  encodeControl,
  type Answer,
  type Need,
  type TransferId,
} from './messages.js';
import {
  FILE_OFFER_RETRY_MS,
  FILE_OFFER_WAIT_MS,
  FILE_QUEUED_BYTES_MAX,
  FILE_RECEIVER_SILENT_MS,
  FILE_REPAIR_CHUNKS_MAX,
} from './limits.js';
import type { OutgoingFile } from './store.js';

/** Where one receiver stands: waiting for its answer, receiving, or finished (the rest). */
export type ReceiverStatus =
  | 'offered'
  | 'accepted'
  | 'refused'
  | 'done'
  | 'failed'
  | 'gone'
  | 'timeout'
  /** The send was interrupted before it held the file (cancel()). */
  | 'cancelled';

export interface ReceiverOutcome {
  peer: PeerId;
  name: string;
  status: ReceiverStatus;
  /** Why it refused or failed, as it said (remote text: escape before showing). */
  reason: string;
}

export interface TransferResult {
  id: TransferId;
  /** Every receiver holds the verified file. */
  ok: boolean;
  receivers: ReceiverOutcome[];
  /** The file could not be read here (the transfer stopped for everyone). */
  readError: string | null;
}

export interface SendProgress {
  bytes: number;
  /** Bytes of chunks every receiver still in the transfer acked. */
  ackedBytes: number;
}

interface Receiver extends ReceiverOutcome {
  heardAt: number;
  /** When the offer last went to it. */
  offeredAt: number;
  /** Chunks it asked for, to send it by unicast. */
  repair: Set<number>;
  /** Chunks on their way to it by unicast. */
  inFlight: Set<number>;
}

const FINISHED: ReadonlySet<ReceiverStatus> = new Set([
  'refused',
  'done',
  'failed',
  'gone',
  'timeout',
  'cancelled',
]);

export class FileSender {
  readonly chunks: number;
  private readonly receivers = new Map<PeerId, Receiver>();
  private phase: 'offering' | 'sending' | 'ended' = 'offering';
  private offeredAt = 0;
  private readonly offer: string;
  /** Next chunk to publish to everyone. */
  private next = 0;
  private reading = false;
  /**
   * Chunks reliable delivery is done with (every receiver acked, or is gone): only those are sent
   * again on request, so a receiver that asks while a chunk is still on its way to it does not
   * get it twice.
   */
  private readonly settledChunks: ChunkSet;
  private ackedBytes = 0;
  private readError: string | null = null;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly channel: FileChannel,
    private readonly membership: MemberLookup,
    readonly id: TransferId,
    private readonly file: OutgoingFile,
    targets: MemberView[],
    private readonly opts: {
      /** Offer and chunks by unicast to the one target (`--to`). */
      unicast: boolean;
      /** Members to add as receivers when they appear (files.ts SendOptions). */
      audience?: () => MemberView[];
      chunkBytes: number;
      onAnswer: (r: ReceiverOutcome) => void;
      onEnd: (r: TransferResult) => void;
    },
  ) {
    this.chunks = chunkCount(file.bytes, opts.chunkBytes);
    this.settledChunks = new ChunkSet(this.chunks);
    this.offer = encodeControl(OFFER, {
      id,
      name: file.name,
      bytes: file.bytes,
      sha256: file.sha256,
      chunkBytes: opts.chunkBytes,
    });
    for (const m of targets) this.addReceiver(m, 0);
  }

  private addReceiver(m: MemberView, now: number): Receiver {
    const r: Receiver = {
      peer: m.id,
      name: m.name,
      status: 'offered',
      reason: '',
      heardAt: now,
      offeredAt: now,
      repair: new Set(),
      inFlight: new Set(),
    };
    this.receivers.set(m.id, r);
    return r;
  }

  /** Sends the offer. */
  start(): void {
    const now = this.ctx.now();
    this.offeredAt = now;
    for (const r of this.receivers.values()) r.heardAt = r.offeredAt = now;
    if (this.opts.unicast)
      for (const r of this.receivers.values()) this.channel.sendTo(r.peer, FILE_TOPIC, this.offer);
    else this.channel.publish(FILE_TOPIC, this.offer);
  }

  get ended(): boolean {
    return this.phase === 'ended';
  }

  progress(): SendProgress {
    return { bytes: this.file.bytes, ackedBytes: this.ackedBytes };
  }

  outcomes(): ReceiverOutcome[] {
    return [...this.receivers.values()].map(({ peer, name, status, reason }) => ({
      peer,
      name,
      status,
      reason,
    }));
  }

  onAnswer(from: PeerId, a: Answer): void {
    const r = this.receivers.get(from);
    if (!r || this.ended) return;
    r.heardAt = this.ctx.now();
    // A receiver's word is final, but done is the truth even after we had given up on it.
    if (FINISHED.has(r.status) && a.status !== 'done') return;
    if (a.status === 'accepted' && r.status !== 'offered') return;
    r.status = a.status;
    r.reason = a.reason;
    this.opts.onAnswer(this.outcomeOf(r));
    this.pump();
  }

  onNeed(from: PeerId, n: Need): void {
    const r = this.receivers.get(from);
    if (!r || this.ended || r.status === 'done' || r.status === 'refused' || r.status === 'failed') return;
    r.heardAt = this.ctx.now();
    // It asks, so it is receiving (it restarted after we had given up on it, say).
    r.status = 'accepted';
    // At most one look per chunk of the file, whatever the ranges say (they may overlap).
    let looks = this.chunks;
    for (const [first, last] of n.missing)
      for (let i = first; i <= last && i < this.next && r.repair.size < FILE_REPAIR_CHUNKS_MAX; i++) {
        if (--looks < 0) break;
        if (this.settledChunks.has(i) && !r.inFlight.has(i)) r.repair.add(i);
      }
    this.pump();
  }

  tick(now: number): void {
    if (this.ended) return;
    // A member that came after the offer: offered by unicast now, its missed chunks on request.
    for (const m of this.opts.audience?.() ?? [])
      if (!this.receivers.has(m.id)) {
        this.addReceiver(m, now);
        this.channel.sendTo(m.id, FILE_TOPIC, this.offer);
      }
    for (const r of this.receivers.values()) {
      if (FINISHED.has(r.status) || now - r.heardAt < FILE_RECEIVER_SILENT_MS) continue;
      const m = this.membership.get(r.peer);
      const live = m?.state === 'alive' || m?.state === 'suspect';
      r.status = live ? 'timeout' : 'gone';
      this.opts.onAnswer(this.outcomeOf(r));
    }
    for (const r of this.receivers.values()) {
      // A receiver that joined our stream just after the offer never sees it there: to it again, by unicast.
      if (r.status !== 'offered' || now - r.offeredAt < FILE_OFFER_RETRY_MS) continue;
      r.offeredAt = now;
      this.channel.sendTo(r.peer, FILE_TOPIC, this.offer);
    }
    if (this.phase === 'offering') {
      const answered = [...this.receivers.values()].every((r) => r.status !== 'offered');
      if (answered || now - this.offeredAt >= FILE_OFFER_WAIT_MS) this.phase = 'sending';
    }
    if ([...this.receivers.values()].every((r) => FINISHED.has(r.status))) return this.end();
    this.pump();
  }

  /** Reads and sends the next chunk while reliable delivery has room for it (one read at a time). */
  private pump(): void {
    if (this.phase !== 'sending' || this.reading) return;
    if (this.channel.queuedBytes() >= FILE_QUEUED_BYTES_MAX) return;
    const repair = this.nextRepair();
    if (repair) return this.readThen(repair.index, (data) => this.sendRepair(repair.r, repair.index, data));
    if (this.next >= this.chunks || !this.anyoneReceiving()) return;
    const index = this.next++;
    this.readThen(index, (data) => this.sendToAll(index, data));
  }

  private readThen(index: number, send: (data: Uint8Array) => void): void {
    this.reading = true;
    const offset = index * this.opts.chunkBytes;
    const length = chunkLength(this.file.bytes, this.opts.chunkBytes, index);
    this.file.read(offset, length).then(
      (data) => {
        this.reading = false;
        if (this.ended) return;
        if (data.length !== length) return this.failRead(`the file changed while it was sent`);
        send(data);
        this.pump();
      },
      (err: unknown) => {
        this.reading = false;
        this.failRead(err instanceof Error ? err.message : String(err));
      },
    );
  }

  private sendToAll(index: number, data: Uint8Array): void {
    const payload = encodeChunk(this.id, index, data);
    if (this.opts.unicast) {
      for (const r of this.receivers.values()) if (r.status === 'accepted') this.sendRepair(r, index, data);
      return;
    }
    this.channel.publish(FILE_TOPIC, payload, (s) => this.settled(s, index, data.length));
  }

  private settled(s: Settled, index: number, bytes: number): void {
    this.settledChunks.add(index);
    const now = this.ctx.now();
    for (const p of s.acked) {
      const r = this.receivers.get(p);
      if (r) r.heardAt = now;
    }
    // 'no-room' passes (the receiver asks for the chunk again); 'too-large' never will.
    for (const { peer, reason } of s.refused) {
      const r = this.receivers.get(peer);
      if (r && reason === 'too-large') this.refusedChunk(r, reason);
    }
    this.ackedBytes += bytes;
    this.pump();
  }

  private sendRepair(r: Receiver, index: number, data: Uint8Array): void {
    r.inFlight.add(index);
    this.channel.sendTo(r.peer, FILE_TOPIC, encodeChunk(this.id, index, data), (res: Sent) => {
      r.inFlight.delete(index);
      this.settledChunks.add(index);
      if (res.ok) {
        r.heardAt = this.ctx.now();
        if (this.opts.unicast) this.ackedBytes += data.length;
      } else if (res.reason === 'too-large') {
        this.refusedChunk(r, res.reason);
      } else if (res.reason !== 'gone' && !FINISHED.has(r.status)) {
        // Not delivered while it is still there (a timeout, a full queue): again. A receiver that
        // is gone asks for what it lacks if it comes back.
        r.repair.add(index);
      }
      this.pump();
    });
  }

  /** Reliable delivery says the receiver refused a chunk for its bounds: it cannot hold the file. */
  private refusedChunk(r: Receiver, reason: string): void {
    if (FINISHED.has(r.status)) return;
    r.status = 'failed';
    r.reason = `refused a chunk (${reason})`;
    this.opts.onAnswer(this.outcomeOf(r));
  }

  private nextRepair(): { r: Receiver; index: number } | null {
    for (const r of this.receivers.values()) {
      if (FINISHED.has(r.status)) {
        r.repair.clear();
        continue;
      }
      for (const index of r.repair) {
        r.repair.delete(index);
        return { r, index };
      }
    }
    return null;
  }

  private anyoneReceiving(): boolean {
    for (const r of this.receivers.values())
      if (r.status === 'accepted' || (!this.opts.unicast && r.status === 'offered')) return true;
    return false;
  }

  /**
   * Stops sending (the user interrupted it): each receiver that does not hold the file yet is told
   * to drop what it has (CANCEL) and counted as cancelled; the transfer ends. `told` runs once
   * each of them acked that, or could not be reached.
   */
  cancel(told?: () => void): void {
    if (this.ended) return told?.();
    this.tellStopped(told);
    for (const r of this.receivers.values())
      if (!FINISHED.has(r.status)) {
        r.status = 'cancelled';
        r.reason = '';
      }
    this.end();
  }

  /** CANCEL to every receiver not finished: nothing more of the file comes. */
  private tellStopped(told?: () => void): void {
    const to = [...this.receivers.values()].filter((r) => !FINISHED.has(r.status));
    let left = to.length;
    if (left === 0) return told?.();
    const payload = encodeControl(CANCEL, { id: this.id });
    for (const r of to)
      this.channel.sendTo(r.peer, FILE_CONTROL_TOPIC, payload, () => {
        if (--left === 0) told?.();
      });
  }

  private failRead(why: string): void {
    if (this.ended) return;
    this.readError = why;
    this.tellStopped();
    for (const r of this.receivers.values())
      if (!FINISHED.has(r.status)) {
        r.status = 'failed';
        r.reason = `the sender could not read the file: ${why}`;
      }
    this.end();
  }

  private end(): void {
    if (this.ended) return;
    this.phase = 'ended';
    const receivers = this.outcomes();
    this.opts.onEnd({
      id: this.id,
      ok: this.readError === null && receivers.every((r) => r.status === 'done'),
      receivers,
      readError: this.readError,
    });
  }

  private outcomeOf(r: Receiver): ReceiverOutcome {
    return { peer: r.peer, name: r.name, status: r.status, reason: r.reason };
  }
}
