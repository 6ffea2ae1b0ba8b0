/**
 * Replicas: the entry model, the line format of a replica file, the in-memory replica set with
 * its compact id index and incremental digest, and the file itself.
 *
 * Line format (one entry per line, UTF-8, '\n' terminated):
 *     <lamport> TAB <origin: 16 hex> TAB <seq> TAB <text as a JSON string>
 * e.g. `17\t3f2a9c0d11e4b5a6\t4\t"hello\tworld"`. JSON escapes every control character, so a text
 * holding tabs, newlines or lone surrogates round-trips exactly and never splits a line. The
 * canonical order is (lamport, origin, seq): the order every replica is rewritten into by
 * `peer reconcile`.
 *
 * Identity is (origin, seq). A ReplicaSet never holds two entries with the same identity: its index
 * is an open-addressing hash table of positions (two Int32/Uint32 arrays, about 16 bytes per entry
 * at most, so 1,000,000 entries cost about 16 MB besides the entries themselves).
 *
 * Durability: ReplicaFile.append writes and fsyncs before it returns, so a holder acknowledges an
 * entry only once it is on disk; an entry joins the in-memory set (and so the digest, and what
 * counts as a duplicate) only after that, and a failed append (disk full, I/O error, a short
 * write) is returned as a failure with its torn tail cut off (see ReplicaFile.apply). A rewrite
 * goes to a temp file that is fsynced, renamed over the replica, and the directory is fsynced, so
 * a crash leaves either the old or the new file, whole.
 * A line that does not parse is never dropped silently: it is appended, with its line number and
 * the reason, to `<name>.rejected` next to the replica (fsynced) before the file is rewritten
 * without it, and the caller gets the list to report. A file is read as bytes, so a line that is
 * not valid UTF-8 is rejected and kept aside byte for byte, never decoded into U+FFFD and rewritten.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { writeFailure } from './health.js';
import type { WriteFailure } from '../p2p/write-failure.js';

export interface Entry {
  /** Id of the peer that created the entry (16 lowercase hex digits). */
  origin: string;
  /** Sequence number at the origin, from 1. */
  seq: number;
  lamport: number;
  text: string;
}

/** Largest text, measured as the bytes of its JSON string: an entry must fit one datagram. */
export const ENTRY_TEXT_JSON_BYTES_MAX = 700;
export const REPLICA_FILE_SUFFIX = '.txt';
export const REJECTED_FILE_SUFFIX = '.rejected';

const ORIGIN_RE = /^[0-9a-f]{16}$/;
const UINT_RE = /^(0|[1-9][0-9]{0,15})$/;

export class ReplicaError extends Error {
  override name = 'ReplicaError';
  /** The error code of the failed operation (ENOSPC, EIO...), when it had one. */
  code?: string;
}

/** What a write of entries did: what it added and replaced, or why it wrote nothing. */
export interface ApplyResult {
  added: Entry[];
  replaced: Entry[];
  /** The write failed: nothing was added or replaced, in memory or on disk. */
  failure?: WriteFailure;
}

export function entryId(e: Pick<Entry, 'origin' | 'seq'>): string {
  return `${e.origin}:${e.seq}`;
}

export function isEntryText(text: unknown): text is string {
  return typeof text === 'string' && Buffer.byteLength(JSON.stringify(text)) <= ENTRY_TEXT_JSON_BYTES_MAX;
}

/** Why an entry is not valid, or null. Applies to entries from files and from the wire alike. */
export function entryProblem(e: Entry): string | null {
  if (!ORIGIN_RE.test(e.origin)) return 'origin is not 16 lowercase hex digits';
  if (!Number.isSafeInteger(e.seq) || e.seq < 1) return 'sequence is not an integer >= 1';
  if (!Number.isSafeInteger(e.lamport) || e.lamport < 0) return 'Lamport time is not an integer >= 0';
  if (!isEntryText(e.text)) return `text is over ${ENTRY_TEXT_JSON_BYTES_MAX} bytes`;
  return null;
}

