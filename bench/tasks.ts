/**
 * Distributed-task targets of issue 5, with the real CLI in network namespaces on a bridge
 * (test/support/netns.ts), one process per namespace, lan profile. Nothing leaves the namespaces:
 * every process binds a 10.77.x address that exists only inside its namespace.
 *
 *   host 0: `peer up --priority 10` (wins the election: coordinates, runs no task)
 *   host 1: `peer worker --concurrency 1` (w1)      host 2: `peer worker --concurrency 1` (w2)
 *   host 3: the submitter, bench/tasks-driver.ts (the code of `peer task submit --repeat`, with
 *           distinct arguments per task and the ids written out)
 *
 *  a. throughput: N `sum i 1` tasks (light: the cost is the protocol), then M `primes` tasks
 *     (CPU-heavy), all submitted at once, with w1 alone, then with w1 and w2.
 *  b. 10,000 `sum i 1` tasks with both workers; when half the results are in, w2 gets kill -9.
 *     Then every submitted id is checked: exactly one result at the submitter, with the right
 *     value; exactly one `task-recorded` line in the coordinator's log; exactly one row, done,
 *     with the right value, in the coordinator's SQLite (read directly, after the coordinator
 *     stopped), and no row that was not submitted (`peer task list --json --local` gives the total).
 *
 * Parameters (environment): PEER_BENCH_TASKS_SUM, PEER_BENCH_TASKS_PRIMES, PEER_BENCH_TASKS_KILL.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChildLines } from '../src/cli/child.js';
import { runTask } from '../src/p2p/task-ops.js';
import { PeerStore } from '../src/storage/store.js';
import { TaskStore } from '../src/storage/tasks.js';
import { NetnsLan, netnsCapability } from '../test/support/netns.js';
import { envInt, onCleanup, progress, waitFor, type BenchModule, type Section, type Table } from './lib.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin/run.js');
const DRIVER = path.join(ROOT, 'bench/tasks-driver.ts');
const PORT = 47791;
const PROFILE = 'lan';

const SUM_TASKS = envInt('PEER_BENCH_TASKS_SUM', 5000);
const PRIMES_TASKS = envInt('PEER_BENCH_TASKS_PRIMES', 200);
const KILL_TASKS = envInt('PEER_BENCH_TASKS_KILL', 10_000);
/** Each `primes` task counts the primes below this: about 30-60 ms of one core here. */
const PRIMES_N = 5_000_000;
/** Tasks run once before measuring, so threads and JIT are warm. */
const WARMUP_TASKS = 200;
/** Node start-up of 3 processes on a loaded 2-core machine, and the election. */
const START_TIMEOUT_MS = 60_000;
/** One batch from submission to its last result. */
const BATCH_TIMEOUT_MS = 180_000;
/** The coordinator sees a new worker's capacity tag in its next heartbeats (200 ms apart). */
const TAGS_SETTLE_MS = 1000;

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

interface Got {
  args: number[];
  results: string[];
  ok: boolean[];
  worker: string | null;
}

interface Batch {
  label: string;
  op: 'sum' | 'primes';
  count: number;
  workers: number;
  done: number;
  elapsedMs: number;
  byId: Record<string, Got>;
  /** task-started lines of the workers during the batch: executions. */
  executions: number;
  byWorker: Record<string, number>;
  killAt?: number;
}

const expected = (g: Got, op: string): string => {
  if (op === 'sum') return String(g.args[0]! + g.args[1]!);
  const r = runTask(op, g.args);
  if (!r.ok) throw new Error(`expected value of ${op} ${g.args.join(' ')}: ${r.error}`);
  return r.value;
};

