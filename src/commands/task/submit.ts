import { Args, Flags } from '@oclif/core';
import chalk from 'chalk';
import { networkFlags } from '../../cli/flags.js';
import { escapeForTerminal } from '../../cli/sanitize.js';
import { UsageError } from '../../cli/network.js';
import { Progress, showingWait, type ProgressOptions } from '../../cli/progress.js';
import { networkSettings, startPeer } from '../../cli/peer.js';
import {
  answer,
  collectResults,
  installTaskClient,
  opRunSpec,
  TaskCommand,
  TaskFailure,
  taskId,
  taskOutcome,
  timeoutFlag,
  type TaskOutcome,
} from '../../cli/tasks.js';
import { parseTaskArgs, TASK_OPS, validateTask } from '../../p2p/jobs/ops.js';
import { RUN_JOBS_MAX, type JobInput, type Jobs } from '../../p2p/jobs/index.js';

export interface SubmitResult {
  /** `<run>-<job>`: the job's PEER_JOB_ID. */
  id: string;
  op: string;
  args: number[];
  /** accepted: the coordinator stored it (without --wait); done or failed: its outcome. */
  state: 'accepted' | 'done' | 'failed';
  result?: string;
  error?: string;
  worker?: string | null;
  durationMs?: number | null;
}

/** The outcome of --repeat N: counts and throughput, not N results. */
export interface BatchResult {
  /** The run that holds the N tasks (their ids are `<run>-1` to `<run>-N`). */
  run: string;
  op: string;
  args: number[];
  count: number;
  /** Tasks whose result came (done or failed); with --wait all of them must. */
  done: number;
  failed: number;
  /** Stored and still without a result when the command ended (always 0 with --wait on success). */
  outstanding: number;
  elapsedMs: number;
  /** Results per second over elapsedMs (with --wait). */
  tasksPerSecond: number | null;
  /** Results by worker name. */
  workers: Record<string, number>;
  /** The first error, if any task failed. */
  firstError: string | null;
}

/** How often the waiting line is said again: its counts, and whether a worker is there yet. */
const WAIT_LINE_REFRESH_MS = 500;

export default class TaskSubmit extends TaskCommand {
  static override summary = 'Submit a task to the group and (with --wait) print its result.';
  static override description = `Operations: sum N..., fibonacci N (0-2000), sort N..., primes N (counts primes below N, up to 200000000). The arguments are checked here first, so bad input fails at once with one line. The task is a job of a detached run of the op: the elected coordinator stores it (so it outlives this command and a coordinator's failure) and the workers run it in their threads. Without --wait the command ends once the run is stored and prints the task's id; with --wait it prints the result. Exit codes: 0 done (or stored), 1 the task failed, the coordinator could not store it (its disk is full or failing) or nobody answered in time, 2 bad input. Put negative numbers after --: peer task submit sum -- 1 -2.`;
  static override examples = [
    '<%= config.bin %> task submit sum 1 2 3 --wait --interface 127.0.0.1',
    '<%= config.bin %> task submit fibonacci 100 --wait --json',
    '<%= config.bin %> task submit primes 10000000 --wait',
    '<%= config.bin %> task submit sort --wait -- 3 -1 2',
    '<%= config.bin %> task submit sum 1 2 --repeat 1000 --wait --timeout 120000',
  ];
  static override enableJsonFlag = true;
  static override strict = false;
  static override args = {
    op: Args.string({ description: `Operation: ${TASK_OPS.join(', ')}.`, required: true }),
  };
  static override flags = {
    ...networkFlags,
    wait: Flags.boolean({ summary: 'Wait for the result and print it.', default: false }),
    timeout: timeoutFlag(30_000),
    repeat: Flags.integer({
      summary: 'Submit the task N times, as N jobs of one run (a load test); prints counts and throughput.',
      default: 1,
      min: 1,
      max: RUN_JOBS_MAX,
    }),
  };

