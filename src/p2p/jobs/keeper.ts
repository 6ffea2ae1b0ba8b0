/**
 * Keeper: detached runs (`peer run --detach`, `peer task`), kept by the elected coordinator past
 * their submitter. The client side (KeeperApi) is keeper-client.ts.
 *
 * The coordinator (election.ts) keeps. A client hands it a run (jd.hand: spec, options, every
 * job); it stores the run (RunStore) and answers jd.ok only once the write is durable, or jd.no
 * with the reason (a full disk). It announces the run to every member (jd.run, reliable publish),
 * so each full peer's store follows, then hosts a Dispatcher for it, whose sink records each job's
 * result once in the store (the worker's ack waits for the write: a result that cannot be stored
 * is written again every KEEPER_WRITE_RETRY_MS until it is) and announces it (jd.fin). When the
 * run ends it is marked done (jd.state). Clients page results (jd.get/jd.page), cancel (jd.cancel)
 * and list runs (jd.list); a run read to its end once it is over, or cancelled, is collected, and
 * forgotten RUN_KEPT_MS later (and the oldest collected ones beyond RUNS_KEPT_MAX).
 *
 * Takeover. A peer that becomes coordinator waits KEEPER_TAKEOVER_DELAY_MS (it hears every worker
 * meanwhile: their adverts, and their Lamport times, which lift its stamps above any fence the old
 * keeper gave out) and then resumes the open runs of its own store, their jobs without a result
 * numbered from attempt 2. Workers keep running a detached run whose host died and rebind it to
 * the new keeper at its jb.open; a job the old keeper had started may run again (at least once):
 * its result is recorded once, as the first result for a job wins in every store.
 *
 * Failure modes:
 * - Announcements (jd.run, jd.fin, jd.state) from anyone but the coordinator this peer follows are
 *   dropped and counted (stats.wrongSender): a forged one would write any store.
 * - A request reaching a peer that does not keep (it just lost the role) is ignored: the client
 *   asks the coordinator it follows again (keeper-client.ts).
 * - A store write that fails on a follower only costs a takeover work: a run it missed is not
 *   resumed there, a result it missed is run again.
 * - A keeper that stops being coordinator forgets the runs it hosted without telling their
 *   workers: the new keeper takes them over.
 * - A cancel reaches every worker, not only those the hosting dispatcher placed jobs on: workers
 *   may still run the old keeper's attempts, or nobody hosts the run yet (the takeover delay).
 */
import type { ProtocolContext } from '../protocol.js';
import type { PeerId } from '../wire.js';
import { failureReason, type WriteFailureKind } from '../write-failure.js';
import type { Dispatcher } from './dispatcher.js';
import {
  KEEPER_PRUNE_INTERVAL_MS,
  KEEPER_TAKEOVER_DELAY_MS,
  KEEPER_WRITE_RETRY_MS,
  RUNS_KEPT_MAX,
  RUNS_OPEN_MAX,
  RUN_KEPT_MS,
  RUN_OUTPUT_BYTES_MAX,
  RUN_PAGE_BYTES_MAX,
  RUN_PAGE_RESULTS_MAX,
} from './limits.js';
import {
  CLOSE,
  FIN,
  KEPT,
  NO,
  OK,
  OPEN,
  PAGE,
  RUNS,
  STATE,
  VIEW_OF,
  encodeJob,
  keptResults,
  resultsOf,
  type Fin,
  type JobMessage,
  type Kept,
  type State,
} from './messages.js';
import type {
  JobInput,
  JobResult,
  JobsStats,
  KeeperView,
  KeptRun,
  RunId,
  RunOptions,
  RunSink,
  RunSpec,
  RunState,
  RunStore,
} from './types.js';

/** How the keeper hosts a run: a Dispatcher the facade routes the run's messages to (jobs.ts). */
export interface RunHosting {
  host(
    spec: RunSpec,
    sink: RunSink,
    opts: RunOptions,
    attemptsBefore: number,
    onOver: () => void,
  ): Dispatcher;
  /** Forgets a hosted run without telling its workers (another keeper takes it over). */
  forget(run: RunId): void;
}

/** A request a client sends the keeper. */
export type KeeperRequest = Extract<JobMessage, { type: 'jd.hand' | 'jd.get' | 'jd.cancel' | 'jd.list' }>;

interface Hosted {
  d: Dispatcher;
  cancelled: boolean;
}