export function formatLine(e: Entry): string {
  return `${e.lamport}\t${e.origin}\t${e.seq}\t${JSON.stringify(e.text)}`;
}

export type ParsedLine = { ok: true; entry: Entry } | { ok: false; reason: string };

export function parseLine(line: string): ParsedLine {
  const parts = line.split('\t');
  // The JSON text never holds a raw tab, so exactly four fields.
  if (parts.length !== 4)
    return { ok: false, reason: `expected 4 tab-separated fields, got ${parts.length}` };
  const [l, origin, s, json] = parts as [string, string, string, string];
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
  // A non-canonical spelling (e.g. "\u0041" for "A") would make two files differ byte-wise while
  // holding the same entries; refuse it so that equal sets always mean equal bytes.
  if (JSON.stringify(text) !== json) return { ok: false, reason: 'text is not in canonical JSON form' };
  return { ok: true, entry };
}

/** Canonical order: Lamport time, then origin, then sequence. */
export function compareEntries(a: Entry, b: Entry): number {
  return a.lamport - b.lamport || (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0) || a.seq - b.seq;
}

/**
 * Two independent 32-bit lanes of a fast string hash (cyrb53's mixing, kept as 64 bits). Not
 * cryptographic: digests detect accidental differences, and a collision only delays a repair
 * (see replication.ts on lanes).
 */
export function hash64(s: string, seed = 0): [number, number] {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return [h1 >>> 0, h2 >>> 0];
}

/** Levels of the digest tree below the root: level L has 16^L buckets. */
export const DIGEST_LEVELS = 3;
export const DIGEST_FANOUT = 16;
const LEAF_BITS = 4 * DIGEST_LEVELS;
const INDEX_LOAD_MAX = 0.5;
const INDEX_CAPACITY_MIN = 64;

/**
 * Of two versions of one identity (only a hand edit or a reused id makes two), the one every
 * replica keeps: the later Lamport time, then the greater text. Deterministic, so replicas that
 * meet both versions in any order keep the same one.
 */
export function preferred(a: Entry, b: Entry): Entry {
  if (a.lamport !== b.lamport) return a.lamport > b.lamport ? a : b;
  return a.text >= b.text ? a : b;
}

export type Resolution = 'added' | 'same' | 'kept' | 'replaced';

/**
 * The entries a holder has, in the order it learned them, with:
 *  - two indexes (open addressing over positions): by id hash, for duplicate checks, and by
 *    content hash (the hash of the whole line), for lookups by the keys anti-entropy exchanges;
 *  - per-entry id hash and content hash in typed arrays;
 *  - a digest tree: 16^L buckets per level L (L = 0..DIGEST_LEVELS), each the XOR of the content
 *    hashes of the entries whose id hash falls in it. Updated in O(levels) per change. The root is
 *    the replica's digest: equal sets give equal digests, and any difference in any byte of any
 *    line changes it (with probability 1 - 2^-64).
 */
export class ReplicaSet {
  private list: Entry[] = [];
  private idH1 = new Uint32Array(INDEX_CAPACITY_MIN);
  private idH2 = new Uint32Array(INDEX_CAPACITY_MIN);
  private cH1 = new Uint32Array(INDEX_CAPACITY_MIN);
  private cH2 = new Uint32Array(INDEX_CAPACITY_MIN);
  private idTable = new Int32Array(INDEX_CAPACITY_MIN * 2).fill(-1);
  private cTable = new Int32Array(INDEX_CAPACITY_MIN * 2).fill(-1);
  /** tree[level] holds 2 lanes per bucket: [lane0, lane1, lane0, lane1, ...]. */
  readonly tree: Uint32Array[] = Array.from(
    { length: DIGEST_LEVELS + 1 },
    (_, l) => new Uint32Array(2 * DIGEST_FANOUT ** l),
  );

