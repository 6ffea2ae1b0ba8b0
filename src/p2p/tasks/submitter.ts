/**
 * Submitter: any peer that asks the group to run a task. It validates the task, sends it to the
 * current coordinator every SUBMIT_RETRY_MS until accepted, then polls ever more slowly until the
 * result arrives (the coordinator also pushes it, by unicast and multicast). When the coordinator
 * or its term changes, everything outstanding is sent again at once: the new one knows nothing we
 * sent the old one. A coordinator that cannot store a task refuses it for good (its disk fails):
 * the task is dropped and the refusal reported, as re-sending would meet the same disk.
 */
import type { ProtocolContext } from '../protocol.js';
import {
  RESULT_POLL_MS,
  RESULT_POLL_MS_MAX,
  SENDS_PER_TICK_MAX,
  SUBMIT_RETRY_MS,
  SUBMITTER_TASKS_MAX,
  TASK_ID_HEX_CHARS,
} from './limits.js';
import type { Link } from './link.js';
import type { TaskBody } from './messages.js';
import { validateTask } from '../jobs/ops.js';
import { TaskInputError, type FinishedTask } from './types.js';

interface Pending {
  id: string;
  op: string;
  args: number[];
  accepted: boolean;
  lastSend: number;
  /** Polls sent since acceptance: the poll interval doubles with each. */
  polls: number;
}

export class Submitter {
  private readonly pending = new Map<string, Pending>();
  /** The coordinator and term we last sent to, as `id/term`. */
  private sentTo = '';

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly link: Link,
  ) {}

  /** Queues a task; returns its id. Throws TaskInputError on bad input or a full queue. */
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
    this.tick(this.ctx.now());
    return id;
  }

  /** Tasks submitted here without a result yet. */
  outstanding(): number {
    return this.pending.size;
  }

  tick(now: number): void {
    if (this.pending.size === 0) return;
    const target = this.link.coordinator();
    if (!target) return;
    const term = this.link.view.term();
    const key = `${target.id}/${term}`;
    if (key !== this.sentTo) {
      // A new coordinator knows nothing we sent the old one: everything goes again, now.
      this.sentTo = key;
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
      this.link.post(target, 'tk.submit', { id: p.id, op: p.op, args: p.args, term });
    }
  }

  onAccept(m: TaskBody<'tk.accept'>): void {
    const p = this.pending.get(m.id);
    if (!p || m.term < this.link.view.term() || p.accepted) return;
    p.accepted = true;
    p.polls = 0;
    p.lastSend = this.ctx.now(); // the first poll is RESULT_POLL_MS after acceptance
    this.ctx.emit({ kind: 'task-accepted', id: m.id });
  }

  onReject(m: TaskBody<'tk.reject'>): void {
    const p = this.pending.get(m.id);
    if (!p || m.term < this.link.view.term()) return;
    if (m.unstored) {
      // Re-sending would meet the same disk: the submitter is told now, not after its timeout.
      this.pending.delete(m.id);
      this.ctx.emit({ kind: 'task-refused', id: m.id, why: m.why, reason: m.unstored });
      return;
    }
    p.accepted = false;
    this.ctx.emit({ kind: 'task-rejected', id: m.id, why: m.why });
  }

  /** A task finished: delivers its result once, if it is ours. */
  onFinished(t: FinishedTask): void {
    if (!this.pending.delete(t.id)) return;
    this.ctx.emit({
      kind: 'task-result',
      id: t.id,
      op: t.op,
      ok: t.ok,
      value: t.value,
      worker: t.worker,
      workerName: t.workerName,
      durationMs: t.durationMs,
    });
  }

  private newId(): string {
    let s = '';
    for (let i = 0; i < TASK_ID_HEX_CHARS; i++) s += Math.floor(this.ctx.random() * 16).toString(16);
    return s;
  }
}
