/**
 * The messages of jobs, declared once with the message kit (kit/message.ts). They travel as
 * reliable-delivery payloads on one topic, `job`, always by sendTo (acked, retried, FIFO per
 * destination: a cancel never overtakes its jobs, output never overtakes its result):
 *   S -> W  jb.open (a run's spec, once per worker), jb.file (a `--transfer` file, before the
 *           jb.jobs that needs it), jb.jobs (attempts to run), jb.cancel, jb.close
 *   W -> S  jb.ret (a `--return` file, before its jb.done), jb.done (results, and the worker's free
 *           room), jb.full (attempts it will not run), jb.refuse (a run it will not run at all),
 *           jb.out (`--line-buffer` output as it comes)
 *   detached runs (keeper.ts), client -> keeper by sendTo: jd.hand (a run to keep), jd.get (a page
 *           of its results), jd.cancel, jd.list; keeper -> client: jd.ok, jd.no, jd.page, jd.view,
 *           jd.runs; keeper -> every member by publish: jd.run (a run stored), jd.fin (results
 *           recorded), jd.state (a run over, cancelled or collected)
 * A payload is JSON `{"t": type, "b": body}` (body by wire names), or binary when bytes ride with
 * it: JOB_BINARY_MARK, the header's length (u32 big-endian), the header (that same JSON), then
 * the bytes. Decoding runs the declaration's check, and every bound on what a worker would run
 * (command.ts) again, so every field from the network is checked before a role sees it.
 */
import { createHash } from 'node:crypto';
import { f, message, type Body, type Message } from '../kit/message.js';
import type { Envelope } from '../wire.js';
import { COUNTER_MAX } from '../bounds.js';
import { inputProblem, problemOf } from './command.js';
import type { DetachOptions, JobResult, JobSent, RunId, RunSpec, RunView } from './types.js';
import { NAME_CHARS_MAX, isPeerId, type PeerId } from '../wire.js';
import {
  JOB_ATTEMPTS_MAX,
  JOB_BATCH_MAX,
  JOB_CANCEL_ENTRIES_MAX,
  JOB_ENV_MAX,
  JOB_EXIT_MAX,
  JOB_EXIT_MIN,
  JOB_FILE_BYTES_MAX,
  JOB_GRACE_MS_MAX,
  JOB_INPUT_BYTES_MAX,
  JOB_NUMBER_MAX,
  JOB_OUTPUT_BYTES_MAX,
  JOB_PATHS_MAX,
  JOB_PATH_BYTES_MAX,
  JOB_SIGNAL_MAX,
  JOB_SLOTS_MAX,
  JOB_TIMEOUT_MS_MAX,
  JOB_PIPELINE_PER_SLOT,
  JOB_WHY_CHARS_MAX,
  JOB_WORDS_MAX,
  JOB_WORD_BYTES_MAX,
  JOB_ENV_BYTES_MAX,
  RUN_JOBS_MAX,
  RUN_LIST_MAX,
  RUN_OUTPUT_BYTES_MAX,
  RUN_PAGE_RESULTS_MAX,
  RUN_WORKERS_NAMED_MAX,
  RUNS_KEPT_MAX,
} from './limits.js';

export const JOB_TOPIC = 'job';
/** First byte of a binary payload; a JSON payload starts with `{`. */
const JOB_BINARY_MARK = 0x00;
const BINARY_HEADER_BYTES = 1 + 4;

const RUN_ID_RE = /^[0-9a-f]{16}$/;
export const isRunId = (v: unknown): v is RunId => typeof v === 'string' && RUN_ID_RE.test(v);
const RUN = f.guard(isRunId);
const JOB = f.int(1, JOB_NUMBER_MAX);
const ATTEMPT = f.int(1, JOB_ATTEMPTS_MAX);
/** The most a worker can hold, so `free` is never more. */
const FREE = f.uint(JOB_SLOTS_MAX * (1 + JOB_PIPELINE_PER_SLOT));

const isEnvPair = (v: unknown): v is [string, string] =>
  Array.isArray(v) &&
  v.length === 2 &&
  typeof v[0] === 'string' &&
  typeof v[1] === 'string' &&
  v[0].length <= 128 &&
  v[1].length <= JOB_ENV_BYTES_MAX;
const isPath = (v: unknown): v is string => typeof v === 'string' && v.length <= JOB_PATH_BYTES_MAX;

