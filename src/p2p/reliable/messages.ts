/**
 * The messages of reliable delivery, declared once with the message kit (kit/message.ts): each
 * type's wire name, its fields by domain name with the short name the datagram uses, and the
 * check the node runs on it before any role sees it. Field order is the wire's:
 *
 *   rm.d    data, multicast or repair  {e: epoch, jp: join point, k: topics} + messages (packer.ts)
 *   rm.hi   announce                   {e: epoch, hi: highest sequence, jp: join point}
 *   rm.nak  NACK, to the sender        {e: epoch, r: missing ranges [first, last]}
 *   rm.gone repair impossible          {e: epoch, lo: oldest still repairable (RESTARTED_LO: restarted)}
 *   rm.ack  cumulative ack             {e: epoch, f: where the receiver joined, a: acked up to}
 *   rm.u    unicast message            {e: epoch, to: destination, b: oldest unacked (base), k: topics} + one message
 *   rm.ua   unicast ack                {e: epoch, a: acked up to}
 */
import { is, type AttachmentDecoder, type ByteReader, type Check, type Envelope } from '../wire.js';
import { f, message, messages, type Body, type Origin } from '../kit/message.js';
import type { Address } from '../transport/transport.js';
import { StreamMessage } from './delivery.js';
import { decodeFragment, Fragment, REFUSAL_REASONS, type WireRefusal } from './fragments.js';
import { decodeMessages } from './packer.js';
import {
  RELIABLE_BATCH_MESSAGES_MAX,
  RELIABLE_NACK_RANGES_MAX,
  RELIABLE_PAYLOAD_BYTES_MAX,
  RELIABLE_REFUSALS_MAX,
  RELIABLE_TOPIC_CHARS_MAX,
  RELIABLE_UNICAST_BATCH_MESSAGES_MAX,
} from './limits.js';

/** A run of sequences, first and last inclusive. */
export type SeqRange = [number, number];

/** `rm.gone` lo meaning "that stream ended with a restart". */
export const RESTARTED_LO = Number.MAX_SAFE_INTEGER;

const TOPIC_RE = /^[a-z0-9][a-z0-9.-]*$/;
const uint = is.uint();
const isTopic: Check = (v) =>
  typeof v === 'string' && v.length <= RELIABLE_TOPIC_CHARS_MAX && TOPIC_RE.test(v);
const isTopics = (v: unknown): v is string[] =>
  Array.isArray(v) && v.length >= 1 && v.length <= RELIABLE_BATCH_MESSAGES_MAX && v.every(isTopic);
const isRange = (v: unknown): v is SeqRange =>
  Array.isArray(v) && v.length === 2 && uint(v[0]) && uint(v[1]) && v[0] <= v[1];

/** Our stream epoch: the sender's incarnation when its module was built. */
const epoch = () => f.uint().wire('e');
/** The topics of the messages in the attachment, each message naming its topic by index. */
const topics = () => f.guard(isTopics).wire('k');
const isRefusal = (v: unknown): v is WireRefusal =>
  Array.isArray(v) &&
  v.length === 2 &&
  uint(v[0]) &&
  Number.isInteger(v[1]) &&
  v[1] >= 0 &&
  v[1] < REFUSAL_REASONS.length;
const isRefusals = (v: unknown): v is WireRefusal[] =>
  Array.isArray(v) && v.length <= RELIABLE_REFUSALS_MAX && v.every(isRefusal);

/**
 * The messages of one lane. Reliable delivery runs two lanes of streams side by side, each its
 * own sequence space with the same algorithm: `rm.*` for messages that fit one datagram, `rb.*`
 * (bulk) for fragments of larger ones (fragments.ts), so a burst of small messages never waits
 * behind a large one's fragments.
 */
function laneMessages<const P extends string>(prefix: P) {
  const DATA = message(`${prefix}.d`, { epoch: epoch(), joinPoint: f.uint().wire('jp'), topics: topics() });
  const ANNOUNCE = message(`${prefix}.hi`, {
    epoch: epoch(),
    highest: f.uint().wire('hi'),
    joinPoint: f.uint().wire('jp'),
  });
  const NACK = message(`${prefix}.nak`, {
    epoch: epoch(),
    missing: f.array(f.guard(isRange), RELIABLE_NACK_RANGES_MAX).wire('r'),
  });
  const GONE = message(`${prefix}.gone`, { epoch: epoch(), oldestKept: f.uint().wire('lo') });
  /** `rf`: the first fragments of messages this receiver refused (bulk lane only; see fragments.ts). */
  const ACK = message(`${prefix}.ack`, {
    epoch: epoch(),
    joinedAt: f.uint().wire('f'),
    ackedUpTo: f.uint().wire('a'),
    refused: f.optional(f.guard(isRefusals)).wire('rf'),
  });
  const UNICAST = message(`${prefix}.u`, {
    epoch: epoch(),
    to: f.peerId(),
    base: f.uint().wire('b'),
    topics: topics(),
  });
  const UNICAST_ACK = message(`${prefix}.ua`, {
    epoch: epoch(),
    ackedUpTo: f.uint().wire('a'),
    refused: f.optional(f.guard(isRefusals)).wire('rf'),
  });
  return { DATA, ANNOUNCE, NACK, GONE, ACK, UNICAST, UNICAST_ACK };
}

