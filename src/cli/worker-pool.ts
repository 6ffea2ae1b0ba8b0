/**
 * A pool of worker threads that runs the built-in ops of `peer worker` (src/cli/run/ops.ts), so
 * the peer's event loop keeps heartbeating and answering while an op takes seconds of CPU.
 *
 * N threads, one task each at a time; tasks beyond that wait in a bounded queue (the runner never
 * starts more jobs than its slots, so the worker sizes the queue to them). A thread that crashes (an
 * uncaught error, exit, out of memory under resourceLimits) or runs a task longer than
 * TASK_RUN_MS_MAX is terminated and replaced, and its task is reported failed: the peer itself
 * never crashes. Every outcome reaches `onDone` exactly once per run().
 */
import { Worker } from 'node:worker_threads';
import type { TaskOutcome } from '../p2p/jobs/ops.js';

/** One op for a thread: what task-thread.ts runs. */
export interface TaskSpec {
  id: string;
  op: string;
  args: number[];
}

/** A task running longer than this is stopped and reported failed (primes at its bound takes ~2 s). */
export const TASK_RUN_MS_MAX = 60_000;
/** Heap limit of one thread: a runaway task fails alone instead of swapping the machine. */
export const THREAD_HEAP_MB_MAX = 256;
/** Threads of one pool: more would only contend for the same cores. */
export const WORKER_CONCURRENCY_MAX = 16;
/** Crashes in a row (no task completed between them) replaced at once; beyond, replacement backs off. */
export const THREAD_RESPAWNS_FAST_MAX = 3;
/** Longest wait before replacing a thread that keeps crashing (a broken install, say). */
export const THREAD_RESPAWN_DELAY_MS_MAX = 30_000;

export interface PoolOptions {
  concurrency: number;
  onDone(id: string, outcome: TaskOutcome): void;
  /** The thread's script; the default is task-thread next to this module. Tests pass others. */
  threadUrl?: URL;
  taskTimeoutMs?: number;
  /** Tasks waiting for a thread, beyond which run() reports a failure at once. */
  queueMax: number;
}

interface Slot {
  worker: Worker;
  /** The thread said it listens: a task's time runs from then, not from a slow start under load. */
  ready: boolean;
  task: TaskSpec | null;
  timer: NodeJS.Timeout | null;
  dead: boolean;
}

export interface PoolStats {
  completed: number;
  crashed: number;
  timedOut: number;
  /** Running tasks stopped by cancel(). */
  cancelled: number;
  replaced: number;
}

/** The thread script next to this file: .js once built, .ts under tsx (bin/dev.js). */
function defaultThreadUrl(): URL {
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return new URL(`./task-thread.${ext}`, import.meta.url);
}

export class WorkerPool {
  readonly capacity: number;
  readonly stats: PoolStats = { completed: 0, crashed: 0, timedOut: 0, cancelled: 0, replaced: 0 };
  private readonly slots: Slot[] = [];
  private readonly waiting: TaskSpec[] = [];
  private readonly url: URL;
  private readonly timeoutMs: number;
  private closing = false;
  /** Crashes since the last completed task: a thread that cannot even start must not spin a core. */
  private crashesInARow = 0;

  constructor(private readonly opts: PoolOptions) {
    if (
      !Number.isInteger(opts.concurrency) ||
      opts.concurrency < 1 ||
      opts.concurrency > WORKER_CONCURRENCY_MAX
    )
      throw new RangeError(`concurrency must be an integer from 1 to ${WORKER_CONCURRENCY_MAX}`);
    this.capacity = opts.concurrency;
    this.url = opts.threadUrl ?? defaultThreadUrl();
    this.timeoutMs = opts.taskTimeoutMs ?? TASK_RUN_MS_MAX;
    for (let i = 0; i < this.capacity; i++) this.slots.push(this.spawn());
  }

