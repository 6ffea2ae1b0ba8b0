/**
 * Jobs (`peer run`, `peer worker`): the facade a peer installs. It routes what arrives on the `job`
 * topic to the roles: a Dispatcher per run this peer submits (dispatcher.ts: credits, attempts and
 * fences, record once, retries, reassignment, cancel), the Runner when this peer is a worker
 * (runner.ts: slots, queue, kills, refusals), the Keeper of detached runs on a peer with a store
 * that may be elected (keeper.ts: it keeps them while this peer is the coordinator, and its store
 * follows the coordinator's announcements otherwise), and the KeeperApi client every peer has
 * (keeper-client.ts); it ticks them and carries the executor's reports to the runner. Every message goes by reliable unicast (acked, retried, FIFO per destination); worker
 * adverts ride in membership tags (adverts.ts). No process, disk, socket or timer here: the
 * executor (src/cli/run/exec.ts) and the sink (src/cli/run/sink.ts) are injected.
 *
 * Wire: messages.ts. Limits: limits.ts. Shapes: types.ts.
 */
import type { MemberView, Protocol, ProtocolContext } from '../protocol.js';
import type { Membership } from '../membership.js';
import { advertOf } from './adverts.js';
import { problemOf } from './command.js';
import { Dispatcher } from './dispatcher.js';
import { JOB_TOPIC, decodeJob } from './messages.js';
import { Runner } from './runner.js';
import { Keeper } from './keeper.js';
import { KeeperClient, isReply } from './keeper-client.js';
import type {
  AttemptKey,
  ExecOutcome,
  ExecReports,
  JobChannel,
  JobDelivery,
  JobExecutor,
  JobSent,
  JobsApi,
  JobsStats,
  KeeperView,
  RunHandle,
  RunOptions,
  RunSink,
  RunSpec,
  RunStore,
  WorkerAdvert,
} from './types.js';
import { randomHexId } from '../runtime.js';

export interface JobsOptions {
  /** The group has a key: only then may a worker run commands. */
  keyed: boolean;
  /** This peer is a worker: it runs what submitters send, through this. */
  executor?: JobExecutor;
  /** Who coordinates (election.ts): the keeper of detached runs; without it, keeper calls are refused. */
  view?: KeeperView;
  /**
   * Where this peer keeps detached runs: given on every peer that stands in the election (it keeps
   * them once elected; until then its store follows the keeper's announcements).
   */
  store?: RunStore;
}

export type JobsMembership = Pick<Membership, 'get' | 'list' | 'setTags' | 'ownTags'>;

export class Jobs implements Protocol, ExecReports, JobsApi {
  /** Jobs travel on reliable delivery's topic: no datagram type of their own. */
  readonly messages = {};
  readonly stats: JobsStats = {
    duplicateResults: 0,
    wrongSender: 0,
    unknownRun: 0,
    refusedJobs: 0,
    staleFences: 0,
    reassigned: 0,
    killed: 0,
    malformed: 0,
  };
  readonly runner: Runner | null;
  readonly keeper: KeeperClient;
  /** The keeper role, on a peer with a store and a view of the election. */
  readonly keeping: Keeper | null;
  private readonly runs = new Map<string, Dispatcher>();
  private readonly queuedBytes: () => number;
  private readonly send: (
    to: string,
    payload: string | Uint8Array,
    done?: Parameters<JobChannel['sendTo']>[3],
  ) => void;

  /** Membership as the roles see it: with this peer in it when it is a worker (see withSelf). */
  private readonly membership: JobsMembership;

