/**
 * One run from the submitter's side (src/cli/run/session.ts), against a fake JobsApi: input fed
 * only as the run has room, the end of a run and GNU parallel's exit status, Ctrl-C (cancel, wait
 * for confirmation, a second leaves at once), refusals and bad input mid-run.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { JobFeed, LineReader } from '../../src/cli/run/input.js';
import {
  discoverWorkers,
  exitForFailures,
  RunError,
  RunSession,
  type Listen,
} from '../../src/cli/run/session.js';
import { RunOutput, type SinkOptions } from '../../src/cli/run/sink.js';
import type { PeerEvent } from '../../src/p2p/protocol.js';
import type {
  JobInput,
  JobResult,
  JobsApi,
  KeeperApi,
  JobsStats,
  RunCounts,
  RunHandle,
  RunOptions,
  RunSink,
  RunSpec,
  WorkerAdvert,
} from '../../src/p2p/jobs/types.js';

const RUN = '0123456789abcdef';
const SPEC: Omit<RunSpec, 'run'> = {
  kind: 'exec',
  words: ['echo', '{}'],
  env: [],
  detached: false,
  timeoutMs: null,
  graceMs: 100,
  output: 'group',
  transfers: [],
  returns: [],
};
const OPTS: RunOptions = { retries: 1, maxRunning: null, workers: null };

/** A jobs protocol that holds `window` jobs and lets the test finish them. */
class FakeJobs implements JobsApi {
  readonly stats = {} as JobsStats;
  readonly keeper = {} as KeeperApi;
  readonly listeners = new Set<(e: PeerEvent) => void>();
  readonly fed: JobInput[][] = [];
  ended = false;
  held: JobInput[] = [];
  cancels = 0;
  sink: RunSink | null = null;
  adverts: WorkerAdvert[] = [];
  /** Events emitted from inside startRun, before its caller has the handle. */
  onStart: PeerEvent[] = [];

  constructor(readonly window: number) {}

  listen: Listen = (l) => {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  };

  emit(e: PeerEvent): void {
    for (const l of this.listeners) l(e);
  }

  workers(): WorkerAdvert[] {
    return this.adverts;
  }

  startRun(_spec: Omit<RunSpec, 'run'>, sink: RunSink, _opts: RunOptions): RunHandle {
    this.sink = sink;
    for (const e of this.onStart) this.emit(e);
    return {
      run: RUN,
      room: () => (this.ended ? 0 : this.window - this.held.length),
      feed: (jobs, ended) => {
        this.fed.push(jobs);
        this.held.push(...jobs);
        this.ended ||= ended;
      },
      counts: () => ({}) as RunCounts,
      cancel: () => void this.cancels++,
    };
  }

  /** The oldest held job ends with `exit`; room follows, and the end when it was the last. */
  finish(exit: number): void {
    const j = this.held.shift()!;
    void this.sink!.record(result(j, exit));
    this.emit({ kind: 'run-room', run: RUN, room: 1 });
    if (this.ended && this.held.length === 0)
      this.emit({ kind: 'run-finished', run: RUN, counts: {} as RunCounts });
  }
}

function result(j: JobInput, exit: number): JobResult {
  return {
    run: RUN,
    job: j.job,
    seq: j.seq,
    attempt: 1,
    fence: 1,
    started: true,
    exit,
    signal: 0,
    timedOut: false,
    cancelled: false,
    startedAtWallMs: 0,
    runtimeUs: 0,
    stdout: new Uint8Array(),
    stderr: new Uint8Array(),
    truncated: false,
    error: null,
    worker: 'w',
    workerName: 'w',
    sendBytes: 0,
    receiveBytes: 0,
  };
}

function setup(lines: string, window: number, joblog: SinkOptions['joblog'] = null) {
  const jobs = new FakeJobs(window);
  const feed = new JobFeed(new LineReader(Readable.from([lines]), 'stdin'), new Set());
  const sink = new RunOutput({
    stdout: { write: () => true },
    stderr: { write: () => true },
    json: false,
    lines: false,
    tag: false,
    joblog,
    commandOf: (i) => `echo ${i}`,
    returns: [],
    cwd: '.',
  });
  const session = new RunSession(jobs, jobs.listen, feed, sink, 100);
  return { jobs, feed, sink, session };
}

/** Until `cond` holds (the session reads input asynchronously), with a deadline. */
async function until(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in 2 s');
    await new Promise((r) => setImmediate(r));
  }
}

