import type { ChildLines } from '../../cli/child.js';
import { seconds, type DemoContext, type DemoScene } from '../context.js';

const NAMES = ['wes', 'wyn'];
/** About a second of one core: long enough to kill its worker while it runs. */
const LONG_PRIMES_N = 150_000_000;
/** π(150,000,000), checked against the published table of prime counts. */
const LONG_PRIMES_COUNT = '8444396';
/** Node start-up of two workers and the election, on a busy machine. */
const START_MS = 30_000;
/** The long task: its run, the failure detection, and its run again on the survivor. */
const LONG_TASK_MS = 60_000;

const SMALL_TASKS: Array<{ op: string; args: string[] }> = [
  { op: 'sum', args: ['1', '2', '3', '4.5'] },
  { op: 'fibonacci', args: ['90'] },
  { op: 'sort', args: ['5', '-2', '9', '1', '3'] },
  { op: 'primes', args: ['1000000'] },
];

function fail(what: string): never {
  throw new Error(`task scene: ${what}`);
}

interface Submitted {
  id: string;
  state: string;
  result?: string;
  error?: string;
  worker?: string | null;
  durationMs?: number | null;
}

const coordinatorOf = (p: ChildLines) =>
  p
    .json()
    .filter((e) => e.event === 'coordinator-changed')
    .at(-1)?.coordinator as string | null | undefined;
const started = (p: ChildLines) => p.json().filter((e) => e.event === 'job-started');

export const tasksScene: DemoScene = {
  title: 'Distributed tasks',
  about:
    'Two worker processes run submitted tasks in worker threads; the elected one also keeps them. A worker is killed in the middle of a task and the other one finishes it.',
  async run(ctx: DemoContext) {
    ctx.step(`starting ${NAMES.join(' and ')}: peer worker --concurrency 1 --log-format json`);
    const t0 = Date.now();
    const workers = new Map<string, ChildLines>(
      NAMES.map((n) => [
        n,
        ctx.start(['worker', '--name', n, '--concurrency', '1', '--log-format', 'json', ...ctx.network]),
      ]),
    );
    const [a, b] = NAMES.map((n) => workers.get(n)!) as [ChildLines, ChildLines];
    await a.until((l) => !!coordinatorOf(l), START_MS, `${NAMES[0]} to follow a coordinator`);
    await b.until((l) => coordinatorOf(l) === coordinatorOf(a), START_MS, 'both to follow one coordinator');
    const idOf = (p: ChildLines) => p.json().find((e) => e.event === 'up')?.id as string | undefined;
    const nameOfId = (id: string | null | undefined) => NAMES.find((n) => idOf(workers.get(n)!) === id);
    const coordinator = nameOfId(coordinatorOf(a)) ?? fail('the coordinator is not one of the workers');
    ctx.ok(
      `both up ${seconds(Date.now() - t0)} after launch; the bully election made ${coordinator} coordinator (it keeps the tasks and runs them too)`,
    );

    ctx.step(`peer task submit OP ARG... --wait --json, ${SMALL_TASKS.length} tasks at once`);
    const small = await Promise.all(
      SMALL_TASKS.map((t) =>
        ctx.run(['task', 'submit', t.op, '--wait', '--json', ...ctx.network, '--', ...t.args], 30_000),
      ),
    );
    for (const [i, r] of small.entries()) {
      const t = SMALL_TASKS[i]!;
      if (r.code !== 0) fail(`${t.op} exited with ${r.code}: ${r.lines.stderr.join('').trim()}`);
      const out = JSON.parse(r.lines.lines.join('\n')) as Submitted;
      ctx.ok(
        `${t.op} ${t.args.join(' ')} = ${out.result} (worker ${out.worker ?? '?'}, ${out.durationMs ?? '?'} ms, task ${out.id.slice(0, 8)})`,
      );
    }

    ctx.step(`peer task submit primes ${LONG_PRIMES_N} --wait: about a second of CPU on one worker`);
    const before = new Map(NAMES.map((n) => [n, started(workers.get(n)!).length]));
    const long = ctx.run(
      [
        'task',
        'submit',
        'primes',
        String(LONG_PRIMES_N),
        '--wait',
        '--json',
        '--timeout',
        String(LONG_TASK_MS),
        ...ctx.network,
      ],
      LONG_TASK_MS + 10_000,
    );
    const runner = await Promise.race(
      NAMES.map((n) =>
        workers
          .get(n)!
          .until((l) => started(l).length > before.get(n)!, LONG_TASK_MS, 'the long task to start')
          .then(() => n),
      ),
    );
    const survivor = NAMES.find((n) => n !== runner)!;
    ctx.step(
      `kill -9 ${runner}, which is running it${runner === coordinator ? ` (and coordinates: ${survivor} must win an election too)` : ''}`,
    );
    const killedAt = Date.now();
    workers.get(runner)!.child.kill('SIGKILL');
    await workers.get(runner)!.exited;
    const r = await long;
    if (r.code !== 0) fail(`the long task exited with ${r.code}: ${r.lines.stderr.join('').trim()}`);
    const out = JSON.parse(r.lines.lines.join('\n')) as Submitted;
    if (out.result !== LONG_PRIMES_COUNT) fail(`primes ${LONG_PRIMES_N} gave ${out.result}`);
    if (out.worker !== survivor) fail(`the long task was finished by ${out.worker}, not ${survivor}`);
    ctx.ok(
      `${survivor} finished it ${seconds(Date.now() - killedAt)} after the kill: ${out.result} primes below ${LONG_PRIMES_N} (task ${out.id.slice(0, 8)}, run ${out.durationMs ?? '?'} ms)`,
    );
    ctx.note(
      `${coordinator === runner ? `${survivor} was elected and resumed the run from its own store` : `${coordinator} saw ${runner} die and placed its job again, attempt 2`}; the result is recorded once per job`,
    );

    const list = await ctx.run(['task', 'list', '--json', ...ctx.network]);
    if (list.code !== 0)
      fail(`peer task list exited with ${list.code}: ${list.lines.stderr.join('').trim()}`);
    const listed = JSON.parse(list.lines.lines.join('\n')) as {
      total: number;
      tasks: Array<{ id: string; op: string; state: string; worker: string | null }>;
    };
    const ids = new Set(listed.tasks.map((t) => t.id));
    if (ids.size !== listed.tasks.length) fail('peer task list shows a task twice');
    if (listed.tasks.find((t) => t.id === out.id)?.state !== 'done')
      fail('peer task list does not show the long task done');
    ctx.ok(
      `peer task list (from the coordinator, ${survivor}): ${listed.total} tasks, ${listed.tasks.map((t) => `${t.op} ${t.state} by ${t.worker ?? '-'}`).join(', ')}`,
    );

    const last = workers.get(survivor)!;
    last.child.kill('SIGTERM');
    const code = await last.exited;
    if (code !== 0) fail(`${survivor} exited with ${code}`);
  },
};