  async run(): Promise<SubmitResult | BatchResult> {
    const { args, argv, flags } = await this.parse(TaskSubmit);
    const op = args.op;
    const words = (argv as string[]).slice(1);
    // Bad input fails here, before any socket is opened.
    const parsed = parseTaskArgs(op, words);
    if (!parsed.ok) throw new UsageError(parsed.error);
    const valid = validateTask(op, parsed.args);
    if (!valid.ok) throw new UsageError(valid.error);

    const settings = networkSettings(flags, flags.name ?? `task-client-${process.pid}`);
    const peer = await startPeer(settings, {
      transient: true,
      install: (node) => installTaskClient(node, Boolean(settings.keys)),
    });
    const { keeper } = peer.installed.jobs;
    const json = { json: this.jsonEnabled() };
    const started = Date.now();
    const deadline = started + flags.timeout;
    const count = flags.repeat;
    const base = { op: valid.op, args: valid.args };
    try {
      const jobs: JobInput[] = Array.from({ length: count }, (_, i) => ({
        job: i + 1,
        seq: i + 1,
        input: null,
        pin: null,
      }));
      const run = await showingWait(
        'waiting for the coordinator (a peer worker or peer up) to store the task',
        answer(
          keeper.detach(opRunSpec(valid.op, valid.args), jobs, {
            retries: 1,
            maxRunning: null,
            workers: null,
          }),
          deadline,
          flags.timeout,
          'the task was refused: ',
        ),
        json,
      );
      if (count > 1)
        return await this.batch(
          peer.installed.jobs,
          run,
          base,
          count,
          flags.wait,
          started,
          deadline,
          flags.timeout,
        );
      const id = taskId(run, 1);
      if (!flags.wait) {
        this.log(`task ${id} accepted (${valid.op})`);
        return { id, ...base, state: 'accepted' };
      }
      let outcome: TaskOutcome | null = null;
      await waitingForWorkers(
        peer.installed.jobs,
        () => `waiting for the result of task ${id.slice(0, 8)}`,
        collectResults(keeper, run, 1, deadline, (r) => (outcome = taskOutcome(r))),
        json,
      );
      const o = outcome as TaskOutcome | null;
      if (!o)
        throw new TaskFailure(
          `task ${id} was stored but no result came within ${flags.timeout} ms; ${noWorker(peer.installed.jobs) ?? 'see peer task list'}`,
          { id, ...base, state: 'accepted' },
        );
      const out: SubmitResult = {
        id,
        ...base,
        state: o.ok ? 'done' : 'failed',
        ...(o.ok ? { result: o.value } : { error: o.value }),
        worker: o.worker,
        durationMs: o.durationMs,
      };
      if (!o.ok)
        throw new TaskFailure(`task ${id} (${valid.op}) failed on ${o.worker}: ${o.value}`, { ...out });
      this.log(
        `${escapeForTerminal(o.value)}  ${chalk.gray(`(${valid.op}, task ${id.slice(0, 8)}, worker ${escapeForTerminal(o.worker)}, ${o.durationMs} ms)`)}`,
      );
      return out;
    } finally {
      await peer.stop();
    }
  }

  private async batch(
    jobs: Jobs,
    run: string,
    base: { op: string; args: number[] },
    count: number,
    wait: boolean,
    started: number,
    deadline: number,
    timeoutMs: number,
  ): Promise<BatchResult> {
    const workers: Record<string, number> = {};
    let done = 0;
    let failed = 0;
    let firstError: string | null = null;
    const ended = !wait
      ? 'done'
      : await waitingForWorkers(
          jobs,
          () => `waiting for ${count} tasks: ${done + failed} done${failed > 0 ? `, ${failed} failed` : ''}`,
          collectResults(jobs.keeper, run, count, deadline, (r) => {
            const o = taskOutcome(r);
            if (o.ok) done++;
            else {
              failed++;
              firstError ??= o.value;
            }
            workers[o.worker] = (workers[o.worker] ?? 0) + 1;
          }),
          { json: this.jsonEnabled() },
        );
    const elapsedMs = Date.now() - started;
    const out: BatchResult = {
      run,
      ...base,
      count,
      done,
      failed,
      outstanding: count - done - failed,
      elapsedMs,
      tasksPerSecond: wait && elapsedMs > 0 ? Math.round(((done + failed) * 1000) / elapsedMs) : null,
      workers,
      firstError,
    };
    if (ended === 'timeout')
      throw new TaskFailure(
        `${done + failed} of ${count} tasks finished within ${timeoutMs} ms; ${noWorker(jobs) ?? 'raise --timeout'}`,
        {
          ...out,
        },
      );
    if (failed > 0)
      throw new TaskFailure(`${failed} of ${count} tasks failed; first error: ${firstError}`, { ...out });
    const by = Object.entries(workers)
      .map(([w, n]) => `${escapeForTerminal(w)} ${n}`)
      .join(', ');
    this.log(
      wait
        ? `${done} tasks done in ${elapsedMs} ms (${out.tasksPerSecond}/s)${by ? `; by worker: ${by}` : ''}`
        : `${count} tasks accepted in ${elapsedMs} ms (run ${run})`,
    );
    return out;
  }
}

/**
 * `work`, with what it waits for on the terminal's waiting line (progress.ts), said again every
 * WAIT_LINE_REFRESH_MS: `text` (counts that grow), and that no worker is there when none is.
 */
async function waitingForWorkers<T>(
  jobs: Jobs,
  text: () => string,
  work: Promise<T>,
  opts: ProgressOptions,
): Promise<T> {
  const progress = new Progress(opts);
  const say = () =>
    progress.update(
      jobs.workers().length === 0
        ? `${text()}; no worker in the group yet (start one with peer worker)`
        : text(),
    );
  say();
  const timer = setInterval(say, WAIT_LINE_REFRESH_MS);
  timer.unref();
  try {
    return await work;
  } finally {
    clearInterval(timer);
    progress.done();
  }
}

/** What to do when nothing ran because no worker is in the group (the tasks wait for one), else null. */
function noWorker(jobs: Jobs): string | null {
  return jobs.workers().length === 0
    ? 'no worker is in the group: start one with peer worker (the stored tasks run once one joins)'
    : null;
}
