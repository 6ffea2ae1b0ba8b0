/**
 * Distributed tasks (workers and task clients, without a server).
 *
 * Roles, one state machine each in a file of its own; a peer may run several, and this file
 * routes each message to the role that handles it:
 *  - submitter.ts: sends a task to the coordinator until accepted, then waits for its result.
 *  - coordinator.ts: the peer the election (CoordinatorView) names; queues, assigns, reassigns,
 *    records each result once and returns it.
 *  - worker.ts: a peer with an executor; runs what it is assigned and reports results.
 *  - follower.ts: every other peer records the coordinator's announcements in its log.
 *  - lister.ts: fetches the coordinator's log a page at a time (`peer task list`).
 * link.ts is how they reach each other (local delivery when a peer is both ends); messages.ts
 * declares the wire; ops.ts the operations a worker runs; limits.ts every timing and bound.
 *
 * Guarantees. A task is executed at least once while its submitter or a worker holding it lives;
 * its result is recorded at most once per peer's log (by task id: TaskLog.finish refuses a second
 * result, and a result for a done task is only acknowledged), so exactly once at the coordinator
 * that completes it. Operations are deterministic, so a second execution gives the same value.
 *
 * Coordinator change. Messages from the coordinator carry its term; workers and submitters ignore
 * terms below their view's. When the coordinator (or its term) changes, submitters re-send every
 * outstanding task, workers send a status listing the tasks they hold (so the new coordinator does
 * not run them again) and re-send their unacknowledged results; the new coordinator also resumes
 * the outstanding tasks of its own log, which every peer fills from the coordinator's `tk.new` and
 * `tk.fin` multicasts. It waits TAKEOVER_DISPATCH_DELAY_MS before dispatching so the statuses
 * arrive first.
 *
 * Failure modes. A lost datagram is repaired by the retries above. A worker crash is seen through
 * membership (dead or left) or through its status (a restarted worker holds nothing): its tasks go
 * back to the queue. A worker that never answers an assignment gets ASSIGN_SENDS_MAX tries, then
 * the task goes elsewhere. Duplicate executions are possible (a reassignment racing a slow worker,
 * a takeover racing a status) and harmless. A task whose submitter left before acceptance is lost,
 * as it never reached anyone. Every queue is bounded: a full coordinator rejects (the submitter
 * retries later), a full worker refuses an assignment (the coordinator tries another).
 *
 * A failing disk (TaskLog writes that fail: a full disk, EIO). Acknowledged means durable, and two
 * writes are acknowledged: the task's record at acceptance, and its result. A coordinator that
 * cannot store a new task does not accept it: it rejects it saying why (`st`), and the submitter
 * gives up with that reason instead of waiting. A result it cannot store is not acknowledged
 * (no `tk.done`, no `tk.fin`): the task stays with its worker, which keeps the result and re-sends
 * it every RESULT_RETRY_MS, so the result is recorded by itself once writes work again. The other
 * writes (a task's state while it moves between workers, what followers hear) only speed up a
 * takeover: one that fails costs at most a second execution of a task, which is harmless.
 */
import type { Envelope } from '../wire.js';
import type { Protocol, ProtocolContext } from '../protocol.js';
import type { Membership } from '../membership.js';
import type { Address } from '../transport/transport.js';
import { Coordinator } from './coordinator.js';
import { Follower } from './follower.js';
import { INBOX_DRAIN_MAX } from './limits.js';
import { Link, type Sender } from './link.js';
import { Lister } from './lister.js';
import { MemoryTaskLog } from './memory-log.js';
import { FROM_COORDINATOR, MESSAGES, type TaskBodies, type TaskType } from './messages.js';
import type { TaskOutcome } from '../jobs/ops.js';
import { Submitter } from './submitter.js';
import type { CoordinatorView, TaskExecutor, TaskLog, TasksStats } from './types.js';
import { Worker } from './worker.js';

export interface TasksOptions {
  view: CoordinatorView;
  /** Where task states go; a bounded in-memory log by default. */
  log?: TaskLog;
  /** Present: this peer is a worker. */
  executor?: TaskExecutor;
}

