import { Flags } from '@oclif/core';
import { networkFlags } from '../../cli/flags.js';
import { networkSettings, startPeer, defaultName } from '../../cli/peer.js';
import { paintName, table } from '../../cli/output.js';
import { escapeForTerminal } from '../../cli/sanitize.js';
import { installTaskPeer, nextEvent, TaskCommand, TaskFailure, timeoutFlag } from '../../cli/tasks.js';
import { Progress, showingWait } from '../../cli/progress.js';
import type { PeerEventOf } from '../../p2p/protocol.js';
import { LIST_LIMIT_MAX, summarize, type TaskSummary } from '../../p2p/tasks/index.js';
import { PeerStore } from '../../storage/store.js';
import { TaskStore } from '../../storage/tasks.js';

export interface TaskListResult {
  /** Where the list came from: the coordinator's log over the network, or a local database. */
  source: { coordinator: string } | { database: string };
  /** Tasks the source knows in all. */
  total: number;
  tasks: TaskSummary[];
}

export default class TaskList extends TaskCommand {
  static override summary = 'List tasks with state, worker, duration and result.';
  static override description =
    "By default asks the elected coordinator over the network for the newest --limit tasks of its log (which also holds what earlier coordinators finished, as every peer records the results it hears). With --local, reads the SQLite file of the peer named --name in --data-dir instead, without any network (a stopped worker's history, say).";
  static override examples = [
    '<%= config.bin %> task list --interface 127.0.0.1',
    '<%= config.bin %> task list --json --limit 100',
    '<%= config.bin %> task list --local --name w1',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...networkFlags,
    limit: Flags.integer({
      summary: 'Most tasks to list, newest first.',
      default: 20,
      min: 1,
      max: LIST_LIMIT_MAX,
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
      ? this.fromStore(flags['data-dir'], flags.name ?? defaultName(), flags.limit)
      : await this.fromNetwork(flags);
    this.log(render(result));
    return result;
  }

  private fromStore(dataDir: string, name: string, limit: number): TaskListResult {
    const store = PeerStore.open(dataDir, name);
    try {
      const log = TaskStore.of(store);
      return {
        source: { database: store.file },
        total: log.count(),
        tasks: log.list(0, limit).map(summarize),
      };
    } finally {
      store.close();
    }
  }

  private async fromNetwork(
    flags: Parameters<typeof networkSettings>[0] & { limit: number; timeout: number },
  ): Promise<TaskListResult> {
    const settings = networkSettings(flags, flags.name ?? `task-list-${process.pid}`);
    const peer = await startPeer(settings, {
      observer: true,
      install: (node) => installTaskPeer(node, { candidate: false, observer: true }),
    });
    const {
      node,
      installed: { tasks, election },
    } = peer;
    try {
      // Learn the coordinator first (probe answers carry its tags), then ask it.
      const deadline = Date.now() + flags.timeout;
      const progress = new Progress({ json: this.jsonEnabled() });
      progress.update('waiting for the task coordinator (a peer worker)');
      while (!election.coordinator() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      progress.done();
      const coord = election.coordinator();
      if (!coord)
        throw new TaskFailure(
          `no coordinator answered within ${flags.timeout} ms: start a worker (peer worker) on this group, or use --local`,
        );
      const answer = nextEvent(
        node,
        (e): e is PeerEventOf<'task-list'> => e.kind === 'task-list',
        Math.max(100, deadline - Date.now()),
      );
      tasks.requestList(flags.limit);
      const r = await showingWait("waiting for the coordinator's task list", answer, {
        json: this.jsonEnabled(),
      });
      if (!r)
        throw new TaskFailure(
          `the coordinator did not answer within ${flags.timeout} ms; try again or use --local`,
        );
      if (r.error) throw new TaskFailure(r.error);
      return {
        source: { coordinator: node.membership.get(coord)?.name ?? coord },
        total: r.total,
        tasks: r.items,
      };
    } finally {
      await peer.stop();
    }
  }
}

function render(r: TaskListResult): string {
  const from =
    'coordinator' in r.source
      ? `coordinator ${paintName(r.source.coordinator)}`
      : escapeForTerminal(r.source.database);
  if (r.tasks.length === 0) return `no tasks (from ${from})`;
  // Ops, workers and results come from the coordinator (or a database): escaped.
  const rows = r.tasks.map((t) =>
    [
      t.id.slice(0, 8),
      t.op,
      t.state,
      t.worker ?? '-',
      t.durationMs === null ? '-' : `${t.durationMs} ms`,
      t.text ?? '',
    ].map(escapeForTerminal),
  );
  return `${table(['ID', 'OP', 'STATE', 'WORKER', 'DURATION', 'RESULT'], rows)}\n${r.tasks.length} of ${r.total} tasks, newest first (from ${from})`;
}
