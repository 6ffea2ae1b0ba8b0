/**
 * Group clock: Berkeley synchronisation (Gusella & Zatti 1989) led by the elected coordinator,
 * with Cristian's round-trip compensation for each reading.
 *
 * Each peer keeps a *group clock*: its wall clock plus an offset. The system clock is never
 * touched. Lamport time (kernel, on every message) orders events; the group clock gives the group
 * one physical time for display and timestamps.
 *
 * A round. Every roundIntervalMs (T), after every messagesPerRound application messages (N, see
 * noteMessage; 10 by default) and on request (`clk.req`, peer clock), the coordinator:
 *   1. multicasts `clk.poll {term, round}` and reads its own (target, see below) clock c0;
 *   2. each peer answers by unicast `clk.time {g}` with its target clock when the poll arrived;
 *      the coordinator reads c1 on arrival, so the round trip is rtt = c1 - c0 and, with symmetric
 *      delays, the peer read g at the coordinator's (c0 + c1) / 2: delta = g - (c0 + c1) / 2, known
 *      to +-rtt/2 (Cristian); each reply is followed by a unicast poll to that peer, up to
 *      READINGS_PER_PEER readings, and the reading with the shortest round trip is kept (NTP's
 *      clock filter: a reply that waited behind other work has a long round trip and a bias);
 *   3. after collectMs (or every expected reply), drops replies slower than rttMaxMs (their
 *      uncertainty is too large) and outliers (further than OUTLIER_MAD_FACTOR median absolute
 *      deviations, and at least OUTLIER_FLOOR_MS, from the median delta: a broken clock must not
 *      drag the group), averages the rest with its own delta 0;
 *   4. sends every peer that answered, outliers too, its adjustment `clk.adj {a = avg - delta}`
 *      and applies its own.
 * While rounds find every clock member within CLOCK_AGREE_MS of the average (or within the
 * accuracy of its readings, when that is larger), the interval doubles after each, up to
 * roundIntervalMaxMs (as NTP lengthens its poll interval while a clock is stable): an idle group
 * of hosts kept by NTP is measured every 40 s, not every 5. A larger adjustment, or a clock
 * member not yet measured, brings it back to T. Adjustments carry the interval, so a peer knows
 * when to expect the next round.
 * Readings and adjustments are about each peer's *target* clock (wall + the offset the last
 * adjustment asked for), so a clock still slewing is measured where it is going. A peer adds the
 * adjustment to its target offset. Its group clock moves there: a forward correction at once (up
 * to FORWARD_JUMP_MS_MAX, the rest by slewing), a backward one by slewing (the offset shrinks at
 * slewRate ms per ms), so the group clock keeps running forward (more slowly) and never goes
 * back. Readings are also clamped to be non-decreasing, in case the system clock itself is
 * stepped back.
 *
 * Failure modes. Messages carry the coordinator's term; polls from an older term are ignored, and
 * adjustments are taken only from the coordinator followed in its own term, so neither a deposed
 * coordinator nor a bystander can move a clock. Only live clock members are averaged, and a round
 * moves the group time by at most GROUP_STEP_MS_MAX (see there for the one exception). A peer
 * that has not answered halfway through collectMs is polled again by unicast (replies echo the
 * attempt k, so each is timed against its own poll). A peer still left out, or whose adjustment
 * is lost, asks for a round itself (`clk.req`) once it has gone twice the interval the coordinator
 * last announced (T before any) without a sync.
 * Asymmetric delays bias an estimate by up to rtt/2: that is the accuracy each peer reports. Drift
 * between rounds (up to 2 x 100 ppm x T between two peers) adds to it.
 */
import type { Envelope, PeerId } from './wire.js';
import { f, message, messages, type Body, type Origin } from './kit/message.js';
import type { MemberView, Protocol, ProtocolContext } from './protocol.js';
import type { Membership, Tags } from './membership.js';
import type { CoordinatorView } from './election.js';
import type { Address } from './transport/transport.js';
import { MEMBERS_MAX } from './config.js';
import { SecondBudget } from './bounds.js';

