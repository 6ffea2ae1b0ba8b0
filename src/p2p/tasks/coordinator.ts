/**
 * Distributed tasks (workers and task clients, without a server).
 *
 * Roles, all in one module so one peer may hold several:
 *  - worker: has an executor (threads in the CLI, virtual time in tests). It advertises its
 *    capacity and load in membership tags (`wk`, `ld`), runs what the coordinator assigns, and
 *    sends each result to the current coordinator until that coordinator acknowledges it.
 *  - submitter: validates a task, sends it to the current coordinator until accepted, then polls
 *    slowly until the result arrives (the coordinator also pushes it, by unicast and multicast).
 *  - coordinator: the peer the election (CoordinatorView) names. It queues tasks, assigns each to
 *    the least-loaded live worker, retries an assignment until the worker acknowledges it,
 *    reassigns the tasks of a worker that dies, leaves, or stops holding them, records every
 *    state change in the TaskLog, records the result once, and returns it to the submitter.
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
import { is, isPeerId, type Check, type Envelope, type PeerId } from '../wire.js';
import type { Protocol, ProtocolContext } from '../protocol.js';
import type { Membership } from '../membership.js';
import type { CoordinatorView as ElectionView } from '../election.js';
import type { Address } from '../transport/transport.js';
import type { WriteFailureKind } from '../write-failure.js';
import {
  TASK_ARGS_JSON_CHARS_MAX,
  TASK_ARGS_MAX,
  TASK_ERROR_CHARS_MAX,
  TASK_RESULT_CHARS_MAX,
  validateTask,
  type TaskOutcome,
} from './ops.js';

/** What tasks need of the election (election.ts): who coordinates, and in which term. */
export type CoordinatorView = Pick<ElectionView, 'coordinator' | 'isCoordinator' | 'term'>;

// Timings (ms). Independent of the profile: they only bound how fast losses are repaired.
/** Re-send of a task not yet accepted. */
export const SUBMIT_RETRY_MS = 250;
/**
 * First re-send of an accepted task (a poll); each later one waits twice as long, up to
 * RESULT_POLL_MS_MAX. Results are pushed twice (unicast and multicast), so a poll is a rare repair,
 * and a batch of thousands of queued tasks must not flood the coordinator with polls.
 */
export const RESULT_POLL_MS = 3000;
export const RESULT_POLL_MS_MAX = 30_000;
/** Re-send of an assignment not yet acknowledged by its worker. */
export const ASSIGN_RETRY_MS = 300;
/** Sends of one assignment before the task goes to another worker. */
export const ASSIGN_SENDS_MAX = 6;
/** Re-send of a result not yet acknowledged by the coordinator. */
export const RESULT_RETRY_MS = 300;
/** How often a worker tells the coordinator which tasks it holds. */
export const WORKER_STATUS_INTERVAL_MS = 1000;
/** Statuses in a row that omit an acknowledged task before it is reassigned. */
export const STATUS_MISSES_MAX = 2;
/** Least time between two load-tag updates (each one sends a heartbeat at once). */
export const LOAD_TAGS_INTERVAL_MS = 200;
/** A new coordinator waits this long for workers' statuses before it dispatches. */
export const TAKEOVER_DISPATCH_DELAY_MS = 300;
/** Re-send of a list request without an answer. */
export const LIST_RETRY_MS = 300;
/** List requests without an answer before the listing fails. */
export const LIST_SENDS_MAX = 10;

// Bounds.
export const TASK_ID_HEX_CHARS = 16;
/** Outstanding tasks of one submitter. */
export const SUBMITTER_TASKS_MAX = 10_000;
/** Outstanding (not done) tasks at the coordinator; beyond it, submissions are rejected for now. */
export const COORDINATOR_TASKS_MAX = 10_000;
/** Results the coordinator keeps in memory to answer repeats (the log answers older ones). */
export const DONE_REMEMBERED_MAX = 10_000;
/** Threads one worker may advertise. */
export const WORKER_CONCURRENCY_MAX = 16;
/** Tasks a worker holds per thread (running plus waiting): keeps its threads busy between round trips. */
export const WORKER_BACKLOG_PER_THREAD = 2;
/** Datagrams one role sends in one tick for retries and polls: bounds bursts. */
export const SENDS_PER_TICK_MAX = 64;
/** Local messages handled in one drain (a peer that is its own coordinator and worker). */
export const INBOX_DRAIN_MAX = 10_000;
/** Tasks one `task list` may fetch. */
export const LIST_LIMIT_MAX = 200;
/** Items of one list page, and the page's byte budget (under DATAGRAM_PAYLOAD_BYTES_MAX). */
export const LIST_PAGE_ITEMS_MAX = 16;
export const LIST_PAGE_BYTES_MAX = 850;
/** Result or error characters shown per listed task. */
export const LIST_TEXT_CHARS_MAX = 40;
export const WHY_CHARS_MAX = 200;

/** Membership tags a worker sets: threads, and tasks held. */
export const TAG_CAPACITY = 'wk';
export const TAG_LOAD = 'ld';

export type TaskState = 'queued' | 'assigned' | 'running' | 'done' | 'failed';
export const TASK_STATES: readonly TaskState[] = ['queued', 'assigned', 'running', 'done', 'failed'];

export interface TaskSpec {
  id: string;
  op: string;
  args: number[];
}

/** One task as a log keeps it. Times are wall-clock ms (display only). */
export interface TaskRecord {
  id: string;
  op: string;
  args: number[];
  state: TaskState;
  worker: PeerId | null;
  workerName: string | null;
  submitter: PeerId | null;
  submittedAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  result: string | null;
  error: string | null;
}

/**
 * What a write to the log did: `first` is false when a finished task was left as it was; `failed`
 * says why the write did not reach the disk (then nothing was written and `first` is false).
 */
export interface LogWrite {
  first: boolean;
  failed: WriteFailureKind | null;
}

/**
 * Where task states are recorded: SQLite in the CLI (storage/tasks.ts), memory otherwise. Writes
 * return their failure (a full disk, EIO) instead of throwing; a failed write is never taken as
 * stored.
 */
