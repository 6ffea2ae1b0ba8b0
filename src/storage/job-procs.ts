/**
 * The process groups a worker's jobs run in, while they run (table `job_procs` in the peer's
 * SQLite file), so that a worker killed -9 kills what its jobs left running, and removes their
 * directories, when it starts again (src/cli/run/process-group.ts, reapOrphans).
 *
 * A row is written right after its job's shell is spawned (in the same event-loop turn: the only
 * window a crash can leave unrecorded is between two statements) and deleted once the group is
 * empty and the job's directory removed. A group id alone could name another process after the
 * number was reused, so each row also holds the leader's start time in clock ticks since boot
 * (field 22 of /proc/<pid>/stat) and the boot id: a process whose start time differs is never
 * killed. synchronous=NORMAL is enough: the rows only matter after a crash of this process, which
 * leaves the WAL in the OS's hands; after a power loss every group is gone anyway.
 *
 * Rows read back are checked: a damaged one is skipped (never killed, never removed) and counted.
 */
import path from 'node:path';
import type Database from 'better-sqlite3';
import type { PeerStore } from './store.js';
import { writeFailure, type StorageHealth } from './health.js';
import type { WriteFailure } from '../p2p/write-failure.js';

/** Linux's PID_MAX_LIMIT on 64-bit machines: no process or group id is larger. */
export const PID_MAX = 4_194_304;
/** Characters of a boot id (/proc/sys/kernel/random/boot_id, a UUID) kept; longer is damage. */
const BOOT_ID_CHARS_MAX = 64;
/** Bytes of a job directory's path (Linux's PATH_MAX). */
const JOB_DIR_PATH_BYTES_MAX = 4096;
/** What every job directory's name starts with (cli/run/job-dir.ts makes them with mkdtemp). */
export const JOB_DIR_PREFIX = 'j-';
/** A job directory's name: the prefix, then mkdtemp's six characters. */
const JOB_DIR_NAME_RE = new RegExp(`^${JOB_DIR_PREFIX}[A-Za-z0-9]{6}$`);

/** A running job's process group, as the ledger keeps it. */
export interface LiveGroup {
  /** The group id: the pid of the job's shell, its leader. */
  pgid: number;
  /** The leader's start time, in clock ticks since boot. */
  startTicks: number;
  /** The boot the leader started in: after a reboot every group is gone. */
  boot: string;
  /** The job's directory (absolute). */
  dir: string;
}

interface Row {
  dir: string;
  pgid: number;
  start_ticks: number;
  boot: string;
}

/** Whether `dir` can be a job directory this ledger wrote: removing anything else is refused. */
export function isJobDirPath(dir: string): boolean {
  return (
    path.isAbsolute(dir) &&
    path.normalize(dir) === dir &&
    Buffer.byteLength(dir) <= JOB_DIR_PATH_BYTES_MAX &&
    JOB_DIR_NAME_RE.test(path.basename(dir))
  );
}

export class JobProcs {
  private readonly insert: Database.Statement;
  private readonly delete: Database.Statement;
  private readonly every: Database.Statement;

  constructor(
    readonly db: Database.Database,
    /** Where failed writes are reported; none: the caller still gets them. */
    private readonly health: StorageHealth | null = null,
    /** The database file, named in write failures. */
    readonly file: string = db.name,
  ) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS job_procs (
        dir TEXT PRIMARY KEY,
        pgid INTEGER NOT NULL,
        start_ticks INTEGER NOT NULL,
        boot TEXT NOT NULL
      ) STRICT;
    `);
    this.insert = db.prepare(
      'INSERT OR REPLACE INTO job_procs (dir, pgid, start_ticks, boot) VALUES (@dir, @pgid, @start_ticks, @boot)',
    );
    this.delete = db.prepare('DELETE FROM job_procs WHERE dir = ?');
    this.every = db.prepare('SELECT dir, pgid, start_ticks, boot FROM job_procs ORDER BY rowid');
  }

  static of(store: PeerStore, health: StorageHealth | null = null): JobProcs {
    return new JobProcs(store.db, health, store.file);
  }

  /** Records a group that now runs; the failure when it could not be written. */
  add(g: LiveGroup): WriteFailure | null {
    return this.write(() =>
      this.insert.run({ dir: g.dir, pgid: g.pgid, start_ticks: g.startTicks, boot: g.boot }),
    );
  }

  /** Forgets a job whose group is empty and whose directory is gone. */
  remove(dir: string): WriteFailure | null {
    return this.write(() => this.delete.run(dir));
  }

  /** Every group recorded, and how many rows were damaged (skipped: never acted upon). */
  list(): { groups: LiveGroup[]; damaged: number } {
    const groups: LiveGroup[] = [];
    let damaged = 0;
    for (const r of this.every.all() as Row[]) {
      const g = fromRow(r);
      if (g) groups.push(g);
      else damaged++;
    }
    return { groups, damaged };
  }

  private write(run: () => unknown): WriteFailure | null {
    try {
      run();
    } catch (err) {
      const f = writeFailure(this.file, err);
      this.health?.failed(f, 'background');
      return f;
    }
    this.health?.succeeded(this.file, 'background');
    return null;
  }
}

function fromRow(r: Row): LiveGroup | null {
  const ok =
    Number.isSafeInteger(r.pgid) &&
    r.pgid > 1 &&
    r.pgid <= PID_MAX &&
    Number.isSafeInteger(r.start_ticks) &&
    r.start_ticks >= 0 &&
    typeof r.boot === 'string' &&
    r.boot.length <= BOOT_ID_CHARS_MAX &&
    typeof r.dir === 'string' &&
    isJobDirPath(r.dir);
  return ok ? { pgid: r.pgid, startTicks: r.start_ticks, boot: r.boot, dir: r.dir } : null;
}
