/**
 * Tasks: the workers, then the coordinator's task log.
 *
 * Workers are read from their heartbeat tags: `peer run`'s advert (`js` slots, `jl` jobs held,
 * `ex` runs commands: p2p/jobs/adverts.ts, read with its bounds by advertOf) and `peer task`'s
 * (`wk` threads, `ld` load: p2p/tasks/messages.ts). A `peer worker` advertises both, so it has one
 * row. The jobs of a run go only to the peer run that sent them (unicast), so an observer sees no
 * job, only each worker's own count of those it holds: the tab shows that, and its total, and
 * says so under the table.
 *
 * The task log is fetched with Tasks.requestList (the same listing `peer task list` shows): queue,
 * running, done, failed, and per worker.
 */
import { advertOf, TAG_SLOTS, type WorkerAdvert } from '../../../p2p/jobs/index.js';
import { TAG_CAPACITY, TAG_LOAD } from '../../../p2p/tasks/index.js';
import type { MemberView } from '../../../p2p/protocol.js';
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

/** A worker's slot bar: one character per slot up to this, scaled beyond (slots go to 256). */
export const SLOT_BAR_CHARS_MAX = 10;

/**
 * The bar of `held` jobs over `slots` slots: busy slots filled. Scaled, one busy slot of many still
 * shows, and the bar is full only when every slot is (a worker runs at most its slots at once).
 */
export function slotBar(held: number, slots: number): string {
  const width = Math.min(slots, SLOT_BAR_CHARS_MAX);
  const busy = Math.min(held, slots);
  const filled = busy === slots ? width : Math.min(width - 1, Math.ceil((busy * width) / slots));
  return '█'.repeat(filled) + '░'.repeat(width - filled);
}

type TaskCounts = { running: number; done: number; failed: number };

export const tasksTab: Tab = {
  id: 'tasks',
  title: 'Tasks',
  view(input: MonitorInput): TabView {
    if (input.tasks === null) return { kind: 'unavailable', reason: 'tasks are not available in this build' };
    const workers = input.members.filter(
      (m) => typeof m.tags[TAG_CAPACITY] === 'number' || typeof m.tags[TAG_SLOTS] === 'number',
    );
    const listing = input.tasks.listing;
    const items = listing?.items ?? [];
    const by = { queued: 0, running: 0, done: 0, failed: 0 };
    const perWorker = new Map<string, TaskCounts>();
    for (const t of items) {
      const k = t.state === 'assigned' ? 'running' : t.state;
      by[k]++;
      if (t.worker) {
        const w = perWorker.get(t.worker) ?? { running: 0, done: 0, failed: 0 };
        if (k !== 'queued') w[k]++;
        perWorker.set(t.worker, w);
      }
    }
    const jobs = { held: 0, slots: 0 };
    const workerRows: Row[] = workers.map((m) => {
      const advert = advertOf(m);
      if (advert) {
        jobs.held += advert.held;
        jobs.slots += advert.slots;
      }
      return workerRow(m, perWorker.get(m.name), advert);
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
      // "A / B": what a task row shows / what a worker row shows.
      headers: ['TASK / WORKER', 'STATE', 'OP / LOAD', 'WORKER / TASKS', 'TIME / JOBS', 'RESULT / EXEC'],
      rows: [...workerRows, ...taskRows],
      empty: 'no worker advertises itself and no task is listed (start workers: peer worker)',
      // Narrow terminals: the tasks text gives first, then the names, so every column shows.
      shrink: [[3], [0]],
      footer: [
        cell(`jobs held: ${jobs.held} in ${jobs.slots} slots`),
        cell(' (workers’ counts; only peer run sees the jobs)', 'dim'),
      ],
    };
  },
};

/** A worker's row: its `peer task` threads and tasks, and its `peer run` slots, jobs and commands. */
function workerRow(m: MemberView, tasks: TaskCounts | undefined, advert: WorkerAdvert | null): Row {
  const load = m.tags[TAG_LOAD];
  const threads = m.tags[TAG_CAPACITY];
  return [
    cell(`worker ${m.name}`),
    cell(m.state, stateTone(m.state)),
    cell(typeof threads === 'number' ? `${typeof load === 'number' ? load : UNKNOWN}/${threads}` : UNKNOWN),
    cell(
      typeof threads !== 'number'
        ? UNKNOWN
        : tasks
          ? `${tasks.running} running, ${tasks.done} done, ${tasks.failed} failed`
          : 'none listed',
    ),
    cell(
      advert
        ? `${slotBar(advert.held, advert.slots)} ${advert.held}/${advert.slots}${advert.held > advert.slots ? ` +${advert.held - advert.slots} queued` : ''}`
        : UNKNOWN,
    ),
    advert
      ? cell(advert.allowExec ? 'exec allowed' : 'built-in ops only', advert.allowExec ? 'accent' : 'dim')
      : cell(UNKNOWN),
  ];
}
