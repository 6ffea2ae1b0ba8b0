/**
 * What file transfer needs from storage, declared here so the protocol never touches a disk
 * itself: the CLI implements both with files (storage/files.ts), the simulation in memory.
 */
import type { PeerId } from '../wire.js';
import type { WriteFailure } from '../write-failure.js';
import type { ChunkSet } from './chunks.js';
import type { TransferId } from './messages.js';

/** A file to send, read chunk by chunk: the sender never holds the whole of it. */
export interface OutgoingFile {
  /** The name receivers give it (a file name, no folder). */
  readonly name: string;
  readonly bytes: number;
  /** SHA-256 of the content, lowercase hex. */
  readonly sha256: string;
  /** `length` bytes from `offset`; rejects when the file cannot be read (or shrank). */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** A transfer a receiver takes part in, as it persists it. */
export interface IncomingTransfer {
  id: TransferId;
  from: PeerId;
  fromName: string;
  name: string;
  bytes: number;
  sha256: string;
  chunkBytes: number;
}

/** How a finished transfer ended: the verified file in place at `path`, or why not. */
export type FinishResult = { ok: true; path: string } | { ok: false; reason: string };

/** Thrown (rejected) by a write storage could not make: never acknowledged. */
export class IncomingWriteError extends Error {
  override name = 'IncomingWriteError';
  constructor(readonly failure: WriteFailure) {
    super(`cannot write ${failure.file}: ${failure.code}`);
  }
}

/** Where a receiver puts files: a temporary file per transfer, and what it holds of it. */
export interface IncomingFiles {
  /** Bytes free where files are written. */
  freeBytes(): Promise<number>;
  /** Creates the transfer's temporary file and its persisted state (nothing held yet). */
  begin(t: IncomingTransfer): Promise<void>;
  /**
   * Writes a chunk at its offset, makes it durable, then persists `held` (which includes it).
   * Rejects with IncomingWriteError when the disk refuses.
   */
  write(id: TransferId, offset: number, data: Uint8Array, held: ChunkSet): Promise<void>;
  /**
   * Checks the temporary file's SHA-256 against the offer and, when it matches, renames it into
   * place (never over an existing file) and forgets the state.
   */
  finish(id: TransferId): Promise<FinishResult>;
  /** Removes the transfer's temporary file and state. */
  discard(id: TransferId): Promise<void>;
  /** Transfers begun and not finished (after a restart), each with the chunks it holds. */
  pending(): Promise<Array<{ transfer: IncomingTransfer; held: ChunkSet }>>;
}
