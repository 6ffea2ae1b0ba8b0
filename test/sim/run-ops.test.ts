/**
 * Built-in ops (`kind: 'op'`, what `peer task` runs) on the jobs machinery, in the simulation:
 * workers without --allow-exec, in an open group, run them in their op threads (the op executor
 * over threads in virtual time); the result is the job's stdout (exit 0) or its error on stderr
 * (exit 1); a cancelled or timed-out op has its thread stopped. No shell command ever starts.
 */
import { describe, expect, it } from 'vitest';
import type { JobInput, RunSpec } from '../../src/p2p/jobs/index.js';
import { LOSSY, execSpec, jobsCluster, runUntil, startRun, type JobsHarness } from '../support/jobs.js';

const SEEDS = Array.from({ length: 10 }, (_, i) => i + 1);
const THREADS = 2;

const opSpec = (words: string[], over: Partial<Omit<RunSpec, 'run'>> = {}) =>
  execSpec({ kind: 'op', words, ...over });

/** `n` jobs without input, as `peer task submit --repeat n` makes them. */
const repeats = (n: number): JobInput[] =>
  Array.from({ length: n }, (_, i) => ({ job: i + 1, seq: i + 1, input: null, pin: null }));

/** Two workers of 2 slots that do not run commands, in an open group. */
function opsCluster(seed: number, opMs?: (op: string) => number): Promise<JobsHarness> {
  const workers = ['w1', 'w2'].map((name) => ({ name, slots: 2, allowExec: false, keyed: false }));
  return jobsCluster(seed, workers, () => ({ durationMs: 1, exit: 0, ignoresTerm: false }), LOSSY, {
    keyed: false,
    opThreads: THREADS,
    opMs,
  });
}

const text = (b: Uint8Array) => Buffer.from(b).toString();
const commandsStarted = (h: JobsHarness) =>
  [...h.executors.values()].flat().reduce((n, e) => n + e.started.length, 0);

describe('run: built-in ops (simulation)', () => {
  it.each(SEEDS)(
    'an open group, workers without --allow-exec: 40 sums, each recorded once with its value, seed %i',
    async (seed) => {
      const h = await opsCluster(seed);
      const t = startRun(h, repeats(40), {}, opSpec(['sum', '1', '2', '3.5']));
      expect(await runUntil(h, t.over, 60_000)).toBe(true);
      expect(t.events.at(-1)).toMatchObject({ kind: 'run-finished', counts: { done: 40, failed: 0 } });
      expect([...t.sink.perJob().values()]).toEqual(Array(40).fill(1));
      for (const r of t.sink.records) {
        expect(r).toMatchObject({ exit: 0, signal: 0, started: true, cancelled: false, timedOut: false });
        expect(text(r.stdout)).toBe('6.5\n');
        expect(text(r.stderr)).toBe('');
      }
      // Both workers took ops, each within its threads; no shell command started anywhere.
      for (const w of ['w1', 'w2']) {
        expect(h.threads.get(w)!.tasks.length).toBeGreaterThan(0);
        expect(h.threads.get(w)!.maxBusy).toBeLessThanOrEqual(THREADS);
      }
      expect(commandsStarted(h)).toBe(0);
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );

  it('an op that fails says why on stderr and exits 1; arguments that are not numbers too', async () => {
    const h = await opsCluster(3);
    const big = startRun(h, repeats(1), {}, opSpec(['fibonacci', '5000']));
    const word = startRun(h, repeats(1), {}, opSpec(['sum', '1', 'x']));
    const unknown = startRun(h, repeats(1), {}, opSpec(['rm', '-rf']));
    expect(await runUntil(h, () => big.over() && word.over() && unknown.over(), 20_000)).toBe(true);
    const only = (t: typeof big) => {
      expect(t.sink.records).toHaveLength(1);
      expect(t.sink.records[0]).toMatchObject({ exit: 1, started: true });
      expect(text(t.sink.records[0]!.stdout)).toBe('');
      return text(t.sink.records[0]!.stderr);
    };
    expect(only(big)).toMatch(/^fibonacci: 5000 is out of range; usage: fibonacci N .*\n$/);
    expect(only(word)).toBe("sum: 'x' is not a number; usage: sum N... (1 to 64 finite numbers)\n");
    expect(only(unknown)).toMatch(/^unknown operation 'rm'; use one of: sum, fibonacci, sort, primes\n$/);
    expect(big.events.at(-1)).toMatchObject({ kind: 'run-finished', counts: { failed: 1 } });
    expect(commandsStarted(h)).toBe(0);
  });

  it('cancel stops the threads of running ops and drops the queued ones', async () => {
    const h = await opsCluster(5, () => 60_000);
    const t = startRun(h, repeats(12), {}, opSpec(['primes', '1000']));
    const running = () => [...h.threads.values()].reduce((n, x) => n + x.tasks.length, 0);
    // Two workers' windows (6 jobs each), two running on each.
    expect(await runUntil(h, () => running() === 4, 5_000)).toBe(true);
    t.handle.cancel();
    expect(await runUntil(h, t.over, 20_000)).toBe(true);
    expect(t.events.at(-1)).toMatchObject({ kind: 'run-cancelled' });
    const cancelled = [...h.threads.values()].reduce((n, x) => n + x.cancelled.length, 0);
    expect(cancelled).toBe(running());
    for (const x of h.threads.values()) expect(x.tasks.length).toBe(x.cancelled.length);
    expect(t.sink.records.every((r) => r.cancelled)).toBe(true);
  });

  it('an op over its timeout is stopped and recorded timed out', async () => {
    const h = await opsCluster(7, (op) => (op === 'primes' ? 60_000 : 5));
    const t = startRun(h, repeats(2), {}, opSpec(['primes', '1000'], { timeoutMs: 500 }));
    expect(await runUntil(h, t.over, 20_000)).toBe(true);
    expect(t.sink.records).toHaveLength(2);
    for (const r of t.sink.records) expect(r).toMatchObject({ timedOut: true, exit: -1 });
    expect([...h.threads.values()].reduce((n, x) => n + x.cancelled.length, 0)).toBe(2);
  });
});
