/**
 * Distributed-task targets (issue 5), on the jobs machinery (a task is a job of a detached run
 * of a built-in op: docs/tasks.md), with the real CLI in network namespaces on a bridge
 * (test/support/netns.ts), one process per namespace, lan profile. Nothing leaves the namespaces:
 * every process binds a 10.77.x address that exists only inside its namespace.
 *
 *   host 0: `peer up --priority 10` (wins the election: keeps the runs, runs no job)
 *   host 1: `peer worker --concurrency 1 --slots 1` (w1)     host 2: the same (w2)
 *   host 3: the submitter, `peer task submit OP ARGS --repeat N --wait --json`
 *
 *  a. throughput: N `sum 2 3` tasks (light: the cost is the protocol), then M `primes` tasks
 *     (CPU-heavy), as one run each, with w1 alone, then with w1 and w2.
 *  b. 10,000 `sum 2 3` tasks with both workers; when the workers have ended half of them, w2 gets
 *     kill -9. Then, in the coordinator's SQLite (read directly, after it stopped), every job of
 *     every run has exactly one result, with the right value, and `peer task list --json --local`
 *     counts every task.
 *
 * Parameters (environment): PEER_BENCH_TASKS_SUM, PEER_BENCH_TASKS_PRIMES, PEER_BENCH_TASKS_KILL,
 * PEER_BENCH_TASKS_ROUNDS.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChildLines } from '../src/cli/child.js';
import { runTask } from '../src/p2p/jobs/ops.js';
import { RUN_LIST_MAX } from '../src/p2p/jobs/limits.js';
import { PeerStore } from '../src/storage/store.js';
import { RunsStore } from '../src/storage/runs.js';
import { NetnsLan, netnsCapability } from '../test/support/netns.js';
import {
  envInt,
  onCleanup,
  percentile,
  progress,
  waitFor,
  type BenchModule,
  type Section,
  type Table,
} from './lib.js';
import { BIN } from '../test/support/proc.js';

const PORT = 47791;
const PROFILE = 'lan';

const SUM_TASKS = envInt('PEER_BENCH_TASKS_SUM', 3000);
const ROUNDS = envInt('PEER_BENCH_TASKS_ROUNDS', 3);
const PRIMES_TASKS = envInt('PEER_BENCH_TASKS_PRIMES', 150);
const KILL_TASKS = envInt('PEER_BENCH_TASKS_KILL', 10_000);
/** Each `primes` task counts the primes below this: about 30-60 ms of one core here. */
const PRIMES_N = 5_000_000;
/** Tasks run once before measuring, so threads and JIT are warm. */
const WARMUP_TASKS = 100;
/** Node start-up of 3 processes on a loaded 2-core machine, and the election. */
const START_TIMEOUT_MS = 60_000;
/** One batch from submission to its last result. */
const BATCH_TIMEOUT_MS = 180_000;
/** USER_HZ of /proc/<pid>/stat times: 100 on Linux. */
const CLOCK_TICKS_PER_S = 100;
/** The keeper sees a new worker's advert in its next heartbeats (200 ms apart). */
const TAGS_SETTLE_MS = 1000;
/** Output bytes per page read from the coordinator's store in the check. */
const CHECK_PAGE_BYTES = 4 * 1024 * 1024;
const CHECK_PAGE_RESULTS = 1000;

export const bench: BenchModule = { name: 'tasks', budgetMs: 420_000, run };

type Ev = Record<string, unknown>;

/** One long-running `peer` process in host i of the LAN, logging JSON lines. */
class Proc {
  readonly lines: ChildLines;
  constructor(
    lan: NetnsLan,
    i: number,
    dataDir: string,
    readonly name: string,
    args: string[],
  ) {
    const all = [BIN, ...args, '--name', name, '--interface', lan.host(i).address];
    all.push('--port', String(PORT), '--data-dir', dataDir, '--profile', PROFILE, '--log-format', 'json');
    // `ip netns exec` execs node, so the child's pid is the peer's pid (for kill -9).
    this.lines = new ChildLines(lan.spawn(i, process.execPath, all, { NO_COLOR: '1', PEER_KEY_FILE: '' }));
  }
  events(kind: string, from = 0): Ev[] {
    return this.lines
      .json()
      .slice(from)
      .filter((e) => e.event === kind);
  }
  mark(): number {
    return this.lines.json().length;
  }
  id(): string | undefined {
    return this.events('up')[0]?.id as string | undefined;
  }
  following(): unknown {
    return this.events('coordinator-changed').at(-1)?.coordinator;
  }
  async stop(): Promise<void> {
    this.lines.child.kill('SIGTERM');
    await this.lines.exited;
  }
}

