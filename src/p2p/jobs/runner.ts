/**
 * Runner: the worker's role. It takes the attempts submitters send, runs them through its
 * executor within its slots, and sends the results back, batched.
 *
 * It holds at most its window (slots x (1 + JOB_PIPELINE_PER_SLOT)) over every run: the running
 * jobs and a queue, so a slot starts its next job in the turn its last one ended. Runs are served
 * round-robin, and while several want room each may hold its fair share of the window (freeFor);
 * beyond it an attempt is answered jb.full and never run, and the run is told when it has room
 * again (grant). An attempt whose fence is not above the highest this worker saw for the job is
 * answered jb.full stale-fence (an older dispatcher's word, or a replay). Results wait for the
 * tick while the run's queue keeps the slots busy, so several go in one jb.done (flush).
 *
 * Failure modes:
 * - The submitter dies, leaves, or restarts (another address): every attempt of its runs is killed
 *   (TERM to the process group, KILL after the run's grace), the queue and results dropped. If it
 *   turns out alive (a one-way cut), it is told the run was dropped (jb.full unknown-run).
 * - A message to the submitter is not acked in time (reliable delivery's timeout): sent again
 *   while it lives; one to a peer membership does not know yet (its first heartbeat lost) waits
 *   for it, JOB_SUBMITTER_UNKNOWN_MS at most.
 * - A job outlives its timeout: killed here, its result marked timedOut with exit -1.
 * - A detached run (its submitter is the keeper, keeper.ts) is never killed for its host's death:
 *   its jobs run on, and a jb.open for it from the coordinator that keeps it now rebinds it there
 *   (what follows goes to the new host). Forgotten once its host is gone and nothing of it is left
 *   here; results that found no host are not kept (the new keeper places those jobs again).
 * - A run of commands in an open group, or on a worker without --allow-exec: jb.refuse, nothing
 *   runs. A spec out of bounds never gets here (messages.ts refuses it on decode). Jobs of a run
 *   this worker does not know (it restarted, or dropped it) are answered jb.full unknown-run.
 */
import type { ProtocolContext } from '../protocol.js';
import type { Membership } from '../membership.js';
import type { PeerId } from '../wire.js';
import { advertTags, windowOf } from './adverts.js';
import { commandFor, commandProblem, pathFor, perJobPath } from './command.js';
import {
  JOB_BATCH_MAX,
  JOB_DONE_BYTES_MAX,
  JOB_DROPPED_REMEMBERED_MS,
  JOB_FILE_BYTES_MAX,
  JOB_FENCES_REMEMBERED_MAX,
  JOB_OUTPUT_BYTES_MAX,
  JOB_OUT_CHUNK_BYTES_MAX,
  JOB_RUNS_MAX,
  JOB_SUBMITTER_UNKNOWN_MS,
  JOB_TAGS_INTERVAL_MS,
  JOB_UNKNOWN_PEER_MESSAGES_MAX,
  JOB_WHY_CHARS_MAX,
  JOB_WORKER_FILE_BYTES_MAX,
} from './limits.js';
import {
  DONE,
  FULL,
  OUT,
  REFUSE,
  RET,
  encodeJob,
  sha256Of,
  type Cancel,
  type File,
  type JobAttempt,
  type JobEntry,
  type JobSend,
  type Jobs,
  type Open,
  type RefuseWhy,
  type ResultEntry,
} from './messages.js';
import type {
  AttemptKey,
  ExecOutcome,
  JobExecutor,
  JobsStats,
  KillReason,
  RunSpec,
  StartRequest,
} from './types.js';

interface Running {
  key: AttemptKey;
  seq: number;
  fence: number;
  startedAt: number;
  /** Why we killed it, if we did. */
  killed: KillReason | null;
  /** `--line-buffer` output sent so far (at most JOB_OUTPUT_BYTES_MAX; the rest is dropped). */
  outBytes: number;
  outTruncated: boolean;
}

interface Result {
  entry: ResultEntry;
  stdout: Uint8Array;
  stderr: Uint8Array;
}

