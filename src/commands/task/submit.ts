import { Args, Flags } from '@oclif/core';
import chalk from 'chalk';
import { networkFlags } from '../../cli/flags.js';
import { escapeForTerminal } from '../../cli/sanitize.js';
import { UsageError } from '../../cli/network.js';
import { showingWait } from '../../cli/progress.js';
import { networkSettings, startPeer } from '../../cli/peer.js';
import { installTaskPeer, nextEvent, TaskCommand, TaskFailure, timeoutFlag } from '../../cli/tasks.js';
import type { PeerEventOf } from '../../p2p/protocol.js';
import {
  parseTaskArgs,
  SUBMITTER_TASKS_MAX,
  TASK_OPS,
  validateTask,
  type Tasks,
} from '../../p2p/tasks/index.js';
import type { PeerNode } from '../../p2p/node.js';

export interface SubmitResult {
  id: string;
  op: string;
  args: number[];
  /** accepted: the coordinator holds it (without --wait); done or failed: its outcome. */
  state: 'accepted' | 'done' | 'failed';
  result?: string;
  error?: string;
  worker?: string | null;
  durationMs?: number | null;
}

/** The outcome of --repeat N: counts and throughput, not N results. */
export interface BatchResult {
  op: string;
  args: number[];
  count: number;
  /** Tasks whose result came (done or failed); with --wait all of them must. */
  done: number;
  failed: number;
  /** Accepted and still without a result when the command ended (always 0 with --wait on success). */
  outstanding: number;
  elapsedMs: number;
  /** Results per second over elapsedMs (with --wait). */
  tasksPerSecond: number | null;
  /** Results by worker name. */
  workers: Record<string, number>;
  /** The first error, if any task failed. */
  firstError: string | null;
}