/** A run's spec, sent once to each worker before its first jobs. */
export const OPEN = message('jb.open', {
  run: RUN,
  kind: f.literal('exec', 'op'),
  words: f.array(f.str(JOB_WORD_BYTES_MAX), JOB_WORDS_MAX),
  env: f.array(f.guard(isEnvPair), JOB_ENV_MAX),
  timeoutMs: f.nullable(f.int(1, JOB_TIMEOUT_MS_MAX)).wire('timeout'),
  graceMs: f.int(1, JOB_GRACE_MS_MAX).wire('grace'),
  output: f.literal('group', 'line'),
  transfers: f.array(f.guard(isPath), JOB_PATHS_MAX),
  returns: f.array(f.guard(isPath), JOB_PATHS_MAX),
  detached: f.bool(),
});

/** One attempt to run: [job, seq, attempt, fence, input or null]. */
export type JobEntry = [job: number, seq: number, attempt: number, fence: number, input: string | null];
/** An integer from 1 to max. */
const isCount = (v: unknown, max: number): boolean =>
  Number.isSafeInteger(v) && (v as number) >= 1 && (v as number) <= max;
/** A job's input line (inputProblem's rules), or null for a job without input. */
const isInputOrNull = (v: unknown): boolean =>
  v === null || (typeof v === 'string' && v.length <= JOB_INPUT_BYTES_MAX && inputProblem(v) === null);
const isJobEntry = (v: unknown): v is JobEntry =>
  Array.isArray(v) &&
  v.length === 5 &&
  isCount(v[0], JOB_NUMBER_MAX) &&
  isCount(v[1], JOB_NUMBER_MAX) &&
  isCount(v[2], JOB_ATTEMPTS_MAX) &&
  isCount(v[3], COUNTER_MAX) &&
  isInputOrNull(v[4]);

export const JOBS = message('jb.jobs', { run: RUN, jobs: f.array(f.guard(isJobEntry), JOB_BATCH_MAX) });

/** [job, attempt]. */
export type JobAttempt = [job: number, attempt: number];
const isJobAttempt = (v: unknown): v is JobAttempt =>
  Array.isArray(v) &&
  v.length === 2 &&
  Number.isSafeInteger(v[0]) &&
  v[0] >= 1 &&
  v[0] <= JOB_NUMBER_MAX &&
  Number.isSafeInteger(v[1]) &&
  v[1] >= 1 &&
  v[1] <= JOB_ATTEMPTS_MAX;
const ATTEMPTS = f.array(f.guard(isJobAttempt), JOB_CANCEL_ENTRIES_MAX);

/** Kill these attempts (null: every attempt of the run) and drop them from the queue. */
export const CANCEL = message('jb.cancel', {
  run: RUN,
  jobs: f.nullable(ATTEMPTS),
  why: f.literal('cancel', 'done-elsewhere'),
});
/** The run is over: the worker forgets it. */
export const CLOSE = message('jb.close', { run: RUN });

/** How an attempt ended, with at most `outputBytesMax` of stdout and of stderr (their lengths). */
const outcomeFields = (outputBytesMax: number) => ({
  fence: f.int(1, COUNTER_MAX),
  exit: f.nullable(f.int(JOB_EXIT_MIN, JOB_EXIT_MAX)),
  signal: f.int(0, JOB_SIGNAL_MAX),
  timedOut: f.bool(),
  cancelled: f.bool(),
  started: f.bool(),
  at: f.uint(),
  us: f.uint(),
  out: f.uint(outputBytesMax),
  err: f.uint(outputBytesMax),
  truncated: f.bool(),
  why: f.nullable(f.str(JOB_WHY_CHARS_MAX)),
});

/** How one attempt ended; `out` and `err` are the lengths of its stdout and stderr in the bytes. */
const RESULT = message('jb.result', { job: JOB, attempt: ATTEMPT, ...outcomeFields(JOB_OUTPUT_BYTES_MAX) });
export type ResultEntry = Body<typeof RESULT>;

/**
 * Results, with the worker's free room (its window less what it holds, for every submitter) and
 * `seen`: the entries of this run's jb.jobs it has received so far, so the submitter counts what
 * it sent since as already taken from `free`.
 */
