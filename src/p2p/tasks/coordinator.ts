/**
 * Coordinator: the peer the election (CoordinatorView) names; any peer may become it, and it holds
 * the state below only while it leads. It queues tasks, assigns each to the least-loaded live
 * worker, retries an assignment every ASSIGN_RETRY_MS until the worker acknowledges it (after
 * ASSIGN_SENDS_MAX sends the task goes elsewhere), reassigns the tasks of a worker that dies, leaves,
 * or stops holding them, records every state change in the TaskLog, records the result once, and
 * returns it to the submitter (unicast, and multicast so every peer's log learns it).
 *
 * Taking over. A new coordinator resumes the outstanding tasks of its own log (which every peer
 * fills from the `new` and `fin` announcements) and waits TAKEOVER_DISPATCH_DELAY_MS before
 * dispatching, so that workers' statuses arrive first and tasks they hold are not run twice.
 *
 * A failing disk. Acknowledged means durable, and two writes are acknowledged: the task's record at
 * acceptance, and its result. A task that cannot be stored is refused with the reason (the
 * submitter gives up instead of waiting); a result that cannot be stored is not acknowledged, so
 * its worker keeps it and re-sends it until writes work again. The other writes only speed up a
 * takeover: one that fails costs at most a second execution of a task, which is harmless.
 */
import { isPeerId, type PeerId } from '../wire.js';
import type { ProtocolContext } from '../protocol.js';
import type { Membership } from '../membership.js';
import type { Address } from '../transport/transport.js';
import type { WriteFailureKind } from '../write-failure.js';
import {
  ASSIGN_RETRY_MS,
  ASSIGN_SENDS_MAX,
  COORDINATOR_TASKS_MAX,
  DONE_REMEMBERED_MAX,
  LIST_PAGE_BYTES_MAX,
  LIST_PAGE_ITEMS_MAX,
  NAME_CHARS_MAX,
  OP_CHARS_MAX,
  SENDS_PER_TICK_MAX,
  STATUS_MISSES_MAX,
  TAKEOVER_DISPATCH_DELAY_MS,
  WORKER_BACKLOG_PER_THREAD,
  WORKER_CONCURRENCY_MAX,
} from './limits.js';
import type { Link, Sender } from './link.js';
import { TAG_CAPACITY, TAG_LOAD, outcomeOf, wireItem, wireItemChars, type TaskBody } from './messages.js';
import { validateTask, type TaskOutcome } from '../jobs/ops.js';
import { clipOutcome, listedSummary } from './records.js';
import type { FinishedTask, TaskLog, TaskRecord, TaskSummary, TasksStats } from './types.js';

/** Page fields and envelope, in characters, before the first listed task. */
const PAGE_OVERHEAD_CHARS = 120;

/** What the coordinator needs of this peer's own worker, when it runs one. */
export interface LocalWorker {
  readonly capacity: number;
  heldCount(): number;
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

/** What the coordinator holds while it leads, and only then: dropped when it resigns. */
interface Leadership {
  /** Dispatch waits until then for workers' statuses (TAKEOVER_DISPATCH_DELAY_MS). */
  dispatchAfter: number;
  tasks: Map<string, CoordTask>;
  /** Tasks waiting for a worker, oldest first. */
  queue: Set<string>;
  /** The tasks placed on each worker. */
  byWorker: Map<PeerId, Set<string>>;
}

interface Candidate {
  id: PeerId;
  address: Address;
  name: string;
  capacity: number;
  load: number;
}

export class Coordinator {
  /** Present while we coordinate and have taken over; a peer that never leads holds none. */
  private lead: Leadership | null = null;
  /** Recent results, to answer repeats without reading the log (kept across terms). */
  private readonly recent = new Map<string, FinishedTask>();

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly link: Link,
    private readonly membership: Membership,
    private readonly log: TaskLog,
    private readonly stats: TasksStats,
    private readonly worker: LocalWorker | null,
  ) {}

  /** Whether this peer leads: then it records results itself and ignores others' announcements. */
  get isLeading(): boolean {
    return this.lead !== null;
  }

  /** The state of our lead, for what only runs while we lead (asserted: a bug otherwise). */
  private get leadership(): Leadership {
    if (!this.lead) throw new Error('tasks coordinator: used while not leading');
    return this.lead;
  }