async function batch(
  lan: NetnsLan,
  dataDir: string,
  workers: Proc[],
  label: string,
  op: 'sum' | 'primes',
  count: number,
  kill?: Proc,
): Promise<Batch> {
  const out = path.join(dataDir, `batch-${label.replace(/\W+/g, '-')}.json`);
  const marks = workers.map((w) => w.mark());
  const opts = { interface: lan.host(3).address, port: PORT, op, count, n: PRIMES_N, out, profile: PROFILE };
  const driver = new ChildLines(
    lan.spawn(3, process.execPath, ['--import', 'tsx', DRIVER, JSON.stringify(opts)], { NO_COLOR: '1' }),
  );
  const evs = (kind: string) => driver.json().filter((e) => e.ev === kind);
  await driver.until(
    (l) => evs('ready').length > 0 || evs('error').length > 0 || l.child.exitCode !== null,
    START_TIMEOUT_MS,
    'the submitter to find the coordinator',
  );
  if (!evs('ready').length)
    throw new Error(`submitter failed: ${driver.lines.join('\n')} ${driver.stderr.join('')}`);
  let killAt: number | undefined;
  if (kill) {
    await driver.until(
      (l) => l.child.exitCode !== null || evs('progress').some((e) => (e.done as number) >= count / 2),
      BATCH_TIMEOUT_MS,
      'half the results',
    );
    killAt = Date.now();
    kill.lines.child.kill('SIGKILL');
    progress(`tasks: ${label}: kill -9 ${kill.name} at ${evs('progress').at(-1)?.done} results`);
  }
  await driver.until((l) => l.child.exitCode !== null, BATCH_TIMEOUT_MS, `batch ${label} to end`);
  const end = evs('end')[0];
  if (!end) throw new Error(`submitter of ${label} ended without a report: ${driver.stderr.join('')}`);
  const byId = JSON.parse(fs.readFileSync(out, 'utf8')) as Record<string, Got>;
  const byWorker: Record<string, number> = {};
  for (const g of Object.values(byId)) if (g.worker) byWorker[g.worker] = (byWorker[g.worker] ?? 0) + 1;
  const b: Batch = {
    label,
    op,
    count,
    workers: workers.length,
    done: end.done as number,
    elapsedMs: end.elapsedMs as number,
    byId,
    executions: workers.reduce((n, w, i) => n + w.events('task-started', marks[i]).length, 0),
    byWorker,
    killAt,
  };
  progress(
    `tasks: ${label}: ${b.done}/${count} in ${b.elapsedMs} ms (${Math.round((b.done * 1000) / b.elapsedMs)}/s), by worker ${JSON.stringify(byWorker)}, ${b.executions} executions`,
  );
  return b;
}

interface Check {
  submitted: number;
  deliveredOnce: number;
  deliveredTwice: number;
  wrongAtSubmitter: number;
  recordedLines: number;
  recordedOnce: number;
  rowsDone: number;
  rowsWrong: number;
  rowsMissing: number;
  rowsTotal: number;
  listTotal: number;
}

