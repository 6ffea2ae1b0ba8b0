/**
 * The process executor of `peer worker --allow-exec`: runs each attempt of a job as
 * `<shell> -c <command>` in a fresh directory, as the leader of its own process group, and
 * reports its output as it comes and its outcome once it ended.
 *
 * An attempt ends only when its shell exited AND its process group is empty: what the command left
 * running in the background gets SIGTERM, then SIGKILL after the run's grace, so a job never
 * outlives itself (a command that makes a group of its own, with setsid, escapes: a documented
 * limit). kill() does the same to a running attempt. Each group is written to the ledger
 * (storage/job-procs.ts) while it runs, so a worker killed -9 kills what it left at its next start
 * (process-group.ts, reapOrphans).
 *
 * The environment of a job is the worker's without any PEER_* variable (the key file's path,
 * the worker's own settings), plus what the run gives (`--env`, PEER_JOB_ID...) and PEER_JOB_DIR.
 * Output is kept whole up to outputBytesMax per stream (the head; the outcome says `truncated`), and
 * what is kept is also reported as it comes, for `--line-buffer`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import type {
  AttemptKey,
  ExecOutcome,
  ExecReports,
  JobExecutor,
  KillReason,
  StartRequest,
} from '../../p2p/jobs/types.js';
import { failureReason } from '../../p2p/write-failure.js';
import type { JobProcs } from '../../storage/job-procs.js';
import { makeJobDir, readReturns, removeJobDir, writeTransfers } from './job-dir.js';
import {
  GROUP_POLL_INTERVAL_MS,
  JOB_DIR_VARIABLE,
  bootId,
  emptyGroups,
  procStat,
  signalGroup,
} from './process-group.js';

/**
 * How long output pipes may stay open once the group is empty (a process that escaped the group
 * still holds them) before they are closed on it and the attempt ends without the rest.
 */
export const JOB_STDIO_DRAIN_MS = 500;
/** Variables of the worker's own environment never passed to a job (PEER_KEY_FILE among them). */
const WORKER_VARIABLE_PREFIX = 'PEER_';

export interface ProcessExecutorOptions {
  slots: number;
  /** Whether shell commands run at all (`--allow-exec`); without it every start is refused. */
  allowExec: boolean;
  /** Where each attempt's directory is made. */
  jobDir: string;
  shell: string;
  /** Output kept per attempt and stream. */
  outputBytesMax: number;
  /** Where running groups are recorded for reapOrphans; none: a crash leaves them running. */
  ledger?: JobProcs | null;
  /** Where a problem of the worker itself goes (a directory it could not remove); default stderr. */
  warn?: (line: string) => void;
}

/** The head of one output stream, up to a bound. */
class Capture {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  truncated = false;

  constructor(private readonly max: number) {}

  /** Keeps what fits; returns it (empty once full). */
  add(chunk: Buffer): Buffer {
    const kept = chunk.length <= this.max - this.bytes ? chunk : chunk.subarray(0, this.max - this.bytes);
    if (kept.length < chunk.length) this.truncated = true;
    if (kept.length > 0) {
      this.chunks.push(kept);
      this.bytes += kept.length;
    }
    return kept;
  }

  data(): Uint8Array {
    return Buffer.concat(this.chunks, this.bytes);
  }
}

interface Live {
  key: AttemptKey;
  req: StartRequest;
  dir: string | null;
  child: ChildProcess | null;
  /** The group id (the shell's pid) once spawned. */
  pgid: number | null;
  /** Whether the ledger holds its group. */
  recorded: boolean;
  out: Capture;
  err: Capture;
  startedAtWallMs: number;
  spawnedAt: bigint;
  runtimeUs: number;
  exited: { code: number | null; signal: NodeJS.Signals | null } | null;
  stdioClosed: boolean;
  groupEmpty: boolean;
  /** kill() was called: a start still preparing never spawns. */
  killed: boolean;
  timedOut: boolean;
  cancelled: boolean;
  termSent: boolean;
  killAt: number;
  killTimer: NodeJS.Timeout | null;
  drainTimer: NodeJS.Timeout | null;
  error: string | null;
  finishing: boolean;
}

const idOf = (k: AttemptKey) => `${k.run}/${k.job}/${k.attempt}`;

export class ProcessExecutor implements JobExecutor {
  readonly slots: number;
  readonly allowExec: boolean;
  private reports: ExecReports | null = null;
  private readonly live = new Map<string, Live>();
  /** Exited attempts whose group is not empty yet, looked at every GROUP_POLL_INTERVAL_MS. */
  private readonly emptying = new Set<Live>();
  private poller: NodeJS.Timeout | null = null;
  /** Directories being removed (close() waits for them). */
  private readonly cleanups = new Set<Promise<void>>();
  private readonly idleWaiters: Array<() => void> = [];
  private closing = false;
  private readonly boot = bootId();
  private readonly warn: (line: string) => void;

