/**
 * Coordinator election: the bully algorithm (Garcia-Molina 1982) with terms.
 *
 * Rank. A candidate's rank is (priority, peer id): the higher priority wins, and between equal
 * priorities the greater id. The highest-ranked live candidate is the coordinator. A peer is a
 * candidate when it publishes its priority in its membership tags (TAG_PRIORITY); peers that do
 * not run this module, and followers built with `candidate: false` (one-shot commands), are never
 * elected and never answer.
 *
 * Algorithm. A candidate that sees no coordinator (after a short listen at startup, or when the
 * coordinator is dead or left in the membership view), or sees a lower-ranked one, starts an
 * election for term T = (highest term seen) + 1: it multicasts `el.elect {T}` (resent every
 * electRetryMs) and waits answerTimeoutMs. Every live higher-ranked candidate that hears it answers
 * `el.ok` by unicast and runs its own election. No answer in time (or no higher-ranked candidate
 * in its view at all): the candidate claims term T, multicasts `el.coord {T}` and marks itself in
 * its tags. An answer: it waits claimTimeoutMs for a claim, and starts over with a higher term if
 * none comes.
 *
 * Terms. A peer follows the claim with the highest term; a claim with a term below the one it
 * follows is stale and ignored. A candidate that hears a claim from a lower-ranked peer does not
 * follow it: it bullies, with an election for a higher term. So the terms a peer follows only rise.
 * A term more than TERM_STEP_MAX above the highest known, or past COUNTER_MAX, is refused.
 *
 * Catching up with a far-ahead group. Terms are not saved (the module has no storage, and a peer
 * with a new data dir would know none anyway), so a restarted or new peer starts from 0. A group
 * can legitimately be more than a step ahead of that: one claim within the step and one election
 * take it past 2^32. Refusing it for good would leave such a peer leading alone at term 1, or
 * following nobody. So, as the Lamport clock does (lamport.ts), a far-ahead term in live members'
 * tags is caught up with (made the highest term seen; the claims and tags within the step then
 * apply as usual) once it is corroborated:
 *  - members at TERM_CATCH_UP_SENDERS_MIN different addresses publish terms within a step of each
 *    other: a peer joining a group of two or more catches up as soon as their heartbeats arrive;
 *  - or members at one address have published it for TERM_CATCH_UP_MS, heard from at least
 *    TERM_CATCH_UP_HEARD_MIN times and never silent that long meanwhile: a peer next to a lone
 *    member catches up within about a second, and refuses its claims until then.
 * Each address's tags are kept on their own, so forged members from one socket can neither stand
 * in for a second address nor disturb another's run. The lowest corroborated term is taken (the
 * least harm if one was forged). One datagram does neither: it is heard once, from one address.
 * Tags are states, not messages: el.coord and el.elect beyond the step stay refused and counted.
 * The trade-off, stated as for Lamport time: in an open group a forger publishing one term from
 * two sockets, or from one for a second, moves the group's term to it, as a far-ahead group would.
 * That is why catching up stops at TERM_CATCH_UP_MAX (2^50), far below COUNTER_MAX: above it
 * terms only rise by steps, over a million adopted claims to the end, and a group caught up with
 * keeps room for 7.9 x 10^15 elections. A keyed group admits no forger.
 *
 * A member ahead of the coordinator. Every peer publishes the term it follows in its tags. A member
 * can follow a term above the coordinator's: it took that term from a claimant now gone (a
 * stranger's claim sent to it alone, or a coordinator that died before the others heard its
 * claim). Its terms only rise, so the coordinator's claims are stale to it, and its elections,
 * answered by a claim in the coordinator's old term, never end: it stays apart for good. So a
 * coordinator that sees a live member's tags at a term above its own holds an election above it
 * (which it wins at once unless a higher-ranked peer has joined): all follow it again, in a term
 * above every one of theirs. Every peer counts the terms in live members' tags into the highest
 * term seen (the coordinator must, to go above them; the others then accept the new claim even
 * if it is more than a step above the term they follow). A forger gains nothing new by it: a
 * claim or a tag within the step already moves the group's term as far. A member pushed beyond
 * the step of all others (several claims in a row sent to it alone, each within the step of the
 * last) is caught up with like a far-ahead group: after a second of its heartbeats, or at once by
 * a member that also sees the coordinator's claim above it.
 *
 * Anti-entropy. The coordinator's tags (coord = true, term) ride on its heartbeats every
 * heartbeatIntervalMs; every tick a peer re-applies the claims it sees in live members' tags as if
 * they were `el.coord` messages. A lost claim is thus repaired within a heartbeat, and after a
 * partition heals the two sides' coordinators see each other's claims: the higher-ranked one takes
 * a new, higher term and the other steps down, leaving exactly one.
 *
 * Failure modes. Without a quorum, each side of a partition elects its own coordinator (the side
 * that kept the old one does not elect); both may even use the same term number if both elect.
 * Two candidates can also claim one term when every election message between them is lost
 * (each resend lost: about 0.2^(answerTimeoutMs / electRetryMs) at 10 % loss); the tags repair it
 * within a heartbeat: the lower-ranked claimant steps down. A suspected (not yet dead) coordinator
 * is still followed: SWIM suspicion is not death. But once some peer calls it dead and starts an
 * election, a higher peer that merely suspects it does not wait for it: heartbeat losses make
 * peers detect one death up to a heartbeat interval apart, and failover must not wait for the
 * slowest. If it was alive after all (a false death at one peer), it hears the election or the
 * claim and takes over again with a higher term.
 */
