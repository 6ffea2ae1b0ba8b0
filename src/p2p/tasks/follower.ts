/**
 * Follower: every peer but the leading coordinator records the coordinator's announcements (`new`
 * when it accepts a task, `fin` when it records a result) in its own log. A peer that becomes
 * coordinator then resumes the outstanding tasks it heard of, and `peer task list --local` works
 * without a network. A failed write here only costs a takeover a second execution of a task.
 */
import type { ProtocolContext } from '../protocol.js';
import type { TaskBody } from './messages.js';
import { finishedRecord } from './records.js';
import type { FinishedTask, TaskLog } from './types.js';

export class Follower {
  constructor(
    private readonly ctx: ProtocolContext,
    private readonly log: TaskLog,
    /** Whether this peer leads: then it records its tasks itself. */
    private readonly leading: () => boolean,
  ) {}

  onNew(m: TaskBody<'tk.new'>): void {
    if (this.leading() || this.log.get(m.id)) return;
    this.log.save({
      id: m.id,
      op: m.op,
      args: m.args,
      state: 'queued',
      worker: null,
      workerName: null,
      submitter: m.submitter,
      submittedAt: Math.round(this.ctx.wall()),
      startedAt: null,
      finishedAt: null,
      result: null,
      error: null,
    });
  }

  onFinished(t: FinishedTask): void {
    if (!this.leading()) this.log.finish(finishedRecord(t, this.log.get(t.id), this.ctx.wall()));
  }
}
