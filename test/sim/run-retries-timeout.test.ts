/**
 * Retries, timeouts and pinned jobs in the simulation (src/p2p/jobs): `--retries 3` on a job that
 * always fails tries it 3 times, each on a worker where it had not failed; `--timeout` kills a job
 * (SIGKILL after the grace when it ignores SIGTERM) and records it timed out with exit -1; a job
 * pinned to a worker (`--on`) that dies fails with exit 255, as GNU parallel reports an ssh failure.
 */
import { describe, expect, it } from 'vitest';
import { JOB_EXIT_WORKER_GONE } from '../../src/p2p/jobs/index.js';
import { LOSSY, execSpec, jobsCluster, runUntil, startRun, startsOf } from '../support/jobs.js';

const SEEDS = Array.from({ length: 30 }, (_, i) => i + 1);
const one = (input = 'x') => [{ job: 1, seq: 1, input, pin: null }];

describe('run: retries, timeouts, pinned jobs (simulation)', () => {
  it.each(SEEDS)('--retries 3 on a failing job: 3 tries on 3 different workers, seed %i', async (seed) => {
    const workers = ['w1', 'w2', 'w3'].map((name) => ({ name, slots: 1 }));
    const h = await jobsCluster(
      seed,
      workers,
      () => ({ durationMs: 30, exit: 3, ignoresTerm: false }),
      LOSSY,
    );
    const t = startRun(h, one(), { retries: 3 });
    expect(await runUntil(h, t.over, 30_000)).toBe(true);
    const tries = startsOf(h, t.handle.run).sort((a, b) => a.attempt - b.attempt);
    expect(tries.map((s) => s.attempt)).toEqual([1, 2, 3]);
    expect(new Set(tries.map((s) => s.worker)).size).toBe(3);
    expect(t.sink.records).toHaveLength(1);
    expect(t.sink.records[0]).toMatchObject({ exit: 3, attempt: 3 });
    expect(t.events.at(-1)).toMatchObject({ kind: 'run-finished', counts: { failed: 1, done: 0 } });
  });

  it.each(SEEDS)(
    '--retries 3 with 2 workers: a third try, and a job that passes stops retrying, seed %i',
    async (seed) => {
      const workers = ['w1', 'w2'].map((name) => ({ name, slots: 1 }));
      const h = await jobsCluster(
        seed,
        workers,
        (req) => ({ durationMs: 30, exit: req.attempt === 2 ? 0 : 1, ignoresTerm: false }),
        LOSSY,
      );
      const t = startRun(h, one(), { retries: 3 });
      expect(await runUntil(h, t.over, 30_000)).toBe(true);
      const tries = startsOf(h, t.handle.run).sort((a, b) => a.attempt - b.attempt);
      expect(tries.map((s) => s.attempt)).toEqual([1, 2]);
      expect(tries[0]!.worker).not.toBe(tries[1]!.worker);
      expect(t.sink.records).toEqual([expect.objectContaining({ exit: 0, attempt: 2 })]);
    },
  );

  it.each(SEEDS)('--timeout kills the job and records exit -1, timed out, seed %i', async (seed) => {
    const h = await jobsCluster(
      seed,
      [{ name: 'w1', slots: 2 }],
      (req) => ({
        durationMs: 60_000,
        exit: 0,
        ignoresTerm: req.job === 2,
      }),
      LOSSY,
    );
    const inputs = [1, 2].map((job) => ({ job, seq: job, input: String(job), pin: null }));
    const t = startRun(h, inputs, {}, execSpec({ timeoutMs: 500, graceMs: 300 }));
    expect(await runUntil(h, t.over, 10_000)).toBe(true);
    const byJob = new Map(t.sink.records.map((r) => [r.job, r]));
    for (const job of [1, 2]) {
      const r = byJob.get(job)!;
      expect(r).toMatchObject({ exit: -1, timedOut: true, started: true });
      // Killed at the timeout (ticks of 25 ms), by SIGKILL after the grace when it ignored SIGTERM.
      expect(r.signal).toBe(job === 2 ? 9 : 15);
      const ms = r.runtimeUs / 1000;
      expect(ms).toBeGreaterThanOrEqual(500 + (job === 2 ? 300 : 0));
      expect(ms).toBeLessThanOrEqual(500 + (job === 2 ? 300 : 0) + 60);
    }
  });

  it.each(SEEDS)('a job pinned to a worker that dies fails with exit 255, seed %i', async (seed) => {
    const workers = ['w1', 'w2'].map((name) => ({ name, slots: 1 }));
    const h = await jobsCluster(
      seed,
      workers,
      () => ({ durationMs: 5000, exit: 0, ignoresTerm: false }),
      LOSSY,
    );
    const [w1, w2] = h.workers.map((w) => w.node.id);
    const inputs = [
      { job: 1, seq: 1, input: 'a', pin: w1! },
      { job: 2, seq: 1, input: 'a', pin: w2! },
      { job: 3, seq: 2, input: 'b', pin: 'ffffffffffffffff' },
    ];
    const t = startRun(h, inputs, { workers: 'all' });
    expect(await runUntil(h, () => startsOf(h, t.handle.run).length === 2, 5000)).toBe(true);
    h.executors.get('w2')![0]!.crash();
    await h.c.crash(h.workers[1]!);
    expect(await runUntil(h, t.over, 20_000)).toBe(true);
    const byJob = new Map(t.sink.records.map((r) => [r.job, r]));
    expect(byJob.get(1)).toMatchObject({ exit: 0, started: true });
    expect(byJob.get(2)).toMatchObject({ exit: JOB_EXIT_WORKER_GONE, started: false, error: 'worker gone' });
    expect(byJob.get(3)).toMatchObject({ exit: JOB_EXIT_WORKER_GONE, started: false, error: 'worker gone' });
    expect(startsOf(h, t.handle.run).filter((s) => s.job === 2)).toHaveLength(1);
  });
});
