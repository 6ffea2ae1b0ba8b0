/**
 * Membership: who is in the group, and who has failed.
 *
 * Algorithm. On a LAN every peer hears every other peer's multicast heartbeats directly, so each
 * peer keeps its own view by timers (no dissemination of deaths, which would let one peer with a
 * bad link talk the others into false deaths). Any datagram from a member counts as a heartbeat.
 *   alive --(silent > suspectAfterMs)--> suspect --(silent > deadAfterMs)--> dead
 * The suspicion stage is SWIM's (Das et al. 2002) with Lifeguard's refutation: the suspecting peer
 * multicasts `suspect {target, inc}` and pings the target by unicast (another path than the
 * group). A live target that hears it raises its incarnation and multicasts a heartbeat at once;
 * a heartbeat with a higher incarnation clears the suspicion everywhere.
 * A graceful leave is multicast LEAVE_COPIES times, so one lost datagram does not turn a leave
 * into a 1-second death.
 *
 * A newcomer multicasts `probe`, and members answer at once by unicast, so one-shot commands
 * learn the group in a round trip instead of a heartbeat interval. An observer (peer peers)
 * probes and listens but never heartbeats, so it never appears as a member. It probes again,
 * OBSERVER_PROBE_FIRST_MS after the first and then at doubling gaps up to
 * OBSERVER_PROBE_EVERY_MAX_MS: one lost probe or answer must not hide a member for long (a member
 * on the observer's host with multicast loopback off is heard only through answers until it has
 * heard the observer, node.ts), and a member on its host keeps hearing it while it runs.
 *
 * Who may speak for a member (issue 17; SWIM and memberlist take the same line). In an open group
 * anyone on the LAN can send a datagram claiming any id, so an envelope claiming a known member's
 * id counts as that member's word only when it comes
 *   - from the member's known address (its unicast socket: every datagram it sends, multicast or
 *     not, comes from there); or
 *   - from another port of the same host with a higher incarnation: the member restarted (a new
 *     process binds a new port, and its start raised its incarnation). It is moved there at once,
 *     and its old process's late datagrams, from the old port, are refused from then on; or
 *   - from anywhere, once the member is dead or left here: its known address fell silent, so a
 *     restart on another host, or a process back from a partition, is taken as it is, at
 *     whatever incarnation it brings (memberlist's reclaim of a dead node's name); or
 *   - from the address it was reclaimed from, at no lower an incarnation than it had there. A
 *     member can look dead here without being dead (a partition, a flood at our socket), and
 *     then one datagram from a stranger claiming it would take it over: the member heard at its
 *     old address again wins it back at once, and the stranger is an impostor from then on.
 *     A real restart elsewhere loses nothing by this: its old process is gone and stays silent.
 * Anything else claiming its id (another host while it is alive or suspect, or its own host with
 * no higher incarnation) is an impostor: the whole envelope is dropped and counted
 * (`refused.impostor` in the node's stats),
 * so it can neither move the member, nor raise its incarnation until the real member's datagrams
 * look stale, nor speak for it to any other protocol. A process on the member's own host can
 * still pass for its restart, and one that can send from the member's very address can say
 * anything: only a keyed group stops those (docs/security.md).
 * Statements about a member: its `leave` counts only from its known address; a suspicion is
 * acted on only by its target, which refutes only a suspicion of its current incarnation (only
 * the target ever raises it, so a higher one is forged: refused and counted in
 * `stats.refused.incarnation`, never refuted to one above our own + 1).
 * Incarnations adopted from others are bounded (bounds.ts): one more than INCARNATION_STEP_MAX
 * above what we know of a member, or beyond COUNTER_MAX, is refused and counted the same way.
 * A datagram whose Lamport time the node's clock refused (lamport.ts) still reaches observe()
 * when it passed these checks and comes from a known member: it is that member's word that it is
 * alive, only out of step with our clock. So a forger that splits the group's clocks cannot make
 * members declare each other dead, and then reclaim them, while the clocks catch up.
 *
 * Two detectors, chosen per member (issue 22). A member is heartbeat-watched, as above, while its
 * heartbeats reach us at our interval: by multicast, or by its unicast fan-out (it sends them to
 * the members its multicast does not reach while they are at most HEARTBEAT_FANOUT_MAX, and says
 * so with `u: 1`). Otherwise (it fans out no more, `u: 0`; it beats slower than we do, `iv`; or
 * we are in the SLOW regime, config.ts) it is probe-watched: SWIM probes (swim.ts) and Lifeguard
 * suspicion. A failed probe of ours suspects it at once, `suspect` goes to the group while it has
 * at most SUSPECT_BROADCAST_MEMBERS_MAX live members, and it is declared dead when our own probe
 * failed or SUSPECT_CONFIRMATIONS_MIN distinct members suspect it, AND nothing came from it for
 * suspicionTimeoutMs after that (shorter the more confirmations). A suspicion received is a
 * hint: it counts towards the confirmations once per suspecter and incarnation of the member, and
 * any datagram from the member clears it. Past SUSPECT_BROADCAST_MEMBERS_MAX it also makes us
 * probe the member out of turn (with probability min(1, HINT_PROBERS / N), so a dead member is
 * confirmed by up to about that many peers and a live one is not flooded), and one that hints
 * alone confirmed rides on our probes as our own does (memberlist's gossip); in a smaller group
 * neither (hint(), suspect()). Such a suspect is pinged SUSPECT_PINGS times over its suspicion
 * timeout. A death is never sent to anyone.
 * If the `u: 0` that moves a member to probes is lost, its silence makes us suspect it and ping
 * it; its answer carries `u` again: one needless `suspect` line, never a death.
 *
 * Failure modes: a peer cut off sees everyone dead and is seen dead; when the link heals,
 * heartbeats flow again and both sides mark each other alive. Memory is bounded by membersMax:
 * dead and left entries are evicted first, then newcomers are refused and counted.
 *
 * Local health (Lifeguard, Dadgar et al. 2018; memberlist's "awareness"). Every peer decides on
 * its own who died, so a peer whose own receive path is impaired (a flood fills its socket
 * buffers, its CPU is starved) hears everyone fall silent and would declare healthy members dead.
 * Each peer therefore keeps a health score in [0, HEALTH_SCORE_MAX] and waits (1 + score) times
 * longer before suspecting and before declaring death. Signals, and why these:
 *   - Heartbeat loss spread over members. Multicast heartbeats carry a counter (`h`), so a gap
 *     in one member's counters, seen when it is heard again, is heartbeats lost between it and
 *     us. Each member keeps its last arrivals; the loss is measured over a window of
 *     LOSS_MEMORY_HEARTBEATS intervals (7.5 s on lan, about 10 heartbeats per member: fewer let
 *     ordinary loss pass the test below in most 5-minute runs at 10 %). Only when at
 *     least two members, and a majority of those with enough evidence, each lose at least
 *     HEALTH_LOSS_THRESHOLD of their heartbeats, and so many lost in all would be unlikely at
 *     DESIGN_LOSS (under HEALTH_EVIDENCE_P), is the loss ours; one lossy or silent member is
 *     that member's problem. The score is then the one that keeps the detector's designed margin:
 *     the timeouts are sized so that a live peer must lose about deadAfterMs / heartbeatIntervalMs
 *     heartbeats in a row at DESIGN_LOSS (config.ts); at a loss p the same confidence needs
 *     ln(DESIGN_LOSS) / ln(p) times as many, so the multiplier is that, rounded up (p = 0.45: x3;
 *     0.6: x5; 0.75 and over: x9). HEALTH_LOSS_THRESHOLD = sqrt(DESIGN_LOSS), where it passes 2.
 *   - The same question asked again right before a member is declared dead, over the time it has
 *     been silent: did the others lose heartbeats too? A flood starts at once, and the window
 *     above needs a second or two of gaps to show it, by when a member can already look dead.
 *     Here the silent member counts as one more member we do not hear, and a member that lost
 *     heartbeats and was heard again counts the ones it is overdue now. A silence holds only a
 *     few heartbeats per member, so the same HEALTH_EVIDENCE_P test matters most here, and it
 *     looks back at least MEMBER_EVIDENCE_MIN intervals. Asked only while some
 *     member is still heard (within SILENCE_IS_PARTITION_INTERVALS): a flood lets a share of the
 *     heartbeats through, a partition (or a cable pulled on our side) stops all of them at once.
 *     Without that condition, a member that happened to lose a heartbeat or two to ordinary loss
 *     just before we were cut off made the cut look like a flood and slowed detection up to x9.
 *   - A late tick: if our own tick comes more than a heartbeat interval after the previous one,
 *     our event loop was starved and every member looks silent for that long through no fault
 *     of theirs; the score rises by one per heartbeat interval missed, before the timeouts of that
 *     same tick are checked.
 *   Only datagrams taken as their sender's word count: an impostor's or one refused for its
 *   incarnation never reaches observe(), so a forger's flood of them adds no arrivals and no
 *   gaps; a member's own datagram refused only for its Lamport time counts as the arrival it is.
 *   Not signals here: having to refute a suspicion of ourselves (memberlist counts it). With
 *   every peer detecting on its own, a suspicion of us is as often the suspecter's impairment as
 *   ours: a flooded peer suspects its healthy neighbours, and raising their scores would slow the
 *   healthy peers' detection instead of the impaired one's. Nor suspicions of others that proved
 *   wrong: tried, they come in pairs often enough at 10 % loss to raise the score without cause.
 * The score rises at once and falls by one per HEALTH_RECOVERY_STEP_MS once the evidence is gone
 * (the window calls for a lower score), so a flood that
 * comes and goes keeps it raised. At DESIGN_LOSS and without stalls it stays 0 (test/sim:
 * 5 peers at 10 % loss for 5 minutes, 20 seeds) and detection is unchanged. Each change emits a
 * `health` event. Bound: a member that really died is declared dead by an impaired peer at most
 * (1 + HEALTH_SCORE_MAX) x deadAfterMs after its last heartbeat.
 */
