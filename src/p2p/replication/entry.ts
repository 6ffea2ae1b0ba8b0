/**
 * The replica model's unit: an entry, immutable once created. Identity is (origin, seq); two
 * versions of one identity come only from a hand-edited file or a reused origin id, and every
 * replica keeps the same one of them (preferred()), so replicas converge whatever order they meet
 * them in. The checks here apply to entries from files and from the wire alike.
 */

export interface Entry {
  /** Id of the peer that created the entry (16 lowercase hex digits). */
  origin: string;
  /** Sequence number at the origin, from 1. */
  seq: number;
  lamport: number;
  text: string;
}

/**
 * Largest text, in UTF-8 bytes: 1 MiB, and room for what a kv operation adds around a value of
 * 1 MiB (its key, up to 1 KiB, and its header: kv/ops.ts). An entry that does not fit one datagram
 * travels as a reliable message (replication.ts); as JSON (a replica file's line, a message) it
 * takes at most 6 bytes per byte of text (\u escapes), far below reliable delivery's limit.
 */
export const ENTRY_TEXT_BYTES_MAX = 1024 * 1024 + 2048;

/**
 * How far an entry's Lamport time may be ahead of our clock when it arrives: not at all. An entry
 * is never newer than the clock of the peer that sends it (an appender stamps it with the time of
 * its send, a holder's clock is above every entry it holds, even after a restart), and ours has
 * merged that clock before we see the entry. A later one is forged: it would win every
 * last-writer-wins comparison (kv) for good, and a holder's clock restarts above its entries.
 */
export const ENTRY_LAMPORT_AHEAD_MAX = 0;

const ORIGIN_RE = /^[0-9a-f]{16}$/;

export function entryId(e: Pick<Entry, 'origin' | 'seq'>): string {
  return `${e.origin}:${e.seq}`;
}

export function isEntryText(text: unknown): text is string {
  // UTF-16 units never outnumber UTF-8 bytes: the cheap test first, so a huge string costs nothing.
  return (
    typeof text === 'string' &&
    text.length <= ENTRY_TEXT_BYTES_MAX &&
    Buffer.byteLength(text) <= ENTRY_TEXT_BYTES_MAX
  );
}

/** Why an entry is not valid, or null. Applies to entries from files and from the wire alike. */
export function entryProblem(e: Entry): string | null {
  if (!ORIGIN_RE.test(e.origin)) return 'origin is not 16 lowercase hex digits';
  if (!Number.isSafeInteger(e.seq) || e.seq < 1) return 'sequence is not an integer >= 1';
  if (!Number.isSafeInteger(e.lamport) || e.lamport < 0) return 'Lamport time is not an integer >= 0';
  if (!isEntryText(e.text)) return `text is over ${ENTRY_TEXT_BYTES_MAX} bytes`;
  return null;
}

/** Canonical order: Lamport time, then origin, then sequence. */
export function compareEntries(a: Entry, b: Entry): number {
  return a.lamport - b.lamport || (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0) || a.seq - b.seq;
}

/**
 * Of two versions of one identity (only a hand edit or a reused id makes two), the one every
 * replica keeps: the later Lamport time, then the greater text. Deterministic, so replicas that
 * meet both versions in any order keep the same one.
 */
export function preferred(a: Entry, b: Entry): Entry {
  if (a.lamport !== b.lamport) return a.lamport > b.lamport ? a : b;
  return a.text >= b.text ? a : b;
}
