/**
 * Distributed tasks end to end, on the jobs machinery: the built CLI as real processes on
 * loopback (127.0.0.1, TTL 0). Two `peer worker` processes (one is elected and also keeps the
 * runs), one-shot `peer task submit` and `peer task list`, a worker killed with SIGKILL in the
 * middle of a task.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, startCli, tempDir, testPort, type Lines, loopbackFlags } from '../support/proc.js';

const running: Lines[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await p.exited;
  }
});

// Slower failure detection: a CPU stall of a loaded test machine is not a death.
const net = (port: number, dir: string) => loopbackFlags(port, dir, 'local');

function worker(port: number, dir: string, name: string, concurrency = 1): Lines {
  const p = startCli(
    [
      'worker',
      ...net(port, dir),
      '--name',
      name,
      '--concurrency',
      String(concurrency),
      '--log-format',
      'json',
    ],
    {
      PEER_KEY_FILE: '',
    },
  );
  running.push(p);
  return p;
}

/** The CLI to completion; a loaded 2-core machine can take seconds just to start node. */
const cli = (args: string[], timeoutMs = 60_000) => runCli(args, { timeoutMs });

const events = (p: Lines, kind: string) => p.json().filter((e) => e.event === kind);

/** Both workers up and agreeing on one coordinator. */
async function twoWorkers(port: number, dir: string): Promise<[Lines, Lines]> {
  const w1 = worker(port, dir, 'w1');
  const w2 = worker(port, dir, 'w2');
  const coordinatorOf = (p: Lines) => events(p, 'coordinator-changed').at(-1)?.coordinator;
  await w1.until(
    (l) => coordinatorOf(l) !== undefined && coordinatorOf(l) !== null,
    10_000,
    'w1 to follow a coordinator',
  );
  await w2.until((l) => coordinatorOf(l) === coordinatorOf(w1), 30_000, 'w2 to follow the same coordinator');
  return [w1, w2];
}

