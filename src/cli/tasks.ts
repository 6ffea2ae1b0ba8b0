/**
 * What the task commands share. A task is a job of a detached run of a built-in op
 * (docs/tasks.md), kept by the elected coordinator (the keeper, src/p2p/jobs/keeper.ts) and run by
 * the workers. `peer task submit` and `peer task list` join as transient members that follow the
 * election (the keeper answers members only), hand runs over and read their results through
 * KeeperApi, and race every call against their --timeout. A task's id is its job's PEER_JOB_ID:
 * `<run>-<job>`. Long-running peers (`peer up`, `peer worker`) log through logTaskPeer.
 */
import { Flags } from '@oclif/core';
import type { PeerNode } from '../p2p/node.js';
import type { Election } from '../p2p/election.js';
import { ReliableDelivery } from '../p2p/reliable/index.js';
import {
  JOB_KILL_GRACE_MS,
  type JobResult,
  type Jobs,
  type KeeperAnswer,
  type KeeperApi,
  type RunId,
  type RunSpec,
} from '../p2p/jobs/index.js';
import { TASK_ERROR_CHARS_MAX } from '../p2p/jobs/ops.js';
import { describeCoordinationEvent, installCoordination } from './coordination.js';
import { installJobs } from './run/install.js';
import { describeMembershipEvent, eventJson, type EventLog } from './output.js';
import { GroupError, PeerCommand } from './base.js';

/** The task failed or nobody answered: one line, exit 1 (PeerCommand's rule for a GroupError). */
export class TaskFailure extends GroupError {
  override name = 'TaskFailure';
}

/** A task's error text comes from the worker that ran it: PeerCommand escapes it, exact in the JSON. */
export abstract class TaskCommand extends PeerCommand {}

export const timeoutFlag = (defaultMs: number) =>
  Flags.integer({
    summary: 'How long to wait for the group, in ms.',
    default: defaultMs,
    min: 100,
    max: 3_600_000,
  });

/** How often `--wait` asks the keeper for new results at first; doubled while none come. */
export const TASK_RESULTS_POLL_MS = 50;
/** The longest wait between two asks for results. */
export const TASK_RESULTS_POLL_MS_MAX = 1000;

/** The spec of a run of `op` with `args`: one job per task, no input, output kept whole. */
export function opRunSpec(op: string, args: number[]): Omit<RunSpec, 'run' | 'detached'> {
  return {
    kind: 'op',
    words: [op, ...args.map(String)],
    env: [],
    timeoutMs: null,
    graceMs: JOB_KILL_GRACE_MS,
    output: 'group',
    transfers: [],
    returns: [],
  };
}

export const taskId = (run: RunId, job: number): string => `${run}-${job}`;

/** What a task's job result says: its value (stdout) or its error (stderr, or why it did not run). */
export interface TaskOutcome {
  ok: boolean;
  value: string;
  worker: string;
  durationMs: number;
}

export function taskOutcome(r: JobResult): TaskOutcome {
  const ok = r.started && !r.cancelled && !r.timedOut && r.exit === 0 && r.signal === 0;
  const text = (b: Uint8Array) => Buffer.from(b).toString('utf8').replace(/\n$/, '');
  const error =
    text(r.stderr) ||
    r.error ||
    (r.timedOut ? 'it ran over its time' : r.cancelled ? 'it was cancelled' : `it ended with exit ${r.exit}`);
  return {
    ok,
    value: ok ? text(r.stdout) : error.slice(0, TASK_ERROR_CHARS_MAX),
    worker: r.workerName,
    durationMs: Math.round(r.runtimeUs / 1000),
  };
}