interface Batch {
  label: string;
  op: 'sum' | 'primes';
  args: number[];
  run: string;
  count: number;
  workers: number;
  done: number;
  failed: number;
  elapsedMs: number;
  /** job-started lines of the workers during the batch: executions. */
  executions: number;
  byWorker: Record<string, number>;
  killAt?: number;
  /** CPU seconds the worker processes (threads included) used during the batch. */
  workerCpuS: number;
  /** Wall time over which workerCpuS was taken. */
  cpuWindowMs: number;
}

/** User + system CPU seconds of a process so far (from /proc; 0 once it is gone). */
function cpuSeconds(pid: number | undefined): number {
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS_PER_S;
  } catch {
    return 0;
  }
}

/** `peer task submit OP ARGS --repeat count --wait --json` from host 3; w2 killed at half with `kill`. */
async function batch(
  lan: NetnsLan,
  dataDir: string,
  workers: Proc[],
  label: string,
  op: 'sum' | 'primes',
  count: number,
  kill?: Proc,
): Promise<Batch> {
  const args = op === 'sum' ? [2, 3] : [PRIMES_N];
  const marks = workers.map((w) => w.mark());
  const argv = [
    BIN,
    'task',
    'submit',
    op,
    ...args.map(String),
    '--repeat',
    String(count),
    '--wait',
    '--json',
  ];
  argv.push(
    '--timeout',
    String(BATCH_TIMEOUT_MS),
    '--interface',
    lan.host(3).address,
    '--port',
    String(PORT),
  );
  argv.push(
    '--profile',
    PROFILE,
    '--data-dir',
    dataDir,
    '--name',
    `bench-submit-${label.replace(/\W+/g, '-')}`,
  );
  const cpu0 = workers.map((w) => cpuSeconds(w.lines.child.pid));
  const cpuFrom = Date.now();
  const p = new ChildLines(lan.spawn(3, process.execPath, argv, { NO_COLOR: '1', PEER_KEY_FILE: '' }));
  const ended = () => workers.reduce((n, w, i) => n + w.events('job-ended', marks[i]).length, 0);
  let killAt: number | undefined;
  if (kill) {
    await waitFor(
      () => ended() >= count / 2 || p.child.exitCode !== null,
      BATCH_TIMEOUT_MS,
      'half the results',
    );
    killAt = Date.now();
    kill.lines.child.kill('SIGKILL');
    progress(`tasks: ${label}: kill -9 ${kill.name} at ${ended()} jobs ended`);
  }
  const code = await p.exited;
  if (code !== 0) throw new Error(`peer task submit (${label}) exited ${code}: ${p.stderr.join('').trim()}`);
  const r = JSON.parse(p.lines.join('\n')) as {
    run: string;
    done: number;
    failed: number;
    elapsedMs: number;
    workers: Record<string, number>;
  };
  const b: Batch = {
    label,
    op,
    args,
    run: r.run,
    count,
    workers: workers.length,
    done: r.done,
    failed: r.failed,
    elapsedMs: r.elapsedMs,
    executions: workers.reduce((n, w, i) => n + w.events('job-started', marks[i]).length, 0),
    // A killed worker reads 0 at the end: its share is left out rather than negative. The window
    // includes the submitter's start-up, when the workers idle.
    workerCpuS: workers.reduce((n, w, i) => n + Math.max(0, cpuSeconds(w.lines.child.pid) - cpu0[i]!), 0),
    cpuWindowMs: Date.now() - cpuFrom,
    byWorker: r.workers,
    killAt,
  };
  progress(
    `tasks: ${label}: ${b.done}/${count} in ${b.elapsedMs} ms (${rate(b)}/s), by worker ${JSON.stringify(b.byWorker)}, ${b.executions} executions`,
  );
  return b;
}

