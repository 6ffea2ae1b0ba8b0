/**
 * Detached runs in the peer's SQLite file (tables `runs` and `run_jobs`): the RunStore of
 * src/p2p/jobs/types.ts. The keeper writes every run it accepts and every result it records; every
 * other full peer writes what the keeper announces, so a peer that becomes coordinator resumes
 * the open runs it knows of (src/p2p/jobs/keeper.ts).
 *
 * Exactly-once recording is enforced here too: a result is written only over a job without one
 * (the WHERE of the UPDATE), and finish() says whether it wrote. A run's done and failed counts
 * move in the same transaction as its results. synchronous=NORMAL (store.ts) makes a returned
 * transaction durable against a crash of this process, which is what the worker's ack relies on.
 *
 * A write that fails (SQLITE_FULL, an I/O error) is returned, never thrown, and goes to the
 * StorageHealth given (one line when writes start failing, one when they work again). Rows read
 * back are validated (a run id, a spec within the bounds a worker checks, a result within the
 * wire's bounds): a damaged run is skipped, never resumed, and a damaged result reads as failed.
 */
import type Database from 'better-sqlite3';
import type { PeerStore } from './store.js';
import { writeFailure, type StorageHealth } from './health.js';
import { HAND, handBody, isKeptResult, keptResults, resultsOf, runProblem } from '../p2p/jobs/messages.js';
import type {
  DetachOptions,
  JobInput,
  JobResult,
  KeptRun,
  RunId,
  RunSpec,
  RunState,
  RunStore,
  RunView,
  StoreWrite,
} from '../p2p/jobs/types.js';
import { isPeerId } from '../p2p/wire.js';

interface RunRow {
  run: string;
  spec: string;
  opts: string;
  submitter: string;
  submitter_name: string;
  created_at: number;
  state: string;
  collected_at: number | null;
  jobs: number;
  done: number;
  failed: number;
}

interface JobRow {
  job: number;
  seq: number;
  input: string | null;
  pin: string | null;
}

interface ResultRow {
  job: number;
  input: string | null;
  result: string;
  stdout: Buffer;
  stderr: Buffer;
}

const RUN_COLUMNS =
  'run, spec, opts, submitter, submitter_name, created_at, state, collected_at, jobs, done, failed';
const STATES: readonly string[] = ['open', 'done', 'cancelled'];

export class RunsStore implements RunStore {
  private readonly insertRun: Database.Statement;
  private readonly insertJob: Database.Statement;
  private readonly finishJob: Database.Statement;
  private readonly countResult: Database.Statement;
  private readonly updateState: Database.Statement;
  private readonly byRun: Database.Statement;
  private readonly openList: Database.Statement;
  private readonly openJobs: Database.Statement;
  private readonly resultPage: Database.Statement;
  private readonly page: Database.Statement;
  private readonly total: Database.Statement;
  private readonly collectedBefore: Database.Statement;
  private readonly oldestCollected: Database.Statement;
  private readonly oldest: Database.Statement;
  private readonly deleteRun: Database.Statement;
  private readonly deleteJobs: Database.Statement;

