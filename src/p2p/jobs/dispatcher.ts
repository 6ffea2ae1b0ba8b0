/**
 * Dispatcher: one run's job table, held by its submitter. It places jobs directly on workers by
 * credits, records each job's result once, and retries, reassigns and cancels.
 *
 * Credits. A worker advertises its slots and the jobs it holds (adverts.ts). Its credit starts at
 * its window (slots x (1 + JOB_PIPELINE_PER_SLOT)) less what it holds, and is replaced by the exact
 * room in every jb.done / jb.full it sends (`free`, less the entries we sent that it had not seen
 * yet). Each turn (ctx.soon) gives one job at a time to the largest credit (ties: fewest held by us,
 * then the smaller id), so a short run uses every worker's free slots before any queue, and sends
 * one jb.jobs per worker, pulling input only as far as the credits reach (room()).
 *
 * Attempts and fences. A job's attempt is 1 + its assignments that may have started (jb.full
 * gives the number back); its fence is max(ctx.stamp(), last fence + 1), a Lamport time, so it
 * rises over the job's attempts whatever peer issued the one before (see types.ts).
 *
 * Failure modes:
 * - A worker dies, leaves or restarts (membership; a restart comes from a new port, whereas a
 *   refuted suspicion only raises the incarnation and loses nothing): its unfinished attempts are
 *   requeued with a new attempt and fence; a job pinned to it (`--on`) fails with exit 255.
 * - A worker goes mute: its jb.jobs times out in reliable delivery, or a job with a timeout has no
 *   result long after it (JOB_RESULT_SLACK_MS): we cancel the attempt there and requeue it (that
 *   attempt's kill, if it is reported, is not the job's result).
 * - A worker says it has no run for our jobs (it restarted, or dropped the run taking us for
 *   gone): what it held of ours is placed again with a new attempt, and the run opened again.
 * - A result comes twice, from an old attempt, or from a peer the attempt did not go to: only the
 *   first result of a job from the worker its attempt went to is recorded; the rest are counted.
 * - A `--transfer` file cannot be read here: a file the run shares fails the run; a job's own file
 *   fails that job without running it. Files go before the jb.jobs that needs them (one topic:
 *   FIFO), a shared one once per worker per opening of the run (a worker that lost the run gets it
 *   again), a job's own with each attempt; placing waits while reliable delivery holds more than
 *   JOB_FILES_IN_FLIGHT_BYTES_MAX unacked.
 * - No worker can take the run (none, none with `ex` for commands, all refused) for
 *   JOB_NO_WORKER_MS: the run fails with the reason. A detached run (hosted by the keeper,
 *   keeper.ts) waits for workers instead: it outlives whoever handed it over.
 */
import type { ProtocolContext } from '../protocol.js';
import type { Membership } from '../membership.js';
import type { PeerId } from '../wire.js';
import { advertOf, windowOf } from './adverts.js';
import { inputProblem, pathFor, perJobPath } from './command.js';
import {
  JOB_BATCH_MAX,
  JOB_BATCH_PACK_BYTES,
  JOB_CANCEL_WAIT_MS,
  JOB_EXIT_WORKER_GONE,
  JOB_FEED_AHEAD_MIN,
  JOB_FILES_IN_FLIGHT_BYTES_MAX,
  JOB_FILE_BYTES_MAX,
  JOB_MISSING_FILE_PAUSE_MS,
  JOB_REOPEN_PAUSE_MS,
  JOB_NO_WORKER_MS,
  JOB_NUMBER_MAX,
  JOB_PIPELINE_PER_SLOT,
  JOB_RESULT_SLACK_MS,
} from './limits.js';
import {
  CANCEL,
  CLOSE,
  FILE,
  JOBS,
  OPEN,
  encodeJob,
  sha256Of,
  type Done,
  type Full,
  type JobAttempt,
  type JobEntry,
  type JobSend,
  type Out,
  type Refuse,
  type Ret,
} from './messages.js';
import type {
  JobInput,
  JobResult,
  JobSent,
  JobsStats,
  RunCounts,
  RunHandle,
  RunOptions,
  RunSink,
  RunSpec,
  WorkerAdvert,
} from './types.js';

/** An attempt sent to a worker. */
interface Sent {
  worker: PeerId;
  fence: number;
  at: number;
  /** No result yet. */
  live: boolean;
  /** Bytes of `--transfer` files it needed. */
  sendBytes: number;
  /** Its `--return` files that came (jb.ret), by index: the data or why it could not be read. */
  returned: Map<number, Uint8Array | string>;
}