  constructor(
    private readonly ctx: ProtocolContext,
    channel: JobChannel,
    membership: JobsMembership,
    opts: JobsOptions,
  ) {
    this.membership = opts.executor ? withSelf(ctx, membership) : membership;
    this.send = (to, payload, done) =>
      to === ctx.self.id ? this.toSelf(payload, done) : void channel.sendTo(to, JOB_TOPIC, payload, done);
    this.queuedBytes = () => channel.queuedBytes();
    const view = opts.view ?? null;
    this.runner = opts.executor
      ? new Runner(ctx, this.send, this.membership, opts.executor, opts.keyed, this.stats, () =>
          view ? view.coordinator() : null,
        )
      : null;
    opts.executor?.bind(this);
    this.keeping =
      view && opts.store
        ? new Keeper(
            ctx,
            (to, payload) => this.send(to, payload),
            (payload) => void channel.publish(JOB_TOPIC, payload),
            view,
            opts.store,
            { host: (...a) => this.host(...a), forget: (run) => this.runs.delete(run) },
            this.stats,
            () => this.workers().map((a) => a.id),
          )
        : null;
    this.keeper = new KeeperClient(ctx, this.send, view, this.stats);
    channel.on(JOB_TOPIC, (d) => {
      // Any job message can start work the ticks then drive (a run, an answer to wait for).
      this.ctx.wakeAt(this.ctx.now());
      return this.onData(d);
    });
  }

  /**
   * Starts a run from this peer; the caller feeds its jobs (room(), feed()) and hears of it by
   * events ('run-room', 'run-finished', 'run-failed', 'run-cancelled'). A spec out of bounds
   * throws a RangeError saying which (the CLI checks with problemOf() first).
   */
  startRun(spec: Omit<RunSpec, 'run'>, sink: RunSink, opts: RunOptions): RunHandle {
    const problem = problemOf(spec);
    if (problem) throw new RangeError(problem);
    if (spec.transfers.length > 0 && !opts.files) throw new RangeError('--transfer needs a file reader');
    if (!Number.isInteger(opts.retries) || opts.retries < 1)
      throw new RangeError('retries must be 1 or more');
    const run = randomHexId(this.ctx.random);
    const d = new Dispatcher(
      this.ctx,
      this.send,
      this.membership,
      { ...spec, run },
      sink,
      opts,
      this.stats,
      () => this.runs.delete(run),
      () => this.queuedBytes(),
    );
    this.runs.set(run, d);
    this.ctx.wakeAt(this.ctx.now());
    return d;
  }

  /** A Dispatcher for a run the keeper hosts, routed as this peer's own runs are. */
  private host(
    spec: RunSpec,
    sink: RunSink,
    opts: RunOptions,
    attemptsBefore: number,
    onOver: () => void,
  ): Dispatcher {
    const d = new Dispatcher(
      this.ctx,
      this.send,
      this.membership,
      spec,
      sink,
      opts,
      this.stats,
      () => {
        if (this.runs.get(spec.run) === d) this.runs.delete(spec.run);
        onOver();
      },
      () => this.queuedBytes(),
      attemptsBefore,
    );
    this.runs.set(spec.run, d);
    this.ctx.wakeAt(this.ctx.now());
    return d;
  }

  /**
   * A message to this peer itself (a keeper that is a worker too places jobs on its own runner):
   * handled on the next turn, in order, as reliable delivery would; acked once its handler's
   * promise, if any, resolves.
   */
  private toSelf(payload: string | Uint8Array, done?: (r: JobSent) => void): void {
    const data = typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(payload);
    this.ctx.soon(() => {
      const handled = this.onData({ from: this.ctx.self.id, fromName: this.ctx.self.name, data });
      void Promise.resolve(handled).then(() => done?.({ ok: true }));
    });
  }

  /** Live workers as their tags advertise them. */
  workers(): WorkerAdvert[] {
    return this.membership
      .list()
      .map(advertOf)
      .filter((a): a is WorkerAdvert => a !== null);
  }

  output(key: AttemptKey, stream: 1 | 2, chunk: Uint8Array): void {
    this.runner?.output(key, stream, chunk);
  }

  ended(key: AttemptKey, outcome: ExecOutcome): void {
    this.runner?.ended(key, outcome);
  }

