/**
 * The shapes of distributed jobs (`peer run`, `peer worker --allow-exec`): what a run is, what a
 * worker is asked to start and reports back, and what the submitter records. The protocol
 * (jobs.ts and its roles) moves them between peers; the process executor (src/cli/run/exec.ts)
 * runs them; the run's sink (src/cli/run/sink.ts) prints and logs them.
 *
 * A run is one `peer run` invocation: a command template and its jobs (one per input line, or one,
 * or one per worker with `--on all`). Each try of a job is an attempt, numbered from 1, with a
 * fencing number that only rises over the job's attempts, so side effects can be fenced.
 */
import type { PeerId } from '../wire.js';
import type { CoordinatorView } from '../election.js';
import type { WriteFailureKind } from '../write-failure.js';

/** 16 lowercase hex characters, drawn by the submitter. */
export type RunId = string;
/** `exec`: a shell command (keyed groups and `--allow-exec` workers only); `op`: a built-in op. */
export type RunKind = 'exec' | 'op';

export interface RunSpec {
  run: RunId;
  kind: RunKind;
  /** exec: the command template's words (`{}` is the input line); op: [op, ...args]. */
  words: string[];
  /** Variables passed to every job (`--env`). */
  env: Array<[name: string, value: string]>;
  detached: boolean;
  /** Per attempt; null: no limit. */
  timeoutMs: number | null;
  /** SIGTERM to SIGKILL, when a job is killed. */
  graceMs: number;
  /** `group`: output sent whole with the result; `line`: sent as it comes (`--line-buffer`). */
  output: 'group' | 'line';
  /** Relative path templates (`{}` allowed) sent with each job / brought back after it. */
  transfers: string[];
  returns: string[];
}

export interface JobInput {
  /** Unique in the run, from 1. */
  job: number;
  /** What the joblog's Seq column says (repeats per worker with `--on all`). */
  seq: number;
  /** The input line, or null for a job without input. */
  input: string | null;
  /** The one worker this job must run on (`--on`), or null for any. */
  pin: PeerId | null;
}

export interface AttemptKey {
  run: RunId;
  job: number;
  attempt: number;
}

export interface Attempt extends AttemptKey {
  seq: number;
  /** Rises over the attempts of a job (see jobs.ts); the job gets it as PEER_FENCING_TOKEN. */
  fence: number;
}

/** How an attempt ended on its worker. */
export interface ExecOutcome {
  /** False when it never started (the job dir could not be made, the shell is missing...). */
  started: boolean;
  /** Exit code, null when a signal ended it. */
  exit: number | null;
  /** The signal that ended it, 0 for none. */
  signal: number;
  timedOut: boolean;
  cancelled: boolean;
  /** The worker's wall clock when the process was spawned (ms since the epoch). */
  startedAtWallMs: number;
  runtimeUs: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** Output was cut at the per-job bound. */
  truncated: boolean;
  returned: Array<{ index: number; data: Uint8Array } | { index: number; error: string }>;
  /** Why it could not start or was refused; null otherwise. */
  error: string | null;
}

export interface JobResult extends Attempt, Omit<ExecOutcome, 'returned'> {
  worker: PeerId;
  workerName: string;
  /** Bytes of `--transfer` files sent with it, of `--return` files brought back. */
  sendBytes: number;
  receiveBytes: number;
}

// ---- the worker side: src/cli/run/exec.ts implements JobExecutor (a simulated one in tests)

export interface StartRequest extends Attempt {
  spec: RunSpec;
  /** The command after `{}` substitution (command.ts), for `<shell> -c`. */
  command: string;
  /** spec.env plus PEER_JOB_ID, PEER_JOB_SEQ, PEER_JOB_ATTEMPT, PEER_FENCING_TOKEN, PEER_RUN_ID. */
  env: Record<string, string>;
  transfers: Array<{ path: string; data: Uint8Array }>;
  /** Paths (relative to the job's directory) to bring back after it ends. */
  returns: string[];
}

export type KillReason = 'cancel' | 'timeout' | 'submitter-gone' | 'done-elsewhere' | 'shutdown';

export interface JobExecutor {
  /** Jobs this worker runs at once. */
  readonly slots: number;
  /** Whether it runs shell commands (`peer worker --allow-exec`), not only built-in ops. */
  readonly allowExec: boolean;
  /** Where outcomes go; the protocol binds itself once, at construction. */
  bind(reports: ExecReports): void;
  /** Starts an attempt; never throws: every start ends with exactly one reports.ended(). */
  start(req: StartRequest): void;
  /** SIGTERM to the attempt's whole process group, SIGKILL after graceMs if it is not empty yet. */
  kill(key: AttemptKey, why: KillReason, graceMs: number): void;
  /** Attempts whose process group is not empty yet. */
  alive(): AttemptKey[];
}