/** Every submitted id against the submitter's report, the coordinator's log lines and its SQLite. */
function check(batches: Batch[], coord: Proc, dataDir: string): Check {
  const recorded = new Map<string, number>();
  for (const e of coord.events('task-recorded'))
    recorded.set(e.id as string, (recorded.get(e.id as string) ?? 0) + 1);
  const c: Check = {
    submitted: 0,
    deliveredOnce: 0,
    deliveredTwice: 0,
    wrongAtSubmitter: 0,
    recordedLines: [...recorded.values()].reduce((a, b) => a + b, 0),
    recordedOnce: 0,
    rowsDone: 0,
    rowsWrong: 0,
    rowsMissing: 0,
    rowsTotal: 0,
    listTotal: -1,
  };
  const store = PeerStore.open(dataDir, coord.name);
  try {
    const log = TaskStore.of(store);
    c.rowsTotal = log.count();
    for (const b of batches) {
      for (const [id, g] of Object.entries(b.byId)) {
        c.submitted++;
        const want = expected(g, b.op);
        if (g.results.length === 1) c.deliveredOnce++;
        if (g.results.length > 1) c.deliveredTwice++;
        if (g.results.some((r, i) => r !== want || !g.ok[i])) c.wrongAtSubmitter++;
        if (recorded.get(id) === 1) c.recordedOnce++;
        const row = log.get(id);
        if (!row) c.rowsMissing++;
        else if (row.state === 'done' && row.result === want) c.rowsDone++;
        else c.rowsWrong++;
      }
    }
  } finally {
    store.close();
  }
  // The same log through the CLI, as a user would read it (no network: --local).
  const listed = JSON.parse(
    execFileSync(
      process.execPath,
      [BIN, 'task', 'list', '--json', '--local', '--name', coord.name, '--data-dir', dataDir, '--limit', '1'],
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
  const w1 = new Proc(lan, 1, dataDir, 'w1', ['worker', '--concurrency', '1']);
  await waitFor(() => !!coord.id() && w1.following() === coord.id(), START_TIMEOUT_MS, 'w1 to follow coord');
  await new Promise((r) => setTimeout(r, TAGS_SETTLE_MS));

  const batches: Batch[] = [];
  const measured: Batch[] = [];
  batches.push(await batch(lan, dataDir, [w1], 'warm-up 1', 'sum', WARMUP_TASKS));
  measured.push(await batch(lan, dataDir, [w1], 'sum, 1 worker', 'sum', SUM_TASKS));
  measured.push(await batch(lan, dataDir, [w1], 'primes, 1 worker', 'primes', PRIMES_TASKS));

  progress('tasks: starting worker w2');
  const w2 = new Proc(lan, 2, dataDir, 'w2', ['worker', '--concurrency', '1']);
  await waitFor(() => w2.following() === coord.id(), START_TIMEOUT_MS, 'w2 to follow coord');
  await new Promise((r) => setTimeout(r, TAGS_SETTLE_MS));
  batches.push(await batch(lan, dataDir, [w1, w2], 'warm-up 2', 'sum', WARMUP_TASKS));
  measured.push(await batch(lan, dataDir, [w1, w2], 'sum, 2 workers', 'sum', SUM_TASKS));
  measured.push(await batch(lan, dataDir, [w1, w2], 'primes, 2 workers', 'primes', PRIMES_TASKS));

  const coordMark = coord.mark();
  const killed = await batch(lan, dataDir, [w1, w2], 'kill', 'sum', KILL_TASKS, w2);
  const reassigned = coord.events('task-reassigned', coordMark).filter((e) => e.worker === w2.id());
  const requeuedIds = new Set(reassigned.map((e) => e.id as string));
  const startedOnVictim = w2.events('task-started').filter((e) => requeuedIds.has(e.id as string)).length;
  const firstRequeue = reassigned[0] ? Date.parse(reassigned[0].at as string) - killed.killAt! : NaN;
  batches.push(...measured, killed);

  await Promise.all([w1.stop(), coord.stop()]);
  const checked = check(batches, coord, dataDir);
  lan.down();
  return render(measured, killed, checked, {
    reassigned: reassigned.length,
    startedOnVictim,
    firstRequeueMs: firstRequeue,
    minutes: ((Date.now() - started) / 60_000).toFixed(1),
    loadBefore,
    loadAfter: os.loadavg(),
  });
}

function render(
  measured: Batch[],
  k: Batch,
  c: Check,
  meta: {
    reassigned: number;
    startedOnVictim: number;
    firstRequeueMs: number;
    minutes: string;
    loadBefore: number[];
    loadAfter: number[];
  },
): Section {
  const rate = (b: Batch) => Math.round((b.done * 1000) / b.elapsedMs);
  const all = c.submitted;
  const exact =
    c.deliveredOnce === all &&
    c.recordedOnce === all &&
    c.recordedLines === all &&
    c.rowsDone === all &&
    c.rowsTotal === all &&
    c.listTotal === all &&
    c.wrongAtSubmitter === 0;
  const byW = (b: Batch) =>
    Object.entries(b.byWorker)
      .map(([w, n]) => `${w} ${n}`)
      .join(', ');
  const find = (label: string) => measured.find((b) => b.label === label)!;
  const speedup = (op: string) => (rate(find(`${op}, 2 workers`)) / rate(find(`${op}, 1 worker`))).toFixed(2);
  const summary = [
    `- 10,000 tasks with a worker killed midway: **${k.done === k.count && exact ? 'every result recorded exactly once' : 'NOT every result recorded exactly once'}**. ${k.done} of ${k.count} results came back (${rate(k)}/s); w2 got kill -9 at half; ${meta.reassigned} of its tasks were put back in the queue${Number.isFinite(meta.firstRequeueMs) ? ` (first ${Math.round(meta.firstRequeueMs)} ms after the kill)` : ''} and finished by w1 (${meta.startedOnVictim} of them had a \`task-started\` line in w2's log, so ran twice); the workers' logs show ${k.executions} executions for ${k.count} tasks (lines w2 wrote just before the kill can die with it); no result recorded twice.`,
    `- Throughput, all tasks submitted at once, one worker thread per worker process: \`sum\` ${rate(find('sum, 1 worker'))}/s with 1 worker, ${rate(find('sum, 2 workers'))}/s with 2 (×${speedup('sum')}); \`primes ${PRIMES_N}\` ${rate(find('primes, 1 worker'))}/s with 1 worker, ${rate(find('primes, 2 workers'))}/s with 2 (×${speedup('primes')}).`,
  ].join('\n');
  const tables: Table[] = [
    {
      caption: `**Throughput** (lan profile, 4 namespaces; workers with \`--concurrency 1\`).`,
      headers: ['batch', 'tasks', 'elapsed', 'tasks/s', 'results by worker', 'executions'],
      rows: [...measured, k].map((b) => [
        b.label === 'kill' ? `sum, 2 workers, w2 kill -9 at half` : b.label,
        b.count,
        `${(b.elapsedMs / 1000).toFixed(2)} s`,
        rate(b),
        byW(b),
        b.executions,
      ]),
    },
    {
      caption: `**Exactly once**, over every task submitted in this run (the batches above and ${2 * WARMUP_TASKS} warm-up tasks).`,
      headers: ['check', 'tasks'],
      rows: [
        ['submitted (distinct ids)', all],
        [
          'exactly one result at the submitter, right value',
          `${c.deliveredOnce} (${c.deliveredTwice} delivered twice, ${c.wrongAtSubmitter} wrong)`,
        ],
        [
          'exactly one `task-recorded` line in the coordinator log',
          `${c.recordedOnce} (${c.recordedLines} lines in all)`,
        ],
        [
          'row in the coordinator SQLite: done, right value',
          `${c.rowsDone} (${c.rowsMissing} missing, ${c.rowsWrong} other)`,
        ],
        [
          'rows in the coordinator SQLite (`peer task list --json --local` total)',
          `${c.rowsTotal} (${c.listTotal})`,
        ],
      ],
    },
  ];
  const method = [
    `Four network namespaces on a bridge (test/support/netns.ts), one process each, lan profile, no loss injected:`,
    `\`peer up --priority 10\` (elected coordinator; it runs no task), workers w1 and w2 (\`peer worker --concurrency 1\`),`,
    `and the submitter bench/tasks-driver.ts, which runs what \`peer task submit --repeat N --wait\` runs (startPeer as an observer,`,
    `installTaskPeer, N calls of Tasks.submit at once, one \`task-result\` event per task) but gives task i the arguments`,
    `\`i 1\` and writes every id with its results to a file. **Throughput** = results / (time of the last result − time of the`,
    `first submit), both taken in the submitter; process start-up and the election are outside it. Each configuration`,
    `starts after ${WARMUP_TASKS} warm-up tasks. \`sum\` (${SUM_TASKS} tasks) measures the protocol and processes;`,
    `\`primes ${PRIMES_N}\` (${PRIMES_TASKS} tasks) measures CPU work. 1 worker = w1 alone; 2 workers = w2 started too.`,
    `The four processes (plus the worker threads) share the machine's 2 cores. **Kill**: ${KILL_TASKS} \`sum\` tasks with both`,
    `workers; when the submitter reports half the results, the bench sends SIGKILL to w2. Afterwards w1 and the coordinator`,
    `are stopped and, for every submitted id, the bench checks the submitter's results, counts the coordinator's`,
    `\`task-recorded\` log lines, and reads its SQLite file (TaskStore, and \`peer task list --json --local\` for the total).`,
    `Executions are the workers' \`task-started\` lines during the batch (w2's lines up to its kill).`,
  ].join(' ');
  const notes = [
    `Whole module took ${meta.minutes} min. Load average (1/5/15 min) before: ${meta.loadBefore.map((x) => x.toFixed(2)).join('/')}, after: ${meta.loadAfter.map((x) => x.toFixed(2)).join('/')} on a 2-core machine shared with other work: throughput depends on that load more than on anything else here.`,
    `With \`sum\`, each task costs a few datagrams (submit, accept, assign, ack, result, done, fin) and a few SQLite writes, no CPU to speak of; a second worker adds a second process competing for the same 2 cores as the coordinator and the submitter, so a speed-up near 1 is expected there, and the CPU-heavy \`primes\` row is the one that shows scaling.`,
  ];
  return { title: 'Distributed tasks (issue 5 targets)', summary, tables, method, notes };
}