const rate = (b: Batch) => Math.round(((b.done + b.failed) * 1000) / b.elapsedMs);

interface Check {
  tasks: number;
  /** Jobs with exactly one result in the coordinator's store, with the right value. */
  recordedRight: number;
  recordedWrong: number;
  missing: number;
  /** Runs the store holds that were not submitted here. */
  strayRuns: number;
  listTotal: number;
}

/** Every job of every batch against the coordinator's SQLite file, after it stopped. */
function check(batches: Batch[], coord: Proc, dataDir: string): Check {
  const c: Check = { tasks: 0, recordedRight: 0, recordedWrong: 0, missing: 0, strayRuns: 0, listTotal: -1 };
  const store = PeerStore.open(dataDir, coord.name);
  try {
    const runs = RunsStore.of(store);
    const ours = new Set(batches.map((b) => b.run));
    c.strayRuns = runs.list(0, runs.count()).filter((v) => !ours.has(v.run)).length;
    for (const b of batches) {
      const r = runTask(b.op, b.args);
      if (!r.ok) throw new Error(`expected value of ${b.op}: ${r.error}`);
      const want = `${r.value}\n`;
      c.tasks += b.count;
      const seen = new Set<number>();
      let after = 0;
      for (;;) {
        const page = runs.results(b.run, after, CHECK_PAGE_BYTES, CHECK_PAGE_RESULTS);
        for (const res of page.results) {
          const right = !seen.has(res.job) && res.exit === 0 && Buffer.from(res.stdout).toString() === want;
          seen.add(res.job);
          if (right) c.recordedRight++;
          else c.recordedWrong++;
          after = res.job;
        }
        if (!page.more) break;
      }
      c.missing += b.count - seen.size;
    }
  } finally {
    store.close();
  }
  // The same store through the CLI, as a user would read it (no network: --local).
  const listed = JSON.parse(
    execFileSync(
      process.execPath,
      [
        BIN,
        'task',
        'list',
        '--json',
        '--local',
        '--name',
        coord.name,
        '--data-dir',
        dataDir,
        '--limit',
        String(RUN_LIST_MAX),
      ],
      { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } },
    ),
  ) as { total: number };
  c.listTotal = listed.total;
  return c;
}