export class Keeper {
  private readonly hosted = new Map<RunId, Hosted>();
  /** Since when this peer keeps (null: it does not), and whether it resumed its store's runs yet. */
  private keepingSince: number | null = null;
  private resumed = false;
  /** Results whose write failed: written again every KEEPER_WRITE_RETRY_MS; their acks wait. */
  private unstored: Array<{ r: JobResult; stored: () => void }> = [];
  /** Runs over whose last results are not stored yet: marked done once they are. */
  private readonly overPending = new Set<RunId>();
  private lastRetry = 0;
  private lastPrune = -Infinity;
  /** Results recorded this turn, announced together (one jd.fin per run and page). */
  private fins = new Map<RunId, JobResult[]>();

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly send: (to: PeerId, payload: string | Uint8Array) => void,
    private readonly publish: (payload: string | Uint8Array) => void,
    private readonly view: KeeperView,
    private readonly store: RunStore,
    private readonly hosting: RunHosting,
    private readonly stats: JobsStats,
    /** The workers of the group now (their adverts). */
    private readonly workers: () => PeerId[],
  ) {}

  /** This peer keeps the detached runs now: it is the coordinator. */
  get keeping(): boolean {
    return this.view.isCoordinator();
  }

  // ---- requests from clients (answered by the caller with what this returns) --------------------

  /** The answer to a request, or null when this peer does not keep (the client asks again). */
  answer(from: PeerId, fromName: string, m: KeeperRequest): string | Uint8Array | null {
    if (!this.keeping) return null;
    const req = m.body.req;
    const no = (why: string) => encodeJob(NO, { req, why });
    switch (m.type) {
      case 'jd.hand':
        return this.onHand(from, fromName, m.body, no);
      case 'jd.get':
        return this.onGet(m.body.run, m.body.after, req, no);
      case 'jd.cancel':
        return this.onCancel(m.body.run, req, no);
      case 'jd.list':
        return encodeJob(RUNS, { req, views: this.store.list(m.body.offset, m.body.limit) });
    }
  }

  private onHand(
    from: PeerId,
    fromName: string,
    m: Extract<KeeperRequest, { type: 'jd.hand' }>['body'],
    no: (why: string) => string | Uint8Array,
  ): string | Uint8Array {
    const ok = encodeJob(OK, { req: m.req, run: m.run });
    const known = this.store.get(m.run);
    // Asked again (its answer was lost, or the client asked a new keeper): stored already.
    if (known) return known.submitter === from ? ok : no(`run id ${m.run} is taken: hand the run over again`);
    if (this.hosted.size >= RUNS_OPEN_MAX)
      return no(
        `the coordinator runs ${RUNS_OPEN_MAX} detached runs already: wait for one to end, or cancel one with peer run --cancel ID`,
      );
    if (this.store.count() >= RUNS_KEPT_MAX)
      this.store.prune(this.ctx.wall() - RUN_KEPT_MS, RUNS_KEPT_MAX - 1);
    if (this.store.count() >= RUNS_KEPT_MAX)
      return no(
        `the coordinator keeps ${RUNS_KEPT_MAX} runs and none of them is collected: collect some with peer run --attach ID, or cancel them`,
      );
    const kept: KeptRun = {
      spec: {
        run: m.run,
        kind: m.kind,
        words: m.words,
        env: m.env,
        detached: true,
        timeoutMs: m.timeoutMs,
        graceMs: m.graceMs,
        output: 'group',
        transfers: [],
        returns: [],
      },
      opts: { retries: m.retries, maxRunning: m.maxRunning, workers: m.workers },
      submitter: from,
      submitterName: fromName,
      createdAtWallMs: Math.max(0, Math.round(this.ctx.wall())),
      state: 'open',
      collectedAtWallMs: null,
    };
    const jobs = m.jobs.map(([job, seq, input, pin]): JobInput => ({ job, seq, input, pin }));
    const w = this.store.openRun(kept, jobs);
    if (w.failed) {
      const why = `the coordinator cannot store the run: ${failureReason(w.failed)}; free space on its disk, then run it again`;
      this.ctx.emit({ kind: 'detached-refused', run: m.run, why });
      return no(why);
    }
    const { req: _req, ...run } = m;
    this.publish(
      encodeJob(KEPT, { ...run, submitter: from, submitterName: fromName, at: kept.createdAtWallMs }),
    );
    this.ctx.emit({ kind: 'detached-stored', run: m.run, jobs: jobs.length, submitterName: fromName });
    this.host(kept, jobs, 0);
    return ok;
  }

  private onGet(
    run: RunId,
    after: number,
    req: string,
    no: (why: string) => string | Uint8Array,
  ): string | Uint8Array {
    const kept = this.store.get(run);
    const view = this.store.view(run);
    if (!kept || !view) return no(`no run ${run} in the group`);
    const page = this.store.results(run, after, RUN_PAGE_BYTES_MAX, RUN_PAGE_RESULTS_MAX);
    const next = page.more ? page.results[page.results.length - 1]!.job : null;
    // Read to its end once it is over: collected, kept RUN_KEPT_MS more.
    if (next === null && kept.state !== 'open' && kept.collectedAtWallMs === null)
      this.setState(run, kept.state, Math.max(0, Math.round(this.ctx.wall())));
    const { entries, bytes } = keptResults(page.results);
    return encodeJob(PAGE, { req, view, results: entries, inputs: page.inputs, next }, bytes);
  }

  private onCancel(run: RunId, req: string, no: (why: string) => string | Uint8Array): string | Uint8Array {
    const kept = this.store.get(run);
    if (!kept) return no(`no run ${run} in the group`);
    if (kept.state === 'open') {
      const w = this.setState(run, 'cancelled', Math.max(0, Math.round(this.ctx.wall())));
      if (w)
        return no(`the coordinator cannot store the cancel: ${failureReason(w)}; free space on its disk`);
      const h = this.hosted.get(run);
      if (h) {
        h.cancelled = true;
        h.d.cancel();
      }
      this.closeEverywhere(kept.spec);
      this.ctx.emit({ kind: 'detached-over', run, state: 'cancelled' });
    }
    return encodeJob(VIEW_OF, { req, view: this.store.view(run)! });
  }

  /**
   * Every worker told to drop the run, killing what runs of it: those the hosting dispatcher never
   * opened may still run the old keeper's attempts (a takeover), or nobody hosts it yet (the
   * takeover delay). A jb.open first, so a worker holding it for the old keeper rebinds it to us.
   */
  private closeEverywhere(spec: RunSpec): void {
    const { run, kind, words, env, timeoutMs, graceMs, output, transfers, returns } = spec;
    const open = encodeJob(OPEN, {
      run,
      kind,
      words,
      env,
      timeoutMs,
      graceMs,
      output,
      transfers,
      returns,
      detached: true,
    });
    const close = encodeJob(CLOSE, { run });
    for (const w of this.workers()) {
      this.send(w, open);
      this.send(w, close);
    }
  }

  // ---- announcements from the keeper (on every other full peer) --------------------------------

  onKept(from: PeerId, m: Kept): void {
    if (!this.fromKeeper(from)) return;
    const { jobs, submitter, submitterName, at, retries, maxRunning, workers, ...spec } = m;
    this.store.openRun(
      {
        spec: { ...spec, detached: true, output: 'group', transfers: [], returns: [] },
        opts: { retries, maxRunning, workers },
        submitter,
        submitterName,
        createdAtWallMs: at,
        state: 'open',
        collectedAtWallMs: null,
      },
      jobs.map(([job, seq, input, pin]) => ({ job, seq, input, pin })),
    );
  }

  onFin(from: PeerId, m: Fin, bytes: Uint8Array): void {
    if (!this.fromKeeper(from)) return;
    for (const r of resultsOf(m.run, m.results, bytes)) this.store.finish(r);
  }

  onState(from: PeerId, m: State): void {
    if (!this.fromKeeper(from)) return;
    this.store.setState(m.run, m.state, m.collected);
  }

  private fromKeeper(from: PeerId): boolean {
    if (from === this.view.coordinator() && !this.keeping) return true;
    this.stats.wrongSender++;
    return false;
  }

  // ---- time ----------------------------------------------------------------------------------

  tick(now: number): void {
    if (this.unstored.length > 0 && now - this.lastRetry >= KEEPER_WRITE_RETRY_MS) {
      this.lastRetry = now;
      this.storeAgain();
    }
    if (now - this.lastPrune >= KEEPER_PRUNE_INTERVAL_MS) {
      this.lastPrune = now;
      this.store.prune(this.ctx.wall() - RUN_KEPT_MS, RUNS_KEPT_MAX);
    }
    if (!this.keeping) {
      if (this.keepingSince !== null) this.stopKeeping();
      return;
    }
    this.keepingSince ??= now;
    if (!this.resumed && now - this.keepingSince >= KEEPER_TAKEOVER_DELAY_MS) this.resume();
  }

  /** When tick() next has something to do, while no run is hosted (Jobs ticks at its cadence then). */
  nextDue(now: number): number {
    let at = this.lastPrune + KEEPER_PRUNE_INTERVAL_MS;
    if (this.unstored.length > 0) at = Math.min(at, this.lastRetry + KEEPER_WRITE_RETRY_MS);
    // Keeping (or no longer) follows the election, which any tick may have changed: looked at by
    // the next tick, whatever wakes it.
    if (this.keepingSince !== null && !this.resumed)
      at = Math.min(at, this.keepingSince + KEEPER_TAKEOVER_DELAY_MS);
    return Math.max(at, now);
  }

  /** Open runs of our store, hosted again; their jobs without a result are numbered from attempt 2. */
  private resume(): void {
    this.resumed = true;
    let runs = 0;
    for (const { run, open } of this.store.openRuns(RUNS_OPEN_MAX)) {
      if (this.hosted.has(run.spec.run)) continue;
      if (open.length === 0) this.setState(run.spec.run, 'done', null);
      else {
        this.host(run, open, 1);
        runs++;
      }
    }
    this.ctx.emit({ kind: 'detached-resumed', runs, term: this.view.term() });
  }

  private stopKeeping(): void {
    for (const run of this.hosted.keys()) this.hosting.forget(run);
    this.hosted.clear();
    this.keepingSince = null;
    this.resumed = false;
  }

  // ---- hosting -------------------------------------------------------------------------------

  private host(kept: KeptRun, jobs: JobInput[], attemptsBefore: number): void {
    const run = kept.spec.run;
    const sink: RunSink = {
      // Detached runs send output whole with the result, and no files.
      output: () => {},
      returned: () => {},
      record: (r) => this.record(r),
    };
    const d = this.hosting.host(kept.spec, sink, { ...kept.opts }, attemptsBefore, () => this.over(run));
    this.hosted.set(run, { d, cancelled: false });
    d.feed(jobs, true);
  }

  /** A job's one result: stored, then announced; the worker's ack waits until it is stored. */
  private record(result: JobResult): Promise<void> | undefined {
    const r = clip(result);
    const w = this.store.finish(r);
    if (!w.failed) {
      if (w.first) this.announce(r);
      return undefined;
    }
    return new Promise((stored) => this.unstored.push({ r, stored }));
  }

  private storeAgain(): void {
    const left: typeof this.unstored = [];
    for (const u of this.unstored) {
      const w = this.store.finish(u.r);
      if (w.failed) left.push(u);
      else {
        if (w.first) this.announce(u.r);
        u.stored();
      }
    }
    this.unstored = left;
    for (const run of [...this.overPending])
      if (!left.some((u) => u.r.run === run)) {
        this.overPending.delete(run);
        this.finished(run);
      }
  }

  /** The hosted run ended (every job recorded, or cancelled and confirmed). */
  private over(run: RunId): void {
    const h = this.hosted.get(run);
    this.hosted.delete(run);
    if (!h || h.cancelled) return;
    // Done only once every result of it is stored: a takeover meanwhile resumes what is not.
    if (this.unstored.some((u) => u.r.run === run)) this.overPending.add(run);
    else this.finished(run);
  }

  private finished(run: RunId): void {
    if (this.setState(run, 'done', null) === null)
      this.ctx.emit({ kind: 'detached-over', run, state: 'done' });
  }

  /** Stores and announces a run's state; the write's failure, or null. */
  private setState(run: RunId, state: RunState, collectedAtWallMs: number | null): WriteFailureKind | null {
    const w = this.store.setState(run, state, collectedAtWallMs);
    if (w.failed) return w.failed;
    // The results announced first: a store that hears the run is over has them all (one topic: FIFO).
    this.flushFins();
    this.publish(encodeJob(STATE, { run, state, collected: collectedAtWallMs }));
    return null;
  }

  private announce(r: JobResult): void {
    const first = this.fins.size === 0;
    this.fins.set(r.run, [...(this.fins.get(r.run) ?? []), r]);
    if (first) this.ctx.soon(() => this.flushFins());
  }

  /** This turn's results, one jd.fin per run and RUN_PAGE_RESULTS_MAX results. */
  private flushFins(): void {
    const fins = this.fins;
    this.fins = new Map();
    for (const [run, results] of fins)
      for (let i = 0; i < results.length; i += RUN_PAGE_RESULTS_MAX) {
        const { entries, bytes } = keptResults(results.slice(i, i + RUN_PAGE_RESULTS_MAX));
        this.publish(encodeJob(FIN, { run, results: entries }, bytes));
      }
  }
}

/** A result cut to what a detached run keeps of each stream (RUN_OUTPUT_BYTES_MAX, the head). */
function clip(r: JobResult): JobResult {
  if (r.stdout.length <= RUN_OUTPUT_BYTES_MAX && r.stderr.length <= RUN_OUTPUT_BYTES_MAX) return r;
  return {
    ...r,
    stdout: r.stdout.subarray(0, RUN_OUTPUT_BYTES_MAX),
    stderr: r.stderr.subarray(0, RUN_OUTPUT_BYTES_MAX),
    truncated: true,
  };
}
