/**
 * What feeds the monitor's model: an observer node (it never heartbeats, so it is never a member,
 * never a candidate, never counted in a clock round, a token ring or a replica ack) and read-only
 * instances of the protocol modules whose state it shows:
 *  - Election as a follower (candidate: false): learns the coordinator from tags, never stands;
 *  - Jobs without an executor, with a store in memory that follows the keeper's announcements
 *    (jd.run, jd.fin, jd.state, taken only from the coordinator it follows): the runs of
 *    `peer task` and `peer run --detach` announced while the monitor runs (it is never elected,
 *    so it never keeps them; it cannot ask the keeper, which answers members only);
 *  - ClockSync with a view that follows no coordinator and sits above every term, so it never
 *    answers a poll (an observer's clock must not move the group's average) and never runs a
 *    round; it only sends `clk.q` and collects every peer's status (Lamport time, offset);
 *  - a TokenRing that is never ticked and only hears passes, beats and lease refusals (TokenWatch):
 *    it tracks epoch, generation and holder, and can never hold, pass, ack a lease or confirm a
 *    claim (no peer's ring contains an observer, so no pass is ever addressed to it);
 *  - ReliableDelivery + Chat: reads the group's lines from its start on (no history: see below)
 *    and sends what the user types. Members do not wait for the monitor's acks (it is not in their
 *    membership).
 * Node events go to the Logs tab; coordinator and replica changes are derived from tags.
 */
import { ClockSync } from '../../p2p/clock-sync.js';
import { Election, type CoordinatorView } from '../../p2p/election.js';
import type { PeerNode } from '../../p2p/node.js';
import Database from 'better-sqlite3';
import { Jobs } from '../../p2p/jobs/index.js';
import { RunsStore } from '../../storage/runs.js';
import { TokenRing } from '../../p2p/token-ring/index.js';
import { Chat, CHAT_TAG, ChatError } from '../../p2p/chat.js';
import { ReliableDelivery } from '../../p2p/reliable/index.js';
import type { Protocol } from '../../p2p/protocol.js';
import type { Check, Envelope, PeerId } from '../../p2p/wire.js';
import type { Address } from '../../p2p/transport/transport.js';
import { DerivedEvents } from './derived.js';
import {
  describeEvent,
  EventLog,
  type ClockReading,
  type MonitorInput,
  type ChatView,
  type TokenInfo,
} from './model.js';

/** How often the monitor asks every peer for its clock status (one small unicast answer each). */
export const CLOCK_QUERY_INTERVAL_MS = 1000;
/** Runs shown, newest first: a screenful and some to scroll. */
export const RUNS_SHOWN = 100;
/** Chat lines shown (the most recent, in Lamport order). */
export const CHAT_LINES_SHOWN = 200;
/** The token's rotation rate is measured over this window. */
export const ROTATION_WINDOW_MS = 10_000;
/** Token samples kept for the rate (one per refresh, 4/s, over the window, with room). */
const TOKEN_SAMPLES_MAX = 128;

/** Token messages that only reveal where the token is; the others (leases, claims) are not heard. */
const TOKEN_WATCHED = new Set(['tok.pass', 'tok.beat', 'tok.lnak']);

/** A TokenRing that listens and never acts: no tick, and only the messages that reveal the token. */
export class TokenWatch implements Protocol {
  readonly messages: Record<string, Check>;
  constructor(readonly ring: TokenRing) {
    // The real schemas, so the wire stays defined in one place.
    this.messages = ring.messages;
  }
  onMessage(env: Envelope, from: Address): void {
    if (TOKEN_WATCHED.has(env.t)) this.ring.onMessage(env, from);
  }
  tick(): void {}
}

/** Follows nobody, above every term: polls and adjustments are all "from a deposed coordinator". */
const PASSIVE_VIEW: CoordinatorView = {
  coordinator: () => null,
  isCoordinator: () => false,
  term: () => Number.MAX_SAFE_INTEGER,
  onChange: () => () => {},
};

export interface Installed {
  clock: ClockSync;
  jobs: Jobs;
  /** The runs the keeper announced (in memory: an observer keeps nothing). */
  runs: RunsStore;
  election: Election;
  token: TokenWatch;
  chat: Chat;
}

/** Installs the read-only protocol instances; call from startPeer's install hook. */
export function installMonitorModules(node: PeerNode): Installed {
  const election = node.install(
    (ctx, n) =>
      new Election(ctx, n.membership, { timings: n.profile.election, priority: 0, candidate: false }),
  );
  const clock = node.install(
    (ctx, n) => new ClockSync(ctx, n.membership, { timings: n.profile.clock, coordinator: PASSIVE_VIEW }),
  );
  const token = node.install(
    (ctx, n) => new TokenWatch(new TokenRing(ctx, n.membership, { timings: n.profile.tokenRing })),
  );
  const reliable = node.install(
    (ctx, n) =>
      new ReliableDelivery(ctx, n.membership, {
        audience: (m) => m.tags[CHAT_TAG] === true,
      }),
  );
  const chat = node.install(
    // No history request: members answer it by reliable unicast, which needs the requester in their
    // membership, and an observer never is. The tab shows the lines from the monitor's start on.
    (ctx, n) => new Chat(ctx, n.membership, reliable),
  );
  const runs = new RunsStore(new Database(':memory:'));
  const jobs = node.install(
    (ctx, n) => new Jobs(ctx, reliable, n.membership, { keyed: false, view: election, store: runs }),
  );
  return { clock, jobs, runs, election, token, chat };
}