  static of(entries: Iterable<Entry>): ReplicaSet {
    const s = new ReplicaSet();
    for (const e of entries) s.resolve(e);
    return s;
  }

  get size(): number {
    return this.list.length;
  }

  /** Entries in the order learned (the file's order). Do not mutate. */
  get entries(): readonly Entry[] {
    return this.list;
  }

  /** The digest: 16 hex digits of the root. */
  digest(): string {
    const r = this.tree[0]!;
    return hex32(r[0]!) + hex32(r[1]!);
  }

  has(e: Pick<Entry, 'origin' | 'seq'>): boolean {
    return this.findId(e) >= 0;
  }

  get(e: Pick<Entry, 'origin' | 'seq'>): Entry | undefined {
    const p = this.findId(e);
    return p >= 0 ? this.list[p] : undefined;
  }

  /** The entry whose line hashes to (c1, c2), if any (anti-entropy names entries this way). */
  byContentHash(c1: number, c2: number): Entry | undefined {
    c1 >>>= 0;
    c2 >>>= 0;
    const mask = this.cTable.length - 1;
    for (let s = c1 & mask; ; s = (s + 1) & mask) {
      const p = this.cTable[s]!;
      if (p < 0) return undefined;
      if (this.cH1[p] === c1 && this.cH2[p] === c2) return this.list[p];
    }
  }

  contentHashAt(i: number): [number, number] {
    return [this.cH1[i]!, this.cH2[i]!];
  }

  /** Adds an entry unless one with its identity is present (whatever its text); true when added. */
  add(e: Entry): boolean {
    if (this.findId(e) >= 0) return false;
    this.push(e);
    return true;
  }

  /**
   * Adds an entry, or settles a conflict with the version held: the preferred version stays (see
   * preferred()). 'same' when this exact line is held already, 'kept' when the held version wins.
   */
  resolve(e: Entry): Resolution {
    const p = this.findId(e);
    if (p < 0) {
      this.push(e);
      return 'added';
    }
    const old = this.list[p]!;
    if (old.lamport === e.lamport && old.text === e.text) return 'same';
    if (preferred(old, e) === old) return 'kept';
    this.replaceAt(p, e);
    return 'replaced';
  }

  /**
   * What resolve() would do with a batch, without changing the set: the identities it would add
   * and the held versions it would replace (a batch's own duplicates settled among themselves, as
   * preferred() does). A store writes these first and resolves them only once they are durable.
   */
  plan(entries: readonly Entry[]): { added: Entry[]; replaced: Entry[] } {
    const batch = new Map<string, Entry>();
    for (const e of entries) {
      const id = entryId(e);
      const other = batch.get(id);
      batch.set(id, other ? preferred(other, e) : e);
    }
    const added: Entry[] = [];
    const replaced: Entry[] = [];
    for (const e of batch.values()) {
      const held = this.get(e);
      if (!held) added.push(e);
      else if ((held.lamport !== e.lamport || held.text !== e.text) && preferred(held, e) === e)
        replaced.push(e);
    }
    return { added, replaced };
  }

  /** A sorted copy in canonical order. */
  canonical(): Entry[] {
    return [...this.list].sort(compareEntries);
  }

  /**
   * Puts the entries in canonical order (positions change, content and digest do not). Permutes
   * the hash arrays instead of hashing again: a 1,000,000-entry replica sorts in about a second.
   */
  sortCanonical(): void {
    if (this.isCanonical()) return;
    const list = this.list;
    const order = Array.from(list.keys()).sort((i, j) => compareEntries(list[i]!, list[j]!));
    const permute = (a: Uint32Array) => {
      const b = new Uint32Array(a.length);
      order.forEach((from, to) => (b[to] = a[from]!));
      return b;
    };
    this.list = order.map((i) => list[i]!);
    this.idH1 = permute(this.idH1);
    this.idH2 = permute(this.idH2);
    this.cH1 = permute(this.cH1);
    this.cH2 = permute(this.cH2);
    this.rehash(this.idTable.length);
  }

