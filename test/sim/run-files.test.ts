/**
 * Files of a run in the simulation (src/p2p/jobs): `--transfer` files reach each job (a shared one
 * once per worker, a job's own with each attempt), `--return` files come back once per job, a
 * worker that crashes mid-run has its jobs rerun elsewhere with their files sent again, a forger
 * can neither plant a file in a job nor a returned file in the run, and a file over the bound
 * is never sent.
 */
import { describe, expect, it } from 'vitest';
import { JOB_FILE_BYTES_MAX } from '../../src/p2p/jobs/index.js';
import { FILE, JOB_TOPIC, RET, decodeJob, encodeJob, sha256Of } from '../../src/p2p/jobs/messages.js';
import type { RunFiles, RunSink, StartRequest } from '../../src/p2p/jobs/types.js';
import {
  LOSSY,
  execSpec,
  jobsCluster,
  lines,
  runUntil,
  startRun,
  startsOf,
  type SimJob,
} from '../support/jobs.js';

const SEEDS = Array.from({ length: 10 }, (_, i) => i + 1);
const JOBS = 30;
const workers = ['w1', 'w2', 'w3'].map((name) => ({ name, slots: 2 }));
const SHARED = 'shared contents';
const spec = execSpec({ transfers: ['tool.txt', 'in-{}.txt'], returns: ['out-{}.txt'] });

/** The submitter's files: the shared one and one per input line. */
const disk: RunFiles = {
  read(path) {
    if (path === 'tool.txt') return Buffer.from(SHARED);
    const m = /^in-(\d+)\.txt$/.exec(path);
    if (!m) throw new Error('ENOENT');
    return Buffer.from(`input ${m[1]}`);
  },
};

/**
 * A job that returns its own file in capitals, as `tr a-z A-Z < in-N.txt > out-N.txt` would, and
 * fails (exit 3) when a file it was given is not the submitter's.
 */
function upper(durationMs: number) {
  return (req: StartRequest): SimJob => {
    const input = String(req.job);
    const given = req.transfers.map((t) => [t.path, Buffer.from(t.data).toString()]);
    const right =
      JSON.stringify(given) ===
        JSON.stringify([
          ['tool.txt', SHARED],
          [`in-${input}.txt`, `input ${input}`],
        ]) && JSON.stringify(req.returns) === JSON.stringify([`out-${input}.txt`]);
    const data = Buffer.from(`input ${input}`.toUpperCase());
    return { durationMs, exit: right ? 0 : 3, ignoresTerm: false, returned: [{ index: 0, data }] };
  };
}

/** Every job's returned file came to the sink exactly once, with the job's own contents. */
function expectReturnedOnce(t: ReturnType<typeof startRun>): void {
  expect(t.sink.returns.length).toBe(JOBS);
  const byJob = new Map(t.sink.returns.map((r) => [r.job, r]));
  expect(byJob.size).toBe(JOBS);
  for (let job = 1; job <= JOBS; job++)
    expect(byJob.get(job)).toEqual({ job, index: 0, text: `INPUT ${job}` });
}

const own = (job: number) => Buffer.byteLength(`input ${job}`);

