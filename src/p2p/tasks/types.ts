/**
 * The shared, pure types of the tasks protocol: a task, its record in a log, the log and executor
 * interfaces that the CLI and tests implement, what `peer task list` shows, and the events.
 */
import type { PeerId } from '../wire.js';
import type { CoordinatorView as ElectionView } from '../election.js';
import type { WriteFailureKind } from '../write-failure.js';
import { TASK_ID_HEX_CHARS } from './limits.js';

/** What tasks need of the election (election.ts): who coordinates, and in which term. */
export type CoordinatorView = Pick<ElectionView, 'coordinator' | 'isCoordinator' | 'term'>;

export type TaskState = 'queued' | 'assigned' | 'running' | 'done' | 'failed';
export const TASK_STATES: readonly TaskState[] = ['queued', 'assigned', 'running', 'done', 'failed'];

const TASK_ID_RE = new RegExp(`^[0-9a-f]{${TASK_ID_HEX_CHARS}}$`);
export const isTaskId = (v: unknown): v is string => typeof v === 'string' && TASK_ID_RE.test(v);

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

/** A finished task as the coordinator announces it (the result, or the error in `value`). */
export interface FinishedTask {
  id: string;
  op: string;
  ok: boolean;
  /** The result, or the error message. */
  value: string;
  worker: PeerId | null;
  workerName: string | null;
  durationMs: number | null;
}

export type TaskResultEvent = FinishedTask;

/** Counters of what the roles dropped or repeated; one object shared by the roles of a peer. */
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

export class TaskInputError extends Error {
  override name = 'TaskInputError';
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