  /** Outstanding tasks by state. */
  counts(): Record<'queued' | 'assigned' | 'running', number> {
    const c = { queued: 0, assigned: 0, running: 0 };
    for (const t of this.lead?.tasks.values() ?? []) c[t.state]++;
    return c;
  }

  tick(now: number): void {
    if (!this.link.view.isCoordinator()) {
      // No longer coordinator: the next one rebuilds from re-announcements; we keep only our log.
      this.lead = null;
      return;
    }
    if (!this.lead) this.takeOver(now);
    this.reapWorkers();
    this.retryAssignments(now);
    if (now >= this.leadership.dispatchAfter) this.dispatch(now);
  }

  /** This peer, or a live member that advertises worker threads: who may send a result. */
  isWorker(s: Sender): boolean {
    if (s.id === this.link.me.id) return true;
    const m = this.membership.get(s.id);
    return (m?.state === 'alive' || m?.state === 'suspect') && m.tags[TAG_CAPACITY] !== undefined;
  }

  onSubmit(from: Sender, m: TaskBody<'tk.submit'>): void {
    if (!this.link.view.isCoordinator()) return;
    if (!this.lead) this.takeOver(this.ctx.now());
    const term = this.link.view.term();
    const known = this.leadership.tasks.get(m.id);
    if (known) {
      known.submitter = from.id;
      known.submitterAddr = from.address;
      this.link.post(from, 'tk.accept', { id: m.id, term });
      return;
    }
    const fin = this.finished(m.id);
    if (fin) {
      this.link.post(from, 'tk.fin', { ...fin, term });
      return;
    }
    if (this.leadership.tasks.size >= COORDINATOR_TASKS_MAX) {
      this.link.post(from, 'tk.reject', {
        id: m.id,
        term,
        why: `the coordinator holds ${this.leadership.tasks.size} tasks (limit ${COORDINATOR_TASKS_MAX}); re-sending`,
      });
      return;
    }
    const t = newCoordTask(m.id, m.op, m.args, from.id, from.address, this.ctx.wall());
    const v = validateTask(m.op, m.args);
    if (!v.ok) {
      // A submitter validates first, so this is another version or a hostile peer: answer clearly.
      const failed = this.finish(t, { ok: false, error: v.error }, null);
      if (failed) this.refuse(from, m.id, failed);
      return;
    }
    // Accepted means stored: a task accepted and then lost in a crash would never run.
    const failed = this.log.save(record(t)).failed;
    if (failed) {
      this.refuse(from, m.id, failed);
      return;
    }
    this.leadership.tasks.set(t.id, t);
    this.leadership.queue.add(t.id);
    this.link.broadcast('tk.new', { id: t.id, op: t.op, args: t.args, submitter: t.submitter, term });
    this.link.post(from, 'tk.accept', { id: m.id, term });
    this.dispatchNow();
  }

  onAck(from: Sender, m: TaskBody<'tk.ack'>): void {
    const t = this.lead?.tasks.get(m.id);
    if (!t || t.worker !== from.id || t.state !== 'assigned') return;
    if (!m.taken) {
      this.requeue(t, 'worker full');
      return;
    }
    t.state = 'running';
    t.misses = 0;
    this.log.save(record(t));
  }

  onResult(from: Sender, m: TaskBody<'tk.result'>): void {
    if (!this.link.view.isCoordinator()) return; // the worker re-sends to the new coordinator
    if (!this.lead) this.takeOver(this.ctx.now());
    if (this.finished(m.id)) {
      this.link.post(from, 'tk.done', { id: m.id, term: this.link.view.term() });
      this.stats.duplicateResults++;
      return;
    }
    const t = this.leadership.tasks.get(m.id) ?? newCoordTask(m.id, m.op, [], null, null, this.ctx.wall());
    // Acknowledged only once stored: unacknowledged, the worker keeps the result and re-sends it.
    if (this.finish(t, outcomeOf(m), from)) {
      this.stats.unstoredResults++;
      return;
    }
    this.link.post(from, 'tk.done', { id: m.id, term: this.link.view.term() });
    this.dispatchNow();
  }

