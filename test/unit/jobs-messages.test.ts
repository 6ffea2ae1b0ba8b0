/**
 * The job messages (src/p2p/jobs/messages.ts): each type round-trips, and every bound on a field
 * from the network holds at its boundary: one more is refused on decode, as are bytes that do not
 * add up, a cut header, an unknown type and a spec that breaks a bound of command.ts.
 */
import { describe, expect, it } from 'vitest';
import { COUNTER_MAX } from '../../src/p2p/bounds.js';
import {
  JOB_ATTEMPTS_MAX,
  JOB_BATCH_MAX,
  JOB_CANCEL_ENTRIES_MAX,
  JOB_INPUT_BYTES_MAX,
  JOB_WHY_CHARS_MAX,
} from '../../src/p2p/jobs/limits.js';
import {
  CANCEL,
  CLOSE,
  DONE,
  FULL,
  JOBS,
  OPEN,
  OUT,
  REFUSE,
  decodeJob,
  encodeJob,
  type JobEntry,
  type ResultEntry,
} from '../../src/p2p/jobs/messages.js';

const RUN = '0123456789abcdef';
const bytesOf = (p: string | Uint8Array) => (typeof p === 'string' ? Buffer.from(p) : p);
const decode = (p: string | Uint8Array) => decodeJob(bytesOf(p));

const open = {
  run: RUN,
  kind: 'exec' as const,
  words: ['echo', '{}'],
  env: [['A', 'b']] as Array<[string, string]>,
  timeoutMs: 1000,
  graceMs: 2000,
  output: 'group' as const,
  transfers: [],
  returns: ['out.txt'],
  detached: false,
};
const result = (over: Partial<ResultEntry> = {}): ResultEntry => ({
  job: 1,
  attempt: 1,
  fence: 5,
  exit: 0,
  signal: 0,
  timedOut: false,
  cancelled: false,
  started: true,
  at: 1_700_000_000_000,
  us: 1234,
  out: 0,
  err: 0,
  truncated: false,
  why: null,
  ...over,
});
const entry = (over: Partial<Record<0 | 1 | 2 | 3 | 4, unknown>> = {}): JobEntry =>
  Object.assign([1, 1, 1, 7, 'line'], over) as JobEntry;

