/**
 * Files on disk for `peer chat --send-file`: the file a sender reads chunk by chunk, and where a
 * receiver puts what it accepts (the storage interfaces of p2p/files/store.ts).
 *
 * Layout, under the download folder (`<data-dir>/files` unless --download-dir says otherwise):
 *   <sender>/<name>                   a received file, SHA-256 verified, never overwritten: a name
 *                                     taken gets ` (1)`, ` (2)`... before its extension
 *   .partial/<receiver>/<id>.part     a transfer in progress, written at each chunk's offset
 *   .partial/<receiver>/<id>.state    what it is and which chunks it holds (JSON, rewritten
 *                                     atomically after each chunk is fsynced)
 * The partial folder is per receiving peer, so two peers sharing a data dir never take over each
 * other's transfers; it is in the download folder, so the final rename stays on one file system.
 *
 * Names: a file name and a sender name come from the network. Each must be one path component
 * (fileNameProblem: not empty, `.` or `..`, no slash, no control character), and the resolved
 * path is checked to lie inside the folder, whatever the names say.
 *
 * Durability: a chunk is written, fdatasync'ed, and only then recorded in the state file (itself
 * written to a temporary file, fsynced and renamed): a chunk recorded is on disk. The final file
 * is linked into place (link never replaces an existing file), then the temporary name removed and
 * the folder fsynced. The SHA-256 checked before that covers the bytes as they were written: chunks
 * written in order are hashed as they are written, and only the rest is read back at the end (a
 * 256 MiB file would otherwise be read again in full on every receiver). Failed writes are
 * classified (health.ts), reported once through StorageHealth, and rejected as
 * IncomingWriteError: never acknowledged.
 */
import { createHash, type Hash } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import {
  ChunkSet,
  FILE_BYTES_MAX,
  IncomingWriteError,
  chunkCount,
  fileNameProblem,
  isOffer,
  isTransferId,
  type FinishResult,
  type IncomingFiles,
  type IncomingTransfer,
  type OutgoingFile,
  type TransferId,
} from '../p2p/files/index.js';
import { isPeerId, isPeerName } from '../p2p/wire.js';
import { writeFailure, type StorageHealth } from './health.js';
import { fsyncDir, writeFileAtomic } from './replica.js';

/** The download folder under a data dir. */
export const FILES_DIR = 'files';
const PARTIAL_DIR = '.partial';
/** Suffixes tried for a name already taken (` (1)` .. this) before the file is refused. */
export const FILE_SUFFIXES_MAX = 9999;
/** Bytes hashed per read when computing a file's SHA-256. */
const HASH_READ_BYTES = 1024 * 1024;

export function downloadDir(dataDir: string, override?: string): string {
  return path.resolve(override ?? path.join(dataDir, FILES_DIR));
}

/**
 * `name` with ` (n)` before its extension (`report (1).pdf`; a leading dot is not an extension:
 * `.bashrc (1)`), n = 0 being the name itself.
 */
export function suffixed(name: string, n: number): string {
  if (n === 0) return name;
  const dot = name.lastIndexOf('.');
  return dot > 0 ? `${name.slice(0, dot)} (${n})${name.slice(dot)}` : `${name} (${n})`;
}

/** `dir/name` when `name` is one safe path component that stays inside `dir`; throws otherwise. */
export function inside(dir: string, name: string): string {
  const problem = fileNameProblem(name);
  if (problem) throw new RangeError(`unsafe name ${JSON.stringify(name)}: ${problem}`);
  const full = path.resolve(dir, name);
  if (path.dirname(full) !== path.resolve(dir)) throw new RangeError(`unsafe name ${JSON.stringify(name)}`);
  return full;
}

/**
 * SHA-256 of a file, lowercase hex, read in pieces (never the whole file in memory); with `from`,
 * `hash` already holds the file's first `offset` bytes and only the rest is read.
 */
export async function sha256File(file: string, from?: { hash: Hash; offset: number }): Promise<string> {
  const hash = from?.hash ?? createHash('sha256');
  let position = from?.offset ?? 0;
  const fh = await fsp.open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(HASH_READ_BYTES);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, position);
      position += bytesRead;
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

/** Reads `length` bytes at `offset`, however many reads it takes; fewer at the end of the file. */
async function readAt(fh: fsp.FileHandle, offset: number, length: number): Promise<Uint8Array> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

/**
 * Whether a local file can be sent, without reading it: its name and size; throws a one-line
 * Error when it cannot be sent.
 */
