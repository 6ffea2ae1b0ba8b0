import { Flags } from '@oclif/core';
import { networkFlags } from '../../cli/flags.js';
import { networkSettings, startPeer, defaultName } from '../../cli/peer.js';
import { paintName, table } from '../../cli/output.js';
import { escapeForTerminal } from '../../cli/sanitize.js';
import { answer, installTaskClient, TaskCommand, taskId, taskOutcome, timeoutFlag } from '../../cli/tasks.js';
import { showingWait } from '../../cli/progress.js';
import {
  RUN_LIST_MAX,
  RUN_PAGE_BYTES_MAX,
  type JobResult,
  type KeeperAnswer,
  type RunPage,
  type RunView,
} from '../../p2p/jobs/index.js';
import { PeerStore } from '../../storage/store.js';
import { RunsStore } from '../../storage/runs.js';

/** A result's text in the table (`--json` and `peer task submit --wait` give it whole). */
export const TASK_TEXT_CHARS_MAX = 40;

/** One line of the listing: a task (a job of a run) with its result, or a run's tasks still without one. */
export interface TaskRow {
  /** `<run>-<job>` for a task; the run's id for its tasks without a result. */
  id: string;
  /** The op, or `command` for a run of `peer run --detach`. */
  op: string;
  state: 'done' | 'failed' | 'open' | 'cancelled';
  worker: string | null;
  durationMs: number | null;
  /** The result or error, or how many tasks of the run have none yet. */
  text: string | null;
}

export interface TaskListResult {
  /** Where the list came from: the coordinator over the network, or a local database. */
  source: { coordinator: string } | { database: string };
  /** Runs listed (newest first) and their tasks in all. */
  runs: number;
  total: number;
  tasks: TaskRow[];
}

/** A page of a run's results after a job, as the keeper (or a store) gives it. */
type Pages = (
  run: string,
  afterJob: number,
) => Promise<Pick<RunPage, 'results' | 'next'>> | Pick<RunPage, 'results' | 'next'>;

export default class TaskList extends TaskCommand {
  static override summary = 'List tasks with state, worker, duration and result.';
  static override description =
    "Asks the elected coordinator for its newest runs (a peer task submit is one run, --repeat N a run of N tasks; peer run --detach runs are listed too) and lists their tasks, newest run first, up to --limit rows: each task with a result, and one row per run for its tasks still without one. Every full peer keeps what the coordinator announces, so with --local it reads the SQLite file of the peer named --name in --data-dir instead, without any network (a stopped worker's history, say). Tasks listed before this version of peer are not shown.";
  static override examples = [
    '<%= config.bin %> task list --interface 127.0.0.1',
    '<%= config.bin %> task list --json --limit 100',
    '<%= config.bin %> task list --local --name w1',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...networkFlags,
    limit: Flags.integer({
      summary: 'Most rows to list, newest run first.',
      default: 20,
      min: 1,
      max: RUN_LIST_MAX,
    }),
    local: Flags.boolean({
      summary: 'Read the local database of peer --name instead of asking the coordinator.',
      default: false,
    }),
    timeout: timeoutFlag(5_000),
  };

  async run(): Promise<TaskListResult> {
    const { flags } = await this.parse(TaskList);
    const result = flags.local
      ? await this.fromStore(flags['data-dir'], flags.name ?? defaultName(), flags.limit)
      : await this.fromNetwork(flags);
    this.log(render(result));
    return result;
  }

  private async fromStore(dataDir: string, name: string, limit: number): Promise<TaskListResult> {
    const store = PeerStore.open(dataDir, name);
    try {
      const runs = RunsStore.of(store);
      const pages: Pages = (run, after) => {
        const { results, more } = runs.results(run, after, RUN_PAGE_BYTES_MAX, limit);
        return { results, next: more ? (results.at(-1)?.job ?? after) : null };
      };
      return { source: { database: store.file }, ...(await rowsOf(runs.list(0, limit), pages, limit)) };
    } finally {
      store.close();
    }
  }

  private async fromNetwork(
    flags: Parameters<typeof networkSettings>[0] & { limit: number; timeout: number },
  ): Promise<TaskListResult> {
    const settings = networkSettings(flags, flags.name ?? `task-list-${process.pid}`);
    const peer = await startPeer(settings, {
      transient: true,
      install: (node) => installTaskClient(node, Boolean(settings.keys)),
    });
    const { keeper } = peer.installed.jobs;
    const deadline = Date.now() + flags.timeout;
    const ask = <T>(p: Promise<KeeperAnswer<T>>) => answer(p, deadline, flags.timeout);
    try {
      const listed = await showingWait(
        "waiting for the coordinator's list of runs",
        (async () => {
          const views = await ask(keeper.listRuns(0, flags.limit));
          return rowsOf(views, (run, after) => ask(keeper.results(run, after)), flags.limit);
        })(),
        { json: this.jsonEnabled() },
      );
      const coord = peer.installed.election.coordinator();
      const name = (coord && peer.node.membership.get(coord)?.name) ?? coord ?? 'unknown';
      return { source: { coordinator: name }, ...listed };
    } finally {
      await peer.stop();
    }
  }
}

/** The rows of `views` (newest first), up to `limit`: each run's results, then its pending tasks. */
async function rowsOf(
  views: RunView[],
  pages: Pages,
  limit: number,
): Promise<Omit<TaskListResult, 'source'>> {
  const tasks: TaskRow[] = [];
  let total = 0;
  for (const v of views) {
    total += v.jobs;
    const op = v.kind === 'op' ? (v.words[0] ?? '') : 'command';
    let after = 0;
    while (tasks.length < limit) {
      const page = await pages(v.run, after);
      for (const r of page.results) {
        if (tasks.length >= limit) break;
        tasks.push(rowOf(v.run, op, r));
      }
      if (page.next === null) break;
      after = page.next;
    }
    const pending = v.jobs - v.done - v.failed;
    if (pending > 0 && tasks.length < limit)
      tasks.push({
        id: v.run,
        op,
        state: v.state === 'cancelled' ? 'cancelled' : 'open',
        worker: null,
        durationMs: null,
        text: `${pending} of ${v.jobs} tasks without a result`,
      });
  }
  return { runs: views.length, total, tasks };
}

function rowOf(run: string, op: string, r: JobResult): TaskRow {
  const o = taskOutcome(r);
  return {
    id: taskId(run, r.job),
    op,
    state: o.ok ? 'done' : 'failed',
    worker: o.worker,
    durationMs: o.durationMs,
    text: o.value,
  };
}

function render(r: TaskListResult): string {
  const from =
    'coordinator' in r.source
      ? `coordinator ${paintName(escapeForTerminal(r.source.coordinator))}`
      : escapeForTerminal(r.source.database);
  if (r.tasks.length === 0) return `no tasks (from ${from})`;
  const clip = (s: string) =>
    s.length <= TASK_TEXT_CHARS_MAX ? s : `${s.slice(0, TASK_TEXT_CHARS_MAX - 1)}…`;
  // Ops, workers and results come from the coordinator (or a database): escaped.
  const rows = r.tasks.map((t) =>
    [
      t.id,
      t.op,
      t.state,
      t.worker ?? '-',
      t.durationMs === null ? '-' : `${t.durationMs} ms`,
      clip(t.text ?? ''),
    ].map(escapeForTerminal),
  );
  return `${table(['ID', 'OP', 'STATE', 'WORKER', 'DURATION', 'RESULT'], rows)}\n${r.tasks.length} rows of ${r.total} tasks in the newest ${r.runs} runs (from ${from})`;
}