async function run(): Promise<Section> {
  const cap = netnsCapability();
  if (!cap.ok) throw new Error(`tasks bench needs network namespaces: ${cap.why}`);
  const started = Date.now();
  const loadBefore = os.loadavg();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-bench-tasks-'));
  onCleanup(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const lan = new NetnsLan(4).up();
  onCleanup(() => lan.down());

  progress('tasks: starting the coordinator (peer up --priority 10) and worker w1');
  const coord = new Proc(lan, 0, dataDir, 'coord', ['up', '--priority', '10']);
  const worker = ['worker', '--concurrency', '1', '--slots', '1'];
  const w1 = new Proc(lan, 1, dataDir, 'w1', worker);
  await waitFor(() => !!coord.id() && w1.following() === coord.id(), START_TIMEOUT_MS, 'w1 to follow coord');
  await new Promise((r) => setTimeout(r, TAGS_SETTLE_MS));

  const batches: Batch[] = [];
  const measured: Batch[] = [];
  batches.push(await batch(lan, dataDir, [w1], 'warm-up', 'sum', WARMUP_TASKS));
  // The machine is shared: 1-worker and 2-worker batches alternate, ROUNDS times, so a burst of
  // other load does not land on one configuration only; the table gives the median.
  let w2: Proc | null = null;
  for (let r = 1; r <= ROUNDS; r++) {
    measured.push(await batch(lan, dataDir, [w1], 'sum, 1 worker', 'sum', SUM_TASKS));
    measured.push(await batch(lan, dataDir, [w1], 'primes, 1 worker', 'primes', PRIMES_TASKS));
    progress(`tasks: round ${r}/${ROUNDS}: starting worker w2`);
    const w = new Proc(lan, 2, dataDir, 'w2', worker);
    w2 = w;
    await waitFor(() => w.following() === coord.id(), START_TIMEOUT_MS, 'w2 to follow coord');
    await new Promise((res) => setTimeout(res, TAGS_SETTLE_MS));
    batches.push(await batch(lan, dataDir, [w1, w], 'warm-up', 'sum', WARMUP_TASKS));
    measured.push(await batch(lan, dataDir, [w1, w], 'sum, 2 workers', 'sum', SUM_TASKS));
    measured.push(await batch(lan, dataDir, [w1, w], 'primes, 2 workers', 'primes', PRIMES_TASKS));
    if (r === ROUNDS) break;
    // A graceful stop: its leave reaches the keeper, which then places jobs on w1 alone.
    const from = coord.mark();
    await w.stop();
    await waitFor(
      () => coord.events('left', from).some((e) => e.name === 'w2'),
      START_TIMEOUT_MS,
      'coord to see w2 leave',
    );
  }
  if (!w2) throw new Error('no round ran');
  const baseline = await batch(lan, dataDir, [w1, w2], 'no kill', 'sum', KILL_TASKS);
  const killed = await batch(lan, dataDir, [w1, w2], 'kill', 'sum', KILL_TASKS, w2);
  batches.push(...measured, baseline, killed);

  await Promise.all([w1.stop(), coord.stop()]);
  const checked = check(batches, coord, dataDir);
  lan.down();
  return render(measured, baseline, killed, checked, {
    minutes: ((Date.now() - started) / 60_000).toFixed(1),
    loadBefore,
    loadAfter: os.loadavg(),
  });
}

function render(
  measured: Batch[],
  base: Batch,
  k: Batch,
  c: Check,
  meta: { minutes: string; loadBefore: number[]; loadAfter: number[] },
): Section {
  /** CPU the worker processes got, in cores, over the batch. */
  const cores = (b: Batch) => ((b.workerCpuS * 1000) / b.cpuWindowMs).toFixed(2);
  const exact = c.recordedRight === c.tasks && c.recordedWrong === 0 && c.missing === 0 && c.strayRuns === 0;
  const byW = (w: Record<string, number>) =>
    Object.entries(w)
      .map(([name, n]) => `${name} ${n}`)
      .join(', ');
  const of = (label: string) => measured.filter((b) => b.label === label);
  /** Median tasks/s of a configuration over the rounds. */
  const med = (label: string) => percentile(of(label).map(rate), 50);
  const speedup = (op: string) => (med(`${op}, 2 workers`) / med(`${op}, 1 worker`)).toFixed(2);
  const extraS = ((k.elapsedMs - base.elapsedMs) / 1000).toFixed(2);
  const summary = [
    `- ${KILL_TASKS.toLocaleString('en')} tasks with a worker killed midway: **${k.done === k.count && exact ? 'every result recorded exactly once' : 'NOT every result recorded exactly once'}**. ${k.done} of ${k.count} results came back (${rate(k)}/s); w2 got kill -9 when half the jobs had ended; the run took ${extraS} s more than the same run without a kill just before (${(base.elapsedMs / 1000).toFixed(2)} s). The workers' logs show ${k.executions} executions for ${k.count} tasks (a job w2 had started runs again on w1: at least once; lines w2 wrote just before the kill can die with it). In the coordinator's store every one of the ${c.tasks} tasks of this bench has exactly one result, with the right value.`,
    `- Throughput, one run per batch, one worker thread and slot per worker process: medians over ${ROUNDS} alternating rounds: \`sum\` **${med('sum, 1 worker')}/s with 1 worker, ${med('sum, 2 workers')}/s with 2** (×${speedup('sum')}); \`primes ${PRIMES_N}\` (CPU-heavy) **${med('primes, 1 worker')}/s with 1 worker, ${med('primes, 2 workers')}/s with 2** (×${speedup('primes')}).`,
  ].join('\n');
  const tables: Table[] = [
    {
      caption: `**Throughput** (lan profile, 4 namespaces; workers with \`--concurrency 1 --slots 1\`).`,
      headers: [
        'batch',
        'tasks',
        'elapsed (each round)',
        'tasks/s: median (each round)',
        'results by worker',
        'executions',
        'worker CPU: cores used (each round)',
      ],
      rows: [
        ...['sum, 1 worker', 'sum, 2 workers', 'primes, 1 worker', 'primes, 2 workers'].map((label) => {
          const bs = of(label);
          const byWorker: Record<string, number> = {};
          for (const b of bs)
            for (const [w, n] of Object.entries(b.byWorker)) byWorker[w] = (byWorker[w] ?? 0) + n;
          return [
            label,
            `${bs.length} × ${bs[0]?.count ?? 0}`,
            bs.map((b) => `${(b.elapsedMs / 1000).toFixed(2)} s`).join(', '),
            `**${med(label)}** (${bs.map(rate).join(', ')})`,
            byW(byWorker),
            bs.reduce((n, b) => n + b.executions, 0),
            bs.map(cores).join(', '),
          ];
        }),
        ...[base, k].map((b) => [
          b === k ? 'sum, 2 workers, w2 kill -9 at half' : 'sum, 2 workers (the same, no kill)',
          `1 × ${b.count}`,
          `${(b.elapsedMs / 1000).toFixed(2)} s`,
          rate(b),
          byW(b.byWorker),
          b.executions,
          b === k ? `${cores(b)} (w2 until its kill)` : cores(b),
        ]),
      ],
    },
    {
      caption: `**Exactly once**, over every task submitted in this run (the batches above and ${(ROUNDS + 1) * WARMUP_TASKS} warm-up tasks), in the coordinator's SQLite file.`,
      headers: ['check', 'tasks'],
      rows: [
        ['submitted', c.tasks],
        ['exactly one result, right value', `${c.recordedRight} (${c.recordedWrong} other)`],
        ['without a result', c.missing],
        ['runs in the store not submitted here', c.strayRuns],
        ['tasks in `peer task list --json --local` (its newest runs, all of them here)', c.listTotal],
      ],
    },
  ];
  const method = [
    `Four network namespaces on a bridge (test/support/netns.ts), one process each, lan profile, no loss injected:`,
    `\`peer up --priority 10\` (elected coordinator: it keeps the runs and runs no job), workers w1 and w2 (\`peer worker`,
    `--concurrency 1 --slots 1\`), and the submitter, the CLI itself: \`peer task submit OP ARGS --repeat N --wait --json\`,`,
    `one detached run of N jobs per batch. **Throughput** = results / the command's own elapsedMs (from its peer's start,`,
    `so the hand-over to the coordinator is in, node's start-up is not). The configurations alternate over ${ROUNDS} rounds`,
    `(1 worker: sum, primes; w2 starts; ${WARMUP_TASKS} warm-up tasks; 2 workers: sum, primes; w2 stops gracefully and the`,
    `coordinator sees it leave), and the table gives the median and every round. \`sum 2 3\` (${SUM_TASKS} tasks) measures the`,
    `protocol and processes; \`primes ${PRIMES_N}\` (${PRIMES_TASKS} tasks) measures CPU work. The four processes (plus the`,
    `worker threads) share the machine's 2 cores. **Kill**: ${KILL_TASKS} \`sum\` tasks with both workers, once without a kill`,
    `and once with SIGKILL to w2 when the workers' logs show half the jobs ended. Afterwards w1 and the coordinator are`,
    `stopped and the bench reads every run's results from the coordinator's SQLite file (the run store, and \`peer task`,
    `list --json --local\` for the total). Executions are the workers' \`job-started\` lines during the batch. Worker CPU is`,
    `the rise of utime + stime in /proc/<pid>/stat of the worker processes over the batch, divided by its wall time.`,
  ].join(' ');
  const notes = [
    `Whole module took ${meta.minutes} min. Load average (1/5/15 min) before: ${meta.loadBefore.map((x) => x.toFixed(2)).join('/')}, after: ${meta.loadAfter.map((x) => x.toFixed(2)).join('/')} on a 2-core machine shared with other work: throughput depends on that load more than on anything else here.`,
    `With \`sum\` the cost is the protocol: jobs travel in batches (credits per slot, several results per message) and the coordinator writes each result to SQLite before the worker's ack; with \`primes\` the worker's thread does the work. Either way a second worker is a second process competing for the same 2 cores as the coordinator and the submitter, so the speed-up is bounded by the CPU the workers actually get (last column).`,
  ];
  return {
    title: 'Distributed tasks (issue 5 targets, on the jobs machinery)',
    summary,
    tables,
    method,
    notes,
  };
}
