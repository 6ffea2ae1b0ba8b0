/**
 * One attached run, from the submitter's side: wait for workers, start the run, feed it input as
 * it has room (RunHandle.room() on 'run-room'), and end with GNU parallel's exit status: 0 every
 * job ok, 1-100 the number that failed, 101 more, 130 after Ctrl-C, 255 any other error.
 *
 * Ctrl-C (interrupt()) cancels every job everywhere and waits for the workers to confirm their
 * process groups are gone ('run-cancelled', which the protocol sends once all confirmed or its
 * own wait ran out); a second Ctrl-C stops waiting at once.
 */
import type { PeerEvent } from '../../p2p/protocol.js';
import { JOB_CANCEL_WAIT_MS } from '../../p2p/jobs/limits.js';
import type { JobsApi, RunCounts, RunHandle, RunOptions, RunSpec } from '../../p2p/jobs/types.js';
import { UsageError } from '../network.js';
import type { JobFeed } from './input.js';
import type { RunOutput } from './sink.js';

/** GNU parallel's exit status for any error but failed jobs (Ctrl-C: EXIT_INTERRUPTED in base.ts). */
export const EXIT_ERROR = 255;
/** Failed jobs up to this are the exit status itself; more exit with FAILED_MORE. */
export const FAILED_COUNTED_MAX = 100;
export const FAILED_MORE = 101;
/** How often the workers' adverts are read while waiting for the first ones. */
export const DISCOVER_POLL_MS = 20;
/**
 * Past the kill grace, how long Ctrl-C waits for 'run-cancelled' at most: the protocol's own wait
 * for confirmations and a second more, so a protocol that never says cannot hold the terminal.
 */
export const CANCEL_WAIT_SLACK_MS = JOB_CANCEL_WAIT_MS + 1000;

/** The run could not be done at all (no worker, refused, bad input mid-run): one line, exit 255. */
export class RunError extends Error {
  override name = 'RunError';
}

/** GNU parallel's exit status for a run that ended with `failed` failed jobs. */
export function exitForFailures(failed: number): number {
  return failed <= FAILED_COUNTED_MAX ? failed : FAILED_MORE;
}

export type Listen = (listener: (e: PeerEvent) => void) => () => void;

export interface DiscoverOptions {
  discoverMs: number;
  /** --on all or names: wait the whole window (or until every named worker is seen). */
  wholeWindow: boolean;
  names: string[] | null;
}

/**
 * Waits for workers that run commands: the first one is enough without --on, as its credits
 * are used at once and later ones join the run as they are heard. None within the window: a
 * RunError that says what to start.
 */
export async function discoverWorkers(jobs: JobsApi, o: DiscoverOptions): Promise<void> {
  const deadline = Date.now() + o.discoverMs;
  const enough = () => {
    const exec = jobs.workers().filter((w) => w.allowExec);
    if (o.names) return o.names.every((n) => exec.some((w) => w.name === n));
    return !o.wholeWindow && exec.length > 0;
  };
  while (!enough() && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, DISCOVER_POLL_MS));
  const all = jobs.workers();
  if (all.some((w) => w.allowExec)) return;
  if (all.length > 0)
    throw new RunError(
      `no worker accepts commands (${all.length} ${all.length === 1 ? 'worker' : 'workers'} without --allow-exec); start workers with peer worker --allow-exec --key-file FILE`,
    );
  throw new RunError(
    `no worker answered within ${o.discoverMs} ms; start one with peer worker --allow-exec --key-file FILE (the same key), and check --interface, --group and --port`,
  );
}

export type RunEnd =
  | { kind: 'finished' }
  | { kind: 'failed'; why: string }
  | { kind: 'interrupted'; unconfirmed: number }
  | { kind: 'left' };

export class RunSession {
  private handle: RunHandle | null = null;
  private ending: ((end: RunEnd) => void) | null = null;
  private readonly early: PeerEvent[] = [];
  private pumping = false;
  private again = false;
  private fedAll = false;
  private interrupts = 0;
  /** Why the run stops early (bad input, a joblog row not written); it fails with it. */
  private problem: Error | null = null;