interface RunState {
  spec: RunSpec;
  submitter: PeerId;
  submitterName: string;
  /** The submitter's address, once membership knows it (its first heartbeat may be lost). */
  address: string | null;
  openedAt: number;
  /** Entries of jb.jobs received (the submitter's credit arithmetic, see DONE). */
  seen: number;
  queue: JobEntry[];
  running: Map<string, Running>;
  /** Jobs of it were refused for room: it is told when it has room again (grant()). */
  starved: boolean;
  /** `--line-buffer` output of this turn, in order; sent before the turn's results. */
  out: Array<{ key: AttemptKey; stream: 1 | 2; chunk: Uint8Array }>;
  results: Result[];
  /** The submitter is gone or closed the run: forgotten, nothing more is sent for it. */
  dead: boolean;
  /** `--transfer` files received, by fileKey(): the run's shared ones, and those of jobs not started yet. */
  files: Map<string, Uint8Array>;
}

export type RunnerMembership = Pick<Membership, 'get' | 'setTags' | 'ownTags'>;

const keyOf = (k: AttemptKey) => `${k.run}/${k.job}/${k.attempt}`;
/** A received file's place in its run: its job (or `*`, shared by the run) and its index. */
const fileKey = (job: number | null, index: number) => `${job ?? '*'}/${index}`;