/** One peer's tasks protocol: the roles it runs, and the routing of each message to its role. */
export class Tasks implements Protocol {
  readonly messages = MESSAGES.checks;
  readonly stats: TasksStats = {
    duplicateResults: 0,
    unstoredResults: 0,
    refusedAssignments: 0,
    reassigned: 0,
    wrongSender: 0,
  };
  readonly log: TaskLog;
  private readonly link: Link;
  private readonly submitter: Submitter;
  private readonly coordinator: Coordinator;
  private readonly follower: Follower;
  /** Only on a peer with an executor. */
  private readonly worker: Worker | null;
  private readonly lister: Lister;
  /** The role that handles each message type, from the network or from this peer itself. */
  private readonly roles: { [T in TaskType]: (body: TaskBodies[T], from: Sender) => void } = {
    'tk.submit': (b, from) => this.coordinator.onSubmit(from, b),
    'tk.accept': (b) => this.submitter.onAccept(b),
    'tk.reject': (b) => this.submitter.onReject(b),
    'tk.new': (b) => this.follower.onNew(b),
    'tk.assign': (b, from) => this.worker?.onAssign(from, b),
    'tk.ack': (b, from) => this.coordinator.onAck(from, b),
    'tk.result': (b, from) => this.coordinator.onResult(from, b),
    'tk.done': (b) => this.worker?.onDone(b),
    'tk.fin': (b) => {
      // Every peer records what it sees; the submitter also delivers its result, once.
      this.follower.onFinished(b);
      this.submitter.onFinished(b);
    },
    'tk.status': (b, from) => this.coordinator.onStatus(from, b),
    'tk.list': (b, from) => this.coordinator.onList(from, b),
    'tk.page': (b) => this.lister.onPage(b),
  };
  private readonly dispatch = MESSAGES.dispatch(this.roles);

  constructor(ctx: ProtocolContext, membership: Membership, opts: TasksOptions) {
    this.log = opts.log ?? new MemoryTaskLog();
    this.link = new Link(ctx, membership, opts.view);
    this.worker = opts.executor ? new Worker(ctx, this.link, membership, opts.executor, this.stats) : null;
    this.submitter = new Submitter(ctx, this.link);
    this.coordinator = new Coordinator(ctx, this.link, membership, this.log, this.stats, this.worker);
    this.follower = new Follower(ctx, this.log, () => this.coordinator.isLeading);
    this.lister = new Lister(ctx, this.link);
  }

  // ---- public API ----

  /** Queues a task for the group; returns its id. Throws TaskInputError on bad input or a full queue. */
  submit(op: string, args: unknown[]): string {
    const id = this.submitter.submit(op, args);
    this.drain();
    return id;
  }

  /** Tasks submitted here without a result yet. */
  outstanding(): number {
    return this.submitter.outstanding();
  }

  /** Worker: a task ended. Called by the executor, at any time. */
  complete(id: string, outcome: TaskOutcome): void {
    if (!this.worker) return;
    this.worker.complete(id, outcome);
    this.drain();
  }

  /** Worker: tasks held (running, waiting, or finished and not yet acknowledged). */
  heldCount(): number {
    return this.worker?.heldCount() ?? 0;
  }

  /** Coordinator: outstanding tasks by state. */
  coordinatorCounts(): Record<'queued' | 'assigned' | 'running', number> {
    return this.coordinator.counts();
  }

  /** Asks the coordinator for up to `limit` tasks, most recent first; answers with a 'task-list' event. */
  requestList(limit: number): void {
    this.lister.request(limit);
    this.drain();
  }

  // ---- Protocol ----

  onMessage(env: Envelope, from: Address): void {
    if (this.accepts(env.t, { id: env.i, name: env.n, address: from })) this.dispatch(env, from);
    this.drain();
  }

  tick(now: number): void {
    this.coordinator.tick(now);
    this.worker?.tick(now);
    this.submitter.tick(now);
    this.lister.tick(now);
    this.drain();
  }

  /** False (and counted) for a message its sender may not send. */
  private accepts(type: string, from: Sender): boolean {
    // A forged fin would hand a submitter a result no worker computed, and record it in every log;
    // a forged assign would run work nobody asked for. Lost to a coordinator change, the real ones
    // are sent again (see the header).
    const wrong = FROM_COORDINATOR.has(type)
      ? from.id !== this.link.view.coordinator()
      : type === 'tk.result' && !this.coordinator.isWorker(from);
    if (wrong) this.stats.wrongSender++;
    return !wrong;
  }

  /** Delivers what this peer posted to itself, as the network delivers to the same handlers. */
  private deliver<T extends TaskType>(type: T, body: TaskBodies[T]): void {
    if (this.accepts(type, this.link.me)) this.roles[type](body, this.link.me);
  }

  private drain(): void {
    for (let n = 0; n < INBOX_DRAIN_MAX; n++) {
      const m = this.link.takeLocal();
      if (!m) return;
      this.deliver(m.type, m.body);
    }
  }
}
