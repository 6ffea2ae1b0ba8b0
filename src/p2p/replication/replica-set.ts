/**
 * The entries a holder has, in memory, with a compact id index and an incremental digest tree.
 *
 * Identity is (origin, seq). A ReplicaSet never holds two entries with the same identity: its index
 * is an open-addressing hash table of positions (two Int32/Uint32 arrays, about 16 bytes per entry
 * at most, so 1,000,000 entries cost about 16 MB besides the entries themselves).
 */
import { compareEntries, entryId, preferred, type Entry } from './entry.js';
import { hash64 } from './hash.js';
import { formatLine } from './line.js';

/** Levels of the digest tree below the root: level L has 16^L buckets. */
export const DIGEST_LEVELS = 3;
export const DIGEST_FANOUT = 16;
const LEAF_BITS = 4 * DIGEST_LEVELS;
const INDEX_LOAD_MAX = 0.5;
const INDEX_CAPACITY_MIN = 64;

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