export interface TaskLog {
  get(id: string): TaskRecord | undefined;
  /** Inserts or updates a task that is not done or failed; a finished task is never touched. */
  save(rec: TaskRecord): LogWrite;
  /** Records a terminal state once: `first` false, and nothing written, if the task already finished. */
  finish(rec: TaskRecord): LogWrite;
  /** Most recently submitted first. */
  list(offset: number, limit: number): TaskRecord[];
  count(): number;
  /** Tasks neither done nor failed, oldest first: a new coordinator resumes them. */
  outstanding(limit: number): TaskRecord[];
}

/** Runs tasks for a worker and calls Tasks.complete(id, outcome) when each one ends. */
export interface TaskExecutor {
  readonly capacity: number;
  run(task: TaskSpec): void;
}

/** One line of `peer task list`. */
export interface TaskSummary {
  id: string;
  op: string;
  state: TaskState;
  worker: string | null;
  durationMs: number | null;
  /** The result or error, clipped to LIST_TEXT_CHARS_MAX. */
  text: string | null;
  submittedAt: number | null;
}

export interface TaskResultEvent {
  id: string;
  op: string;
  ok: boolean;
  /** The result, or the error message. */
  value: string;
  worker: PeerId | null;
  workerName: string | null;
  durationMs: number | null;
}

declare module '../protocol.js' {
  interface PeerEventMap {
    /** Submitter: the result of one of our tasks (once per task). */
    'task-result': TaskResultEvent;
    /** Submitter: the coordinator accepted a task. */
    'task-accepted': { id: string };
    /** Submitter: the coordinator is full; the task will be re-sent. */
    'task-rejected': { id: string; why: string };
    /** Submitter: the coordinator cannot store the task (its disk fails); it is not re-sent. */
    'task-refused': { id: string; why: string; reason: WriteFailureKind };
    /** Coordinator: a result written to the log (once per task id). */
    'task-recorded': { id: string; op: string; ok: boolean; worker: PeerId | null };
    'task-assigned': { id: string; worker: PeerId; workerName: string };
    'task-reassigned': { id: string; worker: PeerId; why: string };
    /** Coordinator: this peer took over, resuming `resumed` tasks from its log. */
    'task-coordinator': { term: number; resumed: number };
    /** Worker. */
    'task-started': { id: string; op: string };
    'task-finished': { id: string; op: string; ok: boolean };
    /** Requester of a listing: the answer, or an error. */
    'task-list': { items: TaskSummary[]; total: number; error: string | null };
  }
}

export class TaskInputError extends Error {
  override name = 'TaskInputError';
}

const TASK_ID_RE = /^[0-9a-f]{16}$/;
export const isTaskId = (v: unknown): v is string => typeof v === 'string' && TASK_ID_RE.test(v);

const ID: Check = isTaskId;
const TERM = is.uint();
const OP = is.str(16, 1);
const VALUE = is.str(Math.max(TASK_RESULT_CHARS_MAX, TASK_ERROR_CHARS_MAX));
const NAME = is.str(64, 1);
const NUMS = is.array(is.num(-Number.MAX_VALUE, Number.MAX_VALUE), TASK_ARGS_MAX);
const ARGS: Check = (v) => NUMS(v) && JSON.stringify(v).length <= TASK_ARGS_JSON_CHARS_MAX;
const ITEM = is.object({
  id: ID,
  op: OP,
  st: is.literal(...TASK_STATES),
  w: is.nullable(NAME),
  ms: is.nullable(is.uint()),
  x: is.nullable(is.str(LIST_TEXT_CHARS_MAX)),
  at: is.nullable(is.uint()),
});

const MESSAGES = {
  'tk.submit': is.object({ id: ID, op: OP, a: ARGS, term: TERM }),
  'tk.accept': is.object({ id: ID, term: TERM }),
  // st: the coordinator could not store the task (a final refusal, not "full, re-send").
  'tk.reject': is.object(
    { id: ID, term: TERM, why: is.str(WHY_CHARS_MAX) },
    { st: is.literal('full', 'io', 'other') },
  ),
  'tk.new': is.object({ id: ID, op: OP, a: ARGS, s: is.nullable(is.peerId()), term: TERM }),
  'tk.assign': is.object({ id: ID, op: OP, a: ARGS, term: TERM }),
  'tk.ack': is.object({ id: ID, ok: is.bool(), term: TERM }),
  'tk.result': is.object({ id: ID, op: OP, ok: is.bool(), v: VALUE, term: TERM }),
  'tk.done': is.object({ id: ID, term: TERM }),
  'tk.fin': is.object({
    id: ID,
    op: OP,
    ok: is.bool(),
    v: VALUE,
    w: is.nullable(is.peerId()),
    wn: is.nullable(NAME),
    ms: is.nullable(is.uint()),
    term: TERM,
  }),
  'tk.status': is.object({
    held: is.array(ID, WORKER_CONCURRENCY_MAX * WORKER_BACKLOG_PER_THREAD),
    term: TERM,
  }),
  'tk.list': is.object({ q: is.uint(), off: is.uint(), lim: is.int(1, LIST_LIMIT_MAX) }),
  'tk.page': is.object({
    q: is.uint(),
    off: is.uint(),
    total: is.uint(),
    end: is.bool(),
    items: is.array(ITEM, LIST_PAGE_ITEMS_MAX),
  }),
} satisfies Record<string, Check>;

type Bodies = {
  submit: { id: string; op: string; a: number[]; term: number };
  accept: { id: string; term: number };
  reject: { id: string; term: number; why: string; st?: WriteFailureKind };
  new: { id: string; op: string; a: number[]; s: PeerId | null; term: number };
  assign: { id: string; op: string; a: number[]; term: number };
  ack: { id: string; ok: boolean; term: number };
  result: { id: string; op: string; ok: boolean; v: string; term: number };
  done: { id: string; term: number };
  fin: {
    id: string;
    op: string;
    ok: boolean;
    v: string;
    w: PeerId | null;
    wn: string | null;
    ms: number | null;
    term: number;
  };
  status: { held: string[]; term: number };
  list: { q: number; off: number; lim: number };
  page: { q: number; off: number; total: number; end: boolean; items: WireItem[] };
};
type WireItem = {
  id: string;
  op: string;
  st: TaskState;
  w: string | null;
  ms: number | null;
  x: string | null;
  at: number | null;
};