/** A `--transfer` file on its way: where it goes in the spec, for which job (null: shared), its bytes. */
interface Outgoing {
  index: number;
  job: number | null;
  data: Uint8Array;
}

interface JobState {
  input: JobInput;
  /** Assignments that may have started: the last attempt number given out. */
  attempts: number;
  lastFence: number;
  /** Tries that ended in failure, and where. */
  failures: number;
  failedOn: Set<PeerId>;
  sent: Map<number, Sent>;
  recorded: boolean;
}

interface WorkerState {
  id: PeerId;
  name: string;
  /** Where it was when we took it up: another address is a restarted process that knows nothing. */
  address: string;
  slots: number;
  credit: number;
  /** Entries of jb.jobs sent to it over the run. */
  entries: number;
  opened: boolean;
  /** Jobs with an attempt live there. */
  held: Set<number>;
  refused: Refuse | null;
  /** Nothing is placed there before this time (JOB_MISSING_FILE_PAUSE_MS). */
  pausedUntil: number;
}

/** The jobs one turn places on a worker, and the bytes of shared files still to count on the first. */
interface Batch {
  picked: Array<{ entry: JobEntry; files: Outgoing[] }>;
  sendBytes: number;
}

/** The worker with the most credit left (ties: fewest jobs held for us, then the smaller id). */
function mostCredit(workers: WorkerState[]): WorkerState | null {
  let best: WorkerState | null = null;
  for (const w of workers) {
    if (w.credit <= 0) continue;
    if (
      !best ||
      w.credit > best.credit ||
      (w.credit === best.credit &&
        (w.held.size < best.held.size || (w.held.size === best.held.size && w.id < best.id)))
    )
      best = w;
  }
  return best;
}

export type DispatcherMembership = Pick<Membership, 'get' | 'list'>;

