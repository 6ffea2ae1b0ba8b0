/**
 * Detached runs in SQLite (src/storage/runs.ts): a run and its jobs stored once, each result once
 * (counts with it), open runs with the jobs still to do, results paged in job order within a byte
 * bound, runs listed newest first, collected runs forgotten, damaged rows never resumed, and a
 * failed write returned rather than thrown.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PeerStore } from '../src/storage/store.js';
import { RunsStore } from '../src/storage/runs.js';
import type { JobResult, KeptRun } from '../src/p2p/jobs/types.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function open(): { store: PeerStore; runs: RunsStore } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-runs-store-'));
  dirs.push(dir);
  const store = PeerStore.open(dir, 'alice');
  return { store, runs: RunsStore.of(store) };
}

const SUBMITTER = 'aaaaaaaaaaaaaaaa';
const kept = (run: string, at = 1000): KeptRun => ({
  spec: {
    run,
    kind: 'exec',
    words: ['echo', '{}'],
    env: [['A', 'b']],
    detached: true,
    timeoutMs: null,
    graceMs: 2000,
    output: 'group',
    transfers: [],
    returns: [],
  },
  opts: { retries: 2, maxRunning: null, workers: null },
  submitter: SUBMITTER,
  submitterName: 'sub',
  createdAtWallMs: at,
  state: 'open',
  collectedAtWallMs: null,
});
const jobs = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ job: i + 1, seq: i + 1, input: `line ${i + 1}`, pin: null }));
const result = (run: string, job: number, exit = 0, out = `out ${job}`): JobResult => ({
  run,
  job,
  seq: job,
  attempt: 1,
  fence: 10 + job,
  worker: 'bbbbbbbbbbbbbbbb',
  workerName: 'w1',
  started: true,
  exit,
  signal: 0,
  timedOut: false,
  cancelled: false,
  startedAtWallMs: 5000,
  runtimeUs: 1234,
  stdout: Buffer.from(out),
  stderr: Buffer.from('e'),
  truncated: false,
  error: null,
  sendBytes: 0,
  receiveBytes: 0,
});
const R1 = '0123456789abcdef';
const R2 = '1123456789abcdef';

describe('runs store (SQLite)', () => {
  it('stores a run once and each result once, counting them', () => {
    const { runs } = open();
    expect(runs.openRun(kept(R1), jobs(3))).toEqual({ first: true, failed: null });
    expect(runs.openRun(kept(R1), jobs(3))).toEqual({ first: false, failed: null });
    expect(runs.get(R1)).toEqual(kept(R1));
    expect(runs.finish(result(R1, 2))).toEqual({ first: true, failed: null });
    expect(runs.finish(result(R1, 2, 1, 'again'))).toEqual({ first: false, failed: null });
    expect(runs.finish(result(R1, 3, 1))).toEqual({ first: true, failed: null });
    expect(runs.finish(result(R1, 9))).toEqual({ first: false, failed: null });
    expect(runs.view(R1)).toMatchObject({ jobs: 3, done: 1, failed: 1, state: 'open', submitterName: 'sub' });
    expect(runs.openRuns(10)).toEqual([{ run: kept(R1), open: [jobs(3)[0]] }]);
    const [r2] = runs.results(R1, 0, 1000, 1).results;
    expect(r2).toEqual({ ...result(R1, 2), stdout: Buffer.from('out 2'), stderr: Buffer.from('e') });
    expect(runs.setState(R1, 'done', null).first).toBe(true);
    expect(runs.openRuns(10)).toEqual([]);
  });

  it('pages results in job order within the byte bound, at least one a page', () => {
    const { runs } = open();
    runs.openRun(kept(R1), jobs(5));
    for (const j of [5, 1, 3, 2, 4]) runs.finish(result(R1, j, 0, 'x'.repeat(100)));
    const p1 = runs.results(R1, 0, 250, 10);
    expect(p1.results.map((r) => r.job)).toEqual([1, 2]);
    expect(p1.more).toBe(true);
    expect(runs.results(R1, 2, 50, 10).results.map((r) => r.job)).toEqual([3]);
    const last = runs.results(R1, 3, 10_000, 10);
    expect(last).toMatchObject({ more: false });
    expect(last.results.map((r) => r.job)).toEqual([4, 5]);
    expect(last.inputs).toEqual(['line 4', 'line 5']);
  });

  it('lists newest first and forgets collected runs past their time, oldest collected first', () => {
    const { runs } = open();
    runs.openRun(kept(R1, 1), jobs(1));
    runs.openRun(kept(R2, 2), jobs(1));
    expect(runs.list(0, 10).map((v) => v.run)).toEqual([R2, R1]);
    expect(runs.prune(10_000, 10)).toBe(0);
    runs.setState(R1, 'done', 500);
    expect(runs.prune(400, 10)).toBe(0);
    expect(runs.prune(600, 10)).toBe(1);
    expect(runs.list(0, 10).map((v) => v.run)).toEqual([R2]);
    runs.setState(R2, 'cancelled', 700);
    runs.openRun(kept(R1, 3), jobs(1));
    // Over the count kept: the oldest collected goes, an open one never does.
    expect(runs.prune(0, 1)).toBe(1);
    expect(runs.list(0, 10).map((v) => v.run)).toEqual([R1]);
  });

  it('keeps only the newest runs when asked, open or not (the monitor shows, it never resumes)', () => {
    const { runs } = open();
    runs.openRun(kept(R1, 1), jobs(3));
    runs.openRun(kept(R2, 2), jobs(3));
    runs.finish(result(R1, 1, 0, 'out'));
    expect(runs.keepNewest(2)).toBe(0);
    expect(runs.keepNewest(1)).toBe(1);
    expect(runs.list(0, 10).map((v) => v.run)).toEqual([R2]);
    // Its jobs went with it: a run handed over again under the same id starts empty.
    runs.openRun(kept(R1, 3), jobs(1));
    expect(runs.results(R1, 0, 10_000, 10).results).toEqual([]);
  });

  it('never resumes or shows a damaged run, and a damaged result reads as failed', () => {
    const { store, runs } = open();
    runs.openRun(kept(R1), jobs(2));
    runs.openRun(kept(R2), jobs(1));
    store.db.prepare('UPDATE runs SET spec = \'{"run":1}\' WHERE run = ?').run(R2);
    expect(runs.openRuns(10).map((o) => o.run.spec.run)).toEqual([R1]);
    expect(runs.get(R2)).toBeUndefined();
    runs.finish(result(R1, 1));
    store.db.prepare("UPDATE run_jobs SET result = '{}' WHERE run = ? AND job = 1").run(R1);
    expect(runs.results(R1, 0, 1000, 10).results[0]).toMatchObject({ job: 1, started: false, exit: null });
  });

  it('returns a failed write instead of throwing', () => {
    const { store, runs } = open();
    runs.openRun(kept(R1), jobs(1));
    store.db.pragma('query_only = ON');
    expect(runs.openRun(kept(R2), jobs(1)).failed).not.toBeNull();
    expect(runs.finish(result(R1, 1)).failed).not.toBeNull();
    store.db.pragma('query_only = OFF');
    expect(runs.finish(result(R1, 1))).toEqual({ first: true, failed: null });
  });
});
