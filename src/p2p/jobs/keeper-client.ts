/**
 * KeeperClient: the KeeperApi of every peer (types.ts), asking the keeper (keeper.ts: the elected
 * coordinator) to keep a run, for a page of its results, to cancel it, for the runs it keeps.
 *
 * Each call is one request with a number of its own, sent by reliable unicast to the coordinator
 * this peer follows (this peer's own keeper, through jobs.ts's delivery to itself, when it is one),
 * and one answer with the same number from that peer. Requests are idempotent (a run's id is
 * drawn here, so a run handed twice is stored once), so a request is simply asked again:
 *   - of the new coordinator, when the one asked changes or its delivery fails (it died);
 *   - KEEPER_ASK_AGAIN_MS after it was delivered without an answer (the peer asked had just lost
 *     the role, or the answer was lost with it).
 * Calls never time out here: the caller races them against its own deadline (the CLI's --timeout).
 * At most KEEPER_ASKS_MAX wait at once; an answer from another peer than the one asked, or for no
 * request, is dropped and counted (stats.wrongSender).
 */
import type { ProtocolContext } from '../protocol.js';
import type { PeerId } from '../wire.js';
import { randomHexId } from '../runtime.js';
import { RELIABLE_MESSAGE_BYTES_MAX } from '../reliable/limits.js';
import { KEEPER_ASKS_MAX, KEEPER_ASK_AGAIN_MS, RUN_JOBS_MAX, RUN_LIST_MAX, RUNS_KEPT_MAX } from './limits.js';
import {
  CANCEL_RUN,
  GET,
  HAND,
  LIST,
  encodeJob,
  resultsOf,
  runProblem,
  handBody,
  type HandJob,
  type JobMessage,
  type JobSend,
} from './messages.js';
import type {
  DetachOptions,
  JobInput,
  JobsStats,
  KeeperAnswer,
  KeeperApi,
  KeeperView,
  RunId,
  RunPage,
  RunSpec,
  RunView,
} from './types.js';

/** An answer from the keeper. */
export type KeeperReply = Extract<
  JobMessage,
  { type: 'jd.ok' | 'jd.no' | 'jd.view' | 'jd.runs' | 'jd.page' }
>;

interface Ask {
  payload: string | Uint8Array;
  /** The peer asked last, null before the first send. */
  to: PeerId | null;
  inFlight: boolean;
  /** When its last delivery settled. */
  settledAt: number;
  take(m: KeeperReply): KeeperAnswer<unknown> | null;
  resolve(a: KeeperAnswer<unknown>): void;
}

