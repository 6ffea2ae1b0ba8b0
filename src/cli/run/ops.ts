/**
 * The executors of `peer worker`: built-in ops (`kind: 'op'`, the words [op, ...args] of
 * `peer task`) run in the worker threads of the pool (worker-pool.ts), shell commands in the
 * process executor (exec.ts); WorkerExecutor sends each attempt to the one of its kind.
 *
 * An op runs no code from the network (its arguments are numbers, validated again here by
 * parseTaskArgs and in the thread by runTask), so every worker runs ops, without `--allow-exec`
 * and in open groups. Its result is a job's output: the value and a line feed on stdout with exit
 * 0, or the error and a line feed on stderr with exit 1. A killed op (cancel, timeout) has its
 * thread stopped and replaced: a computation cannot be interrupted otherwise.
 */
import type {
  AttemptKey,
  ExecOutcome,
  ExecReports,
  JobExecutor,
  KillReason,
  StartRequest,
} from '../../p2p/jobs/types.js';
import { isTaskOp, parseTaskArgs, validateTask, type TaskOutcome } from '../../p2p/jobs/ops.js';
import type { TaskSpec } from '../worker-pool.js';

/** What runs op tasks: the worker pool; tests pass one in virtual time. */
export interface OpThreads {
  run(task: TaskSpec): void;
  /** Forgets a task without an outcome; whether it was there. */
  cancel(id: string): boolean;
}

interface LiveOp {
  key: AttemptKey;
  startedAtWallMs: number;
  startedAt: number;
}

const idOf = (k: AttemptKey) => `${k.run}/${k.job}/${k.attempt}`;

export class OpExecutor implements JobExecutor {
  readonly allowExec = false;
  private reports: ExecReports | null = null;
  private readonly live = new Map<string, LiveOp>();

  /**
   * `wallNow`: the wall clock in ms since the epoch (a result's start time); `monoNow`: a
   * monotonic one in ms (its runtime).
   */
  constructor(
    readonly slots: number,
    private readonly threads: OpThreads,
    private readonly wallNow: () => number = Date.now,
    private readonly monoNow: () => number = () => performance.now(),
  ) {}

  bind(reports: ExecReports): void {
    this.reports = reports;
  }

  start(req: StartRequest): void {
    const key: AttemptKey = { run: req.run, job: req.job, attempt: req.attempt };
    const id = idOf(key);
    if (req.spec.kind !== 'op' || this.live.has(id)) {
      const error =
        req.spec.kind !== 'op' ? 'this worker runs only built-in ops' : 'this attempt runs already';
      // Every start ends after start() returned, as the process executor's do.
      queueMicrotask(() => this.reports?.ended(key, refused(this.wallNow(), error)));
      return;
    }
    this.live.set(id, { key, startedAtWallMs: this.wallNow(), startedAt: this.monoNow() });
    const [op = '', ...words] = req.spec.words;
    // An unknown op says so before its arguments are looked at.
    const parsed = isTaskOp(op) ? parseTaskArgs(op, words) : validateTask(op, words);
    if (parsed.ok) this.threads.run({ id, op, args: parsed.args });
    else queueMicrotask(() => this.done(id, { ok: false, error: parsed.error }));
  }

  /**
   * A thread's outcome for task `id`. False when `id` is not an attempt of ours (a task of
   * another user of the same pool, or an attempt killed meanwhile).
   */
  done(id: string, outcome: TaskOutcome): boolean {
    const a = this.live.get(id);
    if (!a) return false;
    this.live.delete(id);
    const text = (s: string) => Buffer.from(`${s}\n`);
    this.end(a, {
      exit: outcome.ok ? 0 : 1,
      stdout: outcome.ok ? text(outcome.value) : new Uint8Array(0),
      stderr: outcome.ok ? new Uint8Array(0) : text(outcome.error),
      timedOut: false,
      cancelled: false,
    });
    return true;
  }

  kill(key: AttemptKey, why: KillReason): void {
    const a = this.live.get(idOf(key));
    if (!a) return;
    this.live.delete(idOf(key));
    this.threads.cancel(idOf(key));
    const empty = new Uint8Array(0);
    const outcome = {
      exit: null,
      stdout: empty,
      stderr: empty,
      timedOut: why === 'timeout',
      cancelled: why !== 'timeout',
    };
    // After kill() returned: the runner is still marking what it kills.
    queueMicrotask(() => this.end(a, outcome));
  }

  alive(): AttemptKey[] {
    return [...this.live.values()].map((a) => a.key);
  }

  private end(
    a: LiveOp,
    o: Pick<ExecOutcome, 'exit' | 'stdout' | 'stderr' | 'timedOut' | 'cancelled'>,
  ): void {
    this.reports?.ended(a.key, {
      ...o,
      started: true,
      signal: 0,
      startedAtWallMs: a.startedAtWallMs,
      runtimeUs: Math.max(0, Math.round((this.monoNow() - a.startedAt) * 1000)),
      truncated: false,
      returned: [],
      error: null,
    });
  }
}

/** Routes each attempt to the executor of its kind: ops to `ops`, commands to `commands`. */
export class WorkerExecutor implements JobExecutor {
  readonly slots: number;
  readonly allowExec: boolean;

  constructor(
    private readonly ops: JobExecutor,
    private readonly commands: JobExecutor,
  ) {
    this.slots = commands.slots;
    this.allowExec = commands.allowExec;
  }

  bind(reports: ExecReports): void {
    this.ops.bind(reports);
    this.commands.bind(reports);
  }

  start(req: StartRequest): void {
    (req.spec.kind === 'op' ? this.ops : this.commands).start(req);
  }

  /** Each executor ignores attempts it does not hold. */
  kill(key: AttemptKey, why: KillReason, graceMs: number): void {
    this.ops.kill(key, why, graceMs);
    this.commands.kill(key, why, graceMs);
  }

  alive(): AttemptKey[] {
    return [...this.ops.alive(), ...this.commands.alive()];
  }
}

function refused(at: number, error: string): ExecOutcome {
  const empty = new Uint8Array(0);
  return {
    started: false,
    exit: null,
    signal: 0,
    timedOut: false,
    cancelled: false,
    startedAtWallMs: at,
    runtimeUs: 0,
    stdout: empty,
    stderr: empty,
    truncated: false,
    returned: [],
    error,
  };
}