export interface ExecReports {
  /** Output as it comes (used with output 'line'). */
  output(key: AttemptKey, stream: 1 | 2, chunk: Uint8Array): void;
  ended(key: AttemptKey, outcome: ExecOutcome): void;
}

// ---- the submitter side: src/cli/run/sink.ts implements RunSink (test sinks in tests)

export interface RunSink {
  /** Output of an attempt as it comes (`--line-buffer`). */
  output(job: number, attempt: number, stream: 1 | 2, chunk: Uint8Array): void;
  /** A `--return` file of a job. */
  returned(job: number, index: number, data: Uint8Array): Promise<void> | void;
  /** Once per job, its final result; a promise holds the worker's ack until it resolves. */
  record(r: JobResult): Promise<void> | void;
}

export interface RunOptions {
  /** Tries of a job in all (1 = no retry). */
  retries: number;
  /** Jobs running at once over all workers; null: every free slot. */
  maxRunning: number | null;
  /** Workers to use: these, every worker ('all', with pinned jobs), or any (null). */
  workers: PeerId[] | 'all' | null;
  /** Reads `--transfer` files (paths after `{}` substitution); needed when the spec has any. */
  files?: RunFiles;
}

/**
 * How the submitter's protocol reads `--transfer` files: the CLI passes one in, so the protocol
 * never touches the disk. Synchronous: a file is read when its job is placed, at most
 * JOB_FILE_BYTES_MAX; it throws an Error saying why a file cannot be sent.
 */
export interface RunFiles {
  read(path: string): Uint8Array;
}

export interface WorkerLoad {
  id: PeerId;
  name: string;
  slots: number;
  running: number;
  held: number;
}

/** A worker as its membership tags advertise it. */
export interface WorkerAdvert {
  id: PeerId;
  name: string;
  slots: number;
  /** Jobs it holds now (running and queued), for every submitter. */
  held: number;
  allowExec: boolean;
}

export type RunCounts = { fed: number; inputEnded: boolean; workers: WorkerLoad[] } & Record<
  'queued' | 'running' | 'done' | 'failed' | 'cancelled' | 'reassigned',
  number
>;

/** A run in progress, held by its submitter. The CLI feeds input lazily: room(), then feed(). */
export interface RunHandle {
  readonly run: RunId;
  /** Jobs it would take now without holding more than a window's worth of input. */
  room(): number;
  feed(jobs: JobInput[], ended: boolean): void;
  counts(): RunCounts;
  /** Cancels every job; 'run-cancelled' follows once every worker confirmed or timed out. */
  cancel(): void;
}

export type JobsStats = Record<
  | 'duplicateResults'
  | 'wrongSender'
  | 'unknownRun'
  | 'refusedJobs'
  | 'staleFences'
  | 'reassigned'
  | 'killed'
  | 'malformed',
  number
>;

/** What commands use of the jobs protocol (jobs.ts implements it). */
export interface JobsApi {
  startRun(spec: Omit<RunSpec, 'run'>, sink: RunSink, opts: RunOptions): RunHandle;
  workers(): WorkerAdvert[];
  readonly keeper: KeeperApi;
  readonly stats: JobsStats;
}

// ---- detached runs (`peer run --detach`, `peer task`): kept by the elected coordinator

/** RunOptions of a detached run (its `--transfer` files are not supported: nobody reads them). */
export interface DetachOptions {
  retries: number;
  maxRunning: number | null;
  workers: PeerId[] | 'all' | null;
}
export type RunState = 'open' | 'done' | 'cancelled';
/** One detached run as its keeper reports it. */
export interface RunView {
  run: RunId;
  kind: RunKind;
  words: string[];
  submitterName: string;
  createdAtWallMs: number;
  state: RunState;
  jobs: number;
  done: number;
  failed: number;
}
export interface RunPage {
  view: RunView;
  /** Recorded results of jobs numbered above `afterJob`, in job order, at most a page (bytes-bounded). */
  results: JobResult[];
  /** Each result's input line (null for a job without one), in the same order: what its command was. */
  inputs: Array<string | null>;
  /** The afterJob to ask next, or null when this page reached the last recorded job. */
  next: number | null;
}
/** `why` is one line a user can act on. */
export type KeeperAnswer<T> = { ok: true; value: T } | { ok: false; why: string };
/**
 * Detached runs, kept by the elected coordinator (keeper.ts) past their submitter. Every call
 * waits for a known coordinator (bound it with the caller's own timeout) and asks again when the
 * coordinator changes mid-call.
 */
