/**
 * Test support for the jobs protocol (src/p2p/jobs): an executor in virtual time that models what
 * the process executor does with real processes (slots, one process group per attempt, SIGTERM
 * then SIGKILL after the grace, jobs that ignore SIGTERM), a sink that keeps what it is given, and
 * a harness: a simulated cluster of one submitter and workers, each with reliable delivery and Jobs.
 */
import { expect } from 'vitest';
import { PROFILES } from '../../src/p2p/config.js';
import { ReliableDelivery } from '../../src/p2p/reliable/index.js';
import {
  Jobs,
  type AttemptKey,
  type ExecOutcome,
  type ExecReports,
  type JobExecutor,
  type JobInput,
  type JobResult,
  type KillReason,
  type RunHandle,
  type RunOptions,
  type RunSink,
  type RunSpec,
  type StartRequest,
} from '../../src/p2p/jobs/index.js';
import type { PeerEvent } from '../../src/p2p/protocol.js';
import type { LinkFaults, VirtualRuntime } from '../../src/p2p/transport/sim.js';
import type { Transport } from '../../src/p2p/transport/transport.js';
import { SimCluster, type SimPeer } from './cluster.js';
import { OpExecutor, WorkerExecutor, type OpThreads } from '../../src/cli/run/ops.js';
import type { TaskSpec } from '../../src/cli/worker-pool.js';
import { runTask } from '../../src/p2p/jobs/ops.js';

const SIGTERM = 15;
const SIGKILL = 9;
/** A process group that honours SIGTERM is empty this long after it. */
const TERM_EXIT_MS = 1;

/** How a simulated job behaves, decided per start. */
export interface SimJob {
  durationMs: number;
  exit: number;
  ignoresTerm: boolean;
  stdout?: string;
  /** Output reported while it runs, evenly spread over its duration. */
  pieces?: string[];
  /** `--return` files it reports when it ends (as the process executor reads them from the job dir). */
  returned?: ExecOutcome['returned'];
}

interface Group {
  req: StartRequest;
  startedAt: number;
  end: () => void;
  cancelEnd: () => void;
  killedWith: number;
}

const keyOf = (k: AttemptKey) => `${k.run}/${k.job}/${k.attempt}`;

export class SimJobExecutor implements JobExecutor {
  private reports: ExecReports | null = null;
  private readonly groups = new Map<string, Group>();
  /** Every start, in order, over the executor's life. */
  readonly started: StartRequest[] = [];
  /** Kills asked for, with their reason. */
  readonly kills: Array<AttemptKey & { why: KillReason }> = [];
  /** Most groups alive at once. */
  maxAlive = 0;
  /** False once its peer crashed: its processes died with it and nothing more is reported. */
  up = true;

  constructor(
    readonly slots: number,
    readonly allowExec: boolean,
    private readonly rt: VirtualRuntime,
    private readonly behave: (req: StartRequest) => SimJob,
  ) {}

  bind(reports: ExecReports): void {
    this.reports = reports;
  }

  start(req: StartRequest): void {
    this.started.push(req);
    const job = this.behave(req);
    const startedAt = this.rt.now();
    const key = keyOf(req);
    const finish = (exit: number | null, signal: number) => {
      this.groups.delete(key);
      if (!this.up) return;
      const outcome: ExecOutcome = {
        started: true,
        exit,
        signal,
        timedOut: false,
        cancelled: false,
        startedAtWallMs: 1_700_000_000_000 + startedAt,
        runtimeUs: (this.rt.now() - startedAt) * 1000,
        stdout: Buffer.from(job.stdout ?? ''),
        stderr: new Uint8Array(0),
        truncated: false,
        returned: job.returned ?? [],
        error: null,
      };
      this.reports?.ended({ run: req.run, job: req.job, attempt: req.attempt }, outcome);
    };
    const g: Group = {
      req,
      startedAt,
      killedWith: 0,
      end: () => finish(g.killedWith ? null : job.exit, g.killedWith),
      cancelEnd: () => {},
    };
    g.cancelEnd = this.rt.schedule(job.durationMs, g.end);
    // Output as it comes (`--line-buffer`): each piece at its own time during the run.
    (job.pieces ?? []).forEach((piece, i, all) =>
      this.rt.schedule(((i + 1) * job.durationMs) / (all.length + 1), () => {
        if (this.up && this.groups.get(key) === g && !g.killedWith)
          this.reports?.output({ run: req.run, job: req.job, attempt: req.attempt }, 1, Buffer.from(piece));
      }),
    );
    this.groups.set(key, g);
    this.maxAlive = Math.max(this.maxAlive, this.groups.size);
  }

