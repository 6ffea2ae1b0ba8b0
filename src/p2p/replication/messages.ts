/**
 * Replication's messages, declared once with the message kit (kit/message.ts): from each
 * declaration come the check the codec runs on every body, the body's type by the domain names the
 * roles use, and the mapping both ways to the short names on the wire (part of the protocol, never
 * renamed; field order is the order on the wire). Only this file knows the short names.
 *
 *   rp.app  append          appender -> group, then to each holder not acked   { e }
 *   rp.ack  append stored   holder -> appender                                { o, s, k }
 *   rp.nak  append refused  holder -> appender                                { o, s, r }
 *   rp.tq   tree request    initiator -> responder                            { q, ln, lv, p }
 *   rp.tr   tree reply      responder -> initiator                            { q, h }
 *   rp.iq   IBLT request    initiator -> responder                            { q, z, m, f, n }
 *   rp.ir   IBLT reply      responder -> initiator                            { q, c }
 *   rp.get  fetch entries   initiator -> responder                            { q, k }
 *   rp.ent  entries         responder -> initiator                            { q, e }
 *   rp.put  push entries    initiator -> responder                            { q, e }
 *   rp.got  push stored     responder -> initiator                            { q }
 *   rp.rnd  round poll      coordinator -> holder                             { r }
 *   rp.st   round status    holder -> coordinator                             { r, n, h, b, d, k }
 *   rp.fin  round finish    coordinator -> holder                             { r, h }
 */
import { DATAGRAM_PAYLOAD_BYTES_MAX, is, isPeerId, type PeerId } from '../wire.js';
import { f, message, messages } from '../kit/message.js';
import { ENTRY_TEXT_BYTES_MAX, type Entry } from './entry.js';
import { DIGEST_LEVELS } from './replica-set.js';
import { IBLT_CELLS_MAX, IBLT_CELLS_MIN } from './iblt.js';

/** Holder ids an ack lists (the holders its sender knows), so an appender learns of dead ones. */
export const ACK_HOLDERS_MAX = 24;
export const GET_KEYS_PER_REQUEST_MAX = 48;
/** IBLT cells one `rp.iq` may ask for (fewer when the responder's answer would not fit a datagram). */
export const IBLT_CELLS_PER_REQUEST_MAX = 256;
/** Entries one `rp.ent` or `rp.put` may carry. */
export const ENTRIES_PER_MESSAGE_MAX = 64;
/** Parents one `rp.tq` may name. */
const TREE_PARENTS_PER_REQUEST_MAX = 64;
/** Bytes of one bucket hash on the wire (one 32-bit lane). */
export const HASH_BYTES = 4;
/** Bytes of one content hash (both lanes) in an `rp.get`. */
export const KEY_BYTES = 8;
const B64_CHARS_MAX = DATAGRAM_PAYLOAD_BYTES_MAX;

/**
 * An entry as one message carries it: [origin, seq, lamport, text] (entryOf and wireEntry convert).
 * The kit renames keys only, so the two value encodings of this protocol, entries as tuples and
 * bytes as base64, are converted where a role sends or receives them.
 */
export type WireEntry = [origin: PeerId, seq: number, lamport: number, text: string];

const isWireEntry = (v: unknown): v is WireEntry =>
  Array.isArray(v) &&
  v.length === 4 &&
  isPeerId(v[0]) &&
  is.int(1, Number.MAX_SAFE_INTEGER)(v[1]) &&
  is.uint()(v[2]) &&
  is.str(ENTRY_TEXT_BYTES_MAX)(v[3]);

/** Numbers a session's request; its answer echoes it. */
const request = () => f.uint().wire('q');
/** Bytes, base64-encoded. */
const base64 = () => f.str(B64_CHARS_MAX);
const entries = () => f.array(f.guard(isWireEntry), ENTRIES_PER_MESSAGE_MAX).wire('e');
/** A holder's digest as the round compares it. */
const digest = () => f.str(16, 16).wire('h');