  isCanonical(): boolean {
    for (let i = 1; i < this.list.length; i++)
      if (compareEntries(this.list[i - 1]!, this.list[i]!) > 0) return false;
    return true;
  }

  private push(e: Entry): void {
    const [h1, h2] = hash64(entryId(e));
    const i = this.list.length;
    if (i >= this.idH1.length) this.growArrays();
    if ((i + 1) / this.idTable.length > INDEX_LOAD_MAX) this.rehash(this.idTable.length * 2);
    this.list.push(e);
    this.idH1[i] = h1;
    this.idH2[i] = h2;
    insertSlot(this.idTable, this.idH1, i);
    this.setContent(i, e);
  }

  private replaceAt(p: number, e: Entry): void {
    this.toggleTree(p);
    deleteSlot(this.cTable, this.cH1, p);
    this.list[p] = e;
    this.setContent(p, e);
  }

  private setContent(i: number, e: Entry): void {
    const [c1, c2] = hash64(formatLine(e), 1);
    this.cH1[i] = c1;
    this.cH2[i] = c2;
    insertSlot(this.cTable, this.cH1, i);
    this.toggleTree(i);
  }

  /** XORs entry i's content hash into (or out of) every level of the digest tree. */
  private toggleTree(i: number): void {
    const leaf = this.idH1[i]! >>> (32 - LEAF_BITS);
    const c1 = this.cH1[i]!;
    const c2 = this.cH2[i]!;
    for (let l = 0; l <= DIGEST_LEVELS; l++) {
      const b = leaf >>> (4 * (DIGEST_LEVELS - l));
      const t = this.tree[l]!;
      t[2 * b] = (t[2 * b]! ^ c1) >>> 0;
      t[2 * b + 1] = (t[2 * b + 1]! ^ c2) >>> 0;
    }
  }

  private findId(e: Pick<Entry, 'origin' | 'seq'>): number {
    const [h1, h2] = hash64(entryId(e));
    const mask = this.idTable.length - 1;
    for (let s = h1 & mask; ; s = (s + 1) & mask) {
      const p = this.idTable[s]!;
      if (p < 0) return -1;
      if (this.idH1[p] === h1 && this.idH2[p] === h2) {
        const x = this.list[p]!;
        if (x.origin === e.origin && x.seq === e.seq) return p;
      }
    }
  }

  private growArrays(): void {
    const n = this.idH1.length * 2;
    const grow = (a: Uint32Array) => {
      const b = new Uint32Array(n);
      b.set(a);
      return b;
    };
    this.idH1 = grow(this.idH1);
    this.idH2 = grow(this.idH2);
    this.cH1 = grow(this.cH1);
    this.cH2 = grow(this.cH2);
  }

  private rehash(capacity: number): void {
    this.idTable = new Int32Array(capacity).fill(-1);
    this.cTable = new Int32Array(capacity).fill(-1);
    for (let i = 0; i < this.list.length; i++) {
      insertSlot(this.idTable, this.idH1, i);
      insertSlot(this.cTable, this.cH1, i);
    }
  }
}

/** Linear probing: puts position i in the first free slot from its hash. */
function insertSlot(table: Int32Array, h: Uint32Array, i: number): void {
  const mask = table.length - 1;
  let s = h[i]! & mask;
  while (table[s]! >= 0) s = (s + 1) & mask;
  table[s] = i;
}

/** Removes position i, shifting later entries of its probe run back (no tombstones). */
function deleteSlot(table: Int32Array, h: Uint32Array, i: number): void {
  const mask = table.length - 1;
  let s = h[i]! & mask;
  while (table[s] !== i) s = (s + 1) & mask;
  let hole = s;
  for (let j = (hole + 1) & mask; table[j]! >= 0; j = (j + 1) & mask) {
    const home = h[table[j]!]! & mask;
    // Entry at j may move to the hole if the hole lies cyclically in [home, j).
    const movable = hole <= j ? home <= hole || home > j : home <= hole && home > j;
    if (movable) {
      table[hole] = table[j]!;
      hole = j;
    }
  }
  table[hole] = -1;
}