export const DONE = message('jb.done', {
  run: RUN,
  free: FREE,
  seen: f.uint(),
  results: f.array(
    f.guard((v): v is ResultEntry => RESULT.check(v)),
    JOB_BATCH_MAX,
  ),
});
/**
 * Attempts a worker will not run: its window is full, it saw a higher fence for the job, it does
 * not know the run (it restarted), or a `--transfer` file they need is not there (lost on the way,
 * or refused for room): none of them ran there.
 */
export const FULL = message('jb.full', {
  run: RUN,
  free: FREE,
  seen: f.uint(),
  jobs: ATTEMPTS,
  why: f.literal('full', 'stale-fence', 'unknown-run', 'missing-file'),
});
export type RefuseWhy = 'exec-not-allowed' | 'open-group' | 'bad-spec' | 'too-many-runs';
/** A run the worker will not run at all. */
export const REFUSE = message('jb.refuse', {
  run: RUN,
  why: f.literal('exec-not-allowed', 'open-group', 'bad-spec', 'too-many-runs'),
  detail: f.str(JOB_WHY_CHARS_MAX),
});
/** A chunk of an attempt's output as it comes (`--line-buffer`); the bytes follow the header. */
export const OUT = message('jb.out', { run: RUN, job: JOB, attempt: ATTEMPT, stream: f.literal(1, 2) });

const INDEX = f.int(0, JOB_PATHS_MAX - 1);
const SHA256_RE = /^[0-9a-f]{64}$/;
/**
 * A `--transfer` file (the bytes follow the header): `index` into the spec's transfers, `job` the
 * job it is for, or null for a file the whole run shares (kept by the worker for the run).
 */
export const FILE = message('jb.file', {
  run: RUN,
  job: f.nullable(JOB),
  index: INDEX,
  sha256: f.guard((v): v is string => typeof v === 'string' && SHA256_RE.test(v)),
});
/** A `--return` file of an attempt (the bytes follow), or why it could not be read (no bytes). */
export const RET = message('jb.ret', {
  run: RUN,
  job: JOB,
  attempt: ATTEMPT,
  index: INDEX,
  error: f.nullable(f.str(JOB_WHY_CHARS_MAX)),
});

// ---- detached runs (keeper.ts)

const REQ_RE = /^[0-9a-f]{16}$/;
/** A client's request number, echoed in the answer. */
const REQ = f.guard((v): v is string => typeof v === 'string' && REQ_RE.test(v));
const NAME = f.str(NAME_CHARS_MAX);

/** One job of a detached run: [job, seq, input or null, pinned worker or null]. */
export type HandJob = [job: number, seq: number, input: string | null, pin: PeerId | null];
const isHandJob = (v: unknown): v is HandJob =>
  Array.isArray(v) &&
  v.length === 4 &&
  isCount(v[0], JOB_NUMBER_MAX) &&
  isCount(v[1], JOB_NUMBER_MAX) &&
  isInputOrNull(v[2]) &&
  (v[3] === null || isPeerId(v[3]));
const isWorkers = (v: unknown): v is PeerId[] | 'all' | null =>
  v === null ||
  v === 'all' ||
  (Array.isArray(v) && v.length <= RUN_WORKERS_NAMED_MAX && v.every((w) => isPeerId(w)));

/** A detached run's spec, its options and its jobs (no files: nobody would be there to read them). */
const RUN_FIELDS = {
  run: RUN,
  kind: f.literal('exec', 'op'),
  words: f.array(f.str(JOB_WORD_BYTES_MAX), JOB_WORDS_MAX),
  env: f.array(f.guard(isEnvPair), JOB_ENV_MAX),
  timeoutMs: f.nullable(f.int(1, JOB_TIMEOUT_MS_MAX)).wire('timeout'),
  graceMs: f.int(1, JOB_GRACE_MS_MAX).wire('grace'),
  retries: f.int(1, JOB_ATTEMPTS_MAX),
  maxRunning: f.nullable(f.int(1, JOB_NUMBER_MAX)).wire('max'),
  workers: f.guard(isWorkers),
  jobs: f.array(f.guard(isHandJob), RUN_JOBS_MAX),
};
/** Client -> keeper: keep this run (answered jd.ok once stored, or jd.no). */
export const HAND = message('jd.hand', { req: REQ, ...RUN_FIELDS });

