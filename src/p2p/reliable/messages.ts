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
import { is, type AttachmentDecoder, type Check, type Envelope } from '../wire.js';
import { f, message, messages, type Body, type Origin } from '../kit/message.js';
import type { Address } from '../transport/transport.js';
import { StreamMessage } from './delivery.js';
import { decodeMessages } from './packer.js';
import {
  RELIABLE_BATCH_MESSAGES_MAX,
  RELIABLE_NACK_RANGES_MAX,
  RELIABLE_PAYLOAD_BYTES_MAX,
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

export const DATA = message('rm.d', { epoch: epoch(), joinPoint: f.uint().wire('jp'), topics: topics() });
export const ANNOUNCE = message('rm.hi', {
  epoch: epoch(),
  highest: f.uint().wire('hi'),
  joinPoint: f.uint().wire('jp'),
});
export const NACK = message('rm.nak', {
  epoch: epoch(),
  missing: f.array(f.guard(isRange), RELIABLE_NACK_RANGES_MAX).wire('r'),
});
export const GONE = message('rm.gone', { epoch: epoch(), oldestKept: f.uint().wire('lo') });
export const ACK = message('rm.ack', {
  epoch: epoch(),
  joinedAt: f.uint().wire('f'),
  ackedUpTo: f.uint().wire('a'),
});
export const UNICAST = message('rm.u', {
  epoch: epoch(),
  to: f.peerId(),
  base: f.uint().wire('b'),
  topics: topics(),
});
export const UNICAST_ACK = message('rm.ua', { epoch: epoch(), ackedUpTo: f.uint().wire('a') });

/** Every type of reliable delivery: their checks are what the node's codec runs. */
export const MESSAGES = messages(DATA, ANNOUNCE, NACK, GONE, ACK, UNICAST, UNICAST_ACK);
/**
 * The types without an attachment, dispatched by the kit. The two that carry messages (DATA,
 * UNICAST) are read with `.of(env)` instead: their handlers need the attachment, which the kit's
 * dispatch does not hand over.
 */
export const REPLIES = messages(ANNOUNCE, NACK, GONE, ACK, UNICAST_ACK);

export type DataBody = Body<typeof DATA>;
export type AnnounceBody = Body<typeof ANNOUNCE>;
export type NackBody = Body<typeof NACK>;
export type GoneBody = Body<typeof GONE>;
export type AckBody = Body<typeof ACK>;
export type UnicastBody = Body<typeof UNICAST>;
export type UnicastAckBody = Body<typeof UNICAST_ACK>;

/** The types that carry messages in a binary attachment, with its decoder (layout in packer.ts). */
export const ATTACHMENTS: Record<typeof DATA.type | typeof UNICAST.type, AttachmentDecoder> = {
  'rm.d': (bytes, body) =>
    hasTopics(body) ? decodeMessages(bytes, body.k, RELIABLE_BATCH_MESSAGES_MAX) : undefined,
  'rm.u': (bytes, body) =>
    hasTopics(body) ? decodeMessages(bytes, body.k, RELIABLE_UNICAST_BATCH_MESSAGES_MAX) : undefined,
};

/** Who sent an envelope, as the kit's dispatch tells its handlers (for the types read with `.of`). */
export function originOf(env: Envelope, address: Address): Origin {
  return { id: env.i, name: env.n, incarnation: env.c, lamport: env.l, address };
}

/** The messages of an `rm.d` or `rm.u` envelope, as its attachment decoder (ATTACHMENTS) parsed them. */
export function messagesOf(env: Envelope): StreamMessage[] {
  return isMessageList(env.a) ? env.a : [];
}

function isMessageList(v: unknown): v is StreamMessage[] {
  return Array.isArray(v) && v[0] instanceof StreamMessage; // the decoder builds all or none
}

function hasTopics(body: unknown): body is { k: string[] } {
  return typeof body === 'object' && body !== null && 'k' in body && Array.isArray(body.k);
}

/** Returns the payload's size in bytes, or throws a RangeError when a topic or payload breaks the limits. */
export function checkMessage(topic: string, payload: string): number {
  if (topic.length === 0 || topic.length > RELIABLE_TOPIC_CHARS_MAX || !TOPIC_RE.test(topic))
    throw new RangeError(`topic '${topic}' must be 1-${RELIABLE_TOPIC_CHARS_MAX} chars of a-z 0-9 . -`);
  const bytes = payloadBytes(payload);
  if (bytes > RELIABLE_PAYLOAD_BYTES_MAX)
    throw new RangeError(
      `payload is ${bytes} bytes encoded, over the ${RELIABLE_PAYLOAD_BYTES_MAX}-byte limit`,
    );
  return bytes;
}

/**
 * A payload's size as the limit counts it: its UTF-8 bytes (a lone surrogate, which UTF-8
 * cannot carry, counts and travels as U+FFFD).
 */
export function payloadBytes(payload: string): number {
  return Buffer.byteLength(payload);
}
