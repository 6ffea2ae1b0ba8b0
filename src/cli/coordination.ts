/**
 * Election and clock sync for commands: the --priority flag, installing both modules on a node,
 * the PEER_FAKE_CLOCK test hook, and one readable line per election or clock event.
 */
import chalk from 'chalk';
import { Flags } from '@oclif/core';
import { Election, PRIORITY_MAX } from '../p2p/election.js';
import { ClockSync } from '../p2p/clock-sync.js';
import { parseFakeClock, realRuntime, withFakeClock, type Runtime } from '../p2p/runtime.js';
import type { PeerNode } from '../p2p/node.js';
import type { PeerEvent } from '../p2p/protocol.js';
import type { PeerId } from '../p2p/wire.js';
import { UsageError } from './network.js';
import { memberLabel, paintName } from './output.js';
import { nameOrUnheard } from '../p2p/names.js';

/** Only for commands that run a long-lived member which may lead the group (peer up). */
export const priorityFlag = {
  priority: Flags.integer({
    summary: `Election priority, 0-${PRIORITY_MAX}: the highest-priority live peer coordinates (ties: the greater id).`,
    env: 'PEER_PRIORITY',
    default: 0,
    min: 0,
    max: PRIORITY_MAX,
  }),
};

export interface Coordination {
  election: Election;
  clock: ClockSync;
}

/**
 * Installs the election and the group clock on a node (before start). A non-candidate follows the
 * coordinator and keeps a group clock but never stands: one-shot commands use that.
 */
export function installCoordination(
  node: PeerNode,
  opts: { priority: number; candidate: boolean; observer?: boolean },
): Coordination {
  const election = node.install(
    (ctx, n) =>
      new Election(ctx, n.membership, {
        timings: n.profile.election,
        priority: opts.priority,
        candidate: opts.candidate,
      }),
  );
  const clock = node.install(
    (ctx, n) =>
      new ClockSync(ctx, n.membership, {
        timings: n.profile.clock,
        coordinator: election,
        observer: opts.observer ?? false,
      }),
  );
  return { election, clock };
}

/** The real runtime, or with PEER_FAKE_CLOCK="offsetMs,driftPpm" a skewed, drifting wall clock (tests, benches). */
export function runtimeFromEnv(env: NodeJS.ProcessEnv = process.env): Runtime {
  const spec = env.PEER_FAKE_CLOCK;
  if (spec === undefined || spec === '') return realRuntime;
  try {
    return withFakeClock(realRuntime, parseFakeClock(spec));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** One line for an election or clock event, or null for kinds described elsewhere. */
export function describeCoordinationEvent(e: PeerEvent, selfId: PeerId): string | null {
  switch (e.kind) {
    case 'election-started':
      return `${chalk.yellow('election')} term ${e.term} started (${e.reason})`;
    case 'elected':
      return `${chalk.green('elected')} this peer coordinates the group, term ${e.term}`;
    case 'coordinator-changed':
      if (e.coordinator === null)
        return `${chalk.red('no coordinator')} ${e.previous === null ? 'none' : paintName(nameOrUnheard(e.previousName ?? undefined, e.previous))} is gone (term ${e.term})`;
      return `${chalk.cyan('coordinator')} ${e.coordinatorName === null ? paintName(nameOrUnheard(undefined, e.coordinator)) : memberLabel({ name: e.coordinatorName, id: e.coordinator })}${e.coordinator === selfId ? ' (this peer)' : ''}, term ${e.term}`;
    case 'clock-round':
      return `${chalk.blue('clock')} round ${e.round} of term ${e.term}: ${e.peers} peers, ${e.used} averaged, spread ${e.spreadMs.toFixed(3)} ms`;
    case 'clock-adjusted':
      // Small corrections every T seconds are routine: only a real step is worth a line.
      if (Math.abs(e.adjustmentMs) < 1) return null;
      return `${chalk.blue('clock')} group clock adjusted by ${e.adjustmentMs.toFixed(3)} ms (+-${e.accuracyMs.toFixed(3)} ms)`;
    default:
      return null;
  }
}