/** Who sent a message; address '' is this peer itself (local delivery). */
interface Sender {
  id: PeerId;
  name: string;
  address: Address;
}

interface Pending {
  id: string;
  op: string;
  args: number[];
  accepted: boolean;
  lastSend: number;
  /** Polls sent since acceptance: the poll interval doubles with each. */
  polls: number;
}

interface CoordTask {
  id: string;
  op: string;
  args: number[];
  submitter: PeerId | null;
  submitterAddr: Address | null;
  state: 'queued' | 'assigned' | 'running';
  worker: PeerId | null;
  workerAddr: Address;
  workerName: string | null;
  lastSend: number;
  sends: number;
  misses: number;
  submittedAt: number;
  startedAt: number | null;
}

interface Held {
  id: string;
  op: string;
  args: number[];
  outcome: TaskOutcome | null;
  /** The coordinator recorded a result for it (maybe another worker's): send nothing. */
  settled: boolean;
  lastSend: number;
  startedMs: number;
}

interface Candidate {
  id: PeerId;
  address: Address;
  name: string;
  capacity: number;
  load: number;
}

interface Listing {
  q: number;
  limit: number;
  items: TaskSummary[];
  total: number;
  lastSend: number;
  sends: number;
}

export interface TasksOptions {
  view: CoordinatorView;
  /** Where task states go; a bounded in-memory log by default. */
  log?: TaskLog;
  /** Present: this peer is a worker. */
  executor?: TaskExecutor;
}

export interface TasksStats {
  /** Results received for a task already finished: ignored (acknowledged only). */
  duplicateResults: number;
  /** Results not acknowledged because the log could not store them (the worker re-sends). */
  unstoredResults: number;
  /** Assignments refused because this worker was full. */
  refusedAssignments: number;
  reassigned: number;
  /**
   * Messages dropped for their sender: coordinator messages (accept, reject, new, assign, done,
   * fin, page) from anyone but the coordinator we follow, and results from anyone but a live worker.
   * Forged (anyone on an open LAN can send them) or from a deposed coordinator, which retries.
   */
  wrongSender: number;
}

/** Message types only the coordinator sends. */
const FROM_COORDINATOR: ReadonlySet<string> = new Set([
  'tk.accept',
  'tk.reject',
  'tk.new',
  'tk.assign',
  'tk.done',
  'tk.fin',
  'tk.page',
]);

