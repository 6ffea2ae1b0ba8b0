/**
 * The line format of a replica file, one entry per line, UTF-8, '\n' terminated:
 *     <lamport> TAB <origin: 16 hex> TAB <seq> TAB <text as a JSON string>
 * e.g. `17\t3f2a9c0d11e4b5a6\t4\t"hello\tworld"`. JSON escapes every control character, so a text
 * holding tabs, newlines or lone surrogates round-trips exactly and never splits a line. The
 * canonical order is (lamport, origin, seq): the order every replica is rewritten into by
 * `peer reconcile`. A line's hash is also the entry's content hash, the key anti-entropy exchanges.
 */
import { createHash } from 'node:crypto';
import { loadable } from '../bounds.js';
import { entryProblem, type Entry } from './entry.js';

const UINT_RE = /^(0|[1-9][0-9]{0,15})$/;

export function formatLine(e: Entry): string {
  return `${e.lamport}\t${e.origin}\t${e.seq}\t${JSON.stringify(e.text)}`;
}

export type ParsedLine = { ok: true; entry: Entry } | { ok: false; reason: string };

export function parseLine(line: string): ParsedLine {
  const parts = line.split('\t');
  // The JSON text never holds a raw tab, so exactly four fields.
  if (parts.length !== 4)
    return { ok: false, reason: `expected 4 tab-separated fields, got ${parts.length}` };
  const [l = '', origin = '', s = '', json = ''] = parts;
  if (!UINT_RE.test(l)) return { ok: false, reason: 'Lamport time is not an unsigned integer' };
  if (!UINT_RE.test(s)) return { ok: false, reason: 'sequence is not an unsigned integer' };
  if (!json.startsWith('"')) return { ok: false, reason: 'text is not a JSON string' };
  let text: unknown;
  try {
    text = JSON.parse(json);
  } catch {
    return { ok: false, reason: 'text is not a valid JSON string' };
  }
  if (typeof text !== 'string') return { ok: false, reason: 'text is not a JSON string' };
  const entry: Entry = { origin, seq: Number(s), lamport: Number(l), text };
  const problem = entryProblem(entry);
  if (problem) return { ok: false, reason: problem };
  // A line is read from disk: a counter past COUNTER_MAX is damage (bounds.ts), never a time for
  // the holder's clock to start above, nor a seq its origin could go on from.
  if (!loadable(entry.lamport)) return { ok: false, reason: 'Lamport time is past what a peer can count to' };
  if (!loadable(entry.seq)) return { ok: false, reason: 'sequence is past what a peer can count to' };
  // A non-canonical spelling (e.g. "\u0041" for "A") would make two files differ byte-wise while
  // holding the same entries; refuse it so that equal sets always mean equal bytes.
  if (JSON.stringify(text) !== json) return { ok: false, reason: 'text is not in canonical JSON form' };
  return { ok: true, entry };
}

export function serialize(entries: readonly Entry[]): string {
  let out = '';
  for (const e of entries) out += formatLine(e) + '\n';
  return out;
}

/** SHA-256 of the file a replica set is written as, in its current order (12 hex digits shown). */
export function contentDigest(entries: readonly Entry[]): string {
  const h = createHash('sha256');
  for (const e of entries) h.update(formatLine(e) + '\n');
  return h.digest('hex');
}