export interface ClockSyncTimings {
  /** T: the coordinator runs a round at least this often. Pairwise drift grows by up to 200 ppm x T. */
  roundIntervalMs: number;
  /**
   * While rounds find the clocks agreeing (CLOCK_AGREE_MS), the interval doubles from T up to this:
   * hosts whose clocks are kept by NTP hardly drift, and an idle group need not measure them
   * every T. The next disagreement, or a clock member not yet measured, brings it back to T.
   */
  roundIntervalMaxMs: number;
  /** N: and after this many application messages (noteMessage). */
  messagesPerRound: number;
  /** Rounds never start closer than this, whatever triggers them. */
  roundGapMinMs: number;
  /** How long the coordinator collects replies to a poll. Several LAN round trips. */
  collectMs: number;
  /** Replies with a longer round trip are not averaged: their offset is uncertain by rtt/2. */
  rttMaxMs: number;
  /** A backward correction is absorbed at this many ms per ms (0.5: the clock runs at half speed). */
  slewRate: number;
}

/** Replies further than this many median absolute deviations from the median are outliers. */
export const OUTLIER_MAD_FACTOR = 3;
/**
 * ...but a reply within this of the median is never an outlier: MAD is near 0 when clocks agree,
 * and a clock tens of ms off (an unsynchronised host) must be pulled in, not left out.
 */
export const OUTLIER_FLOOR_MS = 50;
/**
 * Largest move of the group time in one round, in ms: the round's average is clamped to it while
 * the coordinator's own clock is not an outlier. A clock far from the others is an outlier and is
 * corrected without moving the group; but with only one other peer, forged readings are not
 * outliers: this bounds what they do to every clock at once. Clocks still agree after one round;
 * only the group time stays nearer the coordinator's. (Forgers running most of the members can
 * make the coordinator the outlier: a keyed group is the answer to that, docs/security.md.)
 */
export const GROUP_STEP_MS_MAX = 1_000;
/**
 * Largest forward step a follower's group clock takes at once, in ms; the rest of a forward
 * adjustment is slewed at slewRate, as a backward one is. A group clock never goes back, so a
 * forward step cannot be undone: this bounds what one wrong adjustment does for good, while the
 * next round measures the target and so stops any slew still to go.
 */
export const FORWARD_JUMP_MS_MAX = 10_000;
/**
 * A round whose every adjustment is within this, in ms, or within the accuracy the round reports
 * for that clock (a smaller adjustment cannot be told from the error of its readings), with every
 * clock member measured, found the clocks agreeing: the next round comes after twice the interval
 * (roundIntervalMaxMs). Each clock was then within that of the group time; the longer interval
 * lets them drift for at most twice as long as the one that found them agreeing.
 */
export const CLOCK_AGREE_MS = 0.25;
/**
 * A peer that asked for a round (peer clock) asks again this often until one adjusts it: its
 * request, or its reply, may be lost, and the next round may be roundIntervalMaxMs away.
 */
export const ROUND_REQUEST_RETRY_MS = 500;
/** Requesters a coordinator waits for in its next round; more are polled, not waited for. */
export const REQUESTERS_MAX = 64;
/**
 * Unicast polls a coordinator sends in a second to ids that are not members (a `peer clock` that
 * asked for a round or answered its poll), at the address the request or answer came from. Each
 * is one datagram from anyone, under any id and from a spoofed address, and each drew a poll at
 * that address: rounds may be 250 ms apart and wait for 64 requesters each, and every id that
 * answers the multicast poll is polled again, so forged ones reflected hundreds of polls a second
 * at a victim. Real ones are a few `peer clock` commands at a time.
 */
export const STRANGER_POLLS_PER_S = 16;
/** Largest round interval a coordinator may announce (`nx`), in ms. */
export const ROUND_INTERVAL_MS_MAX = 3_600_000;
/** Largest adjustment accepted or sent: one day. Anything larger is a broken clock, not skew. */
export const ADJUSTMENT_MS_MAX = 86_400_000;
/** Group clock readings on the wire: any time from 1970 to year 33658, in ms. */
export const READING_MS_MAX = 1e15;
/** Status replies kept for `peer clock`. */
export const STATUSES_MAX = 1024;
/** The membership tag that says a peer runs clock sync (the coordinator expects its reply). */
export const TAG_CLOCK = 'clk';

