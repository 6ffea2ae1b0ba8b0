/**
 * The attachment of `rm.d` and `rm.u` datagrams: the messages themselves, packed.
 *
 * Messages published in one burst (before the node's deferred flush runs) are packed into as few
 * datagrams as fit (datagram.ts counts the room): `rm.d {e, jp, k: [topics]}` with the messages
 * in the binary attachment (wire.ts), each encoded as
 *   varint seq delta (>= 1; the first from 0) | varint Lamport delta (the first from 0)
 *   | u8 index into k | varint payload bytes | payload, UTF-8
 * A message is written into the open datagram when it is published, so a burst costs one copy of
 * each payload and no JSON; Lamport times never fall along a stream, so the deltas are >= 0.
 */
import { ByteReader, DATAGRAM_PAYLOAD_BYTES_MAX, writeVarint } from '../wire.js';
import type { StreamMessage } from './delivery.js';
import type { DatagramRoom } from './datagram.js';
import { RELIABLE_BATCH_MESSAGES_MAX } from './limits.js';

/**
 * Reads one message's payload of `length` bytes at the reader's position into the lane's message
 * object (a text message, or a fragment: fragments.ts); undefined when malformed.
 */
export type PayloadReader<T> = (
  seq: number,
  topic: string,
  lamport: number,
  r: ByteReader,
  length: number,
) => T | undefined;

/**
 * Parses the messages of an attachment, given the body's topic list (already checked); undefined
 * if malformed in any way, or holding none or more than `messagesMax`.
 */
export function decodeMessages<T>(
  bytes: Buffer,
  topics: string[],
  messagesMax: number,
  read: PayloadReader<T>,
): T[] | undefined {
  const r = new ByteReader(bytes);
  const messages: T[] = [];
  let seq = 0;
  let lamport = 0;
  while (!r.done) {
    if (messages.length >= messagesMax) return undefined;
    const seqDelta = r.varint();
    const lamportDelta = r.varint();
    const topic = topics[r.u8()];
    const length = r.varint();
    if (r.bad || seqDelta === 0 || topic === undefined || length > DATAGRAM_PAYLOAD_BYTES_MAX)
      return undefined;
    seq += seqDelta;
    lamport += lamportDelta;
    if (seq > Number.MAX_SAFE_INTEGER || lamport > Number.MAX_SAFE_INTEGER) return undefined;
    const message = read(seq, topic, lamport, r, length);
    if (r.bad || message === undefined) return undefined;
    messages.push(message);
  }
  return messages.length > 0 ? messages : undefined;
}

/**
 * Builds datagram attachments message by message: add() writes a message into the open
 * datagram, sending it first when the message does not fit; flush() sends the open datagram.
 * `send` gets the topic list and the attachment, which it must encode before returning (the
 * bytes are reused).
 */
export class Packer {
  count = 0;
  private readonly buf = Buffer.allocUnsafe(DATAGRAM_PAYLOAD_BYTES_MAX);
  private off = 0;
  private topics: string[] = [];
  private topicListBytes = 0;
  private prevSeq = 0;
  private prevLamport = 0;

  constructor(
    private readonly room: DatagramRoom,
    private readonly send: (topics: string[], attachment: Buffer) => void,
  ) {}

  add(message: StreamMessage): void {
    const o = this.header(message.seq, message.lamport, message.topic, message.bytes);
    this.off = o + this.buf.write(message.payload, o, 'utf8');
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
    this.off = this.count = this.topicListBytes = this.prevSeq = this.prevLamport = 0;
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
      this.topicListBytes += this.room.topicEntryBytes(topic);
    }
    let o = writeVarint(this.buf, this.off, seq - this.prevSeq);
    o = writeVarint(this.buf, o, lamport - this.prevLamport);
    this.buf[o++] = t; // the topic index: one byte, as RELIABLE_BATCH_MESSAGES_MAX topics fit one
    o = writeVarint(this.buf, o, bytes);
    this.prevSeq = seq;
    this.prevLamport = lamport;
    this.count++;
    return o;
  }

  private fits(seq: number, lamport: number, topic: string, bytes: number): boolean {
    const newTopicBytes = this.topics.includes(topic) ? 0 : this.room.topicEntryBytes(topic);
    const messageBytes = this.room.messageEntryBytes(seq - this.prevSeq, lamport - this.prevLamport, bytes);
    return this.room.fits(this.topicListBytes + newTopicBytes, this.off + messageBytes);
  }
}