export interface KeeperApi {
  /** Hands the run to the keeper; resolves once it is stored there (durable) or refused. */
  detach(
    spec: Omit<RunSpec, 'run' | 'detached'>,
    jobs: JobInput[],
    opts: DetachOptions,
  ): Promise<KeeperAnswer<RunId>>;
  results(run: RunId, afterJob: number): Promise<KeeperAnswer<RunPage>>;
  cancelRun(run: RunId): Promise<KeeperAnswer<RunView>>;
  /** Newest first. */
  listRuns(offset: number, limit: number): Promise<KeeperAnswer<RunView[]>>;
}

/** What jobs need of the election (election.ts): who keeps the detached runs. */
export type KeeperView = Pick<CoordinatorView, 'coordinator' | 'isCoordinator' | 'term'>;

/** A detached run as a store keeps it. Wall-clock times: they outlive the process (RUN_KEPT_MS). */
export interface KeptRun {
  spec: RunSpec;
  opts: DetachOptions;
  submitter: PeerId;
  submitterName: string;
  createdAtWallMs: number;
  state: RunState;
  /** When a client read it to its end once it was over (or cancelled it); null before. */
  collectedAtWallMs: number | null;
}

/** What a write did: `first` false when there was nothing to change; `failed` why it did not reach the disk. */
export interface StoreWrite {
  first: boolean;
  failed: WriteFailureKind | null;
}

/**
 * Where detached runs are kept: SQLite in the CLI (src/storage/runs.ts), memory in tests. The
 * keeper writes every run and result; every other full peer writes what the keeper announces, so
 * a new keeper resumes the open runs of its own store. Writes return their failure (a full disk,
 * EIO) instead of throwing; a failed write is never taken as stored. Reads validate what they
 * read: a damaged row is skipped, never resumed.
 */
export interface RunStore {
  /** Stores a run and its jobs, once: `first` false (nothing written) when it was there already. */
  openRun(run: KeptRun, jobs: JobInput[]): StoreWrite;
  /** A job's result, once: `first` false (nothing written) when the job had one or the run is unknown. */
  finish(r: JobResult): StoreWrite;
  /** A run's state and when it was collected. */
  setState(run: RunId, state: RunState, collectedAtWallMs: number | null): StoreWrite;
  get(run: RunId): KeptRun | undefined;
  view(run: RunId): RunView | undefined;
  /** Open runs, oldest first, with their jobs that have no result yet. */
  openRuns(limit: number): Array<{ run: KeptRun; open: JobInput[] }>;
  /**
   * Results of jobs numbered above `afterJob`, in job order, at most `limit` and until `bytesMax`
   * of output (at least one), with their jobs' input lines; `more` when there are others after them.
   */
  results(
    run: RunId,
    afterJob: number,
    bytesMax: number,
    limit: number,
  ): { results: JobResult[]; inputs: Array<string | null>; more: boolean };
  /** Newest first. */
  list(offset: number, limit: number): RunView[];
  count(): number;
  /**
   * Forgets the runs collected before `collectedBeforeWallMs`, then the oldest collected ones while
   * more than `keep` runs are kept; returns how many it forgot.
   */
  prune(collectedBeforeWallMs: number, keep: number): number;
}

/** What jobs need from reliable delivery (ReliableDelivery is one), as the files protocol. */
export interface JobDelivery {
  from: PeerId;
  fromName: string;
  data: Buffer;
}
export type JobSent = { ok: true } | { ok: false; reason: string };
export interface JobChannel {
  sendTo(to: PeerId, topic: string, payload: string | Uint8Array, done?: (r: JobSent) => void): unknown;
  /** A handler that returns a promise defers the message's ack until it resolves. */
  on(topic: string, handler: (d: JobDelivery) => unknown): unknown;
  /** To every member: the keeper's announcements, which every full peer's store follows. */
  publish(topic: string, payload: string | Uint8Array): unknown;
  queuedBytes(): number;
}

declare module '../protocol.js' {
  interface PeerEventMap {
    // on submitters
    'run-room': { run: RunId; room: number };
    'run-finished': { run: RunId; counts: RunCounts };
    'run-cancelled': { run: RunId; killed: number; unconfirmed: PeerId[] };
    'run-failed': { run: RunId; why: string };
    'job-reassigned': AttemptKey & { from: PeerId; why: string };
    // on workers
    'job-started': AttemptKey & { submitterName: string };
    'job-killed': AttemptKey & { why: KillReason };
    'job-ended': AttemptKey & { exit: number | null; signal: number };
    // on the keeper (the elected coordinator)
    'detached-stored': { run: RunId; jobs: number; submitterName: string };
    'detached-refused': { run: RunId; why: string };
    'detached-resumed': { runs: number; term: number };
    'detached-over': { run: RunId; state: RunState };
  }
}
