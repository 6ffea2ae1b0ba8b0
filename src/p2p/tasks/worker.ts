/**
 * Worker: a peer with an executor (threads in the CLI, virtual time in tests). It advertises its
 * capacity and load in membership tags, takes what the coordinator assigns while it has room
 * (WORKER_BACKLOG_PER_THREAD tasks per thread; beyond that it refuses and the coordinator tries
 * another), and sends each result to the current coordinator every RESULT_RETRY_MS until that
 * coordinator acknowledges it. Every WORKER_STATUS_INTERVAL_MS, and at once when the coordinator
 * or its term changes, it tells the coordinator which tasks it holds: a new coordinator then
 * leaves them here instead of running them again, and one that sees a task missing reassigns it.
 */
import type { ProtocolContext } from '../protocol.js';
import type { Membership } from '../membership.js';
import {
  LOAD_TAGS_INTERVAL_MS,
  RESULT_RETRY_MS,
  SENDS_PER_TICK_MAX,
  WORKER_BACKLOG_PER_THREAD,
  WORKER_STATUS_INTERVAL_MS,
} from './limits.js';
import type { Link, Sender } from './link.js';
import { TAG_CAPACITY, TAG_LOAD, valueOf, type TaskBody } from './messages.js';
import type { TaskOutcome } from '../jobs/ops.js';
import { clipOutcome } from './records.js';
import type { TaskExecutor, TasksStats } from './types.js';

interface Held {
  id: string;
  op: string;
  args: number[];
  outcome: TaskOutcome | null;
  /** The coordinator recorded a result for it (maybe another worker's): send nothing. */
  settled: boolean;
  lastSend: number;
}

export class Worker {
  private readonly held = new Map<string, Held>();
  /** The coordinator and term we last reported to, as `id/term`. */
  private reportedTo = '';
  private lastStatus = -Infinity;
  private lastTags = -Infinity;
  private tagsLoad = -1;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly link: Link,
    private readonly membership: Membership,
    private readonly executor: TaskExecutor,
    private readonly stats: TasksStats,
  ) {
    if (!Number.isInteger(executor.capacity) || executor.capacity < 1)
      throw new Error(`worker capacity must be a positive integer, got ${executor.capacity}`);
  }

  get capacity(): number {
    return this.executor.capacity;
  }

  /** Tasks held (running, waiting, or finished and not yet acknowledged). */
  heldCount(): number {
    return this.held.size;
  }

  /** A task ended. Called by the executor, at any time. */
  complete(id: string, outcome: TaskOutcome): void {
    const h = this.held.get(id);
    if (!h || h.outcome) return;
    h.outcome = clipOutcome(outcome);
    this.ctx.emit({ kind: 'task-finished', id, op: h.op, ok: outcome.ok });
    if (h.settled) this.held.delete(id);
    else this.sendResult(h, this.ctx.now());
  }

  tick(now: number): void {
    this.updateTags(now);
    const target = this.link.coordinator();
    if (!target) return;
    const term = this.link.view.term();
    const key = `${target.id}/${term}`;
    const changed = key !== this.reportedTo;
    this.reportedTo = key;
    if (changed || now - this.lastStatus >= WORKER_STATUS_INTERVAL_MS) {
      this.lastStatus = now;
      this.link.post(target, 'tk.status', { held: [...this.held.keys()], term });
    }
    let budget = SENDS_PER_TICK_MAX;
    for (const h of this.held.values()) {
      if (budget <= 0) break;
      if (!h.outcome || (!changed && now - h.lastSend < RESULT_RETRY_MS)) continue;
      budget--;
      this.sendResult(h, now);
    }
  }

  onAssign(from: Sender, m: TaskBody<'tk.assign'>): void {
    if (m.term < this.link.view.term()) return;
    const term = this.link.view.term();
    const h = this.held.get(m.id);
    if (h) {
      this.link.post(from, 'tk.ack', { id: m.id, taken: true, term });
      if (h.outcome) this.sendResult(h, this.ctx.now());
      return;
    }
    if (this.held.size >= this.executor.capacity * WORKER_BACKLOG_PER_THREAD) {
      this.stats.refusedAssignments++;
      this.link.post(from, 'tk.ack', { id: m.id, taken: false, term });
      return;
    }
    const task: Held = {
      id: m.id,
      op: m.op,
      args: m.args,
      outcome: null,
      settled: false,
      lastSend: -Infinity,
    };
    this.held.set(m.id, task);
    this.link.post(from, 'tk.ack', { id: m.id, taken: true, term });
    this.ctx.emit({ kind: 'task-started', id: m.id, op: m.op });
    // The executor validates again: a task from the wire is never trusted to be sane.
    this.executor.run({ id: m.id, op: m.op, args: m.args });
  }

  onDone(m: TaskBody<'tk.done'>): void {
    const h = this.held.get(m.id);
    if (!h) return;
    if (h.outcome) this.held.delete(m.id);
    else h.settled = true; // still running on a thread: keep its slot until it ends
  }

  private sendResult(h: Held, now: number): void {
    const target = this.link.coordinator();
    h.lastSend = now;
    if (!target || !h.outcome) return;
    this.link.post(target, 'tk.result', {
      id: h.id,
      op: h.op,
      ok: h.outcome.ok,
      value: valueOf(h.outcome),
      term: this.link.view.term(),
    });
  }

  private updateTags(now: number): void {
    const load = this.held.size;
    if (load === this.tagsLoad || now - this.lastTags < LOAD_TAGS_INTERVAL_MS) return;
    this.lastTags = now;
    this.tagsLoad = load;
    this.membership.setTags({
      ...this.membership.ownTags,
      [TAG_CAPACITY]: this.executor.capacity,
      [TAG_LOAD]: load,
    });
  }
}