import type { Envelope, PeerId } from './wire.js';
import { f, message, messages, type Body, type Origin } from './kit/message.js';
import { SecondBudget, adoptable, loadable } from './bounds.js';
import { hash64 } from './replication/hash.js';
import type { HealthCause, MemberState, MemberView, Protocol, ProtocolContext } from './protocol.js';
import { parseAddress, type Address, type Via } from './transport/transport.js';
import {
  HEARTBEAT_FANOUT_MAX,
  REGIME_FAST_AT_MEMBERS,
  REGIME_SLOW_ABOVE_MEMBERS,
  SLOW_HEARTBEAT_INTERVALS,
  SLOW_HEARTBEAT_PER_MEMBER_MS,
} from './config.js';
import {
  SUSPECT_CONFIRMATIONS_MIN,
  SWIM_MESSAGES,
  Swim,
  suspicionTimeoutMs,
  type ProbeTarget,
  type SwimMembers,
  type WireUpdate,
} from './swim.js';

export interface MembershipTimings {
  /** How often a member multicasts its heartbeat. Bytes/s per peer scale with 1/this. */
  heartbeatIntervalMs: number;
  /**
   * Silence after which a heartbeat-watched member is pinged by unicast every pingIntervalMs,
   * telling nobody: a heartbeat lost to ordinary loss is then made good by the answer, without a
   * suspicion (an event here, a datagram to the group). At suspectAfterMs or more, no such stage.
   */
  checkAfterMs: number;
  /** Silence after which a member is suspected. Several heartbeats must be lost in a row. */
  suspectAfterMs: number;
  /** Silence after which a member is dead. Crash detection takes deadAfterMs - heartbeat..deadAfterMs. */
  deadAfterMs: number;
  /** How often a suspect is pinged by unicast while suspected. */
  pingIntervalMs: number;
  /** How long dead and left members stay listed before they are forgotten. */
  deadRetentionMs: number;
}

export const TAGS_KEYS_MAX = 16;
export const TAG_KEY_CHARS_MAX = 24;
export const TAG_VALUE_CHARS_MAX = 64;
export const LEAVE_COPIES = 3;
/**
 * Tags ride on a heartbeat when they changed (or our incarnation did) since the last one, and on
 * every this-many-th anyway; the others carry only their version (`gv`). A member that sees a
 * version it does not hold pings us, and the answer carries them. So a heartbeat is about 60
 * bytes smaller most of the time, and a member that missed the change learns it within one RTT.
 */
export const TAGS_EVERY_HEARTBEATS = 10;
/**
 * After a change (of the tags, or of our incarnation) they ride on this many heartbeats in a row:
 * one lost heartbeat must not leave the others on old tags until they ask, a round trip later.
 * Two are 1.5 s on lan; a member that lost both has been silent long enough to be pinged
 * (checkAfterMs), and the answer carries them.
 */
export const TAGS_AFTER_CHANGE_HEARTBEATS = 2;
/**
 * Largest rise of a member's incarnation we take from one envelope. It rises by one per start
 * and per refuted suspicion; we forget a member deadRetentionMs (60 s) after its death, and in
 * that time even 1024 members suspecting it every suspectAfterMs (1 s on lan) make it refute about
 * 2^16 times. So 2^20 is never reached legitimately, and a forger able to send from a member's
 * own address still needs 2^33 datagrams to walk our record of it to the end of the range.
 */
export const INCARNATION_STEP_MAX = 2 ** 20;

export type Tags = Record<string, string | number | boolean>;

/** Largest local health score: timeouts at most (1 + this) times longer (memberlist's default). */
export const HEALTH_SCORE_MAX = 8;
/** The heartbeat loss the profiles' timeouts are designed for (config.ts: lan up to 10 %). */
export const DESIGN_LOSS = 0.1;
/** A member losing this share of its heartbeats or more counts towards "the loss is ours". */
export const HEALTH_LOSS_THRESHOLD = Math.sqrt(DESIGN_LOSS);
/** The window over which heartbeat loss is measured, in heartbeat intervals (7.5 s on lan). */
export const LOSS_MEMORY_HEARTBEATS = 10;
/**
 * Once the evidence is gone, the score falls by one this often: from the top in 16 s. In time, not
 * in windows: a peer that was impaired must not stay slow to detect for longer because its group
 * beats slower.
 */
export const HEALTH_RECOVERY_STEP_MS = 2000;
/** Heartbeats (received + lost) a member needs in a window before its loss counts as evidence. */
const MEMBER_EVIDENCE_MIN = 4;
/**
 * Nobody heard for this many heartbeat intervals: we are cut off (or a flood lets nothing
 * through, which looks the same), so neither a death nor the loss window raises the score. It
 * must be shorter than a death's silence, or a cut, whose members all fell silent about when the
 * dead one did, would not look like one by then: so at most deadAfterMs less half an interval
 * (`partitionSilenceMs`), 925 ms against 1.3 s on lan, 500 ms against 2.5 s on local. Under a
 * flood at 70 % loss with 4 members, all of the 5 heartbeats of 925 ms are lost with probability
 * 17 % (of the 8 of local's 500 ms, 5.8 %), and the flood is taken for a cut for that moment.
 */
const SILENCE_IS_PARTITION_INTERVALS = 2;
/**
 * Both checks blame our receive path only for a loss this unlikely at DESIGN_LOSS: in a pre-death
 * check, e.g. 3 of the 5 heartbeats of the one other member of a group of 3 (0.86 %), 6 of 15
 * from 3 others. In groups of 3 and 4, where a check has only 1 or 2 others to go by, the ratio
 * threshold alone let ordinary loss slow a crash's detection (x3) in 23 of 200 simulated cuts at
 * 10 % loss; 3 with this (the cut-off test of test/sim/membership-health.test.ts, seeds 1-100).
 */
const HEALTH_EVIDENCE_P = 0.01;

export interface LocalHealth {
  /** 0 (healthy) .. HEALTH_SCORE_MAX; suspicion and death timeouts are multiplied by 1 + score. */
  score: number;
  /** Heartbeat loss measured over the members with enough evidence (0..1); null with fewer than 2. */
  heartbeatLoss: number | null;
}

interface Member {
  id: PeerId;
  name: string;
  address: Address;
  incarnation: number;
  state: MemberState;
  lastSeen: number;
  stateSince: number;
  lastPing: number;
  tags: Tags;
  /** The version and incarnation its tags were sent with (null: sent without a version). */
  tagsVersion: number | null;
  tagsIncarnation: number;
  /** When we last pinged it for tags it had and we did not. */
  tagsAskedAt: number;
  /** Last heartbeat counter heard (-1: none yet at this incarnation). */
  hbCounter: number;
  /** Its last heartbeats heard: when, and how many were lost just before each (oldest first). */
  arrivals: Arrival[];
  /** Where it was, and at what incarnation, before it was reclaimed from another address. */
  home: { address: Address; incarnation: number } | null;
  /** How we watch it while we are in FAST (see the header): by its heartbeats, or by probes. */
  watch: 'heartbeat' | 'probe';
  /** The heartbeat interval it last announced (ms), and how its last counted heartbeat came. */
  beatIntervalMs: number;
  beatVia: Via | null;
  /** Who suspects it while it is silent (see Suspicion); null: nobody, or it spoke since. */
  suspicion: Suspicion | null;
  /** The members whose suspicion of it we counted, at that incarnation of its (hint()). */
  accused: { incarnation: number; by: Set<PeerId> } | null;
}

/**
 * A suspicion of a member: since when (the first hint), whether our own probe of it failed (or,
 * heartbeat-watched, it fell silent here), and the distinct members that said they suspect it (at
 * most SUSPECT_CONFIRMATIONS_MIN: more changes nothing). Once confirmed, the member is in state
 * suspect here, and its death timeout runs from then (its stateSince).
 */
interface Suspicion {
  since: number;
  own: boolean;
  by: Set<PeerId>;
  /** Still unconfirmed when the shortest suspicion timeout ran out: our own probe was asked for. */
  checked?: boolean;
}

interface Arrival {
  at: number;
  lost: number;
}

/** Heartbeat loss over the members with enough evidence. */
interface LossMeasure {
  /** Lost / (received + lost) over them; 0 when there are none. */
  loss: number;
  /** Heartbeats lost, and heartbeats expected (received + lost), over them. */
  lost: number;
  expected: number;
  /** How many members had enough evidence, and how many of them lost HEALTH_LOSS_THRESHOLD or more. */
  members: number;
  lossy: number;
}

/**
 * Suspicions of others go to the whole group while it has at most this many live members; beyond,
 * each costs every peer a datagram per suspecter, and probes confirm them without it.
 */
