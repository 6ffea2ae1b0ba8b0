/**
 * Pure helpers over task records: clipping an outcome to what the wire carries, the record of a
 * finished task heard from the coordinator, and the summary `peer task list` shows.
 */
import { LIST_TEXT_CHARS_MAX, NAME_CHARS_MAX, OP_CHARS_MAX } from './limits.js';
import { TASK_ERROR_CHARS_MAX, TASK_RESULT_CHARS_MAX, type TaskOutcome } from '../jobs/ops.js';
import type { FinishedTask, TaskRecord, TaskSummary } from './types.js';

/** An outcome that fits a datagram: a result over the limit becomes an error, an error is cut. */
export function clipOutcome(o: TaskOutcome): TaskOutcome {
  if (o.ok)
    return o.value.length <= TASK_RESULT_CHARS_MAX ? o : { ok: false, error: 'result over the size limit' };
  return { ok: false, error: o.error.slice(0, TASK_ERROR_CHARS_MAX) };
}

/** The record of a task the coordinator announced as finished, merged with what we knew of it. */
export function finishedRecord(f: FinishedTask, known: TaskRecord | undefined, wall: number): TaskRecord {
  const finishedAt = Math.round(wall);
  return {
    id: f.id,
    op: f.op,
    args: known?.args ?? [],
    state: f.ok ? 'done' : 'failed',
    worker: f.worker,
    workerName: f.workerName,
    submitter: known?.submitter ?? null,
    submittedAt: known?.submittedAt ?? null,
    startedAt: f.durationMs === null ? (known?.startedAt ?? null) : finishedAt - f.durationMs,
    finishedAt,
    result: f.ok ? f.value : null,
    error: f.ok ? null : f.value,
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

/** A summary cut to what one listed task may carry on the wire (a damaged log row included). */
export function listedSummary(r: TaskRecord): TaskSummary {
  const s = summarize(r);
  return {
    ...s,
    op: s.op.slice(0, OP_CHARS_MAX) || '?',
    worker: s.worker ? s.worker.slice(0, NAME_CHARS_MAX) : null,
    submittedAt: s.submittedAt === null ? null : Math.max(0, Math.round(s.submittedAt)),
  };
}