  run(task: TaskSpec): void {
    if (this.closing) return;
    const max = this.opts.queueMax;
    if (this.waiting.length >= max) {
      this.opts.onDone(task.id, { ok: false, error: `the worker's queue is full (${max} tasks)` });
      return;
    }
    this.waiting.push(task);
    this.pump();
  }

  /**
   * Forgets a task without an outcome (a cancelled or timed-out job): taken from the queue, or its
   * thread stopped and replaced if it runs (a computation cannot be interrupted otherwise).
   * Whether the task was here.
   */
  cancel(id: string): boolean {
    const i = this.waiting.findIndex((t) => t.id === id);
    if (i >= 0) {
      this.waiting.splice(i, 1);
      return true;
    }
    const slot = this.slots.find((s) => !s.dead && s.task?.id === id);
    if (!slot) return false;
    slot.dead = true;
    this.release(slot);
    void slot.worker.terminate();
    this.stats.cancelled++;
    this.replace(slot);
    return true;
  }

  async close(): Promise<void> {
    this.closing = true;
    this.waiting.length = 0;
    await Promise.all(
      this.slots.map((s) => {
        s.dead = true;
        if (s.timer) clearTimeout(s.timer);
        return s.worker.terminate();
      }),
    );
  }

  private spawn(): Slot {
    const worker = new Worker(this.url, { resourceLimits: { maxOldGenerationSizeMb: THREAD_HEAP_MB_MAX } });
    const slot: Slot = { worker, ready: false, task: null, timer: null, dead: false };
    worker.on('message', (m: { ready: true } | { id: string; outcome: TaskOutcome }) => {
      if (slot.dead) return;
      if ('ready' in m) {
        slot.ready = true;
        if (slot.task) this.arm(slot);
        return;
      }
      if (!slot.task || m.id !== slot.task.id) return;
      const id = slot.task.id;
      this.release(slot);
      this.crashesInARow = 0;
      this.stats.completed++;
      this.opts.onDone(id, m.outcome);
      this.pump();
    });
    worker.on('error', (err) => this.lose(slot, `the worker thread crashed (${err.message})`, 'crashed'));
    worker.on('exit', (code) => this.lose(slot, `the worker thread exited with code ${code}`, 'crashed'));
    // Threads must not keep a stopping peer alive; the peer's sockets do while it runs.
    worker.unref();
    return slot;
  }

  private release(slot: Slot): void {
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    slot.task = null;
  }

  /** A thread is gone or hung: fail its task, replace it. */
  private lose(slot: Slot, error: string, kind: 'crashed' | 'timedOut'): void {
    if (slot.dead) return;
    slot.dead = true;
    const task = slot.task;
    this.release(slot);
    if (this.closing) return;
    this.stats[kind]++;
    if (kind === 'timedOut') void slot.worker.terminate();
    if (task) this.opts.onDone(task.id, { ok: false, error });
    const n = ++this.crashesInARow;
    const delay =
      n <= THREAD_RESPAWNS_FAST_MAX
        ? 0
        : Math.min(THREAD_RESPAWN_DELAY_MS_MAX, 500 * 2 ** (n - THREAD_RESPAWNS_FAST_MAX));
    if (delay === 0) this.replace(slot);
    else setTimeout(() => this.replace(slot), delay).unref();
    this.pump();
  }

  private replace(slot: Slot): void {
    const i = this.slots.indexOf(slot);
    if (this.closing || i < 0) return;
    this.slots[i] = this.spawn();
    this.stats.replaced++;
    this.pump();
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (this.waiting.length === 0) return;
      if (slot.task || slot.dead) continue;
      const task = this.waiting.shift()!;
      slot.task = task;
      if (slot.ready) this.arm(slot);
      slot.worker.postMessage({ id: task.id, op: task.op, args: task.args });
    }
  }

  private arm(slot: Slot): void {
    slot.timer = setTimeout(
      () => this.lose(slot, `the task ran over ${this.timeoutMs} ms and was stopped`, 'timedOut'),
      this.timeoutMs,
    );
  }
}