export default class TaskSubmit extends TaskCommand {
  static override summary = 'Submit a task to the group and (with --wait) print its result.';
  static override description = `Operations: sum N..., fibonacci N (0-2000), sort N..., primes N (counts primes below N, up to 200000000). The arguments are checked here first, so bad input fails at once with one line. The task goes to the elected coordinator, which assigns it to the least-loaded worker; it is re-sent until accepted, and re-sent to a new coordinator if the old one fails. Without --wait the command ends once the task is accepted. Exit codes: 0 done (or accepted), 1 the task failed, the coordinator could not store it (its disk is full or failing) or nobody answered in time, 2 bad input. Put negative numbers after --: peer task submit sum -- 1 -2.`;
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
      summary: 'Submit the task N times, with N ids (a load test); prints counts and throughput.',
      default: 1,
      min: 1,
      max: SUBMITTER_TASKS_MAX,
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
      observer: true,
      install: (node) => installTaskPeer(node, { candidate: false, observer: true }),
    });
    const {
      node,
      installed: { tasks, election },
    } = peer;
    if (flags.repeat > 1) {
      try {
        return await showingWait(
          `waiting for ${flags.repeat} tasks to be ${flags.wait ? 'done' : 'accepted'}`,
          this.batch(node, tasks, valid.op, valid.args, flags),
          { json: this.jsonEnabled() },
        );
      } finally {
        await peer.stop();
      }
    }
    // Ends the waits this command no longer needs (the result, once accepted without --wait).
    const done = new AbortController();
    try {
      let id = '';
      // Subscribe before submitting: a local answer could come at once.
      const accepted = nextEvent(
        node,
        (e): e is PeerEventOf<'task-accepted'> | PeerEventOf<'task-result'> | PeerEventOf<'task-refused'> =>
          (e.kind === 'task-accepted' || e.kind === 'task-result' || e.kind === 'task-refused') &&
          e.id === id,
        flags.timeout,
        done.signal,
      );
      const result = nextEvent(
        node,
        (e): e is PeerEventOf<'task-result'> => e.kind === 'task-result' && e.id === id,
        flags.timeout,
        done.signal,
      );
      id = tasks.submit(valid.op, valid.args);
      const first = await showingWait(
        'waiting for the task coordinator (a peer worker) to accept the task',
        accepted,
        { json: this.jsonEnabled() },
      );
      if (!first) {
        const coord = election.coordinator();
        throw new TaskFailure(
          coord
            ? `the coordinator ${node.membership.get(coord)?.name ?? coord} did not accept task ${id} within ${flags.timeout} ms; try again or raise --timeout`
            : `no coordinator answered within ${flags.timeout} ms: start a worker (peer worker) on this group, or check --interface, --group and --port`,
          { id, op: valid.op, args: valid.args },
        );
      }
      if (first.kind === 'task-refused')
        throw new TaskFailure(
          `task ${id} was refused: ${first.why}; free space or fix that disk, then submit again`,
          {
            id,
            op: valid.op,
            args: valid.args,
            state: 'refused',
            reason: first.reason,
          },
        );
      if (!flags.wait && first.kind === 'task-accepted') {
        this.log(`task ${id} accepted (${valid.op})`);
        return { id, op: valid.op, args: valid.args, state: 'accepted' };
      }
      const r =
        first.kind === 'task-result'
          ? first
          : await showingWait(`waiting for the result of task ${id.slice(0, 8)}`, result, {
              json: this.jsonEnabled(),
            });
      if (!r)
        throw new TaskFailure(
          `task ${id} was accepted but no result came within ${flags.timeout} ms; see peer task list`,
          { id, op: valid.op, args: valid.args, state: 'accepted' },
        );
      const out: SubmitResult = {
        id,
        op: valid.op,
        args: valid.args,
        state: r.ok ? 'done' : 'failed',
        ...(r.ok ? { result: r.value } : { error: r.value }),
        worker: r.workerName ?? r.worker,
        durationMs: r.durationMs,
      };
      if (!r.ok)
        throw new TaskFailure(
          `task ${id} (${valid.op}) failed on ${out.worker ?? 'the coordinator'}: ${r.value}`,
          { ...out },
        );
      this.log(
        `${escapeForTerminal(r.value)}  ${chalk.gray(`(${valid.op}, task ${id.slice(0, 8)}, worker ${escapeForTerminal(out.worker ?? '?')}, ${r.durationMs ?? '?'} ms)`)}`,
      );
      return out;
    } finally {
      done.abort();
      await peer.stop();
    }
  }

  private async batch(
    node: PeerNode,
    tasks: Tasks,
    op: string,
    args: number[],
    flags: { repeat: number; wait: boolean; timeout: number },
  ): Promise<BatchResult> {
    const accepted = new Set<string>();
    const workers: Record<string, number> = {};
    let done = 0;
    let failed = 0;
    let firstError: string | null = null;
    const ids = new Set<string>();
    let wake: () => void = () => {};
    const off = node.on((e) => {
      if (e.kind === 'task-refused' && ids.has(e.id)) {
        failed++;
        firstError ??= `refused: ${e.why}`;
        return wake();
      }
      if ((e.kind !== 'task-accepted' && e.kind !== 'task-result') || !ids.has(e.id)) return;
      if (e.kind === 'task-accepted') accepted.add(e.id);
      else {
        accepted.delete(e.id);
        if (e.ok) done++;
        else {
          failed++;
          firstError ??= e.value;
        }
        const w = e.workerName ?? e.worker ?? '?';
        workers[w] = (workers[w] ?? 0) + 1;
      }
      wake();
    });
    const started = Date.now();
    const finished = () =>
      flags.wait ? done + failed === flags.repeat : accepted.size + done + failed === flags.repeat;
    try {
      for (let i = 0; i < flags.repeat; i++) ids.add(tasks.submit(op, args));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, flags.timeout);
        wake = () => {
          if (!finished()) return;
          clearTimeout(timer);
          resolve();
        };
        wake();
      });
    } finally {
      off();
    }
    const elapsedMs = Date.now() - started;
    const out: BatchResult = {
      op,
      args,
      count: flags.repeat,
      done,
      failed,
      outstanding: flags.repeat - done - failed,
      elapsedMs,
      tasksPerSecond: flags.wait && elapsedMs > 0 ? Math.round(((done + failed) * 1000) / elapsedMs) : null,
      workers,
      firstError,
    };
    if (!finished())
      throw new TaskFailure(
        `${flags.wait ? done + failed : accepted.size + done + failed} of ${flags.repeat} tasks ${flags.wait ? 'finished' : 'were accepted'} within ${flags.timeout} ms; raise --timeout`,
        { ...out },
      );
    if (failed > 0)
      throw new TaskFailure(`${failed} of ${flags.repeat} tasks failed; first error: ${firstError}`, {
        ...out,
      });
    const by = Object.entries(workers)
      .map(([w, n]) => `${escapeForTerminal(w)} ${n}`)
      .join(', ');
    this.log(
      flags.wait
        ? `${done} tasks done in ${elapsedMs} ms (${out.tasksPerSecond}/s)${by ? `; by worker: ${by}` : ''}`
        : `${flags.repeat} tasks accepted in ${elapsedMs} ms`,
    );
    return out;
  }
}