export const SUSPECT_BROADCAST_MEMBERS_MAX = 64;
/** Peers expected to probe a member out of turn when a suspicion of it spreads (see the header). */
export const HINT_PROBERS = 16;
/**
 * Pings a probe-watched suspect gets from each peer that holds the suspicion, spread evenly over
 * its suspicion timeout (suspectPingAt()). To be declared dead by one peer, a live member must
 * lose all of them or their answers (0.19^8, about 2 x 10^-6 at 10 % loss each way) and its
 * refutation. Not more: every peer holding the suspicion pings (in a group of 50, all of them),
 * and at pingIntervalMs (25 ms) a member suspected for answering late, starved of CPU on a
 * crowded host, could get 49 x 40 = 1,960 pings a second and answer later still. Not fewer:
 * where 1,000 peers each hold every suspicion, 4 pings (0.19^4) let the simulator's 10-minute
 * soak at 10 % loss see a false death in its first minute.
 */
export const SUSPECT_PINGS = 8;
/**
 * Accusers of one member remembered per incarnation of it (hint()): past this many, a member heard
 * since is plainly alive to us, and its refutation is on its way.
 */
export const ACCUSERS_MAX = SUSPECT_BROADCAST_MEMBERS_MAX;
/**
 * A member pings a newcomer whose probe it hears (its tags in a round trip) once it has run this
 * long itself: peers that start together meet by their heartbeats and probes' answers alone.
 */
export const NEWCOMER_PING_AFTER_MS = 2000;
/**
 * Newcomer pings a member sends in a second at most. Each probe already draws an answer; without a
 * budget, probes under fresh ids (a stranger's, from spoofed addresses) would each draw a ping too,
 * doubling what they reflect at their victims. Real newcomers come a few at a time.
 */
export const NEWCOMER_PINGS_PER_S = 10;
/** The longest heartbeat interval a member may announce (`iv`), in ms. */
export const HEARTBEAT_INTERVAL_MS_MAX = 60_000;

/** An observer's second probe, after its first, in ms; each later gap doubles (see the header). */
export const OBSERVER_PROBE_FIRST_MS = 250;
/** The longest gap between an observer's probes, in ms. */
export const OBSERVER_PROBE_EVERY_MAX_MS = 4000;

export interface MembershipOptions {
  timings: MembershipTimings;
  /** Listen and probe, never heartbeat: not a member of the group. */
  observer: boolean;
  membersMax: number;
  /** Raises the node's incarnation to at least `min` (persisted by the node); returns it. */
  raiseIncarnation(min: number): number;
  /** An observer at `from` probed (the node keeps multicast loopback on for one on its host). */
  observerProbed(from: Address): void;
  /**
   * The tags of a member that introduces itself by a message other than a heartbeat (join/: a
   * sync or a hello by unicast), so it is added on its own envelope as on a heartbeat.
   */
  introduction?(env: Envelope): { tags: Tags; tagsVersion?: number } | undefined;
  /** The addresses a group send also goes to by unicast (reach.ts); none when absent. */
  fanout?(): readonly Address[];
  /** Sends to the group by multicast only, without the fan-out (nothing when unicast-only). */
  multicast?(type: string, body: unknown): void;
  /** A member someone else says is at `address` (join/: a hello there, paced and capped). */
  hinted?(hint: { id: PeerId; address: Address }): void;
  /**
   * Our next deadline moved later than the one our last tick returned (see `checkedBy`): the node
   * arms its timer for `at` instead, so an idle peer does not wake for a check already answered.
   */
  rescheduled?(at: number): void;
}

/**
 * `counter`: the sender's multicast heartbeat counter (absent on answers to probes and pings).
 * `tags`: present when they changed, on every TAGS_EVERY_HEARTBEATS-th heartbeat and on answers;
 * `tagsVersion`: which tags the sender holds (it grows at every change of them in one process).
 */
export const HB = message('hb', {
  tags: f.optional(f.tags(TAGS_KEYS_MAX, TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX)).wire('g'),
  tagsVersion: f.optional(f.uint()).wire('gv'),
  counter: f.optional(f.uint()).wire('h'),
  /** The sender's heartbeat interval in ms, when it beats slower than FAST (the SLOW regime). */
  interval: f.optional(f.uint(HEARTBEAT_INTERVAL_MS_MAX)).wire('iv'),
  /** 1: its heartbeats also go by unicast to whom its multicast misses; 0: they do not (any more). */
  fanout: f.optional(f.literal(0, 1)).wire('u'),
});
/** `observer`: sent by an observer (it never heartbeats, so this is how a neighbour learns it is there). */
export const PROBE = message('probe', { observer: f.optional(f.literal(1)).wire('o') });
const PING = message('ping', {});
export const SUSPECT = message('suspect', { target: f.peerId(), incarnation: f.uint().wire('inc') });
const LEAVE = message('leave', {});
const MESSAGES = messages(HB, PROBE, PING, SUSPECT, LEAVE);