/** The value of `p`, or null once `deadline` (ms since the epoch) has passed. */
export function within<T>(p: Promise<T>, deadline: number): Promise<T | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), Math.max(0, deadline - Date.now()));
    void p.then((v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

/**
 * A keeper's answer, or a TaskFailure that says why not: no answer in time, or its refusal after
 * `refused` (what was refused, for the user).
 */
export async function answer<T>(
  p: Promise<KeeperAnswer<T>>,
  deadline: number,
  timeoutMs: number,
  refused = '',
): Promise<T> {
  const a = await within(p, deadline);
  if (!a)
    throw new TaskFailure(
      `no coordinator answered within ${timeoutMs} ms: start a worker (peer worker) or peer up on this group, or check --interface, --group, --port and --key-file (the workers' key)`,
    );
  if (!a.ok) throw new TaskFailure(`${refused}${a.why}`);
  return a.value;
}

/** A transient member that follows the election and asks the keeper. */
export function installTaskClient(node: PeerNode, keyed: boolean): { jobs: Jobs; election: Election } {
  const { election } = installCoordination(node, { priority: 0, candidate: false });
  const reliable = node.install((ctx, n) => new ReliableDelivery(ctx, n.membership));
  return { jobs: installJobs(node, reliable, { keyed, view: election }), election };
}

/**
 * Reads the results of `run` as they are recorded, each once, until `jobs` of them came, the run
 * was cancelled, or `deadline`. A page holds the results after a job number, in job order, and
 * jobs end in any order: the reader goes forward from the highest job it read, and reads again
 * from the first job it has not read only when the run counts more results than it has (a job it
 * passed was recorded since), so a job that waits long does not make every ask start before it.
 */
export async function collectResults(
  keeper: KeeperApi,
  run: RunId,
  jobs: number,
  deadline: number,
  take: (r: JobResult) => void,
): Promise<'done' | 'timeout'> {
  const seen = new Set<number>();
  /** Every job up to it was read. */
  let prefix = 0;
  /** The highest job read: where reading forward goes on. */
  let high = 0;
  let after = 0;
  /** Reading again from the first job not read: done once it reaches the end. */
  let rereading = false;
  let pollMs = TASK_RESULTS_POLL_MS;
  while (Date.now() < deadline) {
    const a = await within(keeper.results(run, after), deadline);
    if (!a) break;
    if (!a.ok) throw new TaskFailure(a.why);
    const { view, results, next } = a.value;
    let fresh = 0;
    for (const r of results) {
      high = Math.max(high, r.job);
      if (seen.has(r.job)) continue;
      seen.add(r.job);
      fresh++;
      take(r);
    }
    while (seen.has(prefix + 1)) prefix++;
    if (seen.size >= jobs) return 'done';
    if (view.state === 'cancelled')
      throw new TaskFailure(`run ${run} was cancelled; ${seen.size} of ${jobs} tasks had a result`);
    if (next !== null) {
      after = next;
      continue;
    }
    const missed = view.done + view.failed > seen.size;
    if (missed && !rereading) {
      rereading = true;
      after = prefix;
      continue;
    }
    rereading = false;
    after = high;
    pollMs = fresh > 0 ? TASK_RESULTS_POLL_MS : Math.min(2 * pollMs, TASK_RESULTS_POLL_MS_MAX);
    await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(0, deadline - Date.now()))));
  }
  return 'timeout';
}

/**
 * The log of a long-running peer that can take part in tasks (`peer up`, `peer worker`): the
 * `up` line (the node's identity and group, plus `extra` fields), then every membership and
 * coordination event as it happens.
 */
export function logTaskPeer(
  log: EventLog,
  node: PeerNode,
  group: string,
  extra: Record<string, unknown>,
  text: string,
): void {
  log(
    {
      event: 'up',
      at: new Date().toISOString(),
      name: node.name,
      id: node.id,
      address: node.address,
      incarnation: node.incarnation,
      group,
      ...extra,
    },
    text,
  );
  node.on((e) => {
    const line = describeMembershipEvent(e) ?? describeCoordinationEvent(e, node.id);
    if (line) log(eventJson(e, Date.now()), line);
  });
}
