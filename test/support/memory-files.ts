/**
 * File transfer's storage in memory, for simulations: a receiver's "disk" (a Map that outlives a
 * crash of the peer, as a real disk does) and a file to send. Same contract as storage/files.ts:
 * a chunk is held once written, the file appears only when its SHA-256 matches, never over
 * another. `failWrites` makes every write fail as a full disk would.
 */
import { createHash } from 'node:crypto';
import {
  ChunkSet,
  IncomingWriteError,
  type FinishResult,
  type IncomingFiles,
  type IncomingTransfer,
  type OutgoingFile,
  type TransferId,
} from '../../src/p2p/files/index.js';

/** What survives a crash: finished files by path, and transfers in progress. */
export interface MemoryDisk {
  files: Map<string, Buffer>;
  partial: Map<TransferId, { transfer: IncomingTransfer; data: Buffer; held: Uint8Array }>;
  /** Bytes free. */
  free: number;
}

export const memoryDisk = (free = 1 << 30): MemoryDisk => ({ files: new Map(), partial: new Map(), free });

export class MemoryIncomingFiles implements IncomingFiles {
  failWrites = false;
  /** Chunk writes made, to tell a resumed transfer from one sent again whole. */
  writes = 0;

  constructor(readonly disk: MemoryDisk) {}

  freeBytes(): Promise<number> {
    return Promise.resolve(this.disk.free);
  }

  begin(t: IncomingTransfer): Promise<void> {
    const held = new ChunkSet(Math.ceil(t.bytes / t.chunkBytes)).toBytes();
    this.disk.partial.set(t.id, { transfer: t, data: Buffer.alloc(t.bytes), held });
    return Promise.resolve();
  }

  write(id: TransferId, offset: number, data: Uint8Array, held: ChunkSet): Promise<void> {
    const p = this.disk.partial.get(id);
    if (!p) return Promise.reject(new Error(`no transfer ${id}`));
    if (this.failWrites)
      return Promise.reject(new IncomingWriteError({ kind: 'full', file: `${id}.part`, code: 'ENOSPC' }));
    this.writes++;
    p.data.set(data, offset);
    p.held = held.toBytes();
    return Promise.resolve();
  }

  finish(id: TransferId): Promise<FinishResult> {
    const p = this.disk.partial.get(id);
    if (!p) return Promise.reject(new Error(`no transfer ${id}`));
    this.disk.partial.delete(id);
    if (sha256(p.data) !== p.transfer.sha256)
      return Promise.resolve({ ok: false, reason: 'the file arrived damaged' });
    let n = 0;
    let path = `${p.transfer.fromName}/${p.transfer.name}`;
    while (this.disk.files.has(path)) path = `${p.transfer.fromName}/${p.transfer.name} (${++n})`;
    this.disk.files.set(path, p.data);
    return Promise.resolve({ ok: true, path });
  }

  discard(id: TransferId): Promise<void> {
    this.disk.partial.delete(id);
    return Promise.resolve();
  }

  pending(): Promise<Array<{ transfer: IncomingTransfer; held: ChunkSet }>> {
    return Promise.resolve(
      [...this.disk.partial.values()].map((p) => {
        const count = Math.ceil(p.transfer.bytes / p.transfer.chunkBytes);
        return { transfer: p.transfer, held: ChunkSet.fromBytes(count, p.held) ?? new ChunkSet(count) };
      }),
    );
  }
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** A file of `bytes` pseudo-random bytes (from `seed`), to send. */
export function memoryFile(name: string, bytes: number, seed = 1): OutgoingFile & { content: Buffer } {
  const content = Buffer.alloc(bytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    content[i] = x & 0xff;
  }
  return {
    name,
    bytes,
    sha256: sha256(content),
    content,
    read: (offset, length) => Promise.resolve(content.subarray(offset, offset + length)),
  };
}