export class Membership implements Protocol {
  readonly messages = { ...MESSAGES.checks, ...SWIM_MESSAGES.checks };
  /** SWIM probes of the probe-watched members (swim.ts); an observer runs none. */
  readonly swim: Swim;
  readonly onMessage = (env: Envelope, from: Address): void => {
    if (!(env.t in SWIM_MESSAGES.checks)) this.dispatch(env, from);
    else if (!this.opts.observer) this.swim.onMessage(env, from);
  };
  private readonly dispatch = MESSAGES.dispatch({
    // hb carries nothing beyond what observe() took from it.
    hb: () => {},
    probe: (b, from) => {
      if (b.observer === 1) {
        this.observerProbedAt = this.ctx.now();
        this.opts.observerProbed(from.address);
      }
      if (this.opts.observer) return;
      this.answer(from.address);
      // A newcomer: its heartbeats carrying its tags may be lost, and the next comes an interval
      // later; our ping's answer brings them in a round trip. Only from a member that has run
      // for a while (not while a whole group starts at once: that would double the probes' N^2
      // answers), and not in SLOW.
      const now = this.ctx.now();
      const settled = now - this.startedAt >= NEWCOMER_PING_AFTER_MS;
      if (
        b.observer !== 1 &&
        settled &&
        !this.slow &&
        !this.members.has(from.id) &&
        this.newcomerPings.take(now)
      )
        this.ctx.send(from.address, ...PING.out({}));
    },
    ping: (_b, from) => {
      if (!this.opts.observer) this.answer(from.address);
    },
    suspect: (b, from) => this.onSuspect(b, from),
    leave: (_b, from) => this.onLeave(from),
  });
  /** Newcomers refused because membersMax was reached with no dead entry to evict. */
  refused = 0;
  /** The newcomer pings we may still send this second. */
  private readonly newcomerPings = new SecondBudget(NEWCOMER_PINGS_PER_S);
  /** When an observer (the monitor, `peer peers`) last probed: it reads what it overhears. */
  observerProbedAt = -Infinity;
  private readonly members = new Map<PeerId, Member>();
  private tags: Tags = {};
  /** Grows at every setTags; what the last heartbeat carried tags of, and at what incarnation. */
  private tagsVersion = 0;
  private tagsSent = { version: -1, incarnation: -1 };
  /** Heartbeats still to carry the tags since they last changed. */
  private tagsRepeats = 0;
  private changes = 0;
  /** list() and live() as of `changes` (null: to be built again). */
  private views: { list: MemberView[]; live: MemberView[] } | null = null;
  /**
   * Members a tick may have to act on in SLOW, where every live member is watched by probes: those
   * with a suspicion, and those not alive (suspect, or dead and left until they are forgotten).
   * A live member with no suspicion needs nothing of a tick there, and scanning all N at every
   * tick made each peer's tick O(N) in a group of 1,000. Kept in both regimes (a member is added
   * wherever it gets a suspicion or leaves alive), and pruned at every tick of membership.
   */
  private readonly attention = new Set<Member>();
  /** Live members per name (sharesName()); only add() and setState() make a member live or not. */
  private readonly named = new Map<string, number>();
  /**
   * How many members are live, counted where `named` is: the group's size is read for most
   * datagrams and ticks, and live() builds every view again after each change, which made a
   * join's burst of 1,000 new members O(N) per datagram.
   */
  private liveCount = 0;
  /** Live members per host (liveOnHost()), counted where `named` is and when one moves. */
  private readonly hosts = new Map<string, number>();
  /** The deadline our last tick returned: how late a tick is (a stall) is measured against it. */
  private dueAt: number | null = null;
  /** The prober's deadline our last tick took into dueAt. */
  private swimAt = Infinity;
  /**
   * The heartbeat-watched member whose check (or suspicion) set dueAt, if one did. Members beat
   * together on the grid, and our own heartbeat's tick, at the grid instant, comes before theirs
   * arrive: the deadline it computes is the check of a heartbeat a moment from arriving. When that
   * member is heard, the deadline moves later (observe()), and the node re-arms for it: else every
   * interval had a wake of its own, with nothing to do.
   */
  private checkedBy: Member | null = null;
  /** When start() ran (Infinity: not yet). */
  private startedAt = Infinity;
  /** When our next heartbeat is due (heartbeatDue). */
  private nextHeartbeat = -Infinity;
  /** An observer's next probe, and the gap to the one after it. */
  private nextProbe = { at: Infinity, gap: OBSERVER_PROBE_FIRST_MS };
  private heartbeats = 0;
  private score = 0;
  private scoreChangedAt = -Infinity;
  private heartbeatLoss: number | null = null;
  private lossMeasuredAt = -Infinity;
  /** Health points our failed probes added and successful ones have not taken back (Lifeguard). */
  private probePenalty = 0;
  private slow = false;
  /** Whether our last heartbeat went to the fan-out too (see heartbeat()). */
  private fanning = true;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly opts: MembershipOptions,
  ) {
    this.swim = new Swim(ctx, this.swimMembers());
  }

  /** The heartbeat regime we are in (config.ts): FAST, or SLOW with every member probe-watched. */
  get regime(): 'fast' | 'slow' {
    return this.slow ? 'slow' : 'fast';
  }

  incarnationOf(id: PeerId): number | undefined {
    return this.members.get(id)?.incarnation;
  }

  /** The heartbeat interval member `id` announced, in ms (reach.ts sizes its silence window by it). */
  beatIntervalMs(id: PeerId): number | undefined {
    return this.members.get(id)?.beatIntervalMs;
  }

  /** Announces this peer: a probe (members answer at once) and, for a member, a heartbeat. */
  start(): void {
    this.startedAt = this.ctx.now();
    this.probe();
    if (this.opts.observer)
      this.nextProbe = { at: this.ctx.now() + OBSERVER_PROBE_FIRST_MS, gap: OBSERVER_PROBE_FIRST_MS };
    else this.heartbeat();
  }

  /**
   * Tags ride on every heartbeat (Serf's tags): role, priority, load. A change is sent at once;
   * tags set before start() ride on the first heartbeat (a restarted member is then never seen
   * without them).
   */
  setTags(tags: Tags): void {
    this.tags = { ...tags };
    this.tagsVersion++;
    // To the whole fan-out, past its cap too: members watched by probes get no heartbeat else.
    if (!this.opts.observer && this.startedAt !== Infinity) this.heartbeat(true);
  }

  /**
   * Grows whenever what list() shows changes other than lastSeenMs: a member added, forgotten,
   * moved, or changing state, incarnation or tags. A protocol that scans the members can skip the
   * scan while it stays the same.
   */
  get version(): number {
    return this.changes;
  }

  get ownTags(): Tags {
    return this.tags;
  }

  /** The version of our tags (`gv`): it grows at every change of them. */
  get ownTagsVersion(): number {
    return this.tagsVersion;
  }

  /**
   * Whether an envelope may be taken as the word of the peer whose id it carries (see the header),
   * checked before anything else reads it; what it refuses is counted, and dropped by the node.
   */
  admit(env: Envelope, from: Address): boolean {
    const m = this.members.get(env.i);
    if (m ? !adoptable(m.incarnation, env.c, INCARNATION_STEP_MAX) : !loadable(env.c)) {
      this.ctx.refuse('incarnation');
      return false;
    }
    if (!m || speaksFor(m, env.c, from)) return true;
    this.ctx.refuse('impostor');
    return false;
  }

  /**
   * Every admitted datagram from another peer is evidence that it is alive. With `join` false (its
   * Lamport time was refused, node.ts) only for a member we know: a newcomer joins once its
   * datagrams are taken whole.
   */
  observe(
    env: Envelope,
    from: Address,
    { join = true, via = 'group' }: { join?: boolean; via?: Via } = {},
  ): void {
    const m = this.members.get(env.i);
    const hb: Body<typeof HB> | undefined = HB.of(env) ?? this.opts.introduction?.(env);
    if (!m) {
      if (!hb || !join) return;
      // Its heartbeats carry its tags only now and then: ask for them (the answer adds it).
      if (hb.tags) this.add(env, hb.tags, hb.tagsVersion, hb.counter, from);
      else this.ctx.send(from, ...PING.out({}));
      const added = this.members.get(env.i);
      if (added) this.takeBeat(added, hb, via);
      return;
    }
    const moved = m.address !== from;
    // From its own address, one from before a restart or a refutation is stale (a dead or left
    // member reclaimed from another address is taken at the incarnation it brings).
    if (!moved && env.c < m.incarnation) return;
    const now = this.ctx.now();
    if (env.t === 'leave') return; // handled in onMessage, must not revive
    const wasIncarnation = m.incarnation;
    const before = m.state;
    if (!moved && before === 'left' && env.c === m.incarnation) return; // late datagrams after a leave
    m.lastSeen = now;
    m.suspicion = null;
    if (env.c !== wasIncarnation || moved) this.changed();
    m.incarnation = env.c;
    if (hb) {
      this.takeBeat(m, HB.of(env) ?? {}, via);
      this.takeTags(m, hb, env.c, now);
      // Loss is measured over heartbeat-watched members only: the heartbeats of a probe-watched
      // one come now and then (a tag change), and their gaps are no loss. Watched again, it
      // starts afresh.
      if (hb.counter !== undefined && !this.byHeartbeat(m)) {
        m.hbCounter = -1;
        m.arrivals = [];
      } else if (hb.counter !== undefined)
        this.countHeartbeat(m, hb.counter, before === 'dead' || moved, env.c > wasIncarnation, now);
    }
    // Reclaimed from another address: the one it leaves may win it back (see speaksFor).
    if (moved)
      m.home =
        (before === 'dead' || before === 'left') && from !== m.home?.address
          ? { address: m.address, incarnation: wasIncarnation }
          : null;
    if (moved && isLive(m.state)) {
      bump(this.hosts, parseAddress(m.address).host, -1);
      bump(this.hosts, parseAddress(from).host, 1);
    }
    m.address = from;
    if (env.c > wasIncarnation && moved) {
      this.setState(m, 'alive', now);
      this.ctx.emit({ kind: 'restart', member: this.view(m), previousIncarnation: wasIncarnation });
    } else if (before !== 'alive') {
      this.setState(m, 'alive', now);
      // Replaces our suspicion (or death) of it in the updates we spread.
      if (!this.opts.observer) this.swim.updates.add([0, m.id, m.incarnation, m.address]);
      this.ctx.emit({
        kind: 'alive',
        member: this.view(m),
        refuted: before === 'suspect' && env.c > wasIncarnation,
      });
    }
    this.heardChecked(m, now);
  }

  /**
   * How member `m`'s heartbeats reach us, from one of its `hb`s (see the header): a counted one by
   * the group, or by its fan-out (`u: 1`), at no slower an interval than ours makes it
   * heartbeat-watched; a slower interval, or a counted one by unicast without `u: 1`, makes it
   * probe-watched, and so does an answer saying `u: 0` when its heartbeats came by unicast. Before
   * its first heartbeat, an answer's `u` decides.
   */
  private takeBeat(m: Member, hb: Partial<Body<typeof HB>>, via: Via): void {
    const fast = this.opts.timings.heartbeatIntervalMs;
    m.beatIntervalMs = hb.interval ?? fast;
    if (hb.counter !== undefined) {
      m.beatVia = via;
      m.watch = m.beatIntervalMs <= fast && (via === 'group' || hb.fanout === 1) ? 'heartbeat' : 'probe';
    } else if (m.beatIntervalMs > fast) m.watch = 'probe';
    // An answer before any heartbeat (how most members are met): its `u` says whether its
    // heartbeats will come to us, by the group or by its fan-out.
    else if (m.beatVia === null) m.watch = hb.fanout === 1 ? 'heartbeat' : 'probe';
    else if (hb.fanout === 0 && m.beatVia !== 'group') m.watch = 'probe';
  }

  /**
   * Whether `m` is watched by its heartbeats now (else by probes): see the header. In a group of
   * at most HEARTBEAT_FANOUT_MAX + 1 no member's fan-out is past its cap and none is in SLOW, so
   * every member is, whatever it says: such a group detects as a multicast group does, and a
   * stranger's word cannot make a made-up member outlive the heartbeat detector's timeouts.
   */
  private byHeartbeat(m: Member): boolean {
    if (this.opts.observer) return true;
    if (this.slow) return false;
    return m.watch === 'heartbeat' || this.liveCount + 1 <= HEARTBEAT_FANOUT_MAX + 1;
  }

  /**
   * How many of our heartbeat intervals member `m`'s silence is measured in: 1, but for an observer
   * in a group large enough to be in SLOW, the interval it announced (bounded by the SLOW
   * interval): in a smaller one nobody beats slower, and a made-up member claiming to must not
   * outlive the heartbeat timeouts.
   */
  private paceOf(m: Member): number {
    const n = this.liveCount + 1;
    if (!this.opts.observer || n <= REGIME_FAST_AT_MEMBERS) return 1;
    const fast = this.opts.timings.heartbeatIntervalMs;
    return Math.max(1, Math.min(m.beatIntervalMs, this.slowIntervalMs(n)) / fast);
  }

  private onSuspect(b: Body<typeof SUSPECT>, from: Origin): void {
    const { target, incarnation } = b;
    if (target !== this.ctx.self.id) return this.hint(b, from);
    if (this.opts.observer || incarnation < this.ctx.self.incarnation) return;
    // Only we raise our incarnation: a suspicion of a higher one was never ours to refute.
    if (incarnation > this.ctx.self.incarnation) {
      this.ctx.refuse('incarnation');
      return;
    }
    const now = this.opts.raiseIncarnation(incarnation + 1);
    this.ctx.emit({ kind: 'refute', incarnation: now, by: from.id, byName: from.name });
    // To every member, past the fan-out cap too: the refutation must reach the suspecters.
    this.heartbeat(true);
  }

  /**
   * A member suspects another, probe-watched, member: a hint (see the header). Counted only from
   * a live member at its own address, about the incarnation we hold (a lower one was refuted, a
   * higher one we have not heard of), and never about a member watched by heartbeats (whose
   * silence we see ourselves).
   */
  private hint({ target, incarnation }: Body<typeof SUSPECT>, from: Origin): void {
    if (this.opts.observer || from.id === target) return;
    const m = this.members.get(target);
    const by = this.members.get(from.id);
    if (!m || !by || by.address !== from.address || !isLive(by.state) || !isLive(m.state)) return;
    if (incarnation !== m.incarnation || this.byHeartbeat(m)) return;
    // One word per accuser and incarnation: its suspicion reaches us again and again (its own
    // `suspect`, then its updates on a dozen probes over a second or two), also after the member
    // was heard and the suspicion cleared here; counted anew each time, the same three accusers
    // confirmed it again and again, each time a `suspect` here and a ping.
    if (m.accused?.incarnation !== incarnation) m.accused = { incarnation, by: new Set() };
    if (m.accused.by.has(from.id) || m.accused.by.size >= ACCUSERS_MAX) return;
    m.accused.by.add(from.id);
    const now = this.ctx.now();
    const first = !m.suspicion;
    const s = (m.suspicion ??= { since: now, own: false, by: new Set() });
    this.attention.add(m);
    if (s.by.size < SUSPECT_CONFIRMATIONS_MIN) s.by.add(from.id);
    // Out of turn only where suspicions do not go to the group: there it is how a death gets its
    // confirmations. In a smaller group every suspecter's `suspect` reaches every peer, and the
    // group's round-robin probes each member about 5 times a second whatever N. There, 16 probes
    // at once, 48 more through relays, made a member slow to answer (starved of CPU, 50 peers on a
    // 2-core host) look dead to more peers, whose suspicions each brought 16 more probes.
    if (first && !this.suspicionsToGroup() && this.ctx.random() < HINT_PROBERS / (this.liveCount + 1))
      this.swim.probeSoon(m.id);
    this.ctx.wakeAt(now);
  }

  /** Only the member itself, from its own address, can say it leaves. */
  private onLeave(from: Origin): void {
    const m = this.members.get(from.id);
    if (!m || from.address !== m.address || from.incarnation < m.incarnation || m.state === 'left') return;
    this.setState(m, 'left', this.ctx.now());
    this.ctx.emit({ kind: 'left', member: this.view(m) });
  }

  /**
   * Heartbeats, probes, health, and every member's timeouts; returns the earliest of the next
   * ones, so each fires on its deadline (crash detection in [deadAfterMs - heartbeatIntervalMs,
   * deadAfterMs]) with no tick in between.
   */
  tick(now: number): number {
    const t = this.opts.timings;
    this.followRegime(now);
    const beat = !this.opts.observer && now >= this.nextHeartbeat;
    if (beat) this.heartbeat();
    if (now >= this.nextProbe.at) {
      this.probe();
      const gap = Math.min(this.nextProbe.gap * 2, OBSERVER_PROBE_EVERY_MAX_MS);
      this.nextProbe = { at: now + gap, gap };
    }
    this.assessHealth(now, beat);
    const slower = 1 + this.score;
    let probed = this.slow ? this.liveCount : 0;
    for (const m of this.due()) {
      if (this.members.get(m.id) !== m) continue; // forgotten since it needed attention
      const silent = now - m.lastSeen;
      // An observer watches members in SLOW by their heartbeats too, at their own pace.
      const pace = slower * this.paceOf(m);
      if (isLive(m.state) && !this.byHeartbeat(m)) {
        if (!this.slow) probed++;
        this.probeWatchedTick(m, now, slower);
      } else if (m.state === 'alive' && silent >= t.suspectAfterMs * pace) {
        m.suspicion = { since: now, own: true, by: new Set() };
        this.attention.add(m);
        this.suspect(m, now);
      } else if (m.state === 'alive' && silent >= t.checkAfterMs * pace) {
        if (!this.opts.observer && now - m.lastPing >= t.pingIntervalMs) this.ping(m, now);
      } else if (m.state === 'suspect') {
        if (silent >= t.deadAfterMs * pace && !this.ourLossWhileSilent(m, now)) {
          this.setState(m, 'dead', now);
          this.ctx.emit({ kind: 'dead', member: this.view(m), silentMs: silent });
        } else if (!this.opts.observer && now - m.lastPing >= t.pingIntervalMs) {
          this.ping(m, now);
        }
      } else if ((m.state === 'dead' || m.state === 'left') && now - m.stateSince > t.deadRetentionMs) {
        this.members.delete(m.id);
        this.changed();
      }
    }
    const swimAt = this.opts.observer ? Infinity : this.swim.tick(now, probed > 0);
    for (const m of this.attention)
      if (this.members.get(m.id) !== m || (m.state === 'alive' && !m.suspicion)) this.attention.delete(m);
    this.swimAt = Math.max(swimAt, now);
    this.dueAt = Math.min(this.nextDeadline(now), this.swimAt);
    return this.dueAt;
  }

  /** Member `m` was heard: if its check set our deadline, the deadline moves (see `checkedBy`). */
  private heardChecked(m: Member, now: number): void {
    if (m !== this.checkedBy || this.dueAt === null || !this.opts.rescheduled) return;
    const at = Math.min(this.nextDeadline(now), Math.max(this.swimAt, now));
    if (at <= this.dueAt) return;
    this.dueAt = at;
    this.opts.rescheduled(at);
  }

  /** The members a tick looks at: in SLOW only those that need attention (see `attention`). */
  private due(): Iterable<Member> {
    return this.slow ? this.attention : this.members.values();
  }

  /**
   * A probe-watched member: suspected on enough evidence (our own failed probe, or
   * SUSPECT_CONFIRMATIONS_MIN suspecters), pinged while suspected, dead once the suspicion timeout
   * passed with nothing from it; a hint not confirmed within the longest timeout is forgotten.
   */
  private probeWatchedTick(m: Member, now: number, slower: number): void {
    const s = m.suspicion;
    if (!s) return;
    const confirmed = s.own || s.by.size >= SUSPECT_CONFIRMATIONS_MIN;
    if (!confirmed) {
      if (now >= s.since + this.suspicionMs(0) * slower) m.suspicion = null;
      else if (!s.checked && now >= this.checkAt(s, slower)) {
        // Too few suspecters reached us by the time the others may decide (the shortest timeout):
        // they send no hints once they have, so our own probe decides, now rather than on its
        // turn, up to N probe intervals away. A live member answers it: one probe per hint.
        s.checked = true;
        this.swim.probeSoon(m.id);
      }
      return;
    }
    // The timeout runs from the confirmation, not from the first hint: a member probe-watched is
    // rarely heard by a peer that does not probe it, and hints from an earlier, refuted suspicion
    // would leave its refutation no time to arrive.
    if (m.state === 'alive') this.suspect(m, now);
    else if (now >= m.stateSince + this.confirmedTimeoutMs(s, slower)) {
      this.setState(m, 'dead', now);
      this.ctx.emit({ kind: 'dead', member: this.view(m), silentMs: now - m.lastSeen });
    } else if (now >= this.suspectPingAt(m, s, slower)) this.ping(m, now);
  }

  /**
   * When a probe-watched suspect is pinged again: SUSPECT_PINGS times over its suspicion timeout,
   * evenly, not every pingIntervalMs (see the constant).
   */
  private suspectPingAt(m: Member, s: Suspicion, slower: number): number {
    return (
      m.lastPing +
      Math.max(this.opts.timings.pingIntervalMs, this.confirmedTimeoutMs(s, slower) / SUSPECT_PINGS)
    );
  }

  /** How long a confirmed suspicion `s` runs before the death: its confirmations' timeout, x (1 + score). */
  private confirmedTimeoutMs(s: Suspicion, slower: number): number {
    return this.suspicionMs(s.by.size + (s.own ? 1 : 0)) * slower;
  }

  /** When a hinted suspicion still unconfirmed is checked by our own probe (probeWatchedTick). */
  private checkAt(s: Suspicion, slower: number): number {
    return s.since + this.suspicionMs(SUSPECT_CONFIRMATIONS_MIN) * slower;
  }

  /** Lifeguard's suspicion timeout at our group's size (swim.ts). */
  private suspicionMs(confirmations: number): number {
    const t = this.opts.timings;
    return suspicionTimeoutMs(this.liveCount + 1, confirmations, t.deadAfterMs - t.suspectAfterMs);
  }

  /**
   * Marks `m` suspect here, tells others, and pings `m`. A suspicion of our own (a failed probe, a
   * silence we saw) goes to the group while it is small enough, and on our probes. One that others'
   * words alone confirmed goes nowhere in such a group, where their `suspect`s reached everyone:
   * told on, it would count as one more accuser at every peer, and a member three peers suspected
   * by mistake would be confirmed by all the others, then suspected again by each on the echoes
   * after it was heard. In a larger group updates on probes are how a suspicion spreads at all,
   * and it is told on as memberlist does.
   */
  private suspect(m: Member, now: number): void {
    this.setState(m, 'suspect', now);
    const own = m.suspicion?.own !== false;
    const toGroup = this.suspicionsToGroup();
    if (!this.opts.observer && (own || !toGroup)) this.swim.updates.add([1, m.id, m.incarnation]);
    this.ctx.emit({ kind: 'suspect', member: this.view(m), by: 'timeout' });
    if (this.opts.observer) return;
    if (own && toGroup) this.ctx.broadcast(...SUSPECT.out({ target: m.id, incarnation: m.incarnation }));
    this.ping(m, now);
  }

  /** Whether our suspicions go to the whole group (SUSPECT_BROADCAST_MEMBERS_MAX). */
  private suspicionsToGroup(): boolean {
    return this.liveCount + 1 <= SUSPECT_BROADCAST_MEMBERS_MAX;
  }

  /** Enters or leaves the SLOW regime as the group's size crosses its thresholds (config.ts). */
  private followRegime(now: number): void {
    if (this.opts.observer) return;
    const n = this.liveCount + 1;
    if (!this.slow && n > REGIME_SLOW_ABOVE_MEMBERS) this.slow = true;
    else if (this.slow && n <= REGIME_FAST_AT_MEMBERS) {
      this.slow = false;
      // Back in FAST the members watch our heartbeats again: the next one may not wait for the
      // slow schedule it was set on.
      this.nextHeartbeat = Math.min(
        this.nextHeartbeat,
        this.heartbeatDue(now, this.opts.timings.heartbeatIntervalMs),
      );
    }
  }

  /**
   * When our next heartbeat is due: on the grid in FAST, at our own phase of it in SLOW (config.ts).
   * The phase comes from our id, so it stays put while the regime does.
   */
  private heartbeatDue(now: number, intervalMs: number): number {
    const phaseMs = this.slow ? Math.floor((hash64(this.ctx.self.id)[0] / 2 ** 32) * intervalMs) : 0;
    return heartbeatDue(now, this.ctx.wall(), intervalMs, phaseMs);
  }

  /** Our heartbeat interval in the regime we are in (config.ts). */
  private heartbeatEveryMs(): number {
    return this.slow ? this.slowIntervalMs(this.liveCount + 1) : this.opts.timings.heartbeatIntervalMs;
  }

  /** The SLOW heartbeat interval of a group of `n` live members (config.ts). */
  private slowIntervalMs(n: number): number {
    return Math.max(
      SLOW_HEARTBEAT_INTERVALS * this.opts.timings.heartbeatIntervalMs,
      SLOW_HEARTBEAT_PER_MEMBER_MS * n,
    );
  }

  /** What the prober reads of the members, and where it reports (swim.ts). */
  private swimMembers(): SwimMembers {
    const target = (m: Member | undefined): ProbeTarget | undefined =>
      m && isLive(m.state) ? { id: m.id, address: m.address } : undefined;
    return {
      probeWatched: () => {
        const out: ProbeTarget[] = [];
        for (const m of this.members.values())
          if (isLive(m.state) && !this.byHeartbeat(m)) out.push({ id: m.id, address: m.address });
        return out;
      },
      isProbeWatched: (id) => {
        const m = this.members.get(id);
        return !!m && isLive(m.state) && !this.byHeartbeat(m);
      },
      liveMember: (id) => target(this.members.get(id)),
      relayCandidates: () => this.live(),
      score: () => this.score,
      tagsVersion: () => this.tagsVersion,
      heardTagsVersion: (from, version) => {
        const m = this.members.get(from.id);
        if (m?.address === from.address) this.askTagsIfMissed(m, version, from.incarnation, this.ctx.now());
      },
      probed: (id, result) => this.probed(id, result),
      heardUpdates: (from, updates) => this.heardUpdates(from, updates),
      size: () => this.liveCount + 1,
    };
  }

  /**
   * Updates that rode on a live member's probe or ack (swim.ts): hints, never facts (see the
   * header). An alive update of a member not live here makes us say hello to its address (join/),
   * which adds it only on its own answer; a suspicion counts as its sender's, as a `suspect` does.
   */
  private heardUpdates(from: Origin, updates: readonly WireUpdate[]): void {
    const by = this.members.get(from.id);
    if (this.opts.observer || !by || by.address !== from.address || !isLive(by.state)) return;
    for (const u of updates) {
      if (u[0] === 0) {
        const m = this.members.get(u[1]);
        if (u[1] !== this.ctx.self.id && !(m && isLive(m.state)))
          this.opts.hinted?.({ id: u[1], address: u[3] });
      } else this.onSuspect({ target: u[1], incarnation: u[2] }, from);
    }
  }

  /**
   * A probe of ours ended. Acked: a health point a failed probe added is taken back (Lifeguard).
   * Failed: our own evidence against the member; and if some relay did not even say it was alive,
   * our own receive path is as likely at fault as the member, so our health score rises.
   */
  private probed(id: PeerId, { ok, relays, nacks }: { ok: boolean; relays: number; nacks: number }): void {
    const now = this.ctx.now();
    if (ok) {
      if (this.probePenalty > 0) {
        this.probePenalty--;
        this.setScore(this.score - 1, now, 'recovering', this.heartbeatLoss);
      }
      return;
    }
    const m = this.members.get(id);
    if (!m || !isLive(m.state) || this.byHeartbeat(m)) return;
    if (nacks < relays && this.score < HEALTH_SCORE_MAX) {
      this.probePenalty++;
      this.setScore(this.score + 1, now, 'probe', this.heartbeatLoss);
    }
    if (m.suspicion) m.suspicion.own = true;
    else m.suspicion = { since: now, own: true, by: new Set() };
    this.attention.add(m);
    if (m.state === 'alive') this.suspect(m, now);
  }

  /** The earliest time tick() has something to do (the same conditions, solved for the time). */
  private nextDeadline(now: number): number {
    const t = this.opts.timings;
    const slower = 1 + this.score;
    // The loss window is measured once per interval (assessHealth): with each heartbeat of ours.
    let at = Math.min(
      this.nextProbe.at,
      this.opts.observer ? this.lossMeasuredAt + t.heartbeatIntervalMs : this.nextHeartbeat,
    );
    let checked: { by: Member; at: number } | null = null;
    for (const m of this.due()) {
      if (this.members.get(m.id) !== m) continue;
      const pace = slower * this.paceOf(m);
      if (isLive(m.state) && !this.byHeartbeat(m)) {
        const s = m.suspicion;
        if (!s) continue;
        const confirmed = s.own || s.by.size >= SUSPECT_CONFIRMATIONS_MIN;
        if (!confirmed)
          at = Math.min(at, s.checked ? s.since + this.suspicionMs(0) * slower : this.checkAt(s, slower));
        else if (m.state === 'alive') at = now;
        else {
          at = Math.min(at, m.stateSince + this.confirmedTimeoutMs(s, slower));
          at = Math.min(at, this.suspectPingAt(m, s, slower));
        }
      } else if (m.state === 'alive') {
        let due = m.lastSeen + t.suspectAfterMs * pace;
        if (!this.opts.observer && t.checkAfterMs < t.suspectAfterMs)
          due = Math.min(due, Math.max(m.lastSeen + t.checkAfterMs * pace, m.lastPing + t.pingIntervalMs));
        if (due < at) {
          at = due;
          checked = { by: m, at };
        }
      } else if (m.state === 'suspect') {
        at = Math.min(at, m.lastSeen + t.deadAfterMs * pace);
        if (!this.opts.observer) at = Math.min(at, m.lastPing + t.pingIntervalMs);
      } else at = Math.min(at, m.stateSince + t.deadRetentionMs + 1);
    }
    this.checkedBy = checked?.at === at ? checked.by : null;
    return Math.max(at, now);
  }

  /**
   * Multicasts a probe: members answer at once by unicast (and one that did not know us pings
   * us for our tags). A command that looks for the group before acting probes again meanwhile
   * (cli/peer.ts discoverSettled): a lost answer then costs a round trip, not a heartbeat.
   */
  probe(): void {
    this.ctx.broadcast(...PROBE.out(this.opts.observer ? { observer: 1 } : {}));
  }

  leave(): void {
    if (this.opts.observer) return;
    for (let i = 0; i < LEAVE_COPIES; i++) this.ctx.broadcast(...LEAVE.out({}));
  }

  /**
   * Every known member except this peer, ordered by name then id. Built again only after a change
   * (see `version`), so calling it every tick costs nothing; the array and its views are shared
   * between callers: read them, never modify them. Each view's lastSeenMs is read when asked.
   */
  list(): MemberView[] {
    return this.cachedViews().list;
  }

  /** This peer's own health (Lifeguard): how much slower it is to suspect and declare death. */
  get health(): LocalHealth {
    return { score: this.score, heartbeatLoss: this.heartbeatLoss };
  }

  get(id: PeerId): MemberView | undefined {
    const m = this.members.get(id);
    return m && this.view(m);
  }

  /**
   * Where a live (alive or suspect) member is, or undefined: what a frame's check needs, once per
   * datagram of a transfer (node.ts), without the view get() builds (a scan of the names and two
   * objects, a third of a file receiver's time on its datagrams).
   */
  liveAddress(id: PeerId): Address | undefined {
    const m = this.members.get(id);
    return m && (m.state === 'alive' || m.state === 'suspect') ? m.address : undefined;
  }

  /** Whether a live member runs on `host` (an IP address): O(1), for the node's every tick. */
  liveOnHost(host: string): boolean {
    return this.hosts.has(host);
  }

  /** Each live member's id and address, without the views live() builds (a join's pages). */
  *liveAddresses(): Iterable<{ id: PeerId; address: Address }> {
    for (const m of this.members.values()) if (isLive(m.state)) yield { id: m.id, address: m.address };
  }

  /** Members currently alive or suspected (suspects may still be alive: SWIM keeps them in). */
  live(): MemberView[] {
    return this.cachedViews().live;
  }

  private cachedViews(): { list: MemberView[]; live: MemberView[] } {
    if (this.views) return this.views;
    const list = [...this.members.values()]
      .map((m) => this.liveView(m, this.sharesName(m)))
      .sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
    const live = list.filter((m) => m.state === 'alive' || m.state === 'suspect');
    this.views = { list: Object.freeze(list) as MemberView[], live: Object.freeze(live) as MemberView[] };
    return this.views;
  }

  /**
   * Whether another live member (or we) bears member `m`'s name: O(1) from the counts `named` keeps
   * (add(), setState()). get() builds a view for every datagram reach is told of, and a scan of
   * the members there made each delivery O(N) in a group of 1,000.
   */
  private sharesName(m: Member): boolean {
    const ours = !this.opts.observer && this.ctx.self.name === m.name ? 1 : 0;
    return (this.named.get(m.name) ?? 0) + ours > 1;
  }

  /** Counts a member that became live (+1) or stopped being live (-1), under its name and host. */
  private countLive(m: Member, by: 1 | -1): void {
    this.liveCount += by;
    bump(this.named, m.name, by);
    bump(this.hosts, parseAddress(m.address).host, by);
  }

  /** Something list() shows changed: views are built again, and the other protocols get a tick. */
  private changed(): void {
    this.changes++;
    this.views = null;
    this.ctx.wakeAt(this.ctx.now());
  }

  /**
   * Multicasts our heartbeat. It also goes to the fan-out (reach.ts) while we are in FAST and that
   * holds at most HEARTBEAT_FANOUT_MAX members (`u: 1`); past that, or in SLOW, it goes there once
   * more with `u: 0`, so those members move us to their probes, and then by multicast alone. With
   * `full` (new tags, a refutation) it goes to the fan-out whatever its size: rare, and it must
   * reach everyone. Such a heartbeat out of turn carries the counter of the last one in turn: the
   * counters count the heartbeats on the schedule, whose gaps are loss (countHeartbeat), and a
   * burst of them at start (each protocol sets its tags) arrives reordered often enough to look
   * like loss.
   */
  private heartbeat(full = false): void {
    this.nextHeartbeat = this.heartbeatDue(this.ctx.now(), this.heartbeatEveryMs());
    const incarnation = this.ctx.self.incarnation;
    const sent = this.tagsSent;
    if (sent.version !== this.tagsVersion || sent.incarnation !== incarnation) {
      this.tagsSent = { version: this.tagsVersion, incarnation };
      this.tagsRepeats = TAGS_AFTER_CHANGE_HEARTBEATS;
    }
    const withTags = this.tagsRepeats > 0 || (this.heartbeats + 1) % TAGS_EVERY_HEARTBEATS === 0;
    if (this.tagsRepeats > 0) this.tagsRepeats--;
    const fanout = this.opts.fanout?.().length ?? 0;
    const was = this.fanning;
    this.fanning = !this.slow && fanout <= HEARTBEAT_FANOUT_MAX;
    const hb = HB.out({
      ...(withTags ? { tags: this.tags } : {}),
      tagsVersion: this.tagsVersion,
      counter: full ? this.heartbeats : ++this.heartbeats,
      ...this.pace(fanout > 0 || was !== this.fanning),
    });
    if (this.fanning || was || full || !this.opts.multicast) this.ctx.broadcast(...hb);
    else this.opts.multicast(...hb);
  }

  /** How our heartbeats reach others: our interval when in SLOW, and (with `fanout`) whether they fan out. */
  private pace(fanout: boolean): Pick<Body<typeof HB>, 'interval' | 'fanout'> {
    return {
      ...(this.slow ? { interval: this.heartbeatEveryMs() } : {}),
      ...(fanout ? { fanout: this.fanning ? 1 : 0 } : {}),
    };
  }

  /** Answers a probe or a ping: a heartbeat with our tags, and no counter (it is not multicast). */
  private answer(to: Address): void {
    this.ctx.send(to, ...HB.out({ tags: this.tags, tagsVersion: this.tagsVersion, ...this.pace(true) }));
  }

  /**
   * Takes the tags a heartbeat carries; one without them, showing a version (or incarnation) other
   * than the one whose tags we hold, means we missed a change: ping it, at most once per interval,
   * and its answer carries them. An observer asks too (the monitor shows tags).
   */
  private takeTags(m: Member, hb: Body<typeof HB>, incarnation: number, now: number): void {
    if (hb.tags) {
      if (!sameTags(m.tags, hb.tags)) {
        m.tags = hb.tags;
        this.changed();
      }
      m.tagsVersion = hb.tagsVersion ?? null;
      m.tagsIncarnation = incarnation;
      return;
    }
    this.askTagsIfMissed(m, hb.tagsVersion, incarnation, now);
  }

  /** Pings `m` for its tags if it holds another version than we do (at most once per interval). */
  private askTagsIfMissed(m: Member, version: number | undefined, incarnation: number, now: number): void {
    const missed = version !== m.tagsVersion || incarnation !== m.tagsIncarnation;
    if (!missed || now - m.tagsAskedAt < this.opts.timings.heartbeatIntervalMs) return;
    m.tagsAskedAt = now;
    this.ctx.send(m.address, ...PING.out({}));
  }

  /**
   * One multicast heartbeat `h` from `m`: received, and the gap since the last one lost. Counting
   * starts afresh after a death (a gap across a partition says nothing about our receive path)
   * and after a restart (the counter starts again; a refutation raises the incarnation too, but
   * the counter goes on, and the gaps around a refutation are the very evidence wanted here).
   */
  private countHeartbeat(m: Member, h: number, fresh: boolean, restarted: boolean, now: number): void {
    if (fresh || m.hbCounter < 0 || (restarted && h <= m.hbCounter)) {
      m.hbCounter = h;
      return;
    }
    if (h <= m.hbCounter) return; // duplicated or reordered
    // A gap longer than the window tells nothing more about it (and bounds a member's weight).
    m.arrivals.push({ at: now, lost: Math.min(h - m.hbCounter - 1, LOSS_MEMORY_HEARTBEATS) });
    if (m.arrivals.length > 2 * LOSS_MEMORY_HEARTBEATS) m.arrivals.shift();
    m.hbCounter = h;
  }

  /**
   * Heartbeat loss seen since `since` over the live members other than `except`. With `now`, a
   * member that lost heartbeats and came back in that time (so it is neither dead nor cut off
   * from us) also counts the heartbeats it is overdue now: its current silence is likely more of
   * the same loss, which the gap counts would reveal only when it is heard again.
   */
  private lossSince(since: number, except?: Member, now?: number): LossMeasure {
    const interval = this.opts.timings.heartbeatIntervalMs;
    let received = 0;
    let lost = 0;
    let members = 0;
    let lossy = 0;
    for (const m of this.members.values()) {
      if (m === except || !isLive(m.state) || !this.byHeartbeat(m)) continue;
      let r = 0;
      let l = 0;
      for (let i = m.arrivals.length - 1; i >= 0 && m.arrivals[i]!.at > since; i--) {
        r++;
        l += m.arrivals[i]!.lost;
      }
      if (now !== undefined && l > 0)
        l += Math.max(0, Math.floor((now - m.arrivals[m.arrivals.length - 1]!.at) / interval) - 1);
      if (r + l < MEMBER_EVIDENCE_MIN) continue;
      members++;
      received += r;
      lost += l;
      if (l / (r + l) >= HEALTH_LOSS_THRESHOLD) lossy++;
    }
    return {
      loss: members > 0 ? lost / (received + lost) : 0,
      lost,
      expected: received + lost,
      members,
      lossy,
    };
  }

  /**
   * Before `m` is declared dead: were the other members' heartbeats lost too while it was silent?
   * Then the silence is ours, and the score rises to what that loss calls for. This catches the
   * sudden onset of a flood, which the window would show only after a death. A partition does not
   * look like this: the members cut off with `m` lose no heartbeat and then come back; they just
   * fall silent.
   */
  private ourLossWhileSilent(m: Member, now: number): boolean {
    if (!this.heardWithin(this.partitionSilenceMs(), now)) return false;
    // At least as far back as a member heard throughout needs to count as evidence: a silence of
    // deadAfterMs holds 1 or 2 heartbeats per member on lan, and only members that had lost some
    // reached MEMBER_EVIDENCE_MIN by their gaps, so the clean ones went uncounted and ordinary
    // loss looked like ours.
    const since = Math.min(m.lastSeen, now - MEMBER_EVIDENCE_MIN * this.opts.timings.heartbeatIntervalMs);
    const { loss, lost, expected, members, lossy } = this.lossSince(since, m, now);
    // `m` itself is silent: it counts as one more member that we do not hear.
    if (members === 0 || (lossy + 1) * 2 <= members + 1 || loss < HEALTH_LOSS_THRESHOLD) return false;
    // A silence is a few heartbeats per member: with one or two others to go by, ordinary loss
    // alone often reaches the threshold. Only a loss that DESIGN_LOSS rarely explains is ours.
    if (binomialTail(lost, expected, DESIGN_LOSS) >= HEALTH_EVIDENCE_P) return false;
    this.setScore(Math.max(this.score, scoreForLoss(loss)), now, 'heartbeat-loss', loss);
    return now - m.lastSeen <= this.opts.timings.deadAfterMs * (1 + this.score);
  }

  /** A silence of everyone this long is a cut (see SILENCE_IS_PARTITION_INTERVALS). */
  private partitionSilenceMs(): number {
    const t = this.opts.timings;
    return Math.min(
      SILENCE_IS_PARTITION_INTERVALS * t.heartbeatIntervalMs,
      t.deadAfterMs - t.heartbeatIntervalMs / 2,
    );
  }

  /** Whether any live member's heartbeat arrived in the last `ms`. */
  private heardWithin(ms: number, now: number): boolean {
    for (const x of this.members.values()) {
      if (x.state !== 'alive' && x.state !== 'suspect') continue;
      const last = x.arrivals.at(-1);
      if (last && now - last.at <= ms) return true;
    }
    return false;
  }

  /**
   * Updates the health score: at every tick from its lateness, and once per heartbeat interval
   * (when new evidence can have arrived: with a member's own heartbeat, `beat`) from the members'
   * heartbeat loss over the window.
   */
  private assessHealth(now: number, beat: boolean): void {
    const interval = this.opts.timings.heartbeatIntervalMs;
    const late = this.dueAt === null ? 0 : now - this.dueAt;
    if (late > interval)
      this.setScore(this.score + Math.floor(late / interval), now, 'stall', this.heartbeatLoss, late);
    if (this.opts.observer ? now - this.lossMeasuredAt < interval : !beat) return;
    this.lossMeasuredAt = now;
    const window = LOSS_MEMORY_HEARTBEATS * interval;
    const { loss, lost, expected, members, lossy } = this.lossSince(now - window);
    this.heartbeatLoss = members >= 2 ? loss : null;
    // Cut off, the window holds only what came before the cut, fewer heartbeats each interval:
    // chance gaps in them are no evidence about our receive path now.
    const ours =
      members >= 2 &&
      lossy * 2 > members &&
      loss >= HEALTH_LOSS_THRESHOLD &&
      binomialTail(lost, expected, DESIGN_LOSS) < HEALTH_EVIDENCE_P &&
      this.heardWithin(this.partitionSilenceMs(), now);
    const target = ours ? scoreForLoss(loss) : 0;
    if (target > this.score) this.setScore(target, now, 'heartbeat-loss', loss);
    else if (target < this.score && now - this.scoreChangedAt >= HEALTH_RECOVERY_STEP_MS)
      this.setScore(this.score - 1, now, 'recovering', this.heartbeatLoss);
  }

  private setScore(
    score: number,
    now: number,
    cause: HealthCause,
    heartbeatLoss: number | null,
    stalledMs = 0,
  ): void {
    score = Math.min(HEALTH_SCORE_MAX, score);
    if (score === this.score) return;
    const previous = this.score;
    this.score = score;
    this.scoreChangedAt = now;
    this.ctx.emit({
      kind: 'health',
      score,
      previous,
      cause,
      heartbeatLoss,
      ...(cause === 'stall' ? { stalledMs: Math.round(stalledMs) } : {}),
    });
  }

  private ping(m: Member, now: number): void {
    m.lastPing = now;
    this.ctx.send(m.address, ...PING.out({}));
  }

  private add(
    env: Envelope,
    tags: Tags,
    tagsVersion: number | undefined,
    counter: number | undefined,
    from: Address,
  ): void {
    if (this.members.size >= this.opts.membersMax && !this.evictOne()) {
      this.refused++;
      return;
    }
    const now = this.ctx.now();
    const m: Member = {
      id: env.i,
      name: env.n,
      address: from,
      incarnation: env.c,
      state: 'alive',
      lastSeen: now,
      stateSince: now,
      lastPing: -Infinity,
      tags,
      tagsVersion: tagsVersion ?? null,
      tagsIncarnation: env.c,
      tagsAskedAt: -Infinity,
      hbCounter: counter ?? -1,
      arrivals: [],
      home: null,
      watch: 'probe',
      beatIntervalMs: this.opts.timings.heartbeatIntervalMs,
      beatVia: null,
      suspicion: null,
      accused: null,
    };
    this.members.set(m.id, m);
    this.countLive(m, 1);
    this.changed();
    if (!this.opts.observer) this.swim.updates.add([0, m.id, m.incarnation, m.address]);
    this.ctx.emit({ kind: 'join', member: this.view(m) });
    if (this.sharesName(m))
      this.ctx.emit({ kind: 'duplicate-name', name: m.name, ids: this.idsNamed(m.name) });
  }

  /** Forgets the dead or left member that changed state longest ago. */
  private evictOne(): boolean {
    let oldest: Member | undefined;
    for (const m of this.members.values()) {
      if ((m.state === 'dead' || m.state === 'left') && (!oldest || m.stateSince < oldest.stateSince))
        oldest = m;
    }
    if (!oldest) return false;
    this.members.delete(oldest.id);
    this.changed();
    return true;
  }

  private setState(m: Member, state: MemberState, now: number): void {
    if (isLive(m.state) !== isLive(state)) this.countLive(m, isLive(state) ? 1 : -1);
    if (state !== 'alive') this.attention.add(m);
    m.state = state;
    m.stateSince = now;
    this.changed();
  }

  private idsNamed(name: string): PeerId[] {
    const ids = [...this.members.values()]
      .filter((x) => x.name === name && (x.state === 'alive' || x.state === 'suspect'))
      .map((x) => x.id);
    if (!this.opts.observer && this.ctx.self.name === name) ids.push(this.ctx.self.id);
    return ids;
  }

  /** A view as of now, for an event (its lastSeenMs is fixed when it is made). */
  private view(m: Member): MemberView {
    return { ...this.liveView(m, this.sharesName(m)) };
  }

  /** A view whose lastSeenMs is read from the member when asked (list() keeps these). */
  private liveView(m: Member, duplicateName: boolean): MemberView {
    const now = () => this.ctx.now();
    return {
      id: m.id,
      name: m.name,
      address: m.address,
      state: m.state,
      incarnation: m.incarnation,
      get lastSeenMs() {
        return Math.max(0, Math.round(now() - m.lastSeen));
      },
      duplicateName,
      tags: m.tags,
    };
  }
}