describe('job messages', () => {
  it('round-trip every type, with its bytes', () => {
    expect(decode(encodeJob(OPEN, open))).toEqual({ type: 'jb.open', body: open, bytes: new Uint8Array(0) });
    expect(decode(encodeJob(JOBS, { run: RUN, jobs: [entry()] }))?.body).toEqual({
      run: RUN,
      jobs: [entry()],
    });
    expect(decode(encodeJob(CANCEL, { run: RUN, jobs: null, why: 'cancel' }))?.type).toBe('jb.cancel');
    expect(decode(encodeJob(CLOSE, { run: RUN }))?.type).toBe('jb.close');
    expect(decode(encodeJob(FULL, { run: RUN, free: 0, seen: 3, jobs: [[1, 1]], why: 'full' }))?.type).toBe(
      'jb.full',
    );
    expect(decode(encodeJob(REFUSE, { run: RUN, why: 'open-group', detail: 'no key' }))?.type).toBe(
      'jb.refuse',
    );
    const done = decode(
      encodeJob(
        DONE,
        { run: RUN, free: 2, seen: 1, results: [result({ out: 3, err: 2 })] },
        Buffer.from('abcde'),
      ),
    );
    expect(done?.type).toBe('jb.done');
    expect(Buffer.from((done as { bytes: Uint8Array }).bytes).toString()).toBe('abcde');
    const out = decode(encodeJob(OUT, { run: RUN, job: 1, attempt: 1, stream: 2 }, Buffer.from('line\n')));
    expect(out).toMatchObject({ type: 'jb.out', body: { stream: 2 } });
  });

  it('bounds jb.jobs: entries, input bytes and characters, attempt, fence', () => {
    const jobs = (es: JobEntry[]) => decode(encodeJob(JOBS, { run: RUN, jobs: es }));
    expect(jobs(Array.from({ length: JOB_BATCH_MAX }, () => entry()))).toBeDefined();
    expect(jobs(Array.from({ length: JOB_BATCH_MAX + 1 }, () => entry()))).toBeUndefined();
    expect(jobs([entry({ 4: 'x'.repeat(JOB_INPUT_BYTES_MAX) })])).toBeDefined();
    expect(jobs([entry({ 4: 'x'.repeat(JOB_INPUT_BYTES_MAX + 1) })])).toBeUndefined();
    expect(jobs([entry({ 4: 'é'.repeat(JOB_INPUT_BYTES_MAX / 2 + 1) })])).toBeUndefined();
    expect(jobs([entry({ 4: 'a\nb' })])).toBeUndefined();
    expect(jobs([entry({ 4: 'a\0b' })])).toBeUndefined();
    expect(jobs([entry({ 4: null })])).toBeDefined();
    expect(jobs([entry({ 2: JOB_ATTEMPTS_MAX })])).toBeDefined();
    expect(jobs([entry({ 2: JOB_ATTEMPTS_MAX + 1 })])).toBeUndefined();
    expect(jobs([entry({ 2: 0 })])).toBeUndefined();
    expect(jobs([entry({ 3: COUNTER_MAX })])).toBeDefined();
    expect(jobs([entry({ 3: COUNTER_MAX + 1 })])).toBeUndefined();
    expect(jobs([entry({ 0: 1.5 })])).toBeUndefined();
    expect(jobs([[1, 1, 1, 7] as unknown as JobEntry])).toBeUndefined();
  });

  it('bounds jb.done: results, exit, signal, reason, and bytes that add up', () => {
    const done = (rs: ResultEntry[], bytes?: Uint8Array) =>
      decode(encodeJob(DONE, { run: RUN, free: 0, seen: 0, results: rs }, bytes));
    expect(done(Array.from({ length: JOB_BATCH_MAX }, () => result()))).toBeDefined();
    expect(done(Array.from({ length: JOB_BATCH_MAX + 1 }, () => result()))).toBeUndefined();
    for (const exit of [-1, 255, null]) expect(done([result({ exit })])).toBeDefined();
    for (const exit of [-2, 256]) expect(done([result({ exit })])).toBeUndefined();
    expect(done([result({ signal: 64 })])).toBeDefined();
    expect(done([result({ signal: 65 })])).toBeUndefined();
    expect(done([result({ why: 'x'.repeat(JOB_WHY_CHARS_MAX) })])).toBeDefined();
    expect(done([result({ why: 'x'.repeat(JOB_WHY_CHARS_MAX + 1) })])).toBeUndefined();
    expect(done([result({ out: 2 })], Buffer.from('ab'))).toBeDefined();
    expect(done([result({ out: 2 })], Buffer.from('abc'))).toBeUndefined();
    expect(done([result({ out: 2 })])).toBeUndefined();
  });

  it('bounds the rest: a spec out of its bounds, cancel entries, free, unknown or cut payloads', () => {
    expect(decode(encodeJob(OPEN, { ...open, env: [['PEER_KEY_FILE', 'x']] }))).toBeUndefined();
    expect(decode(encodeJob(OPEN, { ...open, graceMs: 10 }))).toBeUndefined();
    expect(decode(encodeJob(OPEN, { ...open, returns: ['../x'] }))).toBeUndefined();
    expect(decode(encodeJob(OPEN, open, Buffer.from('x')))).toBeUndefined();
    const cancel = (n: number) =>
      decode(
        encodeJob(CANCEL, {
          run: RUN,
          jobs: Array.from({ length: n }, (): [number, number] => [1, 1]),
          why: 'cancel',
        }),
      );
    expect(cancel(JOB_CANCEL_ENTRIES_MAX)).toBeDefined();
    expect(cancel(JOB_CANCEL_ENTRIES_MAX + 1)).toBeUndefined();
    expect(
      decode(encodeJob(FULL, { run: RUN, free: 256 * 3, seen: 0, jobs: [], why: 'full' })),
    ).toBeDefined();
    expect(
      decode(encodeJob(FULL, { run: RUN, free: 256 * 3 + 1, seen: 0, jobs: [], why: 'full' })),
    ).toBeUndefined();
    expect(decode(encodeJob(CLOSE, { run: 'ABCDEF0123456789' }))).toBeUndefined();
    expect(decode(encodeJob(OUT, { run: RUN, job: 1, attempt: 1, stream: 1 }))).toBeUndefined();
    expect(decode('{"t":"jb.nope","b":{}}')).toBeUndefined();
    expect(decode('not json')).toBeUndefined();
    const bin = bytesOf(encodeJob(OUT, { run: RUN, job: 1, attempt: 1, stream: 1 }, Buffer.from('x')));
    expect(decode(bin.subarray(0, 10))).toBeUndefined();
    expect(decode(new Uint8Array([0, 0]))).toBeUndefined();
  });
});
