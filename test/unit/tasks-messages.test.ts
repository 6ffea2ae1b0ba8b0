/**
 * The tasks protocol's messages, declared with the message kit (src/p2p/tasks/messages.ts), must
 * put on the wire the very bytes the hand-written bodies did: each case below is a body as the old
 * code built it (short names, its field order) and the same message as the roles now give it.
 */
import { envelopeOf } from '../support/messages.js';
import { describe, expect, it } from 'vitest';
import { Codec, type Envelope } from '../../src/p2p/wire.js';
import {
  MESSAGES,
  summaryOf,
  toWire,
  wireItem,
  type TaskBodies,
  type TaskType,
} from '../../src/p2p/tasks/messages.js';
import type { TaskSummary } from '../../src/p2p/tasks/types.js';

const envelope = (t: string, b: unknown): Envelope => envelopeOf(t, b);

const ID = '0123456789abcdef';
const PEER = 'fedcba9876543210';
const summary: TaskSummary = {
  id: ID,
  op: 'sum',
  state: 'done',
  worker: 'bob',
  durationMs: 12,
  text: '6',
  submittedAt: 1_700_000_000_000,
};

type Case = { [T in TaskType]: [T, Record<string, unknown>, TaskBodies[T]] }[TaskType];

const cases: Case[] = [
  ['tk.submit', { id: ID, op: 'sum', a: [1, 2.5], term: 3 }, { id: ID, op: 'sum', args: [1, 2.5], term: 3 }],
  ['tk.accept', { id: ID, term: 3 }, { id: ID, term: 3 }],
  ['tk.reject', { id: ID, term: 3, why: 'full' }, { id: ID, term: 3, why: 'full' }],
  ['tk.reject', { id: ID, term: 3, why: 'disk', st: 'io' }, { id: ID, term: 3, why: 'disk', unstored: 'io' }],
  [
    'tk.new',
    { id: ID, op: 'sort', a: [3, 1], s: PEER, term: 4 },
    { id: ID, op: 'sort', args: [3, 1], submitter: PEER, term: 4 },
  ],
  [
    'tk.new',
    { id: ID, op: 'sort', a: [], s: null, term: 4 },
    { id: ID, op: 'sort', args: [], submitter: null, term: 4 },
  ],
  [
    'tk.assign',
    { id: ID, op: 'fibonacci', a: [10], term: 4 },
    { id: ID, op: 'fibonacci', args: [10], term: 4 },
  ],
  ['tk.ack', { id: ID, ok: false, term: 4 }, { id: ID, taken: false, term: 4 }],
  [
    'tk.result',
    { id: ID, op: 'sum', ok: true, v: '3', term: 4 },
    { id: ID, op: 'sum', ok: true, value: '3', term: 4 },
  ],
  [
    'tk.result',
    { id: ID, op: 'sum', ok: false, v: 'sum: bad', term: 4 },
    { id: ID, op: 'sum', ok: false, value: 'sum: bad', term: 4 },
  ],
  ['tk.done', { id: ID, term: 4 }, { id: ID, term: 4 }],
  [
    'tk.fin',
    { id: ID, op: 'sum', ok: true, v: '3', w: PEER, wn: 'bob', ms: 7, term: 4 },
    { id: ID, op: 'sum', ok: true, value: '3', worker: PEER, workerName: 'bob', durationMs: 7, term: 4 },
  ],
  [
    'tk.fin',
    { id: ID, op: 'sum', ok: false, v: 'no', w: null, wn: null, ms: null, term: 4 },
    { id: ID, op: 'sum', ok: false, value: 'no', worker: null, workerName: null, durationMs: null, term: 4 },
  ],
  ['tk.status', { held: [ID], term: 5 }, { held: [ID], term: 5 }],
  ['tk.list', { q: 9, off: 16, lim: 20 }, { query: 9, offset: 16, limit: 20 }],
  [
    'tk.page',
    {
      q: 9,
      off: 0,
      total: 1,
      end: true,
      items: [{ id: ID, op: 'sum', st: 'done', w: 'bob', ms: 12, x: '6', at: 1_700_000_000_000 }],
    },
    { query: 9, offset: 0, total: 1, end: true, items: [wireItem(summary)] },
  ],
];

describe('tasks messages on the wire', () => {
  it.each(cases)('%s: the domain body encodes to the very bytes the old wire body did', (t, wire, domain) => {
    const codec = new Codec(MESSAGES.checks);
    const before = codec.encode(envelope(t, wire));
    const after = codec.encode(envelope(t, toWire<typeof t>(t, domain)));
    expect(after.equals(before)).toBe(true);
  });

  it.each(cases)(
    '%s: a received old wire body passes the check and reaches its role by domain names',
    (t, wire, domain) => {
      expect(MESSAGES.checks[t]!(wire)).toBe(true);
      const got: Array<[string, unknown]> = [];
      const record = (type: string) => (b: unknown) => void got.push([type, b]);
      const dispatch = MESSAGES.dispatch({
        'tk.submit': record('tk.submit'),
        'tk.accept': record('tk.accept'),
        'tk.reject': record('tk.reject'),
        'tk.new': record('tk.new'),
        'tk.assign': record('tk.assign'),
        'tk.ack': record('tk.ack'),
        'tk.result': record('tk.result'),
        'tk.done': record('tk.done'),
        'tk.fin': record('tk.fin'),
        'tk.status': record('tk.status'),
        'tk.list': record('tk.list'),
        'tk.page': record('tk.page'),
      });
      dispatch(envelope(t, wire), '127.0.0.1:1');
      expect(got).toEqual([[t, domain]]);
    },
  );

  it('a listed task survives the page both ways', () => {
    expect(summaryOf(wireItem(summary))).toEqual(summary);
  });
});
