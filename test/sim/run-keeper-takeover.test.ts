/**
 * The keeper of a detached run crashes mid-run (simulation, lossy links, the real election): the
 * next coordinator resumes the run from its own store, which followed the old keeper's
 * announcements, after its takeover delay:
 *   - every job is recorded exactly once in the new keeper's store, and the run ends done;
 *   - jobs started again get attempt numbers above 1 and fences above every fence the old keeper
 *     gave out for them (each job's fences rise over its attempts);
 *   - workers did not kill the jobs of the dead keeper (a detached run outlives its host);
 *   - every recorded result is one a worker reported for that attempt;
 *   - the new keeper is a worker too: it places jobs on its own runner;
 *   - a worker that learns of the new coordinator late (after the new keeper's first jobs) still
 *     takes the run over from it;
 *   - a run cancelled before the new keeper resumed it: the old keeper's jobs are killed on every
 *     worker, and it is not resumed.
 */
import { describe, expect, it } from 'vitest';
import { execSpec, lines, runUntil, startsOf } from '../support/jobs.js';
import { collect, keeperCluster, okValue, settle } from '../support/keeper.js';

const SEEDS = Array.from({ length: 8 }, (_, i) => i + 1);
const JOBS = 30;

describe('run: keeper takeover (simulation)', () => {
  it.each(SEEDS)(
    'a new keeper resumes the run: every job recorded once, attempts and fences rise, seed %i',
    async (seed) => {
      const h = await keeperCluster(
        seed,
        [
          { name: 'k1', priority: 10 },
          { name: 'k2', priority: 5, slots: 2 },
          { name: 'w1', priority: 0, slots: 2 },
          { name: 'w2', priority: 0, slots: 2 },
        ],
        (req) => ({
          durationMs: 600 + (req.job % 3) * 100,
          exit: 0,
          ignoresTerm: false,
          stdout: `${req.job}`,
        }),
      );
      const api = h.jobs.get('client')!.keeper;
      const run = okValue(
        await settle(h, api.detach(execSpec(), lines(JOBS), { retries: 1, maxRunning: null, workers: null })),
      );
      const k1 = h.stores.get('k1')!;
      const k2 = h.stores.get('k2')!;
      expect(await runUntil(h, () => k1.view(run)!.done >= 8, 30_000)).toBe(true);
      await h.c.crash(h.peer('k1'));
      const crashedAt = h.c.rt.now();
      const k2id = h.peer('k2').node.id;
      expect(await runUntil(h, () => k2.get(run)?.state === 'done', 60_000)).toBe(true);
      expect(h.elections.get('k2')!.coordinator()).toBe(k2id);
      expect(h.peer('k2').events.filter((e) => e.kind === 'detached-resumed')).toMatchObject([{ runs: 1 }]);

      // Once each, and each is what a worker reported for that attempt.
      const results = k2.results(run, 0, Infinity, 1000).results;
      expect(results.map((r) => r.job)).toEqual(lines(JOBS).map((j) => j.job));
      const starts = startsOf(h, run);
      for (const r of results) {
        const s = starts.find((x) => x.job === r.job && x.attempt === r.attempt && x.fence === r.fence);
        expect(s?.worker).toBe(r.workerName);
        expect(Buffer.from(r.stdout).toString()).toBe(String(r.job));
      }
      // Fences rise over each job's attempts, whichever keeper gave them; resumed ones start at 2.
      for (const j of lines(JOBS)) {
        const mine = starts.filter((s) => s.job === j.job).sort((a, b) => a.attempt - b.attempt);
        for (let i = 1; i < mine.length; i++) expect(mine[i]!.fence).toBeGreaterThan(mine[i - 1]!.fence);
      }
      const resumed = results.filter((r) => r.attempt > 1);
      expect(resumed.length).toBeGreaterThan(0);
      const oldFences = starts.filter((s) => s.attempt === 1).map((s) => s.fence);
      for (const r of resumed) expect(r.fence).toBeGreaterThan(Math.max(...oldFences));
      // The new keeper ran jobs of the run it hosts on its own runner.
      expect(starts.some((s) => s.worker === 'k2' && s.attempt > 1)).toBe(true);
      // The old keeper's jobs were not killed for its death.
      const kills = [...h.executors.values()].flat().flatMap((e) => e.kills);
      expect(kills.filter((k) => k.why === 'submitter-gone')).toEqual([]);
      expect(h.c.rt.now() - crashedAt).toBeLessThan(60_000);
      // A client reads the run back from the new keeper.
      expect((await collect(h, run)).map((r) => r.job)).toEqual(lines(JOBS).map((j) => j.job));
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 4))(
    'a worker that hears of the new keeper late still serves it, seed %i',
    async (seed) => {
      const h = await keeperCluster(
        seed,
        [
          { name: 'k1', priority: 10 },
          { name: 'k2', priority: 5 },
          { name: 'w1', priority: 0, slots: 2, viewLagMs: 6000 },
        ],
        // Long jobs after the first few: w1 still runs the old keeper's when the new one opens the run.
        (req) => ({ durationMs: req.job <= 3 ? 300 : 6000, exit: 0, ignoresTerm: false }),
      );
      const api = h.jobs.get('client')!.keeper;
      const run = okValue(
        await settle(h, api.detach(execSpec(), lines(8), { retries: 1, maxRunning: null, workers: null })),
      );
      const k2 = h.stores.get('k2')!;
      const w1 = h.jobs.get('w1')!;
      expect(
        await runUntil(h, () => h.stores.get('k1')!.view(run)!.done >= 3 && w1.runner!.held() > 0, 30_000),
      ).toBe(true);
      await h.c.crash(h.peer('k1'));
      expect(await runUntil(h, () => k2.get(run)?.state === 'done', 120_000)).toBe(true);
      expect(k2.results(run, 0, Infinity, 100).results.map((r) => r.job)).toEqual(lines(8).map((j) => j.job));
      expect(w1.stats.wrongSender).toBeGreaterThan(0);
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 4))(
    'a run cancelled during the takeover is killed everywhere, seed %i',
    async (seed) => {
      const h = await keeperCluster(
        seed,
        [
          { name: 'k1', priority: 10 },
          { name: 'k2', priority: 5 },
          { name: 'w1', priority: 0, slots: 2 },
          { name: 'w2', priority: 0, slots: 2 },
        ],
        () => ({ durationMs: 60_000, exit: 0, ignoresTerm: false }),
      );
      const api = h.jobs.get('client')!.keeper;
      const run = okValue(
        await settle(h, api.detach(execSpec(), lines(8), { retries: 1, maxRunning: null, workers: null })),
      );
      const alive = () => [...h.executors.values()].flat().reduce((n, e) => n + e.aliveOf(run), 0);
      expect(await runUntil(h, () => alive() === 4, 10_000)).toBe(true);
      await h.c.crash(h.peer('k1'));
      const k2 = h.peer('k2');
      expect(await runUntil(h, () => h.elections.get('client')!.coordinator() === k2.node.id, 20_000)).toBe(
        true,
      );
      expect(k2.events.some((e) => e.kind === 'detached-resumed')).toBe(false);
      expect(okValue(await settle(h, api.cancelRun(run))).state).toBe('cancelled');
      expect(await runUntil(h, () => alive() === 0, 10_000)).toBe(true);
      await runUntil(h, () => false, 5000);
      expect(k2.events.filter((e) => e.kind === 'detached-resumed')).toMatchObject([{ runs: 0 }]);
      expect(startsOf(h, run).length).toBe(4);
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );
});
