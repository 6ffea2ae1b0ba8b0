/**
 * How much fits in one datagram of reliable delivery: the only place that counts its bytes.
 *
 * An `rm.d` or `rm.u` datagram is the JSON envelope (wire.ts), the byte that ends it, and the
 * attachment of messages (layout in packer.ts). What varies with the contents is the body's topic
 * list and the attachment; the rest is bounded once per sender by writing the envelope with every
 * number at its largest, so a datagram that fits here fits DATAGRAM_PAYLOAD_BYTES_MAX on the wire
 * whatever the node stamps on it.
 */
import { DATAGRAM_PAYLOAD_BYTES_MAX, PEER_ID_HEX_CHARS, PROTOCOL_VERSION, varintBytes } from '../wire.js';
import { BULK, SMALL } from './messages.js';

/** The byte between the JSON and the attachment (wire.ts). */
const ATTACHMENT_MARK_BYTES = 1;
/**
 * What a topic adds to the JSON topic list beyond its characters: two quotes and a comma. The
 * first topic has no comma, so a full datagram keeps one byte to spare (counted so since the
 * packing began; exact counting would move messages between datagrams).
 */
const TOPIC_LIST_ENTRY_EXTRA_BYTES = 3;
/** A message's index into the topic list, in the attachment (one byte: see packer.ts). */
const TOPIC_INDEX_BYTES = 1;

/** The room in one datagram of a given sender. */
export class DatagramRoom {
  /** The envelope with an empty topic list and its numbers at their largest, plus the attachment mark. */
  private readonly envelopeBytes: number;

  constructor(senderName: string) {
    this.envelopeBytes = envelopeBytesMax(senderName) + ATTACHMENT_MARK_BYTES;
  }

  /** Bytes a topic (a-z 0-9 . -, one byte a character) adds to the body's topic list. */
  topicEntryBytes(topic: string): number {
    return topic.length + TOPIC_LIST_ENTRY_EXTRA_BYTES;
  }

  /** Bytes one message takes in the attachment, given its distances from the message before it. */
  messageEntryBytes(seqDelta: number, lamportDelta: number, payloadBytes: number): number {
    return (
      varintBytes(seqDelta) +
      varintBytes(lamportDelta) +
      TOPIC_INDEX_BYTES +
      varintBytes(payloadBytes) +
      payloadBytes
    );
  }

  /**
   * The largest payload of one message alone in a datagram of `topic`, whatever its sequence and
   * Lamport time (the first message's deltas are the numbers themselves): a fragment's size.
   */
  payloadRoom(topic: string): number {
    const fixed = this.envelopeBytes + this.topicEntryBytes(topic);
    const header = this.messageEntryBytes(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 0);
    let room = DATAGRAM_PAYLOAD_BYTES_MAX - fixed - header;
    // The payload's own length grows its varint: give back the bytes that takes.
    while (!this.fits(this.topicEntryBytes(topic), this.messageEntryBytes(BIG, BIG, room))) room--;
    return room;
  }

  /** Whether a datagram with this topic list and this attachment fits. */
  fits(topicListBytes: number, attachmentBytes: number): boolean {
    return this.envelopeBytes + topicListBytes + attachmentBytes <= DATAGRAM_PAYLOAD_BYTES_MAX;
  }
}

const BIG = Number.MAX_SAFE_INTEGER;

/** Bytes of the JSON of an `rm.d` or `rm.u` envelope with an empty topic list, at the largest values its numbers can take. */
function envelopeBytesMax(senderName: string): number {
  const big = Number.MAX_SAFE_INTEGER;
  const peerId = '0'.repeat(PEER_ID_HEX_CHARS);
  const env = ([t, b]: [string, unknown]) => ({
    v: PROTOCOL_VERSION,
    t,
    i: peerId,
    n: senderName,
    c: big,
    s: big,
    l: big,
    b,
  });
  // Both lanes: their type names are as long, their bodies the same.
  return Math.max(
    ...[SMALL, BULK].flatMap(({ DATA, UNICAST }) => [
      Buffer.byteLength(JSON.stringify(env(DATA.out({ epoch: big, joinPoint: big, topics: [] })))),
      Buffer.byteLength(JSON.stringify(env(UNICAST.out({ epoch: big, to: peerId, base: big, topics: [] })))),
    ]),
  );
}