  onMessage(): void {
    // Nothing comes as a datagram of its own (see `messages`).
  }

  /**
   * At the fixed cadence while a run, a job or a request to the keeper is under way (their many
   * timeouts are checked every tick); otherwise only the keeper role's own deadlines.
   */
  tick(now: number): number | void {
    for (const d of [...this.runs.values()]) d.tick(now);
    this.runner?.tick(now);
    this.keeping?.tick(now);
    this.keeper.tick(now);
    if (this.runs.size > 0 || this.runner?.idle() === false || this.keeper.busy()) return;
    return this.keeping?.nextDue(now) ?? Infinity;
  }

  leave(): void {
    this.runner?.shutdown();
  }

  private onData(d: JobDelivery): Promise<unknown> | undefined {
    const m = decodeJob(d.data);
    if (!m) {
      this.stats.malformed++;
      return;
    }
    switch (m.type) {
      case 'jb.done':
        return this.dispatcher(m.body.run)?.onDone(d.from, d.fromName, m.body, m.bytes);
      case 'jb.full':
        return void this.dispatcher(m.body.run)?.onFull(d.from, m.body);
      case 'jb.refuse':
        return void this.dispatcher(m.body.run)?.onRefuse(d.from, m.body);
      case 'jb.out':
        return void this.dispatcher(m.body.run)?.onOut(d.from, m.body, m.bytes);
      case 'jb.ret':
        return void this.dispatcher(m.body.run)?.onRet(d.from, m.body, m.bytes);
      case 'jb.file':
        if (this.runner) this.runner.onFile(d.from, m.body, m.bytes);
        else this.stats.unknownRun++;
        return;
      case 'jb.open':
        if (this.runner) this.runner.onOpen(d.from, d.fromName, m.body);
        else this.stats.unknownRun++;
        return;
      case 'jb.jobs':
        if (this.runner) this.runner.onJobs(d.from, m.body);
        else this.stats.unknownRun++;
        return;
      case 'jb.cancel':
        return void this.runner?.onCancel(d.from, m.body);
      case 'jb.close':
        return void this.runner?.onClose(d.from, m.body.run);
      case 'jd.hand':
      case 'jd.get':
      case 'jd.cancel':
      case 'jd.list': {
        const reply = this.keeping?.answer(d.from, d.fromName, m) ?? null;
        if (reply !== null) this.send(d.from, reply);
        return;
      }
      case 'jd.run':
        return void this.keeping?.onKept(d.from, m.body);
      case 'jd.fin':
        return void this.keeping?.onFin(d.from, m.body, m.bytes);
      case 'jd.state':
        return void this.keeping?.onState(d.from, m.body);
      default:
        if (isReply(m)) this.keeper.onReply(d.from, m);
    }
  }

  private dispatcher(run: string): Dispatcher | undefined {
    const d = this.runs.get(run);
    if (!d) this.stats.unknownRun++;
    return d;
  }
}

/** Where a peer's own entry says it is: a constant, as its own address never changes for itself. */
const SELF_ADDRESS = 'self';

/**
 * Membership with this peer in it, for a worker: a keeper that is a worker too places the jobs of
 * the runs it hosts on its own runner (messages to itself go through toSelf), and its runner
 * never takes itself for a gone submitter. Membership lists only the others.
 */
function withSelf(ctx: ProtocolContext, m: JobsMembership): JobsMembership {
  const self = (): MemberView => ({
    id: ctx.self.id,
    name: ctx.self.name,
    address: SELF_ADDRESS,
    state: 'alive',
    incarnation: ctx.self.incarnation,
    lastSeenMs: 0,
    duplicateName: false,
    tags: m.ownTags,
  });
  return {
    get: (id) => (id === ctx.self.id ? self() : m.get(id)),
    list: () => [...m.list(), self()],
    setTags: (tags) => m.setTags(tags),
    get ownTags() {
      return m.ownTags;
    },
  };
}
