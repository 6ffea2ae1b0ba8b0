/**
 * The messages of the tasks protocol, declared once with the message kit (kit/message.ts): for
 * each its wire type, its fields by domain name and the short name each has on the wire. The
 * roles see `args`, `value`, `workerName`, `query`; `a`, `v`, `wn`, `q`... exist only here.
 *
 * The wire is fixed: fields are declared in the order they always went on the wire, so every
 * datagram is byte for byte what it was.
 */
import { is } from '../wire.js';
import { f, message, messages, type Body, type Message } from '../kit/message.js';
import {
  LIST_LIMIT_MAX,
  LIST_PAGE_ITEMS_MAX,
  LIST_TEXT_CHARS_MAX,
  NAME_CHARS_MAX,
  OP_CHARS_MAX,
  WHY_CHARS_MAX,
  WORKER_BACKLOG_PER_THREAD,
  WORKER_CONCURRENCY_MAX,
} from './limits.js';
import {
  TASK_ARGS_JSON_CHARS_MAX,
  TASK_ARGS_MAX,
  TASK_ERROR_CHARS_MAX,
  TASK_RESULT_CHARS_MAX,
  type TaskOutcome,
} from '../jobs/ops.js';
import { TASK_STATES, isTaskId, type TaskSummary } from './types.js';

/** Membership tags a worker sets: threads, and tasks held. */
export const TAG_CAPACITY = 'wk';
export const TAG_LOAD = 'ld';

const ID = f.guard(isTaskId);
const TERM = f.uint();
const OP = f.str(OP_CHARS_MAX, 1);
const VALUE = f.str(Math.max(TASK_RESULT_CHARS_MAX, TASK_ERROR_CHARS_MAX));
const NAME = f.str(NAME_CHARS_MAX, 1);
const NUMS = is.array(is.num(-Number.MAX_VALUE, Number.MAX_VALUE), TASK_ARGS_MAX);
const isArgs = (v: unknown): v is number[] => NUMS(v) && JSON.stringify(v).length <= TASK_ARGS_JSON_CHARS_MAX;
const ARGS = f.guard(isArgs);

/**
 * One listed task inside a page. The kit renames a body's own fields only, not those of objects
 * inside it, so an item is declared by its wire names and renamed by summaryOf / wireItem below.
 * It is never sent alone: the declaration gives the item's check and type.
 */
const ITEM = message('tk.page.item', {
  id: ID,
  op: OP,
  st: f.literal(...TASK_STATES),
  w: f.nullable(NAME),
  ms: f.nullable(f.uint()),
  x: f.nullable(f.str(LIST_TEXT_CHARS_MAX)),
  at: f.nullable(f.uint()),
});
export type WireItem = Body<typeof ITEM>;
const isWireItem = (v: unknown): v is WireItem => ITEM.check(v);