describe('tasks over UDP on loopback (CLI)', () => {
  it('two workers: a submitted task is run and its result returned; list shows it', async () => {
    const port = testPort();
    const dir = tempDir('tasks');
    await twoWorkers(port, dir);
    const r = await cli([
      'task',
      'submit',
      'sum',
      '1',
      '2',
      '3',
      '--wait',
      '--json',
      ...net(port, path.join(dir, 'client')),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { id: string; state: string; result: string; worker: string };
    expect(out).toMatchObject({ op: 'sum', args: [1, 2, 3], state: 'done', result: '6' });
    expect(['w1', 'w2']).toContain(out.worker);

    const fib = await cli(['task', 'submit', 'fibonacci', '90', '--wait', '--json', ...net(port, dir)]);
    expect(fib.code, fib.stderr).toBe(0);
    expect(JSON.parse(fib.stdout).result).toBe('2880067194370816120');

    const list = await cli(['task', 'list', '--json', ...net(port, dir)]);
    expect(list.code, list.stderr).toBe(0);
    const listed = JSON.parse(list.stdout) as {
      runs: number;
      total: number;
      tasks: Array<{ id: string; state: string; text: string }>;
    };
    expect(listed).toMatchObject({ runs: 2, total: 2 });
    expect(out.id).toMatch(/^[0-9a-f]{16}-1$/);
    expect(listed.tasks.find((t) => t.id === out.id)).toMatchObject({ op: 'sum', state: 'done', text: '6' });

    // A batch: every one of 200 tasks comes back once, spread over the workers.
    const batch = await cli(
      ['task', 'submit', 'sum', '2', '3', '--repeat', '200', '--wait', '--json', ...net(port, dir)],
      60_000,
    );
    expect(batch.code, batch.stderr).toBe(0);
    const b = JSON.parse(batch.stdout) as {
      count: number;
      done: number;
      failed: number;
      workers: Record<string, number>;
    };
    expect(b).toMatchObject({ count: 200, done: 200, failed: 0 });
    expect(Object.values(b.workers).reduce((x, y) => x + y, 0)).toBe(200);
  }, 90_000);

  it('without --wait: the command ends as soon as the task is stored, not after --timeout; the task is done without it', async () => {
    const port = testPort();
    const dir = tempDir('tasks-nowait');
    await twoWorkers(port, dir);
    // A --timeout far above what starting node takes on a loaded machine: a command that stays
    // until it runs out (a timer still armed after the answer) cannot pass.
    const timeoutMs = 60_000;
    const started = Date.now();
    const r = await cli(
      ['task', 'submit', 'sum', '4', '5', '--timeout', String(timeoutMs), ...net(port, path.join(dir, 'c'))],
      timeoutMs + 30_000,
    );
    const elapsedMs = Date.now() - started;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^task [0-9a-f]{16}-1 accepted \(sum\)$/m);
    expect(elapsedMs).toBeLessThan(timeoutMs / 3);
    // The submitter is gone; the coordinator keeps the task and records its result.
    const id = /^task (\S+) accepted/m.exec(r.stdout)![1]!;
    const deadline = Date.now() + 30_000;
    let row: { state: string; text: string } | undefined;
    while (row?.state !== 'done' && Date.now() < deadline) {
      const list = await cli(['task', 'list', '--json', ...net(port, path.join(dir, 'l'))]);
      expect(list.code, list.stderr).toBe(0);
      row = (
        JSON.parse(list.stdout) as { tasks: Array<{ id: string; state: string; text: string }> }
      ).tasks.find((t) => t.id === id);
    }
    expect(row).toMatchObject({ state: 'done', text: '9' });
  }, 120_000);

  it('bad input: one line on stderr, exit 2, nothing sent', async () => {
    const port = testPort();
    const dir = tempDir('tasks-bad');
    const cases: Array<[string[], RegExp]> = [
      [['pow', '2'], /^peer: unknown operation 'pow'; use one of: sum, fibonacci, sort, primes$/],
      [['sum', '1', 'x'], /^peer: sum: 'x' is not a number/],
      [['fibonacci', '100000'], /^peer: fibonacci: 100000 is out of range/],
      [['primes', '1', '2'], /^peer: primes: takes exactly one argument, got 2/],
      [['sum', ...Array.from({ length: 65 }, () => '1')], /^peer: sum: 65 arguments, over the limit of 64$/],
    ];
    const results = await Promise.all(
      cases.map(([args]) => cli(['task', 'submit', ...args, '--wait', ...net(port, dir)])),
    );
    for (const [i, [, expected]] of cases.entries()) {
      const r = results[i]!;
      expect(r.code).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(expected);
    }
  }, 60_000);

  it('no worker: submit fails with a clear line and exit 1 after --timeout', async () => {
    const r = await cli([
      'task',
      'submit',
      'sum',
      '1',
      '--wait',
      '--timeout',
      '800',
      ...net(testPort(), tempDir('tasks-none')),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /no coordinator answered within 800 ms: start a worker \(peer worker\).*--key-file/,
    );
  });

  it('a coordinator but no worker: submit says so, for one task and for --repeat, exit 1', async () => {
    const port = testPort();
    const dir = tempDir('tasks-noworker');
    const up = startCli(['up', ...net(port, dir), '--name', 'u1', '--log-format', 'json'], {
      PEER_KEY_FILE: '',
    });
    running.push(up);
    await up.until((l) => events(l, 'elected').length > 0, 15_000, 'u1 to be elected');
    for (const repeat of ['1', '3']) {
      const r = await cli([
        'task',
        'submit',
        'sum',
        '1',
        '--wait',
        '--timeout',
        '1500',
        '--repeat',
        repeat,
        ...net(port, path.join(dir, 'client')),
      ]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/no worker is in the group: start one with peer worker/);
    }
  });

  it('the worker running a task is killed (SIGKILL): the task completes on the other one', async () => {
    const port = testPort();
    const dir = tempDir('tasks-kill');
    const [w1, w2] = await twoWorkers(port, dir);
    // About a second of CPU: long enough to kill its worker while it runs.
    const submit = cli(
      ['task', 'submit', 'primes', '150000000', '--wait', '--json', '--timeout', '40000', ...net(port, dir)],
      60_000,
    );
    const runner = await Promise.race(
      [w1, w2].map((w) =>
        w.until((l) => events(l, 'job-started').length > 0, 40_000, 'a task to start').then(() => w),
      ),
    );
    runner.child.kill('SIGKILL');
    const survivor = runner === w1 ? w2 : w1;
    const r = await submit;
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { state: string; result: string; worker: string };
    expect(out).toMatchObject({ state: 'done', result: '8444396' });
    expect(out.worker).toBe(runner === w1 ? 'w2' : 'w1');
    expect(events(survivor, 'job-started').length).toBeGreaterThan(0);
  }, 90_000);
});