describe('RunSession', () => {
  it('feeds only what the run has room for, and ends when the run finishes', async () => {
    const { jobs, sink, session } = setup('1\n2\n3\n4\n5\n', 2);
    const end = session.run(SPEC, OPTS);
    await until(() => jobs.held.length === 2);
    expect(jobs.fed.flat().map((j) => j.input)).toEqual(['1', '2']);
    jobs.finish(0);
    await until(() => jobs.held.length === 2);
    jobs.finish(1);
    await until(() => jobs.held.length === 2);
    for (let i = 0; i < 3; i++) {
      jobs.finish(i === 0 ? 2 : 0);
      await until(() => jobs.ended || jobs.held.length === 2);
    }
    expect(await end).toEqual({ kind: 'finished' });
    expect(jobs.fed.every((batch) => batch.length <= 2)).toBe(true);
    expect(jobs.fed.flat().map((j) => j.seq)).toEqual([1, 2, 3, 4, 5]);
    expect([sink.ok, sink.failed]).toEqual([3, 2]);
  });

  it('events the protocol emits while starting the run are not missed', async () => {
    const { jobs, session } = setup('1\n', 4);
    jobs.onStart = [
      { kind: 'run-failed', run: RUN, why: 'no worker accepts commands (2 workers without --allow-exec)' },
    ];
    await expect(session.run(SPEC, OPTS)).rejects.toThrow(
      new RunError('no worker accepts commands (2 workers without --allow-exec)'),
    );
  });

  it('Ctrl-C cancels once and waits for the confirmation; a second Ctrl-C leaves at once', async () => {
    const first = setup('1\n2\n', 4);
    const end = first.session.run(SPEC, OPTS);
    await until(() => first.jobs.held.length === 2);
    first.session.interrupt();
    expect(first.jobs.cancels).toBe(1);
    first.jobs.emit({ kind: 'run-cancelled', run: 'another run', killed: 0, unconfirmed: [] });
    first.jobs.emit({ kind: 'run-cancelled', run: RUN, killed: 2, unconfirmed: ['x'] });
    expect(await end).toEqual({ kind: 'interrupted', unconfirmed: 1 });

    const second = setup('1\n', 4);
    const left = second.session.run(SPEC, OPTS);
    await until(() => second.jobs.held.length === 1);
    second.session.interrupt();
    second.session.interrupt();
    expect(await left).toEqual({ kind: 'left' });
    expect(second.jobs.cancels).toBe(1);
  });

  it('bad input mid-run cancels what runs and fails with the line that says why', async () => {
    const { jobs, session } = setup('1\n2\n\0\n', 2);
    const end = session.run(SPEC, OPTS);
    await until(() => jobs.held.length === 2);
    jobs.finish(0);
    await until(() => jobs.cancels === 1);
    jobs.emit({ kind: 'run-cancelled', run: RUN, killed: 1, unconfirmed: [] });
    await expect(end).rejects.toThrow('line 3 of stdin holds a NUL byte');
  });

  it('a joblog row that cannot be written (a full disk) stops the run: what runs is cancelled, the line says why', async () => {
    const why = '--joblog jobs.log: cannot write a row (ENOSPC)';
    let writes = 0;
    const full = {
      write: () => {
        writes++;
        throw new Error(why);
      },
    };
    const { jobs, sink, session } = setup('1\n2\n3\n4\n', 2, full);
    const end = session.run(SPEC, OPTS);
    await until(() => jobs.held.length === 2);
    jobs.finish(0); // its row fails: the result still counts, and nothing more is fed
    await until(() => jobs.cancels === 1);
    expect(jobs.fed.flat().map((j) => j.seq)).toEqual([1, 2]);
    jobs.finish(0);
    jobs.emit({ kind: 'run-cancelled', run: RUN, killed: 0, unconfirmed: [] });
    await expect(end).rejects.toThrow(new RunError(why));
    expect([writes, sink.ok, jobs.cancels]).toEqual([2, 2, 1]);
  });
});

describe('exit status (GNU parallel)', () => {
  it.each([
    [0, 0],
    [1, 1],
    [100, 100],
    [101, 101],
    [5000, 101],
  ])('%d failed jobs: %d', (failed, code) => {
    expect(exitForFailures(failed)).toBe(code);
  });
});

describe('discoverWorkers', () => {
  const w = (name: string, allowExec: boolean): WorkerAdvert => ({
    id: name,
    name,
    slots: 1,
    held: 0,
    allowExec,
  });

  it('nobody, or only workers without --allow-exec: one line that says what to start', async () => {
    const jobs = new FakeJobs(1);
    await expect(discoverWorkers(jobs, { discoverMs: 30, wholeWindow: false, names: null })).rejects.toThrow(
      /^no worker answered within 30 ms; start one with peer worker --allow-exec --key-file FILE/,
    );
    jobs.adverts = [w('a', false), w('b', false)];
    await expect(discoverWorkers(jobs, { discoverMs: 30, wholeWindow: false, names: null })).rejects.toThrow(
      'no worker accepts commands (2 workers without --allow-exec)',
    );
  });

  it('the first worker is enough without --on; --on waits the window or for every name', async () => {
    const jobs = new FakeJobs(1);
    jobs.adverts = [w('a', true)];
    let t = Date.now();
    await discoverWorkers(jobs, { discoverMs: 5000, wholeWindow: false, names: null });
    expect(Date.now() - t).toBeLessThan(1000);
    t = Date.now();
    await discoverWorkers(jobs, { discoverMs: 5000, wholeWindow: true, names: ['a'] });
    expect(Date.now() - t).toBeLessThan(1000);
    t = Date.now();
    await discoverWorkers(jobs, { discoverMs: 100, wholeWindow: true, names: null });
    expect(Date.now() - t).toBeGreaterThanOrEqual(100);
  });
});
