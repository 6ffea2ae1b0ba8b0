/**
 * Linux process groups, as a worker's jobs run in them: each job's shell is spawned as the leader
 * of a new session and group (spawn's `detached`, setsid), so one signal to `-pgid` reaches
 * everything the job started (unless it made a group of its own: setsid, a documented limit).
 *
 * A group is empty when kill(-pgid, 0) finds nobody, or only zombies: an orphan killed in a group
 * is reparented to init, which may take a second to reap it (some container inits take longer),
 * and a zombie runs nothing.
 *
 * After a crash of the worker, its ledger (storage/job-procs.ts) names the groups that were
 * running. killOrphans kills those still alive, never a group whose number was reused: the
 * leader's start time must match; when the leader is gone but members remain (it exited and left
 * background processes), the group is taken as ours only if one of its members carries the job's
 * PEER_JOB_DIR in its environment (the number of a group with members cannot be reused, but a
 * daemon's group could have the number once ours was gone entirely).
 */
import fs from 'node:fs';
import type { JobProcs, LiveGroup } from '../../storage/job-procs.js';
import { removeJobDir } from './job-dir.js';

/** The variable every job gets holding its directory: how an orphan of a crashed worker is known. */
export const JOB_DIR_VARIABLE = 'PEER_JOB_DIR';
/** How long clearOrphans waits for the groups killOrphans killed (SIGKILL) to be empty. */
export const ORPHAN_KILL_WAIT_MS = 5000;
/** Between two looks at groups that should be empty (they were signalled). */
export const GROUP_POLL_INTERVAL_MS = 25;

export interface ProcStat {
  pid: number;
  /** R, S, D, T, Z...: Z (zombie) and X (dead) run nothing. */
  state: string;
  pgrp: number;
  /** Field 22: when the process started, in clock ticks since boot. */
  startTicks: number;
}

/** The boot this machine runs in, or '' where it cannot be read. */
export function bootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
  } catch {
    return '';
  }
}

/** /proc/<pid>/stat parsed, or null when there is no such process. */
export function procStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // Field 2, the command name in parentheses, may itself hold spaces and parentheses.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const pgrp = Number(fields[2]);
  const startTicks = Number(fields[19]);
  if (!Number.isSafeInteger(pgrp) || !Number.isSafeInteger(startTicks)) return null;
  return { pid, state: fields[0] ?? '', pgrp, startTicks };
}

/** Every process whose stat can be read. */
export function allProcs(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = procStat(Number(name));
    if (s) out.push(s);
  }
  return out;
}

const running = (s: ProcStat) => s.state !== 'Z' && s.state !== 'X';

/** Whether kill(-pgid, 0) finds a process (zombies included). */
function groupHasProcess(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    // EPERM: members we may not signal (a setuid program): still there.
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Which of `pgids` are empty (no process, or zombies only). One scan of /proc at most, whatever
 * their number, and none when kill() already says every group is empty.
 */
export function emptyGroups(pgids: Iterable<number>): Set<number> {
  const empty = new Set<number>();
  const unsure: number[] = [];
  for (const g of pgids) {
    if (groupHasProcess(g)) unsure.push(g);
    else empty.add(g);
  }
  if (unsure.length === 0) return empty;
  const live = new Set(
    allProcs()
      .filter(running)
      .map((s) => s.pgrp),
  );
  for (const g of unsure) if (!live.has(g)) empty.add(g);
  return empty;
}

/** Sends `signal` to a group; false when it is gone. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Whether the ledger's group is still this job's (see the file comment), given one scan of /proc. */
export function stillOurs(g: LiveGroup, boot: string, procs: readonly ProcStat[]): boolean {
  if (g.boot !== boot) return false;
  const leader = procs.find((s) => s.pid === g.pgid);
  if (leader) return leader.startTicks === g.startTicks && leader.pgrp === g.pgid;
  const marker = `\0${JOB_DIR_VARIABLE}=${g.dir}\0`;
  return procs.some(
    (s) =>
      s.pgrp === g.pgid &&
      running(s) &&
      s.startTicks >= g.startTicks &&
      `\0${environ(s.pid)}`.includes(marker),
  );
}

function environ(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/environ`, 'utf8');
  } catch {
    return '';
  }
}

/** The ledger's rows at a worker's start, and which of their groups were killed. */
export interface Orphans {
  groups: LiveGroup[];
  killed: number[];
  damaged: number;
}

/**
 * At a worker's start, before it takes any job (a new job's row would look like an orphan):
 * SIGKILL to the groups the ledger names that are still its jobs'. Synchronous, so it can run
 * before the node starts; clearOrphans finishes the work.
 */
export function killOrphans(ledger: JobProcs, boot = bootId()): Orphans {
  const { groups, damaged } = ledger.list();
  if (groups.length === 0) return { groups, killed: [], damaged };
  const procs = allProcs();
  const killed = groups.filter((g) => stillOurs(g, boot, procs) && signalGroup(g.pgid, 'SIGKILL'));
  return { groups, killed: killed.map((g) => g.pgid), damaged };
}

/**
 * Waits (at most ORPHAN_KILL_WAIT_MS) for the killed groups to be empty, then removes the
 * directories of the rows read and forgets them. A group that would not die keeps its row and its
 * directory, which it may still use. Returns what it did.
 */
export async function clearOrphans(
  ledger: JobProcs,
  orphans: Orphans,
): Promise<{ killed: number; removed: number; damaged: number; stuck: number }> {
  const deadline = Date.now() + ORPHAN_KILL_WAIT_MS;
  let waiting = new Set(orphans.killed);
  while (waiting.size > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, GROUP_POLL_INTERVAL_MS));
    const empty = emptyGroups(waiting);
    waiting = new Set([...waiting].filter((g) => !empty.has(g)));
  }
  let removed = 0;
  for (const g of orphans.groups) {
    if (waiting.has(g.pgid)) continue;
    try {
      await removeJobDir(g.dir);
    } catch {
      continue;
    }
    if (ledger.remove(g.dir) === null) removed++;
  }
  return { killed: orphans.killed.length, removed, damaged: orphans.damaged, stuck: waiting.size };
}

/** killOrphans then clearOrphans, for a ledger nothing else writes meanwhile. */
export function reapOrphans(
  ledger: JobProcs,
  boot = bootId(),
): Promise<{ killed: number; removed: number; damaged: number; stuck: number }> {
  return clearOrphans(ledger, killOrphans(ledger, boot));
}