/** Messages that fit one datagram. */
export const SMALL = laneMessages('rm');
/** Fragments of messages that do not (fragments.ts). */
export const BULK = laneMessages('rb');
/** The messages of one lane, as its roles use them. */
export type LaneWire = ReturnType<typeof laneMessages<string>>;

export const { DATA, ANNOUNCE, NACK, GONE, ACK, UNICAST, UNICAST_ACK } = SMALL;

/** The small lane's types: their checks are what the node's codec runs (with BULK_MESSAGES). */
export const MESSAGES = messages(DATA, ANNOUNCE, NACK, GONE, ACK, UNICAST, UNICAST_ACK);
export const BULK_MESSAGES = messages(
  BULK.DATA,
  BULK.ANNOUNCE,
  BULK.NACK,
  BULK.GONE,
  BULK.ACK,
  BULK.UNICAST,
  BULK.UNICAST_ACK,
);

export type DataBody = Body<typeof DATA>;
export type AnnounceBody = Body<typeof ANNOUNCE>;
export type NackBody = Body<typeof NACK>;
export type GoneBody = Body<typeof GONE>;
export type AckBody = Body<typeof ACK>;
export type UnicastBody = Body<typeof UNICAST>;
export type UnicastAckBody = Body<typeof UNICAST_ACK>;

/**
 * The types that carry messages in a binary attachment, with its decoder (layout in packer.ts):
 * the small lane's payloads are text, the bulk lane's are fragments (fragments.ts).
 */
export const ATTACHMENTS: Record<string, AttachmentDecoder> = {
  'rm.d': (bytes, body) =>
    hasTopics(body) ? decodeMessages(bytes, body.k, RELIABLE_BATCH_MESSAGES_MAX, textMessage) : undefined,
  'rm.u': (bytes, body) =>
    hasTopics(body)
      ? decodeMessages(bytes, body.k, RELIABLE_UNICAST_BATCH_MESSAGES_MAX, textMessage)
      : undefined,
};
export const BULK_ATTACHMENTS: Record<string, AttachmentDecoder> = {
  'rb.d': (bytes, body) =>
    hasTopics(body) ? decodeMessages(bytes, body.k, RELIABLE_BATCH_MESSAGES_MAX, decodeFragment) : undefined,
  'rb.u': (bytes, body) =>
    hasTopics(body)
      ? decodeMessages(bytes, body.k, RELIABLE_UNICAST_BATCH_MESSAGES_MAX, decodeFragment)
      : undefined,
};

/** The PayloadReader (packer.ts) of the small lane: text of at most RELIABLE_PAYLOAD_BYTES_MAX bytes. */
const textMessage = (
  seq: number,
  topic: string,
  lamport: number,
  r: ByteReader,
  length: number,
): StreamMessage | undefined =>
  length > RELIABLE_PAYLOAD_BYTES_MAX
    ? undefined
    : new StreamMessage(seq, topic, r.utf8(length), lamport, length);

/** Who sent an envelope, as the kit's dispatch tells its handlers (for the types read with `.of`). */
export function originOf(env: Envelope, address: Address): Origin {
  return { id: env.i, name: env.n, incarnation: env.c, lamport: env.l, address };
}

/** The messages of an `rm.d` or `rm.u` envelope, as its attachment decoder (ATTACHMENTS) parsed them. */
export function messagesOf(env: Envelope): StreamMessage[] {
  return isListOf(env.a, StreamMessage) ? env.a : [];
}

/** The fragments of an `rb.d` or `rb.u` envelope, as its attachment decoder parsed them. */
export function fragmentsOf(env: Envelope): Fragment[] {
  return isListOf(env.a, Fragment) ? env.a : [];
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function isListOf<T>(v: unknown, kind: new (...args: any[]) => T): v is T[] {
  return Array.isArray(v) && v[0] instanceof kind; // the decoders build all or none
}

function hasTopics(body: unknown): body is { k: string[] } {
  return typeof body === 'object' && body !== null && 'k' in body && Array.isArray(body.k);
}

/** Throws a RangeError when a topic breaks the limits. */
export function checkTopic(topic: string): void {
  if (topic.length === 0 || topic.length > RELIABLE_TOPIC_CHARS_MAX || !TOPIC_RE.test(topic))
    throw new RangeError(`topic '${topic}' must be 1-${RELIABLE_TOPIC_CHARS_MAX} chars of a-z 0-9 . -`);
}

/**
 * A payload's size as the limit counts it: its UTF-8 bytes (a lone surrogate, which UTF-8
 * cannot carry, counts and travels as U+FFFD).
 */
export function payloadBytes(payload: string): number {
  return Buffer.byteLength(payload);
}
