/**
 * Results are recorded once (src/p2p/jobs), whatever the network does: a fast-check property over
 * seeds, run sizes and slots, under 20 % loss, 20 % duplication and reordering, with a sink whose
 * record takes a while (its promise holds the worker's ack, as the joblog's fdatasync does) and,
 * in some runs, a worker crashing mid-run. Every job ran at least once and was recorded exactly once.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { JobResult } from '../../src/p2p/jobs/index.js';
import { jobsCluster, lines, runUntil, startRun, type JobsHarness } from '../support/jobs.js';

const HARSH = { loss: 0.2, duplicate: 0.2, delayMinMs: 0.1, delayMaxMs: 20 };

describe('run: results recorded once (simulation)', () => {
  it('records each job exactly once under loss, duplication, reordering, slow records and a crash', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 80 }),
        fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 2, maxLength: 3 }),
        fc.integer({ min: 0, max: 300 }),
        fc.boolean(),
        async (seed, n, slots, recordMs, crash) => {
          const workers = slots.map((s, i) => ({ name: `w${i + 1}`, slots: s }));
          const h: JobsHarness = await jobsCluster(
            seed,
            workers,
            (req) => ({ durationMs: 5 + ((req.job * 31) % 50), exit: 0, ignoresTerm: false }),
            HARSH,
          );
          const t = startRun(h, lines(n));
          const recorded = t.sink.records;
          // Each record resolves after recordMs of virtual time: the worker's ack waits for it.
          t.sink.record = (r: JobResult) =>
            new Promise<void>((resolve) =>
              h.c.rt.schedule(recordMs, () => {
                recorded.push(r);
                resolve();
              }),
            );
          if (crash) {
            await runUntil(h, () => recorded.length >= n / 3, 30_000);
            const last = h.workers.at(-1)!;
            h.executors.get(last.name)![0]!.crash();
            await h.c.crash(last);
          }
          expect(await runUntil(h, t.over, 120_000)).toBe(true);
          await runUntil(h, () => false, 1000);
          const per = t.sink.perJob();
          expect(per.size).toBe(n);
          expect([...per.values()].every((k) => k === 1)).toBe(true);
          const ran = new Set([...h.executors.values()].flat().flatMap((e) => e.started.map((s) => s.job)));
          expect(ran.size).toBe(n);
          expect(h.c.handlerErrors()).toEqual([]);
        },
      ),
      { numRuns: 30, seed: 2121 },
    );
  });
});