export class KeeperClient implements KeeperApi {
  private readonly asks = new Map<string, Ask>();

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly send: JobSend,
    /** null: this peer runs no election, so it cannot know the keeper. */
    private readonly view: KeeperView | null,
    private readonly stats: JobsStats,
  ) {}

  detach(
    spec: Omit<RunSpec, 'run' | 'detached'>,
    jobs: JobInput[],
    opts: DetachOptions,
  ): Promise<KeeperAnswer<RunId>> {
    if (spec.output !== 'group') return no('a detached run cannot print lines as they come (--line-buffer)');
    if (spec.transfers.length > 0 || spec.returns.length > 0)
      return no('a detached run cannot take --transfer or --return files');
    if (jobs.length === 0) return no('a detached run needs at least one job');
    if (jobs.length > RUN_JOBS_MAX) return no(`a detached run has at most ${RUN_JOBS_MAX} jobs`);
    const req = randomHexId(this.ctx.random);
    const run = randomHexId(this.ctx.random);
    const body = handBody(
      req,
      run,
      spec,
      opts,
      jobs.map((j): HandJob => [j.job, j.seq, j.input, j.pin]),
    );
    const problem = runProblem(body);
    if (problem) return no(problem);
    const payload = encodeJob(HAND, body);
    if (Buffer.byteLength(payload) > RELIABLE_MESSAGE_BYTES_MAX)
      return no(
        `the run's jobs take over ${RELIABLE_MESSAGE_BYTES_MAX} bytes: split the input in several runs`,
      );
    return this.ask(req, payload, (m) =>
      m.type === 'jd.ok' && m.body.run === run ? { ok: true, value: run } : null,
    );
  }

  results(run: RunId, afterJob: number): Promise<KeeperAnswer<RunPage>> {
    const req = randomHexId(this.ctx.random);
    const after = Math.max(0, Math.floor(afterJob));
    return this.ask(req, encodeJob(GET, { req, run, after }), (m) =>
      m.type === 'jd.page' && m.body.view.run === run
        ? {
            ok: true,
            value: {
              view: m.body.view,
              results: resultsOf(run, m.body.results, m.bytes),
              inputs: m.body.inputs,
              next: m.body.next,
            },
          }
        : null,
    );
  }

  cancelRun(run: RunId): Promise<KeeperAnswer<RunView>> {
    const req = randomHexId(this.ctx.random);
    return this.ask(req, encodeJob(CANCEL_RUN, { req, run }), (m) =>
      m.type === 'jd.view' && m.body.view.run === run ? { ok: true, value: m.body.view } : null,
    );
  }

  listRuns(offset: number, limit: number): Promise<KeeperAnswer<RunView[]>> {
    const req = randomHexId(this.ctx.random);
    const body = {
      req,
      offset: Math.min(RUNS_KEPT_MAX, Math.max(0, Math.floor(offset))),
      limit: Math.min(RUN_LIST_MAX, Math.max(1, Math.floor(limit))),
    };
    return this.ask(req, encodeJob(LIST, body), (m) =>
      m.type === 'jd.runs' ? { ok: true, value: m.body.views } : null,
    );
  }

  /** An answer from `from`: it settles the request it names, if that peer was the one asked. */
  onReply(from: PeerId, m: KeeperReply): void {
    const a = this.asks.get(m.body.req);
    if (!a || a.to !== from) {
      this.stats.wrongSender++;
      return;
    }
    const answer = m.type === 'jd.no' ? { ok: false as const, why: m.body.why } : a.take(m);
    if (!answer) {
      this.stats.malformed++;
      return;
    }
    this.asks.delete(m.body.req);
    a.resolve(answer);
  }

  tick(now: number): void {
    for (const [req, a] of this.asks) this.pump(req, a, now);
  }

  /** Whether a request waits for its answer (its retries are timed by ticks). */
  busy(): boolean {
    return this.asks.size > 0;
  }

  private ask<T>(
    req: string,
    payload: string | Uint8Array,
    take: (m: KeeperReply) => KeeperAnswer<T> | null,
  ): Promise<KeeperAnswer<T>> {
    if (!this.view) return no('this peer does not follow the group coordinator, which keeps detached runs');
    if (this.asks.size >= KEEPER_ASKS_MAX)
      return no(
        `${KEEPER_ASKS_MAX} requests wait for the coordinator already: try again once they are answered`,
      );
    return new Promise((resolve) => {
      const a: Ask = {
        payload,
        to: null,
        inFlight: false,
        settledAt: -Infinity,
        take,
        resolve: resolve as (a: KeeperAnswer<unknown>) => void,
      };
      this.asks.set(req, a);
      this.ctx.wakeAt(this.ctx.now());
      this.pump(req, a, this.ctx.now());
    });
  }

  /** Sends a request to the coordinator when it has not been asked, or not answered in time. */
  private pump(req: string, a: Ask, now: number): void {
    const keeper = this.view?.coordinator() ?? null;
    if (keeper === null || a.inFlight) return;
    if (a.to === keeper && now - a.settledAt < KEEPER_ASK_AGAIN_MS) return;
    a.to = keeper;
    a.settledAt = now;
    a.inFlight = true;
    this.send(keeper, a.payload, () => {
      a.inFlight = false;
      a.settledAt = this.ctx.now();
      if (this.asks.get(req) === a) this.pump(req, a, this.ctx.now());
    });
  }
}

const REPLIES: ReadonlySet<string> = new Set(['jd.ok', 'jd.no', 'jd.view', 'jd.runs', 'jd.page']);
export const isReply = (m: JobMessage): m is KeeperReply => REPLIES.has(m.type);

const no = <T>(why: string): Promise<KeeperAnswer<T>> => Promise.resolve({ ok: false, why });