import { is, type Envelope, type PeerId } from './wire.js';
import { f, message, messages, type Body, type Origin } from './kit/message.js';
import { COUNTER_MAX, adoptable } from './bounds.js';
import type { MemberView, Protocol, ProtocolContext } from './protocol.js';
import type { Membership, Tags } from './membership.js';
import type { Address } from './transport/transport.js';

export interface ElectionTimings {
  /** A newcomer listens this long for a coordinator's claim before electing: a few round trips. */
  startupListenMs: number;
  /** A candidate claims if no higher-ranked peer answers within this (Raft: 150-300 ms). */
  answerTimeoutMs: number;
  /** `el.elect` is resent this often while unanswered, so loss rarely yields two claims. */
  electRetryMs: number;
  /** After an answer, how long to wait for the higher peer's claim before a new election. */
  claimTimeoutMs: number;
}

/** Largest accepted --priority; priorities are integers in [0, PRIORITY_MAX]. */
export const PRIORITY_MAX = 1_000_000;
/** A claim is multicast this many times back to back; tags repair any further loss. */
export const CLAIM_COPIES = 2;
/**
 * Largest step a term from another peer may take above the highest term we know (bounds.ts):
 * more than the elections a group holds in its life (one term each). A forged claim further
 * ahead, or near the end of the safe range, is refused: no single message can push the group to a
 * term whose successor (+1) every decoder refuses, leaving each candidate to lead alone; it takes
 * two million adopted claims to climb from 0 to COUNTER_MAX. A group further ahead of a restarted
 * or new peer than this is caught up with from corroborating tags (see the header).
 */
export const TERM_STEP_MAX = 2 ** 32;
/**
 * A term further than TERM_STEP_MAX ahead of ours, published in one live member's tags, is caught
 * up with once that member has kept publishing it this long, in ms (Lamport: LAMPORT_CATCH_UP_MS).
 */
export const TERM_CATCH_UP_MS = 1000;
/** ... and we heard from it at least this many times meanwhile (it heartbeats 5 times a second). */
export const TERM_CATCH_UP_HEARD_MIN = 3;
/** A member's lastSeenMs is rounded to the ms: heard-at times closer than this are one datagram. */
const LAST_SEEN_ROUNDING_MS = 1;
/** Far-ahead terms that agree (within a step) in the tags of members at this many addresses: at once. */
export const TERM_CATCH_UP_SENDERS_MIN = 2;
/**
 * Addresses whose far-ahead tags are kept (the one heard from longest ago is pushed out), so a
 * tick costs at most this squared whatever a flood of forged members shows. Hiding the members'
 * tags takes this many sockets, and two already make their own agreement (see the header).
 */