  constructor(private readonly opts: ProcessExecutorOptions) {
    if (!Number.isInteger(opts.slots) || opts.slots < 1)
      throw new RangeError('slots must be a positive integer');
    this.slots = opts.slots;
    this.allowExec = opts.allowExec;
    this.warn = opts.warn ?? ((line) => process.stderr.write(`peer: ${line}\n`));
  }

  bind(reports: ExecReports): void {
    this.reports = reports;
  }

  start(req: StartRequest): void {
    const key: AttemptKey = { run: req.run, job: req.job, attempt: req.attempt };
    const a: Live = {
      key,
      req,
      dir: null,
      child: null,
      pgid: null,
      recorded: false,
      out: new Capture(this.opts.outputBytesMax),
      err: new Capture(this.opts.outputBytesMax),
      startedAtWallMs: Date.now(),
      spawnedAt: 0n,
      runtimeUs: 0,
      exited: null,
      stdioClosed: false,
      groupEmpty: false,
      killed: false,
      timedOut: false,
      cancelled: false,
      termSent: false,
      killAt: Infinity,
      killTimer: null,
      drainTimer: null,
      error: null,
      finishing: false,
    };
    a.error = this.refusal(req);
    // A refusal ends after start() returned, as every other attempt does.
    if (a.error !== null) void Promise.resolve().then(() => this.finish(a));
    else {
      this.live.set(idOf(key), a);
      void this.launch(a);
    }
  }

  kill(key: AttemptKey, why: KillReason, graceMs: number): void {
    const a = this.live.get(idOf(key));
    if (!a || a.finishing) return;
    a.killed = true;
    // The first reason is the outcome's; a shell that exited on its own was not killed.
    if (!a.exited && !a.timedOut && !a.cancelled) {
      if (why === 'timeout') a.timedOut = true;
      else a.cancelled = true;
    }
    if (a.pgid !== null && !a.groupEmpty) this.terminate(a, graceMs);
  }

  alive(): AttemptKey[] {
    return [...this.live.values()].map((a) => a.key);
  }

