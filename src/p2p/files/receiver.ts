/**
 * The receiving role: every file offered to this peer, from the offer to the verified file in
 * place (or the reason it is not).
 *
 * Algorithm.
 * - At the offer: refused (with the reason, sent to the sender) when it is over this receiver's
 *   --max-file-bytes, over the free disk space, or when FILE_TRANSFERS_MAX transfers are running;
 *   otherwise storage creates the temporary file and its state, and the sender is told accepted.
 * - Each chunk is written at its offset, made durable, and only then marked held in the state
 *   persisted next to the temporary file; the delivery handler returns that write, so reliable
 *   delivery acks the chunk to its sender only once it is on disk. Writes of one transfer run one
 *   after the other, in arrival order.
 * - When every chunk is held, storage checks the SHA-256 and renames the file into place; the
 *   sender is told done, or failed with the reason.
 * - Restart: transfers begun and not finished are loaded from storage with the chunks they hold.
 *   While chunks are missing and none came for FILE_NEED_RETRY_MS, the receiver asks its sender
 *   for them (NEED, unicast) whenever membership sees the sender live; the same covers a chunk
 *   reliable delivery reported lost. A transfer that gets no chunk for FILE_STALLED_MS (its
 *   sender gone, or no longer sending it to us) is dropped, its temporary file removed: nobody
 *   else can send the rest. A sender interrupted mid-transfer says so (CANCEL): the transfer is
 *   dropped at once the same way.
 *
 * Failure modes: a chunk from anyone but the offer's sender, of the wrong length, or for no
 * transfer known is dropped and counted. A write that fails is never acknowledged (the handler's
 * promise rejects): the transfer fails, its temporary file is removed, and the sender is told why.
 */
import type { PeerId } from '../wire.js';
import type { ProtocolContext } from '../protocol.js';
import type { FileChannel, FileDelivery, MemberLookup } from './channel.js';
import { ChunkSet, chunkCount, chunkLength } from './chunks.js';
import {
  ANSWER,
  FILE_CONTROL_TOPIC,
  NEED,
  encodeControl,
  type AnswerStatus,
  type Chunk,
  type Cancel,
  type Offer,
  type TransferId,
} from './messages.js';
import {
  FILE_ANSWER_ATTEMPTS_MAX,
  FILE_CHUNKS_MAX,
  FILE_FINISHED_IDS_MAX,
  FILE_NEED_RANGES_MAX,
  FILE_NEED_RETRY_MS,
  FILE_REASON_CHARS_MAX,
  FILE_STALLED_MS,
  FILE_TRANSFERS_MAX,
} from './limits.js';
import { IncomingWriteError, type IncomingFiles, type IncomingTransfer } from './store.js';
import { failureReason } from '../write-failure.js';

/** What happened to a file offered to this peer, for the command to show. */
export type IncomingEvent =
  | { kind: 'accepted'; transfer: IncomingTransfer }
  | { kind: 'refused'; transfer: IncomingTransfer; reason: string }
  | { kind: 'resumed'; transfer: IncomingTransfer; heldBytes: number }
  | { kind: 'progress'; transfer: IncomingTransfer; heldBytes: number }
  | { kind: 'received'; transfer: IncomingTransfer; path: string }
  | { kind: 'failed'; transfer: IncomingTransfer; reason: string };

interface Incoming {
  transfer: IncomingTransfer;
  held: ChunkSet;
  state: 'starting' | 'receiving' | 'finishing' | 'ended';
  /** The transfer's writes, one after the other. */
  queue: Promise<void>;
  /** When a chunk last came (or the transfer started or was loaded). */
  heardAt: number;
  askedAt: number;
}

export interface ReceiverOptions {
  /** Largest file accepted, in bytes. */
  maxFileBytes: number;
  onEvent: (e: IncomingEvent) => void;
}