const hex32 = (n: number) => (n >>> 0).toString(16).padStart(8, '0');

/** SHA-256 of the file a replica set is written as, in its current order (12 hex digits shown). */
export function contentDigest(entries: readonly Entry[]): string {
  const h = createHash('sha256');
  for (const e of entries) h.update(formatLine(e) + '\n');
  return h.digest('hex');
}

export interface Rejection {
  line: number;
  reason: string;
  text: string;
  /** The line's bytes when they are not valid UTF-8: kept aside as they are, never as U+FFFD. */
  raw?: Buffer;
}

export function replicaPath(dir: string, name: string): string {
  return path.join(dir, `${name}${REPLICA_FILE_SUFFIX}`);
}

function ioError(what: string, file: string, err: unknown): ReplicaError {
  const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  const e = new ReplicaError(
    `cannot ${what} ${file} (${code}); check the directory's permissions or pass --dir`,
  );
  e.code = (err as NodeJS.ErrnoException).code;
  return e;
}

/**
 * Writes all of `data` at the end of an O_APPEND file: a write may store only part (a disk that
 * fills up mid-write), so it loops; a write that stores nothing is an error.
 */
function writeAll(fd: number, data: Buffer): void {
  for (let off = 0; off < data.length;) {
    const n = fs.writeSync(fd, data, off);
    if (n <= 0) throw Object.assign(new Error('write stored no byte'), { code: 'EIO' });
    off += n;
  }
}

/** Creates the directory if needed and checks that it is writable: one clear error otherwise. */
export function ensureWritableDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (err) {
    throw ioError('write to the replica directory', dir, err);
  }
}

