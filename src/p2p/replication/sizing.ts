/**
 * How much of each answer fits one datagram. Every request is one datagram and every answer fits
 * datagrams under DATAGRAM_PAYLOAD_BYTES_MAX: the responder's envelope (with its name) takes the
 * rest, so the initiator sizes its requests by the responder's name and the responder checks them.
 */
import { DATAGRAM_PAYLOAD_BYTES_MAX, TYPE_CHARS_MAX, bodyBytesMax } from '../wire.js';
import type { Entry } from './entry.js';
import { IBLT_CELL_BYTES } from './iblt.js';
import { fitsDatagram } from './large.js';
import { DIGEST_FANOUT } from './replica-set.js';
import {
  APPEND,
  ENTRIES,
  ENTRIES_PER_MESSAGE_MAX,
  HASH_BYTES,
  IBLT_CELLS_PER_REQUEST_MAX,
  wireEntry,
} from './messages.js';

/** Bytes of a reply body besides its base64 payload (request number, keys, quotes), at most. */
const REPLY_FIXED_BYTES = 40;

/**
 * Bytes an envelope from `name` adds around its body, with every number at its widest and a type
 * name of TYPE_CHARS_MAX characters. Replication sizes every body for that widest type rather
 * than by the context's bodyBytesMax(type), which counts the type's own length: so it packs the
 * same on kv's channel (`kvr.*`) as on its own, and an initiator sizes a responder's answers from
 * the responder's name alone. (bodyBytesMax(type) would give each `rp.*` type 10 bytes more and
 * change how many hashes, cells and entries a datagram carries: other datagrams.)
 */
export function envelopeOverhead(name: string): number {
  return DATAGRAM_PAYLOAD_BYTES_MAX - bodyBytesMax('x'.repeat(TYPE_CHARS_MAX), name);
}

/** Raw bytes that fit, base64-encoded, in a body of `bodyBytes` besides its fixed part. */
export function b64Bytes(bodyBytes: number): number {
  return Math.floor((bodyBytes - REPLY_FIXED_BYTES) / 4) * 3;
}

/**
 * Parents whose bucket hashes fit one `rp.tr`, and IBLT cells one `rp.ir`, from a responder whose
 * reply bodies may be `bodyBytes` long: the initiator asks for no more, the responder takes no more.
 */
export function treeParentsPerReply(bodyBytes: number): number {
  return Math.max(1, Math.floor(b64Bytes(bodyBytes) / (DIGEST_FANOUT * HASH_BYTES)));
}

export function ibltCellsPerReply(bodyBytes: number): number {
  return Math.min(IBLT_CELLS_PER_REQUEST_MAX, Math.floor(b64Bytes(bodyBytes) / IBLT_CELL_BYTES));
}

/**
 * Whether an append of `text` fits one datagram from a peer whose envelope takes `envelopeBytes`
 * (envelopeOverhead), whatever its sequence and Lamport time: a command decides by it, before it
 * has a peer, whether it must join the group to send it as a large message (large.ts).
 */
export function appendFits(text: string, envelopeBytes: number): boolean {
  const bodyBytesMax = DATAGRAM_PAYLOAD_BYTES_MAX - envelopeBytes;
  if (text.length > bodyBytesMax) return false;
  const widest: Entry = {
    origin: '0'.repeat(16),
    seq: Number.MAX_SAFE_INTEGER,
    lamport: Number.MAX_SAFE_INTEGER,
    text,
  };
  return fitsDatagram(APPEND.toWire({ entry: wireEntry(widest) }), bodyBytesMax);
}

/** Whether `entry` fits an `rp.ent` or `rp.put` body of `bodyBytesMax` bytes on its own. */
export function fitsOne(entry: Entry, request: number, bodyBytesMax: number): boolean {
  return fitsDatagram(ENTRIES.toWire({ request, entries: [wireEntry(entry)] }), bodyBytesMax);
}

/**
 * Takes from the front of `queue` as many entries as fit one `rp.ent` or `rp.put` body (at least one: the
 * caller sends entries that do not fit alone as large messages, large.ts).
 */
export function takeEntries(queue: Entry[], request: number, bodyBytesMax: number): Entry[] {
  let bytes = Buffer.byteLength(JSON.stringify(ENTRIES.toWire({ request, entries: [] })));
  let n = 0;
  while (n < queue.length && n < ENTRIES_PER_MESSAGE_MAX) {
    const size = Buffer.byteLength(JSON.stringify(wireEntry(queue[n]!))) + 1;
    if (n > 0 && bytes + size > bodyBytesMax) break;
    bytes += size;
    n++;
  }
  return queue.splice(0, n);
}