  kill(key: AttemptKey, why: KillReason, graceMs: number): void {
    const g = this.groups.get(keyOf(key));
    this.kills.push({ ...key, why });
    if (!g || g.killedWith) return;
    g.cancelEnd();
    const job = this.behave(g.req);
    if (job.ignoresTerm) {
      g.killedWith = SIGKILL;
      g.cancelEnd = this.rt.schedule(graceMs, g.end);
    } else {
      g.killedWith = SIGTERM;
      g.cancelEnd = this.rt.schedule(TERM_EXIT_MS, g.end);
    }
  }

  alive(): AttemptKey[] {
    return [...this.groups.values()].map((g) => ({ run: g.req.run, job: g.req.job, attempt: g.req.attempt }));
  }

  /** The peer crashed: its process groups die with it (the process executor's ledger kills them). */
  crash(): void {
    this.up = false;
    for (const g of this.groups.values()) g.cancelEnd();
    this.groups.clear();
  }

  /** Alive groups of one run. */
  aliveOf(run: string): number {
    return this.alive().filter((k) => k.run === run).length;
  }
}

/**
 * Worker threads in virtual time, as the pool (src/cli/worker-pool.ts) runs ops: `threads` at
 * once, the rest queued; each task takes `durationMs(op, args)` and gives runTask's outcome.
 */
export class SimThreads implements OpThreads {
  /** Every task given, in order. */
  readonly tasks: TaskSpec[] = [];
  /** Tasks cancelled while queued or running. */
  readonly cancelled: string[] = [];
  maxBusy = 0;
  private readonly running = new Map<string, () => void>();
  private readonly queue: TaskSpec[] = [];
  /** Where outcomes go (the op executor), set once it exists. */
  executor: OpExecutor | null = null;

  constructor(
    private readonly threads: number,
    private readonly rt: VirtualRuntime,
    private readonly durationMs: (op: string, args: number[]) => number,
  ) {}

  run(task: TaskSpec): void {
    this.tasks.push(task);
    this.queue.push(task);
    this.pump();
  }

  cancel(id: string): boolean {
    const i = this.queue.findIndex((t) => t.id === id);
    if (i >= 0) this.queue.splice(i, 1);
    const stop = this.running.get(id);
    stop?.();
    this.running.delete(id);
    if (i < 0 && !stop) return false;
    this.cancelled.push(id);
    this.pump();
    return true;
  }

  private pump(): void {
    while (this.running.size < this.threads && this.queue.length > 0) {
      const t = this.queue.shift()!;
      const stop = this.rt.schedule(this.durationMs(t.op, t.args), () => {
        this.running.delete(t.id);
        this.executor?.done(t.id, runTask(t.op, t.args));
        this.pump();
      });
      this.running.set(t.id, stop);
      this.maxBusy = Math.max(this.maxBusy, this.running.size);
    }
  }
}

/** A worker's executor that also runs ops, in SimThreads (`keep` is given them), as peer worker does. */
export function withOps(
  commands: SimJobExecutor,
  ops: { threads: number; opMs: (op: string, args: number[]) => number },
  rt: VirtualRuntime,
  keep: (t: SimThreads) => void,
): JobExecutor {
  const t = new SimThreads(ops.threads, rt, ops.opMs);
  t.executor = new OpExecutor(
    commands.slots,
    t,
    () => 1_700_000_000_000 + rt.now(),
    () => rt.now(),
  );
  keep(t);
  return new WorkerExecutor(t.executor, commands);
}