export class Tasks implements Protocol {
  readonly messages = MESSAGES;
  readonly stats: TasksStats = {
    duplicateResults: 0,
    unstoredResults: 0,
    refusedAssignments: 0,
    reassigned: 0,
    wrongSender: 0,
  };
  readonly log: TaskLog;
  private readonly view: CoordinatorView;
  private readonly executor: TaskExecutor | null;
  private readonly inbox: Array<{ type: string; body: unknown }> = [];
  private readonly me: Sender;
  // submitter
  private readonly pending = new Map<string, Pending>();
  private submitKey = '';
  // coordinator
  private leading = false;
  private dispatchAfter = 0;
  private readonly ctasks = new Map<string, CoordTask>();
  private readonly queue = new Set<string>();
  private readonly byWorker = new Map<PeerId, Set<string>>();
  private readonly recent = new Map<string, Bodies['fin']>();
  // worker
  private readonly held = new Map<string, Held>();
  private workerKey = '';
  private lastStatus = -Infinity;
  private lastTags = -Infinity;
  private tagsLoad = -1;
  // listing
  private listing: Listing | null = null;
  private listSeq = 0;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly membership: Membership,
    opts: TasksOptions,
  ) {
    this.view = opts.view;
    this.log = opts.log ?? new MemoryTaskLog();
    this.executor = opts.executor ?? null;
    if (this.executor && (!Number.isInteger(this.executor.capacity) || this.executor.capacity < 1))
      throw new Error(`worker capacity must be a positive integer, got ${this.executor.capacity}`);
    this.me = { id: ctx.self.id, name: ctx.self.name, address: '' };
  }

  // ---- public API ----

  /** Queues a task for the group; returns its id. Throws TaskInputError on bad input or a full queue. */
  submit(op: string, args: unknown[]): string {
    const v = validateTask(op, args);
    if (!v.ok) throw new TaskInputError(v.error);
    if (this.pending.size >= SUBMITTER_TASKS_MAX)
      throw new TaskInputError(
        `${this.pending.size} tasks are outstanding already (limit ${SUBMITTER_TASKS_MAX}); wait for results`,
      );
    let id = this.newId();
    while (this.pending.has(id)) id = this.newId();
    this.pending.set(id, { id, op: v.op, args: v.args, accepted: false, lastSend: -Infinity, polls: 0 });
    this.submitterTick(this.ctx.now());
    this.drain();
    return id;
  }

  /** Tasks submitted here without a result yet. */
  outstanding(): number {
    return this.pending.size;
  }

  /** Worker: a task ended. Called by the executor, at any time. */
  complete(id: string, outcome: TaskOutcome): void {
    const h = this.held.get(id);
    if (!h || h.outcome) return;
    h.outcome = clipOutcome(outcome);
    this.ctx.emit({ kind: 'task-finished', id, op: h.op, ok: outcome.ok });
    if (h.settled) this.held.delete(id);
    else this.sendResult(h, this.ctx.now());
    this.drain();
  }

  /** Worker: tasks held (running, waiting, or finished and not yet acknowledged). */
  heldCount(): number {
    return this.held.size;
  }

  /** Coordinator: outstanding tasks by state. */
  coordinatorCounts(): Record<'queued' | 'assigned' | 'running', number> {
    const c = { queued: 0, assigned: 0, running: 0 };
    for (const t of this.ctasks.values()) c[t.state]++;
    return c;
  }

  /** Asks the coordinator for up to `limit` tasks, most recent first; answers with a 'task-list' event. */
  requestList(limit: number): void {
    const lim = Math.max(1, Math.min(LIST_LIMIT_MAX, Math.floor(limit)));
    this.listing = { q: ++this.listSeq, limit: lim, items: [], total: 0, lastSend: -Infinity, sends: 0 };
    this.listTick(this.ctx.now());
    this.drain();
  }

  // ---- Protocol ----

  onMessage(env: Envelope, from: Address): void {
    this.handle({ id: env.i, name: env.n, address: from }, env.t, env.b);
    this.drain();
  }

  tick(now: number): void {
    this.coordinatorTick(now);
    this.workerTick(now);
    this.submitterTick(now);
    this.listTick(now);
    this.drain();
  }

  private handle(from: Sender, type: string, body: unknown): void {
    // A forged fin would hand a submitter a result no worker computed, and record it in every log;
    // a forged assign would run work nobody asked for. Lost to a coordinator change, the real ones
    // are sent again (see the header).
    if (
      FROM_COORDINATOR.has(type)
        ? from.id !== this.view.coordinator()
        : type === 'tk.result' && !this.isWorker(from)
    )
      return void this.stats.wrongSender++;
    switch (type) {
      case 'tk.submit':
        return this.onSubmit(from, body as Bodies['submit']);
      case 'tk.accept':
        return this.onAccept(body as Bodies['accept']);
      case 'tk.reject':
        return this.onReject(body as Bodies['reject']);
      case 'tk.new':
        return this.onNew(body as Bodies['new']);
      case 'tk.assign':
        return this.onAssign(from, body as Bodies['assign']);
      case 'tk.ack':
        return this.onAck(from, body as Bodies['ack']);
      case 'tk.result':
        return this.onResult(from, body as Bodies['result']);
      case 'tk.done':
        return this.onDone(body as Bodies['done']);
      case 'tk.fin':
        return this.onFin(body as Bodies['fin']);
      case 'tk.status':
        return this.onStatus(from, body as Bodies['status']);
      case 'tk.list':
        return this.onList(from, body as Bodies['list']);
      case 'tk.page':
        return this.onPage(body as Bodies['page']);
    }
  }

  /** This peer, or a live member that advertises worker threads: who may send a result. */
  private isWorker(s: Sender): boolean {
    if (s.id === this.me.id) return true;
    const m = this.membership.get(s.id);
    return (m?.state === 'alive' || m?.state === 'suspect') && m.tags[TAG_CAPACITY] !== undefined;
  }

  /** Unicast, or a local delivery when the recipient is this peer. */
  private post(to: { id: PeerId; address: Address }, type: keyof typeof MESSAGES, body: unknown): void {
    if (to.id === this.me.id) this.inbox.push({ type, body });
    else this.ctx.send(to.address, type, body);
  }

  private drain(): void {
    for (let n = 0; n < INBOX_DRAIN_MAX && this.inbox.length > 0; n++) {
      const m = this.inbox.shift()!;
      this.handle(this.me, m.type, m.body);
    }
  }

  /** The current coordinator and where to reach it, or null when there is none (or it is unknown). */
  private coordinatorTarget(): { id: PeerId; address: Address } | null {
    const id = this.view.coordinator();
    if (!id) return null;
    if (id === this.me.id) return this.me;
    const m = this.membership.get(id);
    if (!m || m.state === 'dead' || m.state === 'left') return null;
    return { id, address: m.address };
  }

  private newId(): string {
    let s = '';
    for (let i = 0; i < TASK_ID_HEX_CHARS; i++) s += Math.floor(this.ctx.random() * 16).toString(16);
    return s;
  }

  // ---- submitter ----

  private submitterTick(now: number): void {
    if (this.pending.size === 0) return;
    const target = this.coordinatorTarget();
    if (!target) return;
    const key = `${target.id}/${this.view.term()}`;
    if (key !== this.submitKey) {
      // A new coordinator knows nothing we sent the old one: everything goes again, now.
      this.submitKey = key;
      for (const p of this.pending.values()) {
        p.accepted = false;
        p.lastSend = -Infinity;
      }
    }
    let budget = SENDS_PER_TICK_MAX;
    for (const p of this.pending.values()) {
      if (budget <= 0) break;
      const wait = p.accepted ? Math.min(RESULT_POLL_MS_MAX, RESULT_POLL_MS * 2 ** p.polls) : SUBMIT_RETRY_MS;
      if (now - p.lastSend < wait) continue;
      if (p.accepted) p.polls++;
      p.lastSend = now;
      budget--;
      this.post(target, 'tk.submit', { id: p.id, op: p.op, a: p.args, term: this.view.term() });
    }
  }

  private onAccept(b: Bodies['accept']): void {
    const p = this.pending.get(b.id);
    if (!p || b.term < this.view.term() || p.accepted) return;
    p.accepted = true;
    p.polls = 0;
    p.lastSend = this.ctx.now(); // the first poll is RESULT_POLL_MS after acceptance
    this.ctx.emit({ kind: 'task-accepted', id: b.id });
  }

  private onReject(b: Bodies['reject']): void {
    const p = this.pending.get(b.id);
    if (!p || b.term < this.view.term()) return;
    if (b.st) {
      // Re-sending would meet the same disk: the submitter is told now, not after its timeout.
      this.pending.delete(b.id);
      this.ctx.emit({ kind: 'task-refused', id: b.id, why: b.why, reason: b.st });
      return;
    }
    p.accepted = false;
    this.ctx.emit({ kind: 'task-rejected', id: b.id, why: b.why });
  }

  /** Every peer records what it sees; the submitter also delivers its result, once. */
  private onFin(b: Bodies['fin']): void {
    if (!this.leading) this.log.finish(finRecord(b, this.log.get(b.id), this.ctx.wall()));
    const p = this.pending.get(b.id);
    if (!p) return;
    this.pending.delete(b.id);
    this.ctx.emit({
      kind: 'task-result',
      id: b.id,
      op: b.op,
      ok: b.ok,
      value: b.v,
      worker: b.w,
      workerName: b.wn,
      durationMs: b.ms,
    });
  }

  private onNew(b: Bodies['new']): void {
    if (this.leading || this.log.get(b.id)) return;
    this.log.save({
      id: b.id,
      op: b.op,
      args: b.a,
      state: 'queued',
      worker: null,
      workerName: null,
      submitter: b.s,
      submittedAt: Math.round(this.ctx.wall()),
      startedAt: null,
      finishedAt: null,
      result: null,
      error: null,
    });
  }

  // ---- coordinator ----

  private coordinatorTick(now: number): void {
    if (!this.view.isCoordinator()) {
      if (this.leading) this.resign();
      return;
    }
    if (!this.leading) this.takeOver(now);
    this.reapWorkers();
    this.retryAssignments(now);
    if (now >= this.dispatchAfter) this.dispatch(now);
  }

  /** Resumes the outstanding tasks of our log; workers' statuses and submitters fill in the rest. */
  private takeOver(now: number): void {
    this.leading = true;
    this.dispatchAfter = now + TAKEOVER_DISPATCH_DELAY_MS;
    let resumed = 0;
    for (const r of this.log.outstanding(COORDINATOR_TASKS_MAX)) {
      if (this.ctasks.has(r.id) || !validateTask(r.op, r.args).ok) continue;
      resumed++;
      const t = this.newCoordTask(r.id, r.op, r.args, r.submitter, null, r.submittedAt ?? this.ctx.wall());
      this.ctasks.set(t.id, t);
      this.queue.add(t.id);
    }
    this.ctx.emit({ kind: 'task-coordinator', term: this.view.term(), resumed });
  }

  /** No longer coordinator: the next one rebuilds from re-announcements; we keep only our log. */
  private resign(): void {
    this.leading = false;
    this.ctasks.clear();
    this.queue.clear();
    this.byWorker.clear();
  }

  private newCoordTask(
    id: string,
    op: string,
    args: number[],
    submitter: PeerId | null,
    submitterAddr: Address | null,
    submittedAt: number,
  ): CoordTask {
    return {
      id,
      op,
      args,
      submitter,
      submitterAddr,
      state: 'queued',
      worker: null,
      workerAddr: '',
      workerName: null,
      lastSend: -Infinity,
      sends: 0,
      misses: 0,
      submittedAt: Math.round(submittedAt),
      startedAt: null,
    };
  }

  private onSubmit(from: Sender, b: Bodies['submit']): void {
    if (!this.view.isCoordinator()) return;
    if (!this.leading) this.takeOver(this.ctx.now());
    const term = this.view.term();
    const known = this.ctasks.get(b.id);
    if (known) {
      known.submitter = from.id;
      known.submitterAddr = from.address;
      this.post(from, 'tk.accept', { id: b.id, term });
      return;
    }
    const fin = this.finished(b.id);
    if (fin) {
      this.post(from, 'tk.fin', { ...fin, term });
      return;
    }
    if (this.ctasks.size >= COORDINATOR_TASKS_MAX) {
      this.post(from, 'tk.reject', {
        id: b.id,
        term,
        why: `the coordinator holds ${this.ctasks.size} tasks (limit ${COORDINATOR_TASKS_MAX}); re-sending`,
      });
      return;
    }
    const t = this.newCoordTask(b.id, b.op, b.a, from.id, from.address, this.ctx.wall());
    const v = validateTask(b.op, b.a);
    if (!v.ok) {
      // A submitter validates first, so this is another version or a hostile peer: answer clearly.
      const failed = this.finish(t, { ok: false, error: v.error }, null);
      if (failed) this.refuse(from, b.id, failed);
      return;
    }
    // Accepted means stored: a task accepted and then lost in a crash would never run.
    const failed = this.log.save(this.record(t)).failed;
    if (failed) {
      this.refuse(from, b.id, failed);
      return;
    }
    this.ctasks.set(t.id, t);
    this.queue.add(t.id);
    this.ctx.broadcast('tk.new', { id: t.id, op: t.op, a: t.args, s: t.submitter, term });
    this.post(from, 'tk.accept', { id: b.id, term });
    this.dispatchNow();
  }

  /** Tells a submitter that its task cannot be stored here: final, not re-sent. */
  private refuse(to: Sender, id: string, reason: WriteFailureKind): void {
    const what =
      reason === 'full' ? 'its disk is full' : reason === 'io' ? 'its disk fails (I/O error)' : 'writes fail';
    this.post(to, 'tk.reject', {
      id,
      term: this.view.term(),
      why: `the coordinator ${this.me.name.slice(0, 64)} cannot store the task: ${what}`,
      st: reason,
    });
  }

  /** Dispatches at once instead of at the next tick: a free slot idles for no tick interval. */
  private dispatchNow(): void {
    const now = this.ctx.now();
    if (this.leading && now >= this.dispatchAfter) this.dispatch(now);
  }

  private onAck(from: Sender, b: Bodies['ack']): void {
    const t = this.ctasks.get(b.id);
    if (!this.leading || !t || t.worker !== from.id || t.state !== 'assigned') return;
    if (!b.ok) {
      this.requeue(t, 'worker full');
      return;
    }
    t.state = 'running';
    t.misses = 0;
    this.log.save(this.record(t));
  }

  private onResult(from: Sender, b: Bodies['result']): void {
    if (!this.view.isCoordinator()) return; // the worker re-sends to the new coordinator
    if (!this.leading) this.takeOver(this.ctx.now());
    if (this.finished(b.id)) {
      this.post(from, 'tk.done', { id: b.id, term: this.view.term() });
      this.stats.duplicateResults++;
      return;
    }
    const t = this.ctasks.get(b.id) ?? this.newCoordTask(b.id, b.op, [], null, null, this.ctx.wall());
    const outcome: TaskOutcome = b.ok ? { ok: true, value: b.v } : { ok: false, error: b.v };
    // Acknowledged only once stored: unacknowledged, the worker keeps the result and re-sends it.
    if (this.finish(t, outcome, from)) {
      this.stats.unstoredResults++;
      return;
    }
    this.post(from, 'tk.done', { id: b.id, term: this.view.term() });
    this.dispatchNow();
  }

  private onStatus(from: Sender, b: Bodies['status']): void {
    if (!this.leading) return;
    const held = new Set(b.held);
    for (const id of held) {
      const t = this.ctasks.get(id);
      if (!t) continue;
      if (t.worker === from.id) {
        if (t.state === 'assigned') t.state = 'running';
        t.misses = 0;
      } else if (t.state === 'queued') {
        // Assigned by an earlier coordinator: let it finish there instead of running it twice.
        this.queue.delete(id);
        this.place(t, this.candidate(from), 'running');
      }
    }
    for (const id of this.byWorker.get(from.id) ?? []) {
      const t = this.ctasks.get(id);
      if (!t || t.state !== 'running' || held.has(id)) continue;
      if (++t.misses >= STATUS_MISSES_MAX) this.requeue(t, 'the worker no longer holds it');
    }
  }

  private candidate(s: Sender): Candidate {
    if (s.id === this.me.id) return this.selfCandidate()!;
    const m = this.membership.get(s.id);
    return { id: s.id, address: m?.address ?? s.address, name: m?.name ?? s.name, capacity: 1, load: 0 };
  }

  /** Gives the tasks of dead, departed or forgotten workers back to the queue. */
  private reapWorkers(): void {
    for (const [wid, ids] of this.byWorker) {
      if (wid === this.me.id) {
        if (this.executor) continue;
      } else {
        const m = this.membership.get(wid);
        if (m && m.state !== 'dead' && m.state !== 'left') continue;
      }
      for (const id of [...ids]) {
        const t = this.ctasks.get(id);
        if (t) this.requeue(t, 'the worker is gone');
      }
      this.byWorker.delete(wid);
    }
  }

  private retryAssignments(now: number): void {
    let budget = SENDS_PER_TICK_MAX;
    for (const ids of this.byWorker.values()) {
      for (const id of [...ids]) {
        const t = this.ctasks.get(id);
        if (!t || t.state !== 'assigned' || now - t.lastSend < ASSIGN_RETRY_MS) continue;
        if (budget-- <= 0) return;
        if (t.sends >= ASSIGN_SENDS_MAX) this.requeue(t, 'the worker does not answer');
        else this.sendAssign(t, now);
      }
    }
  }

  private dispatch(now: number): void {
    if (this.queue.size === 0) return;
    const workers = this.workers();
    if (workers.length === 0) return;
    let budget = SENDS_PER_TICK_MAX;
    for (const id of this.queue) {
      if (budget-- <= 0) return;
      const t = this.ctasks.get(id);
      if (!t) {
        this.queue.delete(id);
        continue;
      }
      const w = this.leastLoaded(workers);
      if (!w) return;
      this.queue.delete(id);
      this.place(t, w, 'assigned');
      this.sendAssign(t, now);
      this.ctx.emit({ kind: 'task-assigned', id, worker: w.id, workerName: w.name });
    }
  }

  private place(t: CoordTask, w: Candidate, state: 'assigned' | 'running'): void {
    this.unplace(t);
    t.state = state;
    t.worker = w.id;
    t.workerAddr = w.address;
    t.workerName = w.name;
    t.sends = 0;
    t.misses = 0;
    t.startedAt = Math.round(this.ctx.wall());
    let set = this.byWorker.get(w.id);
    if (!set) this.byWorker.set(w.id, (set = new Set()));
    set.add(t.id);
    this.log.save(this.record(t));
  }

  private unplace(t: CoordTask): void {
    if (t.worker) this.byWorker.get(t.worker)?.delete(t.id);
  }

  private sendAssign(t: CoordTask, now: number): void {
    if (!t.worker) return;
    t.sends++;
    t.lastSend = now;
    this.post({ id: t.worker, address: t.workerAddr }, 'tk.assign', {
      id: t.id,
      op: t.op,
      a: t.args,
      term: this.view.term(),
    });
  }

  private requeue(t: CoordTask, why: string): void {
    const worker = t.worker;
    this.unplace(t);
    t.state = 'queued';
    t.worker = null;
    t.workerName = null;
    t.startedAt = null;
    this.queue.add(t.id);
    this.log.save(this.record(t));
    this.stats.reassigned++;
    if (worker) this.ctx.emit({ kind: 'task-reassigned', id: t.id, worker, why });
  }

  /** Live workers with room, this peer included when it is one. */
  private workers(): Candidate[] {
    const out: Candidate[] = [];
    const self = this.selfCandidate();
    if (self) out.push(self);
    for (const m of this.membership.live()) {
      if (m.state !== 'alive') continue; // a suspect gets no new work
      const cap = m.tags[TAG_CAPACITY];
      if (typeof cap !== 'number' || !Number.isInteger(cap) || cap < 1) continue;
      const load = m.tags[TAG_LOAD];
      out.push({
        id: m.id,
        address: m.address,
        name: m.name,
        capacity: Math.min(cap, WORKER_CONCURRENCY_MAX),
        load: typeof load === 'number' && Number.isFinite(load) ? load : 0,
      });
    }
    return out;
  }

  private selfCandidate(): Candidate | null {
    if (!this.executor) return null;
    return {
      id: this.me.id,
      address: '',
      name: this.me.name,
      capacity: this.executor.capacity,
      load: this.held.size,
    };
  }

  /**
   * The worker with the lowest load per thread that still has room. Load is what we assigned it,
   * or what its tags say when that is more (another coordinator's leftovers); ties go to the
   * fewest assigned, then the smallest id, so the choice is deterministic.
   */
  private leastLoaded(workers: Candidate[]): Candidate | null {
    let best: Candidate | null = null;
    let bestScore = Infinity;
    let bestCount = Infinity;
    for (const w of workers) {
      const count = this.byWorker.get(w.id)?.size ?? 0;
      if (count >= w.capacity * WORKER_BACKLOG_PER_THREAD) continue;
      const score = Math.max(count, w.load) / w.capacity;
      if (
        score < bestScore ||
        (score === bestScore && (count < bestCount || (count === bestCount && best && w.id < best.id)))
      ) {
        best = w;
        bestScore = score;
        bestCount = count;
      }
    }
    return best;
  }

  /**
   * Records the result once, tells the submitter and the group. When the write fails, nothing
   * changes (the task stays where it was) and the reason is returned.
   */
  private finish(t: CoordTask, outcome: TaskOutcome, worker: Sender | null): WriteFailureKind | null {
    const wall = Math.round(this.ctx.wall());
    const out = clipOutcome(outcome);
    const workerName = worker ? (this.membership.get(worker.id)?.name ?? worker.name) : null;
    const rec: TaskRecord = {
      ...this.record(t),
      state: out.ok ? 'done' : 'failed',
      worker: worker?.id ?? null,
      workerName,
      finishedAt: wall,
      result: out.ok ? out.value : null,
      error: out.ok ? null : out.error,
    };
    const { first, failed } = this.log.finish(rec);
    if (failed) return failed;
    this.unplace(t);
    this.ctasks.delete(t.id);
    this.queue.delete(t.id);
    const fin: Bodies['fin'] = {
      id: t.id,
      op: t.op.slice(0, 16),
      ok: out.ok,
      v: out.ok ? out.value : out.error,
      w: worker?.id ?? null,
      wn: workerName ? workerName.slice(0, 64) : null,
      ms: t.startedAt === null ? null : Math.max(0, wall - t.startedAt),
      term: this.view.term(),
    };
    this.remember(fin);
    if (first) this.ctx.emit({ kind: 'task-recorded', id: t.id, op: t.op, ok: out.ok, worker: fin.w });
    else this.stats.duplicateResults++;
    // A task resumed from the log has no submitter address until the submitter re-sends it; then
    // the multicast below is its only copy (and its polls fetch the rest).
    const to =
      t.submitter === this.me.id ? '' : (t.submitterAddr ?? this.membership.get(t.submitter ?? '')?.address);
    if (t.submitter && to !== undefined) this.post({ id: t.submitter, address: to }, 'tk.fin', fin);
    this.ctx.broadcast('tk.fin', fin);
    return null;
  }

  /** The result of a finished task, from memory or from the log. */
  private finished(id: string): Bodies['fin'] | null {
    const hit = this.recent.get(id);
    if (hit) return hit;
    const r = this.log.get(id);
    if (!r || (r.state !== 'done' && r.state !== 'failed')) return null;
    return {
      id,
      op: r.op.slice(0, 16) || '?',
      ok: r.state === 'done',
      v: (r.state === 'done' ? r.result : r.error) ?? '',
      w: isPeerId(r.worker) ? r.worker : null,
      wn: r.workerName ? r.workerName.slice(0, 64) : null,
      ms: r.startedAt !== null && r.finishedAt !== null ? Math.max(0, r.finishedAt - r.startedAt) : null,
      term: this.view.term(),
    };
  }

  private remember(fin: Bodies['fin']): void {
    this.recent.set(fin.id, fin);
    if (this.recent.size > DONE_REMEMBERED_MAX) this.recent.delete(this.recent.keys().next().value!);
  }

  private record(t: CoordTask): TaskRecord {
    return {
      id: t.id,
      op: t.op,
      args: t.args,
      state: t.state,
      worker: t.worker,
      workerName: t.workerName,
      submitter: t.submitter,
      submittedAt: t.submittedAt,
      startedAt: t.startedAt,
      finishedAt: null,
      result: null,
      error: null,
    };
  }

  private onList(from: Sender, b: Bodies['list']): void {
    if (!this.view.isCoordinator()) return;
    const total = this.log.count();
    const rows = this.log.list(b.off, Math.min(b.lim, LIST_PAGE_ITEMS_MAX));
    const items: WireItem[] = [];
    let bytes = 120; // envelope and page fields
    for (const r of rows) {
      const item = wireItem(r);
      const size = JSON.stringify(item).length + 1;
      if (bytes + size > LIST_PAGE_BYTES_MAX) break;
      bytes += size;
      items.push(item);
    }
    const end = b.off + items.length >= total || items.length >= b.lim;
    this.post(from, 'tk.page', { q: b.q, off: b.off, total, end, items });
  }

  // ---- requester of a listing ----

  private listTick(now: number): void {
    const l = this.listing;
    if (!l || now - l.lastSend < LIST_RETRY_MS) return;
    if (l.sends >= LIST_SENDS_MAX) {
      this.listing = null;
      this.ctx.emit({
        kind: 'task-list',
        items: l.items,
        total: l.total,
        error: this.coordinatorTarget()
          ? 'the coordinator did not answer'
          : 'no coordinator is known (is any peer running the election?)',
      });
      return;
    }
    const target = this.coordinatorTarget();
    l.lastSend = now;
    l.sends++;
    if (target) this.post(target, 'tk.list', { q: l.q, off: l.items.length, lim: l.limit - l.items.length });
  }

  private onPage(b: Bodies['page']): void {
    const l = this.listing;
    if (!l || b.q !== l.q || b.off !== l.items.length) return;
    l.total = b.total;
    l.sends = 0;
    for (const it of b.items) {
      l.items.push({
        id: it.id,
        op: it.op,
        state: it.st,
        worker: it.w,
        durationMs: it.ms,
        text: it.x,
        submittedAt: it.at,
      });
    }
    if (b.end || b.items.length === 0 || l.items.length >= l.limit) {
      this.listing = null;
      this.ctx.emit({ kind: 'task-list', items: l.items, total: l.total, error: null });
      return;
    }
    l.lastSend = -Infinity;
    this.listTick(this.ctx.now());
  }

  // ---- worker ----

  private onAssign(from: Sender, b: Bodies['assign']): void {
    if (!this.executor || b.term < this.view.term()) return;
    const term = this.view.term();
    const h = this.held.get(b.id);
    if (h) {
      this.post(from, 'tk.ack', { id: b.id, ok: true, term });
      if (h.outcome) this.sendResult(h, this.ctx.now());
      return;
    }
    if (this.held.size >= this.executor.capacity * WORKER_BACKLOG_PER_THREAD) {
      this.stats.refusedAssignments++;
      this.post(from, 'tk.ack', { id: b.id, ok: false, term });
      return;
    }
    const task: Held = {
      id: b.id,
      op: b.op,
      args: b.a,
      outcome: null,
      settled: false,
      lastSend: -Infinity,
      startedMs: this.ctx.now(),
    };
    this.held.set(b.id, task);
    this.post(from, 'tk.ack', { id: b.id, ok: true, term });
    this.ctx.emit({ kind: 'task-started', id: b.id, op: b.op });
    // The executor validates again: a task from the wire is never trusted to be sane.
    this.executor.run({ id: b.id, op: b.op, args: b.a });
  }

  private onDone(b: Bodies['done']): void {
    const h = this.held.get(b.id);
    if (!h) return;
    if (h.outcome) this.held.delete(b.id);
    else h.settled = true; // still running on a thread: keep its slot until it ends
  }

  private sendResult(h: Held, now: number): void {
    const target = this.coordinatorTarget();
    h.lastSend = now;
    if (!target || !h.outcome) return;
    const o = h.outcome;
    this.post(target, 'tk.result', {
      id: h.id,
      op: h.op,
      ok: o.ok,
      v: o.ok ? o.value : o.error,
      term: this.view.term(),
    });
  }

  private workerTick(now: number): void {
    if (!this.executor) return;
    this.updateTags(now);
    const target = this.coordinatorTarget();
    if (!target) return;
    const key = `${target.id}/${this.view.term()}`;
    const changed = key !== this.workerKey;
    this.workerKey = key;
    if (changed || now - this.lastStatus >= WORKER_STATUS_INTERVAL_MS) {
      this.lastStatus = now;
      this.post(target, 'tk.status', { held: [...this.held.keys()], term: this.view.term() });
    }
    let budget = SENDS_PER_TICK_MAX;
    for (const h of this.held.values()) {
      if (budget <= 0) break;
      if (!h.outcome || (!changed && now - h.lastSend < RESULT_RETRY_MS)) continue;
      budget--;
      this.sendResult(h, now);
    }
  }

  private updateTags(now: number): void {
    const load = this.held.size;
    if (load === this.tagsLoad || now - this.lastTags < LOAD_TAGS_INTERVAL_MS) return;
    this.lastTags = now;
    this.tagsLoad = load;
    this.membership.setTags({
      ...this.membership.ownTags,
      [TAG_CAPACITY]: this.executor!.capacity,
      [TAG_LOAD]: load,
    });
  }
}