  onStatus(from: Sender, m: TaskBody<'tk.status'>): void {
    if (!this.lead) return;
    const held = new Set(m.held);
    for (const id of held) {
      const t = this.leadership.tasks.get(id);
      if (!t) continue;
      if (t.worker === from.id) {
        if (t.state === 'assigned') t.state = 'running';
        t.misses = 0;
      } else if (t.state === 'queued') {
        // Assigned by an earlier coordinator: let it finish there instead of running it twice.
        this.leadership.queue.delete(id);
        this.place(t, this.candidate(from), 'running');
      }
    }
    for (const id of this.leadership.byWorker.get(from.id) ?? []) {
      const t = this.leadership.tasks.get(id);
      if (!t || t.state !== 'running' || held.has(id)) continue;
      if (++t.misses >= STATUS_MISSES_MAX) this.requeue(t, 'the worker no longer holds it');
    }
  }

  /** Answers a listing with one page of the log, as many tasks as fit one datagram. */
  onList(from: Sender, m: TaskBody<'tk.list'>): void {
    if (!this.link.view.isCoordinator()) return;
    const total = this.log.count();
    const rows = this.log.list(m.offset, Math.min(m.limit, LIST_PAGE_ITEMS_MAX));
    const items: TaskSummary[] = [];
    let chars = PAGE_OVERHEAD_CHARS;
    for (const r of rows) {
      const item = listedSummary(r);
      const size = wireItemChars(item);
      if (chars + size > LIST_PAGE_BYTES_MAX) break;
      chars += size;
      items.push(item);
    }
    const end = m.offset + items.length >= total || items.length >= m.limit;
    this.link.post(from, 'tk.page', {
      query: m.query,
      offset: m.offset,
      total,
      end,
      items: items.map(wireItem),
    });
  }

  /** Resumes the outstanding tasks of our log; workers' statuses and submitters fill in the rest. */
  private takeOver(now: number): void {
    const lead: Leadership = {
      dispatchAfter: now + TAKEOVER_DISPATCH_DELAY_MS,
      tasks: new Map(),
      queue: new Set(),
      byWorker: new Map(),
    };
    this.lead = lead;
    let resumed = 0;
    for (const r of this.log.outstanding(COORDINATOR_TASKS_MAX)) {
      if (lead.tasks.has(r.id) || !validateTask(r.op, r.args).ok) continue;
      resumed++;
      const t = newCoordTask(r.id, r.op, r.args, r.submitter, null, r.submittedAt ?? this.ctx.wall());
      lead.tasks.set(t.id, t);
      lead.queue.add(t.id);
    }
    this.ctx.emit({ kind: 'task-coordinator', term: this.link.view.term(), resumed });
  }

  /** Tells a submitter that its task cannot be stored here: final, not re-sent. */
  private refuse(to: Sender, id: string, reason: WriteFailureKind): void {
    const what =
      reason === 'full' ? 'its disk is full' : reason === 'io' ? 'its disk fails (I/O error)' : 'writes fail';
    this.link.post(to, 'tk.reject', {
      id,
      term: this.link.view.term(),
      why: `the coordinator ${this.link.me.name.slice(0, NAME_CHARS_MAX)} cannot store the task: ${what}`,
      unstored: reason,
    });
  }

  /** Dispatches at once instead of at the next tick: a free slot idles for no tick interval. */
  private dispatchNow(): void {
    const now = this.ctx.now();
    if (this.lead && now >= this.lead.dispatchAfter) this.dispatch(now);
  }

  private candidate(s: Sender): Candidate {
    if (s.id === this.link.me.id) return this.selfCandidate()!;
    const m = this.membership.get(s.id);
    return { id: s.id, address: m?.address ?? s.address, name: m?.name ?? s.name, capacity: 1, load: 0 };
  }

  /** Gives the tasks of dead, departed or forgotten workers back to the queue. */
  private reapWorkers(): void {
    for (const [wid, ids] of this.leadership.byWorker) {
      if (wid === this.link.me.id) {
        if (this.worker) continue;
      } else {
        const m = this.membership.get(wid);
        if (m && m.state !== 'dead' && m.state !== 'left') continue;
      }
      for (const id of [...ids]) {
        const t = this.leadership.tasks.get(id);
        if (t) this.requeue(t, 'the worker is gone');
      }
      this.leadership.byWorker.delete(wid);
    }
  }

  private retryAssignments(now: number): void {
    let budget = SENDS_PER_TICK_MAX;
    for (const ids of this.leadership.byWorker.values()) {
      for (const id of [...ids]) {
        const t = this.leadership.tasks.get(id);
        if (!t || t.state !== 'assigned' || now - t.lastSend < ASSIGN_RETRY_MS) continue;
        if (budget-- <= 0) return;
        if (t.sends >= ASSIGN_SENDS_MAX) this.requeue(t, 'the worker does not answer');
        else this.sendAssign(t, now);
      }
    }
  }

