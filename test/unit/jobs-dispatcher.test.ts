/**
 * The submitter's dispatcher (src/p2p/jobs/dispatcher.ts) driven by hand, for what the simulated
 * network cannot stage on demand: a worker that took an attempt but whose acks never came back
 * (reliable delivery gives up with 'timeout'). The attempt is cancelled there and placed again;
 * the cancelled attempt's result, when it comes, is not the job's result.
 */
import { describe, expect, it } from 'vitest';
import { Dispatcher } from '../../src/p2p/jobs/dispatcher.js';
import { decodeJob, type JobMessage, type ResultEntry } from '../../src/p2p/jobs/messages.js';
import { TAG_EXEC, TAG_SLOTS } from '../../src/p2p/jobs/adverts.js';
import type { JobResult, JobSent, JobsStats } from '../../src/p2p/jobs/types.js';
import type { MemberView, PeerEvent, ProtocolContext } from '../../src/p2p/protocol.js';

const W1 = 'aaaaaaaaaaaaaaaa';
const W2 = 'bbbbbbbbbbbbbbbb';
const member = (id: string, name: string): MemberView => ({
  id,
  name,
  address: `10.0.0.${id === W1 ? 1 : 2}:7000`,
  state: 'alive',
  incarnation: 1,
  lastSeenMs: 0,
  duplicateName: false,
  tags: { [TAG_SLOTS]: 1, [TAG_EXEC]: '1' },
});

function harness() {
  let lamport = 0;
  let now = 0;
  const soon: Array<() => void> = [];
  const events: PeerEvent[] = [];
  const ctx = {
    self: { id: 'cccccccccccccccc', name: 'submitter', incarnation: 1 },
    now: () => now,
    wall: () => 1_700_000_000_000 + now,
    random: Math.random,
    lamport: () => lamport,
    stamp: () => ++lamport,
    emit: (e: PeerEvent) => events.push(e),
    soon: (fn: () => void) => soon.push(fn),
  } as unknown as ProtocolContext;
  const members = [member(W1, 'w1'), member(W2, 'w2')];
  const membership = { list: () => members, get: (id: string) => members.find((m) => m.id === id) };
  const sent: Array<{ to: string; m: JobMessage; done?: (r: JobSent) => void }> = [];
  const send = (to: string, payload: string | Uint8Array, done?: (r: JobSent) => void) => {
    sent.push({ to, m: decodeJob(typeof payload === 'string' ? Buffer.from(payload) : payload)!, done });
  };
  const records: JobResult[] = [];
  const stats = Object.fromEntries(
    [
      'duplicateResults',
      'wrongSender',
      'unknownRun',
      'refusedJobs',
      'staleFences',
      'reassigned',
      'killed',
      'malformed',
    ].map((k) => [k, 0]),
  ) as JobsStats;
  const spec = {
    run: '0123456789abcdef',
    kind: 'exec' as const,
    words: ['work', '{}'],
    env: [],
    detached: false,
    timeoutMs: null,
    graceMs: 2000,
    output: 'group' as const,
    transfers: [],
    returns: [],
  };
  const sink = { output: () => {}, returned: () => {}, record: (r: JobResult) => void records.push(r) };
  const d = new Dispatcher(
    ctx,
    send,
    membership,
    spec,
    sink,
    { retries: 1, maxRunning: null, workers: null },
    stats,
    () => {},
    () => 0,
  );
  const turn = () => {
    while (soon.length > 0) soon.shift()!();
  };
  return { d, sent, records, stats, events, turn, advance: (ms: number) => (now += ms) };
}

const result = (
  job: number,
  attempt: number,
  fence: number,
  over: Partial<ResultEntry> = {},
): ResultEntry => ({
  job,
  attempt,
  fence,
  exit: 0,
  signal: 0,
  timedOut: false,
  cancelled: false,
  started: true,
  at: 0,
  us: 1,
  out: 0,
  err: 0,
  truncated: false,
  why: null,
  ...over,
});

describe('dispatcher', () => {
  it('a worker that says a file did not get there gets nothing for a while: the job goes elsewhere', () => {
    const h = harness();
    h.turn();
    h.d.feed([{ job: 1, seq: 1, input: 'a', pin: null }], true);
    h.turn();
    const first = h.sent.find((s) => s.m.type === 'jb.jobs')!;
    expect(first.to).toBe(W1);
    h.d.onFull(W1, { run: '0123456789abcdef', free: 3, seen: 1, jobs: [[1, 1]], why: 'missing-file' });
    h.turn();
    const again = h.sent.filter((s) => s.m.type === 'jb.jobs').at(-1)!;
    expect(again.to).toBe(W2);
  });

  it('a jb.jobs given up on is cancelled there and placed again; that attempt cancelled is not the result', () => {
    const h = harness();
    h.turn();
    h.d.feed([{ job: 1, seq: 1, input: 'a', pin: null }], true);
    h.turn();
    const first = h.sent.find((s) => s.m.type === 'jb.jobs')!;
    const [job, , attempt, fence] = (first.m as Extract<JobMessage, { type: 'jb.jobs' }>).body.jobs[0]!;
    // Reliable delivery gives up: the worker may have the job, and may be running it.
    first.done!({ ok: false, reason: 'timeout' });
    h.turn();
    const cancel = h.sent.find((s) => s.m.type === 'jb.cancel' && s.to === first.to)!;
    expect(cancel.m.body).toMatchObject({ jobs: [[job, attempt]] });
    const again = h.sent.filter((s) => s.m.type === 'jb.jobs').at(-1)!;
    const [, , attempt2, fence2] = (again.m as Extract<JobMessage, { type: 'jb.jobs' }>).body.jobs[0]!;
    expect([attempt2, fence2 > fence]).toEqual([2, true]);
    // The first worker confirms the kill: not recorded; the second attempt's result is.
    h.d.onDone(
      first.to,
      'w',
      {
        run: '0123456789abcdef',
        free: 1,
        seen: 1,
        results: [result(1, 1, fence, { cancelled: true, exit: -1, signal: 15 })],
      },
      new Uint8Array(0),
    );
    expect(h.records).toEqual([]);
    h.d.onDone(
      again.to,
      'w',
      { run: '0123456789abcdef', free: 1, seen: 1, results: [result(1, 2, fence2)] },
      new Uint8Array(0),
    );
    expect(h.records).toEqual([expect.objectContaining({ job: 1, attempt: 2, exit: 0, cancelled: false })]);
    expect(h.events.at(-1)).toMatchObject({ kind: 'run-finished', counts: { done: 1, cancelled: 0 } });
  });
});
