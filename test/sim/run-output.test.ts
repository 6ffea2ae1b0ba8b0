/**
 * Output in the simulation (src/p2p/jobs): grouped output (the default) comes whole with the
 * result; `--line-buffer` output comes as it is written, every byte once and in order per job,
 * before the job's result, under loss, duplication and delay.
 */
import { describe, expect, it } from 'vitest';
import { LOSSY, execSpec, jobsCluster, lines, runUntil, startRun } from '../support/jobs.js';

const SEEDS = Array.from({ length: 30 }, (_, i) => i + 1);
const workers = ['w1', 'w2'].map((name) => ({ name, slots: 2 }));

describe('run: output (simulation)', () => {
  it.each(SEEDS)('grouped output comes whole with each result, seed %i', async (seed) => {
    const h = await jobsCluster(
      seed,
      workers,
      (req) => ({ durationMs: 20, exit: 0, ignoresTerm: false, stdout: `out ${req.job}\n` }),
      LOSSY,
    );
    const t = startRun(h, lines(40));
    expect(await runUntil(h, t.over, 30_000)).toBe(true);
    for (const r of t.sink.records) expect(Buffer.from(r.stdout).toString()).toBe(`out ${r.job}\n`);
    expect(t.sink.outputs).toEqual([]);
  });

  it.each(SEEDS)('line output comes as written, once, in order, before the result, seed %i', async (seed) => {
    const pieces = (job: number) => [`a${job} `, `b${job}\n`, `c${job}\n`];
    const h = await jobsCluster(
      seed,
      workers,
      (req) => ({ durationMs: 60, exit: 0, ignoresTerm: false, pieces: pieces(req.job) }),
      LOSSY,
    );
    const order: string[] = [];
    const t = startRun(h, lines(40), {}, execSpec({ output: 'line' }));
    const output = t.sink.output.bind(t.sink);
    t.sink.output = (job, attempt, stream, chunk) => {
      order.push(`out ${job}`);
      output(job, attempt, stream, chunk);
    };
    const record = t.sink.record.bind(t.sink);
    t.sink.record = (r) => {
      order.push(`rec ${r.job}`);
      record(r);
    };
    expect(await runUntil(h, t.over, 30_000)).toBe(true);
    for (let job = 1; job <= 40; job++) {
      const text = t.sink.outputs
        .filter((o) => o.job === job)
        .map((o) => o.text)
        .join('');
      expect(text).toBe(pieces(job).join(''));
      expect(order.lastIndexOf(`out ${job}`)).toBeLessThan(order.indexOf(`rec ${job}`));
    }
    for (const r of t.sink.records) expect(r.stdout.length).toBe(0);
  });
});