  /** Kills every attempt (SIGTERM, SIGKILL after its grace), waits for them to end and their directories to go. */
  async close(): Promise<void> {
    this.closing = true;
    for (const a of this.live.values()) this.kill(a.key, 'shutdown', a.req.spec.graceMs);
    if (this.live.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await Promise.all([...this.cleanups]);
  }

  private refusal(req: StartRequest): string | null {
    if (this.closing) return 'the worker is stopping';
    if (!this.allowExec) return 'this worker does not run commands (it was started without --allow-exec)';
    if (req.spec.kind !== 'exec') return `a '${req.spec.kind}' job is not a command`;
    if (this.live.has(idOf(req))) return 'this attempt is running already';
    if (this.live.size >= this.slots) return `all ${this.slots} slots are busy`;
    return null;
  }

  private async launch(a: Live): Promise<void> {
    try {
      a.dir = await makeJobDir(this.opts.jobDir);
    } catch (err) {
      a.error = `cannot make a job directory in ${this.opts.jobDir} (${codeOf(err)})`;
      return this.finish(a);
    }
    try {
      await writeTransfers(a.dir, a.req.transfers);
    } catch (err) {
      a.error = (err as Error).message;
      return this.finish(a);
    }
    if (a.killed) return this.finish(a);
    this.spawn(a, a.dir);
  }

  private spawn(a: Live, dir: string): void {
    let child: ChildProcess;
    a.startedAtWallMs = Date.now();
    a.spawnedAt = process.hrtime.bigint();
    try {
      child = spawn(this.opts.shell, ['-c', a.req.command], {
        cwd: dir,
        env: this.envOf(a.req, dir),
        // setsid: a new session and process group, led by the shell.
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      a.error = `cannot run ${this.opts.shell} (${codeOf(err)})`;
      void this.finish(a);
      return;
    }
    a.child = child;
    const pgid = child.pid;
    if (pgid === undefined) {
      // The shell could not be started (ENOENT, EACCES): 'error' says why, and nothing else follows.
      child.once('error', (err) => {
        a.error = `cannot run ${this.opts.shell} (${codeOf(err)})`;
        void this.finish(a);
      });
      return;
    }
    a.pgid = pgid;
    child.on('error', () => undefined);
    child.stdout!.on('data', (c: Buffer) => this.take(a, 1, c));
    child.stderr!.on('data', (c: Buffer) => this.take(a, 2, c));
    child.on('exit', (code, signal) => {
      a.runtimeUs = Number((process.hrtime.bigint() - a.spawnedAt) / 1000n);
      a.exited = { code, signal };
      this.afterExit(a);
    });
    child.on('close', () => {
      a.stdioClosed = true;
      this.maybeFinish(a);
    });
    this.record(a, pgid, dir);
  }

  /**
   * Writes the group to the ledger in the same turn as the spawn (its shell is at worst a zombie
   * not yet reaped, so /proc still has its start time). A group that cannot be recorded is killed:
   * a crash would leave it running.
   */
  private record(a: Live, pgid: number, dir: string): void {
    const ledger = this.opts.ledger;
    if (!ledger) return;
    const stat = procStat(pgid);
    const failed = stat ? ledger.add({ pgid, startTicks: stat.startTicks, boot: this.boot, dir }) : null;
    if (failed) {
      a.error = `cannot record the job's processes in ${ledger.file} (${failureReason(failed.kind, failed.code)})`;
      a.killed = true;
      this.terminate(a, 0);
      return;
    }
    a.recorded = stat !== null;
  }

  private envOf(req: StartRequest, dir: string): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(process.env))
      if (value !== undefined && !name.startsWith(WORKER_VARIABLE_PREFIX)) env[name] = value;
    return { ...env, ...req.env, [JOB_DIR_VARIABLE]: dir };
  }

  private take(a: Live, stream: 1 | 2, chunk: Buffer): void {
    const kept = (stream === 1 ? a.out : a.err).add(chunk);
    if (kept.length === 0) return;
    try {
      this.reports?.output(a.key, stream, kept);
    } catch (err) {
      // Outside the node's guard (a pipe's event): a bug there must not take the worker down.
      this.warn(`could not report output of job ${a.key.job}: ${(err as Error).message}`);
    }
  }

  /** SIGTERM to the group now (once), SIGKILL after graceMs unless it is empty by then. */
  private terminate(a: Live, graceMs: number): void {
    if (a.pgid === null || a.groupEmpty) return;
    if (!a.termSent) {
      a.termSent = true;
      signalGroup(a.pgid, 'SIGTERM');
    }
    const at = Date.now() + graceMs;
    if (at >= a.killAt) return;
    a.killAt = at;
    if (a.killTimer) clearTimeout(a.killTimer);
    a.killTimer = setTimeout(() => {
      a.killTimer = null;
      if (a.pgid !== null && !a.groupEmpty) signalGroup(a.pgid, 'SIGKILL');
    }, graceMs);
  }

  private afterExit(a: Live): void {
    const pgid = a.pgid!;
    if (emptyGroups([pgid]).has(pgid)) {
      a.groupEmpty = true;
      return this.maybeFinish(a);
    }
    // The shell left processes behind: they go with it.
    this.terminate(a, a.req.spec.graceMs);
    this.emptying.add(a);
    this.poller ??= setInterval(() => this.poll(), GROUP_POLL_INTERVAL_MS);
  }

  private poll(): void {
    const empty = emptyGroups([...this.emptying].map((a) => a.pgid!));
    for (const a of this.emptying) {
      if (!empty.has(a.pgid!)) continue;
      this.emptying.delete(a);
      a.groupEmpty = true;
      this.maybeFinish(a);
    }
    if (this.emptying.size === 0 && this.poller) {
      clearInterval(this.poller);
      this.poller = null;
    }
  }

  private maybeFinish(a: Live): void {
    if (!a.exited || !a.groupEmpty || a.finishing) return;
    if (a.stdioClosed) {
      void this.finish(a);
      return;
    }
    a.drainTimer ??= setTimeout(() => {
      a.child?.stdout?.destroy();
      a.child?.stderr?.destroy();
      a.stdioClosed = true;
      this.maybeFinish(a);
    }, JOB_STDIO_DRAIN_MS);
  }

  private async finish(a: Live): Promise<void> {
    if (a.finishing) return;
    a.finishing = true;
    if (a.killTimer) clearTimeout(a.killTimer);
    if (a.drainTimer) clearTimeout(a.drainTimer);
    const started = a.pgid !== null;
    const returned =
      started && a.dir && a.req.returns.length > 0 ? await readReturns(a.dir, a.req.returns) : [];
    const outcome: ExecOutcome = {
      started,
      exit: a.exited?.code ?? null,
      signal: a.exited?.signal ? (os.constants.signals[a.exited.signal] ?? 0) : 0,
      timedOut: a.timedOut,
      cancelled: a.cancelled,
      startedAtWallMs: a.startedAtWallMs,
      runtimeUs: a.runtimeUs,
      stdout: a.out.data(),
      stderr: a.err.data(),
      truncated: a.out.truncated || a.err.truncated,
      returned,
      error: a.error,
    };
    if (a.dir) this.cleanUp(a.dir, a.recorded);
    if (this.live.get(idOf(a.key)) === a) this.live.delete(idOf(a.key));
    try {
      this.reports?.ended(a.key, outcome);
    } catch (err) {
      this.warn(`could not report the end of job ${a.key.job}: ${(err as Error).message}`);
    }
    if (this.live.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Removes an ended attempt's directory, then its ledger row (kept if the directory stays). */
  private cleanUp(dir: string, recorded: boolean): void {
    const p = removeJobDir(dir).then(
      () => {
        if (recorded) this.opts.ledger?.remove(dir);
      },
      (err: unknown) => this.warn(`could not remove the job directory ${dir} (${codeOf(err)})`),
    );
    this.cleanups.add(p);
    void p.finally(() => this.cleanups.delete(p));
  }
}

function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}
