/**
 * The messages of jobs, declared once with the message kit (kit/message.ts). They travel as
 * reliable-delivery payloads on one topic, `job`, always by sendTo (acked, retried, FIFO per
 * destination: a cancel never overtakes its jobs, output never overtakes its result):
 *   S -> W  jb.open (a run's spec, once per worker), jb.file (a `--transfer` file, before the
 *           jb.jobs that needs it), jb.jobs (attempts to run), jb.cancel, jb.close
 *   W -> S  jb.ret (a `--return` file, before its jb.done), jb.done (results, and the worker's free
 *           room), jb.full (attempts it will not run), jb.refuse (a run it will not run at all),
 *           jb.out (`--line-buffer` output as it comes)
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
import type { JobSent, RunId } from './types.js';
import type { PeerId } from '../wire.js';
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
const isJobEntry = (v: unknown): v is JobEntry =>
  Array.isArray(v) &&
  v.length === 5 &&
  Number.isSafeInteger(v[0]) &&
  v[0] >= 1 &&
  v[0] <= JOB_NUMBER_MAX &&
  Number.isSafeInteger(v[1]) &&
  v[1] >= 1 &&
  v[1] <= JOB_NUMBER_MAX &&
  Number.isSafeInteger(v[2]) &&
  v[2] >= 1 &&
  v[2] <= JOB_ATTEMPTS_MAX &&
  Number.isSafeInteger(v[3]) &&
  v[3] >= 1 &&
  v[3] <= COUNTER_MAX &&
  (v[4] === null ||
    (typeof v[4] === 'string' && v[4].length <= JOB_INPUT_BYTES_MAX && inputProblem(v[4]) === null));

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

/** How one attempt ended; `out` and `err` are the lengths of its stdout and stderr in the bytes. */
const RESULT = message('jb.result', {
  job: JOB,
  attempt: ATTEMPT,
  fence: f.int(1, COUNTER_MAX),
  exit: f.nullable(f.int(JOB_EXIT_MIN, JOB_EXIT_MAX)),
  signal: f.int(0, JOB_SIGNAL_MAX),
  timedOut: f.bool(),
  cancelled: f.bool(),
  started: f.bool(),
  at: f.uint(),
  us: f.uint(),
  out: f.uint(JOB_OUTPUT_BYTES_MAX),
  err: f.uint(JOB_OUTPUT_BYTES_MAX),
  truncated: f.bool(),
  why: f.nullable(f.str(JOB_WHY_CHARS_MAX)),
});
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
  | { type: 'jb.out'; body: Out; bytes: Uint8Array };

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

/** The digest jb.file carries, so a worker never runs a job with a damaged file. */
export const sha256Of = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** How the roles send: one payload to one peer on JOB_TOPIC, with its outcome (jobs.ts binds it). */
export type JobSend = (to: PeerId, payload: string | Uint8Array, done?: (r: JobSent) => void) => void;
