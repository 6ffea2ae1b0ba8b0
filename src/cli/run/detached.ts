/**
 * `peer run --detach`, `--attach ID`, `--cancel ID`: what the command does with the group's keeper
 * of detached runs (the elected coordinator, src/p2p/jobs/keeper.ts), through the KeeperApi. The
 * peer these commands start follows the election (to know the keeper) and stands in none.
 */
import chalk from 'chalk';
import type { PeerNode } from '../../p2p/node.js';
import type { PeerEvent } from '../../p2p/protocol.js';
import { ReliableDelivery } from '../../p2p/reliable/index.js';
import type { Jobs, KeeperAnswer, KeeperApi, RunCounts, RunId, RunView } from '../../p2p/jobs/index.js';
import { installCoordination } from '../coordination.js';
import { eventJson, paintName, type EventLog } from '../output.js';
import { escapeForTerminal } from '../sanitize.js';
import { installJobs } from './install.js';
import { RunError } from './session.js';
import type { RunOutput } from './sink.js';

/**
 * How long a call waits for the keeper's answer: a coordinator is known within a heartbeat or two,
 * and a run of RUN_JOBS_MAX lines takes a few seconds to hand over on a LAN.
 */
export const KEEPER_WAIT_MS = 30_000;
/** How often `--attach` asks for new results while the run is open. */
export const ATTACH_POLL_MS = 500;

/** Jobs on a peer that follows the election (it stands in none): the keeper's clients. */
export function installKeeperClient(node: PeerNode, keyed: boolean): Jobs {
  const { election } = installCoordination(node, { priority: 0, candidate: false, observer: true });
  const reliable = node.install((ctx, n) => new ReliableDelivery(ctx, n.membership));
  return installJobs(node, reliable, { keyed, view: election });
}

/** The answer's value, or a RunError with its reason; none within KEEPER_WAIT_MS: one too. */
export async function answered<T>(call: Promise<KeeperAnswer<T>>, waitMs = KEEPER_WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<KeeperAnswer<T>>((resolve) => {
    timer = setTimeout(
      () =>
        resolve({
          ok: false,
          why: `no coordinator answered within ${Math.round(waitMs / 1000)} s: detached runs are kept by the group's coordinator; start peer up or peer worker, and check --interface, --group, --port and --key-file`,
        }),
      waitMs,
    );
  });
  const a = await Promise.race([call, late]).finally(() => clearTimeout(timer));
  if (!a.ok) throw new RunError(a.why);
  return a.value;
}

/**
 * Prints every result of a run through `sink` (each once), asking for new ones every
 * ATTACH_POLL_MS until the run is over and read to its end; returns its last view, or null when
 * `signal` stopped it first. Results come in job order from above the last job before which
 * every one was seen, so a job recorded late (after higher ones) is not missed.
 */
export async function attachRun(
  api: KeeperApi,
  run: RunId,
  sink: RunOutput,
  onView: (v: RunView) => void,
  signal: AbortSignal,
): Promise<RunView | null> {
  const seen = new Set<number>();
  let contiguous = 0;
  let cursor = 0;
  let lastSweep = false;
  for (;;) {
    if (signal.aborted) return null;
    const page = await answered(api.results(run, cursor));
    // First: the sink shows each job's command from the run's words.
    onView(page.view);
    page.results.forEach((r, i) => {
      if (seen.has(r.job)) return;
      seen.add(r.job);
      sink.expect([{ job: r.job, seq: r.seq, input: page.inputs[i] ?? null, pin: null }]);
      sink.record(r);
    });
    if (page.next !== null) {
      cursor = page.next;
      continue;
    }
    while (seen.has(contiguous + 1)) contiguous++;
    cursor = contiguous;
    if (lastSweep) return page.view;
    // Over: one more pass from the first gap takes what was recorded while we read.
    if (page.view.state !== 'open') {
      lastSweep = true;
      continue;
    }
    await pause(ATTACH_POLL_MS, signal);
  }
}

/** The progress line's counts for a detached run, from its keeper's view. */
export function countsOf(v: RunView | null): RunCounts {
  const jobs = v?.jobs ?? 0;
  const done = v?.done ?? 0;
  const failed = v?.failed ?? 0;
  return {
    fed: jobs,
    inputEnded: v !== null,
    workers: [],
    queued: Math.max(0, jobs - done - failed),
    running: 0,
    done,
    failed,
    cancelled: 0,
    reassigned: 0,
  };
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

/** The log of a peer that may keep detached runs (`peer up`, `peer worker`): what it keeps, when. */
export function logKeeper(log: EventLog, node: PeerNode): void {
  node.on((e) => {
    const line = describeKeeperEvent(e);
    if (line) log(eventJson(e, Date.now()), line);
  });
}

function describeKeeperEvent(e: PeerEvent): string | null {
  const run = (id: RunId) => `run ${chalk.gray(id.slice(0, 8))}`;
  switch (e.kind) {
    case 'detached-stored':
      return `${chalk.cyan('keep')}    ${run(e.run)}: ${e.jobs} jobs from ${paintName(e.submitterName)}`;
    case 'detached-refused':
      return `${chalk.red('refuse')}  ${run(e.run)}: ${escapeForTerminal(e.why)}`;
    case 'detached-resumed':
      return `${chalk.cyan('keep')}    keeping detached runs (term ${e.term}); ${e.runs} resumed`;
    case 'detached-over':
      return `${e.state === 'done' ? chalk.green('done') : chalk.yellow('cancel')}    ${run(e.run)} ${e.state}`;
    default:
      return null;
  }
}