function clipOutcome(o: TaskOutcome): TaskOutcome {
  if (o.ok)
    return o.value.length <= TASK_RESULT_CHARS_MAX ? o : { ok: false, error: 'result over the size limit' };
  return { ok: false, error: o.error.slice(0, TASK_ERROR_CHARS_MAX) };
}

function finRecord(b: Bodies['fin'], known: TaskRecord | undefined, wall: number): TaskRecord {
  const finishedAt = Math.round(wall);
  return {
    id: b.id,
    op: b.op,
    args: known?.args ?? [],
    state: b.ok ? 'done' : 'failed',
    worker: b.w,
    workerName: b.wn,
    submitter: known?.submitter ?? null,
    submittedAt: known?.submittedAt ?? null,
    startedAt: b.ms === null ? (known?.startedAt ?? null) : finishedAt - b.ms,
    finishedAt,
    result: b.ok ? b.v : null,
    error: b.ok ? null : b.v,
  };
}

function clipText(s: string | null): string | null {
  if (s === null) return null;
  return s.length <= LIST_TEXT_CHARS_MAX ? s : `${s.slice(0, LIST_TEXT_CHARS_MAX - 3)}...`;
}

export function summarize(r: TaskRecord): TaskSummary {
  return {
    id: r.id,
    op: r.op,
    state: r.state,
    worker: r.workerName ?? r.worker,
    durationMs:
      r.startedAt !== null && r.finishedAt !== null ? Math.max(0, r.finishedAt - r.startedAt) : null,
    text: clipText(r.state === 'failed' ? r.error : r.result),
    submittedAt: r.submittedAt,
  };
}

