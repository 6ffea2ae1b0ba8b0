/**
 * Task states in the peer's SQLite file (the task history): the coordinator writes every
 * state change of its tasks, and every other peer writes what it hears (`tk.new`, `tk.fin`), so a
 * peer that becomes coordinator resumes the outstanding tasks it knows of, and `peer task list
 * --local` works without a network.
 *
 * Exactly-once recording is enforced here too: an upsert never touches a row that is done or
 * failed (the WHERE of ON CONFLICT), and finish() reports whether it wrote.
 * Rows read back are validated (a task id, args that parse to numbers, a known state), so a hand-
 * edited or damaged row shows up as failed instead of crashing a coordinator.
 *
 * A write that fails (SQLITE_FULL, an I/O error) is returned, never thrown, and goes to the
 * StorageHealth given (one line when writes start failing, one when they work again): the
 * protocol then does not acknowledge what it could not store (p2p/tasks/coordinator.ts).
 */
import type Database from 'better-sqlite3';
import type { PeerStore } from './store.js';
import { writeFailure, type StorageHealth } from './health.js';
import {
  TASK_STATES,
  isTaskId,
  type LogWrite,
  type TaskLog,
  type TaskRecord,
  type TaskState,
} from '../p2p/tasks/index.js';

interface Row {
  id: string;
  op: string;
  args: string;
  state: string;
  worker: string | null;
  worker_name: string | null;
  submitter: string | null;
  submitted_at: number | null;
  started_at: number | null;
  finished_at: number | null;
  result: string | null;
  error: string | null;
}

const COLUMNS =
  'id, op, args, state, worker, worker_name, submitter, submitted_at, started_at, finished_at, result, error';
const VALUES =
  '@id, @op, @args, @state, @worker, @worker_name, @submitter, @submitted_at, @started_at, @finished_at, @result, @error';
const UPSERT = `INSERT INTO tasks (${COLUMNS}) VALUES (${VALUES})
  ON CONFLICT(id) DO UPDATE SET
    op = excluded.op,
    args = CASE WHEN excluded.args = '[]' THEN tasks.args ELSE excluded.args END,
    state = excluded.state,
    worker = excluded.worker,
    worker_name = excluded.worker_name,
    submitter = COALESCE(excluded.submitter, tasks.submitter),
    submitted_at = COALESCE(tasks.submitted_at, excluded.submitted_at),
    started_at = COALESCE(excluded.started_at, tasks.started_at),
    finished_at = excluded.finished_at,
    result = excluded.result,
    error = excluded.error
  WHERE tasks.state NOT IN ('done', 'failed')`;

export class TaskStore implements TaskLog {
  private readonly upsert: Database.Statement;
  private readonly byId: Database.Statement;
  private readonly page: Database.Statement;
  private readonly total: Database.Statement;
  private readonly open: Database.Statement;

  constructor(
    readonly db: Database.Database,
    /** Where failed writes are reported; none: the protocol still learns of them. */
    private readonly health: StorageHealth | null = null,
    /** The database file, named in write failures. */
    readonly file: string = db.name,
  ) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS tasks (
        id TEXT PRIMARY KEY,
        op TEXT NOT NULL,
        args TEXT NOT NULL,
        state TEXT NOT NULL,
        worker TEXT,
        worker_name TEXT,
        submitter TEXT,
        submitted_at INTEGER,
        started_at INTEGER,
        finished_at INTEGER,
        result TEXT,
        error TEXT
      ) STRICT;
      CREATE INDEX IF NOT EXISTS tasks_open ON tasks (state) WHERE state NOT IN ('done', 'failed');
    `);
    this.upsert = db.prepare(UPSERT);
    this.byId = db.prepare(`SELECT ${COLUMNS} FROM tasks WHERE id = ?`);
    // rowid grows with each insert and survives updates: the order in which tasks were first seen.
    this.page = db.prepare(`SELECT ${COLUMNS} FROM tasks ORDER BY rowid DESC LIMIT ? OFFSET ?`);
    this.total = db.prepare('SELECT count(*) AS n FROM tasks');
    this.open = db.prepare(
      `SELECT ${COLUMNS} FROM tasks WHERE state NOT IN ('done', 'failed') ORDER BY rowid LIMIT ?`,
    );
  }

  static of(store: PeerStore, health: StorageHealth | null = null): TaskStore {
    return new TaskStore(store.db, health, store.file);
  }

  get(id: string): TaskRecord | undefined {
    const r = this.byId.get(id) as Row | undefined;
    return r && fromRow(r);
  }

  save(rec: TaskRecord): LogWrite {
    if (rec.state === 'done' || rec.state === 'failed')
      throw new Error('save() is for open tasks; use finish()');
    return this.write(rec);
  }

  finish(rec: TaskRecord): LogWrite {
    if (rec.state !== 'done' && rec.state !== 'failed')
      throw new Error('finish() needs a done or failed task');
    return this.write(rec);
  }

  private write(rec: TaskRecord): LogWrite {
    let changes: number;
    try {
      changes = this.upsert.run(toRow(rec)).changes;
    } catch (err) {
      const f = writeFailure(this.file, err);
      this.health?.failed(f, 'tasks');
      return { first: false, failed: f.kind };
    }
    this.health?.succeeded(this.file, 'tasks');
    return { first: changes > 0, failed: null };
  }

  list(offset: number, limit: number): TaskRecord[] {
    return (this.page.all(limit, offset) as Row[]).map(fromRow);
  }

  count(): number {
    return (this.total.get() as { n: number }).n;
  }

  outstanding(limit: number): TaskRecord[] {
    // A damaged row reads as failed: it is not resumed.
    return (this.open.all(limit) as Row[]).map(fromRow).filter((r) => r.state !== 'failed');
  }
}

function toRow(r: TaskRecord): Row {
  return {
    id: r.id,
    op: r.op,
    args: JSON.stringify(r.args),
    state: r.state,
    worker: r.worker,
    worker_name: r.workerName,
    submitter: r.submitter,
    submitted_at: r.submittedAt === null ? null : Math.round(r.submittedAt),
    started_at: r.startedAt === null ? null : Math.round(r.startedAt),
    finished_at: r.finishedAt === null ? null : Math.round(r.finishedAt),
    result: r.result,
    error: r.error,
  };
}

function fromRow(r: Row): TaskRecord {
  let args: number[] | null = null;
  try {
    const parsed: unknown = JSON.parse(r.args);
    if (Array.isArray(parsed) && parsed.every((x) => typeof x === 'number' && Number.isFinite(x)))
      args = parsed;
  } catch {
    args = null;
  }
  const known = (TASK_STATES as readonly string[]).includes(r.state);
  // An id that is not a task id could never be sent: resumed, it would be assigned forever.
  const damaged = args === null || !known || !isTaskId(r.id);
  return {
    id: r.id,
    op: r.op,
    args: args ?? [],
    state: damaged ? 'failed' : (r.state as TaskState),
    worker: r.worker,
    workerName: r.worker_name,
    submitter: r.submitter,
    submittedAt: r.submitted_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    result: damaged ? null : r.result,
    error: damaged ? `damaged row in the tasks table (id '${r.id}', state '${r.state}')` : r.error,
  };
}