/**
 * Whether a datagram from `from` at incarnation `c` is member `m`'s own word: from its address,
 * from a restart on its host (a higher incarnation), from anywhere once it is dead or left, or
 * from the address it was reclaimed from, at no lower an incarnation than it had there.
 */
function speaksFor(m: Member, c: number, from: Address): boolean {
  if (from === m.address || m.state === 'dead' || m.state === 'left') return true;
  if (from === m.home?.address && c >= m.home.incarnation) return true;
  return c > m.incarnation && parseAddress(from).host === parseAddress(m.address).host;
}

function isLive(state: MemberState): boolean {
  return state === 'alive' || state === 'suspect';
}

/** Whether two tag sets hold the same keys and values (tags are flat: a few scalars). */
function sameTags(a: Tags, b: Tags): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => a[k] === b[k]);
}

/** P(X >= k) for X ~ Binomial(n, p): how likely losing k or more of n heartbeats is at loss p. */
export function binomialTail(k: number, n: number, p: number): number {
  if (k <= 0) return 1;
  if (k > n) return 0;
  // Terms from X = k up, each from the previous one; they shrink fast once past n * p.
  let term = Math.exp(lnChoose(n, k) + k * Math.log(p) + (n - k) * Math.log1p(-p));
  let sum = 0;
  for (let x = k; x <= n && term > sum * 1e-12; x++) {
    sum += term;
    term *= ((n - x) / (x + 1)) * (p / (1 - p));
  }
  return Math.min(1, sum);
}