declare module './protocol.js' {
  interface PeerEventMap {
    /** The coordinator finished a round. */
    'clock-round': {
      term: number;
      round: number;
      /** Peers that answered, the coordinator included. */
      peers: number;
      /** How many were averaged (not slow, not outliers). */
      used: number;
      /** Largest minus smallest estimated delta before the round, in ms. */
      spreadMs: number;
    };
    /** This peer applied an adjustment to its group clock. */
    'clock-adjusted': { term: number; round: number; adjustmentMs: number; accuracyMs: number };
  }
}

export interface ClockStatus {
  lamport: number;
  /** Group clock minus wall clock, as applied now (moving while a backward correction slews). */
  offsetMs: number;
  /** The offset the last adjustment asked for. */
  targetOffsetMs: number;
  /** Group time of the last applied adjustment; null before the first. */
  lastSyncMs: number | null;
  /** Estimated error bound of this peer's group clock: the last sync's, plus any slew still to go. */
  accuracyMs: number | null;
  term: number;
}

export interface PeerClockStatus extends ClockStatus {
  id: PeerId;
  name: string;
  /** This peer's group clock when the status arrived. */
  receivedAtMs: number;
}

export interface ClockSyncOptions {
  timings: ClockSyncTimings;
  coordinator: CoordinatorView;
  /** A one-shot observer (peer clock): it syncs, but its clock never moves the group's. */
  observer?: boolean;
}

interface Reply {
  from: Address;
  delta: number;
  rtt: number;
  /** An observer: adjusted like the others, but its clock is not averaged into group time. */
  observer: boolean;
}

interface Poll {
  t0: number;
  c0: number;
}

/** One peer's readings in a round: the outstanding unicast polls and the best reading so far. */
interface PeerRound {
  /** Unicast polls to this peer not yet answered, by attempt k (k >= 1). */
  polls: Map<number, Poll>;
  nextK: number;
  answeredMulticast: boolean;
  readings: number;
  best: Reply | null;
}

interface Round {
  term: number;
  round: number;
  t0: number;
  off0: number;
  /** Who asked for this round (clk.req), at what address: it waits for their readings too. */
  askedBy: Map<PeerId, Address>;
  /** The multicast poll (attempt k = 0). */
  multicast: Poll;
  retried: boolean;
  peers: Map<PeerId, PeerRound>;
}

const ms = () => f.num(-READING_MS_MAX, READING_MS_MAX);
const accuracy = () => f.num(0, ADJUSTMENT_MS_MAX);
/**
 * Readings taken from each peer per round. After each reply the coordinator polls that peer again
 * by unicast and keeps the reading with the shortest round trip (NTP's clock filter): a reply that
 * waited behind other work on a busy host has a long round trip and a reading biased by the wait.
 */
export const READINGS_PER_PEER = 4;
/** Unicast retries of the first poll, to peers still silent halfway through collectMs. */
export const POLL_RETRIES = 1;
/** Attempt numbers per peer: 0 is the multicast, then the retries and the follow-up polls. */
const ATTEMPT_MAX = READINGS_PER_PEER + POLL_RETRIES;
const POLL = message('clk.poll', {
  term: f.uint(),
  round: f.uint().wire('r'),
  attempt: f.uint(ATTEMPT_MAX).wire('k'),
});
/** `reading`: the peer's target clock when the poll arrived; `observer`: a one-shot `peer clock`. */
export const TIME = message('clk.time', {
  term: f.uint(),
  round: f.uint().wire('r'),
  attempt: f.uint(ATTEMPT_MAX).wire('k'),
  reading: ms().wire('g'),
  observer: f.optional(f.bool()).wire('o'),
});
/** `next`: the coordinator's round interval now; a peer asks for a round after twice it unsynced. */
const ADJ = message('clk.adj', {
  term: f.uint(),
  round: f.uint().wire('r'),
  adjustment: f.num(-ADJUSTMENT_MS_MAX, ADJUSTMENT_MS_MAX).wire('a'),
  accuracy: accuracy().wire('acc'),
  next: f.optional(f.uint(ROUND_INTERVAL_MS_MAX)).wire('nx'),
});
const REQUEST = message('clk.req', {});
const QUERY = message('clk.q', {});
export const STATUS = message('clk.st', {
  lamport: f.uint(),
  offset: ms().wire('off'),
  targetOffset: ms().wire('target'),
  lastSync: f.nullable(ms()).wire('last'),
  accuracy: f.nullable(accuracy()).wire('acc'),
  term: f.uint(),
});
const MESSAGES = messages(POLL, TIME, ADJ, REQUEST, QUERY, STATUS);

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Berkeley's fault-tolerant average of offset estimates: the indices kept and their mean.
 * Exported for tests; `deltas` must not be empty.
 */