export interface FeedsOptions {
  node: PeerNode;
  group: string;
  installed: Installed;
}

export class MonitorFeeds {
  private readonly log = new EventLog();
  private readonly derived = new DerivedEvents();
  private readonly readings = new Map<PeerId, ClockReading>();
  private readonly received = new Map<PeerId, number>();
  private chatError: string | null = null;
  private readonly tokenSamples: Array<{ at: number; generation: number }> = [];
  private timers: Array<() => void> = [];
  private unsubscribe: () => void = () => {};
  /** Timers and wall clock are the node's runtime: real in the CLI, virtual in simulation tests. */
  private readonly wall: () => number;

  constructor(private readonly o: FeedsOptions) {
    this.wall = () => o.node.runtime.wall();
  }

  start(): void {
    this.o.installed.chat.onLost((r) =>
      this.log.add({
        atWall: this.wall(),
        kind: 'lost',
        text: `${r.count} chat message(s) from ${r.fromName} lost (${r.reason})`,
        tone: 'bad',
      }),
    );
    this.unsubscribe = this.o.node.on((e) => {
      const line = describeEvent(e, this.wall());
      if (line) this.log.add(line);
    });
    const { clock } = this.o.installed;
    const queryClock = () => {
      this.collectClock();
      clock.queryStatuses();
    };
    queryClock();
    const rt = this.o.node.runtime;
    this.timers.push(rt.every(CLOCK_QUERY_INTERVAL_MS, queryClock));
  }

  stop(): void {
    for (const cancel of this.timers) cancel();
    this.timers = [];
    this.unsubscribe();
  }

  /** A snapshot for the tabs. */
  input(): MonitorInput {
    const node = this.o.node;
    const now = this.wall();
    const members = node.membership.list();
    const token = this.token(now);
    for (const l of this.derived.update(members, now, token)) this.log.add(l);
    this.collectClock();
    return {
      nowWall: now,
      self: {
        name: node.name,
        id: node.id,
        address: node.address,
        group: this.o.group,
        lamport: node.lamport,
        role: 'observer',
      },
      members,
      clock: this.readings,
      tasks: { runs: this.shownRuns() },
      token,
      chat: this.chatView(),
      log: this.log.all,
    };
  }

  /**
   * The newest runs the keeper announced; older ones are forgotten here, so a monitor left open
   * for days holds RUNS_SHOWN runs, not every run the group ever made with its results.
   */
  private shownRuns(): ReturnType<RunsStore['list']> {
    const runs = this.o.installed.runs;
    runs.keepNewest(RUNS_SHOWN);
    return runs.list(0, RUNS_SHOWN);
  }

  /** Sends a line to the group; a refusal (empty, too long) becomes the chat tab's error line. */
  say(text: string): void {
    try {
      this.o.installed.chat.say(text);
      this.chatError = null;
    } catch (err) {
      if (!(err instanceof ChatError)) throw err;
      this.chatError = err.message;
    }
  }

  private chatView(): ChatView {
    const chat = this.o.installed.chat;
    return { lines: chat.recent(CHAT_LINES_SHOWN), members: chat.members().length, error: this.chatError };
  }

  private token(now: number): TokenInfo {
    const node = this.o.node;
    const s = this.o.installed.token.ring.status();
    const samples = this.tokenSamples;
    samples.push({ at: now, generation: s.generation });
    while (
      samples.length > TOKEN_SAMPLES_MAX ||
      (samples.length > 2 && now - samples[0]!.at > ROTATION_WINDOW_MS)
    )
      samples.shift();
    const first = samples[0]!;
    const span = now - first.at;
    return {
      epoch: s.epoch,
      generation: s.generation,
      holder: s.holder,
      // Its ring() counts this observer in; no peer's ring does.
      ring: s.ring.filter((id) => id !== node.id),
      passesPerSecond: span >= 1000 ? ((s.generation - first.generation) * 1000) / span : null,
    };
  }

  /** queryStatuses() clears the answers; keep the last of each peer across queries. */
  private collectClock(): void {
    for (const s of this.o.installed.clock.peerStatuses()) {
      if (this.received.get(s.id) === s.receivedAtMs) continue; // seen at an earlier refresh
      this.received.set(s.id, s.receivedAtMs);
      this.readings.set(s.id, {
        lamport: s.lamport,
        offsetMs: s.offsetMs,
        accuracyMs: s.accuracyMs,
        atWall: this.wall(),
      });
    }
  }
}