function lnChoose(n: number, k: number): number {
  let r = 0;
  for (let i = 1; i <= k; i++) r += Math.log((n - k + i) / i);
  return r;
}

/**
 * The score that keeps the detector's designed margin at heartbeat loss `p`: the timeouts need
 * ln(DESIGN_LOSS) / ln(p) times as many heartbeats lost in a row for the same confidence.
 */
export function scoreForLoss(p: number): number {
  if (p <= DESIGN_LOSS) return 0;
  if (p >= 1) return HEALTH_SCORE_MAX;
  return Math.max(0, Math.min(HEALTH_SCORE_MAX, Math.ceil(Math.log(DESIGN_LOSS) / Math.log(p)) - 1));
}

/**
 * When the heartbeat after one sent at `now` is due: about an interval later, on the wall clock's
 * grid of whole intervals since the epoch shifted by `phaseMs` (every 750 ms on lan),
 * more than half an interval and at most one and a half after `now`. Members with clocks in step
 * (NTP on a LAN, or one host's peers) and the same phase then beat at the same instants, and each
 * receives the others' heartbeats in one wake instead of one wake each: a wake, not the work it
 * does, is most of an idle peer's CPU. Only the phase moves: gaps stay one interval, so timeouts
 * and detection times are unchanged.
 */
export function heartbeatDue(now: number, wall: number, intervalMs: number, phaseMs = 0): number {
  const shifted = wall - phaseMs;
  let at = Math.round((shifted + intervalMs) / intervalMs) * intervalMs;
  if (at - shifted <= intervalMs / 2) at += intervalMs;
  return now + (at - shifted);
}

/** Adds `by` to `key`'s count, forgetting it at 0. */
function bump(counts: Map<string, number>, key: string, by: number): void {
  const n = (counts.get(key) ?? 0) + by;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
