/**
 * The bulk lane's multicast sender: publishes messages of any size as fragments (fragments.ts)
 * of the lane's stream, as fast as the window allows (flow.ts).
 *
 * A message's fragments are numbered one after the other, each message after the one before it,
 * so its sequences are known at publish: the first is its id, the last is what its callback
 * waits for every receiver to ack. They are sent as the window has room, from the caller's bytes
 * (held, not copied, until the last fragment is sent): memory here is what callers publish
 * ahead; `queuedBytes` tells them how much, so a long transfer publishes its next chunk only
 * when little is waiting (the file transfer does).
 *
 * Order with the small lane: a receiver delivers each lane's stream on its own, so a message
 * published after small ones would overtake them whenever one of those needs a repair (or is
 * still waiting for its datagram to go out). Its first fragment therefore waits until every
 * receiver acked the small messages published before it: a round trip of latency for a large
 * message right after small ones, none for the small messages themselves.
 */
import type { AckStatus, MessageId } from './delivery.js';
import type { DatagramRoom } from './datagram.js';
import { framedRoom, Split } from './fragments.js';
import { RELIABLE_QUEUE_BYTES_MAX } from './limits.js';
import type { MulticastSender } from './sender.js';
import type { Shared } from './shared.js';

/** A message whose fragments are not all sent yet. */
interface Queued {
  topic: string;
  lamport: number;
  data: Buffer;
  split: Split;
  /** The next fragment to send. */
  next: number;
  /** The small lane's highest sequence at publish: sent once every receiver acked it. */
  after: number;
  /** When it was published (ctx.now()). */
  at: number;
}

export class BulkSender {
  /** Bytes of messages waiting for the window. */
  queuedBytes = 0;
  private readonly queue: Queued[] = [];
  /** The last sequence given to a fragment, sent or not. */
  private reserved = 0;
  /** Each topic's last message: its last sequence (for outstanding()). */
  private readonly lastOfTopic = new Map<string, number>();

  constructor(
    private readonly shared: Shared,
    private readonly sender: MulticastSender,
    private readonly room: DatagramRoom,
    /** The small lane's sender, whose earlier messages a large one waits for. */
    private readonly small: MulticastSender,
  ) {
    sender.onProgress = () => this.pump();
    small.onProgress = () => this.pump();
  }

  /**
   * Numbers a message's fragments and sends what the window allows now; throws a RangeError when
   * RELIABLE_QUEUE_BYTES_MAX would be passed.
   */
  publish(topic: string, data: Buffer, onSettled?: (s: AckStatus) => void): MessageId {
    if (this.queuedBytes + data.length > RELIABLE_QUEUE_BYTES_MAX)
      throw new RangeError(
        `${this.queuedBytes} bytes are still waiting to be sent; publish more once queuedBytes() is lower`,
      );
    const split = new Split(data.length, this.room.payloadRoom(topic), framedRoom(this.shared.epoch));
    const first = Math.max(this.reserved, this.sender.highest) + 1;
    this.reserved = first + split.count - 1;
    const id: MessageId = {
      origin: this.shared.ctx.self.id,
      epoch: this.shared.epoch,
      seq: first,
      bulk: true,
    };
    this.queue.push({
      topic,
      lamport: this.shared.stamp(),
      data,
      split,
      next: 0,
      after: this.small.highest,
      at: this.shared.ctx.now(),
    });
    this.queuedBytes += data.length;
    this.lastOfTopic.set(topic, this.reserved);
    if (onSettled) this.sender.addWaiter(id, this.reserved, onSettled);
    this.pump();
    return id;
  }

  /** Sends fragments while the window has room. */
  /** Whether no message waits for the window. */
  get idle(): boolean {
    return this.queue.length === 0;
  }

  pump(): void {
    if (this.queue.length === 0) return;
    // Whoever is live now must have room kept for them before anything more is numbered.
    this.sender.trackReceivers();
    for (let q = this.queue[0]; q; q = this.queue[0]) {
      if (q.next === 0 && !this.small.ackedByAll(q.after, q.at)) return;
      const head = q.split.header(q.next);
      const [start, end] = q.split.range(q.next);
      if (!this.sender.mayPush(head.length + end - start)) return;
      this.sender.pushFragment(q.topic, head, q.data, start, end, q.lamport);
      if (++q.next === q.split.count) {
        this.queue.shift();
        this.queuedBytes -= q.data.length;
      }
    }
  }

  /**
   * Whether a message of `topic` is still on its way to a receiver we wait for: a small message
   * of that topic must then follow it in this lane, to be delivered after it.
   */
  outstanding(topic: string): boolean {
    const last = this.lastOfTopic.get(topic);
    if (last === undefined) return false;
    if (last > this.sender.slowestReceived()) return true;
    this.lastOfTopic.delete(topic);
    return false;
  }
}