export const APPEND = message('rp.app', { entry: f.guard(isWireEntry).wire('e') });
/** `holders`: the holders the acker knows of (any state but left). */
export const ACK = message('rp.ack', {
  origin: f.peerId().wire('o'),
  seq: f.uint().wire('s'),
  holders: f.array(f.peerId(), ACK_HOLDERS_MAX).wire('k'),
});
/** A holder could not store an append (why, as a word: remote text never reaches a terminal). */
export const REFUSAL = message('rp.nak', {
  origin: f.peerId().wire('o'),
  seq: f.uint().wire('s'),
  reason: f.literal('full', 'io', 'other').wire('r'),
});
/** The bucket hashes of `lane` under each of `parents` (buckets of level - 1). */
export const TREE_REQUEST = message('rp.tq', {
  request: request(),
  lane: f.literal(0, 1).wire('ln'),
  level: f.int(1, DIGEST_LEVELS).wire('lv'),
  parents: f.array(f.uint(), TREE_PARENTS_PER_REQUEST_MAX).wire('p'),
});
export const TREE_REPLY = message('rp.tr', { request: request(), hashes: base64().wire('h') });
/** `count` cells from `first` of the IBLT of `cells` cells built for `session`. */
export const IBLT_REQUEST = message('rp.iq', {
  request: request(),
  session: f.uint().wire('z'),
  cells: f.int(IBLT_CELLS_MIN, IBLT_CELLS_MAX).wire('m'),
  first: f.uint().wire('f'),
  count: f.int(1, IBLT_CELLS_PER_REQUEST_MAX).wire('n'),
});
export const IBLT_REPLY = message('rp.ir', { request: request(), cells: base64().wire('c') });
/** Content hashes, packed (see packKeys). */
export const GET = message('rp.get', { request: request(), keys: base64().wire('k') });
export const ENTRIES = message('rp.ent', { request: request(), entries: entries() });
export const PUT = message('rp.put', { request: request(), entries: entries() });
export const PUT_STORED = message('rp.got', { request: request() });
export const ROUND_POLL = message('rp.rnd', { round: f.uint().wire('r') });
/** `before`: entries when the round reached the holder; `sha256`: of its rewrite, '' if none. */
export const ROUND_STATUS = message('rp.st', {
  round: f.uint().wire('r'),
  entries: f.uint().wire('n'),
  digest: digest(),
  before: f.uint().wire('b'),
  sha256: f.str(64).wire('d'),
  holders: f.array(f.peerId(), ACK_HOLDERS_MAX).wire('k'),
});
export const ROUND_FINISH = message('rp.fin', { round: f.uint().wire('r'), digest: digest() });

export const MESSAGES = messages(
  APPEND,
  ACK,
  REFUSAL,
  TREE_REQUEST,
  TREE_REPLY,
  IBLT_REQUEST,
  IBLT_REPLY,
  GET,
  ENTRIES,
  PUT,
  PUT_STORED,
  ROUND_POLL,
  ROUND_STATUS,
  ROUND_FINISH,
);

export function wireEntry(e: Entry): WireEntry {
  return [e.origin, e.seq, e.lamport, e.text];
}

export function entryOf(w: WireEntry): Entry {
  return { origin: w[0], seq: w[1], lamport: w[2], text: w[3] };
}

/** Content hashes (two 32-bit lanes each) as the base64 bytes of an `rp.get`. */
export function packKeys(keys: ReadonlyArray<[number, number]>): string {
  const b = Buffer.alloc(keys.length * KEY_BYTES);
  keys.forEach(([k1, k2], i) => {
    b.writeUInt32LE(k1, i * KEY_BYTES);
    b.writeUInt32LE(k2, i * KEY_BYTES + 4);
  });
  return b.toString('base64');
}

/** The content hashes an `rp.get` names, or null when its bytes are malformed or too many. */
export function unpackKeys(keys: string): Array<[number, number]> | null {
  const b = Buffer.from(keys, 'base64');
  if (b.length % KEY_BYTES !== 0 || b.length / KEY_BYTES > GET_KEYS_PER_REQUEST_MAX) return null;
  const out: Array<[number, number]> = [];
  for (let i = 0; i < b.length; i += KEY_BYTES) out.push([b.readUInt32LE(i), b.readUInt32LE(i + 4)]);
  return out;
}
