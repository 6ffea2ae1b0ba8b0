/**
 * What the task commands share: installing the election, the group clock and the tasks protocol
 * on a peer, and describing task events. The election runs in every task command, as the
 * coordinator must be known: `peer worker` stands as a candidate (rank: --priority, then peer id);
 * one-shot commands only follow.
 */
import { Flags } from '@oclif/core';
import chalk from 'chalk';
import type { PeerNode } from '../p2p/node.js';
import type { PeerEvent } from '../p2p/protocol.js';
import { Tasks, type CoordinatorView, type TaskExecutor, type TaskLog } from '../p2p/tasks/index.js';
import { describeCoordinationEvent, installCoordination, type Coordination } from './coordination.js';
import {
  describeMembershipEvent,
  eventJson,
  memberLabel,
  paintName,
  paintPeer,
  type EventLog,
} from './output.js';
import { GroupError, PeerCommand } from './base.js';
import { escapeForTerminal } from './sanitize.js';

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

export interface TaskPeer extends Coordination {
  tasks: Tasks;
}

/**
 * Installs the election and the group clock (cli/coordination.ts, first: they tick first), then
 * the tasks protocol. Any peer that stands in the election must run the tasks protocol too, or a
 * group whose coordinator cannot coordinate tasks would leave them queued: `peer up` calls
 * installTasks on its coordination; `peer worker` stands with an executor; one-shot task
 * commands follow as observers.
 */
export function installTaskPeer(
  node: PeerNode,
  opts: { candidate: boolean; observer?: boolean; priority?: number; log?: TaskLog; executor?: TaskExecutor },
): TaskPeer {
  const coordination = installCoordination(node, {
    priority: opts.priority ?? 0,
    candidate: opts.candidate,
    observer: opts.observer ?? false,
  });
  return { ...coordination, tasks: installTasks(node, coordination.election, opts) };
}

/** The tasks protocol alone, on a node whose election is installed already. */
export function installTasks(
  node: PeerNode,
  view: CoordinatorView,
  opts: { log?: TaskLog; executor?: TaskExecutor } = {},
): Tasks {
  return node.install(
    (ctx, n) => new Tasks(ctx, n.membership, { view, log: opts.log, executor: opts.executor }),
  );
}

/**
 * Resolves when `pred` holds for an event, or with null after `timeoutMs` or once `signal` is
 * aborted. A wait the command no longer needs must be aborted: its timer would keep the process
 * alive until it runs out.
 */
export function nextEvent<E extends PeerEvent>(
  node: PeerNode,
  pred: (e: PeerEvent) => e is E,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<E | null> {
  return new Promise((resolve) => {
    const settle = (e: E | null) => {
      clearTimeout(timer);
      off();
      signal?.removeEventListener('abort', abort);
      resolve(e);
    };
    const abort = () => settle(null);
    const off = node.on((e) => {
      if (pred(e)) settle(e);
    });
    const timer = setTimeout(abort, timeoutMs);
    signal?.addEventListener('abort', abort);
    if (signal?.aborted) abort();
  });
}

const short = (id: string) => chalk.gray(id.slice(0, 8));

/** One readable line for a task event, or null for kinds described elsewhere (election: coordination.ts). */
export function describeTaskEvent(e: PeerEvent, node: PeerNode): string | null {
  const who = (id: string | null) => {
    if (!id) return 'nobody';
    if (id === node.id) return `${paintName(node.name)} (this peer)`;
    const m = node.membership.get(id);
    return m ? memberLabel(m) : paintPeer(node.membership, id);
  };
  switch (e.kind) {
    case 'task-coordinator':
      return `${chalk.cyan('tasks')}   coordinating tasks (term ${e.term}); ${e.resumed} resumed from the log`;
    case 'task-assigned':
      return `${chalk.blue('assign')}  task ${short(e.id)} -> ${paintName(e.workerName)}`;
    case 'task-reassigned':
      return `${chalk.yellow('requeue')} task ${short(e.id)} from ${who(e.worker)}: ${escapeForTerminal(e.why)}`;
    case 'task-recorded':
      return `${e.ok ? chalk.green('done') : chalk.red('failed')}    task ${short(e.id)} (${escapeForTerminal(e.op)}) by ${who(e.worker)}`;
    case 'task-started':
      return `${chalk.blue('run')}     task ${short(e.id)} (${escapeForTerminal(e.op)})`;
    case 'task-finished':
      return `${e.ok ? chalk.green('ran') : chalk.red('ran')}     task ${short(e.id)} (${escapeForTerminal(e.op)})${e.ok ? '' : ': failed'}`;
    default:
      return null;
  }
}

/**
 * The log of a long-running peer that can take part in tasks (`peer up`, `peer worker`): the
 * `up` line (the node's identity and group, plus `extra` fields), then every membership,
 * coordination and task event as it happens.
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
    const line =
      describeMembershipEvent(e) ?? describeCoordinationEvent(e, node.id) ?? describeTaskEvent(e, node);
    if (line) log(eventJson(e, Date.now()), line);
  });
}
