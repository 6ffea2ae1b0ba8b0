/**
 * The messages of file transfer, declared once with the message kit (kit/message.ts). They travel
 * as reliable-delivery payloads, not as datagrams of their own, on two topics:
 *   `file`      the sender's stream: the offer (JSON), then the chunks (binary: CHUNK_MARK, the
 *               transfer id's 8 bytes, the chunk index as 4 bytes big-endian, then the bytes).
 *               One topic, so every receiver gets the offer before the first chunk (reliable
 *               delivery keeps publish order within a topic).
 *   `file.ctl`  receiver -> sender, by unicast: answers to the offer (accepted, refused, done,
 *               failed) and requests for missing chunks.
 * A JSON payload is `{"t": type, "b": body}` with the body by wire names; decoding runs the
 * declaration's check, so every field from the network is checked before a role sees it.
 */
import { f, message, type Body, type Message } from '../kit/message.js';
import type { Envelope } from '../wire.js';
import {
  FILE_BYTES_MAX,
  FILE_CHUNK_BYTES_MAX,
  FILE_CHUNKS_MAX,
  FILE_NAME_BYTES_MAX,
  FILE_NEED_RANGES_MAX,
  FILE_REASON_CHARS_MAX,
} from './limits.js';

export const FILE_TOPIC = 'file';
export const FILE_CONTROL_TOPIC = 'file.ctl';

/** First byte of a chunk's payload; a JSON payload starts with `{`. */
const CHUNK_MARK = 0x00;
const TRANSFER_ID_BYTES = 8;
/** Marker, transfer id, chunk index. */
export const CHUNK_HEADER_BYTES = 1 + TRANSFER_ID_BYTES + 4;

/** A transfer id: 16 lowercase hex digits, random, chosen by the sender. */
export type TransferId = string;
const TRANSFER_ID_RE = /^[0-9a-f]{16}$/;
export const isTransferId = (v: unknown): v is TransferId => typeof v === 'string' && TRANSFER_ID_RE.test(v);

/**
 * Why a name cannot be a file name in a download folder, or null when it can: not empty, not `.`
 * or `..`, no `/` or `\`, no control or format characters (NUL among them), not more than
 * FILE_NAME_BYTES_MAX bytes of UTF-8. Storage checks names with this too, the sender's name
 * included, so nothing a peer says can place a file outside its folder.
 */
export function fileNameProblem(name: string): string | null {
  if (name.length === 0) return 'the name is empty';
  if (name === '.' || name === '..') return `'${name}' is not a file name`;
  if (/[/\\]/.test(name)) return 'the name contains a slash';
  if (/[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u.test(name)) return 'the name contains a control character';
  if (Buffer.byteLength(name) > FILE_NAME_BYTES_MAX) return `the name is over ${FILE_NAME_BYTES_MAX} bytes`;
  return null;
}
const isFileName = (v: unknown): v is string => typeof v === 'string' && fileNameProblem(v) === null;
const isSha256 = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
type Range = [number, number];
const isRange = (v: unknown): v is Range =>
  Array.isArray(v) &&
  v.length === 2 &&
  Number.isSafeInteger(v[0]) &&
  Number.isSafeInteger(v[1]) &&
  (v[0] as number) >= 0 &&
  (v[0] as number) <= (v[1] as number) &&
  (v[1] as number) < FILE_CHUNKS_MAX;

const ID = f.guard(isTransferId);

/** A file on offer: what it is, and how it is cut (the receiver checks it fits FILE_CHUNKS_MAX). */
export const OFFER = message('file.offer', {
  id: ID,
  name: f.guard(isFileName),
  bytes: f.uint(FILE_BYTES_MAX),
  sha256: f.guard(isSha256),
  chunkBytes: f.int(1, FILE_CHUNK_BYTES_MAX),
});
/**
 * A receiver's word on a transfer: `accepted` or `refused` at the offer, `done` (it holds the
 * verified file) or `failed` at the end; `reason` says why it refused or failed.
 */
export const ANSWER = message('file.answer', {
  id: ID,
  status: f.literal('accepted', 'refused', 'done', 'failed'),
  reason: f.str(FILE_REASON_CHARS_MAX),
});
/** A receiver that restarted mid-transfer asks for the chunks it lacks, as [first, last] runs. */
export const NEED = message('file.need', {
  id: ID,
  missing: f.array(f.guard(isRange), FILE_NEED_RANGES_MAX),
});

/** The sender stopped sending this file (interrupted): the receiver drops what it holds of it. */
export const CANCEL = message('file.cancel', { id: ID });

export type Offer = Body<typeof OFFER>;
/** Whether `v` has the fields and bounds of an offer (a transfer read back from disk is checked so). */
export const isOffer = (v: unknown): v is Offer => OFFER.check(v);
export type Answer = Body<typeof ANSWER>;
export type Need = Body<typeof NEED>;
export type Cancel = Body<typeof CANCEL>;
export type AnswerStatus = Answer['status'];

/** A message's payload: `{"t": type, "b": body}`. */
export function encodeControl<B>(m: Message<string, B>, body: B): string {
  return JSON.stringify({ t: m.type, b: m.toWire(body) });
}

/** The body of `payload` when it is a well-formed message of type `m`, else undefined. */
export function decodeControl<B>(m: Message<string, B>, payload: unknown): B | undefined {
  const o = payload as { t?: unknown; b?: unknown } | null;
  if (typeof o !== 'object' || o === null || o.t !== m.type || !m.check(o.b)) return undefined;
  // The kit maps a checked body from its wire names: it reads only the type and the body.
  return m.of({ t: m.type, b: o.b } as Envelope);
}

/** A JSON payload parsed, or undefined when it is not JSON. */
export function parseControl(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export interface Chunk {
  id: TransferId;
  index: number;
  data: Uint8Array;
}

export function encodeChunk(id: TransferId, index: number, data: Uint8Array): Uint8Array {
  // Not zero-filled: every byte is written below (a chunk is a MiB, sent thousands of times a transfer).
  const out = Buffer.allocUnsafe(CHUNK_HEADER_BYTES + data.length);
  out[0] = CHUNK_MARK;
  out.write(id, 1, TRANSFER_ID_BYTES, 'hex');
  out.writeUInt32BE(index, 1 + TRANSFER_ID_BYTES);
  out.set(data, CHUNK_HEADER_BYTES);
  return out;
}

/** Whether a payload on FILE_TOPIC is a chunk (else it should be an offer). */
export function isChunkPayload(data: Uint8Array): boolean {
  return data.length > 0 && data[0] === CHUNK_MARK;
}

/** The chunk in `data`, or undefined when its header is cut short or its index out of range. */
export function decodeChunk(data: Uint8Array): Chunk | undefined {
  if (data.length < CHUNK_HEADER_BYTES || data[0] !== CHUNK_MARK) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const index = view.getUint32(1 + TRANSFER_ID_BYTES);
  if (index >= FILE_CHUNKS_MAX) return undefined;
  return {
    id: Buffer.from(data.subarray(1, 1 + TRANSFER_ID_BYTES)).toString('hex'),
    index,
    data: data.subarray(CHUNK_HEADER_BYTES),
  };
}
