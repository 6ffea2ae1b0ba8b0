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
 * entry only once it is on disk. A rewrite goes to a temp file that is fsynced, renamed over the
 * replica, and the directory is fsynced, so a crash leaves either the old or the new file, whole.
 * A line that does not parse is never dropped silently: it is appended, with its line number and
 * the reason, to `<name>.rejected` next to the replica (fsynced) before the file is rewritten
 * without it, and the caller gets the list to report.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';

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
 * The entries a holder has, in the order it learned them, with:
 *  - an index by id hash (open addressing over positions) for duplicate checks and lookups;
 *  - per-entry id hash (IBLT keys) and content hash (digest) in typed arrays;
 *  - a digest tree: 16^L buckets per level L (L = 0..DIGEST_LEVELS), each the XOR of the content
 *    hashes of the entries whose id hash falls in it. Updated in O(levels) per insert. The root is
 *    the replica's digest: equal sets give equal digests, and any difference in any byte of any
 *    line changes it (with probability 1 - 2^-64).
 */
export class ReplicaSet {
  private list: Entry[] = [];
  private idH1 = new Uint32Array(INDEX_CAPACITY_MIN);
  private idH2 = new Uint32Array(INDEX_CAPACITY_MIN);
  private cH1 = new Uint32Array(INDEX_CAPACITY_MIN);
  private cH2 = new Uint32Array(INDEX_CAPACITY_MIN);
  private table = new Int32Array(INDEX_CAPACITY_MIN * 2).fill(-1);
  /** tree[level] holds 2 lanes per bucket: [lane0, lane1, lane0, lane1, ...]. */
  readonly tree: Uint32Array[] = Array.from(
    { length: DIGEST_LEVELS + 1 },
    (_, l) => new Uint32Array(2 * DIGEST_FANOUT ** l),
  );

  static of(entries: Iterable<Entry>): ReplicaSet {
    const s = new ReplicaSet();
    for (const e of entries) s.add(e);
    return s;
  }

  get size(): number {
    return this.list.length;
  }

  /** Entries in the order learned (the file's order). Do not mutate. */
  get entries(): readonly Entry[] {
    return this.list;
  }

  /** The digest: 16 hex digits of the root, and the count. */
  digest(): string {
    const r = this.tree[0]!;
    return hex32(r[0]!) + hex32(r[1]!);
  }

  has(e: Pick<Entry, 'origin' | 'seq'>): boolean {
    const [h1, h2] = hash64(entryId(e));
    return this.find(h1, h2, e) >= 0;
  }

  /** The entry whose id hashes to (h1, h2), if any (IBLT keys name entries by id hash). */
  byIdHash(h1: number, h2: number): Entry | undefined {
    const p = this.find(h1 >>> 0, h2 >>> 0, null);
    return p >= 0 ? this.list[p] : undefined;
  }

  idHashAt(i: number): [number, number] {
    return [this.idH1[i]!, this.idH2[i]!];
  }

  /** Adds an entry unless one with its identity is present; true when added. */
  add(e: Entry): boolean {
    const [h1, h2] = hash64(entryId(e));
    if (this.find(h1, h2, e) >= 0) return false;
    const i = this.list.length;
    if (i >= this.idH1.length) this.growArrays();
    if ((i + 1) / this.table.length > INDEX_LOAD_MAX) this.rehash(this.table.length * 2);
    this.list.push(e);
    this.idH1[i] = h1;
    this.idH2[i] = h2;
    const [c1, c2] = hash64(formatLine(e), 1);
    this.cH1[i] = c1;
    this.cH2[i] = c2;
    this.insertSlot(i);
    const leaf = h1 >>> (32 - LEAF_BITS);
    for (let l = 0; l <= DIGEST_LEVELS; l++) {
      const b = leaf >>> (4 * (DIGEST_LEVELS - l));
      const t = this.tree[l]!;
      t[2 * b] = (t[2 * b]! ^ c1) >>> 0;
      t[2 * b + 1] = (t[2 * b + 1]! ^ c2) >>> 0;
    }
    return true;
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
    this.rehash(this.table.length);
  }

  isCanonical(): boolean {
    for (let i = 1; i < this.list.length; i++)
      if (compareEntries(this.list[i - 1]!, this.list[i]!) > 0) return false;
    return true;
  }

  private find(h1: number, h2: number, exact: Pick<Entry, 'origin' | 'seq'> | null): number {
    const mask = this.table.length - 1;
    for (let s = h1 & mask; ; s = (s + 1) & mask) {
      const p = this.table[s]!;
      if (p < 0) return -1;
      if (this.idH1[p] === h1 && this.idH2[p] === h2) {
        const e = this.list[p]!;
        if (!exact || (e.origin === exact.origin && e.seq === exact.seq)) return p;
      }
    }
  }

