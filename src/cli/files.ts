/**
 * Files in `peer chat` (--send-file, /send, what --listen and the interactive chat receive): the
 * size flags, the lines and JSON a transfer prints, and the progress bars on a terminal. The
 * protocol is src/p2p/files; the disk side src/storage/files.ts; ChatSession (chat.ts) wires them.
 */
import chalk from 'chalk';
import {
  FILE_BYTES_MAX,
  type IncomingEvent,
  type ReceiverOutcome,
  type TransferResult,
} from '../p2p/files/index.js';
import type { StorageHealth } from '../storage/health.js';
import { IncomingFileStore, downloadDir } from '../storage/files.js';
import { UsageError } from './network.js';
import { clockTime, paintName } from './output.js';
import { Progress } from './progress.js';
import { escapeForTerminal } from './sanitize.js';

/** How often a progress bar is redrawn from the transfer's state. */
export const FILE_PROGRESS_POLL_MS = 200;
/** Characters of a progress bar between its brackets. */
const BAR_CHARS = 24;
const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** "5000000", "10M", "10MiB", "1.5G", "512k": bytes (powers of 1024); a UsageError otherwise. */
export function parseByteSize(flag: string, s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(s.trim());
  const bytes = m ? Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes > FILE_BYTES_MAX)
    throw new UsageError(`${flag} ${s} is not a size up to 1 TiB; use e.g. 5000000, 512K, 10M or 2G`);
  return bytes;
}

/** Where peer `name` puts the files it accepts; a UsageError when its name cannot be a folder. */
export function incomingFiles(
  dataDir: string,
  override: string | undefined,
  name: string,
  health: StorageHealth,
): IncomingFileStore {
  try {
    return new IncomingFileStore(downloadDir(dataDir, override), name, health);
  } catch {
    throw new UsageError(
      `--name '${name}' cannot be a folder name, which receiving files needs; choose another name`,
    );
  }
}

/** 27.0 MiB, 512 B. */
export function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** `[#######.................]  30%`. */
export function progressBar(done: number, total: number): string {
  const f = total === 0 ? 1 : Math.min(1, done / total);
  const filled = Math.round(f * BAR_CHARS);
  return `[${'#'.repeat(filled)}${'.'.repeat(BAR_CHARS - filled)}] ${String(Math.floor(f * 100)).padStart(3)}%`;
}

/** What one receiver's outcome says, for the sender: "bob (refused: too large ...)" (remote text: escape it). */
export function outcomeText(r: ReceiverOutcome): string {
  const why: Record<ReceiverOutcome['status'], string> = {
    offered: 'never answered the offer',
    accepted: 'did not finish',
    refused: 'refused',
    done: 'holds it',
    failed: 'failed',
    gone: 'gone before it had the whole file',
    timeout: 'stopped answering',
    cancelled: 'the send was interrupted',
  };
  const reason = r.reason ? `: ${r.reason}` : '';
  return `${r.name} (${why[r.status]}${reason})`;
}

/** The JSON a --send-file prints: the file, and each receiver's outcome. */
export function sentJson(file: { name: string; bytes: number; sha256: string }, r: TransferResult): string {
  return JSON.stringify({
    type: 'file-sent',
    name: file.name,
    bytes: file.bytes,
    sha256: file.sha256,
    ok: r.ok,
    receivers: r.receivers.map((x) => ({ name: x.name, id: x.peer, status: x.status, reason: x.reason })),
  });
}

/**
 * A line for what happened to a file offered to this peer, or null for progress (shown by the
 * bar). With `json`: `{"type":"file","from","name","bytes","sha256","path"}` for a file received,
 * `file-refused` / `file-failed` with the reason, `file-resumed` with the bytes already held after
 * a restart.
 */
export function incomingLine(e: IncomingEvent, json: boolean): string | null {
  const t = e.transfer;
  if (json) {
    if (e.kind === 'received')
      return JSON.stringify({
        type: 'file',
        from: t.fromName,
        name: t.name,
        bytes: t.bytes,
        sha256: t.sha256,
        path: e.path,
      });
    if (e.kind === 'resumed')
      return JSON.stringify({
        type: 'file-resumed',
        from: t.fromName,
        name: t.name,
        bytes: t.bytes,
        held: e.heldBytes,
      });
    if (e.kind === 'refused' || e.kind === 'failed')
      return JSON.stringify({
        type: `file-${e.kind}`,
        from: t.fromName,
        name: t.name,
        bytes: t.bytes,
        reason: e.reason,
      });
    return null;
  }
  const what = `${escapeForTerminal(t.name)} (${humanBytes(t.bytes)})`;
  const head = `${chalk.gray(clockTime(Date.now()))} ${paintName(t.fromName)}`;
  switch (e.kind) {
    case 'accepted':
      return chalk.gray(`${head} is sending ${what}`);
    case 'resumed':
      return chalk.gray(`${head}: resuming ${what}, ${humanBytes(e.heldBytes)} already here`);
    case 'received':
      return `${head} sent ${what}: saved as ${escapeForTerminal(e.path)} (SHA-256 verified)`;
    case 'refused':
      return chalk.yellow(`${head} offered ${what}: refused, ${escapeForTerminal(e.reason)}`);
    case 'failed':
      return chalk.red(`${head} sent ${what}: not saved, ${escapeForTerminal(e.reason)}`);
    default:
      return null;
  }
}

/**
 * Progress bars of the files this peer receives, on a terminal (one status line: the first file
 * and how many more); nothing when not a terminal or with --json (Progress decides).
 */
export class ReceivingBars {
  private readonly active = new Map<string, { name: string; from: string; bytes: number; held: number }>();
  private progress: Progress | null = null;

  constructor(private readonly json: boolean) {}

  onEvent(e: IncomingEvent): void {
    const t = e.transfer;
    if (e.kind === 'accepted' || e.kind === 'resumed' || e.kind === 'progress') {
      const held = e.kind === 'accepted' ? 0 : e.heldBytes;
      this.active.set(t.id, { name: t.name, from: t.fromName, bytes: t.bytes, held });
    } else this.active.delete(t.id);
    this.draw();
  }

  stop(): void {
    this.active.clear();
    this.draw();
  }

  private draw(): void {
    const [first, ...more] = this.active.values();
    if (!first) {
      this.progress?.done();
      this.progress = null;
      return;
    }
    this.progress ??= new Progress({ json: this.json, afterMs: 0 });
    const others = more.length > 0 ? ` and ${more.length} more` : '';
    this.progress.update(
      `receiving ${first.name} from ${first.from} ${progressBar(first.held, first.bytes)}${others}`,
    );
  }
}