export class Runner {
  private readonly runs = new Map<string, RunState>();
  /** Highest fence per run/job, oldest first (JOB_FENCES_REMEMBERED_MAX). */
  private readonly fences = new Map<string, number>();
  /**
   * Runs dropped because their submitter seemed gone, by run: if it turns out alive (a one-way cut),
   * it is told (jb.full unknown-run without jobs) so it places what it thought we held elsewhere.
   */
  private readonly dropped = new Map<string, { submitter: PeerId; address: string | null; at: number }>();
  /** Attempts of dropped runs, killed and not ended yet: they still take their slots. */
  private readonly dying = new Map<string, Running>();
  /** Where the round-robin over runs stands. */
  private turn = 0;
  private flushScheduled = false;
  /** Messages to peers membership does not know yet (see post()). */
  private waiting: Array<{ to: PeerId; payload: string | Uint8Array; keep: () => boolean; since: number }> =
    [];
  /** Bytes of every run's files held (JOB_WORKER_FILE_BYTES_MAX). */
  private fileBytes = 0;
  private lastTags = -Infinity;
  private tagsHeld = -1;
  readonly window: number;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly send: JobSend,
    private readonly membership: RunnerMembership,
    private readonly executor: JobExecutor,
    private readonly keyed: boolean,
    private readonly stats: JobsStats,
    /** The coordinator this peer follows (election.ts), who alone may take over a detached run. */
    private readonly coordinator: () => PeerId | null = () => null,
  ) {
    if (!Number.isInteger(executor.slots) || executor.slots < 1)
      throw new Error(`worker slots must be a positive integer, got ${executor.slots}`);
    this.window = windowOf(executor.slots);
    this.advertise();
  }

  /** Jobs held now: queued, running, and killed for runs dropped but not ended yet. */
  held(): number {
    let n = this.dying.size;
    for (const r of this.runs.values()) n += r.queue.length + r.running.size;
    return n;
  }

  // ---- from submitters ----------------------------------------------------------------------

  onOpen(from: PeerId, fromName: string, m: Open): void {
    const known = this.runs.get(m.run);
    if (known) {
      if (known.submitter === from) return;
      if (known.spec.detached && m.detached && from === this.coordinator())
        this.rebind(known, from, fromName);
      else this.stats.wrongSender++;
      return;
    }
    this.dropped.delete(m.run);
    const why = this.refusal(m);
    if (why) {
      this.stats.refusedJobs++;
      this.post(
        from,
        encodeJob(REFUSE, { run: m.run, why: why[0], detail: why[1].slice(0, JOB_WHY_CHARS_MAX) }),
        () => true,
      );
      return;
    }
    this.runs.set(m.run, {
      spec: { ...m },
      submitter: from,
      submitterName: fromName,
      address: this.membership.get(from)?.address ?? null,
      openedAt: this.ctx.now(),
      seen: 0,
      queue: [],
      running: new Map(),
      starved: false,
      out: [],
      results: [],
      dead: false,
      files: new Map(),
    });
  }

  /**
   * A `--transfer` file, before the jobs that need it (one topic: FIFO). Only the run's submitter
   * sends them; a file must match its digest, be one the spec names (shared when its template has
   * no `{}`, per job when it has), and fit in what a worker holds.
   */
  onFile(from: PeerId, m: File, bytes: Uint8Array): void {
    const run = this.runs.get(m.run);
    if (!run || run.dead) {
      this.stats.unknownRun++;
      return;
    }
    if (run.submitter !== from) {
      this.stats.wrongSender++;
      return;
    }
    const template = run.spec.transfers[m.index];
    if (template === undefined || perJobPath(template) !== (m.job !== null) || sha256Of(bytes) !== m.sha256) {
      this.stats.malformed++;
      return;
    }
    const key = fileKey(m.job, m.index);
    const old = run.files.get(key)?.length ?? 0;
    if (this.fileBytes - old + bytes.length > JOB_WORKER_FILE_BYTES_MAX) {
      this.ctx.refuse('jobs.fileBytes');
      return;
    }
    this.fileBytes += bytes.length - old;
    run.files.set(key, bytes);
  }

  onJobs(from: PeerId, m: Jobs): void {
    const run = this.runs.get(m.run);
    if (!run || run.dead) {
      // Not opened here (this process restarted, or the run was closed): nothing runs; the
      // submitter, if it is one, opens it again.
      this.stats.unknownRun++;
      const jobs = m.jobs.map(([job, , attempt]): JobAttempt => [job, attempt]);
      const full = encodeJob(FULL, { run: m.run, free: 0, seen: 0, jobs, why: 'unknown-run' });
      this.post(from, full, () => true);
      return;
    }
    if (run.submitter !== from) {
      this.stats.wrongSender++;
      // A new keeper whose jb.open came before we knew it for the coordinator: it opens the run
      // again (and so rebinds it) when told we have no run for it.
      if (run.spec.detached) {
        const jobs = m.jobs.map(([job, , attempt]): JobAttempt => [job, attempt]);
        this.post(
          from,
          encodeJob(FULL, { run: m.run, free: 0, seen: 0, jobs, why: 'unknown-run' }),
          () => true,
        );
      }
      return;
    }
    const full: JobAttempt[] = [];
    const stale: JobAttempt[] = [];
    const missing: JobAttempt[] = [];
    let room = this.freeFor(run, true);
    for (const e of m.jobs) {
      run.seen++;
      const [job, , attempt, fence] = e;
      const fk = `${m.run}/${job}`;
      if (fence <= (this.fences.get(fk) ?? 0)) {
        stale.push([job, attempt]);
        this.releaseFiles(run, job);
      } else if (!this.hasFiles(run, job)) {
        missing.push([job, attempt]);
        this.releaseFiles(run, job);
      } else if (room <= 0) {
        full.push([job, attempt]);
        this.releaseFiles(run, job);
      } else {
        room--;
        this.fences.delete(fk);
        this.fences.set(fk, fence);
        if (this.fences.size > JOB_FENCES_REMEMBERED_MAX)
          this.fences.delete(this.fences.keys().next().value!);
        run.queue.push(e);
      }
    }
    if (full.length > 0) run.starved = true;
    this.stats.staleFences += stale.length;
    this.stats.refusedJobs += full.length + missing.length;
    this.pump();
    for (const [jobs, why] of [
      [full, 'full'],
      [stale, 'stale-fence'],
      [missing, 'missing-file'],
    ] as const)
      if (jobs.length > 0)
        this.post(
          from,
          encodeJob(FULL, { run: m.run, free: this.freeFor(run), seen: run.seen, jobs, why }),
          () => this.serving(run),
        );
  }

  onCancel(from: PeerId, m: Cancel): void {
    const run = this.runs.get(m.run);
    if (!run || run.submitter !== from) {
      if (run) this.stats.wrongSender++;
      return;
    }
    const why: KillReason = m.why;
    const only = m.jobs && new Set(m.jobs.map(([job, attempt]) => `${m.run}/${job}/${attempt}`));
    const keep: JobEntry[] = [];
    for (const e of run.queue) {
      const key = { run: m.run, job: e[0], attempt: e[2] };
      if (only && !only.has(keyOf(key))) keep.push(e);
      else {
        this.releaseFiles(run, e[0]);
        this.addResult(run, key, e[3], notStarted(true, null));
      }
    }
    run.queue = keep;
    for (const r of run.running.values()) if (!only || only.has(keyOf(r.key))) this.kill(run, r, why);
    this.scheduleFlush();
  }

  /** The run is over for its submitter: forget it (what still runs is killed). */
  onClose(from: PeerId, run: string): void {
    const r = this.runs.get(run);
    if (!r || r.submitter !== from) return;
    this.drop(r, 'cancel');
  }

  // ---- from the executor --------------------------------------------------------------------

  /** `--line-buffer` output: kept for the turn, sent in chunks of up to JOB_OUT_CHUNK_BYTES_MAX. */
  output(key: AttemptKey, stream: 1 | 2, chunk: Uint8Array): void {
    const run = this.runs.get(key.run);
    const r = run?.running.get(keyOf(key));
    if (!run || !r || run.dead || run.spec.output !== 'line') return;
    const room = JOB_OUTPUT_BYTES_MAX - r.outBytes;
    if (chunk.length > room) r.outTruncated = true;
    if (room <= 0) return;
    const part = chunk.subarray(0, room);
    r.outBytes += part.length;
    run.out.push({ key, stream, chunk: part });
    this.scheduleFlush();
  }

  ended(key: AttemptKey, outcome: ExecOutcome): void {
    const k = keyOf(key);
    const run = this.runs.get(key.run);
    const r = run?.running.get(k);
    if (this.dying.delete(k)) {
      this.ctx.emit({ kind: 'job-ended', ...key, exit: outcome.exit, signal: outcome.signal });
    } else if (run && r) {
      run.running.delete(k);
      this.ctx.emit({ kind: 'job-ended', ...key, exit: outcome.exit, signal: outcome.signal });
      const killed = r.killed !== null && r.killed !== 'shutdown';
      // A job cancelled (Ctrl-C, done elsewhere) has no result worth its files.
      if (r.killed !== 'cancel' && r.killed !== 'done-elsewhere')
        this.sendReturned(run, key, outcome.returned);
      this.addResult(run, key, r.fence, {
        ...outcome,
        timedOut: outcome.timedOut || r.killed === 'timeout',
        cancelled: outcome.cancelled || r.killed === 'cancel' || r.killed === 'done-elsewhere',
        truncated: outcome.truncated || r.outTruncated,
        exit: killed ? -1 : outcome.exit,
      });
    } else return;
    this.pump();
    this.scheduleFlush();
  }

  // ---- time ---------------------------------------------------------------------------------

  tick(now: number): void {
    for (const run of [...this.runs.values()]) {
      const m = this.membership.get(run.submitter);
      if (m && run.address === null) run.address = m.address;
      // Another address is another process (a refuted suspicion raises the incarnation only).
      const gone = m
        ? m.state === 'dead' || m.state === 'left' || m.address !== run.address
        : run.address !== null || now - run.openedAt >= JOB_SUBMITTER_UNKNOWN_MS;
      if (run.spec.detached) {
        // Its jobs outlive the keeper; with nothing left of it here, the next keeper opens it again.
        if (gone && run.queue.length + run.running.size === 0) this.drop(run, 'submitter-gone');
      } else if (!run.dead && gone) {
        this.drop(run, 'submitter-gone');
        this.dropped.set(run.spec.run, { submitter: run.submitter, address: run.address, at: now });
        if (this.dropped.size > JOB_RUNS_MAX) this.dropped.delete(this.dropped.keys().next().value!);
      }
      const timeout = run.spec.timeoutMs;
      if (run.dead || timeout === null) continue;
      for (const r of run.running.values())
        if (r.killed === null && now - r.startedAt >= timeout) this.kill(run, r, 'timeout');
    }
    this.tellDropped(now);
    this.sendWaiting(now);
    this.flush(true);
    this.advertise();
  }

  private tellDropped(now: number): void {
    for (const [run, d] of this.dropped) {
      const m = this.membership.get(d.submitter);
      const back = m && (m.state === 'alive' || m.state === 'suspect') && m.address === d.address;
      if (back) {
        const body = { run, free: 0, seen: 0, jobs: [], why: 'unknown-run' as const };
        this.post(d.submitter, encodeJob(FULL, body), () => true);
      }
      if (back || now - d.at >= JOB_DROPPED_REMEMBERED_MS) this.dropped.delete(run);
    }
  }

  /** A new keeper took over a detached run we hold: what follows goes to it, with its credit arithmetic. */
  private rebind(run: RunState, to: PeerId, toName: string): void {
    run.submitter = to;
    run.submitterName = toName;
    run.address = this.membership.get(to)?.address ?? null;
    run.openedAt = this.ctx.now();
    run.seen = 0;
  }

  /** Kills everything (the worker stops). */
  shutdown(): void {
    for (const run of this.runs.values()) {
      run.queue = [];
      for (const r of run.running.values()) this.kill(run, r, 'shutdown');
    }
  }

  // ---- helpers ------------------------------------------------------------------------------

  private refusal(m: Open): [RefuseWhy, string] | null {
    if (this.runs.size >= JOB_RUNS_MAX)
      return ['too-many-runs', `this worker serves ${JOB_RUNS_MAX} runs at most`];
    if (m.kind === 'exec' && !this.keyed)
      return ['open-group', 'commands run only in a keyed group (peer worker --key-file)'];
    if (m.kind === 'exec' && !this.executor.allowExec)
      return ['exec-not-allowed', 'this worker does not run commands (peer worker --allow-exec)'];
    return null;
  }

  /**
   * Room for `run`: the window's free room, within the run's fair share of the window while other
   * runs want it too (those holding jobs here, or refused for room), so one submitter that keeps
   * the window full cannot starve another. `asking`: the run itself is asking for room now.
   */
  private freeFor(run: RunState, asking = false): number {
    let active = 0;
    for (const r of this.runs.values())
      if (
        !r.dead &&
        (r === run
          ? asking || r.starved || r.queue.length + r.running.size > 0
          : r.starved || r.queue.length + r.running.size > 0)
      )
        active++;
    const share = Math.ceil(this.window / Math.max(1, active));
    const mine = run.queue.length + run.running.size;
    return Math.max(0, Math.min(this.window - this.held(), share - mine));
  }

  /** Runs refused for room are told as soon as they have some (jb.full without jobs): a credit. */
  private grant(): void {
    for (const run of this.runs.values()) {
      if (run.dead || !run.starved) continue;
      const free = this.freeFor(run, true);
      if (free <= 0) continue;
      run.starved = false;
      const body = { run: run.spec.run, free, seen: run.seen, jobs: [], why: 'full' as const };
      this.post(run.submitter, encodeJob(FULL, body), () => this.serving(run));
    }
  }

  /** Starts queued jobs while slots are free, one run after another. */
  private pump(): void {
    let running = this.dying.size;
    for (const r of this.runs.values()) running += r.running.size;
    const runs = [...this.runs.values()].filter((r) => !r.dead);
    while (running < this.executor.slots) {
      let started = false;
      for (let i = 0; i < runs.length && running < this.executor.slots; i++) {
        const run = runs[(this.turn + i) % runs.length]!;
        const e = run.queue.shift();
        if (!e) continue;
        this.turn = (this.turn + i + 1) % Math.max(1, runs.length);
        this.start(run, e);
        running++;
        started = true;
        break;
      }
      if (!started) break;
    }
  }

  private start(run: RunState, [job, seq, attempt, fence, input]: JobEntry): void {
    const { spec } = run;
    const key = { run: spec.run, job, attempt };
    const command = spec.kind === 'exec' ? commandFor(spec.words, input) : spec.words.join(' ');
    const files = this.filesOf(run, job, input);
    this.releaseFiles(run, job);
    const problem = commandProblem(command) ?? ('problem' in files ? files.problem : null);
    if (problem || 'problem' in files) {
      this.addResult(run, key, fence, notStarted(false, problem));
      this.scheduleFlush();
      return;
    }
    run.running.set(keyOf(key), {
      key,
      seq,
      fence,
      startedAt: this.ctx.now(),
      killed: null,
      outBytes: 0,
      outTruncated: false,
    });
    this.ctx.emit({ kind: 'job-started', ...key, submitterName: run.submitterName });
    const env: Record<string, string> = Object.fromEntries(spec.env);
    env.PEER_JOB_ID = `${spec.run}-${job}`;
    env.PEER_JOB_SEQ = String(seq);
    env.PEER_JOB_ATTEMPT = String(attempt);
    env.PEER_FENCING_TOKEN = String(fence);
    env.PEER_RUN_ID = spec.run;
    this.executor.start({ ...key, seq, fence, spec, command, env, ...files });
  }

  /** What a job gets of its run's files: the transfers it needs (they came first) and its returns. */
  private filesOf(
    run: RunState,
    job: number,
    input: string | null,
  ): Pick<StartRequest, 'transfers' | 'returns'> | { problem: string } {
    const transfers: StartRequest['transfers'] = [];
    for (const [i, template] of run.spec.transfers.entries()) {
      const p = pathFor(template, input);
      if ('problem' in p) return p;
      const data = run.files.get(fileKey(perJobPath(template) ? job : null, i));
      if (!data) return { problem: `its file ${p.path} did not arrive` };
      transfers.push({ path: p.path, data });
    }
    const returns: string[] = [];
    for (const template of run.spec.returns) {
      const p = pathFor(template, input);
      if ('problem' in p) return p;
      returns.push(p.path);
    }
    return { transfers, returns };
  }

  /** Whether every `--transfer` file a job needs is here (they come before its jb.jobs). */
  private hasFiles(run: RunState, job: number): boolean {
    return run.spec.transfers.every((t, i) => run.files.has(fileKey(perJobPath(t) ? job : null, i)));
  }

  /** Forgets a job's own files (it started, or will not run here). */
  private releaseFiles(run: RunState, job: number): void {
    for (let i = 0; i < run.spec.transfers.length; i++) {
      const key = fileKey(job, i);
      this.fileBytes -= run.files.get(key)?.length ?? 0;
      run.files.delete(key);
    }
  }

  /** An attempt's `--return` files, each in its own jb.ret ahead of its result (one topic: FIFO). */
  private sendReturned(run: RunState, key: AttemptKey, returned: ExecOutcome['returned']): void {
    for (const r of returned) {
      if (r.index < 0 || r.index >= run.spec.returns.length) continue;
      const tooBig = 'data' in r && r.data.length > JOB_FILE_BYTES_MAX;
      const error = 'error' in r ? r.error : tooBig ? `it is over ${JOB_FILE_BYTES_MAX} bytes` : null;
      const body = { ...key, index: r.index, error: error?.slice(0, JOB_WHY_CHARS_MAX) ?? null };
      const bytes = error === null && 'data' in r ? r.data : new Uint8Array(0);
      this.post(run.submitter, encodeJob(RET, body, bytes), () => this.serving(run));
    }
  }

  private kill(run: RunState, r: Running, why: KillReason): void {
    if (r.killed !== null) return;
    r.killed = why;
    this.stats.killed++;
    this.ctx.emit({ kind: 'job-killed', ...r.key, why });
    this.executor.kill(r.key, why, run.spec.graceMs);
  }

  /** Stops serving a run: its queue and results dropped, its jobs killed, forgotten once they end. */
  private drop(run: RunState, why: KillReason): void {
    run.dead = true;
    run.queue = [];
    run.out = [];
    run.results = [];
    for (const data of run.files.values()) this.fileBytes -= data.length;
    run.files.clear();
    for (const [k, r] of run.running) {
      this.kill(run, r, why);
      this.dying.set(k, r);
    }
    run.running.clear();
    this.runs.delete(run.spec.run);
  }

  private addResult(run: RunState, key: AttemptKey, fence: number, o: Omit<ExecOutcome, 'returned'>): void {
    const stdout = o.stdout.subarray(0, JOB_OUTPUT_BYTES_MAX);
    const stderr = o.stderr.subarray(0, JOB_OUTPUT_BYTES_MAX);
    const truncated = o.truncated || stdout.length < o.stdout.length || stderr.length < o.stderr.length;
    run.results.push({
      entry: {
        job: key.job,
        attempt: key.attempt,
        fence,
        exit: o.exit === null ? null : Math.max(-1, Math.min(255, o.exit)),
        signal: Math.max(0, Math.min(64, o.signal)),
        timedOut: o.timedOut,
        cancelled: o.cancelled,
        started: o.started,
        at: Math.max(0, Math.round(o.startedAtWallMs)),
        us: Math.max(0, Math.round(o.runtimeUs)),
        out: run.spec.output === 'group' ? stdout.length : 0,
        err: run.spec.output === 'group' ? stderr.length : 0,
        truncated,
        why: o.error === null ? null : o.error.slice(0, JOB_WHY_CHARS_MAX),
      },
      stdout: run.spec.output === 'group' ? stdout : new Uint8Array(0),
      stderr: run.spec.output === 'group' ? stderr : new Uint8Array(0),
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    this.ctx.soon(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Each run's results of this turn, in jb.done messages of at most JOB_BATCH_MAX and JOB_DONE_BYTES_MAX. */
  /**
   * Sends each run's output and results. Results wait for a tick (`all`) while the run's queue
   * here still holds more than a slot's worth of jobs: its slots stay busy meanwhile, and the
   * results of several jobs then go in one jb.done, refilled by one jb.jobs (fewer datagrams
   * per job). They go at once when the room they free could starve a slot, when the run has
   * nothing queued here, or when a batch is full.
   */
  private flush(all = false): void {
    for (const run of this.runs.values()) {
      if (!run.dead) this.sendOutput(run);
      if (run.dead || run.results.length === 0) continue;
      const free = this.freeFor(run);
      const due =
        all || free >= this.executor.slots || run.queue.length === 0 || run.results.length >= JOB_BATCH_MAX;
      if (!due) continue;
      const results = run.results;
      run.results = [];
      let batch: Result[] = [];
      let bytes = 0;
      const send = () => {
        if (batch.length > 0) this.sendDone(run, batch, free);
        batch = [];
        bytes = 0;
      };
      for (const r of results) {
        const size = r.stdout.length + r.stderr.length;
        if (batch.length >= JOB_BATCH_MAX || (batch.length > 0 && bytes + size > JOB_DONE_BYTES_MAX)) send();
        batch.push(r);
        bytes += size;
      }
      send();
    }
    this.grant();
    this.advertise();
  }

  /** The turn's output of a run, consecutive pieces of one stream of one attempt joined. */
  private sendOutput(run: RunState): void {
    let i = 0;
    while (i < run.out.length) {
      const { key, stream } = run.out[i]!;
      const parts: Uint8Array[] = [];
      let bytes = 0;
      for (; i < run.out.length; i++) {
        const o = run.out[i]!;
        if (
          keyOf(o.key) !== keyOf(key) ||
          o.stream !== stream ||
          bytes + o.chunk.length > JOB_OUT_CHUNK_BYTES_MAX
        )
          break;
        parts.push(o.chunk);
        bytes += o.chunk.length;
      }
      if (parts.length === 0) {
        // One piece larger than a chunk: cut it.
        const big = run.out[i++]!.chunk;
        for (let at = 0; at < big.length; at += JOB_OUT_CHUNK_BYTES_MAX)
          this.postOut(run, key, stream, big.subarray(at, at + JOB_OUT_CHUNK_BYTES_MAX));
      } else this.postOut(run, key, stream, Buffer.concat(parts));
    }
    run.out = [];
  }

  private postOut(run: RunState, key: AttemptKey, stream: 1 | 2, chunk: Uint8Array): void {
    const out = encodeJob(OUT, { run: key.run, job: key.job, attempt: key.attempt, stream }, chunk);
    this.post(run.submitter, out, () => this.serving(run));
  }

  private sendDone(run: RunState, batch: Result[], free: number): void {
    const body = { run: run.spec.run, free, seen: run.seen, results: batch.map((r) => r.entry) };
    const parts = batch.flatMap((r) => [r.stdout, r.stderr]);
    const bytes = parts.some((p) => p.length > 0) ? Buffer.concat(parts) : undefined;
    this.post(run.submitter, encodeJob(DONE, body, bytes), () => this.serving(run));
  }

  /** Whether we still serve `run` (its submitter lives and has not closed it). */
  private serving(run: RunState): boolean {
    return !run.dead && this.runs.get(run.spec.run) === run;
  }

  /**
   * Sends to a submitter and keeps the message until acked while `keep()` holds: sent again when
   * reliable delivery gives up on a live peer (the submitter's record defers the ack), and held
   * for a peer membership does not know yet (its first heartbeat lost) until a tick that does,
   * in order, for at most JOB_SUBMITTER_UNKNOWN_MS.
   */
  private post(to: PeerId, payload: string | Uint8Array, keep: () => boolean): void {
    if (this.waiting.some((w) => w.to === to)) {
      this.hold(to, payload, keep);
      return;
    }
    this.send(to, payload, (r) => {
      if (r.ok || !keep()) return;
      const m = this.membership.get(to);
      if (!m) this.hold(to, payload, keep);
      // 'gone' for a peer live now: it was not known yet when this was sent.
      else if (
        r.reason === 'timeout' ||
        (r.reason === 'gone' && (m.state === 'alive' || m.state === 'suspect'))
      )
        this.post(to, payload, keep);
    });
  }

  private hold(to: PeerId, payload: string | Uint8Array, keep: () => boolean): void {
    this.waiting.push({ to, payload, keep, since: this.ctx.now() });
    if (this.waiting.length > JOB_UNKNOWN_PEER_MESSAGES_MAX) this.waiting.shift();
  }

  /** Messages held for peers membership did not know: sent once it does, dropped when too old. */
  private sendWaiting(now: number): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) {
      if (!w.keep() || now - w.since >= JOB_SUBMITTER_UNKNOWN_MS) continue;
      if (this.membership.get(w.to)) this.post(w.to, w.payload, w.keep);
      else this.waiting.push(w);
    }
  }

  /** Our advert in membership tags: at once when it appears, then at most every JOB_TAGS_INTERVAL_MS. */
  /** Nothing held, nothing to send, and the tags say so: its ticks have nothing to do. */
  idle(): boolean {
    return this.runs.size === 0 && this.dying.size === 0 && this.waiting.length === 0 && this.tagsHeld === 0;
  }

  private advertise(): void {
    const held = this.held();
    const now = this.ctx.now();
    if (held === this.tagsHeld || (this.tagsHeld >= 0 && now - this.lastTags < JOB_TAGS_INTERVAL_MS)) return;
    this.lastTags = now;
    this.tagsHeld = held;
    const exec = this.keyed && this.executor.allowExec;
    this.membership.setTags(advertTags(this.membership.ownTags, this.executor.slots, held, exec));
  }
}

/** The outcome of an attempt that never started (dropped from the queue, or could not start). */
function notStarted(cancelled: boolean, error: string | null): Omit<ExecOutcome, 'returned'> {
  return {
    started: false,
    exit: null,
    signal: 0,
    timedOut: false,
    cancelled,
    startedAtWallMs: 0,
    runtimeUs: 0,
    stdout: new Uint8Array(0),
    stderr: new Uint8Array(0),
    truncated: false,
    error,
  };
}