export function berkeleyAverage(deltas: readonly number[]): { kept: number[]; average: number } {
  const med = median(deltas);
  const mad = median(deltas.map((d) => Math.abs(d - med)));
  const bound = Math.max(OUTLIER_FLOOR_MS, OUTLIER_MAD_FACTOR * mad);
  const kept = deltas.flatMap((d, i) => (Math.abs(d - med) <= bound ? [i] : []));
  const average = kept.reduce((sum, i) => sum + deltas[i]!, 0) / kept.length;
  return { kept, average };
}

export class ClockSync implements Protocol {
  readonly messages = MESSAGES.checks;
  private readonly dispatch = MESSAGES.dispatch({
    'clk.poll': (b, from) => this.onPoll(b, from),
    'clk.time': (b, from) => this.onTime(b, from),
    'clk.adj': (b, from) => this.onAdjust(b, from),
    'clk.req': (_b, from) => {
      if (!this.view.isCoordinator()) return;
      this.requested = true;
      if (this.askedBy.size < REQUESTERS_MAX) this.askedBy.set(from.id, from.address);
    },
    'clk.q': (_b, from) => {
      const s = this.status();
      this.ctx.send(
        from.address,
        ...STATUS.out({
          lamport: s.lamport,
          offset: s.offsetMs,
          targetOffset: s.targetOffsetMs,
          lastSync: s.lastSyncMs,
          accuracy: s.accuracyMs,
          term: s.term,
        }),
      );
    },
    'clk.st': (b, from) => {
      if (this.statuses.size >= STATUSES_MAX && !this.statuses.has(from.id)) return;
      this.statuses.set(from.id, {
        id: from.id,
        name: from.name,
        lamport: b.lamport,
        offsetMs: b.offset,
        targetOffsetMs: b.targetOffset,
        lastSyncMs: b.lastSync,
        accuracyMs: b.accuracy,
        term: b.term,
        receivedAtMs: this.groupNow(),
      });
    },
  });
  /** Rounds this peer led. */
  rounds = 0;
  private readonly view: CoordinatorView;
  // The applied offset moves from `base` (at monotonic time `since`) towards `target`.
  private base = 0;
  private target = 0;
  private since = 0;
  private lastReading = -Infinity;
  private lastSync: number | null = null;
  private accuracy: number | null = null;
  /** The offset used for our latest reply to a poll: the adjustment is relative to it. */
  private replied: { term: number; round: number; off: number; coordinator: PeerId } | null = null;
  private current: Round | null = null;
  private roundNo = 0;
  private lastRoundAt = -Infinity;
  /** The coordinator's round interval: T, doubled after each round that found clocks agreeing. */
  private intervalMs: number;
  /** The clock members the coordinator's last round measured: one not among them is due a round. */
  private measured = new Set<PeerId>();
  /** A follower's view of the coordinator's round interval (from its last adjustment). */
  private expectedEveryMs: number;
  private messagesSinceRound = 0;
  private requested = false;
  /** Who asked for the next round (REQUESTERS_MAX at most). */
  private askedBy = new Map<PeerId, Address>();
  /** Unicast polls to ids that are not members (requesters, answerers) we may still send this second. */
  private readonly strangerPolls = new SecondBudget(STRANGER_POLLS_PER_S);
  /** When we asked for a round (requestRound) and no round has adjusted us since; null: not asking. */
  private wantedSince: number | null = null;
  private lastSyncAt: number;
  private lastRequestAt = -Infinity;
  private tagged = false;
  private readonly statuses = new Map<PeerId, PeerClockStatus>();

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly membership: Membership,
    private readonly opts: ClockSyncOptions,
  ) {
    this.view = opts.coordinator;
    this.intervalMs = opts.timings.roundIntervalMs;
    this.expectedEveryMs = opts.timings.roundIntervalMs;
    this.since = ctx.now();
    this.lastSyncAt = ctx.now();
  }

  /** This peer's group clock, in ms since the epoch: never decreases. */
  groupNow(): number {
    const g = this.ctx.wall() + this.offsetAt(this.ctx.now());
    this.lastReading = Math.max(this.lastReading, g);
    return this.lastReading;
  }

  /**
   * The clock this peer's group clock is converging to: wall + target offset. Rounds measure and
   * adjust this one, so a peer (or coordinator) still slewing a backward correction is measured
   * where it is going, not where it lags: every target agrees after one round, and the slew is
   * only how each clock gets there without going back.
   */
  private targetNow(): number {
    return this.ctx.wall() + this.target;
  }

  status(): ClockStatus {
    const offsetMs = this.offsetAt(this.ctx.now());
    return {
      lamport: this.ctx.lamport(),
      offsetMs,
      targetOffsetMs: this.target,
      lastSyncMs: this.lastSync,
      // While a backward correction slews, the clock is off by what remains of it.
      accuracyMs: this.accuracy === null ? null : this.accuracy + Math.abs(offsetMs - this.target),
      term: this.view.term(),
    };
  }

  /** Counts one application message; the coordinator syncs after every messagesPerRound. */
  noteMessage(): void {
    if (++this.messagesSinceRound === this.opts.timings.messagesPerRound) this.ctx.wakeAt(this.ctx.now());
  }

  /**
   * The reply that completes a round, or a request, makes the round's end or a round due: the next
   * tick says what. Every other message is handled here and makes nothing due, so it asks for no
   * tick: an idle member woke for each poll and adjustment, and the coordinator for each reply.
   */
  onMessage(env: Envelope, from: Address): void {
    this.dispatch(env, from);
    const completes = env.t === TIME.type && this.current !== null && this.complete(this.current);
    if (completes || env.t === REQUEST.type) this.ctx.wakeAt(this.ctx.now());
  }

  /**
   * Asks the coordinator for a round now (it honours roundGapMinMs), and again every
   * ROUND_REQUEST_RETRY_MS until a round adjusts us. False if no coordinator is known.
   */
  requestRound(): boolean {
    this.wantedSince = this.ctx.now();
    const asked = this.askForRound();
    if (asked) this.lastRequestAt = this.ctx.now();
    return asked;
  }

  private askForRound(): boolean {
    const c = this.view.coordinator();
    if (c === null) return false;
    if (c === this.ctx.self.id) {
      this.requested = true;
      this.ctx.wakeAt(this.ctx.now());
      return true;
    }
    const m = this.membership.get(c);
    if (!m) return false;
    this.ctx.send(m.address, ...REQUEST.out({}));
    return true;
  }

  /** Multicasts a status query; the answers arrive in peerStatuses(). Clears older answers. */
  queryStatuses(): void {
    this.statuses.clear();
    this.ctx.broadcast(...QUERY.out({}));
  }

  /** Status answers received since the last queryStatuses(), by peer. */
  peerStatuses(): PeerClockStatus[] {
    return [...this.statuses.values()];
  }

  private onPoll({ term, round, attempt }: Body<typeof POLL>, from: Origin): void {
    if (term < this.view.term()) return; // a deposed coordinator
    // Only the coordinator we follow may adjust us: a poll from anyone else gets a reading,
    // which is harmless, but must not make way for an adjustment (see onAdjust).
    if (term === this.view.term() && from.id === this.view.coordinator())
      this.replied = { term, round, off: this.target, coordinator: from.id };
    const reply = { term, round, attempt, reading: this.targetNow() };
    this.ctx.send(from.address, ...TIME.out(this.opts.observer ? { ...reply, observer: true } : reply));
  }

  /** Runs what is due and returns when something next is (a round's steps, the next round). */
  tick(now: number): number {
    this.step(now);
    const t = this.opts.timings;
    const round = this.current;
    if (round) return round.t0 + (round.retried ? t.collectMs : t.collectMs / 2);
    let at: number;
    if (!this.view.isCoordinator()) {
      at = Math.max(this.lastSyncAt + 2 * this.expectedEveryMs, this.lastRequestAt + t.roundIntervalMs);
      if (this.wantedSince !== null) at = Math.min(at, this.lastRequestAt + ROUND_REQUEST_RETRY_MS);
    } else {
      const asked = this.messagesSinceRound >= t.messagesPerRound || this.requested;
      at = Math.max(this.lastRoundAt + t.roundGapMinMs, asked ? now : this.lastRoundAt + this.roundEveryMs());
    }
    // Due and still not done (no coordinator known to ask yet): try again after the least gap.
    return at > now ? at : now + t.roundGapMinMs;
  }

  private step(now: number): void {
    if (!this.tagged) this.publishTag();
    const round = this.current;
    const t = this.opts.timings;
    if (round) {
      if (!this.view.isCoordinator() || this.view.term() !== round.term) this.current = null;
      else if (now - round.t0 >= t.collectMs || this.complete(round)) this.finish(round);
      else if (!round.retried && now - round.t0 >= t.collectMs / 2) this.retrySilent(round);
      return;
    }
    if (!this.view.isCoordinator()) {
      this.messagesSinceRound = 0;
      this.requested = false;
      // Should we lead again, in a later term, our rounds start again from T.
      this.intervalMs = t.roundIntervalMs;
      if (this.measured.size > 0) this.measured.clear();
      if (this.askedBy.size > 0) this.askedBy.clear();
      if (this.wantedSince !== null && this.lastSyncAt > this.wantedSince) this.wantedSince = null;
      // Left out of rounds (lost polls, replies or adjustments): ask, at most once per T; one that
      // asked for a round (peer clock) asks again every ROUND_REQUEST_RETRY_MS until adjusted.
      const leftOut =
        now - this.lastSyncAt >= 2 * this.expectedEveryMs && now - this.lastRequestAt >= t.roundIntervalMs;
      const again = this.wantedSince !== null && now - this.lastRequestAt >= ROUND_REQUEST_RETRY_MS;
      if ((leftOut || again) && this.askForRound()) this.lastRequestAt = now;
      return;
    }
    const since = now - this.lastRoundAt;
    const due =
      since >= this.roundEveryMs() || this.messagesSinceRound >= t.messagesPerRound || this.requested;
    if (due && since >= t.roundGapMinMs) this.startRound(now);
  }

  /** The coordinator's time between rounds: T while a clock member is not yet measured. */
  private roundEveryMs(): number {
    if (this.intervalMs === this.opts.timings.roundIntervalMs) return this.intervalMs;
    const unmeasured = this.clockMembers().some((m) => !this.measured.has(m.id));
    return unmeasured ? this.opts.timings.roundIntervalMs : this.intervalMs;
  }

  private startRound(now: number): void {
    this.requested = false;
    this.messagesSinceRound = 0;
    this.lastRoundAt = now;
    const term = this.view.term();
    const round = ++this.roundNo;
    const off0 = this.target;
    this.current = {
      term,
      round,
      t0: now,
      off0,
      multicast: { t0: now, c0: this.targetNow() },
      retried: false,
      peers: new Map(),
      askedBy: this.askedBy,
    };
    this.askedBy = new Map();
    this.ctx.broadcast(...POLL.out({ term, round, attempt: 0 }));
  }

  private retrySilent(round: Round): void {
    round.retried = true;
    const silent = (id: PeerId) => !round.peers.get(id)?.best;
    for (const m of this.clockMembers())
      if (silent(m.id)) this.pollOne(round, this.peerRound(round, m.id), m.address);
    for (const [id, address] of round.askedBy)
      if (silent(id) && !this.membership.get(id) && this.strangerPolls.take(this.ctx.now()))
        this.pollOne(round, this.peerRound(round, id), address);
  }

  private peerRound(round: Round, id: PeerId): PeerRound {
    let pr = round.peers.get(id);
    if (!pr) {
      pr = { polls: new Map(), nextK: 1, answeredMulticast: false, readings: 0, best: null };
      round.peers.set(id, pr);
    }
    return pr;
  }

  private pollOne(round: Round, pr: PeerRound, to: Address): void {
    if (pr.nextK > ATTEMPT_MAX) return;
    const k = pr.nextK++;
    pr.polls.set(k, { t0: this.ctx.now(), c0: this.targetNow() });
    this.ctx.send(to, ...POLL.out({ term: round.term, round: round.round, attempt: k }));
  }

  private onTime(
    { term, round: r, attempt: k, reading: g, observer: o }: Body<typeof TIME>,
    from: Origin,
  ): void {
    const round = this.current;
    if (!round || term !== round.term || r !== round.round) return;
    if (!round.peers.has(from.id) && round.peers.size >= MEMBERS_MAX) return;
    const pr = this.peerRound(round, from.id);
    let poll: Poll | undefined;
    if (k === 0) {
      if (pr.answeredMulticast) return; // a duplicate
      pr.answeredMulticast = true;
      poll = round.multicast;
    } else {
      poll = pr.polls.get(k);
      pr.polls.delete(k);
    }
    if (!poll) return;
    const c1 = this.targetNow();
    const rtt = Math.max(0, this.ctx.now() - poll.t0);
    // Cristian: the peer read g half a round trip after we read c0, by our clock (c0 + c1) / 2.
    // A reading is averaged only from a live member that runs clock sync: anyone can send one, and
    // a reading under an id nobody heard from (or many) must not move the group's time. Others,
    // observers (peer clock) among them, are adjusted but not averaged.
    const member = this.membership.get(from.id);
    const averaged = o !== true && member?.state === 'alive' && member.tags[TAG_CLOCK] === true;
    const reading: Reply = { from: from.address, delta: g - (poll.c0 + c1) / 2, rtt, observer: !averaged };
    pr.readings++;
    if (!pr.best || reading.rtt < pr.best.rtt) pr.best = reading;
    if (pr.readings < READINGS_PER_PEER && (member || this.strangerPolls.take(this.ctx.now())))
      this.pollOne(round, pr, from.address);
  }

  /** Live members that run clock sync. */
  private clockMembers(): MemberView[] {
    return this.membership.live().filter((m) => m.tags[TAG_CLOCK] === true);
  }

  /**
   * Every clock member, and whoever asked for the round, has given all its readings: the round
   * need not wait for collectMs. (A one-shot `peer clock` starting on a busy host answers later
   * than the members; a round that ended without it left it unsynced until the next, which may be
   * roundIntervalMaxMs away.)
   */
  private complete(round: Round): boolean {
    const done = (id: PeerId) => (round.peers.get(id)?.readings ?? 0) >= READINGS_PER_PEER;
    return this.clockMembers().every((m) => done(m.id)) && [...round.askedBy.keys()].every(done);
  }

  private finish(round: Round): void {
    this.current = null;
    this.rounds++;
    const samples = [
      { id: this.ctx.self.id, from: '', delta: 0, rtt: 0, observer: false },
      ...[...round.peers].flatMap(([id, pr]) => (pr.best ? [{ id, ...pr.best }] : [])),
    ];
    const usable = samples.filter((s) => s.rtt <= this.opts.timings.rttMaxMs && !s.observer);
    const { kept, average: mean } = berkeleyAverage(usable.map((s) => s.delta));
    // usable[0] is our own reading. Left out as an outlier, it is our clock that is broken, and
    // the others' average is the group's time: then no clamp (each clock's FORWARD_JUMP_MS_MAX
    // still applies).
    const average = kept.includes(0) ? Math.max(-GROUP_STEP_MS_MAX, Math.min(GROUP_STEP_MS_MAX, mean)) : mean;
    // The average is known to within the mean uncertainty of the readings it is made of.
    const avgError = kept.reduce((sum, i) => sum + usable[i]!.rtt / 2, 0) / kept.length;
    const deltas = samples.map((s) => s.delta);
    this.ctx.emit({
      kind: 'clock-round',
      term: round.term,
      round: round.round,
      peers: samples.length,
      used: kept.length,
      spreadMs: Math.max(...deltas) - Math.min(...deltas),
    });
    this.measured = new Set(samples.map((s) => s.id));
    const t = this.opts.timings;
    const everyone = this.clockMembers().every((m) => this.measured.has(m.id));
    // The adjustment a clock needs is known to within its accuracy (its reading's rtt/2 and the
    // average's error): one within that, or within CLOCK_AGREE_MS, is a clock already agreeing.
    // Observers' clocks (peer clock, or readings under ids that are no clock member) are adjusted
    // but are not the group's: they neither hold the interval back nor lengthen it.
    const accuracyOf = (s: { rtt: number }) => s.rtt / 2 + avgError;
    const agree =
      everyone &&
      samples.every(
        (s) =>
          s.observer ||
          (s.rtt <= t.rttMaxMs && Math.abs(average - s.delta) <= Math.max(CLOCK_AGREE_MS, accuracyOf(s))),
      );
    this.intervalMs = agree ? Math.min(2 * this.intervalMs, t.roundIntervalMaxMs) : t.roundIntervalMs;
    for (const s of samples) {
      const a = clampAdjustment(average - s.delta);
      const acc = accuracyOf(s);
      if (s.id === this.ctx.self.id) this.apply(round.off0 + a, a, acc, round.term, round.round);
      else
        this.ctx.send(
          s.from,
          ...ADJ.out({
            term: round.term,
            round: round.round,
            adjustment: a,
            accuracy: acc,
            next: this.intervalMs,
          }),
        );
    }
  }

  private onAdjust(
    { term, round: r, adjustment: a, accuracy: acc, next }: Body<typeof ADJ>,
    from: Origin,
  ): void {
    const mine = this.replied;
    if (!mine || mine.term !== term || mine.round !== r || mine.coordinator !== from.id) return;
    // Only from the coordinator we follow, in its term: a newer term may be a coordinator we have
    // not heard of yet, or anyone claiming to be one; a real one's next round reaches us anyway.
    if (term !== this.view.term() || this.view.coordinator() !== from.id) return;
    this.replied = null;
    // Bounded by our own timings: a wrong interval delays our request for a round by at most
    // twice roundIntervalMaxMs.
    const t = this.opts.timings;
    this.expectedEveryMs = Math.min(
      Math.max(next ?? t.roundIntervalMs, t.roundIntervalMs),
      t.roundIntervalMaxMs,
    );
    this.apply(mine.off + a, a, acc, term, r);
  }

  /**
   * Moves towards a new target offset: forward at once up to FORWARD_JUMP_MS_MAX (then by
   * slewing), backward by slewing.
   */
  private apply(target: number, a: number, acc: number, term: number, round: number): void {
    const now = this.ctx.now();
    this.base = this.offsetAt(now);
    this.since = now;
    this.target = target;
    if (target > this.base) this.base = Math.min(target, this.base + FORWARD_JUMP_MS_MAX);
    this.accuracy = acc;
    this.lastSyncAt = now;
    this.lastSync = this.groupNow();
    this.ctx.emit({ kind: 'clock-adjusted', term, round, adjustmentMs: a, accuracyMs: acc });
  }

  private offsetAt(now: number): number {
    const slewed = this.opts.timings.slewRate * (now - this.since);
    if (this.target >= this.base) return Math.min(this.target, this.base + slewed);
    return Math.max(this.target, this.base - slewed);
  }

  private publishTag(): void {
    this.tagged = true;
    const tags: Tags = { ...this.membership.ownTags, [TAG_CLOCK]: true };
    this.membership.setTags(tags);
  }
}

function clampAdjustment(a: number): number {
  return Math.max(-ADJUSTMENT_MS_MAX, Math.min(ADJUSTMENT_MS_MAX, a));
}
