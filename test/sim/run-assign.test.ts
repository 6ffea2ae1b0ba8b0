/**
 * `peer run`'s assignment in the simulation (src/p2p/jobs): a submitter places 300 jobs on three
 * workers of two slots under loss, duplication and delay. No worker ever runs more than its slots
 * or holds more than its window; every job is recorded exactly once; every worker is used; the
 * datagrams per job stay low (batched per turn). A fast-check property varies slots and durations.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { windowOf } from '../../src/p2p/jobs/index.js';
import {
  LOSSY,
  jobsCluster,
  lines,
  runUntil,
  startRun,
  startsOf,
  type JobsHarness,
} from '../support/jobs.js';

const SEEDS = Array.from({ length: 30 }, (_, i) => i + 1);

/** Runs until the run is over, checking at every step that no worker holds more than its window. */
async function runChecked(h: JobsHarness, over: () => boolean, withinMs: number): Promise<boolean> {
  const check = () => {
    for (const w of h.workers) {
      const runner = h.jobs.get(w.name)!.runner!;
      expect(runner.held()).toBeLessThanOrEqual(runner.window);
    }
    return over();
  };
  return runUntil(h, check, withinMs);
}

describe('run: assignment (simulation)', () => {
  it.each(SEEDS)(
    '300 jobs on 3 workers x 2 slots: within slots and windows, each recorded once, seed %i',
    async (seed) => {
      const workers = ['w1', 'w2', 'w3'].map((name) => ({ name, slots: 2 }));
      const h = await jobsCluster(
        seed,
        workers,
        (req) => ({ durationMs: 5 + (req.job % 7) * 3, exit: 0, ignoresTerm: false }),
        LOSSY,
      );
      const t = startRun(h, lines(300));
      expect(await runChecked(h, t.over, 120_000)).toBe(true);
      expect(t.events.at(-1)).toMatchObject({
        kind: 'run-finished',
        counts: { done: 300, failed: 0, fed: 300 },
      });
      const per = t.sink.perJob();
      expect(per.size).toBe(300);
      expect([...per.values()].every((n) => n === 1)).toBe(true);
      for (const w of workers) {
        const ex = h.executors.get(w.name)![0]!;
        expect(ex.maxAlive).toBeLessThanOrEqual(w.slots);
        expect(ex.started.length).toBeGreaterThan(0);
      }
      // Every record is of an attempt that ran where the record says, with its command.
      const starts = startsOf(h, t.handle.run);
      for (const r of t.sink.records) {
        const s = starts.find((x) => x.job === r.job && x.attempt === r.attempt)!;
        expect(s.command).toBe(`work ${r.job}`);
        expect(s.env.PEER_FENCING_TOKEN).toBe(String(r.fence));
        expect(h.workers.find((p) => p.name === s.worker)!.node.id).toBe(r.worker);
      }
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );

  it('costs few datagrams per job: 300 jobs of 1 to 9 ms, no loss', async () => {
    const workers = ['w1', 'w2', 'w3'].map((name) => ({ name, slots: 2 }));
    // Jobs of uneven length end one at a time, as real processes do.
    const durationMs = (job: number) => 1 + ((job * 7919) % 9);
    const h = await jobsCluster(
      7,
      workers,
      (req) => ({ durationMs: durationMs(req.job), exit: 0, ignoresTerm: false }),
      {},
    );
    const before = h.unicast.count;
    const startedAt = h.c.rt.now();
    const t = startRun(h, lines(300));
    expect(await runUntil(h, t.over, 60_000)).toBe(true);
    const perJob = (h.unicast.count - before) / 300;
    console.log(
      `run of 300 jobs: ${h.unicast.count - before} reliable unicast datagrams, ${perJob.toFixed(2)} per job`,
    );
    expect(perJob).toBeLessThanOrEqual(2.5);
    // Batching costs no time: the slots stay busy (300 jobs of 5 ms on average, 6 slots: 250 ms).
    expect(h.c.rt.now() - startedAt).toBeLessThan(350);
  });

  it('holds within slots and windows for any slots and durations (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 1000 }),
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 60 }),
        async (seed, slots, maxMs, n) => {
          const workers = slots.map((s, i) => ({ name: `w${i + 1}`, slots: s }));
          const h = await jobsCluster(
            seed,
            workers,
            (req) => ({ durationMs: 1 + ((req.job * 7919) % maxMs), exit: 0, ignoresTerm: false }),
            LOSSY,
          );
          const t = startRun(h, lines(n));
          expect(await runChecked(h, t.over, 60_000)).toBe(true);
          expect(t.sink.records.length).toBe(n);
          expect(new Set(t.sink.records.map((r) => r.job)).size).toBe(n);
          for (const w of workers) {
            const ex = h.executors.get(w.name)![0]!;
            expect(ex.maxAlive).toBeLessThanOrEqual(w.slots);
            expect(h.jobs.get(w.name)!.runner!.window).toBe(windowOf(w.slots));
          }
        },
      ),
      { numRuns: 15, seed: 21 },
    );
  });
});

describe('run: two submitters (simulation)', () => {
  it.each(SEEDS)(
    'share one worker: both runs progress together and finish, each job once, seed %i',
    async (seed) => {
      const h = await jobsCluster(
        seed,
        [{ name: 'w1', slots: 2 }],
        () => ({ durationMs: 20, exit: 0, ignoresTerm: false }),
        LOSSY,
        {
          others: ['submitter2'],
        },
      );
      const knows = () => h.jobs.get('submitter2')!.workers().length === 1;
      expect(await runUntil(h, knows, 5000)).toBe(true);
      const a = startRun(h, lines(100));
      const b = startRun(h, lines(100), {}, undefined, 'submitter2');
      expect(await runUntil(h, () => a.over() && b.over(), 60_000)).toBe(true);
      for (const t of [a, b]) {
        expect(t.events.at(-1)).toMatchObject({ kind: 'run-finished', counts: { done: 100 } });
        expect([...t.sink.perJob().values()].every((n) => n === 1)).toBe(true);
      }
      // Round-robin: while both runs have jobs, neither waits for the other to finish.
      const starts = h.executors.get('w1')![0]!.started;
      const firstB = starts.findIndex((s) => s.run === b.handle.run);
      const lastA = starts.findLastIndex((s) => s.run === a.handle.run);
      expect(firstB).toBeLessThan(lastA);
      expect(h.executors.get('w1')![0]!.maxAlive).toBeLessThanOrEqual(2);
      expect(h.jobs.get('w1')!.runner!.held()).toBe(0);
    },
  );
});

describe('run: a short run spreads over free slots (simulation)', () => {
  it.each([1, 2, 3])(
    '4 jobs of 100 ms on 2 workers x 2 slots: each worker runs 2 at once, all done in one round, seed %i',
    async (seed) => {
      const workers = ['w1', 'w2'].map((name) => ({ name, slots: 2 }));
      const h = await jobsCluster(
        seed,
        workers,
        () => ({ durationMs: 100, exit: 0, ignoresTerm: false }),
        {},
      );
      const startedAt = h.c.rt.now();
      const t = startRun(h, lines(4));
      expect(await runUntil(h, t.over, 10_000)).toBe(true);
      // A worker's window (its slots and their queue) holds all four: filling one worker's window
      // first would leave the other idle and take two rounds of 100 ms.
      for (const w of workers) expect(h.executors.get(w.name)![0]!.started.length).toBe(2);
      expect(h.c.rt.now() - startedAt).toBeLessThan(200);
    },
  );
});