  constructor(
    private readonly jobs: JobsApi,
    private readonly listen: Listen,
    private readonly feed: JobFeed,
    private readonly sink: RunOutput,
    private readonly graceMs: number,
  ) {}

  /** The run's id; null before it started. */
  get runId(): string | null {
    return this.handle?.run ?? null;
  }

  /** Where the run stands (for the progress line); null before it started. */
  counts(): RunCounts | null {
    return this.handle?.counts() ?? null;
  }

  /** Runs to the end; a RunError or UsageError when the run could not be done. */
  async run(spec: Omit<RunSpec, 'run'>, opts: RunOptions): Promise<RunEnd> {
    const done = new Promise<RunEnd>((resolve) => (this.ending = resolve));
    const off = this.listen((e) => this.onEvent(e));
    try {
      // Told from inside the protocol's recording of a result: stopped once that is over.
      this.sink.onJoblogFailure = (why) => queueMicrotask(() => this.stop(new RunError(why)));
      this.handle = this.jobs.startRun(spec, this.sink, opts);
      for (const e of this.early.splice(0)) this.onEvent(e);
      this.pump();
      const end = await done;
      if (this.problem) throw this.problem;
      if (end.kind === 'failed') throw new RunError(end.why);
      return end;
    } finally {
      off();
      this.sink.onJoblogFailure = null;
    }
  }

  /** Ctrl-C: the first cancels and waits for the workers; the second stops waiting. */
  interrupt(): void {
    this.interrupts++;
    if (!this.handle || this.interrupts > 1) return this.end({ kind: 'left' });
    this.cancel(this.handle);
  }

  /** The run cannot go on: what runs is cancelled, and the run fails with `problem`. */
  private stop(problem: Error): void {
    if (this.problem !== null || !this.handle) return;
    this.problem = problem;
    if (this.interrupts === 0) this.cancel(this.handle);
  }

  /** Cancels every job; the run ends on 'run-cancelled', or after a bounded wait for it. */
  private cancel(handle: RunHandle): void {
    handle.cancel();
    const bound = setTimeout(
      () => this.end({ kind: 'interrupted', unconfirmed: -1 }),
      this.graceMs + CANCEL_WAIT_SLACK_MS,
    );
    bound.unref();
  }

  private onEvent(e: PeerEvent): void {
    if (
      e.kind !== 'run-room' &&
      e.kind !== 'run-finished' &&
      e.kind !== 'run-failed' &&
      e.kind !== 'run-cancelled'
    )
      return;
    if (!this.handle) {
      this.early.push(e);
      return;
    }
    if (e.run !== this.handle.run) return;
    if (e.kind === 'run-room') return this.pump();
    if (e.kind === 'run-failed') return this.end({ kind: 'failed', why: e.why });
    if (e.kind === 'run-cancelled')
      return this.end({ kind: 'interrupted', unconfirmed: e.unconfirmed.length });
    // Every job has its result: nothing runs any more, even when a cancel is under way.
    this.end(this.interrupts > 0 ? { kind: 'interrupted', unconfirmed: 0 } : { kind: 'finished' });
  }

  private end(end: RunEnd): void {
    const resolve = this.ending;
    this.ending = null;
    resolve?.(end);
  }

  /** Feeds what the run has room for; one pump at a time (reading input is asynchronous). */
  private pump(): void {
    if (this.pumping) {
      this.again = true;
      return;
    }
    if (this.fedAll || this.interrupts > 0 || this.problem !== null || !this.handle) return;
    this.pumping = true;
    void this.fill(this.handle).finally(() => {
      this.pumping = false;
      if (this.again) {
        this.again = false;
        this.pump();
      }
    });
  }

  private async fill(handle: RunHandle): Promise<void> {
    try {
      for (let room = handle.room(); room > 0 && !this.fedAll; room = handle.room()) {
        const { jobs, ended } = await this.feed.take(room);
        if (this.interrupts > 0 || this.problem !== null) return;
        this.sink.expect(jobs);
        handle.feed(jobs, ended);
        this.fedAll = ended;
      }
    } catch (err) {
      // Bad input mid-run (a line too long, not UTF-8, a read error): what runs is cancelled.
      this.stop(err instanceof UsageError ? err : new RunError((err as Error).message));
    }
  }
}