/** The body of a jd.hand for a run: what a client sends, and what a store checks a saved run as. */
export function handBody(
  req: string,
  run: RunId,
  spec: Omit<RunSpec, 'run' | 'detached'>,
  opts: DetachOptions,
  jobs: HandJob[],
): Body<typeof HAND> {
  const { kind, words, env, timeoutMs, graceMs } = spec;
  const { retries, maxRunning, workers } = opts;
  return { req, run, kind, words, env, timeoutMs, graceMs, retries, maxRunning, workers, jobs };
}
/** Keeper -> every member: a run it stored, for their stores. */
export const KEPT = message('jd.run', {
  ...RUN_FIELDS,
  submitter: f.peerId(),
  submitterName: NAME.wire('sn'),
  at: f.uint(),
});
/** Client -> keeper: the results of jobs above `after` (answered jd.page). */
export const GET = message('jd.get', { req: REQ, run: RUN, after: f.uint(JOB_NUMBER_MAX) });
/** Client -> keeper: cancel the run (answered jd.view). */
export const CANCEL_RUN = message('jd.cancel', { req: REQ, run: RUN });
/** Client -> keeper: the runs it keeps, newest first (answered jd.runs). */
export const LIST = message('jd.list', {
  req: REQ,
  offset: f.uint(RUNS_KEPT_MAX),
  limit: f.int(1, RUN_LIST_MAX),
});
export const OK = message('jd.ok', { req: REQ, run: RUN });
/** A request the keeper could not do, and why (one line a user can act on). */
export const NO = message('jd.no', { req: REQ, why: f.str(JOB_WHY_CHARS_MAX) });

const VIEW_FIELDS = message('jd.v', {
  run: RUN,
  kind: f.literal('exec', 'op'),
  words: f.array(f.str(JOB_WORD_BYTES_MAX), JOB_WORDS_MAX),
  submitterName: NAME,
  createdAtWallMs: f.uint(),
  state: f.literal('open', 'done', 'cancelled'),
  jobs: f.uint(RUN_JOBS_MAX),
  done: f.uint(RUN_JOBS_MAX),
  failed: f.uint(RUN_JOBS_MAX),
});
const VIEW = f.guard((v): v is RunView => VIEW_FIELDS.check(v));
export const VIEW_OF = message('jd.view', { req: REQ, view: VIEW });
export const RUNS = message('jd.runs', { req: REQ, views: f.array(VIEW, RUN_LIST_MAX) });

/** A recorded result: a jb.done result with its worker and bytes moved; out and err as in jb.done. */
const KEPT_RESULT = message('jd.result', {
  job: JOB,
  seq: JOB,
  attempt: ATTEMPT,
  ...outcomeFields(RUN_OUTPUT_BYTES_MAX),
  worker: f.peerId(),
  name: f.str(NAME_CHARS_MAX),
  send: f.uint(),
  recv: f.uint(),
});
export type KeptResult = Body<typeof KEPT_RESULT>;
export const isKeptResult = (v: unknown): v is KeptResult => KEPT_RESULT.check(v);
const KEPT_RESULTS = f.array(f.guard(isKeptResult), RUN_PAGE_RESULTS_MAX);
/** Keeper -> client: a page of results (their output follows the header), `next` as in RunPage. */
export const PAGE = message('jd.page', {
  req: REQ,
  view: VIEW,
  results: KEPT_RESULTS,
  inputs: f.array(f.nullable(f.str(JOB_INPUT_BYTES_MAX)), RUN_PAGE_RESULTS_MAX),
  next: f.nullable(JOB),
});
/** Keeper -> every member: results it recorded (their output follows the header). */
export const FIN = message('jd.fin', { run: RUN, results: KEPT_RESULTS });
/** Keeper -> every member: a run's state changed (over, cancelled) or it was collected. */
export const STATE = message('jd.state', {
  run: RUN,
  state: f.literal('open', 'done', 'cancelled'),
  collected: f.nullable(f.uint()),
});

export type Hand = Body<typeof HAND>;
export type Kept = Body<typeof KEPT>;
export type Page = Body<typeof PAGE>;
export type Fin = Body<typeof FIN>;
export type State = Body<typeof STATE>;