  private dispatch(now: number): void {
    if (this.leadership.queue.size === 0) return;
    const workers = this.workers();
    if (workers.length === 0) return;
    let budget = SENDS_PER_TICK_MAX;
    for (const id of this.leadership.queue) {
      if (budget-- <= 0) return;
      const t = this.leadership.tasks.get(id);
      if (!t) {
        this.leadership.queue.delete(id);
        continue;
      }
      const w = this.leastLoaded(workers);
      if (!w) return;
      this.leadership.queue.delete(id);
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
    let set = this.leadership.byWorker.get(w.id);
    if (!set) this.leadership.byWorker.set(w.id, (set = new Set()));
    set.add(t.id);
    this.log.save(record(t));
  }

  private unplace(t: CoordTask): void {
    if (t.worker) this.leadership.byWorker.get(t.worker)?.delete(t.id);
  }

  private sendAssign(t: CoordTask, now: number): void {
    if (!t.worker) return;
    t.sends++;
    t.lastSend = now;
    this.link.post({ id: t.worker, address: t.workerAddr }, 'tk.assign', {
      id: t.id,
      op: t.op,
      args: t.args,
      term: this.link.view.term(),
    });
  }

  private requeue(t: CoordTask, why: string): void {
    const worker = t.worker;
    this.unplace(t);
    t.state = 'queued';
    t.worker = null;
    t.workerName = null;
    t.startedAt = null;
    this.leadership.queue.add(t.id);
    this.log.save(record(t));
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
    if (!this.worker) return null;
    return {
      id: this.link.me.id,
      address: '',
      name: this.link.me.name,
      capacity: this.worker.capacity,
      load: this.worker.heldCount(),
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
      const count = this.leadership.byWorker.get(w.id)?.size ?? 0;
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
      ...record(t),
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
    this.leadership.tasks.delete(t.id);
    this.leadership.queue.delete(t.id);
    const fin: FinishedTask = {
      id: t.id,
      op: t.op.slice(0, OP_CHARS_MAX),
      ok: out.ok,
      value: out.ok ? out.value : out.error,
      worker: worker?.id ?? null,
      workerName: workerName ? workerName.slice(0, NAME_CHARS_MAX) : null,
      durationMs: t.startedAt === null ? null : Math.max(0, wall - t.startedAt),
    };
    this.remember(fin);
    if (first) this.ctx.emit({ kind: 'task-recorded', id: t.id, op: t.op, ok: out.ok, worker: fin.worker });
    else this.stats.duplicateResults++;
    // A task resumed from the log has no submitter address until the submitter re-sends it; then
    // the multicast below is its only copy (and its polls fetch the rest).
    const to =
      t.submitter === this.link.me.id
        ? ''
        : (t.submitterAddr ?? this.membership.get(t.submitter ?? '')?.address);
    const term = this.link.view.term();
    if (t.submitter && to !== undefined)
      this.link.post({ id: t.submitter, address: to }, 'tk.fin', { ...fin, term });
    this.link.broadcast('tk.fin', { ...fin, term });
    return null;
  }

  /** The result of a finished task, from memory or from the log. */
  private finished(id: string): FinishedTask | null {
    const hit = this.recent.get(id);
    if (hit) return hit;
    const r = this.log.get(id);
    if (!r || (r.state !== 'done' && r.state !== 'failed')) return null;
    return {
      id,
      op: r.op.slice(0, OP_CHARS_MAX) || '?',
      ok: r.state === 'done',
      value: (r.state === 'done' ? r.result : r.error) ?? '',
      worker: isPeerId(r.worker) ? r.worker : null,
      workerName: r.workerName ? r.workerName.slice(0, NAME_CHARS_MAX) : null,
      durationMs:
        r.startedAt !== null && r.finishedAt !== null ? Math.max(0, r.finishedAt - r.startedAt) : null,
    };
  }

  private remember(fin: FinishedTask): void {
    this.recent.set(fin.id, fin);
    if (this.recent.size > DONE_REMEMBERED_MAX) this.recent.delete(this.recent.keys().next().value!);
  }
}

/** The log's record of a task still in progress. */
function record(t: CoordTask): TaskRecord {
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

function newCoordTask(
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