/** A sink that keeps every record and output chunk. */
export class MemorySink implements RunSink {
  readonly records: JobResult[] = [];
  readonly outputs: Array<{ job: number; attempt: number; stream: 1 | 2; text: string }> = [];
  /** `--return` files handed over, in order. */
  readonly returns: Array<{ job: number; index: number; text: string }> = [];

  output(job: number, attempt: number, stream: 1 | 2, chunk: Uint8Array): void {
    this.outputs.push({ job, attempt, stream, text: Buffer.from(chunk).toString() });
  }

  returned(job: number, index: number, data: Uint8Array): void {
    this.returns.push({ job, index, text: Buffer.from(data).toString() });
  }

  record(r: JobResult): void {
    this.records.push(r);
  }

  /** Records per job number. */
  perJob(): Map<number, number> {
    const m = new Map<number, number>();
    for (const r of this.records) m.set(r.job, (m.get(r.job) ?? 0) + 1);
    return m;
  }
}

export const LOSSY: Partial<LinkFaults> = { loss: 0.1, duplicate: 0.05, delayMinMs: 0.1, delayMaxMs: 5 };
/** Virtual time advanced between two turns of the microtask queue. */
const STEP_MS = 5;

export interface WorkerSpec {
  name: string;
  slots: number;
  allowExec?: boolean;
  keyed?: boolean;
}

export interface JobsHarness {
  c: SimCluster;
  submitter: SimPeer;
  workers: SimPeer[];
  /** Jobs per peer name, of its current life. */
  jobs: Map<string, Jobs>;
  /** Executors per worker name, one per life. */
  executors: Map<string, SimJobExecutor[]>;
  /** Reliable delivery per peer name, of its current life. */
  reliables: Map<string, ReliableDelivery>;
  /** Op threads per worker name, of its current life (with opts.opThreads). */
  threads: Map<string, SimThreads>;
  /** Reliable unicast datagrams sent (messages, fragments and their acks). */
  unicast: { count: number };
  /** Reliable unicast messages (not acks) sent: when, from which address, to which. */
  sends: Array<{ at: number; from: string; to: string }>;
}

/**
 * A cluster of `submitter` (no executor) and the workers, under `faults`; waits until the
 * submitter sees every worker's advert.
 */
export async function jobsCluster(
  seed: number,
  workers: WorkerSpec[],
  behave: (req: StartRequest, worker: string) => SimJob,
  faults: Partial<LinkFaults> = LOSSY,
  opts: {
    keyed?: boolean;
    others?: string[];
    /** Workers run ops too, in this many threads each, an op taking opMs (default 10 ms). */
    opThreads?: number;
    opMs?: (op: string, args: number[]) => number;
  } = {},
): Promise<JobsHarness> {
  const jobs = new Map<string, Jobs>();
  const threads = new Map<string, SimThreads>();
  const executors = new Map<string, SimJobExecutor[]>();
  const unicast = { count: 0 };
  const sends: JobsHarness['sends'] = [];
  const reliables = new Map<string, ReliableDelivery>();
  const c = new SimCluster(seed, faults, PROFILES.lan, (node, peer) => {
    const reliable = node.install((ctx, n) => new ReliableDelivery(ctx, n.membership));
    reliables.set(peer.name, reliable);
    const w = workers.find((x) => x.name === peer.name);
    const executor = w
      ? new SimJobExecutor(w.slots, w.allowExec ?? true, c.rt, (req) => behave(req, peer.name))
      : undefined;
    if (executor) executors.set(peer.name, [...(executors.get(peer.name) ?? []), executor]);
    const keyed = w?.keyed ?? opts.keyed ?? true;
    let routed: JobExecutor | undefined = executor;
    if (executor && opts.opThreads) {
      const t = new SimThreads(opts.opThreads, c.rt, opts.opMs ?? (() => 10));
      t.executor = new OpExecutor(
        executor.slots,
        t,
        () => 1_700_000_000_000 + c.rt.now(),
        () => c.rt.now(),
      );
      threads.set(peer.name, t);
      routed = new WorkerExecutor(t.executor, executor);
    }
    jobs.set(
      peer.name,
      node.install((ctx, n) => new Jobs(ctx, reliable, n.membership, { keyed, executor: routed })),
    );
  });
  c.wrapTransport = (t: Transport) =>
    countUnicast(t, unicast, (to) => sends.push({ at: c.rt.now(), from: t.address, to }));
  const submitter = await c.add('submitter');
  const ws: SimPeer[] = [];
  for (const w of workers) ws.push(await c.add(w.name));
  for (const name of opts.others ?? []) await c.add(name);
  const h = { c, submitter, workers: ws, jobs, executors, reliables, threads, unicast, sends };
  const sees = () => jobs.get('submitter')!.workers().length === workers.length;
  expect(c.rt.runUntilTrue(sees, 10_000)).toBe(true);
  return h;
}

