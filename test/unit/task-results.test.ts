/**
 * How `peer task submit --wait` reads a run's results from the keeper (collectResults in
 * src/cli/tasks.ts), against a keeper in memory that records jobs in any order while it is read:
 * every result is taken once, a job recorded after the reader passed it is still read, a long
 * wait does not make every ask read the whole run again, and a cancelled run or the deadline end
 * the wait.
 */
import { describe, expect, it } from 'vitest';
import { collectResults, TaskFailure } from '../../src/cli/tasks.js';
import type { JobResult, KeeperApi, RunPage, RunState } from '../../src/p2p/jobs/index.js';

const RUN = 'a'.repeat(16);

function result(job: number): JobResult {
  return {
    run: RUN,
    job,
    seq: job,
    attempt: 1,
    fence: job,
    worker: 'b'.repeat(16),
    workerName: 'w1',
    sendBytes: 0,
    receiveBytes: 0,
    started: true,
    exit: 0,
    signal: 0,
    timedOut: false,
    cancelled: false,
    startedAtWallMs: 0,
    runtimeUs: 1000,
    stdout: Buffer.from(`${job}\n`),
    stderr: new Uint8Array(0),
    truncated: false,
    error: null,
  };
}

/**
 * A keeper of one run of `jobs` jobs that records the next of `order` at every ask, or with
 * `perMs` the next `per` of them every `perMs` ms (as workers record results over time).
 */
function keeper(jobs: number, order: number[], pageSize: number, every?: { per: number; perMs: number }) {
  const recorded = new Map<number, JobResult>();
  const k = { asks: 0, state: 'open' as RunState };
  const t0 = Date.now();
  const api: Pick<KeeperApi, 'results'> = {
    results: (run, afterJob) => {
      k.asks++;
      const due = every ? Math.floor((Date.now() - t0) / every.perMs) * every.per - recorded.size : 1;
      for (const j of order.splice(0, Math.max(0, due))) recorded.set(j, result(j));
      const after = [...recorded.keys()].filter((j) => j > afterJob).sort((a, b) => a - b);
      const page = after.slice(0, pageSize).map((j) => recorded.get(j)!);
      const value: RunPage = {
        view: {
          run,
          kind: 'op',
          words: ['sum', '1'],
          submitterName: 'c',
          createdAtWallMs: 0,
          state: k.state,
          jobs,
          done: recorded.size,
          failed: 0,
        },
        results: page,
        inputs: page.map(() => null),
        next: after.length > pageSize ? page.at(-1)!.job : null,
      };
      return Promise.resolve({ ok: true, value });
    },
  };
  return { k, api: api as KeeperApi };
}

describe('reading a run’s results (peer task submit --wait)', () => {
  it('takes every result once, jobs recorded in any order, one passed long ago included', async () => {
    const jobs = 200;
    // Jobs 2 to 200 are recorded in order, a few out of it, and job 1 last, long after the reader
    // went past it.
    const order = [...Array.from({ length: jobs - 1 }, (_, i) => i + 2), 1];
    [order[10], order[30]] = [order[30]!, order[10]!];
    const { k, api } = keeper(jobs, order, 8, { per: 5, perMs: 20 });
    const taken: number[] = [];
    const ended = await collectResults(api, RUN, jobs, Date.now() + 30_000, (r) => void taken.push(r.job));
    expect(ended).toBe('done');
    expect(taken.sort((a, b) => a - b)).toEqual(Array.from({ length: jobs }, (_, i) => i + 1));
    // Going forward from the highest job read: about 40 asks (reading again from job 1 at every
    // ask, while job 1 waits, takes over 200).
    expect(k.asks).toBeLessThanOrEqual(100);
  });

  it('a cancelled run ends the wait with a TaskFailure that says so', async () => {
    const { k, api } = keeper(3, [1], 10);
    k.state = 'cancelled';
    await expect(collectResults(api, RUN, 3, Date.now() + 5_000, () => {})).rejects.toThrow(
      new TaskFailure(`run ${RUN} was cancelled; 1 of 3 tasks had a result`),
    );
  });

  it('ends at the deadline when results stop coming', async () => {
    const { api } = keeper(3, [2], 10);
    const taken: number[] = [];
    const ended = await collectResults(api, RUN, 3, Date.now() + 300, (r) => void taken.push(r.job));
    expect(ended).toBe('timeout');
    expect(taken).toEqual([2]);
  });
});