export const TERM_CATCH_UP_ADDRESSES_MAX = 16;
/**
 * No term above this is caught up with, only reached in steps: a group caught up with COUNTER_MAX
 * could hold no further election (every peer refuses a term above it). 2^50 leaves 7.9 x 10^15
 * elections of room, and no group reaches it by electing (one term per election).
 */
export const TERM_CATCH_UP_MAX = 2 ** 50;
/**
 * How long, in ms from its start, an election may wait for a live member that may outrank us (it
 * does, or its tags have not come yet) to be reached by our group sends (a forged member at an
 * address that never answers delays an election by this much at most). Met by unicast, a member
 * gets none of them until its address answered a nonce of ours (reach.ts); the answer time runs
 * from the first `el.elect` that reached every such member, or a member that never heard the
 * election, nor would hear our claim, could claim the same term. Reach retries its proof at 250,
 * 750 and 1750 ms, so at 10 % loss about one pair in a thousand is still unproved by then; past
 * it, the plain bully rule applies (no answer in time: claim) and the tags repair a double claim.
 */
export const UNREACHED_WAIT_MS_MAX = 2000;
/** Priorities learned from election messages, kept for peers whose tags are not known yet. */
export const LEARNED_PRIORITIES_MAX = 1024;

/** Membership tag keys this module publishes (other modules merge their own tags with these). */
export const TAG_PRIORITY = 'prio';
export const TAG_COORDINATOR = 'coord';
export const TAG_TERM = 'term';

export type ElectionReason =
  | 'startup'
  | 'coordinator-dead'
  | 'coordinator-left'
  | 'no-coordinator'
  | 'outranks-coordinator'
  | 'outranks-claimant'
  | 'election-from-lower'
  | 'claim-timeout'
  | 'member-in-higher-term';

declare module './protocol.js' {
  interface PeerEventMap {
    /** This peer started an election for `term`. */
    'election-started': { term: number; reason: ElectionReason };
    /** This peer won the election for `term` and is now the coordinator. */
    elected: { term: number };
    /**
     * The coordinator this peer follows changed, or the same one now leads in a higher term
     * (`previous` is then the coordinator itself); null: none known, an election is due.
     */
    'coordinator-changed': {
      term: number;
      coordinator: PeerId | null;
      previous: PeerId | null;
      /** Display name of the new coordinator, when known. */
      coordinatorName: string | null;
      /** Display name of the previous one, when known. */
      previousName: string | null;
    };
  }
}

/** The read-only view of the election that other modules (tasks, clock sync) code against. */
export interface CoordinatorView {
  /** The coordinator this peer follows, itself included; null while none is known. */
  coordinator(): PeerId | null;
  isCoordinator(): boolean;
  /** The term of the coordinator followed; 0 before the first. Coordinator messages carry it. */
  term(): number;
  /** Calls `fn` after every change of coordinator or term; returns the unsubscribe function. */
  onChange(fn: (coordinator: PeerId | null, term: number) => void): () => void;
}

export interface ElectionOptions {
  timings: ElectionTimings;
  /** This peer's priority, 0..PRIORITY_MAX (higher wins). */
  priority: number;
  /** False: follow the coordinator, never stand (one-shot commands). Default true. */
  candidate?: boolean;
}

type Phase = 'starting' | 'idle' | 'electing' | 'waiting';

/**
 * One address's run of far-ahead terms in its members' tags, each within a step of the highest,
 * started over when one disagrees or after a silence of TERM_CATCH_UP_MS.
 */
interface FarAhead {
  low: number;
  high: number;
  /** When we first and last heard from there during the run (members' lastSeenMs), and how often. */
  first: number;
  lastHeard: number;
  heard: number;
}

export const ELECT = message('el.elect', { term: f.uint(), priority: f.int(0, PRIORITY_MAX).wire('prio') });
const OK = message('el.ok', { term: f.uint() });
const COORD = message('el.coord', { term: f.uint(), priority: f.int(0, PRIORITY_MAX).wire('prio') });
const MESSAGES = messages(ELECT, OK, COORD);

export function isPriority(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= PRIORITY_MAX;
}

