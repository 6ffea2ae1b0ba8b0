/**
 * File transfer: the facade a peer installs. It routes what arrives on the file topics to the
 * sending role (sender.ts, one per file this peer sends) and the receiving role (receiver.ts, when
 * this peer accepts files), and ticks both. Files travel as reliable-delivery messages (channel.ts)
 * and are read and written through storage interfaces (store.ts): no disk, socket or timer here.
 *
 * Wire: messages.ts. Limits: limits.ts.
 */
import type { MemberView, Protocol, ProtocolContext } from '../protocol.js';
import type { FileChannel, FileDelivery, MemberLookup } from './channel.js';
import {
  ANSWER,
  CANCEL,
  FILE_CONTROL_TOPIC,
  FILE_TOPIC,
  NEED,
  OFFER,
  decodeChunk,
  decodeControl,
  isChunkPayload,
  parseControl,
  type TransferId,
} from './messages.js';
import { FILE_BYTES_MAX, FILE_CHUNK_BYTES } from './limits.js';
import { FileReceiver, type IncomingEvent } from './receiver.js';
import { FileSender, type ReceiverOutcome, type TransferResult } from './sender.js';
import type { IncomingFiles, OutgoingFile } from './store.js';
import { randomHexId } from '../runtime.js';

export interface FilesOptions {
  /** Where accepted files go; without it this peer refuses nothing and accepts nothing (a one-shot sender). */
  incoming?: IncomingFiles;
  /** Largest file accepted, in bytes (default FILE_BYTES_MAX). */
  maxFileBytes?: number;
  /** Bytes per chunk of the files this peer sends (default FILE_CHUNK_BYTES). */
  chunkBytes?: number;
}

export interface SendOptions {
  /** The receivers: the live chat members, or the one `--to` target. */
  targets: MemberView[];
  /** Offer and chunks by unicast (one target). */
  unicast: boolean;
  /**
   * For a group send: who the file is for, asked again on every tick while it runs. A member
   * found after the offer (its answer to discovery was lost, or it joined the chat since) is
   * offered the file too, by unicast, and asks for the chunks that went by before it came.
   */
  audience?: () => MemberView[];
  /** A receiver's answer or end, as it comes. */
  onAnswer?: (r: ReceiverOutcome) => void;
  onEnd: (r: TransferResult) => void;
}

export class Files implements Protocol {
  /** Files travel on reliable delivery's topics: no datagram type of their own. */
  readonly messages = {};
  /** Payloads that were not a file message; loads of unfinished transfers that failed. */
  readonly stats = { malformed: 0, resumeErrors: 0 };
  readonly receiver: FileReceiver | null;
  private readonly senders = new Map<TransferId, FileSender>();
  private readonly handlers: Array<(e: IncomingEvent) => void> = [];
  private started = false;
  /** No file on its way at the last tick: it asked for none (tick()). */
  private idle = false;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly channel: FileChannel,
    private readonly membership: MemberLookup,
    private readonly opts: FilesOptions = {},
  ) {
    this.receiver = opts.incoming
      ? new FileReceiver(ctx, channel, membership, opts.incoming, {
          maxFileBytes: opts.maxFileBytes ?? FILE_BYTES_MAX,
          onEvent: (e) => {
            this.wake(); // a transfer accepted (its disk space checked) now waits for chunks
            this.handlers.forEach((h) => h(e));
          },
        })
      : null;
    channel.on(FILE_TOPIC, (d) => this.onData(d));
    channel.on(FILE_CONTROL_TOPIC, (d) => this.onControl(d));
  }

  /** Files offered to this peer: accepted, refused, progressing, received, failed. */
  onIncoming(handler: (e: IncomingEvent) => void): void {
    this.handlers.push(handler);
  }

  /** Offers `file` to the targets and sends it; `onEnd` runs once every receiver is finished. */
  send(file: OutgoingFile, opts: SendOptions): FileSender {
    const id = randomHexId(this.ctx.random);
    const sender = new FileSender(this.ctx, this.channel, this.membership, id, file, opts.targets, {
      unicast: opts.unicast,
      audience: opts.audience,
      chunkBytes: this.opts.chunkBytes ?? FILE_CHUNK_BYTES,
      onAnswer: (r) => opts.onAnswer?.(r),
      onEnd: (r) => {
        this.senders.delete(id);
        opts.onEnd(r);
      },
    });
    this.senders.set(id, sender);
    this.wake();
    sender.start();
    return sender;
  }

  onMessage(): void {
    // Nothing comes as a datagram of its own (see `messages`).
  }

  /**
   * Ticks every tickMs while a file is on its way (the senders pace their chunks by it), and not
   * at all when none is: a chat peer idle does not wake every tickMs for files that are not there.
   * A send, or a file message arriving, wakes it again (wake()).
   */
  tick(now: number): number | undefined {
    if (!this.started) {
      // On the first tick, not in the constructor: the node sends nothing before it started.
      this.started = true;
      this.receiver?.resume().catch(() => this.stats.resumeErrors++);
    }
    for (const s of [...this.senders.values()]) s.tick(now);
    this.receiver?.tick(now);
    this.idle = this.senders.size === 0 && !this.receiver?.receiving();
    return this.idle ? Infinity : undefined;
  }

  /** Back to ticking every tickMs once something to do comes while idle. */
  private wake(): void {
    if (!this.idle) return;
    this.idle = false;
    this.ctx.wakeAt(this.ctx.now());
  }

  private onData(d: FileDelivery): Promise<void> | undefined {
    if (!this.receiver) return;
    this.wake();
    if (isChunkPayload(d.data)) {
      const chunk = decodeChunk(d.data);
      if (chunk) return this.receiver.onChunk(d, chunk);
    } else {
      const offer = decodeControl(OFFER, parseControl(d.data.toString('utf8')));
      if (offer) return this.receiver.onOffer(d, offer);
    }
    this.stats.malformed++;
    return;
  }

  private onControl(d: FileDelivery): void {
    this.wake();
    const v = parseControl(d.data.toString('utf8'));
    const answer = decodeControl(ANSWER, v);
    if (answer) return this.senders.get(answer.id)?.onAnswer(d.from, answer);
    const need = decodeControl(NEED, v);
    if (need) return this.senders.get(need.id)?.onNeed(d.from, need);
    const cancel = decodeControl(CANCEL, v);
    if (cancel) return this.receiver?.onCancel(d.from, cancel);
    this.stats.malformed++;
  }
}
