/**
 * `peer task` on the jobs machinery, in the simulation: a task is a job of a detached run of a
 * built-in op (src/cli/tasks.ts opRunSpec), kept by the elected coordinator and run in the
 * workers' op threads. What the old tasks protocol's tests held holds here:
 *   - handed over, then its submitter gone: every task runs, and its value is recorded once, in
 *     every full peer's store, and read back by a client that comes later;
 *   - a worker killed while it runs ops: its tasks run again elsewhere, each recorded once, with
 *     the right value;
 *   - the keeper killed in the middle: the next coordinator resumes the run from its own store,
 *     every task recorded once with the right value, resumed ones with a higher attempt.
 */
import { describe, expect, it } from 'vitest';
import { opRunSpec } from '../../src/cli/tasks.js';
import { runTask } from '../../src/p2p/jobs/ops.js';
import type { JobInput, JobResult } from '../../src/p2p/jobs/index.js';
import { runUntil } from '../support/jobs.js';
import { collect, keeperCluster, okValue, settle, type KeeperPeerSpec } from '../support/keeper.js';

const SEEDS = Array.from({ length: 6 }, (_, i) => i + 1);
const OPTS = { retries: 1, maxRunning: null, workers: null };
const OPS = { threads: 1, opMs: () => 40 };

/** `peer task submit OP ... --repeat n`: n jobs without input. */
const repeats = (n: number): JobInput[] =>
  Array.from({ length: n }, (_, i) => ({ job: i + 1, seq: i + 1, input: null, pin: null }));

const value = (op: string, args: number[]) => {
  const r = runTask(op, args);
  if (!r.ok) throw new Error(r.error);
  return `${r.value}\n`;
};

/** Each of jobs 1..n exactly once, exit 0, with `want` on stdout. */
function allOnce(results: JobResult[], n: number, want: string): void {
  expect(results.map((r) => r.job).sort((a, b) => a - b)).toEqual(repeats(n).map((j) => j.job));
  for (const r of results) {
    expect(r.exit).toBe(0);
    expect(Buffer.from(r.stdout).toString()).toBe(want);
  }
}

const noCommand = () => ({ durationMs: 1, exit: 0, ignoresTerm: false });

describe('peer task on detached runs (simulation)', () => {
  it.each(SEEDS)(
    'the submitter gone after the hand-over: every task done once, in every store, seed %i',
    async (seed) => {
      const peers: KeeperPeerSpec[] = [
        { name: 'k1', priority: 10 },
        { name: 'w1', priority: 0, slots: 2 },
        { name: 'w2', priority: 0, slots: 2 },
      ];
      const h = await keeperCluster(seed, peers, noCommand, undefined, OPS);
      const spec = opRunSpec('fibonacci', [90]);
      const run = okValue(await settle(h, h.jobs.get('client')!.keeper.detach(spec, repeats(30), OPTS)));
      await h.c.crash(h.client);
      for (const name of ['k1', 'w1', 'w2']) {
        const store = h.stores.get(name)!;
        expect(await runUntil(h, () => store.get(run)?.state === 'done', 60_000)).toBe(true);
        allOnce(store.results(run, 0, Infinity, 1000).results, 30, value('fibonacci', [90]));
      }
      // Ops ran in the threads, never as commands.
      expect([...h.executors.values()].flat().every((e) => e.started.length === 0)).toBe(true);
      expect([...h.threads.values()].reduce((n, t) => n + t.tasks.length, 0)).toBeGreaterThanOrEqual(30);
      await h.c.restart(h.client);
      allOnce(await collect(h, run), 30, value('fibonacci', [90]));
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS)(
    'a worker killed while it runs ops: its tasks run elsewhere, recorded once, seed %i',
    async (seed) => {
      const peers: KeeperPeerSpec[] = [
        { name: 'k1', priority: 10 },
        { name: 'w1', priority: 0, slots: 2 },
        { name: 'w2', priority: 0, slots: 2 },
      ];
      const h = await keeperCluster(seed, peers, noCommand, undefined, OPS);
      const run = okValue(
        await settle(h, h.jobs.get('client')!.keeper.detach(opRunSpec('sum', [2, 3]), repeats(40), OPTS)),
      );
      const w2 = h.peer('w2');
      expect(await runUntil(h, () => (h.threads.get('w2')?.tasks.length ?? 0) > 2, 20_000)).toBe(true);
      await h.c.crash(w2);
      const k1 = h.stores.get('k1')!;
      expect(await runUntil(h, () => k1.get(run)?.state === 'done', 60_000)).toBe(true);
      const results = k1.results(run, 0, Infinity, 1000).results;
      allOnce(results, 40, '5\n');
      // What w2 held ran again on w1, with a higher attempt.
      expect(results.some((r) => r.workerName === 'w1' && r.attempt > 1)).toBe(true);
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS)(
    'the keeper killed mid-run: the next coordinator resumes it from its store, seed %i',
    async (seed) => {
      const peers: KeeperPeerSpec[] = [
        { name: 'k1', priority: 10 },
        { name: 'k2', priority: 5 },
        { name: 'w1', priority: 0, slots: 2 },
      ];
      const h = await keeperCluster(seed, peers, noCommand, undefined, OPS);
      const run = okValue(
        await settle(h, h.jobs.get('client')!.keeper.detach(opRunSpec('sort', [3, 1, 2]), repeats(30), OPTS)),
      );
      const k1 = h.stores.get('k1')!;
      expect(await runUntil(h, () => (k1.view(run)?.done ?? 0) >= 5, 30_000)).toBe(true);
      await h.c.crash(h.peer('k1'));
      const k2 = h.stores.get('k2')!;
      expect(await runUntil(h, () => k2.get(run)?.state === 'done', 90_000)).toBe(true);
      allOnce(k2.results(run, 0, Infinity, 1000).results, 30, '[1,2,3]\n');
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS)(
    'the keeper is a worker too: it runs tasks, and all of them once the other died, seed %i',
    async (seed) => {
      const peers: KeeperPeerSpec[] = [
        { name: 'k1', priority: 10, slots: 2 },
        { name: 'w1', priority: 0, slots: 2 },
      ];
      const h = await keeperCluster(seed, peers, noCommand, undefined, OPS);
      const run = okValue(
        await settle(h, h.jobs.get('client')!.keeper.detach(opRunSpec('sum', [1, 1]), repeats(30), OPTS)),
      );
      expect(await runUntil(h, () => (h.threads.get('w1')?.tasks.length ?? 0) > 2, 20_000)).toBe(true);
      await h.c.crash(h.peer('w1'));
      const k1 = h.stores.get('k1')!;
      expect(await runUntil(h, () => k1.get(run)?.state === 'done', 60_000)).toBe(true);
      const results = k1.results(run, 0, Infinity, 1000).results;
      allOnce(results, 30, '2\n');
      expect(results.filter((r) => r.workerName === 'k1').length).toBeGreaterThan(0);
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );
});