function wireItem(r: TaskRecord): WireItem {
  const s = summarize(r);
  return {
    id: s.id,
    op: s.op.slice(0, 16) || '?',
    st: s.state,
    w: s.worker ? s.worker.slice(0, 64) : null,
    ms: s.durationMs,
    x: s.text,
    at: s.submittedAt === null ? null : Math.max(0, Math.round(s.submittedAt)),
  };
}

/** Memory to keep task states in when there is no store: bounded, forgetting the oldest finished. */
export const MEMORY_LOG_TASKS_MAX = 20_000;

export class MemoryTaskLog implements TaskLog {
  private readonly rows = new Map<string, TaskRecord>();

  get(id: string): TaskRecord | undefined {
    const r = this.rows.get(id);
    return r && { ...r };
  }

  save(rec: TaskRecord): LogWrite {
    const old = this.rows.get(rec.id);
    if (old && (old.state === 'done' || old.state === 'failed')) return { first: false, failed: null };
    this.rows.set(rec.id, { ...rec, submittedAt: old?.submittedAt ?? rec.submittedAt });
    this.bound();
    return { first: true, failed: null };
  }

  finish(rec: TaskRecord): LogWrite {
    const old = this.rows.get(rec.id);
    if (old && (old.state === 'done' || old.state === 'failed')) return { first: false, failed: null };
    this.rows.set(rec.id, {
      ...rec,
      args: rec.args.length > 0 ? rec.args : (old?.args ?? []),
      submitter: rec.submitter ?? old?.submitter ?? null,
      submittedAt: old?.submittedAt ?? rec.submittedAt,
    });
    this.bound();
    return { first: true, failed: null };
  }

  list(offset: number, limit: number): TaskRecord[] {
    return [...this.rows.values()].reverse().slice(offset, offset + limit);
  }

  count(): number {
    return this.rows.size;
  }

  outstanding(limit: number): TaskRecord[] {
    return [...this.rows.values()].filter((r) => r.state !== 'done' && r.state !== 'failed').slice(0, limit);
  }

  private bound(): void {
    if (this.rows.size <= MEMORY_LOG_TASKS_MAX) return;
    for (const [id, r] of this.rows) {
      if (r.state === 'done' || r.state === 'failed') {
        this.rows.delete(id);
        return;
      }
    }
  }
}
