/**
 * Replication's messages, declared once: the schema the codec checks every body against, the
 * shape of each body on the wire (short names: they are part of the protocol, never renamed), and
 * the mapping both ways between that and the domain names the roles use. Only this file knows the
 * short names.
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
import { DATAGRAM_PAYLOAD_BYTES_MAX, is, isPeerId, type Check, type Envelope, type PeerId } from '../wire.js';
import type { ProtocolContext } from '../protocol.js';
import type { Address } from '../transport/transport.js';
import type { WriteFailureKind } from '../write-failure.js';
import { ENTRY_TEXT_JSON_BYTES_MAX, type Entry } from './entry.js';
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

/** An entry on the wire: [origin, seq, lamport, text]. */
type WireEntry = [string, number, number, string];

const wireEntry: Check = (v) =>
  Array.isArray(v) &&
  v.length === 4 &&
  isPeerId(v[0]) &&
  is.int(1, Number.MAX_SAFE_INTEGER)(v[1]) &&
  is.uint()(v[2]) &&
  is.str(ENTRY_TEXT_JSON_BYTES_MAX)(v[3]);
const Q = is.uint();
const B64 = is.str(B64_CHARS_MAX);

export const MESSAGES = {
  'rp.app': is.object({ e: wireEntry }),
  'rp.ack': is.object({ o: is.peerId(), s: is.uint(), k: is.array(is.peerId(), ACK_HOLDERS_MAX) }),
  /** A holder could not store an append (r: why, as a word: remote text never reaches a terminal). */
  'rp.nak': is.object({ o: is.peerId(), s: is.uint(), r: is.literal('full', 'io', 'other') }),
  'rp.tq': is.object({
    q: Q,
    ln: is.literal(0, 1),
    lv: is.int(1, DIGEST_LEVELS),
    p: is.array(is.uint(), TREE_PARENTS_PER_REQUEST_MAX),
  }),
  'rp.tr': is.object({ q: Q, h: B64 }),
  'rp.iq': is.object({
    q: Q,
    z: Q,
    m: is.int(IBLT_CELLS_MIN, IBLT_CELLS_MAX),
    f: Q,
    n: is.int(1, IBLT_CELLS_PER_REQUEST_MAX),
  }),
  'rp.ir': is.object({ q: Q, c: B64 }),
  'rp.get': is.object({ q: Q, k: B64 }),
  'rp.ent': is.object({ q: Q, e: is.array(wireEntry, ENTRIES_PER_MESSAGE_MAX) }),
  'rp.put': is.object({ q: Q, e: is.array(wireEntry, ENTRIES_PER_MESSAGE_MAX) }),
  'rp.got': is.object({ q: Q }),
  'rp.rnd': is.object({ r: Q }),
  'rp.st': is.object({
    r: Q,
    n: Q,
    h: is.str(16, 16),
    b: Q,
    d: is.str(64),
    k: is.array(is.peerId(), ACK_HOLDERS_MAX),
  }),
  'rp.fin': is.object({ r: Q, h: is.str(16, 16) }),
} satisfies Record<string, Check>;

export type MessageType = keyof typeof MESSAGES;

/** Bodies as they travel, in the order their keys are encoded (the bytes must not change). */
interface WireBodies {
  'rp.app': { e: WireEntry };
  'rp.ack': { o: PeerId; s: number; k: PeerId[] };
  'rp.nak': { o: PeerId; s: number; r: WriteFailureKind };
  'rp.tq': { q: number; ln: 0 | 1; lv: number; p: number[] };
  'rp.tr': { q: number; h: string };
  'rp.iq': { q: number; z: number; m: number; f: number; n: number };
  'rp.ir': { q: number; c: string };
  'rp.get': { q: number; k: string };
  'rp.ent': { q: number; e: WireEntry[] };
  'rp.put': { q: number; e: WireEntry[] };
  'rp.got': { q: number };
  'rp.rnd': { r: number };
  'rp.st': { r: number; n: number; h: string; b: number; d: string; k: PeerId[] };
  'rp.fin': { r: number; h: string };
}

/** Bodies as the roles see them. `request` numbers a session's request; its answer echoes it. */
export interface Bodies {
  'rp.app': { entry: Entry };
  /** `holders`: the holders the acker knows of (any state but left). */
  'rp.ack': { origin: PeerId; seq: number; holders: PeerId[] };
  'rp.nak': { origin: PeerId; seq: number; reason: WriteFailureKind };
  /** The bucket hashes of `lane` under each of `parents` (buckets of level - 1). */
  'rp.tq': { request: number; lane: 0 | 1; level: number; parents: number[] };
  'rp.tr': { request: number; hashes: Buffer };
  /** `count` cells from `first` of the IBLT of `cells` cells built for `session`. */
  'rp.iq': { request: number; session: number; cells: number; first: number; count: number };
  'rp.ir': { request: number; cells: Buffer };
  /** Content hashes, packed (see packKeys). */
  'rp.get': { request: number; keys: Buffer };
  'rp.ent': { request: number; entries: Entry[] };
  'rp.put': { request: number; entries: Entry[] };
  'rp.got': { request: number };
  'rp.rnd': { round: number };
  /** `before`: entries when the round reached the holder; `sha256`: of its rewrite, '' if none. */
  'rp.st': {
    round: number;
    entries: number;
    digest: string;
    before: number;
    sha256: string;
    holders: PeerId[];
  };
  'rp.fin': { round: number; digest: string };
}

