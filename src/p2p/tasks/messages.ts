/**
 * The messages of the tasks protocol, declared once: for each one its wire name, the check the
 * codec runs on its body, the body's wire shape, and the conversion both ways between that shape
 * and the message the roles handle. Short wire names (`a`, `v`, `wn`, `q`...) exist only in this
 * file: the roles see `args`, `outcome`, `workerName`, `query`.
 *
 * The wire is fixed: bodies are written field by field in the order they always had, so every
 * datagram is byte for byte what it was.
 */
import { is, type Check, type PeerId } from '../wire.js';
import type { WriteFailureKind } from '../write-failure.js';
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
} from './ops.js';
import { TASK_STATES, isTaskId, type FinishedTask, type TaskState, type TaskSummary } from './types.js';

/** Membership tags a worker sets: threads, and tasks held. */
export const TAG_CAPACITY = 'wk';
export const TAG_LOAD = 'ld';

/** A message as the roles handle it, by kind. */
export type TaskMessage =
  | { kind: 'submit'; id: string; op: string; args: number[]; term: number }
  | { kind: 'accept'; id: string; term: number }
  /** `unstored`: the coordinator could not store the task (a final refusal, not "full, re-send"). */
  | { kind: 'reject'; id: string; term: number; why: string; unstored: WriteFailureKind | null }
  | { kind: 'new'; id: string; op: string; args: number[]; submitter: PeerId | null; term: number }
  | { kind: 'assign'; id: string; op: string; args: number[]; term: number }
  /** `taken` false: the worker is full. */
  | { kind: 'ack'; id: string; taken: boolean; term: number }
  | { kind: 'result'; id: string; op: string; outcome: TaskOutcome; term: number }
  | { kind: 'done'; id: string; term: number }
  | { kind: 'fin'; task: FinishedTask; term: number }
  | { kind: 'status'; held: string[]; term: number }
  | { kind: 'list'; query: number; offset: number; limit: number }
  | { kind: 'page'; query: number; offset: number; total: number; end: boolean; items: TaskSummary[] };

export type TaskMessageKind = TaskMessage['kind'];
export type TaskMessageOf<K extends TaskMessageKind> = Extract<TaskMessage, { kind: K }>;

/** Kinds only the coordinator sends: from anyone else they are dropped. */
export const FROM_COORDINATOR: ReadonlySet<TaskMessageKind> = new Set([
  'accept',
  'reject',
  'new',
  'assign',
  'done',
  'fin',
  'page',
]);

const ID: Check = isTaskId;
const TERM = is.uint();
const OP = is.str(OP_CHARS_MAX, 1);
const VALUE = is.str(Math.max(TASK_RESULT_CHARS_MAX, TASK_ERROR_CHARS_MAX));
const NAME = is.str(NAME_CHARS_MAX, 1);
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