describe('run: --transfer and --return (simulation)', () => {
  it.each(SEEDS)('files reach every job and come back once each, seed %i', async (seed) => {
    const h = await jobsCluster(seed, workers, upper(50), LOSSY);
    const t = startRun(h, lines(JOBS), { files: disk }, spec);
    expect(await runUntil(h, t.over, 30_000)).toBe(true);
    expect(t.events.at(-1)).toMatchObject({ kind: 'run-finished', counts: { done: JOBS, failed: 0 } });
    expectReturnedOnce(t);
    // Send: each job's own file, and the shared one once per worker (with its first job there).
    const used = new Set(t.sink.records.map((r) => r.worker)).size;
    const own_ = t.sink.records.reduce((n, r) => n + own(r.job), 0);
    expect(t.sink.records.reduce((n, r) => n + r.sendBytes, 0)).toBe(own_ + used * SHARED.length);
    for (const r of t.sink.records) expect(r.receiveBytes).toBe(own(r.job));
    expect(h.c.handlerErrors()).toEqual([]);
  });

  it.each(SEEDS)(
    'a worker crashes mid-run: its jobs rerun elsewhere with their files, seed %i',
    async (seed) => {
      const h = await jobsCluster(seed, workers, upper(150), LOSSY);
      const t = startRun(h, lines(JOBS), { files: disk }, spec);
      expect(await runUntil(h, () => t.sink.records.length >= 8, 30_000)).toBe(true);
      const running = h.executors.get('w2')![0]!.alive().length;
      h.executors.get('w2')![0]!.crash();
      await h.c.crash(h.workers[1]!);
      expect(await runUntil(h, t.over, 60_000)).toBe(true);
      expect(t.events.at(-1)).toMatchObject({ kind: 'run-finished', counts: { done: JOBS, failed: 0 } });
      expectReturnedOnce(t);
      if (running > 0) expect(t.sink.records.some((r) => r.attempt >= 2)).toBe(true);
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS)(
    'a forger can plant neither a file in a job nor a returned file in the run, seed %i',
    async (seed) => {
      const h = await jobsCluster(seed, workers.slice(0, 1), upper(200), LOSSY, { others: ['mallory'] });
      const t = startRun(h, lines(JOBS), { files: disk }, spec);
      expect(await runUntil(h, () => startsOf(h, t.handle.run).length >= 1, 10_000)).toBe(true);
      const malloryPeer = h.c.peers.find((p) => p.name === 'mallory')!;
      const knows = () =>
        h.c.peers.every(
          (p) =>
            p === malloryPeer ||
            (malloryPeer.node.membership.get(p.node.id) && p.node.membership.get(malloryPeer.node.id)),
        );
      expect(await runUntil(h, knows, 5000)).toBe(true);
      const mallory = h.reliables.get('mallory')!;
      const run = t.handle.run;
      const w1 = h.workers[0]!.node.id;
      const evil = Buffer.from('evil');
      const sha256 = sha256Of(evil);
      const jobs = h.jobs;
      const before = {
        worker: jobs.get('w1')!.stats.wrongSender,
        submitter: jobs.get('submitter')!.stats.wrongSender,
      };
      mallory.sendTo(w1, JOB_TOPIC, encodeJob(FILE, { run, job: null, index: 0, sha256 }, evil));
      for (let job = 1; job <= JOBS; job++) {
        mallory.sendTo(w1, JOB_TOPIC, encodeJob(FILE, { run, job, index: 1, sha256 }, evil));
        const ret = { run, job, attempt: 1, index: 0, error: null };
        mallory.sendTo(h.submitter.node.id, JOB_TOPIC, encodeJob(RET, ret, evil));
      }
      expect(await runUntil(h, t.over, 60_000)).toBe(true);
      // Every job was given the submitter's files (upper() fails the job otherwise) and returned its own.
      expect(t.events.at(-1)).toMatchObject({ kind: 'run-finished', counts: { done: JOBS, failed: 0 } });
      expectReturnedOnce(t);
      expect(jobs.get('w1')!.stats.wrongSender).toBeGreaterThan(before.worker);
      expect(jobs.get('submitter')!.stats.wrongSender).toBeGreaterThan(before.submitter);
    },
  );

  it('the run finishes only once the sink recorded every job, after writing its returned files', async () => {
    const h = await jobsCluster(4, workers, upper(20), LOSSY);
    const recorded: number[] = [];
    let atFinish = -1;
    const sink: RunSink = {
      output: () => {},
      // As the CLI's sink: the file is written to disk before the result is recorded.
      returned: () => new Promise((resolve) => setImmediate(resolve)),
      record: (r) => void recorded.push(r.job),
    };
    const opts = { retries: 1, maxRunning: null, workers: null, files: disk };
    const handle = h.jobs.get('submitter')!.startRun(spec, sink, opts);
    let fed = false;
    h.submitter.node.on((e) => {
      if (!('run' in e) || e.run !== handle.run) return;
      if (e.kind === 'run-room' && !fed) {
        fed = true;
        handle.feed(lines(JOBS), true);
      }
      if (e.kind === 'run-finished') atFinish = recorded.length;
    });
    expect(await runUntil(h, () => atFinish >= 0, 30_000)).toBe(true);
    expect(atFinish).toBe(JOBS);
  });

  it('a job whose file is over the bound fails without running; the others run', async () => {
    const h = await jobsCluster(1, workers, upper(20), LOSSY);
    const big: RunFiles = {
      read: (path) => (path === 'in-3.txt' ? new Uint8Array(JOB_FILE_BYTES_MAX + 1) : disk.read(path)),
    };
    const t = startRun(h, lines(JOBS), { files: big }, spec);
    expect(await runUntil(h, t.over, 30_000)).toBe(true);
    expect(t.events.at(-1)).toMatchObject({ kind: 'run-finished', counts: { done: JOBS - 1, failed: 1 } });
    const three = t.sink.records.find((r) => r.job === 3)!;
    expect(three).toMatchObject({ started: false, exit: null });
    expect(three.error).toBe(`cannot send in-3.txt: it is over ${JOB_FILE_BYTES_MAX} bytes`);
    expect(startsOf(h, t.handle.run).some((s) => s.job === 3)).toBe(false);
  });

  it('a shared file that cannot be read fails the run before anything runs', async () => {
    const h = await jobsCluster(2, workers, upper(20), LOSSY);
    const missing: RunFiles = { read: (path) => (path === 'tool.txt' ? missingFile() : disk.read(path)) };
    const t = startRun(h, lines(JOBS), { files: missing }, spec);
    expect(await runUntil(h, t.over, 30_000)).toBe(true);
    expect(t.events.at(-1)).toMatchObject({ kind: 'run-failed', why: 'cannot send tool.txt: ENOENT' });
    expect(startsOf(h, t.handle.run)).toEqual([]);
  });

  it('a job whose input makes its path climb out with .. fails without running', async () => {
    const h = await jobsCluster(3, workers, upper(20), LOSSY);
    const inputs = lines(3);
    inputs[1] = { ...inputs[1]!, input: '/../x' };
    const t = startRun(h, inputs, { files: disk }, spec);
    expect(await runUntil(h, t.over, 30_000)).toBe(true);
    const bad = t.sink.records.find((r) => r.job === 2)!;
    expect(bad).toMatchObject({ started: false, exit: null });
    expect(bad.error).toBe(`--transfer in-{}.txt: 'in-/../x.txt' goes up with '..'`);
  });

  it('a jb.file or jb.ret over the bound does not decode', () => {
    const big = new Uint8Array(JOB_FILE_BYTES_MAX + 1);
    const run = '0123456789abcdef';
    const file = encodeJob(FILE, { run, job: 1, index: 0, sha256: sha256Of(big) }, big) as Uint8Array;
    const ret = encodeJob(RET, { run, job: 1, attempt: 1, index: 0, error: null }, big) as Uint8Array;
    expect(decodeJob(file)).toBeUndefined();
    expect(decodeJob(ret)).toBeUndefined();
    const small = encodeJob(FILE, { run, job: 1, index: 0, sha256: sha256Of(big) }, big.subarray(1));
    expect(decodeJob(small as Uint8Array)?.type).toBe('jb.file');
  });
});

function missingFile(): never {
  throw new Error('ENOENT');
}