  private insertSlot(i: number): void {
    const mask = this.table.length - 1;
    let s = this.idH1[i]! & mask;
    while (this.table[s]! >= 0) s = (s + 1) & mask;
    this.table[s] = i;
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
    this.table = new Int32Array(capacity).fill(-1);
    for (let i = 0; i < this.list.length; i++) this.insertSlot(i);
  }
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
}

export function replicaPath(dir: string, name: string): string {
  return path.join(dir, `${name}${REPLICA_FILE_SUFFIX}`);
}

function ioError(what: string, file: string, err: unknown): ReplicaError {
  const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  return new ReplicaError(
    `cannot ${what} ${file} (${code}); check the directory's permissions or pass --dir`,
  );
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

/** Parses a file's text; duplicates and bad lines come back as rejections with line numbers. */
export function parseReplica(content: string): { set: ReplicaSet; rejected: Rejection[] } {
  const set = new ReplicaSet();
  const rejected: Rejection[] = [];
  const lines = content.split('\n');
  if (lines.at(-1) === '') lines.pop();
  lines.forEach((text, i) => {
    const p = parseLine(text);
    if (!p.ok) rejected.push({ line: i + 1, reason: p.reason, text });
    else if (!set.add(p.entry))
      rejected.push({ line: i + 1, reason: `duplicate of entry ${entryId(p.entry)}`, text });
  });
  return { set, rejected };
}

/**
 * One replica file, open for appends. Reads and checks the file on open; rejected lines are moved
 * to `<name>.rejected` and the file is rewritten without them, so what is on disk always parses.
 */
export class ReplicaFile {
  private fd: number | null = null;

  private constructor(
    readonly file: string,
    readonly set: ReplicaSet,
    readonly rejected: Rejection[],
  ) {}

  static open(dir: string, name: string): ReplicaFile {
    ensureWritableDir(dir);
    const file = replicaPath(dir, name);
    let content = '';
    try {
      content = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError('read', file, err);
    }
    const { set, rejected } = parseReplica(content);
    if (rejected.length > 0) {
      keepAside(file, rejected);
      writeFileAtomic(file, serialize(set.entries));
    } else if (content.length > 0 && !content.endsWith('\n')) {
      // A last line without its newline (a crash mid-append, or an editor): complete it.
      writeFileAtomic(file, serialize(set.entries));
    }
    const rf = new ReplicaFile(file, set, rejected);
    try {
      rf.fd = fs.openSync(file, 'a', 0o644);
    } catch (err) {
      throw ioError('open for appending', file, err);
    }
    return rf;
  }

  /** Appends the entries not present yet; they are on disk (fsynced) when this returns them. */
  append(entries: readonly Entry[]): Entry[] {
    const added = entries.filter((e) => this.set.add(e));
    if (added.length === 0) return added;
    if (this.fd === null) throw new ReplicaError(`${this.file} is closed`);
    try {
      fs.writeSync(this.fd, serialize(added));
      fs.fsyncSync(this.fd);
    } catch (err) {
      throw ioError('append to', this.file, err);
    }
    return added;
  }

  /** Rewrites the file atomically in canonical order; returns the SHA-256 of the new content. */
  rewriteCanonical(): string {
    this.set.sortCanonical();
    const data = serialize(this.set.entries);
    this.close();
    writeFileAtomic(this.file, data);
    try {
      this.fd = fs.openSync(this.file, 'a', 0o644);
    } catch (err) {
      throw ioError('open for appending', this.file, err);
    }
    return createHash('sha256').update(data).digest('hex');
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

/** Appends rejected lines, with their line numbers and reasons, to `<name>.rejected` (fsynced). */
export function keepAside(file: string, rejected: Rejection[]): string {
  const aside = file.slice(0, -REPLICA_FILE_SUFFIX.length) + REJECTED_FILE_SUFFIX;
  const stamp = new Date().toISOString();
  const text = rejected
    .map((r) => `# ${stamp} ${path.basename(file)} line ${r.line}: ${r.reason}\n${r.text}\n`)
    .join('');
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
  rejected: number;
  /** SHA-256 of the file after the rewrite. */
  digest: string;
}

/**
 * Seed 004's reconciler done right: the union of every replica in `dir`, without duplicates, in
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
    const union = new ReplicaSet();
    for (const f of files) for (const e of f.set.entries) union.add(e);
    const data = serialize(union.canonical());
    const digest = createHash('sha256').update(data).digest('hex');
    return files.map((f, i) => {
      const before = f.set.size;
      f.close();
      writeFileAtomic(f.file, data);
      return {
        replica: names[i]!,
        before,
        after: union.size,
        added: union.size - before,
        rejected: f.rejected.length,
        digest,
      };
    });
  } finally {
    for (const f of files) f.close();
  }
}