/** The check of each body, by wire type: the codec runs it before the protocol sees the body. */
export const MESSAGES = {
  'tk.submit': is.object({ id: ID, op: OP, a: ARGS, term: TERM }),
  'tk.accept': is.object({ id: ID, term: TERM }),
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

type WireType = keyof typeof MESSAGES;

type WireItem = {
  id: string;
  op: string;
  st: TaskState;
  w: string | null;
  ms: number | null;
  x: string | null;
  at: number | null;
};

/** The body of each wire type, as its check above admits it. */
type WireBodies = {
  'tk.submit': { id: string; op: string; a: number[]; term: number };
  'tk.accept': { id: string; term: number };
  'tk.reject': { id: string; term: number; why: string; st?: WriteFailureKind };
  'tk.new': { id: string; op: string; a: number[]; s: PeerId | null; term: number };
  'tk.assign': { id: string; op: string; a: number[]; term: number };
  'tk.ack': { id: string; ok: boolean; term: number };
  'tk.result': { id: string; op: string; ok: boolean; v: string; term: number };
  'tk.done': { id: string; term: number };
  'tk.fin': {
    id: string;
    op: string;
    ok: boolean;
    v: string;
    w: PeerId | null;
    wn: string | null;
    ms: number | null;
    term: number;
  };
  'tk.status': { held: string[]; term: number };
  'tk.list': { q: number; off: number; lim: number };
  'tk.page': { q: number; off: number; total: number; end: boolean; items: WireItem[] };
};

const outcomeOf = (ok: boolean, v: string): TaskOutcome => (ok ? { ok, value: v } : { ok, error: v });
const valueOf = (o: TaskOutcome): string => (o.ok ? o.value : o.error);

const FROM_WIRE: { [T in WireType]: (b: WireBodies[T]) => TaskMessage } = {
  'tk.submit': (b) => ({ kind: 'submit', id: b.id, op: b.op, args: b.a, term: b.term }),
  'tk.accept': (b) => ({ kind: 'accept', id: b.id, term: b.term }),
  'tk.reject': (b) => ({ kind: 'reject', id: b.id, term: b.term, why: b.why, unstored: b.st ?? null }),
  'tk.new': (b) => ({ kind: 'new', id: b.id, op: b.op, args: b.a, submitter: b.s, term: b.term }),
  'tk.assign': (b) => ({ kind: 'assign', id: b.id, op: b.op, args: b.a, term: b.term }),
  'tk.ack': (b) => ({ kind: 'ack', id: b.id, taken: b.ok, term: b.term }),
  'tk.result': (b) => ({ kind: 'result', id: b.id, op: b.op, outcome: outcomeOf(b.ok, b.v), term: b.term }),
  'tk.done': (b) => ({ kind: 'done', id: b.id, term: b.term }),
  'tk.fin': (b) => ({
    kind: 'fin',
    task: {
      id: b.id,
      op: b.op,
      ok: b.ok,
      value: b.v,
      worker: b.w,
      workerName: b.wn,
      durationMs: b.ms,
    },
    term: b.term,
  }),
  'tk.status': (b) => ({ kind: 'status', held: b.held, term: b.term }),
  'tk.list': (b) => ({ kind: 'list', query: b.q, offset: b.off, limit: b.lim }),
  'tk.page': (b) => ({
    kind: 'page',
    query: b.q,
    offset: b.off,
    total: b.total,
    end: b.end,
    items: b.items.map((it) => ({
      id: it.id,
      op: it.op,
      state: it.st,
      worker: it.w,
      durationMs: it.ms,
      text: it.x,
      submittedAt: it.at,
    })),
  }),
};

const isWireType = (type: string): type is WireType => Object.hasOwn(MESSAGES, type);

/** The message a received body carries, or null for a type this protocol does not own. */
export function fromWire(type: string, body: unknown): TaskMessage | null {
  if (!isWireType(type)) return null;
  // The node delivers only bodies that passed MESSAGES[type] (wire.ts Codec), whose shape
  // WireBodies[type] states: this is the one place that relies on it.
  const decode = FROM_WIRE[type] as (b: unknown) => TaskMessage;
  return decode(body);
}

function wireItem(s: TaskSummary): WireItem {
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

/** The wire type and body of a message. */
export function toWire(m: TaskMessage): { type: WireType; body: WireBodies[WireType] } {
  switch (m.kind) {
    case 'submit':
      return { type: 'tk.submit', body: { id: m.id, op: m.op, a: m.args, term: m.term } };
    case 'accept':
      return { type: 'tk.accept', body: { id: m.id, term: m.term } };
    case 'reject':
      return {
        type: 'tk.reject',
        body: m.unstored
          ? { id: m.id, term: m.term, why: m.why, st: m.unstored }
          : { id: m.id, term: m.term, why: m.why },
      };
    case 'new':
      return { type: 'tk.new', body: { id: m.id, op: m.op, a: m.args, s: m.submitter, term: m.term } };
    case 'assign':
      return { type: 'tk.assign', body: { id: m.id, op: m.op, a: m.args, term: m.term } };
    case 'ack':
      return { type: 'tk.ack', body: { id: m.id, ok: m.taken, term: m.term } };
    case 'result':
      return {
        type: 'tk.result',
        body: { id: m.id, op: m.op, ok: m.outcome.ok, v: valueOf(m.outcome), term: m.term },
      };
    case 'done':
      return { type: 'tk.done', body: { id: m.id, term: m.term } };
    case 'fin': {
      const t = m.task;
      return {
        type: 'tk.fin',
        body: {
          id: t.id,
          op: t.op,
          ok: t.ok,
          v: t.value,
          w: t.worker,
          wn: t.workerName,
          ms: t.durationMs,
          term: m.term,
        },
      };
    }
    case 'status':
      return { type: 'tk.status', body: { held: m.held, term: m.term } };
    case 'list':
      return { type: 'tk.list', body: { q: m.query, off: m.offset, lim: m.limit } };
    case 'page':
      return {
        type: 'tk.page',
        body: { q: m.query, off: m.offset, total: m.total, end: m.end, items: m.items.map(wireItem) },
      };
  }
}
