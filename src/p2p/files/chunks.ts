/**
 * Chunk bookkeeping: where each chunk of a file lies, and which chunks a receiver holds (one bit
 * per chunk, the form it is persisted in next to the temporary file, so a restarted receiver knows
 * what it lacks).
 */
import { FILE_CHUNKS_MAX } from './limits.js';

/** Chunks of a file of `bytes` bytes cut in `chunkBytes`: an empty file has none. */
export function chunkCount(bytes: number, chunkBytes: number): number {
  return Math.ceil(bytes / chunkBytes);
}

/** Bytes of chunk `index` (the last one may be shorter). */
export function chunkLength(bytes: number, chunkBytes: number, index: number): number {
  return Math.max(0, Math.min(chunkBytes, bytes - index * chunkBytes));
}

/** A set of chunk indexes below `count`, as a bitmap. */
export class ChunkSet {
  private readonly bits: Uint8Array;
  private held = 0;

  constructor(
    readonly count: number,
    bits?: Uint8Array,
  ) {
    if (!Number.isSafeInteger(count) || count < 0 || count > FILE_CHUNKS_MAX)
      throw new RangeError(`chunk count ${count} outside 0..${FILE_CHUNKS_MAX}`);
    this.bits = bits ? Uint8Array.from(bits) : new Uint8Array(Math.ceil(count / 8));
    for (let i = 0; i < count; i++) if (this.has(i)) this.held++;
  }

  /**
   * The set persisted as `bytes`, or null when they cannot be one of `count` chunks (a damaged
   * state file): the wrong length, or a bit set past the last chunk.
   */
  static fromBytes(count: number, bytes: Uint8Array): ChunkSet | null {
    if (!Number.isSafeInteger(count) || count < 0 || count > FILE_CHUNKS_MAX) return null;
    if (bytes.length !== Math.ceil(count / 8)) return null;
    const spare = bytes.length * 8 - count;
    if (spare > 0 && (bytes[bytes.length - 1]! & ((1 << spare) - 1)) !== 0) return null;
    return new ChunkSet(count, bytes);
  }

  has(index: number): boolean {
    return ((this.bits[index >> 3] ?? 0) & (0x80 >> (index & 7))) !== 0;
  }

  add(index: number): void {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.count)
      throw new RangeError(`chunk ${index} outside 0..${this.count - 1}`);
    if (this.has(index)) return;
    this.bits[index >> 3]! |= 0x80 >> (index & 7);
    this.held++;
  }

  /** Chunks in the set. */
  get size(): number {
    return this.held;
  }

  get complete(): boolean {
    return this.held === this.count;
  }

  /** Up to `rangesMax` runs of chunks not in the set, in order, as [first, last] inclusive. */
  missing(rangesMax: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    let i = 0;
    while (i < this.count && out.length < rangesMax) {
      if (this.has(i)) {
        i++;
        continue;
      }
      const first = i;
      while (i < this.count && !this.has(i)) i++;
      out.push([first, i - 1]);
    }
    return out;
  }

  /** This set with `index` added, leaving this one as it is (what to persist before adding). */
  with(index: number): ChunkSet {
    const next = new ChunkSet(this.count, this.bits);
    next.add(index);
    return next;
  }

  toBytes(): Uint8Array {
    return Uint8Array.from(this.bits);
  }
}