/** True when (prioA, a) ranks above (prioB, b). */
export function ranksAbove(prioA: number, a: PeerId, prioB: number, b: PeerId): boolean {
  return prioA > prioB || (prioA === prioB && a > b);
}

/**
 * Ranks of the candidates among `members` (1 = highest), from their tags: for `peer peers`.
 * Members that publish no priority are not candidates and get no rank.
 */
export function rankMembers(members: readonly MemberView[]): Map<PeerId, number> {
  const c = members
    .filter((m) => (m.state === 'alive' || m.state === 'suspect') && isPriority(m.tags[TAG_PRIORITY]))
    .map((m) => ({ id: m.id, prio: m.tags[TAG_PRIORITY] as number }))
    .sort((x, y) => (ranksAbove(x.prio, x.id, y.prio, y.id) ? -1 : 1));
  return new Map(c.map((x, i) => [x.id, i + 1]));
}

/**
 * The coordinator among `members` by their tags: the live claim with the highest (term, rank). A
 * term past COUNTER_MAX is no claim: every peer refuses it (termAdoptable), and so does this view.
 */
export function coordinatorFromTags(members: readonly MemberView[]): PeerId | null {
  let best: { id: PeerId; term: number; prio: number } | null = null;
  for (const m of members) {
    if (m.state !== 'alive' && m.state !== 'suspect') continue;
    const term = m.tags[TAG_TERM];
    const prio = m.tags[TAG_PRIORITY];
    if (m.tags[TAG_COORDINATOR] !== true || !is.uint(COUNTER_MAX)(term) || !isPriority(prio)) continue;
    const t = term as number;
    if (!best || t > best.term || (t === best.term && ranksAbove(prio, m.id, best.prio, best.id)))
      best = { id: m.id, term: t, prio };
  }
  return best?.id ?? null;
}