export class FileReceiver {
  readonly stats = { malformed: 0, unknownChunks: 0, writesFailed: 0 };
  private readonly transfers = new Map<TransferId, Incoming>();
  /** How transfers that ended ended, to answer a late copy of their offer the same. */
  private readonly ended = new Map<TransferId, { status: AnswerStatus; reason: string }>();

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly channel: FileChannel,
    private readonly membership: MemberLookup,
    private readonly store: IncomingFiles,
    private readonly opts: ReceiverOptions,
  ) {}

  /** Loads the transfers a previous run left unfinished. */
  async resume(): Promise<void> {
    for (const { transfer, held } of await this.store.pending()) {
      if (this.transfers.has(transfer.id)) continue;
      const now = this.ctx.now();
      const t: Incoming = {
        transfer,
        held,
        state: 'receiving',
        queue: Promise.resolve(),
        heardAt: now,
        askedAt: -Infinity,
      };
      this.transfers.set(transfer.id, t);
      this.opts.onEvent({ kind: 'resumed', transfer, heldBytes: heldBytes(t) });
      if (held.complete) void this.complete(t);
    }
  }

  onOffer(d: FileDelivery, offer: Offer): Promise<void> | undefined {
    const done = this.ended.get(offer.id);
    if (done) return void this.answer(d.from, offer.id, done.status, done.reason);
    const known = this.transfers.get(offer.id);
    if (known) {
      // The offer again: our answer was lost, or is still on its way.
      if (known.state === 'receiving') this.answer(d.from, offer.id, 'accepted', '');
      return;
    }
    const transfer: IncomingTransfer = { ...offer, from: d.from, fromName: d.fromName };
    const refusal = this.refusal(offer);
    if (refusal) return void this.refuse(transfer, refusal);
    const now = this.ctx.now();
    const t: Incoming = {
      transfer,
      held: new ChunkSet(chunkCount(offer.bytes, offer.chunkBytes)),
      state: 'starting',
      queue: Promise.resolve(),
      heardAt: now,
      askedAt: now,
    };
    this.transfers.set(offer.id, t);
    // Chunks that come before storage is ready wait behind it in the transfer's queue.
    t.queue = this.begin(t);
    return t.queue;
  }

  onChunk(d: FileDelivery, c: Chunk): Promise<void> | undefined {
    const t = this.transfers.get(c.id);
    if (!t || t.transfer.from !== d.from) {
      this.stats.unknownChunks++;
      return;
    }
    const { bytes, chunkBytes } = t.transfer;
    if (c.index >= t.held.count || c.data.length !== chunkLength(bytes, chunkBytes, c.index)) {
      this.stats.malformed++;
      return;
    }
    if (t.state === 'ended' || t.held.has(c.index)) return;
    t.heardAt = this.ctx.now();
    t.queue = t.queue.then(() => this.write(t, c));
    return t.queue;
  }

  /** The sender stopped sending (interrupted): what we hold of the file goes, at once. */
  onCancel(from: PeerId, c: Cancel): void {
    const t = this.transfers.get(c.id);
    if (t && t.transfer.from === from) this.fail(t, 'the sender stopped sending it');
  }

  /** Whether a transfer waits for chunks: tick() has work (its stall and need timers). */
  receiving(): boolean {
    for (const t of this.transfers.values()) if (t.state === 'receiving' && !t.held.complete) return true;
    return false;
  }

  tick(now: number): void {
    for (const t of this.transfers.values()) {
      if (t.state !== 'receiving' || t.held.complete) continue;
      if (now - t.heardAt >= FILE_STALLED_MS) {
        this.fail(
          t,
          `no part of the file came for ${FILE_STALLED_MS / 1000} s: the sender stopped sending it`,
        );
        continue;
      }
      const m = this.membership.get(t.transfer.from);
      const live = m?.state === 'alive' || m?.state === 'suspect';
      if (!live || now - t.heardAt < FILE_NEED_RETRY_MS || now - t.askedAt < FILE_NEED_RETRY_MS) continue;
      t.askedAt = now;
      const missing = t.held.missing(FILE_NEED_RANGES_MAX);
      this.channel.sendTo(
        t.transfer.from,
        FILE_CONTROL_TOPIC,
        encodeControl(NEED, { id: t.transfer.id, missing }),
      );
    }
  }

  private refusal(offer: Offer): string | null {
    if (chunkCount(offer.bytes, offer.chunkBytes) > FILE_CHUNKS_MAX)
      return `cut into more than ${FILE_CHUNKS_MAX} chunks`;
    if (offer.bytes > this.opts.maxFileBytes)
      return `too large: ${offer.bytes} bytes, this receiver takes at most ${this.opts.maxFileBytes}`;
    if (this.transfers.size >= FILE_TRANSFERS_MAX)
      return `busy: ${FILE_TRANSFERS_MAX} transfers already running here`;
    return null;
  }

  private async begin(t: Incoming): Promise<void> {
    const { transfer } = t;
    let free: number;
    try {
      free = await this.store.freeBytes();
      if (free >= transfer.bytes) await this.store.begin(transfer);
    } catch (err) {
      this.transfers.delete(transfer.id);
      return this.refuse(transfer, `cannot write here: ${whyNot(err)}`);
    }
    if (free < transfer.bytes) {
      this.transfers.delete(transfer.id);
      return this.refuse(transfer, `not enough disk space: ${transfer.bytes} bytes needed, ${free} free`);
    }
    t.state = 'receiving';
    this.answer(transfer.from, transfer.id, 'accepted', '');
    this.opts.onEvent({ kind: 'accepted', transfer });
    if (t.held.complete) void this.complete(t); // an empty file
  }

  private async write(t: Incoming, c: Chunk): Promise<void> {
    if (t.state !== 'receiving' || t.held.has(c.index)) return;
    const held = t.held.with(c.index);
    try {
      await this.store.write(t.transfer.id, c.index * t.transfer.chunkBytes, c.data, held);
    } catch (err) {
      this.stats.writesFailed++;
      this.fail(t, `cannot write the file: ${whyNot(err)}`);
      throw err; // never acknowledged: the chunk is not held
    }
    t.held.add(c.index);
    this.opts.onEvent({ kind: 'progress', transfer: t.transfer, heldBytes: heldBytes(t) });
    if (t.held.complete) void this.complete(t);
  }

  private async complete(t: Incoming): Promise<void> {
    t.state = 'finishing';
    let result;
    try {
      result = await this.store.finish(t.transfer.id);
    } catch (err) {
      result = { ok: false as const, reason: `cannot finish the file: ${whyNot(err)}` };
    }
    if (!result.ok) return this.fail(t, result.reason);
    this.end(t, 'done', '');
    this.opts.onEvent({ kind: 'received', transfer: t.transfer, path: result.path });
  }

  private refuse(transfer: IncomingTransfer, reason: string): void {
    this.remember(transfer.id, 'refused', reason);
    this.answer(transfer.from, transfer.id, 'refused', reason);
    this.opts.onEvent({ kind: 'refused', transfer, reason });
  }

  private fail(t: Incoming, reason: string): void {
    if (t.state === 'ended') return;
    this.end(t, 'failed', reason);
    this.store.discard(t.transfer.id).catch(() => {}); // what is left is a temporary file
    this.opts.onEvent({ kind: 'failed', transfer: t.transfer, reason });
  }

  private end(t: Incoming, status: 'done' | 'failed', reason: string): void {
    t.state = 'ended';
    this.transfers.delete(t.transfer.id);
    this.remember(t.transfer.id, status, reason);
    this.answer(t.transfer.from, t.transfer.id, status, reason);
  }

  private remember(id: TransferId, status: AnswerStatus, reason: string): void {
    this.ended.set(id, { status, reason });
    if (this.ended.size > FILE_FINISHED_IDS_MAX) {
      const [oldest] = this.ended.keys();
      if (oldest !== undefined) this.ended.delete(oldest);
    }
  }

  /** Tells the sender, again if the send fails while it is still there. */
  private answer(to: PeerId, id: TransferId, status: AnswerStatus, reason: string, attempt = 1): void {
    const payload = encodeControl(ANSWER, { id, status, reason: reason.slice(0, FILE_REASON_CHARS_MAX) });
    this.channel.sendTo(to, FILE_CONTROL_TOPIC, payload, (r) => {
      if (!r.ok && r.reason !== 'gone' && attempt < FILE_ANSWER_ATTEMPTS_MAX)
        this.answer(to, id, status, reason, attempt + 1);
    });
  }
}

function heldBytes(t: Incoming): number {
  const { bytes, chunkBytes } = t.transfer;
  const last = t.held.count - 1;
  return (
    t.held.size * chunkBytes - (t.held.has(last) ? chunkBytes - chunkLength(bytes, chunkBytes, last) : 0)
  );
}

/** A storage error in a few words. */
function whyNot(err: unknown): string {
  if (err instanceof IncomingWriteError) return failureReason(err.failure.kind, err.failure.code);
  return err instanceof Error ? err.message : String(err);
}