/** Writes a whole file atomically: temp file, fsync, rename, fsync of the directory. */
export function writeFileAtomic(file: string, data: string): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'w', 0o644);
    try {
      fs.writeSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    fsyncDir(dir);
  } catch (err) {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // the original error is the one worth reporting
    }
    throw ioError('rewrite', file, err);
  }
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function serialize(entries: readonly Entry[]): string {
  let out = '';
  for (const e of entries) out += formatLine(e) + '\n';
  return out;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A file's lines from its bytes. A line that is not valid UTF-8 stays bytes: decoding it would turn
 * it into U+FFFD, which then parses as a good line and is rewritten, and the original is lost.
 */
function decodeLines(bytes: Buffer): Array<string | Buffer> {
  try {
    return strictUtf8.decode(bytes).split('\n');
  } catch {
    // Some line is not UTF-8 (rare): find which, one line at a time.
  }
  const lines: Array<string | Buffer> = [];
  for (let from = 0; from <= bytes.length;) {
    const nl = bytes.indexOf(0x0a, from);
    const end = nl < 0 ? bytes.length : nl;
    const raw = bytes.subarray(from, end);
    try {
      lines.push(strictUtf8.decode(raw));
    } catch {
      lines.push(Buffer.from(raw));
    }
    from = end + 1;
  }
  return lines;
}

/**
 * Parses a file (its bytes, or text already decoded); duplicates, bad lines and lines that are not
 * valid UTF-8 come back as rejections with line numbers.
 */
export function parseReplica(content: string | Buffer): { set: ReplicaSet; rejected: Rejection[] } {
  const set = new ReplicaSet();
  const rejected: Rejection[] = [];
  const lines = typeof content === 'string' ? content.split('\n') : decodeLines(content);
  if (lines.at(-1) === '') lines.pop();
  /** Line number of the line each identity was taken from, to report a superseded version. */
  const lineOf = new Map<string, number>();
  lines.forEach((text, i) => {
    if (typeof text !== 'string')
      return void rejected.push({
        line: i + 1,
        reason: 'not valid UTF-8',
        text: text.toString('utf8'),
        raw: text,
      });
    const p = parseLine(text);
    if (!p.ok) return void rejected.push({ line: i + 1, reason: p.reason, text });
    const id = entryId(p.entry);
    const held = set.get(p.entry);
    const r = set.resolve(p.entry);
    if (r === 'same') rejected.push({ line: i + 1, reason: `duplicate of entry ${id}`, text });
    else if (r === 'kept')
      rejected.push({
        line: i + 1,
        reason: `another version of entry ${id} wins (line ${lineOf.get(id)})`,
        text,
      });
    else if (r === 'replaced') {
      rejected.push({
        line: lineOf.get(id)!,
        reason: `another version of entry ${id} wins (line ${i + 1})`,
        text: formatLine(held!),
      });
      lineOf.set(id, i + 1);
    } else lineOf.set(id, i + 1);
  });
  rejected.sort((a, b) => a.line - b.line);
  return { set, rejected };
}

/**
 * One replica file, open for appends. Reads and checks the file on open; rejected lines are moved
 * to `<name>.rejected` and the file is rewritten without them, so what is on disk always parses.
 */
export class ReplicaFile {
  private fd: number | null = null;
  /** A held entry was replaced by the version that wins; the file needs a rewrite (flush). */
  private dirty = false;
  /**
   * Bytes of the file that hold whole, fsynced lines. A failed append may leave part of a line
   * after them (a torn write); it is cut off before anything else is appended, since a line
   * appended after a torn one would join it and be rejected at the next open, acknowledged or not.
   */
  private whole = 0;
  /** A failed append's torn tail could not be cut off yet (see `whole`). */
  private torn = false;

  private constructor(
    readonly file: string,
    readonly set: ReplicaSet,
    readonly rejected: Rejection[],
  ) {}

  static open(dir: string, name: string): ReplicaFile {
    ensureWritableDir(dir);
    const file = replicaPath(dir, name);
    let content = Buffer.alloc(0);
    try {
      content = fs.readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('read', file, err);
    }
    const { set, rejected } = parseReplica(content);
    if (rejected.length > 0) {
      keepAside(file, rejected);
      writeFileAtomic(file, serialize(set.entries));
    } else if (content.length > 0 && content.at(-1) !== 0x0a) {
      // A last line without its newline (a crash mid-append, or an editor): complete it.
      writeFileAtomic(file, serialize(set.entries));
    }
    const rf = new ReplicaFile(file, set, rejected);
    rf.reopen();
    return rf;
  }

  /** Opens the file for appends; `measure`: it was (re)written whole, so all of it is `whole`. */
  private reopen(measure = true): void {
    try {
      this.fd = fs.openSync(this.file, 'a', 0o644);
      if (measure) this.whole = fs.fstatSync(this.fd).size;
    } catch (err) {
      throw ioError('open for appending', this.file, err);
    }
  }

  /** Appends the entries not present yet; they are on disk (fsynced) when this returns them. */
  append(entries: readonly Entry[]): Entry[] {
    const r = this.apply(entries);
    if (r.failure) throw ioError('append to', this.file, r.failure);
    return r.added;
  }

  /**
   * Appends new identities (on disk, fsynced, when this returns) and replaces held versions that
   * lose a conflict (see preferred()) in memory; flush() writes those with one atomic rewrite.
   * The set changes only after the append is durable: a failed one (disk full, I/O error) is
   * returned as `failure`, with nothing added or replaced, so a retry is written again.
   */
  apply(entries: readonly Entry[]): ApplyResult {
    const { added, replaced } = this.set.plan(entries);
    if (added.length > 0) {
      if (this.fd === null) throw new ReplicaError(`${this.file} is closed`);
      const data = Buffer.from(serialize(added));
      try {
        if (this.torn) this.cutTornTail();
        writeAll(this.fd, data);
        fs.fsyncSync(this.fd);
      } catch (err) {
        this.torn = true;
        try {
          this.cutTornTail();
        } catch {
          // cut before the next append (torn stays set)
        }
        return { added: [], replaced: [], failure: writeFailure(this.file, err) };
      }
      this.whole += data.length;
    }
    for (const e of [...added, ...replaced]) this.set.resolve(e);
    if (replaced.length > 0) this.dirty = true;
    return { added, replaced };
  }

  private cutTornTail(): void {
    fs.ftruncateSync(this.fd!, this.whole);
    fs.fsyncSync(this.fd!);
    this.torn = false;
  }

  /** Writes pending replacements: one atomic rewrite in the current order. */
  flush(): void {
    if (!this.dirty) return;
    this.rewrite(serialize(this.set.entries));
  }

  /** Rewrites the file atomically in canonical order; returns the SHA-256 of the new content. */
  rewriteCanonical(): string {
    this.set.sortCanonical();
    const data = serialize(this.set.entries);
    this.rewrite(data);
    return createHash('sha256').update(data).digest('hex');
  }

  /** A failed rewrite leaves the old file (and `dirty`) as they were, open for appends. */
  private rewrite(data: string): void {
    this.close();
    let written = false;
    try {
      writeFileAtomic(this.file, data);
      written = true;
      this.dirty = false;
      this.torn = false;
    } finally {
      // After a failed rewrite the old file may still end in a torn tail: `whole` stays as it was.
      this.reopen(written);
    }
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

/**
 * Appends rejected lines, with their line numbers and reasons, to `<name>.rejected` (fsynced). A
 * line that is not valid UTF-8 is written byte for byte.
 */
export function keepAside(file: string, rejected: Rejection[]): string {
  const aside = file.slice(0, -REPLICA_FILE_SUFFIX.length) + REJECTED_FILE_SUFFIX;
  const stamp = new Date().toISOString();
  const text = Buffer.concat(
    rejected.flatMap((r) => [
      Buffer.from(`# ${stamp} ${path.basename(file)} line ${r.line}: ${r.reason}\n`),
      r.raw ?? Buffer.from(r.text),
      Buffer.from('\n'),
    ]),
  );
  try {
    const fd = fs.openSync(aside, 'a', 0o644);
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw ioError('keep rejected lines in', aside, err);
  }
  return aside;
}

export interface ReconcileRow {
  replica: string;
  before: number;
  after: number;
  added: number;
  /** Entries whose version changed: another file held a version of the identity that wins. */
  replaced: number;
  rejected: number;
  /** SHA-256 of the file after the rewrite. */
  digest: string;
}

/**
 * The offline reconciler: the union of every replica in `dir`, without duplicates, in
 * canonical order, written identically (and atomically) into every file.
 */
export function reconcileDirectory(dir: string): ReconcileRow[] {
  ensureWritableDir(dir);
  let names: string[];
  try {
    names = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith(REPLICA_FILE_SUFFIX) && !f.startsWith('.'))
      .map((f) => f.slice(0, -REPLICA_FILE_SUFFIX.length))
      .sort();
  } catch (err) {
    throw ioError('list', dir, err);
  }
  const files = names.map((name) => ReplicaFile.open(dir, name));
  try {
    // Where two files hold two versions of one identity, every file gets the preferred one.
    const union = new ReplicaSet();
    for (const f of files) for (const e of f.set.entries) union.resolve(e);
    const data = serialize(union.canonical());
    const digest = createHash('sha256').update(data).digest('hex');
    return files.map((f, i) => {
      const before = f.set.size;
      const replaced = f.set.entries.filter((e) => {
        const u = union.get(e)!;
        return u.lamport !== e.lamport || u.text !== e.text;
      }).length;
      f.close();
      writeFileAtomic(f.file, data);
      return {
        replica: names[i]!,
        before,
        after: union.size,
        added: union.size - before,
        replaced,
        rejected: f.rejected.length,
        digest,
      };
    });
  } finally {
    for (const f of files) f.close();
  }
}
