/**
 * An invertible Bloom lookup table (Eppstein et al., "What's the difference?", SIGCOMM 2011): a
 * table of m cells over a set of 64-bit keys from which, once another side's table is subtracted,
 * the keys only one side has can be listed (peeled) as long as they are few next to m. Anti-entropy
 * builds one over the content hashes of a replica's lines; a failed peel means m was too small.
 */
import { mix32 } from './hash.js';
import type { ReplicaSet } from './replica-set.js';

export const IBLT_HASHES = 3;
export const IBLT_CELLS_MIN = 24;
export const IBLT_CELLS_MAX = 1 << 21;
/** Bytes of one IBLT cell on the wire: count mod 2^16, two key lanes, check hash. */
export const IBLT_CELL_BYTES = 14;

/** Cells for a difference of about `d` keys: 1.5 d peels with high probability, plus a floor. */
export function ibltSize(d: number): number {
  const m = Math.ceil(1.5 * d) + IBLT_CELLS_MIN;
  return Math.min(IBLT_CELLS_MAX, Math.ceil(m / IBLT_HASHES) * IBLT_HASHES);
}

function keyCheck(k1: number, k2: number): number {
  return mix32(k1 ^ mix32(k2 ^ 0x5bd1e995));
}

/**
 * An invertible Bloom lookup table over 64-bit keys, partitioned into IBLT_HASHES sub-tables so a
 * key never lands twice in one cell. Counts travel mod 2^16: a difference of two tables only needs
 * small counts, and the wrap cancels in the subtraction.
 */
export class Iblt {
  readonly count: Int32Array;
  readonly k1: Uint32Array;
  readonly k2: Uint32Array;
  readonly chk: Uint32Array;
  private readonly sub: number;

  constructor(readonly m: number) {
    this.count = new Int32Array(m);
    this.k1 = new Uint32Array(m);
    this.k2 = new Uint32Array(m);
    this.chk = new Uint32Array(m);
    this.sub = Math.floor(m / IBLT_HASHES);
  }

  static build(m: number, set: ReplicaSet): Iblt {
    const t = new Iblt(m);
    for (let i = 0; i < set.size; i++) {
      const [k1, k2] = set.contentHashAt(i);
      t.toggle(k1, k2, 1);
    }
    return t;
  }

  toggle(k1: number, k2: number, sign: number): void {
    const c = keyCheck(k1, k2);
    for (let j = 0; j < IBLT_HASHES; j++) {
      const i = j * this.sub + (mix32(k1 ^ Math.imul(j + 1, 0x9e3779b9) ^ k2) % this.sub);
      this.count[i]! += sign;
      this.k1[i] = (this.k1[i]! ^ k1) >>> 0;
      this.k2[i] = (this.k2[i]! ^ k2) >>> 0;
      this.chk[i] = (this.chk[i]! ^ c) >>> 0;
    }
  }

  writeCells(from: number, n: number): Buffer {
    const b = Buffer.alloc(n * IBLT_CELL_BYTES);
    for (let i = 0; i < n; i++) {
      const o = i * IBLT_CELL_BYTES;
      b.writeUInt16LE(this.count[from + i]! & 0xffff, o);
      b.writeUInt32LE(this.k1[from + i]!, o + 2);
      b.writeUInt32LE(this.k2[from + i]!, o + 6);
      b.writeUInt32LE(this.chk[from + i]!, o + 10);
    }
    return b;
  }

  readCells(b: Buffer, from: number, n: number): void {
    for (let i = 0; i < n; i++) {
      const o = i * IBLT_CELL_BYTES;
      this.count[from + i] = b.readUInt16LE(o);
      this.k1[from + i] = b.readUInt32LE(o + 2);
      this.k2[from + i] = b.readUInt32LE(o + 6);
      this.chk[from + i] = b.readUInt32LE(o + 10);
    }
  }

  /** this - other, counts reduced to int16 (the difference is small; the wrap cancels). */
  subtract(other: Iblt): Iblt {
    const d = new Iblt(this.m);
    for (let i = 0; i < this.m; i++) {
      d.count[i] = (((this.count[i]! - other.count[i]!) << 16) >> 16) | 0;
      d.k1[i] = (this.k1[i]! ^ other.k1[i]!) >>> 0;
      d.k2[i] = (this.k2[i]! ^ other.k2[i]!) >>> 0;
      d.chk[i] = (this.chk[i]! ^ other.chk[i]!) >>> 0;
    }
    return d;
  }

  /** Peels a difference table: keys only this side has (+1) and only the other side has (-1). */
  decode(): { ours: Array<[number, number]>; theirs: Array<[number, number]> } | null {
    const ours: Array<[number, number]> = [];
    const theirs: Array<[number, number]> = [];
    const pure = (i: number) =>
      (this.count[i] === 1 || this.count[i] === -1) && this.chk[i] === keyCheck(this.k1[i]!, this.k2[i]!);
    const stack: number[] = [];
    for (let i = 0; i < this.m; i++) if (pure(i)) stack.push(i);
    let guard = 0;
    while (stack.length > 0) {
      const i = stack.pop()!;
      if (!pure(i)) continue;
      if (++guard > this.m * 4) return null;
      const k1 = this.k1[i]!;
      const k2 = this.k2[i]!;
      const sign = this.count[i]!;
      (sign === 1 ? ours : theirs).push([k1, k2]);
      this.toggle(k1, k2, -sign);
      for (let j = 0; j < IBLT_HASHES; j++) {
        const c = j * this.sub + (mix32(k1 ^ Math.imul(j + 1, 0x9e3779b9) ^ k2) % this.sub);
        if (pure(c)) stack.push(c);
      }
    }
    for (let i = 0; i < this.m; i++)
      if (this.count[i] !== 0 || this.k1[i] !== 0 || this.k2[i] !== 0 || this.chk[i] !== 0) return null;
    return { ours, theirs };
  }
}