export class Election implements Protocol, CoordinatorView {
  readonly messages = MESSAGES.checks;
  private readonly dispatch = MESSAGES.dispatch({
    'el.elect': (b, from) => this.onElect(b, from),
    'el.ok': ({ term }) => {
      if (this.phase === 'electing' && term === this.electionTerm) this.enter('waiting');
    },
    'el.coord': ({ term, priority }, from) => {
      if (!this.adopt(term)) return;
      this.learn(from.id, priority);
      this.onClaim(term, from.id);
    },
  });
  private readonly candidate: boolean;
  private readonly priority: number;
  private termNo = 0;
  /** Highest term seen in any message or tag: a new election goes above it. */
  private highestSeen = 0;
  private leader: PeerId | null = null;
  private phase: Phase = 'starting';
  private phaseSince: number;
  private electionTerm = 0;
  private lastElectSent = -Infinity;
  /** When the first `el.elect` of this election reached every member that may outrank us (null: none yet). */
  private electReachedAt: number | null = null;
  private lastReassert = -Infinity;
  private fullWait = false;
  private tagsPublished = false;
  private publishedTerm = -1;
  /** The term of the last coordinator-changed event emitted. */
  private announcedTerm = -1;
  private readonly learned = new Map<PeerId, number>();
  /** By address, the runs of live members' tags that show a term beyond the step. */
  private readonly farAhead = new Map<Address, FarAhead>();
  private listeners: Array<(coordinator: PeerId | null, term: number) => void> = [];
  /** What the tags scan of the last tick saw: it runs again only when one of these changed. */
  private scanned = '';

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly membership: Membership,
    private readonly opts: ElectionOptions,
  ) {
    if (!isPriority(opts.priority))
      throw new RangeError(`priority must be an integer in 0..${PRIORITY_MAX}, got ${opts.priority}`);
    this.priority = opts.priority;
    this.candidate = opts.candidate ?? true;
    this.phaseSince = ctx.now();
  }

  coordinator(): PeerId | null {
    return this.leader;
  }
  isCoordinator(): boolean {
    return this.leader === this.ctx.self.id;
  }
  term(): number {
    return this.termNo;
  }
  onChange(fn: (coordinator: PeerId | null, term: number) => void): () => void {
    this.listeners.push(fn);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== fn);
    };
  }
  /** True while an election this peer started is unresolved. */
  get electing(): boolean {
    return this.phase === 'electing' || this.phase === 'waiting';
  }

  private onElect({ term, priority }: Body<typeof ELECT>, from: Origin): void {
    if (!this.adopt(term)) return;
    this.learn(from.id, priority);
    this.highestSeen = Math.max(this.highestSeen, term);
    // A newcomer above us learns the current term from the claim, and goes above it.
    if (this.isCoordinator()) this.reassert();
    if (!this.candidate) return;
    if (!ranksAbove(this.priority, this.ctx.self.id, priority, from.id)) {
      // A higher peer running its own election is alive and will claim: as good as its answer.
      if (this.phase === 'electing') this.enter('waiting');
      return;
    }
    this.ctx.send(from.address, ...OK.out({ term }));
    if (this.isCoordinator()) return;
    else if (!this.followsHigherLeader()) this.startElection('election-from-lower');
    // else: our leader outranks us and hears the same multicast; it answers and re-asserts.
  }

  /** Whether a term in a message may be taken; one past the bound is refused and counted. */
  private adopt(term: number): boolean {
    if (this.termAdoptable(term)) return true;
    this.ctx.refuse('term');
    return false;
  }

  /** A message may start or end an election, or change the leader: the next tick says what is due. */
  onMessage(env: Envelope, from: Address): void {
    this.dispatch(env, from);
    this.ctx.wakeAt(this.ctx.now());
  }

  /**
   * The phase's timeouts, and the tags scan when membership or our own term changed (a far-ahead
   * term being corroborated keeps the fixed cadence: it counts heartbeats heard). Returns the
   * phase's next deadline; idle, only a message or a membership change wakes it.
   */
  tick(now: number): number | void {
    if (!this.tagsPublished) this.publishTags();
    this.checkLeaderAlive();
    const seen = `${this.membership.version}:${this.termNo}:${this.highestSeen}:${this.leader}:${this.phase}`;
    if (seen !== this.scanned || this.farAhead.size > 0) {
      this.scanned = seen;
      this.scanTags(now);
    }
    this.phaseTick(now);
    if (this.farAhead.size > 0) return;
    return this.deadline();
  }

  /** When the current phase next has something to do. */
  private deadline(): number {
    const t = this.opts.timings;
    switch (this.phase) {
      case 'starting':
        return this.phaseSince + t.startupListenMs;
      case 'electing':
        return Math.min(
          (this.electReachedAt ?? Infinity) + t.answerTimeoutMs,
          this.lastElectSent + t.electRetryMs,
        );
      case 'waiting':
        return Math.min(this.phaseSince + t.claimTimeoutMs, this.lastElectSent + 2 * t.electRetryMs);
      case 'idle':
        return Infinity;
    }
  }

  /**
   * Anti-entropy: the claims in live members' tags, as if their el.coord had just arrived, and
   * the terms they follow, so that a new election goes above them.
   */
  private scanTags(now: number): void {
    this.catchUp(now);
    let ahead = false;
    for (const m of this.membership.live()) {
      const term = m.tags[TAG_TERM];
      // A tag past the bound is refused like a message (counted once, when the message came).
      if (!this.termAdoptable(term)) continue;
      this.highestSeen = Math.max(this.highestSeen, term);
      if (m.tags[TAG_COORDINATOR] === true) this.onClaim(term, m.id);
      else if (term > this.termNo) ahead = true;
    }
    // After the claims: a member ahead because it follows a higher-ranked claimant is no reason.
    if (ahead && this.phase === 'idle' && this.isCoordinator()) this.startElection('member-in-higher-term');
  }

  private phaseTick(now: number): void {
    switch (this.phase) {
      case 'starting':
        if (now - this.phaseSince >= this.opts.timings.startupListenMs) {
          this.enter('idle');
          if (this.candidate && (this.leader === null || this.outranks(this.ctx.self.id, this.leader)))
            this.startElection('startup');
        }
        return;
      case 'electing':
        if (
          (!this.fullWait && this.outranksAll() && !this.unreached(now)) ||
          now - (this.electReachedAt ?? Infinity) >= this.opts.timings.answerTimeoutMs
        )
          this.claim();
        else if (now - this.lastElectSent >= this.opts.timings.electRetryMs) this.sendElect();
        return;
      case 'waiting':
        if (now - this.phaseSince >= this.opts.timings.claimTimeoutMs) this.startElection('claim-timeout');
        // Still no claim: a lost one. Asking again makes a coordinator repeat it (reassert).
        else if (now - this.lastElectSent >= 2 * this.opts.timings.electRetryMs) this.sendElect();
        return;
      case 'idle':
        if (!this.candidate) return;
        if (this.leader === null) this.startElection('no-coordinator');
        else if (this.leader !== this.ctx.self.id && this.outranks(this.ctx.self.id, this.leader))
          this.startElection('outranks-coordinator');
        return;
    }
  }

  /** The node is leaving: the membership's leave makes the others elect at once. */
  leave(): void {}

  private checkLeaderAlive(): void {
    const leader = this.leader;
    if (leader === null || leader === this.ctx.self.id) return;
    const m = this.membership.get(leader);
    if (m && (m.state === 'alive' || m.state === 'suspect')) return;
    this.setLeader(null, this.termNo);
    if (this.candidate && this.phase !== 'starting')
      this.startElection(m?.state === 'left' ? 'coordinator-left' : 'coordinator-dead');
  }

  /**
   * Raises the highest term seen to a far-ahead term in live members' tags once they corroborate
   * it (see the header): agreeing tags at TERM_CATCH_UP_SENDERS_MIN addresses, or one address's
   * tags held for TERM_CATCH_UP_MS while we kept hearing from it. The lowest such term is taken
   * (the least harm if one was forged); a higher one waits for its own turn.
   */
  private catchUp(now: number): void {
    const ours = Math.max(this.highestSeen, this.termNo);
    const seen = new Set<Address>();
    for (const m of this.membership.live()) {
      const term = m.tags[TAG_TERM];
      if (!is.uint(TERM_CATCH_UP_MAX)(term)) continue;
      const t = term as number;
      if (adoptable(ours, t, TERM_STEP_MAX)) continue;
      seen.add(m.address);
      const heardAt = now - m.lastSeenMs;
      let run = this.farAhead.get(m.address);
      if (!run || heardAt - run.lastHeard > TERM_CATCH_UP_MS || Math.abs(t - run.high) > TERM_STEP_MAX)
        run = { low: t, high: t, first: heardAt, lastHeard: heardAt, heard: 1 };
      else if (heardAt > run.lastHeard + LAST_SEEN_ROUNDING_MS) {
        run.lastHeard = heardAt;
        run.heard++;
      }
      run.low = Math.min(run.low, t);
      run.high = Math.max(run.high, t);
      this.farAhead.set(m.address, run);
      if (this.farAhead.size > TERM_CATCH_UP_ADDRESSES_MAX) {
        const [oldest] = [...this.farAhead].reduce((x, y) => (y[1].lastHeard < x[1].lastHeard ? y : x));
        this.farAhead.delete(oldest);
      }
    }
    // No longer ahead, or no live member there: forgotten.
    for (const address of this.farAhead.keys()) if (!seen.has(address)) this.farAhead.delete(address);
    let lowest: number | null = null;
    for (const run of this.farAhead.values()) {
      const held = run.heard >= TERM_CATCH_UP_HEARD_MIN && run.lastHeard - run.first >= TERM_CATCH_UP_MS;
      let agreeing = 0;
      for (const other of this.farAhead.values())
        if (Math.abs(other.high - run.high) <= TERM_STEP_MAX) agreeing++; // itself included
      if ((held || agreeing >= TERM_CATCH_UP_SENDERS_MIN) && (lowest === null || run.low < lowest))
        lowest = run.low;
    }
    if (lowest !== null) this.highestSeen = Math.max(this.highestSeen, lowest);
  }

  /** Whether a term from another peer is within TERM_STEP_MAX of the highest we know. */
  private termAdoptable(term: unknown): term is number {
    return adoptable(Math.max(this.highestSeen, this.termNo), term as number, TERM_STEP_MAX);
  }

  /** A claim of coordinatorship for `term` by `claimant`, from a message or from its tags. */
  private onClaim(term: number, claimant: PeerId): void {
    this.highestSeen = Math.max(this.highestSeen, term);
    if (claimant === this.ctx.self.id) return;
    if (term < this.termNo) return; // stale: from before an election we know of
    if (term === this.termNo && claimant === this.leader) {
      if (this.phase === 'waiting') this.enter('idle');
      return;
    }
    // Only claims by members we know: a coordinator must be one whose death we can detect.
    if (!this.membership.get(claimant)) return;
    if (this.candidate && this.phase !== 'starting' && this.outranks(this.ctx.self.id, claimant)) {
      this.startElection('outranks-claimant'); // bully: a lower-ranked peer must not lead us
      return;
    }
    // Two claims for one term: follow the higher-ranked claimant while it lives.
    if (term === this.termNo && this.leader !== null && this.outranks(this.leader, claimant)) {
      const cur = this.leader === this.ctx.self.id ? undefined : this.membership.get(this.leader);
      if (this.leader === this.ctx.self.id || (cur && cur.state !== 'dead' && cur.state !== 'left')) return;
    }
    this.termNo = term;
    if (this.phase !== 'starting') this.enter('idle');
    this.setLeader(claimant, term);
  }

  private startElection(reason: ElectionReason): void {
    // One election at a time; only a missing claim after an answer starts the next one.
    if ((this.phase === 'electing' || this.phase === 'waiting') && reason !== 'claim-timeout') return;
    const term = Math.max(this.highestSeen, this.termNo) + 1;
    this.electionTerm = term;
    // A newcomer's view may still miss a higher peer's tags: it always asks and waits. Later, the
    // view is complete and the highest survivor of a crash claims at once.
    this.fullWait = reason === 'startup';
    this.electReachedAt = null;
    this.enter('electing');
    this.ctx.emit({ kind: 'election-started', term, reason });
    if (!this.fullWait && this.outranksAll() && !this.unreached(this.phaseSince)) this.claim();
    else this.sendElect();
  }

  /**
   * The coordinator answers an election from below by repeating its claim in its current term: the
   * coordinator does not change, so neither does the term. Rate-limited against election storms.
   */
  private reassert(): void {
    const now = this.ctx.now();
    if (now - this.lastReassert < this.opts.timings.electRetryMs) return;
    this.lastReassert = now;
    this.ctx.broadcast(...COORD.out({ term: this.termNo, priority: this.priority }));
  }

  /**
   * Our leader outranks us and is alive (not merely not yet dead): it hears the same election and
   * answers it. A suspect leader that another peer already calls dead is not waited for.
   */
  private followsHigherLeader(): boolean {
    const l = this.leader;
    if (l === null || l === this.ctx.self.id || !this.outranks(l, this.ctx.self.id)) return false;
    return this.membership.get(l)?.state === 'alive';
  }

  private sendElect(): void {
    const now = this.ctx.now();
    this.lastElectSent = now;
    this.ctx.broadcast(...ELECT.out({ term: this.electionTerm, priority: this.priority }));
    if (this.phase === 'electing' && this.electReachedAt === null && !this.unreached(now))
      this.electReachedAt = now;
  }

  /** Claims the election's term, or a higher one if a higher term was seen meanwhile. */
  private claim(): void {
    const term = this.highestSeen >= this.electionTerm ? this.highestSeen + 1 : this.electionTerm;
    this.termNo = term;
    this.highestSeen = Math.max(this.highestSeen, term);
    this.enter('idle');
    this.setLeader(this.ctx.self.id, term);
    for (let i = 0; i < CLAIM_COPIES; i++)
      this.ctx.broadcast(...COORD.out({ term, priority: this.priority }));
    this.ctx.emit({ kind: 'elected', term });
  }

  private setLeader(leader: PeerId | null, term: number): void {
    const previous = this.leader;
    this.leader = leader;
    // Also when the same coordinator is followed in a new term (it won again, e.g. after a heal):
    // a log that shows only changes of person would leave followers at a stale term.
    if (previous !== leader || (leader !== null && term !== this.announcedTerm)) {
      this.announcedTerm = term;
      const nameOf = (id: PeerId | null) =>
        id === null
          ? null
          : id === this.ctx.self.id
            ? this.ctx.self.name
            : (this.membership.get(id)?.name ?? null);
      this.ctx.emit({
        kind: 'coordinator-changed',
        term,
        coordinator: leader,
        previous,
        coordinatorName: nameOf(leader),
        previousName: nameOf(previous),
      });
    }
    if (previous !== leader || this.publishedTerm !== term) this.publishTags();
    for (const l of this.listeners) l(leader, term);
  }

  /** Merges this module's tags into the member's tags (other modules publish theirs too). */
  private publishTags(): void {
    this.tagsPublished = true;
    this.publishedTerm = this.termNo;
    const tags: Tags = { ...this.membership.ownTags };
    if (this.candidate) tags[TAG_PRIORITY] = this.priority;
    else delete tags[TAG_PRIORITY];
    tags[TAG_COORDINATOR] = this.isCoordinator();
    tags[TAG_TERM] = this.termNo;
    this.membership.setTags(tags);
  }

  private enter(phase: Phase): void {
    this.phase = phase;
    this.phaseSince = this.ctx.now();
    this.ctx.wakeAt(this.phaseSince);
  }

  /**
   * Whether we outrank every alive member, as far as their tags tell: none outranks us, and none
   * lacks the term every Election publishes (its tags have not come, or it runs no election).
   * A suspect is left out: it has been silent for suspectAfterMs, and if it is alive after all it
   * hears our claim and bullies with a higher term. Waiting for it instead would add up to a
   * heartbeat interval to every failover in which another peer detected the death first. One
   * whose tags we do not hold may outrank us: met by a sync or a hello before its election set
   * them, its heartbeats wait for our address to be proved (reach.ts), and a coordinator that
   * took it for no candidate claimed at once at every term the others moved to, in a storm of
   * hundreds of elections, with two coordinators in one term at times. Then we ask (`el.elect`)
   * and wait for an answer as when one outranks us: an election in a group with members that
   * run none takes answerTimeoutMs more.
   */
  private outranksAll(): boolean {
    const self = this.ctx.self.id;
    return this.membership
      .live()
      .every((m) => m.state !== 'alive' || (m.tags[TAG_TERM] !== undefined && !this.outranks(m.id, self)));
  }

  /**
   * Whether a live member that may outrank us is not reached by our group sends, within
   * UNREACHED_WAIT_MS_MAX of the election's start. It may if it does, or if its election's tags
   * (every Election publishes TAG_TERM) have not reached us yet: its heartbeats come by its own
   * fan-out, which waits for our address to be proved too.
   */
  private unreached(now: number): boolean {
    const reaches = this.ctx.groupReaches;
    if (!reaches || now - this.phaseSince >= UNREACHED_WAIT_MS_MAX) return false;
    const self = this.ctx.self.id;
    return this.membership
      .live()
      .some(
        (m) =>
          m.state === 'alive' &&
          (m.tags[TAG_TERM] === undefined || this.outranks(m.id, self)) &&
          !reaches(m.id),
      );
  }

  private priorityOf(id: PeerId): number | undefined {
    if (id === this.ctx.self.id) return this.candidate ? this.priority : undefined;
    const tagged = this.membership.get(id)?.tags[TAG_PRIORITY];
    if (isPriority(tagged)) return tagged;
    return this.learned.get(id);
  }

  /** a ranks above b; a peer with no known priority is no candidate and ranks below everyone. */
  private outranks(a: PeerId, b: PeerId): boolean {
    const pa = this.priorityOf(a);
    if (pa === undefined) return false;
    const pb = this.priorityOf(b);
    return pb === undefined || ranksAbove(pa, a, pb, b);
  }

  private learn(id: PeerId, prio: number): void {
    if (this.learned.size >= LEARNED_PRIORITIES_MAX && !this.learned.has(id)) this.learned.clear();
    this.learned.set(id, prio);
  }
}