  constructor(
    readonly db: Database.Database,
    /** Where failed writes are reported; none: the protocol still learns of them. */
    private readonly health: StorageHealth | null = null,
    /** The database file, named in write failures. */
    readonly file: string = db.name,
  ) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS runs (
        run TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        opts TEXT NOT NULL,
        submitter TEXT NOT NULL,
        submitter_name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        state TEXT NOT NULL,
        collected_at INTEGER,
        jobs INTEGER NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0
      ) STRICT;
      CREATE TABLE IF NOT EXISTS run_jobs (
        run TEXT NOT NULL,
        job INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        input TEXT,
        pin TEXT,
        result TEXT,
        stdout BLOB,
        stderr BLOB,
        PRIMARY KEY (run, job)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS runs_open ON runs (state) WHERE state = 'open';
    `);
    this.insertRun = db.prepare(
      `INSERT OR IGNORE INTO runs (${RUN_COLUMNS}) VALUES (@run, @spec, @opts, @submitter, @submitter_name, @created_at, @state, @collected_at, @jobs, 0, 0)`,
    );
    this.insertJob = db.prepare(
      'INSERT OR IGNORE INTO run_jobs (run, job, seq, input, pin) VALUES (?, ?, ?, ?, ?)',
    );
    this.finishJob = db.prepare(
      'UPDATE run_jobs SET result = ?, stdout = ?, stderr = ? WHERE run = ? AND job = ? AND result IS NULL',
    );
    this.countResult = db.prepare('UPDATE runs SET done = done + ?, failed = failed + ? WHERE run = ?');
    this.updateState = db.prepare('UPDATE runs SET state = ?, collected_at = ? WHERE run = ?');
    this.byRun = db.prepare(`SELECT ${RUN_COLUMNS} FROM runs WHERE run = ?`);
    // rowid grows with each insert: the order runs were handed over in.
    this.openList = db.prepare(`SELECT ${RUN_COLUMNS} FROM runs WHERE state = 'open' ORDER BY rowid LIMIT ?`);
    this.openJobs = db.prepare(
      'SELECT job, seq, input, pin FROM run_jobs WHERE run = ? AND result IS NULL ORDER BY job',
    );
    this.resultPage = db.prepare(
      'SELECT job, input, result, stdout, stderr FROM run_jobs WHERE run = ? AND job > ? AND result IS NOT NULL ORDER BY job LIMIT ?',
    );
    this.page = db.prepare(`SELECT ${RUN_COLUMNS} FROM runs ORDER BY rowid DESC LIMIT ? OFFSET ?`);
    this.total = db.prepare('SELECT count(*) AS n FROM runs');
    this.collectedBefore = db.prepare(
      'SELECT run FROM runs WHERE collected_at IS NOT NULL AND collected_at < ?',
    );
    this.oldestCollected = db.prepare(
      'SELECT run FROM runs WHERE collected_at IS NOT NULL ORDER BY collected_at LIMIT ?',
    );
    this.oldest = db.prepare('SELECT run FROM runs ORDER BY rowid LIMIT ?');
    this.deleteRun = db.prepare('DELETE FROM runs WHERE run = ?');
    this.deleteJobs = db.prepare('DELETE FROM run_jobs WHERE run = ?');
  }

  static of(store: PeerStore, health: StorageHealth | null = null): RunsStore {
    return new RunsStore(store.db, health, store.file);
  }

  openRun(run: KeptRun, jobs: JobInput[]): StoreWrite {
    return this.write(() => {
      const added = this.insertRun.run({
        run: run.spec.run,
        spec: JSON.stringify(run.spec),
        opts: JSON.stringify(run.opts),
        submitter: run.submitter,
        submitter_name: run.submitterName,
        created_at: Math.round(run.createdAtWallMs),
        state: run.state,
        collected_at: run.collectedAtWallMs,
        jobs: jobs.length,
      }).changes;
      if (added === 0) return false;
      for (const j of jobs) this.insertJob.run(run.spec.run, j.job, j.seq, j.input, j.pin);
      return true;
    });
  }

  finish(r: JobResult): StoreWrite {
    const { entries, bytes } = keptResults([r]);
    const e = entries[0]!;
    return this.write(() => {
      const wrote = this.finishJob.run(
        JSON.stringify(e),
        Buffer.from(bytes.subarray(0, e.out)),
        Buffer.from(bytes.subarray(e.out)),
        r.run,
        r.job,
      ).changes;
      if (wrote === 0) return false;
      const ok = r.started && r.exit === 0 && r.signal === 0;
      if (!r.cancelled) this.countResult.run(ok ? 1 : 0, ok ? 0 : 1, r.run);
      return true;
    });
  }

  setState(run: RunId, state: RunState, collectedAtWallMs: number | null): StoreWrite {
    return this.write(() => this.updateState.run(state, collectedAtWallMs, run).changes > 0);
  }

  get(run: RunId): KeptRun | undefined {
    const row = this.byRun.get(run) as RunRow | undefined;
    return row && (keptOf(row) ?? undefined);
  }

  view(run: RunId): RunView | undefined {
    const row = this.byRun.get(run) as RunRow | undefined;
    const kept = row && keptOf(row);
    return kept ? viewOf(row, kept) : undefined;
  }

  openRuns(limit: number): Array<{ run: KeptRun; open: JobInput[] }> {
    const out: Array<{ run: KeptRun; open: JobInput[] }> = [];
    for (const row of this.openList.all(limit) as RunRow[]) {
      const run = keptOf(row);
      if (!run) continue;
      const open = (this.openJobs.all(row.run) as JobRow[])
        .filter((j) => Number.isSafeInteger(j.job) && j.job >= 1 && Number.isSafeInteger(j.seq) && j.seq >= 1)
        .map((j) => ({
          job: j.job,
          seq: j.seq,
          input: j.input,
          pin: j.pin !== null && isPeerId(j.pin) ? j.pin : null,
        }));
      out.push({ run, open });
    }
    return out;
  }

  results(
    run: RunId,
    afterJob: number,
    bytesMax: number,
    limit: number,
  ): { results: JobResult[]; inputs: Array<string | null>; more: boolean } {
    const rows = this.resultPage.all(run, afterJob, limit + 1) as ResultRow[];
    const results: JobResult[] = [];
    const inputs: Array<string | null> = [];
    let bytes = 0;
    for (const row of rows) {
      const size = row.stdout.length + row.stderr.length;
      if (results.length >= limit || (results.length > 0 && bytes + size > bytesMax))
        return { results, inputs, more: true };
      results.push(resultOf(run, row));
      inputs.push(row.input);
      bytes += size;
    }
    return { results, inputs, more: false };
  }

  list(offset: number, limit: number): RunView[] {
    const out: RunView[] = [];
    for (const row of this.page.all(limit, offset) as RunRow[]) {
      const kept = keptOf(row);
      if (kept) out.push(viewOf(row, kept));
    }
    return out;
  }

  count(): number {
    return (this.total.get() as { n: number }).n;
  }

  prune(collectedBeforeWallMs: number, keep: number): number {
    let n = 0;
    const forget = (rows: unknown[]) => {
      for (const { run } of rows as Array<{ run: string }>) {
        this.deleteJobs.run(run);
        this.deleteRun.run(run);
        n++;
      }
    };
    const w = this.write(() => {
      forget(this.collectedBefore.all(Math.round(collectedBeforeWallMs)));
      const over = this.count() - keep;
      if (over > 0) forget(this.oldestCollected.all(over));
      return n > 0;
    });
    return w.failed ? 0 : n;
  }

  /**
   * Forgets the oldest runs beyond the newest `keep`, whatever their state: for a store that only
   * shows what the keeper announces (the monitor's, in memory), never for one a takeover may
   * resume from. Returns how many it forgot.
   */
  keepNewest(keep: number): number {
    const over = this.count() - keep;
    if (over <= 0) return 0;
    const w = this.write(() => {
      for (const { run } of this.oldest.all(over) as Array<{ run: string }>) {
        this.deleteJobs.run(run);
        this.deleteRun.run(run);
      }
      return true;
    });
    return w.failed ? 0 : over;
  }

  /** One transaction; its failure returned (and told to health), never thrown. */
  private write(fn: () => boolean): StoreWrite {
    let first: boolean;
    try {
      first = this.db.transaction(fn)();
    } catch (err) {
      const f = writeFailure(this.file, err);
      this.health?.failed(f, 'runs');
      return { first: false, failed: f.kind };
    }
    this.health?.succeeded(this.file, 'runs');
    return { first, failed: null };
  }
}

/** A run row checked: null when damaged (it is never resumed, nor shown). */
function keptOf(row: RunRow): KeptRun | null {
  let spec: RunSpec;
  let opts: DetachOptions;
  try {
    spec = JSON.parse(row.spec) as RunSpec;
    opts = JSON.parse(row.opts) as DetachOptions;
  } catch {
    return null;
  }
  if (typeof spec !== 'object' || spec === null || typeof opts !== 'object' || opts === null) return null;
  // Checked as the wire checks a run handed over: every field's type and bound, then the spec's.
  const body = handBody('0'.repeat(16), spec.run, spec, opts, []);
  const ok =
    HAND.check(HAND.toWire(body)) &&
    runProblem(body) === null &&
    spec.run === row.run &&
    isPeerId(row.submitter) &&
    STATES.includes(row.state) &&
    Number.isSafeInteger(row.created_at);
  if (!ok) return null;
  return {
    spec: { ...spec, detached: true, output: 'group', transfers: [], returns: [] },
    opts: { retries: opts.retries, maxRunning: opts.maxRunning, workers: opts.workers },
    submitter: row.submitter,
    submitterName: row.submitter_name,
    createdAtWallMs: row.created_at,
    state: row.state as RunState,
    collectedAtWallMs: row.collected_at,
  };
}

function viewOf(row: RunRow, kept: KeptRun): RunView {
  return {
    run: kept.spec.run,
    kind: kept.spec.kind,
    words: kept.spec.words,
    submitterName: kept.submitterName,
    createdAtWallMs: kept.createdAtWallMs,
    state: kept.state,
    jobs: row.jobs,
    done: row.done,
    failed: row.failed,
  };
}

/** A result row read back; a damaged one reads as a failed job that says so. */
function resultOf(run: RunId, row: ResultRow): JobResult {
  let e: unknown;
  try {
    e = JSON.parse(row.result);
  } catch {
    e = null;
  }
  if (isKeptResult(e) && e.job === row.job && e.out === row.stdout.length && e.err === row.stderr.length)
    return resultsOf(run, [e], Buffer.concat([row.stdout, row.stderr]))[0]!;
  return {
    run,
    job: row.job,
    seq: row.job,
    attempt: 1,
    fence: 1,
    worker: '',
    workerName: '',
    started: false,
    exit: null,
    signal: 0,
    timedOut: false,
    cancelled: false,
    startedAtWallMs: 0,
    runtimeUs: 0,
    stdout: new Uint8Array(0),
    stderr: new Uint8Array(0),
    truncated: false,
    error: `damaged row in the run_jobs table (run ${run}, job ${row.job})`,
    sendBytes: 0,
    receiveBytes: 0,
  };
}
