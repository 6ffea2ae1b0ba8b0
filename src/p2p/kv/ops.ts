/**
 * The operations of `peer kv` and the rule that folds them into a table: pure, shared by the
 * protocol (which writes and answers with them) and the holder's store (which folds them in SQLite).
 *
 * A kv operation is a replicated entry (Entry: origin, seq, Lamport time, text) whose text
 * encodes the operation:
 *     put:    'P' <key length in UTF-16 units> ':' <key> <value>     e.g. P5:colorblue
 *     delete: 'D' <key>                                              e.g. Dcolor
 * The entry's identity (origin:seq) and Lamport time come from the replication layer, so the op
 * log is replicated, acknowledged and repaired by the same code as `peer replicate`.
 *
 * Conflict rule: last writer wins by (Lamport time, origin peer id, origin sequence), compared in
 * that order. It is a total order on entries, so folding any set of operations in any order, with
 * duplicates, gives one table: every holder that holds the same log holds the same table. A delete
 * is a tombstone: a row with no value that wins and loses like a put, so an older put arriving
 * late never brings a deleted key back. Tombstones are kept (no garbage collection yet).
 */
import type { Entry } from '../replication/index.js';

/** Longest key, in UTF-8 bytes (a key is at most as many UTF-16 units, so its header has 4 digits). */
export const KV_KEY_BYTES_MAX = 1024;
/**
 * Longest value, in UTF-8 bytes: a config file or a JSON document, as etcd allows (1.5 MiB per
 * request). With the key and the op header it fits one replicated entry (ENTRY_TEXT_BYTES_MAX);
 * one that does not fit a datagram travels as a reliable message.
 */
export const KV_VALUE_BYTES_MAX = 1024 * 1024;

export type KvOp = { kind: 'put'; key: string; value: string } | { kind: 'delete'; key: string };

/** The winning version of a key: value null for a tombstone. */
export interface KvVersion {
  key: string;
  value: string | null;
  lamport: number;
  origin: string;
  seq: number;
}

// Keys end up in shell commands, terminal tables and log lines: printable, no whitespace.
const KEY_RE = /^[^\p{Cc}\p{Cf}\p{Z}\s]+$/u;

function wellFormed(s: string): boolean {
  // No lone surrogates: they do not survive UTF-8 (SQLite, the terminal) unchanged.
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/** Why a key is not acceptable, or null. */
export function keyProblem(key: string): string | null {
  if (key.length === 0) return 'the key is empty';
  if (!wellFormed(key)) return 'the key is not valid Unicode (a lone surrogate)';
  const bytes = Buffer.byteLength(key);
  if (bytes > KV_KEY_BYTES_MAX)
    return `the key is ${bytes} bytes; keys are at most ${KV_KEY_BYTES_MAX} bytes (1 KiB): use a shorter key`;
  if (!KEY_RE.test(key))
    return 'the key holds whitespace or control characters; use printable characters only';
  return null;
}

/** Why a value is not acceptable, or null. */
export function valueProblem(value: string): string | null {
  if (!wellFormed(value)) return 'the value is not valid Unicode (a lone surrogate)';
  const bytes = value.length > KV_VALUE_BYTES_MAX ? value.length : Buffer.byteLength(value);
  if (bytes > KV_VALUE_BYTES_MAX)
    return `the value is ${bytes} bytes; values are at most ${KV_VALUE_BYTES_MAX} bytes (1 MiB): store a larger one in parts under several keys`;
  return null;
}

/**
 * Why an operation cannot be written, or null: the limits above. Within them an operation always
 * fits one entry (ENTRY_TEXT_BYTES_MAX has room for the longest key and the header).
 */
export function opProblem(op: KvOp): string | null {
  const k = keyProblem(op.key);
  if (k) return k;
  return op.kind === 'put' ? valueProblem(op.value) : null;
}

export function encodeOp(op: KvOp): string {
  return op.kind === 'put' ? `P${op.key.length}:${op.key}${op.value}` : `D${op.key}`;
}

/** The operation an entry's text encodes, or null when it is not a valid kv operation. */
export function decodeOp(text: string): KvOp | null {
  if (text.startsWith('D')) {
    const key = text.slice(1);
    return keyProblem(key) ? null : { kind: 'delete', key };
  }
  const m = /^P([1-9][0-9]{0,3}):/.exec(text);
  if (!m) return null;
  const n = Number(m[1]);
  const start = m[0].length;
  if (start + n > text.length) return null;
  const key = text.slice(start, start + n);
  const value = text.slice(start + n);
  if (keyProblem(key) || valueProblem(value)) return null;
  return { kind: 'put', key, value };
}

/** True when version a wins over version b (last writer wins; see the header). */
export function wins(
  a: Pick<KvVersion, 'lamport' | 'origin' | 'seq'>,
  b: Pick<KvVersion, 'lamport' | 'origin' | 'seq'>,
): boolean {
  if (a.lamport !== b.lamport) return a.lamport > b.lamport;
  if (a.origin !== b.origin) return a.origin > b.origin;
  return a.seq > b.seq;
}

export function versionOf(e: Entry): KvVersion | null {
  const op = decodeOp(e.text);
  if (!op) return null;
  return {
    key: op.key,
    value: op.kind === 'put' ? op.value : null,
    lamport: e.lamport,
    origin: e.origin,
    seq: e.seq,
  };
}

/**
 * The reference model: the table a set of operations folds into (tombstones included). Tests and
 * `peer kv bench` compute the expected state with it.
 */
export function foldLww(entries: Iterable<Entry>): Map<string, KvVersion> {
  const out = new Map<string, KvVersion>();
  for (const e of entries) {
    const v = versionOf(e);
    if (!v) continue;
    const cur = out.get(v.key);
    if (!cur || wins(v, cur)) out.set(v.key, v);
  }
  return out;
}