const SUBMIT = message('tk.submit', { id: ID, op: OP, args: ARGS.wire('a'), term: TERM });
const ACCEPT = message('tk.accept', { id: ID, term: TERM });
/** `unstored`: the coordinator could not store the task (a final refusal, not "full, re-send"). */
const REJECT = message('tk.reject', {
  id: ID,
  term: TERM,
  why: f.str(WHY_CHARS_MAX),
  unstored: f.optional(f.literal('full', 'io', 'other')).wire('st'),
});
const NEW = message('tk.new', {
  id: ID,
  op: OP,
  args: ARGS.wire('a'),
  submitter: f.nullable(f.peerId()).wire('s'),
  term: TERM,
});
const ASSIGN = message('tk.assign', { id: ID, op: OP, args: ARGS.wire('a'), term: TERM });
/** `taken` false: the worker is full. */
const ACK = message('tk.ack', { id: ID, taken: f.bool().wire('ok'), term: TERM });
/** `value` is the result when `ok`, else the error (outcomeOf). */
const RESULT = message('tk.result', { id: ID, op: OP, ok: f.bool(), value: VALUE.wire('v'), term: TERM });
const DONE = message('tk.done', { id: ID, term: TERM });
/** A finished task (FinishedTask) as the coordinator announces it, with its term. */
const FIN = message('tk.fin', {
  id: ID,
  op: OP,
  ok: f.bool(),
  value: VALUE.wire('v'),
  worker: f.nullable(f.peerId()).wire('w'),
  workerName: f.nullable(NAME).wire('wn'),
  durationMs: f.nullable(f.uint()).wire('ms'),
  term: TERM,
});
const STATUS = message('tk.status', {
  held: f.array(ID, WORKER_CONCURRENCY_MAX * WORKER_BACKLOG_PER_THREAD),
  term: TERM,
});
const LIST = message('tk.list', {
  query: f.uint().wire('q'),
  offset: f.uint().wire('off'),
  limit: f.int(1, LIST_LIMIT_MAX).wire('lim'),
});
const PAGE = message('tk.page', {
  query: f.uint().wire('q'),
  offset: f.uint().wire('off'),
  total: f.uint(),
  end: f.bool(),
  items: f.array(f.guard(isWireItem), LIST_PAGE_ITEMS_MAX),
});

const BY_TYPE = {
  [SUBMIT.type]: SUBMIT,
  [ACCEPT.type]: ACCEPT,
  [REJECT.type]: REJECT,
  [NEW.type]: NEW,
  [ASSIGN.type]: ASSIGN,
  [ACK.type]: ACK,
  [RESULT.type]: RESULT,
  [DONE.type]: DONE,
  [FIN.type]: FIN,
  [STATUS.type]: STATUS,
  [LIST.type]: LIST,
  [PAGE.type]: PAGE,
};

export const MESSAGES = messages(
  SUBMIT,
  ACCEPT,
  REJECT,
  NEW,
  ASSIGN,
  ACK,
  RESULT,
  DONE,
  FIN,
  STATUS,
  LIST,
  PAGE,
);

export type TaskType = keyof typeof BY_TYPE;
/** The body of each message type, by domain names. */
export type TaskBodies = { [T in TaskType]: Body<(typeof BY_TYPE)[T]> };
export type TaskBody<T extends TaskType> = TaskBodies[T];

/** Types only the coordinator sends: from anyone else they are dropped. */
export const FROM_COORDINATOR: ReadonlySet<string> = new Set<TaskType>([
  ACCEPT.type,
  REJECT.type,
  NEW.type,
  ASSIGN.type,
  DONE.type,
  FIN.type,
  PAGE.type,
]);

const TYPED: { [T in TaskType]: Message<T, TaskBodies[T]> } = BY_TYPE;

/** A body as it goes on the wire (short names, declared order). */
export const toWire = <T extends TaskType>(type: T, body: TaskBodies[T]): Record<string, unknown> =>
  TYPED[type].toWire(body);

/** A result's outcome from its body, and the body's value from an outcome. */
export const outcomeOf = (r: TaskBody<'tk.result'>): TaskOutcome =>
  r.ok ? { ok: true, value: r.value } : { ok: false, error: r.value };
export const valueOf = (o: TaskOutcome): string => (o.ok ? o.value : o.error);

export function summaryOf(it: WireItem): TaskSummary {
  return {
    id: it.id,
    op: it.op,
    state: it.st,
    worker: it.w,
    durationMs: it.ms,
    text: it.x,
    submittedAt: it.at,
  };
}

export function wireItem(s: TaskSummary): WireItem {
  return {
    id: s.id,
    op: s.op,
    st: s.state,
    w: s.worker,
    ms: s.durationMs,
    x: s.text,
    at: s.submittedAt,
  };
}

/** Characters one listed task takes in a page body, its separator included. */
export const wireItemChars = (s: TaskSummary): number => JSON.stringify(wireItem(s)).length + 1;