const toDomain: { [T in MessageType]: (b: WireBodies[T]) => Bodies[T] } = {
  'rp.app': (b) => ({ entry: fromWire(b.e) }),
  'rp.ack': (b) => ({ origin: b.o, seq: b.s, holders: b.k }),
  'rp.nak': (b) => ({ origin: b.o, seq: b.s, reason: b.r }),
  'rp.tq': (b) => ({ request: b.q, lane: b.ln, level: b.lv, parents: b.p }),
  'rp.tr': (b) => ({ request: b.q, hashes: Buffer.from(b.h, 'base64') }),
  'rp.iq': (b) => ({ request: b.q, session: b.z, cells: b.m, first: b.f, count: b.n }),
  'rp.ir': (b) => ({ request: b.q, cells: Buffer.from(b.c, 'base64') }),
  'rp.get': (b) => ({ request: b.q, keys: Buffer.from(b.k, 'base64') }),
  'rp.ent': (b) => ({ request: b.q, entries: b.e.map(fromWire) }),
  'rp.put': (b) => ({ request: b.q, entries: b.e.map(fromWire) }),
  'rp.got': (b) => ({ request: b.q }),
  'rp.rnd': (b) => ({ round: b.r }),
  'rp.st': (b) => ({ round: b.r, entries: b.n, digest: b.h, before: b.b, sha256: b.d, holders: b.k }),
  'rp.fin': (b) => ({ round: b.r, digest: b.h }),
};

const toWireBody: { [T in MessageType]: (b: Bodies[T]) => WireBodies[T] } = {
  'rp.app': (b) => ({ e: toWire(b.entry) }),
  'rp.ack': (b) => ({ o: b.origin, s: b.seq, k: b.holders }),
  'rp.nak': (b) => ({ o: b.origin, s: b.seq, r: b.reason }),
  'rp.tq': (b) => ({ q: b.request, ln: b.lane, lv: b.level, p: b.parents }),
  'rp.tr': (b) => ({ q: b.request, h: b.hashes.toString('base64') }),
  'rp.iq': (b) => ({ q: b.request, z: b.session, m: b.cells, f: b.first, n: b.count }),
  'rp.ir': (b) => ({ q: b.request, c: b.cells.toString('base64') }),
  'rp.get': (b) => ({ q: b.request, k: b.keys.toString('base64') }),
  'rp.ent': (b) => ({ q: b.request, e: b.entries.map(toWire) }),
  'rp.put': (b) => ({ q: b.request, e: b.entries.map(toWire) }),
  'rp.got': (b) => ({ q: b.request }),
  'rp.rnd': (b) => ({ r: b.round }),
  'rp.st': (b) => ({ r: b.round, n: b.entries, h: b.digest, b: b.before, d: b.sha256, k: b.holders }),
  'rp.fin': (b) => ({ r: b.round, h: b.digest }),
};

export function isMessageType(t: string): t is MessageType {
  return Object.hasOwn(MESSAGES, t);
}

/**
 * The body of a message the node has checked against MESSAGES[type] (it validates every body
 * before dispatch), with domain names. The one cast left: the schema above is `is.*` checks, which
 * do not carry a TypeScript type; WireBodies states what each check accepts.
 */
export function readBody<T extends MessageType>(type: T, env: Envelope): Bodies[T] {
  return toDomain[type](env.b as WireBodies[T]);
}

/** A message's body as it is encoded (the entries it carries sized for a datagram, see sizing.ts). */
export function wireBody<T extends MessageType>(type: T, body: Bodies[T]): WireBodies[T] {
  return toWireBody[type](body);
}

export function send<T extends MessageType>(
  ctx: ProtocolContext,
  to: Address,
  type: T,
  body: Bodies[T],
): void {
  ctx.send(to, type, wireBody(type, body));
}

export function broadcast<T extends MessageType>(ctx: ProtocolContext, type: T, body: Bodies[T]): void {
  ctx.broadcast(type, wireBody(type, body));
}

export function toWire(e: Entry): WireEntry {
  return [e.origin, e.seq, e.lamport, e.text];
}

function fromWire(w: WireEntry): Entry {
  return { origin: w[0], seq: w[1], lamport: w[2], text: w[3] };
}

/** Content hashes (two 32-bit lanes each) as the bytes of an `rp.get`. */
export function packKeys(keys: ReadonlyArray<[number, number]>): Buffer {
  const b = Buffer.alloc(keys.length * KEY_BYTES);
  keys.forEach(([k1, k2], i) => {
    b.writeUInt32LE(k1, i * KEY_BYTES);
    b.writeUInt32LE(k2, i * KEY_BYTES + 4);
  });
  return b;
}

/** The content hashes an `rp.get` names, or null when its bytes are malformed or too many. */
export function unpackKeys(b: Buffer): Array<[number, number]> | null {
  if (b.length % KEY_BYTES !== 0 || b.length / KEY_BYTES > GET_KEYS_PER_REQUEST_MAX) return null;
  const out: Array<[number, number]> = [];
  for (let i = 0; i < b.length; i += KEY_BYTES) out.push([b.readUInt32LE(i), b.readUInt32LE(i + 4)]);
  return out;
}