/** Counts the unicast datagrams of reliable delivery a transport sends. */
function countUnicast(t: Transport, counter: { count: number }, message: (to: string) => void): Transport {
  const send = t.send.bind(t);
  t.send = (to, data) => {
    const head = Buffer.from(data.subarray(0, 48)).toString('latin1');
    const frame = !head.startsWith('{');
    if (frame || /"t":"r[mb]\.ua?"/.test(head)) counter.count++;
    if (frame || /"t":"r[mb]\.u"/.test(head)) message(to);
    send(to, data);
  };
  return t;
}

export const execSpec = (over: Partial<Omit<RunSpec, 'run'>> = {}): Omit<RunSpec, 'run'> => ({
  kind: 'exec',
  words: ['work', '{}'],
  env: [],
  detached: false,
  timeoutMs: null,
  graceMs: 2000,
  output: 'group',
  transfers: [],
  returns: [],
  ...over,
});

export interface RunUnderTest {
  handle: RunHandle;
  sink: MemorySink;
  /** The run's own events on the submitter. */
  events: PeerEvent[];
  /** Jobs fed so far. */
  fed: number;
  over(): boolean;
}

/**
 * Starts a run of `inputs` from the submitter, feeding them as the run asks ('run-room'), and
 * returns what a test watches.
 */
export function startRun(
  h: JobsHarness,
  inputs: JobInput[],
  opts: Partial<RunOptions> = {},
  spec = execSpec(),
  from = 'submitter',
): RunUnderTest {
  const jobs = h.jobs.get(from)!;
  const node = h.c.peers.find((p) => p.name === from)!.node;
  const sink = new MemorySink();
  const handle = jobs.startRun(spec, sink, { retries: 1, maxRunning: null, workers: null, ...opts });
  const t: RunUnderTest = {
    handle,
    sink,
    events: [],
    fed: 0,
    over: () =>
      t.events.some(
        (e) => e.kind === 'run-finished' || e.kind === 'run-failed' || e.kind === 'run-cancelled',
      ),
  };
  node.on((e) => {
    if (!('run' in e) || e.run !== handle.run) return;
    t.events.push(e);
    if (e.kind !== 'run-room') return;
    const take = inputs.slice(t.fed, t.fed + handle.room());
    t.fed += take.length;
    handle.feed(take, t.fed === inputs.length);
  });
  return t;
}

/** Jobs 1..n with input lines "1".."n", pinned to nobody. */
export function lines(n: number): JobInput[] {
  return Array.from({ length: n }, (_, i) => ({ job: i + 1, seq: i + 1, input: String(i + 1), pin: null }));
}

/** Runs virtual time until `done()` or `withinMs`, letting promises settle between steps. */
export async function runUntil(h: JobsHarness, done: () => boolean, withinMs: number): Promise<boolean> {
  for (let t = 0; t < withinMs && !done(); t += STEP_MS) {
    h.c.rt.runFor(STEP_MS);
    await new Promise((r) => setImmediate(r));
  }
  return done();
}

/** Every start of `run` the workers' executors saw, over all their lives. */
export function startsOf(h: JobsHarness, run: string): Array<StartRequest & { worker: string }> {
  const out: Array<StartRequest & { worker: string }> = [];
  for (const [worker, list] of h.executors)
    for (const e of list) for (const s of e.started) if (s.run === run) out.push({ ...s, worker });
  return out;
}
