/**
 * Tasks: the workers, then the detached runs the coordinator keeps (`peer task submit` makes one,
 * `peer run --detach` too).
 *
 * Workers are read from their heartbeat tags (`js` slots, `jl` jobs held, `ex` runs commands:
 * p2p/jobs/adverts.ts, read with its bounds by advertOf). The jobs of a run go only to the peer
 * that hosts it (unicast), so an observer sees no job, only each worker's own count of those it
 * holds: the tab shows that, and its total, and says so under the table.
 *
 * The runs are those the keeper announced while the monitor listened (feeds.ts), newest first,
 * each with its jobs done and failed.
 */
import { advertOf, TAG_SLOTS, type WorkerAdvert } from '../../../p2p/jobs/index.js';
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

export const tasksTab: Tab = {
  id: 'tasks',
  title: 'Tasks',
  view(input: MonitorInput): TabView {
    if (input.tasks === null) return { kind: 'unavailable', reason: 'tasks are not available in this build' };
    const workers = input.members
      .filter((m) => typeof m.tags[TAG_SLOTS] === 'number')
      .map((m) => ({ m, advert: advertOf(m) }));
    const runs = input.tasks.runs;
    const by = { open: 0, done: 0, cancelled: 0 };
    for (const r of runs) by[r.state]++;
    const jobs = { held: 0, slots: 0 };
    const workerRows: Row[] = workers.map(({ m, advert }) => {
      if (advert) {
        jobs.held += advert.held;
        jobs.slots += advert.slots;
      }
      return workerRow(m, advert);
    });
    const runRows: Row[] = runs.map((r) => [
      cell(r.run),
      cell(
        r.state,
        r.state === 'cancelled' ? 'warn' : r.state === 'done' ? (r.failed > 0 ? 'bad' : 'good') : 'warn',
      ),
      cell(r.kind === 'op' ? r.words.join(' ') : `command: ${r.words.join(' ')}`),
      cell(`${r.done} done, ${r.failed} failed of ${r.jobs}`, r.failed > 0 ? 'bad' : undefined),
      cell(r.submitterName),
      cell(ago(Math.max(0, input.nowWall - r.createdAtWallMs))),
    ]);
    return {
      kind: 'content',
      summary: [
        cell(
          `runs: open ${by.open}   done ${by.done}   cancelled ${by.cancelled}   (announced while the monitor runs)`,
        ),
        cell(`   workers: ${workers.length}`),
      ],
      // "A / B": what a run row shows / what a worker row shows.
      headers: ['RUN / WORKER', 'STATE', 'TASK / SLOTS', 'JOBS', 'BY / EXEC', 'AGE'],
      rows: [...workerRows, ...runRows],
      empty: 'no worker advertises itself and no run was announced (start workers: peer worker)',
      // Narrow terminals: the task text gives first, then the names, so every column shows.
      shrink: [[2], [0]],
      footer: [
        cell(`jobs held: ${jobs.held} in ${jobs.slots} slots`),
        cell(' (workers’ counts; only a run’s host sees its jobs)', 'dim'),
      ],
    };
  },
};

/**
 * Busy slots over slots, and the jobs queued beyond them: a worker holds a queue beyond its slots
 * and runs one job a slot, so 5 held on 2 slots reads "2/2 +3 queued", never "5/2".
 */
function slotsText(held: number, slots: number): string {
  const busy = Math.min(held, slots);
  return `${busy}/${slots}${held > slots ? ` +${held - slots} queued` : ''}`;
}

/** A worker's row: its slots, the jobs it holds, whether it runs commands. */
function workerRow(m: MemberView, advert: WorkerAdvert | null): Row {
  return [
    cell(`worker ${m.name}`),
    cell(m.state, stateTone(m.state)),
    cell(advert ? `${slotBar(advert.held, advert.slots)} ${slotsText(advert.held, advert.slots)}` : UNKNOWN),
    cell(''),
    advert
      ? cell(advert.allowExec ? 'exec allowed' : 'built-in ops only', advert.allowExec ? 'accent' : 'dim')
      : cell(UNKNOWN),
    cell(''),
  ];
}
