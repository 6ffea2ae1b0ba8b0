import { afterEach, describe, expect, it } from 'vitest';
import { WorkerPool } from '../src/cli/worker-pool.js';
import type { TaskOutcome } from '../src/p2p/jobs/ops.js';

const FIXTURE = new URL('./fixtures/task-thread.mjs', import.meta.url);
const pools: WorkerPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

function pool(concurrency: number, taskTimeoutMs = 10_000, threadUrl = FIXTURE) {
  const done = new Map<string, TaskOutcome[]>();
  const p = new WorkerPool({
    concurrency,
    threadUrl,
    taskTimeoutMs,
    queueMax: 64,
    onDone: (id, o) => done.set(id, [...(done.get(id) ?? []), o]),
  });
  pools.push(p);
  const until = async (n: number, ms = 10_000) => {
    const deadline = Date.now() + ms;
    while (done.size < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return done.size >= n;
  };
  return { p, done, until };
}

describe('worker pool (threads)', () => {
  it('runs more tasks than threads, each outcome reported once', async () => {
    const { p, done, until } = pool(2);
    for (let i = 0; i < 20; i++) p.run({ id: `t${i}`, op: 'sum', args: [1, i] });
    expect(await until(20)).toBe(true);
    for (let i = 0; i < 20; i++) expect(done.get(`t${i}`)).toEqual([{ ok: true, value: String(i + 1) }]);
    expect(p.stats.completed).toBe(20);
  });

  it('a thread that exits or throws is replaced and its task reported failed; the others go on', async () => {
    const { p, done, until } = pool(2);
    p.run({ id: 'exit', op: 'sum', args: [13] });
    p.run({ id: 'throw', op: 'sum', args: [14] });
    for (let i = 0; i < 6; i++) p.run({ id: `ok${i}`, op: 'sum', args: [i] });
    expect(await until(8)).toBe(true);
    expect(done.get('exit')).toEqual([{ ok: false, error: expect.stringMatching(/exited with code 3/) }]);
    expect(done.get('throw')).toEqual([{ ok: false, error: expect.stringMatching(/crashed \(boom\)/) }]);
    for (let i = 0; i < 6; i++) expect(done.get(`ok${i}`)).toEqual([{ ok: true, value: String(i) }]);
    expect(p.stats.crashed).toBe(2);
    expect(p.stats.replaced).toBe(2);
    // The replacements work.
    p.run({ id: 'after', op: 'sum', args: [40, 2] });
    expect(await until(9)).toBe(true);
    expect(done.get('after')).toEqual([{ ok: true, value: '42' }]);
  });

  it('a task that hangs is stopped after the timeout and its thread replaced', async () => {
    const { p, done, until } = pool(1, 300);
    p.run({ id: 'hang', op: 'sum', args: [15] });
    p.run({ id: 'next', op: 'sum', args: [1, 2] });
    expect(await until(2)).toBe(true);
    expect(done.get('hang')).toEqual([{ ok: false, error: expect.stringMatching(/ran over 300 ms/) }]);
    expect(done.get('next')).toEqual([{ ok: true, value: '3' }]);
    expect(p.stats.timedOut).toBe(1);
  });

  it("a task's time runs from its thread's start, not from a slow start of the thread", async () => {
    const { p, done, until } = pool(
      1,
      300,
      new URL('./fixtures/task-thread-slow-start.mjs', import.meta.url),
    );
    p.run({ id: 'first', op: 'sum', args: [1, 2] });
    expect(await until(1)).toBe(true);
    expect(done.get('first')).toEqual([{ ok: true, value: '3' }]);
    p.run({ id: 'hang', op: 'sum', args: [15] });
    expect(await until(2)).toBe(true);
    expect(done.get('hang')).toEqual([{ ok: false, error: expect.stringMatching(/ran over 300 ms/) }]);
    expect(p.stats.timedOut).toBe(1);
  });

  it('cancel() forgets a queued task and stops a running one; neither is reported, the next runs', async () => {
    const { p, done, until } = pool(1);
    p.run({ id: 'hang', op: 'sum', args: [15] });
    p.run({ id: 'queued', op: 'sum', args: [1] });
    p.run({ id: 'next', op: 'sum', args: [2, 3] });
    expect(p.cancel('queued')).toBe(true);
    expect(p.cancel('hang')).toBe(true);
    expect(p.cancel('hang')).toBe(false);
    expect(await until(1)).toBe(true);
    expect([...done.keys()]).toEqual(['next']);
    expect(done.get('next')).toEqual([{ ok: true, value: '5' }]);
    expect(p.stats).toMatchObject({ cancelled: 1, crashed: 0, replaced: 1 });
  });

  it('refuses a concurrency out of range', () => {
    expect(() => new WorkerPool({ concurrency: 0, queueMax: 1, onDone: () => {} })).toThrow(/from 1 to 16/);
    expect(() => new WorkerPool({ concurrency: 17, queueMax: 1, onDone: () => {} })).toThrow(/from 1 to 16/);
  });
});
