/**
 * The keeper's messages (jd.*, src/p2p/jobs/messages.ts): each round-trips, and every bound on a
 * field from the network holds at its boundary: a run's jobs (RUN_JOBS_MAX, unique numbers, input
 * lines a worker would take), a page's results (RUN_PAGE_RESULTS_MAX, one input per result, output
 * lengths that add up to the bytes), a listing (RUN_LIST_MAX), names and reasons.
 */
import { describe, expect, it } from 'vitest';
import {
  JOB_WHY_CHARS_MAX,
  RUN_JOBS_MAX,
  RUN_LIST_MAX,
  RUN_OUTPUT_BYTES_MAX,
  RUN_PAGE_RESULTS_MAX,
} from '../../src/p2p/jobs/limits.js';
import {
  FIN,
  HAND,
  LIST,
  NO,
  PAGE,
  RUNS,
  STATE,
  decodeJob,
  encodeJob,
  keptResults,
  resultsOf,
  type HandJob,
} from '../../src/p2p/jobs/messages.js';
import type { JobResult, RunView } from '../../src/p2p/jobs/types.js';

const RUN = '0123456789abcdef';
const REQ = 'fedcba9876543210';
const bytesOf = (p: string | Uint8Array) => (typeof p === 'string' ? Buffer.from(p) : p);
const decode = (p: string | Uint8Array) => decodeJob(bytesOf(p));

const hand = (jobs: HandJob[], over: Record<string, unknown> = {}) => ({
  req: REQ,
  run: RUN,
  kind: 'exec' as const,
  words: ['echo', '{}'],
  env: [] as Array<[string, string]>,
  timeoutMs: null,
  graceMs: 2000,
  retries: 1,
  maxRunning: null,
  workers: null,
  jobs,
  ...over,
});
const jobs = (n: number): HandJob[] => Array.from({ length: n }, (_, i) => [i + 1, i + 1, `l${i + 1}`, null]);
const result = (job: number, out = 'o'): JobResult => ({
  run: RUN,
  job,
  seq: job,
  attempt: 2,
  fence: 99,
  worker: 'aaaaaaaaaaaaaaaa',
  workerName: 'w1',
  started: true,
  exit: 0,
  signal: 0,
  timedOut: false,
  cancelled: false,
  startedAtWallMs: 1_700_000_000_000,
  runtimeUs: 10,
  stdout: Buffer.from(out),
  stderr: Buffer.from('e'),
  truncated: false,
  error: null,
  sendBytes: 0,
  receiveBytes: 0,
});
const view: RunView = {
  run: RUN,
  kind: 'exec',
  words: ['echo', '{}'],
  submitterName: 'sub',
  createdAtWallMs: 1,
  state: 'open',
  jobs: 3,
  done: 1,
  failed: 0,
};

describe('keeper messages', () => {
  it('a run handed over: round-trips; its jobs bounded, unique, with lines a worker takes', () => {
    expect(decode(encodeJob(HAND, hand(jobs(3))))).toEqual({
      type: 'jd.hand',
      body: hand(jobs(3)),
      bytes: new Uint8Array(0),
    });
    expect(decode(encodeJob(HAND, hand(jobs(RUN_JOBS_MAX))))?.type).toBe('jd.hand');
    expect(decode(encodeJob(HAND, hand(jobs(RUN_JOBS_MAX + 1))))).toBeUndefined();
    expect(
      decode(
        encodeJob(
          HAND,
          hand([
            [1, 1, 'a', null],
            [1, 2, 'b', null],
          ]),
        ),
      ),
    ).toBeUndefined();
    expect(decode(encodeJob(HAND, hand([[1, 1, 'a\nb', null]])))).toBeUndefined();
    expect(decode(encodeJob(HAND, hand([[1, 1, null, 'not a peer']])))).toBeUndefined();
    expect(decode(encodeJob(HAND, hand(jobs(1), { workers: ['nope'] })))).toBeUndefined();
    expect(decode(encodeJob(HAND, hand(jobs(1), { words: [] })))).toBeUndefined();
    expect(decode(encodeJob(HAND, hand(jobs(1), { run: 'XYZ' })))).toBeUndefined();
  });

  it('results: each one back as it went, output lengths adding up to the bytes', () => {
    const rs = [result(1, 'one'), result(3, '')];
    const { entries, bytes } = keptResults(rs);
    const m = decode(encodeJob(FIN, { run: RUN, results: entries }, bytes));
    expect(m?.type).toBe('jd.fin');
    if (m?.type !== 'jd.fin') return;
    const back = resultsOf(RUN, m.body.results, m.bytes);
    expect(back.map((r) => ({ ...r, stdout: Buffer.from(r.stdout), stderr: Buffer.from(r.stderr) }))).toEqual(
      rs,
    );
    expect(decode(encodeJob(FIN, { run: RUN, results: entries }, bytes.subarray(1)))).toBeUndefined();
    const over = { ...entries[0]!, out: RUN_OUTPUT_BYTES_MAX + 1 };
    expect(
      decode(encodeJob(FIN, { run: RUN, results: [over] }, new Uint8Array(RUN_OUTPUT_BYTES_MAX + 1))),
    ).toBeUndefined();
  });

  it('a page: one input per result, RUN_PAGE_RESULTS_MAX results at most', () => {
    const { entries, bytes } = keptResults([result(1), result(2)]);
    const page = { req: REQ, view, results: entries, inputs: ['a', null], next: 2 };
    expect(decode(encodeJob(PAGE, page, bytes))?.type).toBe('jd.page');
    expect(decode(encodeJob(PAGE, { ...page, inputs: ['a'] }, bytes))).toBeUndefined();
    const many = keptResults(Array.from({ length: RUN_PAGE_RESULTS_MAX + 1 }, (_, i) => result(i + 1)));
    const inputs = many.entries.map(() => null);
    expect(decode(encodeJob(PAGE, { ...page, results: many.entries, inputs }, many.bytes))).toBeUndefined();
    expect(
      decode(encodeJob(PAGE, { ...page, view: { ...view, state: 'gone' as RunView['state'] } }, bytes)),
    ).toBeUndefined();
  });

  it('listings, states and refusals: bounded', () => {
    expect(decode(encodeJob(LIST, { req: REQ, offset: 0, limit: RUN_LIST_MAX }))?.type).toBe('jd.list');
    expect(decode(encodeJob(LIST, { req: REQ, offset: 0, limit: RUN_LIST_MAX + 1 }))).toBeUndefined();
    const views = Array.from({ length: RUN_LIST_MAX + 1 }, () => view);
    expect(decode(encodeJob(RUNS, { req: REQ, views: views.slice(1) }))?.type).toBe('jd.runs');
    expect(decode(encodeJob(RUNS, { req: REQ, views }))).toBeUndefined();
    expect(decode(encodeJob(STATE, { run: RUN, state: 'done', collected: 5 }))?.type).toBe('jd.state');
    expect(decode(encodeJob(STATE, { run: RUN, state: 'lost' as 'done', collected: null }))).toBeUndefined();
    expect(decode(encodeJob(NO, { req: REQ, why: 'x'.repeat(JOB_WHY_CHARS_MAX) }))?.type).toBe('jd.no');
    expect(decode(encodeJob(NO, { req: REQ, why: 'x'.repeat(JOB_WHY_CHARS_MAX + 1) }))).toBeUndefined();
    expect(decode(encodeJob(NO, { req: 'short', why: 'x' }))).toBeUndefined();
  });
});