export type Open = Body<typeof OPEN>;
export type File = Body<typeof FILE>;
export type Ret = Body<typeof RET>;
export type Jobs = Body<typeof JOBS>;
export type Cancel = Body<typeof CANCEL>;
export type Done = Body<typeof DONE>;
export type Full = Body<typeof FULL>;
export type Refuse = Body<typeof REFUSE>;
export type Out = Body<typeof OUT>;

/** A decoded payload: its type, its checked body, and the bytes after a binary header. */
export type JobMessage =
  | { type: 'jb.open'; body: Open }
  | { type: 'jb.jobs'; body: Jobs }
  | { type: 'jb.file'; body: File; bytes: Uint8Array }
  | { type: 'jb.ret'; body: Ret; bytes: Uint8Array }
  | { type: 'jb.cancel'; body: Cancel }
  | { type: 'jb.close'; body: Body<typeof CLOSE> }
  | { type: 'jb.done'; body: Done; bytes: Uint8Array }
  | { type: 'jb.full'; body: Full }
  | { type: 'jb.refuse'; body: Refuse }
  | { type: 'jb.out'; body: Out; bytes: Uint8Array }
  | { type: 'jd.hand'; body: Hand }
  | { type: 'jd.run'; body: Kept }
  | { type: 'jd.get'; body: Body<typeof GET> }
  | { type: 'jd.cancel'; body: Body<typeof CANCEL_RUN> }
  | { type: 'jd.list'; body: Body<typeof LIST> }
  | { type: 'jd.ok'; body: Body<typeof OK> }
  | { type: 'jd.no'; body: Body<typeof NO> }
  | { type: 'jd.view'; body: Body<typeof VIEW_OF> }
  | { type: 'jd.runs'; body: Body<typeof RUNS> }
  | { type: 'jd.page'; body: Page; bytes: Uint8Array }
  | { type: 'jd.fin'; body: Fin; bytes: Uint8Array }
  | { type: 'jd.state'; body: State };

const DECLARED: Array<Message<string, unknown>> = [
  OPEN,
  JOBS,
  FILE,
  CANCEL,
  CLOSE,
  RET,
  DONE,
  FULL,
  REFUSE,
  OUT,
  HAND,
  KEPT,
  GET,
  CANCEL_RUN,
  LIST,
  OK,
  NO,
  VIEW_OF,
  RUNS,
  PAGE,
  FIN,
  STATE,
];
const BY_TYPE = new Map(DECLARED.map((m) => [m.type, m]));

/** A message's payload: JSON, or binary with `bytes` after its header. */
export function encodeJob<B>(m: Message<string, B>, body: B, bytes?: Uint8Array): string | Uint8Array {
  const json = JSON.stringify({ t: m.type, b: m.toWire(body) });
  if (bytes === undefined) return json;
  const header = Buffer.from(json);
  const out = new Uint8Array(BINARY_HEADER_BYTES + header.length + bytes.length);
  out[0] = JOB_BINARY_MARK;
  new DataView(out.buffer).setUint32(1, header.length);
  out.set(header, BINARY_HEADER_BYTES);
  out.set(bytes, BINARY_HEADER_BYTES + header.length);
  return out;
}

/**
 * The message in a payload, or undefined when it is not one: not JSON, an unknown type, a field
 * out of its bounds, a spec that breaks one (command.ts), output lengths that do not add up to
 * the bytes, or bytes where none belong.
 */
export function decodeJob(data: Uint8Array): JobMessage | undefined {
  let text: string;
  let bytes: Uint8Array | undefined;
  if (data.length > 0 && data[0] === JOB_BINARY_MARK) {
    if (data.length < BINARY_HEADER_BYTES) return undefined;
    const n = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1);
    if (BINARY_HEADER_BYTES + n > data.length) return undefined;
    text = Buffer.from(data.subarray(BINARY_HEADER_BYTES, BINARY_HEADER_BYTES + n)).toString('utf8');
    bytes = data.subarray(BINARY_HEADER_BYTES + n);
  } else text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
  let o: { t?: unknown; b?: unknown };
  try {
    o = JSON.parse(text) as { t?: unknown; b?: unknown };
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null || typeof o.t !== 'string') return undefined;
  const m = BY_TYPE.get(o.t);
  if (!m || !m.check(o.b)) return undefined;
  // The kit maps a checked body from its wire names: it reads only the type and the body.
  const body = m.of({ t: m.type, b: o.b } as Envelope);
  const msg = { type: m.type, body, bytes: bytes ?? new Uint8Array(0) } as JobMessage;
  return wellFormed(msg, bytes !== undefined) ? msg : undefined;
}

