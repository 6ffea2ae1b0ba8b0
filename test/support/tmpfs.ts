/**
 * A real, tiny disk for a real CLI process: the process runs in a mount namespace of its own
 * (`unshare --mount`, propagation private, so nothing is mounted on the host) with a fresh tmpfs on
 * a mount point; the test reaches its files through /proc/<pid>/root and fills the disk with a
 * filler file, then deletes it to give the space back. Used by the loopback and LAN disk-full tests.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'vitest';
import type { ChildLines } from '../../src/cli/child.js';
import { alive } from './proc.js';
import { entryId, parseReplica } from '../../src/p2p/replication/index.js';
import { STORAGE_RECOVERED_AFTER_MS } from '../../src/storage/health.js';

/** Size of each tmpfs: small enough to fill in a moment, big enough for a peer to start on. */
export const TMPFS_SIZE = '2m';
/** The filler's name, in the root of the tmpfs. */
const FILLER = 'filler';

/** What a holder logs, once, when writes to a directory start failing and when they work again. */
export const FAILING =
  /storage: writes to \S+ failing \(disk full\); refusing new writes until space returns/g;
export const RECOVERED = /storage: writes to \S+ work again; accepting new writes/g;

/**
 * The command and arguments that run `command args` with a fresh tmpfs on `mount`, in a mount
 * namespace of its own. The process keeps its pid through `unshare` and `sh` (both exec), so
 * /proc/<child pid>/root is its view of the disk once it runs. Creates the mount point.
 */
export function onTmpfs(mount: string, command: string, args: string[]): { command: string; args: string[] } {
  fs.mkdirSync(mount, { recursive: true });
  return {
    command: 'unshare',
    args: [
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      `mount -t tmpfs -o size=${TMPFS_SIZE} tmpfs "$1" && shift && exec "$@"`,
      'sh',
      mount,
      command,
      ...args,
    ],
  };
}

/** A path inside a process's mount namespace, as seen from here. */
export function inside(p: ChildLines, file: string): string {
  return `/proc/${p.child.pid}/root${file}`;
}

/** Fills the tmpfs on `mount` seen by `p` until `roomBytes` are left. */
export function fill(p: ChildLines, mount: string, roomBytes: number): void {
  const at = inside(p, mount);
  const st = fs.statfsSync(at);
  fs.writeFileSync(path.join(at, FILLER), Buffer.alloc(Math.max(0, st.bavail * st.bsize - roomBytes)));
}

/** Gives back the space `fill` took. */
export function unfill(p: ChildLines, mount: string): void {
  fs.rmSync(inside(p, path.join(mount, FILLER)));
}

/** How many times `re` (global) matches what `p` printed on stderr. */
export function countStderr(p: ChildLines, re: RegExp): number {
  return (p.stderr.join('').match(re) ?? []).length;
}

/**
 * The ids of the entries in a replica file inside p's namespace, and the lines that did not parse.
 * The holder keeps repairing meanwhile: an append in progress (or failing, before its torn part
 * is cut off) may show as a last line without its newline. Whole lines are what counts.
 */
export function storedReplica(p: ChildLines, file: string): { ids: Set<string>; rejected: unknown[] } {
  const content = fs.readFileSync(inside(p, file), 'utf8');
  const parsed = parseReplica(content.slice(0, content.lastIndexOf('\n') + 1));
  return { ids: new Set(parsed.set.entries.map(entryId)), rejected: parsed.rejected };
}

/**
 * The ids of the writes in kv_log of a kv database inside p's namespace. SQLite resolves the
 * /proc/<pid>/root link (to the host's empty mount point), so this reads a copy, made in
 * `copyDir`, of the database and its WAL: exactly what is on that disk now.
 */
export function storedKvLog(p: ChildLines, dbFile: string, copyDir: string): Set<string> {
  const copy = path.join(copyDir, `${path.basename(dbFile)}-copy`);
  for (const suffix of ['', '-wal']) fs.copyFileSync(inside(p, dbFile + suffix), copy + suffix);
  const db = new Database(copy, { fileMustExist: true });
  try {
    const rows = db.prepare('SELECT origin, seq FROM kv_log').all() as Array<{ origin: string; seq: number }>;
    return new Set(rows.map(entryId));
  } finally {
    db.close();
  }
}

/**
 * While the disks are full: every holder is still up (its checkpoint timer ran on the full disk
 * meanwhile), each one on a full disk said ONE failing line, the healthy ones none, and nobody
 * printed a stack trace or an uncaught SQLite error.
 */
export function expectUpAndSaidOnce(full: ChildLines[], healthy: ChildLines[]): void {
  for (const p of [...full, ...healthy]) {
    const stderr = p.stderr.join('');
    expect(alive(p), stderr).toBe(true);
    expect(countStderr(p, FAILING), stderr).toBe(full.includes(p) ? 1 : 0);
    expect(stderr).not.toMatch(/SqliteError|Uncaught|at .*\.js:\d+/);
  }
}

/**
 * Once space returned: each holder that was full said ONE recovery line (after its one failing
 * line) and runs on. The line comes only after writes went STORAGE_RECOVERED_AFTER_MS without a
 * failure, so each holder gets that long on top of `timeoutMs`.
 */
export async function expectRecoveredOnce(full: ChildLines[], timeoutMs: number): Promise<void> {
  for (const p of full) {
    await p.until(
      (l) => countStderr(l, RECOVERED) > 0,
      STORAGE_RECOVERED_AFTER_MS + timeoutMs,
      'the holder says writes work again',
    );
    expect(countStderr(p, FAILING)).toBe(1);
    expect(countStderr(p, RECOVERED)).toBe(1);
    expect(alive(p)).toBe(true);
  }
}