export async function checkOutgoingFile(file: string): Promise<{ name: string; bytes: number }> {
  const name = path.basename(file);
  const problem = fileNameProblem(name);
  if (problem) throw new Error(`cannot send ${file}: ${problem}`);
  const st = await fsp.stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot read ${file} (${err.code ?? err.message}); check the path`);
  });
  if (!st.isFile()) throw new Error(`${file} is not a regular file`);
  if (st.size > FILE_BYTES_MAX)
    throw new Error(`${file} is ${st.size} bytes, over the ${FILE_BYTES_MAX}-byte limit`);
  return { name, bytes: st.size };
}

/**
 * A local file to send, open for reading, its SHA-256 worked out (a read of the whole file);
 * throws a one-line Error when it cannot be sent.
 */
export async function openOutgoingFile(file: string): Promise<OutgoingFile & { close(): Promise<void> }> {
  const { name, bytes } = await checkOutgoingFile(file);
  const sha256 = await sha256File(file);
  const fh = await fsp.open(file, 'r');
  return {
    name,
    bytes,
    sha256,
    read: (offset, length) => readAt(fh, offset, length),
    close: () => fh.close(),
  };
}

interface StateFile {
  v: 1;
  transfer: IncomingTransfer;
  /** The held-chunk bitmap, base64. */
  held: string;
}

/** A transfer being received: its temporary file, open. */
interface OpenTransfer {
  fh: fsp.FileHandle;
  transfer: IncomingTransfer;
  /**
   * SHA-256 of the file's first `hashed` bytes, fed as chunks are written from the start in
   * order (reliable delivery hands them over in order), so finish() reads back only what came out
   * of order (after a restart: all of it). Null once a chunk fed to it failed to be written: the
   * chunk comes again, and finish() then hashes the whole file.
   */
  hash: Hash | null;
  hashed: number;
  /** The last write started, settled either way: discard() waits for it before closing. */
  writing: Promise<void>;
}

/** Where a receiving peer puts the files it accepts (see the header). */
export class IncomingFileStore implements IncomingFiles {
  private readonly partial: string;
  private readonly open = new Map<TransferId, OpenTransfer>();
  /** State files that failed their checks on load, removed with their data. */
  rejected = 0;

  constructor(
    readonly root: string,
    /** The receiving peer's name: its own folder of transfers in progress. */
    owner: string,
    private readonly health?: StorageHealth,
  ) {
    this.partial = inside(path.join(root, PARTIAL_DIR), owner);
  }

  async freeBytes(): Promise<number> {
    await fsp.mkdir(this.root, { recursive: true });
    const s = await fsp.statfs(this.root);
    return s.bavail * s.bsize;
  }

  async begin(t: IncomingTransfer): Promise<void> {
    this.folderOf(t); // refuses a sender name that is no folder name before anything is written
    const part = this.partFile(t.id);
    await this.guard(part, async () => {
      await fsp.mkdir(this.partial, { recursive: true });
      const fh = await fsp.open(part, 'w', 0o600);
      this.open.set(t.id, {
        fh,
        transfer: t,
        hash: createHash('sha256'),
        hashed: 0,
        writing: Promise.resolve(),
      });
      this.saveState(t, new ChunkSet(chunkCount(t.bytes, t.chunkBytes)));
    });
  }

  async write(id: TransferId, offset: number, data: Uint8Array, held: ChunkSet): Promise<void> {
    const o = this.handle(id);
    const { fh, transfer } = o;
    // Fed before the first await: writes start in delivery order, and finish in any order.
    const fed = o.hash !== null && offset === o.hashed;
    if (fed) {
      o.hash!.update(data);
      o.hashed += data.length;
    }
    const writing = this.guard(this.partFile(id), async () => {
      for (let done = 0; done < data.length;) {
        const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
        if (bytesWritten <= 0) throw Object.assign(new Error('write stored no byte'), { code: 'EIO' });
        done += bytesWritten;
      }
      await fh.datasync();
      this.saveState(transfer, held);
    });
    o.writing = writing.catch(() => {});
    try {
      await writing;
    } catch (err) {
      if (fed) o.hash = null;
      throw err;
    }
  }

  async finish(id: TransferId): Promise<FinishResult> {
    const { fh, transfer, hash, hashed } = this.handle(id);
    await fh.close();
    this.open.delete(id);
    const part = this.partFile(id);
    const sha = await sha256File(part, hash ? { hash, offset: hashed } : undefined);
    if (sha !== transfer.sha256) {
      await this.discard(id);
      return { ok: false, reason: `the file arrived damaged (SHA-256 ${sha}, expected ${transfer.sha256})` };
    }
    const folder = this.folderOf(transfer);
    let placed: string | null = null;
    await this.guard(part, async () => {
      await fsp.mkdir(folder, { recursive: true });
      placed = await placeWithoutOverwrite(part, folder, transfer.name);
      await fsp.rm(this.stateFile(id), { force: true });
      fsyncDir(folder);
      fsyncDir(this.partial);
    });
    if (placed === null) {
      await this.discard(id);
      return { ok: false, reason: `${FILE_SUFFIXES_MAX} files named like ${transfer.name} already there` };
    }
    return { ok: true, path: placed };
  }

  async discard(id: TransferId): Promise<void> {
    const o = this.open.get(id);
    this.open.delete(id);
    // A write still running would fail on the closed handle, and count as a failing disk.
    await o?.writing;
    await o?.fh.close().catch(() => {});
    await fsp.rm(this.partFile(id), { force: true });
    await fsp.rm(this.stateFile(id), { force: true });
  }

  async pending(): Promise<Array<{ transfer: IncomingTransfer; held: ChunkSet }>> {
    let names: string[];
    try {
      names = await fsp.readdir(this.partial);
    } catch {
      return [];
    }
    const out: Array<{ transfer: IncomingTransfer; held: ChunkSet }> = [];
    for (const n of names) {
      // A state file's temporary copy (writeFileAtomic) that a process killed between writing and
      // renaming it left behind: never read, removed (one process per data dir: not ours).
      if (n.startsWith('.') && n.endsWith('.tmp') && !n.endsWith(`.${process.pid}.tmp`)) {
        await fsp.rm(path.join(this.partial, n), { force: true });
        continue;
      }
      const id = n.endsWith('.state') ? n.slice(0, -'.state'.length) : null;
      if (id === null || !isTransferId(id)) continue;
      const loaded = await this.load(id);
      if (!loaded) {
        this.rejected++;
        await this.discard(id);
        continue;
      }
      out.push(loaded);
    }
    return out;
  }

  /** A state file and its data checked as hostile (a damaged or planted file is refused). */
  private async load(id: TransferId): Promise<{ transfer: IncomingTransfer; held: ChunkSet } | null> {
    let s: Partial<StateFile>;
    try {
      s = JSON.parse(await fsp.readFile(this.stateFile(id), 'utf8')) as Partial<StateFile>;
    } catch {
      return null;
    }
    const t = s.transfer;
    if (s.v !== 1 || typeof s.held !== 'string' || !isIncomingTransfer(t) || t.id !== id) return null;
    const held = ChunkSet.fromBytes(chunkCount(t.bytes, t.chunkBytes), Buffer.from(s.held, 'base64'));
    if (!held) return null;
    try {
      const fh = await fsp.open(this.partFile(id), 'r+');
      // What was hashed before the restart is gone with the process: finish() reads it all.
      this.open.set(id, { fh, transfer: t, hash: null, hashed: 0, writing: Promise.resolve() });
    } catch {
      return null;
    }
    return { transfer: t, held };
  }

  private handle(id: TransferId): OpenTransfer {
    const o = this.open.get(id);
    if (!o) throw new Error(`no transfer ${id} in progress`);
    return o;
  }

  private folderOf(t: IncomingTransfer): string {
    if (!isPeerName(t.fromName) || fileNameProblem(t.fromName) !== null)
      throw new RangeError(`unsafe sender name ${JSON.stringify(t.fromName)}: it cannot be a folder name`);
    return inside(this.root, t.fromName);
  }

  private partFile(id: TransferId): string {
    return inside(this.partial, `${id}.part`);
  }

  private stateFile(id: TransferId): string {
    return inside(this.partial, `${id}.state`);
  }

  private saveState(transfer: IncomingTransfer, held: ChunkSet): void {
    const s: StateFile = { v: 1, transfer, held: Buffer.from(held.toBytes()).toString('base64') };
    writeFileAtomic(this.stateFile(transfer.id), JSON.stringify(s));
  }

  /** Runs a write: a failure is classified, reported once, and rejected as IncomingWriteError. */
  private async guard(file: string, write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (err) {
      const f = writeFailure(file, (err as { cause?: unknown }).cause ?? err);
      this.health?.failed(f, 'files');
      throw new IncomingWriteError(f);
    }
    this.health?.succeeded(file, 'files');
  }
}

/**
 * Links `part` into `folder` under `name`, or the first free suffixed name, and removes `part`;
 * the path it took, or null when every suffix is taken. link(2) fails rather than replace a file,
 * so a file that appears meanwhile is never overwritten.
 */
async function placeWithoutOverwrite(part: string, folder: string, name: string): Promise<string | null> {
  for (let n = 0; n <= FILE_SUFFIXES_MAX; n++) {
    const dest = inside(folder, suffixed(name, n));
    try {
      await fsp.link(part, dest);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw err;
    }
    await fsp.rm(part);
    return dest;
  }
  return null;
}

/** A transfer read back from disk: the offer's own checks, and a sender id and name. */
function isIncomingTransfer(t: unknown): t is IncomingTransfer {
  const o = t as IncomingTransfer | null | undefined;
  if (typeof o !== 'object' || o === null || !isPeerId(o.from) || !isPeerName(o.fromName)) return false;
  if (fileNameProblem(o.fromName) !== null) return false;
  const { id, name, bytes, sha256, chunkBytes } = o;
  return isOffer({ id, name, bytes, sha256, chunkBytes });
}
