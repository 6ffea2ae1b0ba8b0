/**
 * The messages of reliable delivery, declared once: each type's wire name, its body as it travels
 * (short field names, JSON), the check the node runs on it before any role sees it, and the
 * builder the roles send it with. Short names live only here and where a role reads a body
 * (destructured at once into domain names); the field order of each builder is the wire's.
 *
 *   rm.d    data, multicast or repair  {e: epoch, jp: join point, k: topics} + messages (packer.ts)
 *   rm.hi   announce                   {e: epoch, hi: highest sequence, jp: join point}
 *   rm.nak  NACK, to the sender        {e: epoch, r: missing ranges [first, last]}
 *   rm.gone repair impossible          {e: epoch, lo: oldest still repairable (RESTARTED_LO: restarted)}
 *   rm.ack  cumulative ack             {e: epoch, f: where the receiver joined, a: acked up to}
 *   rm.u    unicast message            {e: epoch, to: destination, b: oldest unacked (base), k: topics} + one message
 *   rm.ua   unicast ack                {e: epoch, a: acked up to}
 */
import { is, type AttachmentDecoder, type Check, type Envelope, type PeerId } from '../wire.js';
import { StreamMessage } from './delivery.js';
import { decodeMessages } from './packer.js';
import {
  RELIABLE_BATCH_MESSAGES_MAX,
  RELIABLE_NACK_RANGES_MAX,
  RELIABLE_PAYLOAD_BYTES_MAX,
  RELIABLE_TOPIC_CHARS_MAX,
  RELIABLE_UNICAST_BATCH_MESSAGES_MAX,
} from './limits.js';

export const MESSAGE = {
  data: 'rm.d',
  announce: 'rm.hi',
  nack: 'rm.nak',
  gone: 'rm.gone',
  ack: 'rm.ack',
  unicast: 'rm.u',
  unicastAck: 'rm.ua',
} as const;

/** A run of sequences, first and last inclusive. */
export type SeqRange = [number, number];

export interface DataBody {
  e: number;
  jp: number;
  k: string[];
}
export interface AnnounceBody {
  e: number;
  hi: number;
  jp: number;
}
export interface NackBody {
  e: number;
  r: SeqRange[];
}
export interface GoneBody {
  e: number;
  lo: number;
}
export interface AckBody {
  e: number;
  f: number;
  a: number;
}
export interface UnicastBody {
  e: number;
  to: PeerId;
  b: number;
  k: string[];
}
export interface UnicastAckBody {
  e: number;
  a: number;
}

interface Bodies {
  'rm.d': DataBody;
  'rm.hi': AnnounceBody;
  'rm.nak': NackBody;
  'rm.gone': GoneBody;
  'rm.ack': AckBody;
  'rm.u': UnicastBody;
  'rm.ua': UnicastAckBody;
}
export type MessageType = keyof Bodies;

/** `rm.gone` lo meaning "that stream ended with a restart". */
export const RESTARTED_LO = Number.MAX_SAFE_INTEGER;

const TOPIC_RE = /^[a-z0-9][a-z0-9.-]*$/;
const uint = is.uint();
const TOPIC: Check = (v) => typeof v === 'string' && v.length <= RELIABLE_TOPIC_CHARS_MAX && TOPIC_RE.test(v);
const TOPICS: Check = (v) =>
  Array.isArray(v) && v.length >= 1 && v.length <= RELIABLE_BATCH_MESSAGES_MAX && v.every(TOPIC);
const RANGE: Check = (v) => Array.isArray(v) && v.length === 2 && uint(v[0]) && uint(v[1]) && v[0] <= v[1];

/** The check of each body, run by the node before onMessage. */
export const BODIES: Record<MessageType, Check> = {
  'rm.d': is.object({ e: uint, jp: uint, k: TOPICS }),
  'rm.hi': is.object({ e: uint, hi: uint, jp: uint }),
  'rm.nak': is.object({ e: uint, r: is.array(RANGE, RELIABLE_NACK_RANGES_MAX) }),
  'rm.gone': is.object({ e: uint, lo: uint }),
  'rm.ack': is.object({ e: uint, f: uint, a: uint }),
  'rm.u': is.object({ e: uint, to: is.peerId(), b: uint, k: TOPICS }),
  'rm.ua': is.object({ e: uint, a: uint }),
};

/** The types that carry messages in a binary attachment, with its decoder (layout in packer.ts). */
export const ATTACHMENTS: Record<typeof MESSAGE.data | typeof MESSAGE.unicast, AttachmentDecoder> = {
  'rm.d': (bytes, body) =>
    hasTopics(body) ? decodeMessages(bytes, body.k, RELIABLE_BATCH_MESSAGES_MAX) : undefined,
  'rm.u': (bytes, body) =>
    hasTopics(body) ? decodeMessages(bytes, body.k, RELIABLE_UNICAST_BATCH_MESSAGES_MAX) : undefined,
};

/**
 * Narrows an envelope to its type's body. The node delivers an envelope only after BODIES[type]
 * accepted its body, so the type name is all that is left to tell.
 */
export function carries<T extends MessageType>(env: Envelope, type: T): env is Envelope<Bodies[T]> {
  return env.t === type;
}

/** The messages of an `rm.d` or `rm.u` envelope, as its attachment decoder (ATTACHMENTS) parsed them. */
export function messagesOf(env: Envelope<DataBody | UnicastBody>): StreamMessage[] {
  return isMessageList(env.a) ? env.a : [];
}

function isMessageList(v: unknown): v is StreamMessage[] {
  return Array.isArray(v) && v[0] instanceof StreamMessage; // the decoder builds all or none
}

function hasTopics(body: unknown): body is { k: string[] } {
  return typeof body === 'object' && body !== null && 'k' in body && Array.isArray(body.k);
}

export const dataBody = (epoch: number, joinPoint: number, topics: string[]): DataBody => ({
  e: epoch,
  jp: joinPoint,
  k: topics,
});
export const announceBody = (epoch: number, highest: number, joinPoint: number): AnnounceBody => ({
  e: epoch,
  hi: highest,
  jp: joinPoint,
});
export const nackBody = (epoch: number, missing: SeqRange[]): NackBody => ({ e: epoch, r: missing });
export const goneBody = (epoch: number, oldestKept: number): GoneBody => ({ e: epoch, lo: oldestKept });
export const ackBody = (epoch: number, joinedAt: number, ackedUpTo: number): AckBody => ({
  e: epoch,
  f: joinedAt,
  a: ackedUpTo,
});
export const unicastBody = (epoch: number, to: PeerId, base: number, topics: string[]): UnicastBody => ({
  e: epoch,
  to,
  b: base,
  k: topics,
});
export const unicastAckBody = (epoch: number, ackedUpTo: number): UnicastAckBody => ({
  e: epoch,
  a: ackedUpTo,
});

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