export class Dispatcher implements RunHandle {
  /** Jobs fed and not recorded yet. */
  private readonly jobs = new Map<number, JobState>();
  /** Jobs recorded: every number below `recordedBelow` (jobs are numbered from 1), and these. */
  private recordedBelow = 1;
  private readonly recordedAbove = new Set<number>();
  /** Jobs to place, in order (requeued ones first). */
  private queue: number[] = [];
  private readonly workers = new Map<PeerId, WorkerState>();
  private fed = 0;
  private inputEnded = false;
  private counts_ = { done: 0, failed: 0, cancelled: 0, reassigned: 0 };
  private scheduled = false;
  private roomAsked = false;
  /** Since when jobs waited with no worker able to take them; null while one can. */
  private starvedSince: number | null = null;
  private cancelling: { until: number } | null = null;
  /** Results the sink has not durably recorded yet (their returned files, or the record itself). */
  private recording = 0;
  /** The run's shared `--transfer` files, read once when the first worker is opened. */
  private shared: Outgoing[] | null = null;
  /** finished, failed or cancelled: nothing more is sent but jb.close. */
  private over = false;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly send: JobSend,
    private readonly membership: DispatcherMembership,
    readonly spec: RunSpec,
    private readonly sink: RunSink,
    private readonly opts: RunOptions,
    private readonly stats: JobsStats,
    /** Called once the run is over and its workers told to forget it. */
    private readonly onOver: () => void,
    /** Bytes reliable delivery holds unacked, over every destination. */
    private readonly queuedBytes: () => number,
    /**
     * Attempts each job may have had before this dispatcher (a keeper resuming a run another one
     * hosted): its attempts are numbered above them.
     */
    private readonly attemptsBefore = 0,
  ) {
    this.schedule();
  }

  get run(): string {
    return this.spec.run;
  }

  // ---- RunHandle ----------------------------------------------------------------------------

  room(): number {
    if (this.inputEnded || this.over || this.cancelling) return 0;
    let credits = 0;
    for (const a of this.eligible()) credits += this.workers.get(a.id)?.credit ?? windowOf(a.slots) - a.held;
    return Math.max(0, Math.max(0, credits) + JOB_FEED_AHEAD_MIN - this.queue.length);
  }

  /**
   * Adds jobs (numbered from 1, each once). Input the worker would refuse (inputProblem()) throws
   * a RangeError: the caller checks its lines first. Ignored once the run is over or cancelled.
   */
  feed(jobs: JobInput[], ended: boolean): void {
    if (this.over || this.cancelling) return;
    if (this.inputEnded) throw new Error('feed() after the input ended');
    this.roomAsked = false;
    for (const input of jobs) {
      if (this.jobs.has(input.job) || this.isRecorded(input.job))
        throw new Error(`job ${input.job} fed twice`);
      const problem = inputProblem(input.input);
      if (problem) throw new RangeError(`job ${input.job}: ${problem}`);
      if (!Number.isSafeInteger(input.job) || input.job < 1 || input.job > JOB_NUMBER_MAX)
        throw new RangeError(`job ${input.job} is not a job number`);
      this.jobs.set(input.job, {
        input,
        attempts: this.attemptsBefore,
        lastFence: 0,
        failures: 0,
        failedOn: new Set(),
        sent: new Map(),
        recorded: false,
      });
      this.queue.push(input.job);
      this.fed++;
    }
    this.inputEnded = ended;
    this.schedule();
  }

  counts(): RunCounts {
    let running = 0;
    let waiting = 0;
    const loads = [...this.workers.values()].map((w) => {
      running += Math.min(w.held.size, w.slots);
      waiting += Math.max(0, w.held.size - w.slots);
      return {
        id: w.id,
        name: w.name,
        slots: w.slots,
        running: Math.min(w.held.size, w.slots),
        held: w.held.size,
      };
    });
    return {
      fed: this.fed,
      inputEnded: this.inputEnded,
      workers: loads,
      queued: this.queue.length + waiting,
      running,
      done: this.counts_.done,
      failed: this.counts_.failed,
      cancelled: this.counts_.cancelled,
      reassigned: this.counts_.reassigned,
    };
  }

  cancel(): void {
    if (this.over || this.cancelling) return;
    this.cancelling = { until: this.ctx.now() + this.spec.graceMs + JOB_CANCEL_WAIT_MS };
    this.inputEnded = true;
    this.counts_.cancelled += this.queue.length;
    this.queue = [];
    for (const w of this.workers.values())
      if (w.held.size > 0) this.send(w.id, encodeJob(CANCEL, { run: this.run, jobs: null, why: 'cancel' }));
    this.checkCancelled();
  }

  // ---- from workers -------------------------------------------------------------------------

  /** Results; the promise (when a sink's record is one) holds the worker's ack until it resolves. */
  onDone(from: PeerId, fromName: string, m: Done, bytes: Uint8Array): Promise<unknown> | undefined {
    const w = this.workers.get(from);
    const records: Array<Promise<void>> = [];
    let offset = 0;
    for (const r of m.results) {
      const stdout = bytes.subarray(offset, offset + r.out);
      const stderr = bytes.subarray(offset + r.out, offset + r.out + r.err);
      offset += r.out + r.err;
      const job = this.jobs.get(r.job);
      if (!job && this.isRecorded(r.job)) {
        this.stats.duplicateResults++;
        continue;
      }
      const sent = job?.sent.get(r.attempt);
      if (!job || !sent || sent.worker !== from || sent.fence !== r.fence) {
        this.stats.wrongSender++;
        continue;
      }
      const given = !sent.live;
      if (sent.live) {
        sent.live = false;
        this.workers.get(sent.worker)?.held.delete(r.job);
      }
      // An attempt we gave up on and cancelled there: its kill is not the job's result (the job
      // is placed again). Had it ended by itself, its result would count: the first one wins.
      if (job.recorded || (given && r.cancelled)) {
        this.stats.duplicateResults++;
        continue;
      }
      const failed = !r.cancelled && (!r.started || r.exit !== 0 || r.signal !== 0);
      if (failed && !this.cancelling && !this.over && job.failures + 1 < this.opts.retries) {
        job.failures++;
        job.failedOn.add(from);
        this.queue.unshift(r.job);
        continue;
      }
      const result: JobResult = {
        run: this.run,
        job: r.job,
        seq: job.input.seq,
        attempt: r.attempt,
        fence: r.fence,
        started: r.started,
        exit: r.exit,
        signal: r.signal,
        timedOut: r.timedOut,
        cancelled: r.cancelled,
        startedAtWallMs: r.at,
        runtimeUs: r.us,
        stdout,
        stderr,
        truncated: r.truncated,
        error: r.why,
        worker: from,
        workerName: fromName,
        sendBytes: sent.sendBytes,
        receiveBytes: [...sent.returned.values()].reduce(
          (n, d) => n + (typeof d === 'string' ? 0 : d.length),
          0,
        ),
      };
      const p = this.record(job, result, failed, sent.returned);
      if (p) records.push(p);
    }
    if (w) this.setCredit(w, m.free, m.seen);
    this.afterChange();
    return records.length > 0 ? Promise.all(records) : undefined;
  }

  onFull(from: PeerId, m: Full): void {
    const w = this.workers.get(from);
    // Attempts sent no later than the ones a worker says it has no run for reached a run it dropped
    // (it took us for gone) or never had: whatever else it held of ours is lost (fences rise).
    let lostUpTo = m.why === 'unknown-run' && m.jobs.length === 0 ? Infinity : 0;
    let released = 0;
    for (const [job, attempt] of m.jobs) {
      const js = this.jobs.get(job);
      const sent = js?.sent.get(attempt);
      if (!js || !sent || sent.worker !== from || !sent.live) continue;
      sent.live = false;
      released++;
      w?.held.delete(job);
      if (m.why === 'stale-fence') this.stats.staleFences++;
      else this.stats.refusedJobs++;
      if (m.why === 'unknown-run') lostUpTo = Math.max(lostUpTo, sent.fence);
      // It never ran: the number goes back (the next fence is higher all the same).
      if (attempt === js.attempts) js.attempts--;
      this.queue.unshift(job);
    }
    if (w && m.why === 'unknown-run') {
      // Opened again before the next jobs, its entries counted afresh.
      w.opened = false;
      w.entries = 0;
      released += this.requeueFrom(w, true, 'worker dropped the run', lostUpTo);
      // What it held of ours took credit it will never give back (no jb.done comes for it).
      w.credit += released;
      // A detached run's worker may not know us for the coordinator yet: not at once again.
      if (this.spec.detached) w.pausedUntil = this.ctx.now() + JOB_REOPEN_PAUSE_MS;
    } else if (w) {
      // A file did not get there: the run's shared files go again with the next jobs (the
      // worker ignores the jb.open of a run it has), each job's own with its next attempt.
      if (m.why === 'missing-file') {
        w.opened = false;
        w.pausedUntil = this.ctx.now() + JOB_MISSING_FILE_PAUSE_MS;
      }
      this.setCredit(w, m.free, m.seen);
    }
    this.afterChange();
  }

  onRefuse(from: PeerId, m: Refuse): void {
    const w = this.workers.get(from);
    if (!w) return;
    w.refused = m;
    w.opened = false;
    this.requeueFrom(w, false, `refused: ${m.why}`);
    this.afterChange();
  }

  /** A `--return` file of an attempt, ahead of its result: kept with the attempt until it is recorded. */
  onRet(from: PeerId, m: Ret, bytes: Uint8Array): void {
    if (!this.jobs.has(m.job) && this.isRecorded(m.job)) {
      // A late attempt's file, after the job's result: its own result will be dropped the same way.
      this.stats.duplicateResults++;
      return;
    }
    const sent = this.jobs.get(m.job)?.sent.get(m.attempt);
    if (!sent || sent.worker !== from) {
      this.stats.wrongSender++;
      return;
    }
    if (m.index >= this.spec.returns.length) {
      this.stats.malformed++;
      return;
    }
    if (sent.live) sent.returned.set(m.index, m.error ?? bytes);
  }

  onOut(from: PeerId, m: Out, bytes: Uint8Array): void {
    const sent = this.jobs.get(m.job)?.sent.get(m.attempt);
    if (!sent || sent.worker !== from) {
      this.stats.wrongSender++;
      return;
    }
    if (sent.live) this.sink.output(m.job, m.attempt, m.stream, bytes);
  }

  // ---- time ---------------------------------------------------------------------------------

  tick(now: number): void {
    if (this.over) return;
    for (const w of [...this.workers.values()]) {
      const m = this.membership.get(w.id);
      if (!m || m.state === 'dead' || m.state === 'left' || m.address !== w.address) {
        this.workers.delete(w.id);
        this.requeueFrom(w, true, m && m.address !== w.address ? 'worker restarted' : 'worker gone');
      }
    }
    if (this.spec.timeoutMs !== null) {
      // The worker enforces the timeout; this catches a worker that went mute with the job.
      const backstop =
        (1 + JOB_PIPELINE_PER_SLOT) * (this.spec.timeoutMs + this.spec.graceMs) + JOB_RESULT_SLACK_MS;
      for (const [job, js] of this.jobs)
        for (const [attempt, s] of js.sent)
          if (s.live && now - s.at > backstop) this.abandon(job, attempt, 'no result in time');
    }
    this.afterChange();
    if (this.cancelling && now >= this.cancelling.until) this.finishCancel();
  }

  private isRecorded(job: number): boolean {
    return job < this.recordedBelow || this.recordedAbove.has(job);
  }

  // ---- placing jobs -------------------------------------------------------------------------

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.ctx.soon(() => {
      this.scheduled = false;
      this.place();
    });
  }

  /** Workers this run may use now, by their adverts. */
  private eligible(): WorkerAdvert[] {
    const only = Array.isArray(this.opts.workers) ? new Set(this.opts.workers) : null;
    const out: WorkerAdvert[] = [];
    for (const m of this.membership.list()) {
      const a = advertOf(m);
      if (!a || (this.spec.kind === 'exec' && !a.allowExec)) continue;
      if (only && !only.has(a.id)) continue;
      if (this.workers.get(a.id)?.refused) continue;
      out.push(a);
    }
    return out;
  }

  private place(): void {
    if (this.over || this.cancelling) return;
    const now = this.ctx.now();
    const adverts = this.eligible();
    const live = new Set(adverts.map((a) => a.id));
    for (const a of adverts) {
      const m = this.membership.get(a.id)!;
      if (!this.workers.has(a.id) || this.workers.get(a.id)!.address !== m.address)
        this.workers.set(a.id, {
          id: a.id,
          name: a.name,
          address: m.address,
          slots: a.slots,
          credit: windowOf(a.slots) - a.held,
          entries: 0,
          opened: false,
          held: new Set(),
          refused: null,
          pausedUntil: 0,
        });
    }
    this.failUnplaceablePins(live);
    const ready = [...this.workers.values()].filter((w) => live.has(w.id) && !w.refused);
    let running = 0;
    for (const w of this.workers.values()) running += w.held.size;
    const cap = this.opts.maxRunning ?? Infinity;
    // Bytes of files this turn puts on reliable delivery's queue on top of what it holds.
    let filing = 0;
    const filesWait = () =>
      this.spec.transfers.length > 0 && this.queuedBytes() + filing >= JOB_FILES_IN_FLIGHT_BYTES_MAX;
    if (ready.some((w) => !w.opened) && !this.readShared()) return;
    // One job at a time to the worker with the largest credit, so a short run spreads over every
    // worker's free slots before any slot's queue fills; each worker's jobs go in one jb.jobs.
    const batches = new Map<WorkerState, Batch>();
    const open = ready.filter((w) => w.pausedUntil <= now);
    while (running < cap && !filesWait()) {
      const w = mostCredit(open);
      if (!w) break;
      const job = this.pick(w, ready);
      if (job === null) {
        open.splice(open.indexOf(w), 1);
        continue;
      }
      let batch = batches.get(w);
      if (!batch) {
        // The shared files go with the first jobs a worker gets: their bytes count for the first.
        const sharedBytes = w.opened ? 0 : (this.shared ?? []).reduce((n, o) => n + o.data.length, 0);
        filing += sharedBytes;
        batch = { picked: [], sendBytes: sharedBytes };
        batches.set(w, batch);
      }
      const files = this.jobFiles(job);
      if (typeof files === 'string') {
        this.failHere(this.jobs.get(job)!, null, files, w.id, w.name);
        continue;
      }
      const bytes = files.reduce((n, o) => n + o.data.length, 0);
      filing += bytes;
      batch.picked.push({ entry: this.assign(job, w, now, batch.sendBytes + bytes), files });
      batch.sendBytes = 0;
      w.credit--;
      running++;
    }
    for (const [w, batch] of batches) if (batch.picked.length > 0) this.sendJobs(w, batch.picked);
    this.starvedSince = this.queue.length > 0 && ready.length === 0 ? (this.starvedSince ?? now) : null;
    if (this.starvedSince !== null && now - this.starvedSince >= JOB_NO_WORKER_MS && !this.spec.detached)
      this.fail(this.noWorkerWhy());
    this.askForInput();
  }

  /**
   * The next queued job for `w`: pinned to it or to nobody; one that failed on `w` only when no
   * other worker with credit is left where it has not failed (parallel's --retries on another host).
   */
  private pick(w: WorkerState, ready: WorkerState[]): number | null {
    for (let i = 0; i < this.queue.length; i++) {
      const js = this.jobs.get(this.queue[i]!)!;
      const pin = js.input.pin;
      if (pin !== null && pin !== w.id) continue;
      if (js.failedOn.has(w.id) && ready.some((o) => o !== w && o.credit > 0 && !js.failedOn.has(o.id)))
        continue;
      this.queue.splice(i, 1);
      return js.input.job;
    }
    return null;
  }

  private assign(job: number, w: WorkerState, now: number, sendBytes: number): JobEntry {
    const js = this.jobs.get(job)!;
    const attempt = ++js.attempts;
    const fence = Math.max(this.ctx.stamp(), js.lastFence + 1);
    js.lastFence = fence;
    js.sent.set(attempt, { worker: w.id, fence, at: now, live: true, sendBytes, returned: new Map() });
    w.held.add(job);
    return [job, js.input.seq, attempt, fence, js.input.input];
  }

  /**
   * The run's shared `--transfer` files (no `{}` in their path), read once; false when one cannot
   * be read: the run failed, as no job of it could run.
   */
  private readShared(): boolean {
    if (this.shared) return true;
    const shared: Outgoing[] = [];
    for (const [index, template] of this.spec.transfers.entries()) {
      if (perJobPath(template)) continue;
      const data = this.read(template);
      if (typeof data === 'string') {
        this.fail(data);
        return false;
      }
      shared.push({ index, job: null, data });
    }
    this.shared = shared;
    return true;
  }

  /** A job's own `--transfer` files (`{}` in their path), or why one cannot be sent. */
  private jobFiles(job: number): Outgoing[] | string {
    const input = this.jobs.get(job)!.input.input;
    const out: Outgoing[] = [];
    for (const [index, template] of this.spec.transfers.entries()) {
      if (!perJobPath(template)) continue;
      const p = pathFor(template, input);
      const data = 'problem' in p ? `--transfer ${template}: ${p.problem}` : this.read(p.path);
      if (typeof data === 'string') return data;
      out.push({ index, job, data });
    }
    return out;
  }

  /** A file through the CLI's reader, within JOB_FILE_BYTES_MAX, or why it cannot be sent. */
  private read(path: string): Uint8Array | string {
    let data: Uint8Array;
    try {
      if (!this.opts.files) throw new Error('no file reader was given');
      data = this.opts.files.read(path);
    } catch (err) {
      return `cannot send ${path}: ${(err as Error).message}`;
    }
    if (data.length > JOB_FILE_BYTES_MAX)
      return `cannot send ${path}: it is over ${JOB_FILE_BYTES_MAX} bytes`;
    return data;
  }

  /**
   * jb.open first when the worker has not had it (one topic: it arrives first) with the run's shared
   * files, then each entry's own files and the entries.
   */
  private sendJobs(w: WorkerState, picked: Array<{ entry: JobEntry; files: Outgoing[] }>): void {
    const sendFile = (o: Outgoing) =>
      this.send(
        w.id,
        encodeJob(FILE, { run: this.run, job: o.job, index: o.index, sha256: sha256Of(o.data) }, o.data),
      );
    if (!w.opened) {
      w.opened = true;
      const { run, kind, words, env, timeoutMs, graceMs, output, transfers, returns, detached } = this.spec;
      this.send(
        w.id,
        encodeJob(OPEN, { run, kind, words, env, timeoutMs, graceMs, output, transfers, returns, detached }),
      );
      for (const o of this.shared ?? []) sendFile(o);
    }
    for (const p of picked) for (const o of p.files) sendFile(o);
    const entries = picked.map((p) => p.entry);
    let batch: JobEntry[] = [];
    let bytes = 0;
    const flush = () => {
      if (batch.length === 0) return;
      const sent = batch;
      this.send(w.id, encodeJob(JOBS, { run: this.run, jobs: sent }), (r) => this.onJobsSent(w.id, sent, r));
      batch = [];
      bytes = 0;
    };
    for (const e of entries) {
      const size = JSON.stringify(e).length + 1;
      if (batch.length >= JOB_BATCH_MAX || (batch.length > 0 && bytes + size > JOB_BATCH_PACK_BYTES)) flush();
      batch.push(e);
      bytes += size;
    }
    flush();
    w.entries += entries.length;
  }

  /**
   * A jb.jobs that reliable delivery gave up on: those attempts may have started; place them again.
   * What went before it on the topic (jb.open, the files) may be lost too: the worker is opened
   * again before its next jobs (a worker that has the run ignores it), and the credit those
   * attempts took is given back, as a worker that never got them would never return it (one that
   * did answers jb.full for what it has no room for); its entries are taken as not seen.
   */
  private onJobsSent(worker: PeerId, entries: JobEntry[], r: JobSent): void {
    if (r.ok || this.over) return;
    const w = this.workers.get(worker);
    if (w) w.entries = Math.max(0, w.entries - entries.length);
    for (const [job, , attempt] of entries) {
      const s = this.jobs.get(job)?.sent.get(attempt);
      if (!s?.live || s.worker !== worker) continue;
      this.abandon(job, attempt, `not delivered: ${r.reason}`);
      if (w) w.credit++;
    }
    if (w) w.opened = false;
    this.afterChange();
  }

  /** Cancels an attempt on its worker (it may be running) and places the job again. */
  private abandon(job: number, attempt: number, why: string): void {
    const js = this.jobs.get(job)!;
    const s = js.sent.get(attempt)!;
    s.live = false;
    this.workers.get(s.worker)?.held.delete(job);
    this.send(s.worker, encodeJob(CANCEL, { run: this.run, jobs: [[job, attempt]], why: 'cancel' }));
    this.reassigned(js, attempt, s.worker, why);
  }

  /**
   * Every live attempt on `w` (with a fence up to `fenceMax`) placed again (`started`: they may
   * have run, so a new attempt); returns how many.
   */
  private requeueFrom(w: WorkerState, started: boolean, why: string, fenceMax = Infinity): number {
    let n = 0;
    for (const job of [...w.held]) {
      const js = this.jobs.get(job)!;
      for (const [attempt, s] of js.sent) {
        if (!s.live || s.worker !== w.id || s.fence > fenceMax) continue;
        w.held.delete(job);
        s.live = false;
        n++;
        if (!started && attempt === js.attempts) js.attempts--;
        if (started && js.input.pin === w.id) this.failPinned(js, why);
        else if (started) this.reassigned(js, attempt, w.id, why);
        else this.queue.unshift(job);
      }
    }
    return n;
  }

  private reassigned(js: JobState, attempt: number, from: PeerId, why: string): void {
    if (js.recorded) return;
    this.stats.reassigned++;
    this.counts_.reassigned++;
    this.ctx.emit({ kind: 'job-reassigned', run: this.run, job: js.input.job, attempt, from, why });
    if (this.cancelling) this.counts_.cancelled++;
    else this.queue.unshift(js.input.job);
  }

  /** Pinned jobs whose worker is not among the live ones: they fail at once, as an ssh failure. */
  private failUnplaceablePins(live: Set<PeerId>): void {
    const keep: number[] = [];
    for (const job of this.queue) {
      const js = this.jobs.get(job)!;
      if (js.input.pin !== null && !live.has(js.input.pin)) this.failPinned(js, 'worker gone');
      else keep.push(job);
    }
    this.queue = keep;
  }

  private failPinned(js: JobState, why: string): void {
    const m = this.membership.get(js.input.pin!);
    this.failHere(js, JOB_EXIT_WORKER_GONE, why, js.input.pin!, m?.name ?? '');
  }

  /** A job that fails without running (its worker is gone, a file of it cannot be sent). */
  private failHere(js: JobState, exit: number | null, why: string, worker: PeerId, workerName: string): void {
    void this.record(
      js,
      {
        run: this.run,
        job: js.input.job,
        seq: js.input.seq,
        attempt: Math.max(1, js.attempts),
        fence: js.lastFence,
        started: false,
        exit,
        signal: 0,
        timedOut: false,
        cancelled: false,
        startedAtWallMs: this.ctx.wall(),
        runtimeUs: 0,
        stdout: new Uint8Array(0),
        stderr: new Uint8Array(0),
        truncated: false,
        error: why,
        worker,
        workerName,
        sendBytes: 0,
        receiveBytes: 0,
      },
      true,
      new Map(),
    );
  }

  /**
   * The job's one result: counted, the other live attempts cancelled, handed to the sink after its
   * returned files (a file that did not come back is said in the result's error).
   */
  private record(
    js: JobState,
    r: JobResult,
    failed: boolean,
    returned: Map<number, Uint8Array | string>,
  ): Promise<void> | undefined {
    js.recorded = true;
    if (r.cancelled) this.counts_.cancelled++;
    else if (failed) this.counts_.failed++;
    else this.counts_.done++;
    const elsewhere = new Map<PeerId, JobAttempt[]>();
    for (const [attempt, s] of js.sent) {
      if (!s.live) continue;
      s.live = false;
      this.workers.get(s.worker)?.held.delete(js.input.job);
      elsewhere.set(s.worker, [...(elsewhere.get(s.worker) ?? []), [js.input.job, attempt]]);
    }
    for (const [worker, jobs] of elsewhere)
      this.send(worker, encodeJob(CANCEL, { run: this.run, jobs, why: 'done-elsewhere' }));
    // A late result of an attempt given up on is the job's result: its next attempt is not placed.
    const queued = this.queue.indexOf(js.input.job);
    if (queued >= 0) this.queue.splice(queued, 1);
    // Only the window of unrecorded jobs stays in memory; a recorded one is a number.
    this.jobs.delete(js.input.job);
    this.recordedAbove.add(js.input.job);
    while (this.recordedAbove.delete(this.recordedBelow)) this.recordedBelow++;
    const writes: Array<Promise<void>> = [];
    for (const [index, data] of returned) {
      if (typeof data === 'string') r.error ??= `--return ${this.spec.returns[index]}: ${data}`;
      else {
        const w = this.sink.returned(js.input.job, index, data);
        if (w instanceof Promise) writes.push(w);
      }
    }
    if (writes.length > 0) {
      // The run is not finished until the sink has the result (afterChange waits for it).
      this.recording++;
      return Promise.all(writes)
        .then(async () => {
          await this.sink.record(r);
        })
        .finally(() => {
          this.recording--;
          this.afterChange();
        });
    }
    const p = this.sink.record(r);
    if (!(p instanceof Promise)) return undefined;
    // Nor is it over while the sink still writes a result: its worker keeps it until acked, and a
    // run closed meanwhile would let it go (a keeper's full disk holds a write for long).
    this.recording++;
    return p.finally(() => {
      this.recording--;
      this.afterChange();
    });
  }

  private setCredit(w: WorkerState, free: number, seen: number): void {
    // Entries we sent that it had not seen when it counted `free` are taken from it already.
    w.credit = free - Math.max(0, w.entries - seen);
  }

  private afterChange(): void {
    if (this.cancelling) {
      this.checkCancelled();
      return;
    }
    if (this.over) return;
    this.schedule();
    const ended = this.counts_.done + this.counts_.failed + this.counts_.cancelled;
    if (this.inputEnded && ended === this.fed && this.recording === 0) {
      this.close();
      this.ctx.emit({ kind: 'run-finished', run: this.run, counts: this.counts() });
    }
  }

  private askForInput(): void {
    if (this.roomAsked || this.inputEnded || this.over) return;
    const room = this.room();
    if (room <= 0) return;
    this.roomAsked = true;
    this.ctx.emit({ kind: 'run-room', run: this.run, room });
  }

  private noWorkerWhy(): string {
    const workers = this.membership
      .list()
      .map(advertOf)
      .filter((a) => a !== null);
    const refused = [...this.workers.values()].filter((w) => w.refused);
    if (refused.length > 0) {
      const r = refused[0]!.refused!;
      return `every worker refused the run (${refused[0]!.name}: ${r.detail})`;
    }
    const noExec = workers.filter((a) => !a.allowExec).length;
    if (this.spec.kind === 'exec' && noExec > 0)
      return `no worker accepts commands (${noExec} worker${noExec === 1 ? '' : 's'} without --allow-exec)`;
    if (Array.isArray(this.opts.workers)) return 'none of the chosen workers is in the group';
    return 'no worker in the group: start one with peer worker';
  }

  private fail(why: string): void {
    if (this.over) return;
    for (const w of this.workers.values())
      if (w.held.size > 0) this.send(w.id, encodeJob(CANCEL, { run: this.run, jobs: null, why: 'cancel' }));
    this.close();
    this.ctx.emit({ kind: 'run-failed', run: this.run, why });
  }

  private checkCancelled(): void {
    if (this.recording > 0) return;
    for (const w of this.workers.values()) if (w.held.size > 0) return;
    this.finishCancel();
  }

  private finishCancel(): void {
    if (this.over || !this.cancelling) return;
    const unconfirmed = [...this.workers.values()].filter((w) => w.held.size > 0).map((w) => w.id);
    this.close();
    this.ctx.emit({ kind: 'run-cancelled', run: this.run, killed: this.counts_.cancelled, unconfirmed });
  }

  /** Workers told to forget the run; nothing more is placed. */
  private close(): void {
    this.over = true;
    for (const w of this.workers.values()) if (w.opened) this.send(w.id, encodeJob(CLOSE, { run: this.run }));
    this.onOver();
  }
}