/** The checks that span fields: a spec's bounds, and bytes only where they belong and add up. */
function wellFormed(m: JobMessage, binary: boolean): boolean {
  switch (m.type) {
    case 'jb.open':
      return !binary && problemOf(m.body) === null;
    case 'jb.done': {
      const total = m.body.results.reduce((n, r) => n + r.out + r.err, 0);
      return total === m.bytes.length;
    }
    case 'jb.out':
      return binary && m.bytes.length > 0;
    case 'jd.hand':
    case 'jd.run':
      return !binary && runProblem(m.body) === null;
    case 'jd.page':
      return m.body.inputs.length === m.body.results.length && outputAddsUp(m.body.results, m.bytes);
    case 'jd.fin':
      return outputAddsUp(m.body.results, m.bytes);
    case 'jb.file':
      return binary && m.bytes.length <= JOB_FILE_BYTES_MAX;
    case 'jb.ret':
      return (
        binary && m.bytes.length <= JOB_FILE_BYTES_MAX && (m.body.error === null || m.bytes.length === 0)
      );
    default:
      return !binary;
  }
}

/**
 * What is wrong with a detached run's spec and jobs, or null: a spec's bounds (command.ts), `group`
 * output and no files (nobody would be there to take them), job numbers unique, pins only when
 * the run names workers.
 */
export function runProblem(r: Omit<Hand, 'req'>): string | null {
  const problem = problemOf({ ...r, detached: true, output: 'group', transfers: [], returns: [] });
  if (problem) return problem;
  const seen = new Set<number>();
  for (const [job] of r.jobs) {
    if (seen.has(job)) return `job ${job} is given twice`;
    seen.add(job);
  }
  return null;
}

const outputAddsUp = (results: KeptResult[], bytes: Uint8Array): boolean =>
  results.reduce((n, r) => n + r.out + r.err, 0) === bytes.length;

/** Results as jd.fin and jd.page carry them: entries, and their output after one another. */
export function keptResults(results: JobResult[]): { entries: KeptResult[]; bytes: Uint8Array } {
  const entries = results.map((r): KeptResult => ({
    job: r.job,
    seq: r.seq,
    attempt: r.attempt,
    fence: r.fence,
    exit: r.exit,
    signal: r.signal,
    timedOut: r.timedOut,
    cancelled: r.cancelled,
    started: r.started,
    at: Math.max(0, Math.round(r.startedAtWallMs)),
    us: Math.max(0, Math.round(r.runtimeUs)),
    out: r.stdout.length,
    err: r.stderr.length,
    truncated: r.truncated,
    why: r.error === null ? null : r.error.slice(0, JOB_WHY_CHARS_MAX),
    worker: r.worker,
    name: r.workerName,
    send: r.sendBytes,
    recv: r.receiveBytes,
  }));
  return { entries, bytes: Buffer.concat(results.flatMap((r) => [r.stdout, r.stderr])) };
}

/** The results of a jd.fin or jd.page (decodeJob checked that the lengths add up to the bytes). */
export function resultsOf(run: RunId, entries: KeptResult[], bytes: Uint8Array): JobResult[] {
  let at = 0;
  return entries.map((e) => {
    const stdout = bytes.slice(at, at + e.out);
    const stderr = bytes.slice(at + e.out, at + e.out + e.err);
    at += e.out + e.err;
    return {
      run,
      job: e.job,
      seq: e.seq,
      attempt: e.attempt,
      fence: e.fence,
      worker: e.worker,
      workerName: e.name,
      started: e.started,
      exit: e.exit,
      signal: e.signal,
      timedOut: e.timedOut,
      cancelled: e.cancelled,
      startedAtWallMs: e.at,
      runtimeUs: e.us,
      stdout,
      stderr,
      truncated: e.truncated,
      error: e.why,
      sendBytes: e.send,
      receiveBytes: e.recv,
    };
  });
}

/** The digest jb.file carries, so a worker never runs a job with a damaged file. */
export const sha256Of = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** How the roles send: one payload to one peer on JOB_TOPIC, with its outcome (jobs.ts binds it). */
export type JobSend = (to: PeerId, payload: string | Uint8Array, done?: (r: JobSent) => void) => void;
