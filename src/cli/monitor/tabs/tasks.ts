/**
 * Tasks: workers and their load from their heartbeat tags (`wk` capacity, `ld` load, p2p/tasks/messages.ts),
 * and the coordinator's task log, fetched with Tasks.requestList (the same listing
 * `peer task list` shows): queue, running, done, failed, and per worker.
 */
import { TAG_CAPACITY, TAG_LOAD } from '../../../p2p/tasks/index.js';
import {
  ago,
  cell,
  stateTone,
  UNKNOWN,
  type MonitorInput,
  type Row,
  type Tab,
  type TabView,
} from '../model.js';

export const tasksTab: Tab = {
  id: 'tasks',
  title: 'Tasks',
  view(input: MonitorInput): TabView {
    if (input.tasks === null) return { kind: 'unavailable', reason: 'tasks are not available in this build' };
    const workers = input.members.filter((m) => typeof m.tags[TAG_CAPACITY] === 'number');
    const listing = input.tasks.listing;
    const items = listing?.items ?? [];
    const by = { queued: 0, running: 0, done: 0, failed: 0 };
    const perWorker = new Map<string, { running: number; done: number; failed: number }>();
    for (const t of items) {
      const k = t.state === 'assigned' ? 'running' : t.state;
      by[k]++;
      if (t.worker) {
        const w = perWorker.get(t.worker) ?? { running: 0, done: 0, failed: 0 };
        if (k !== 'queued') w[k]++;
        perWorker.set(t.worker, w);
      }
    }
    const workerRows: Row[] = workers.map((m) => {
      const w = perWorker.get(m.name);
      const load = m.tags[TAG_LOAD];
      return [
        cell(`worker ${m.name}`),
        cell(m.state, stateTone(m.state)),
        cell(`${typeof load === 'number' ? load : UNKNOWN}/${String(m.tags[TAG_CAPACITY])}`),
        cell(w ? `${w.running} running, ${w.done} done, ${w.failed} failed` : 'none listed'),
        cell(''),
        cell(''),
      ];
    });
    const taskRows: Row[] = items.map((t) => [
      cell(t.id),
      cell(t.state, t.state === 'failed' ? 'bad' : t.state === 'done' ? 'good' : 'warn'),
      cell(t.op),
      cell(t.worker ?? UNKNOWN),
      cell(t.durationMs === null ? UNKNOWN : ago(t.durationMs)),
      cell(t.text ?? ''),
    ]);
    const status = !listing
      ? cell('waiting for the coordinator’s task list…', 'dim')
      : listing.error
        ? cell(`task list: ${listing.error}`, 'warn')
        : cell(
            `queue ${by.queued}   running ${by.running}   done ${by.done}   failed ${by.failed}   (last ${items.length} of ${listing.total}, ${ago(input.nowWall - listing.atWall)} ago)`,
          );
    return {
      kind: 'content',
      summary: [status, cell(`   workers: ${workers.length}`)],
      headers: ['TASK / WORKER', 'STATE', 'OP / LOAD', 'WORKER / TASKS', 'TIME', 'RESULT'],
      rows: [...workerRows, ...taskRows],
      empty: 'no worker advertises itself and no task is listed (start workers: peer worker)',
    };
  },
};
