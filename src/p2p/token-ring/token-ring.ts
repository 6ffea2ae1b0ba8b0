/**
 * Token ring: mutual exclusion by one circulating token that carries a fencing number.
 *
 * Ring. The live members (membership.live()) that run the ring, plus this peer, ordered by id: the
 * "live ring" below. A peer running the ring says so by a tag on its heartbeats (RING_TAG); the
 * other members of the group (`peer up`, workers, kv and replica holders, chat, one-shot commands)
 * are bystanders. A bystander runs no TokenRing: its node drops every tok.* message as a type it
 * does not know, so it would neither take a pass nor answer a lease or a claim. Counting it in the
 * ring made passes to it time out and be skipped, let a leaving holder hand it the token for good,
 * and put it in quorum sets where it never votes (a ring of 3 among 2 bystanders stopped after
 * one crash). So nothing here is ever addressed to a bystander, and successors, claimer ranks, the
 * loss timeout, quorum sets and the sets we learn all come from the live ring alone. A holder
 * passes the token to its successor in that order; dead and left peers drop out of the order at
 * once, and joiners enter it with their first heartbeat (it carries the tag), so the ring repairs
 * itself as the membership view changes. In an open group anyone can send a heartbeat with the
 * tag, as anyone could join the group before: a stranger counts in the ring no more than it counted
 * as a member (see "Learning a quorum set"); a keyed group stops it.
 *
 * Token. (epoch, gen). `gen` rises at every pass and at every regeneration: it is the fencing
 * token handed to the application. `epoch` rises only when a token is regenerated (or the quorum
 * set is reconfigured); tokens compare by (epoch, gen), so a token from an old epoch is stale
 * whatever its gen. Every peer remembers the newest token it has seen and discards anything older
 * (`token-stale`); two different copies with the same (epoch, gen) are told apart by holder and
 * the second one seen is discarded too.
 *
 * Passing. `tok.pass` is multicast (so every peer sees token activity) and addressed to one
 * successor, identified by id and incarnation (a restarted peer never takes a pass meant for its
 * previous life). The successor acknowledges by unicast (`tok.pack`); the holder resends every
 * passRetryMs and, after passAttempts sends, skips to the next in the live ring with a new gen. A
 * successor that got the token but whose acks were all lost then holds a copy: copies are safe
 * (see leases) and die when they meet the newer one.
 *
 * Leases: what makes a holder safe to act. Holding the token is not enough to enter the critical
 * section (CS): the holder multicasts `tok.lease` and needs acks from a majority of the epoch's
 * quorum set as this peer learned it (made it, or took it by the rules below), never the
 * set the token names: a forged pass may name a set of its taker alone. The lease lasts leaseMs
 * from when the request was sent, is renewed every leaseRenewMs while in the CS, and the holder
 * leaves the CS when it lapses ('lease-lost').
 * An acker backs a holder at once only if that is a renewal, a token of a newer epoch that it
 * confirmed (a newer one it never confirmed may be forged: a pass needs no claim), or a token that
 * descends by passes from the one it backed last: same epoch, same branch, higher gen, and the
 * acker has seen that holder's own pass of it (from its own address). A token gets a new random
 * branch id when it is made and whenever a copy may stay behind (a skip, a take-back), so within a
 * branch a higher gen exists only because every lower holder passed the token on, and a holder
 * exits the CS before it passes. The branch and gen travel in multicasts, so a forger can send a
 * pass that looks like a descendant; the holder's own pass is what a forger cannot send. Any other
 * holder (a copy from a skip, a leftover from a partition) waits until the acker's last lease has
 * expired (leaseMs + leaseGuardMs). Two majorities of one quorum set share an acker, so two leases
 * never overlap and the later one has the higher gen: the resource sees increasing fencing tokens.
 * A holder cut off from a majority cannot renew and stops acting within leaseMs.
 *
 * Regeneration. No token activity (pass, beat, lease request) for lossBaseMs + ring size x
 * lossPerPeerMs means the token is lost (holder crashed, or every copy discarded). The lowest id of
 * the live ring claims first; the next ones follow one claimTimeoutMs apart in rank order, in case
 * the lowest is cut off. A claim `tok.claim {e, base}` for epoch e = (newest epoch known)+1 needs
 * `tok.conf` confirms from a majority of the base epoch's quorum set (Paxos phase 1). A peer
 * confirms at most one claim per epoch (durable `promised`), only when it has seen no live token
 * activity for the loss timeout, and only once its own last lease ack has expired, so every lease
 * of older epochs is over before the new token exists; after confirming it refuses tokens of older
 * epochs. A confirmer that knows a newer epoch than the base says so, and the claimer starts over
 * from it, so claims always chain from the latest epoch. The new token's gen is above every gen the
 * confirmers have seen; its quorum set is the claimer's live ring. The holder reconfigures the same
 * way (claim from the token it holds) when the live ring and the quorum set differ, which is how
 * joiners enter the quorum and dead peers leave it.
 *
 * Learning a quorum set. A peer learns the quorum set of a newer epoch from tokens (pass, beat) and
 * confirms, and its next claim needs a majority of that set. Anyone can send those (a pass needs no
 * claim), and one forged beat naming made-up ids, taken as every peer's quorum set, would refuse
 * every later claim a majority, for good. So a quorum set is learned only if a majority of its ids
 * are in our live ring: a claim from it can then succeed. Not "every id known": a real one is its
 * claimer's live ring, which may name a peer that others never saw (a stranger that reached one
 * peer only), and peers that refuse to learn the newest quorum set are refused by every peer that
 * knows it, for good. The epoch and gen of a message whose set is not learned are still seen
 * (bounded), so its token counts as the newest until the loss timeout; then the claim goes from the
 * last set learned, and every peer that did not learn it confirms. Leases are counted against the
 * learned set too, so it must also hold a majority of our live ring: a forged set of a few members
 * (one, alone) would otherwise be a quorum that misses every acker of the real holder. And the
 * quorum set of an epoch is learned once, from the first message of that epoch that passes these
 * rules (or made by our own claim): a later token of the same epoch naming another set does not
 * change it. Left open: a peer that has not yet learned an epoch's real quorum set (the minority
 * side of a partition, whose live ring has shrunk) can be given a forged one that passes these
 * rules; a keyed group stops that (docs/security.md).
 *
 * Falling back. An epoch within the step (EPOCH_STEP_MAX) of ours is taken as newest from any
 * token message, so one forged datagram can tell a peer of an epoch exactly the step ahead. That
 * peer then refuses every real token as stale, and its claims (one further) are past what the
 * others adopt: left out for good, the token lost at each of its visits. But a real epoch shows
 * itself: its token moves. So a peer whose newest token has shown no activity for the loss timeout,
 * while a token of an older epoch (not below its promise) was in use within it, does not claim: it
 * takes that older token as newest again, and the quorum set it knew before. Safe, because the
 * stale rule is not what keeps turns apart: a peer that confirmed a newer epoch refuses older
 * tokens by its promise, and leases of an older token need a majority that includes such peers.
 *
 * Storage. The durable state (promises, the newest epoch, the gen) goes through `durable.save`,
 * which says whether the write reached the disk. A write that failed (a full disk, EIO) is never
 * acted on: a confirm whose promise was not stored is not sent (the promise is taken back), and a
 * holder whose fencing token is not stored does not take its turn: it passes the token on unused,
 * so the ring keeps moving among the others, and takes its turns again once a write succeeds. The
 * state is rewritten every DURABLE_RETRY_MS while it is not stored, which is how a peer notices by
 * itself that writes work again.
 *
 * Failure modes. A partition: the side with a majority of the quorum set regenerates (after the
 * loss timeout) and carries on; the minority side cannot get leases or confirms and idles, even if
 * it still passes a token around (by design: the majority side may have a holder). After healing,
 * the minority's token is older and is discarded. The first epoch (no quorum set yet) is
 * bootstrapped from the claimer's live ring: peers started on two sides of a partition can each
 * make an epoch 1; their tokens meet when it heals, the lower is discarded, and its holder's lease
 * lapses within leaseMs, but the two rings may overlap in that window: start a ring on a connected
 * network. Leases assume clocks that run at the same rate within leaseGuardMs per lease (monotonic
 * clocks on one LAN do); a stalled process (GC, SIGSTOP) may act past its lease, which is what the
 * fencing token is for: the resource must refuse a token lower than one it has seen.
 */
import type { Envelope, PeerId } from '../wire.js';
import { f, message, messages, type Body } from '../kit/message.js';
import { adoptable } from '../bounds.js';
import type { Protocol, ProtocolContext } from '../protocol.js';
import type { Membership } from '../membership.js';
import type { Address } from '../transport/transport.js';

export interface TokenRingTimings {
  /** An unacknowledged pass is resent after this long: a few LAN round trips. */
  passRetryMs: number;
  /** Sends to one successor before it is skipped for the next in the live ring. */
  passAttempts: number;
  /** How long a holder that does not want the CS keeps the token: sets the idle rotation rate. */
  idleHoldMs: number;
  /** A majority-acked lease lets the holder act for this long after it asked. */
  leaseMs: number;
  /** A holder in the CS asks again this often (several tries per lease at 10 % loss). */
  leaseRenewMs: number;
  /** Ackers wait leaseMs + this before backing an unrelated holder: tick granularity and clock rate error. */
  leaseGuardMs: number;
  /**
   * A holder that wants the CS but gets no majority this long passes the token on (and asks again
   * next time). Must exceed leaseMs + leaseGuardMs: after a skip, the others back the new branch
   * only once their last ack has expired, and a holder that gave up sooner would lose its visit.
   */
  leaseWaitMs: number;
  /** A holder that keeps the token (alone, in a long CS) multicasts a beat this often. */
  beatIntervalMs: number;
  /** Token loss timeout = lossBaseMs + ring size x lossPerPeerMs of silence. */
  lossBaseMs: number;
  lossPerPeerMs: number;
  /** A claim without a majority of confirms by then is abandoned; also the spacing of claimer ranks. */
  claimTimeoutMs: number;
}

/** Quorum set carried in messages: 32 ids x 19 bytes keeps a pass well under the datagram limit. */
export const RING_CONFIG_MAX = 32;
/**
 * Largest step an epoch from another peer may take above the newest we know (bounds.ts). Epochs
 * rise only by regenerations a majority confirmed, at most about one per loss timeout, so a peer
 * that slept through months of churn is still well within it. Further ahead is a forged or corrupt
 * message: adopted, its epoch would supersede every real token, and near the end of the safe range
 * the next claim (+1) would be an epoch every decoder refuses, stopping the ring for good.
 */
export const EPOCH_STEP_MAX = 2 ** 24;
/**
 * Largest step a generation from another peer may take above the highest we know. Gens rise at
 * every pass (a few dozen a second at most), and a restarted peer knows only the gen saved at the
 * last epoch change, so the step covers years of passing; a forger must still send some two
 * million messages to push the generations to COUNTER_MAX, where new tokens would no longer be adopted.
 */
export const GEN_STEP_MAX = 2 ** 32;
/**
 * While the durable state is not stored (a write failed), it is written again at most this often:
 * a full disk fails every write, and trying at every tick would only burn fsyncs; a second is how
 * soon a holder takes its turns again once space returns.
 */
export const DURABLE_RETRY_MS = 1000;
/** A leaving holder multicasts its last pass this many times: it cannot wait for an ack. */
export const LEAVE_PASS_COPIES = 3;
/**
 * Membership tag (on every heartbeat) of a peer that runs the ring: `true`. Members without it
 * (`peer up`, workers, chat...) are not in the ring (see "Ring" in the header).
 */
export const RING_TAG = 'ring';

/** What must survive a crash: promises to claimers and the newest epoch known (Paxos acceptor state). */
export interface TokenRingDurable {
  promised: number;
  epoch: number;
  gen: number;
  /** Quorum set of `epoch`: a restarted claimer must count confirms against the real one. */
  cfg: PeerId[];
}

export interface TokenRingOptions {
  timings: TokenRingTimings;
  /**
   * Loads and saves the durable state (SQLite in the CLI, a map in simulations). `save` returns
   * true once the state is durable and false when the write failed (a full disk, EIO): it never
   * throws for a failed write, and a failure is never taken as stored.
   */
  durable?: { load(): TokenRingDurable | null; save(stored: TokenRingDurable): boolean };
}

export type TokenExitReason = 'released' | 'lease-lost' | 'superseded' | 'stopped';

declare module '../protocol.js' {
  interface PeerEventMap {
    /** This peer now holds the token. */
    'token-received': { epoch: number; generation: number; from: PeerId };
    /** A pass of ours was acknowledged by `to`. */
    'token-passed': { epoch: number; generation: number; to: PeerId };
    /** The successor did not acknowledge; the token goes to the next in the live ring. */
    'token-skipped': { peer: PeerId; generation: number };
    /** This peer entered the critical section with fencing token `generation`. */
    'token-enter': { epoch: number; generation: number };
    'token-exit': { epoch: number; generation: number; reason: TokenExitReason; heldMs: number };
    /**
     * This peer made a new token: the first one (no epoch was known to the majority that confirmed
     * it), one for a lost token, or one for a changed quorum set.
     */
    'token-regenerated': {
      epoch: number;
      generation: number;
      ring: number;
      reason: 'first' | 'lost' | 'reconfigure';
    };
    /** A token older than one already seen was refused or dropped. */
    'token-stale': { epoch: number; generation: number; from: PeerId };
    /** Peers entered or left the live ring (seen at a tick); `ring` is the live ring now. */
    'token-ring-changed': { joined: PeerId[]; departed: PeerId[]; ring: PeerId[] };
  }
}

// The messages, declared once (kit/message.ts). Field order is the order on the wire.
const EPOCH = f.uint().wire('e');
const GENERATION = f.uint().wire('g');
const QUORUM_SET = f.array(f.peerId(), RING_CONFIG_MAX);
/** Branch ids are random 32-bit numbers. */
const BRANCH_MAX = 0xffffffff;
/** A token (epoch, gen, branch, quorum set) handed to `to` in its life `toIncarnation`. */
export const PASS = message('tok.pass', {
  epoch: EPOCH,
  gen: GENERATION,
  branch: f.uint(BRANCH_MAX).wire('br'),
  cfg: QUORUM_SET,
  to: f.peerId(),
  toIncarnation: f.uint().wire('ti'),
});
export const PASS_ACK = message('tok.pack', { epoch: EPOCH, gen: GENERATION });
export const BEAT = message('tok.beat', { epoch: EPOCH, gen: GENERATION, cfg: QUORUM_SET });
export const LEASE = message('tok.lease', {
  epoch: EPOCH,
  gen: GENERATION,
  branch: f.uint(BRANCH_MAX).wire('br'),
  round: f.uint().wire('r'),
});
export const LEASE_ACK = message('tok.lack', { epoch: EPOCH, gen: GENERATION, round: f.uint().wire('r') });
/** A refused lease, with the newest token the refuser knows. */
export const LEASE_NAK = message('tok.lnak', { epoch: EPOCH, gen: GENERATION });
/** A claim of `epoch` from the quorum set of epoch `base`, by the holder of the token `token*` (0: none). */
export const CLAIM = message('tok.claim', {
  epoch: EPOCH,
  base: f.uint().wire('b'),
  tokenEpoch: f.uint().wire('te'),
  tokenGen: f.uint().wire('tg'),
  tokenBranch: f.uint(BRANCH_MAX).wire('tb'),
});
/** The answer to the claim of `epoch`, with what the confirmer knows: promise, newest epoch and set, highest gen. */
export const CONF = message('tok.conf', {
  epoch: EPOCH,
  ok: f.bool(),
  promised: f.uint().wire('p'),
  knownEpoch: f.uint().wire('ke'),
  knownCfg: QUORUM_SET.wire('kc'),
  maxGen: GENERATION,
});
const MESSAGES = messages(PASS, PASS_ACK, BEAT, LEASE, LEASE_ACK, LEASE_NAK, CLAIM, CONF);
type ClaimBody = Body<typeof CLAIM>;

interface Token {
  epoch: number;
  generation: number;
  /**
   * Branch: a random id given when a token is made and whenever a copy may be left behind (a
   * skip, a take-back). Within a branch, tokens form one line: a higher gen exists only because
   * the holder of every lower gen passed it on, and so stopped acting.
   */
  branch: number;
  quorumSet: PeerId[];
}

interface Held extends Token {
  since: number;
  leased: boolean;
}

interface Pending {
  token: Token;
  to: PeerId;
  attempts: number;
  nextAt: number;
  skipped: Set<PeerId>;
}

interface CriticalSection {
  enteredAt: number;
  holdUntil: number | null;
}

interface LeaseRound {
  round: number;
  sentAt: number;
  acks: Set<PeerId>;
}

interface Claim {
  epoch: number;
  base: number;
  quorumSet: PeerId[];
  confirms: Set<PeerId>;
  highestGeneration: number;
  startedAt: number;
  reason: 'lost' | 'reconfigure';
}

export interface TokenRingStatus {
  epoch: number;
  generation: number;
  holder: PeerId | '';
  holding: boolean;
  inCriticalSection: boolean;
  wanting: boolean;
  ring: PeerId[];
}

/** Token (epochA, generationA) vs (epochB, generationB), epoch first. */
function compareTokens(epochA: number, generationA: number, epochB: number, generationB: number): number {
  return epochA !== epochB ? epochA - epochB : generationA - generationB;
}

/** More than half of `quorumSet` voted; members in `gone` (left long enough ago) no longer count. */
function majority(quorumSet: PeerId[], votes: Set<PeerId>, gone: Set<PeerId>): boolean {
  let votesFor = 0;
  let size = 0;
  for (const id of quorumSet) {
    if (gone.has(id)) continue;
    size++;
    if (votes.has(id)) votesFor++;
  }
  return votesFor > size / 2;
}

export class TokenRing implements Protocol {
  readonly messages = MESSAGES.checks;
  private readonly dispatch = MESSAGES.dispatch({
    'tok.pass': (body, from) => this.onPass(from.id, from.address, body),
    'tok.pack': (body, from) => this.onPassAck(from.id, body),
    'tok.beat': (body, from) => this.observe(body.epoch, body.gen, from.id, body.cfg),
    'tok.lease': (body, from) => this.onLease(from.id, from.address, body),
    'tok.lack': (body, from) => this.onLeaseAck(from.id, body),
    'tok.lnak': (body) => this.observe(body.epoch, body.gen, '', null),
    'tok.claim': (body, from) => this.onClaim(from.id, from.address, body),
    'tok.conf': (body, from) => this.onConfirm(from.id, body),
  });
  /** Counters for tests and the command's status line. */
  readonly stats = {
    passes: 0,
    skips: 0,
    stale: 0,
    regenerations: 0,
    leaseRounds: 0,
    critical: 0,
    /** Turns given up because the fencing token could not be stored (a failing disk). */
    unstoredTurns: 0,
  };

  private readonly timings: TokenRingTimings;
  private readonly startIncarnation: number;
  private readonly quietUntil: number;
  /** Newest token seen, and who held it. */
  private newestEpoch = 0;
  private newestGeneration = 0;
  private newestHolder: PeerId | '' = '';
  /** Highest gen seen in any epoch: new tokens start above it. */
  private highestGeneration = 0;
  private promised = 0;
  /** Highest promise any confirmer reported: the next claim must go above it. */
  private promisedSeen = 0;
  /** The newest epoch known and its quorum set. */
  private known: { epoch: number; quorumSet: PeerId[] } = { epoch: 0, quorumSet: [] };
  /** The one before, learned from messages: what falling back returns to (see fallBack()). */
  private knownBefore: { epoch: number; quorumSet: PeerId[] } | null = null;
  private lastActivity: number;
  /**
   * The newest token of an older epoch than our newest (but not below our promise) seen in use,
   * and when: what we fall back to if our newest never shows itself (see "Falling back").
   */
  private older: { epoch: number; generation: number; holder: PeerId | ''; at: number } | null = null;
  /**
   * The holder we backed last, and whether we have since seen it pass that token on (its own
   * `tok.pass`, from its own address: membership refuses impostors). Only then does a higher gen of
   * the same branch mean it left the CS: anyone can forge a pass of a branch seen in a multicast.
   */
  private lastAck: {
    epoch: number;
    generation: number;
    branch: number;
    holder: PeerId;
    at: number;
    passedOn: boolean;
  } | null = null;
  private held: Held | null = null;
  private pending: Pending | null = null;
  private criticalSection: CriticalSection | null = null;
  private lease: LeaseRound | null = null;
  private leaseUntil = -Infinity;
  private leaseAskedAt = -Infinity;
  private round = 0;
  private lastBeat = -Infinity;
  private want = false;
  private wantHoldMs: number | null = null;
  private claim: Claim | null = null;
  private nextClaimAt = -Infinity;
  private nextReconfigAt = -Infinity;
  /** When we first saw each member as left; after leaseMs + leaseGuardMs it leaves the quorum (`gone`). */
  private readonly leftAt = new Map<PeerId, number>();
  private readonly gone = new Set<PeerId>();
  /** The gen in the last state stored, and whether the state in memory differs from it. */
  private storedGeneration = 0;
  private unstored = false;
  private lastSaveAt = -Infinity;
  /** The live ring at the last tick, for 'token-ring-changed'. */
  private lastRing: PeerId[] = [];

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly membership: Membership,
    private readonly opts: TokenRingOptions,
  ) {
    this.timings = opts.timings;
    const now = ctx.now();
    this.startIncarnation = ctx.self.incarnation;
    // After a restart this peer has forgotten whom it backed: it backs nobody until any lease it
    // may have granted in its previous life has expired.
    this.quietUntil = now + this.timings.leaseMs + this.timings.leaseGuardMs;
    this.lastActivity = now;
    // On our first heartbeat already (set before the node starts), so that a restart of ours is
    // never seen without it: the others would see us leave the ring and come back, and remake the
    // quorum set twice. (An observer, the monitor's watch-only instance, sends no heartbeat.)
    membership.setTags({ ...membership.ownTags, [RING_TAG]: true });
    const stored = opts.durable?.load();
    if (stored) {
      this.promised = stored.promised;
      this.newestEpoch = stored.epoch;
      this.newestGeneration = stored.gen;
      this.highestGeneration = stored.gen;
      this.storedGeneration = stored.gen;
      this.known = { epoch: stored.epoch, quorumSet: stored.cfg };
    }
  }

  // ---- application API ------------------------------------------------------------------------

  /** Asks for the critical section; entered when the token comes and a majority grants a lease. */
  request(holdMs: number | null = null): void {
    this.want = true;
    this.wantHoldMs = holdMs;
  }

  /** Leaves the critical section (or withdraws a request); the token moves on at the next tick. */
  release(): void {
    this.want = false;
    if (this.criticalSection) this.exit('released');
  }

  get inCriticalSection(): boolean {
    return this.criticalSection !== null;
  }

  get fencingToken(): number {
    return this.held?.generation ?? 0;
  }

  status(): TokenRingStatus {
    return {
      epoch: this.newestEpoch,
      generation: this.newestGeneration,
      holder: this.newestHolder,
      holding: this.held !== null,
      inCriticalSection: this.criticalSection !== null,
      wanting: this.want,
      ring: this.ring(),
    };
  }

  // ---- protocol --------------------------------------------------------------------------------

  onMessage(env: Envelope, from: Address): void {
    if (this.bounded(env)) this.dispatch(env, from);
  }

  tick(now: number): void {
    this.noteRingChange();
    this.trackLeavers(now);
    if (this.criticalSection) {
      if (now >= this.leaseUntil) this.exit('lease-lost');
      else if (this.criticalSection.holdUntil !== null && now >= this.criticalSection.holdUntil)
        this.release();
    }
    if (this.unstored && now - this.lastSaveAt >= DURABLE_RETRY_MS) this.persist();
    this.tickClaim(now);
    this.tickPending(now);
    if (this.held && !this.claim) this.tickHolder(this.held, now);
    if (this.held && now - this.lastBeat >= this.timings.beatIntervalMs) this.beat(this.held, now);
  }

  /** A graceful stop: leave the CS and hand the token to the successor without waiting for an ack. */
  leave(): void {
    if (this.criticalSection) this.exit('stopped');
    const held = this.held;
    if (!held) return;
    const to = this.successor(new Set());
    if (!to) return;
    const token = this.nextToken(held);
    for (let i = 0; i < LEAVE_PASS_COPIES; i++) this.sendPass(token, to);
    this.held = null;
  }

  /**
   * Whether every epoch and gen `env` would have us adopt is within its step of the newest we know
   * (EPOCH_STEP_MAX, GEN_STEP_MAX); if not, the message is refused and counted. Acks (tok.pack,
   * tok.lack) and a confirm's `epoch` only match our own numbers and adopt nothing.
   */
  private bounded(env: Envelope): boolean {
    const token = PASS.of(env) ?? BEAT.of(env) ?? LEASE.of(env) ?? LEASE_NAK.of(env);
    const claim = CLAIM.of(env);
    const conf = CONF.of(env);
    let epochs: number[];
    let generations: number[];
    if (token) [epochs, generations] = [[token.epoch], [token.gen]];
    else if (claim) [epochs, generations] = [[claim.epoch, claim.tokenEpoch], [claim.tokenGen]];
    else if (conf) [epochs, generations] = [[conf.promised, conf.knownEpoch], [conf.maxGen]];
    else return true;
    const newest = Math.max(this.newestEpoch, this.known.epoch, this.promised, this.promisedSeen);
    if (!epochs.every((x) => adoptable(newest, x, EPOCH_STEP_MAX))) {
      this.ctx.refuse('epoch');
      return false;
    }
    const highest = Math.max(this.newestGeneration, this.highestGeneration);
    if (!generations.every((x) => adoptable(highest, x, GEN_STEP_MAX))) {
      this.ctx.refuse('generation');
      return false;
    }
    return true;
  }

  // ---- passing ---------------------------------------------------------------------------------

  private onPass(sender: PeerId, from: Address, body: Body<typeof PASS>): void {
    this.sawPassOn(sender, body.epoch, body.gen, body.branch);
    if (body.to !== this.ctx.self.id) {
      this.observe(body.epoch, body.gen, body.to, body.cfg);
      return;
    }
    // Always acknowledge: the sender stops resending whether we take the token or not.
    this.ctx.send(from, ...PASS_ACK.out({ epoch: body.epoch, gen: body.gen }));
    if (body.toIncarnation < this.startIncarnation) return; // meant for our previous life
    const order = compareTokens(body.epoch, body.gen, this.newestEpoch, this.newestGeneration);
    if (order === 0 && this.newestHolder === this.ctx.self.id) return; // a resend of what we took
    if (body.epoch < this.promised || order < 0 || (order === 0 && this.newestHolder !== '')) {
      // If our newest was never real, we fall back to this one (and take it if it comes again).
      if (order < 0 && body.epoch >= this.promised) this.seeOlder(body.epoch, body.gen, '');
      this.stale(body.epoch, body.gen, sender);
      return;
    }
    this.see(body.epoch, body.gen, this.ctx.self.id, body.cfg);
    this.newestHolder = this.ctx.self.id; // also when (epoch, generation) was known without its holder
    this.dropHeld('superseded');
    // The token's own set is only its sender's word: it is passed on as learned (see quorum()).
    const quorumSet = this.known.epoch === body.epoch ? this.known.quorumSet : body.cfg;
    this.held = {
      epoch: body.epoch,
      generation: body.gen,
      branch: body.branch,
      quorumSet,
      since: this.ctx.now(),
      leased: false,
    };
    this.leaseAskedAt = -Infinity;
    this.lastBeat = this.ctx.now();
    this.ctx.emit({ kind: 'token-received', epoch: body.epoch, generation: body.gen, from: sender });
  }

  private onPassAck(sender: PeerId, body: Body<typeof PASS_ACK>): void {
    const pending = this.pending;
    if (
      !pending ||
      pending.to !== sender ||
      pending.token.epoch !== body.epoch ||
      pending.token.generation !== body.gen
    )
      return;
    this.pending = null;
    this.stats.passes++;
    this.ctx.emit({ kind: 'token-passed', epoch: body.epoch, generation: body.gen, to: sender });
  }

  private tickPending(now: number): void {
    const pending = this.pending;
    if (!pending || now < pending.nextAt) return;
    // Superseded in flight (a newer token exists): nothing left to deliver.
    if (
      compareTokens(pending.token.epoch, pending.token.generation, this.newestEpoch, this.newestGeneration) <
        0 ||
      pending.token.epoch < this.promised
    ) {
      this.pending = null;
      return;
    }
    const live = this.membership.get(pending.to);
    const gone = !live || live.state === 'dead' || live.state === 'left';
    if (pending.attempts < this.timings.passAttempts && !gone) {
      pending.attempts++;
      pending.nextAt = now + this.timings.passRetryMs;
      this.sendPass(pending.token, pending.to);
      return;
    }
    pending.skipped.add(pending.to);
    this.stats.skips++;
    this.ctx.emit({ kind: 'token-skipped', peer: pending.to, generation: pending.token.generation });
    const next = this.successor(pending.skipped);
    if (!next) {
      // Everyone else skipped: start over with the full ring (a lone survivor keeps resending).
      pending.skipped.clear();
    }
    const to = next ?? this.successor(pending.skipped);
    if (!to) {
      // We are alone: take the token back rather than hold a pass to nobody. A new gen and
      // branch: the last successor may hold the pass we sent.
      this.pending = null;
      const back = { ...pending.token, generation: this.highestGeneration + 1, branch: this.newBranch() };
      this.held = { ...back, since: now, leased: false };
      this.leaseAskedAt = -Infinity;
      this.see(back.epoch, back.generation, this.ctx.self.id, back.quorumSet);
      return;
    }
    // A new gen: the skipped successor may hold the old one, and copies must never tie.
    const token = { ...pending.token, generation: this.highestGeneration + 1, branch: this.newBranch() };
    this.see(token.epoch, token.generation, to, token.quorumSet);
    pending.token = token;
    pending.to = to;
    pending.attempts = 1;
    pending.nextAt = now + this.timings.passRetryMs;
    this.sendPass(token, to);
  }

  private tickHolder(held: Held, now: number): void {
    const due = !this.lease || now - this.lease.sentAt >= this.timings.leaseRenewMs;
    if (this.criticalSection) {
      if (due) this.askLease(held, now);
      return;
    }
    // A fencing token must be stored before the resource sees it: after a restart of the whole
    // ring, new tokens start above the highest stored. Unstored, the turn is given up (the token
    // moves on as if used); the next visit tries again.
    if (this.want && !held.leased && !this.storedUpTo(held.generation, now)) {
      held.leased = true;
      this.stats.unstoredTurns++;
    }
    // One critical section per token: after it (held.leased), the token moves on, so the
    // resource never sees one fencing token twice.
    if (this.want && !held.leased) {
      if (this.leaseAskedAt === -Infinity) this.leaseAskedAt = now;
      if (now - this.leaseAskedAt < this.timings.leaseWaitMs) {
        if (due) this.askLease(held, now);
        return;
      }
    } else if (now - held.since < this.timings.idleHoldMs) return;
    if (this.needsReconfigure(held, now)) {
      this.startClaim(now, 'reconfigure');
      return;
    }
    if (this.pass(held, now)) return;
    // Alone: nobody to pass to. Pass to ourselves: a new gen, so the next CS has a new fencing token.
    this.leaseAskedAt = -Infinity;
    if (held.leased) {
      const token = this.nextToken(held);
      this.see(token.epoch, token.generation, this.ctx.self.id, token.quorumSet);
      this.held = { ...token, since: now, leased: false };
    }
  }

  private pass(held: Held, now: number): boolean {
    const to = this.successor(new Set());
    if (!to) return false; // alone: keep it, beat, and enter at will
    const token = this.nextToken(held);
    this.sawPassOn(this.ctx.self.id, token.epoch, token.generation, token.branch);
    this.held = null;
    this.lease = null;
    this.leaseAskedAt = -Infinity;
    this.see(token.epoch, token.generation, to, token.quorumSet);
    this.pending = { token, to, attempts: 1, nextAt: now + this.timings.passRetryMs, skipped: new Set() };
    this.sendPass(token, to);
    return true;
  }

  /** The token as passed on: the next gen, same epoch, branch and quorum set. */
  private nextToken(held: Held): Token {
    const generation = Math.max(this.highestGeneration, held.generation) + 1;
    return {
      epoch: held.epoch,
      generation,
      branch: held.branch,
      quorumSet: held.quorumSet,
    };
  }

  private sendPass(token: Token, to: PeerId): void {
    const member = this.membership.get(to);
    this.ctx.broadcast(
      ...PASS.out({
        epoch: token.epoch,
        gen: token.generation,
        branch: token.branch,
        cfg: token.quorumSet,
        to,
        toIncarnation: member?.incarnation ?? 0,
      }),
    );
  }

  private beat(held: Held, now: number): void {
    this.lastBeat = now;
    this.lastActivity = now;
    this.ctx.broadcast(...BEAT.out({ epoch: held.epoch, gen: held.generation, cfg: held.quorumSet }));
  }

  // ---- leases and the critical section ---------------------------------------------------------

  private askLease(held: Held, now: number): void {
    const round = ++this.round;
    this.lease = { round, sentAt: now, acks: new Set() };
    this.stats.leaseRounds++;
    this.lastActivity = now;
    if (this.mayAck(held.epoch, held.generation, held.branch, this.ctx.self.id, now))
      this.lease.acks.add(this.ctx.self.id);
    this.ctx.broadcast(...LEASE.out({ epoch: held.epoch, gen: held.generation, branch: held.branch, round }));
    this.checkLease(held, now);
  }

  private onLease(sender: PeerId, from: Address, body: Body<typeof LEASE>): void {
    const now = this.ctx.now();
    const order = compareTokens(body.epoch, body.gen, this.newestEpoch, this.newestGeneration);
    if (
      body.epoch < this.promised ||
      order < 0 ||
      (order === 0 && this.newestHolder !== sender && this.newestHolder !== '')
    ) {
      this.ctx.send(from, ...LEASE_NAK.out({ epoch: this.newestEpoch, gen: this.newestGeneration }));
      return;
    }
    this.observe(body.epoch, body.gen, sender, null);
    if (this.mayAck(body.epoch, body.gen, body.branch, sender, now))
      this.ctx.send(from, ...LEASE_ACK.out({ epoch: body.epoch, gen: body.gen, round: body.round }));
  }

  /** The acker's rule (see the header): back this holder now, or not yet. Records the ack. */
  private mayAck(epoch: number, generation: number, branch: number, holder: PeerId, now: number): boolean {
    if (now < this.quietUntil) return false;
    if (epoch < this.promised) return false;
    const last = this.lastAck;
    // A newer epoch at once only if we confirmed it (or a later one): confirming waited for our
    // last ack to expire. One we never confirmed may be forged (a pass needs no claim), or made by
    // a majority without us: it waits like any unrelated holder.
    const ok =
      !last ||
      (epoch > last.epoch && epoch <= this.promised) ||
      (last.holder === holder && last.epoch === epoch && last.generation === generation) ||
      (last.passedOn && last.epoch === epoch && last.branch === branch && generation > last.generation) ||
      now >= last.at + this.timings.leaseMs + this.timings.leaseGuardMs;
    if (ok) this.lastAck = { epoch, generation, branch, holder, at: now, passedOn: false };
    return ok;
  }

  private onLeaseAck(sender: PeerId, body: Body<typeof LEASE_ACK>): void {
    const held = this.held;
    if (
      !held ||
      !this.lease ||
      body.epoch !== held.epoch ||
      body.gen !== held.generation ||
      body.round !== this.lease.round
    )
      return;
    this.lease.acks.add(sender);
    this.checkLease(held, this.ctx.now());
  }

  private checkLease(held: Held, now: number): void {
    const round = this.lease;
    if (!round || !majority(this.quorum(held.epoch), round.acks, this.gone)) return;
    const until = round.sentAt + this.timings.leaseMs;
    if (until <= this.leaseUntil) return;
    this.leaseUntil = until;
    if (!this.criticalSection && this.want && !held.leased && now < until) this.enter(held, now);
  }

  private enter(held: Held, now: number): void {
    held.leased = true;
    this.criticalSection = {
      enteredAt: now,
      holdUntil: this.wantHoldMs === null ? null : now + this.wantHoldMs,
    };
    this.stats.critical++;
    this.ctx.emit({ kind: 'token-enter', epoch: held.epoch, generation: held.generation });
  }

  private exit(reason: TokenExitReason): void {
    const section = this.criticalSection;
    if (!section) return;
    this.criticalSection = null;
    this.lease = null;
    this.leaseUntil = -Infinity;
    this.leaseAskedAt = -Infinity;
    const epoch = this.held?.epoch ?? this.newestEpoch;
    const generation = this.held?.generation ?? this.newestGeneration;
    if (reason === 'released') this.want = false;
    this.ctx.emit({
      kind: 'token-exit',
      epoch,
      generation,
      reason,
      heldMs: Math.round(this.ctx.now() - section.enteredAt),
    });
  }

  // ---- observing the token ---------------------------------------------------------------------

  /** Records token activity (epoch, generation) held by `holder`; drops our own token if it is now stale. */
  private observe(epoch: number, generation: number, holder: PeerId | '', quorumSet: PeerId[] | null): void {
    if (epoch < this.promised) return;
    const order = compareTokens(epoch, generation, this.newestEpoch, this.newestGeneration);
    if (order < 0) {
      if (holder !== '') this.seeOlder(epoch, generation, holder); // a token in use, not hearsay (tok.lnak)
      return;
    }
    if (order === 0 && holder !== '' && this.newestHolder !== '' && holder !== this.newestHolder) return;
    if (order === 0 && this.newestHolder === '') this.newestHolder = holder;
    this.lastActivity = this.ctx.now();
    if (order > 0) {
      this.see(epoch, generation, holder, quorumSet);
      if (this.held && compareTokens(this.held.epoch, this.held.generation, epoch, generation) < 0) {
        this.stale(this.held.epoch, this.held.generation, this.ctx.self.id);
        this.dropHeld('superseded');
      }
    } else if (quorumSet && epoch > this.known.epoch) this.learn(epoch, quorumSet);
  }

  private see(epoch: number, generation: number, holder: PeerId | '', quorumSet: PeerId[] | null): void {
    const newEpoch = epoch > this.newestEpoch;
    if (compareTokens(epoch, generation, this.newestEpoch, this.newestGeneration) > 0) {
      this.newestEpoch = epoch;
      this.newestGeneration = generation;
      this.newestHolder = holder;
    }
    this.highestGeneration = Math.max(this.highestGeneration, generation);
    this.lastActivity = this.ctx.now();
    if (quorumSet && epoch > this.known.epoch) this.learn(epoch, quorumSet);
    if (newEpoch) this.persist();
  }

  private dropHeld(reason: TokenExitReason): void {
    if (this.criticalSection) this.exit(reason);
    this.held = null;
    this.lease = null;
    if (this.claim?.reason === 'reconfigure') this.claim = null;
  }

  private stale(epoch: number, generation: number, from: PeerId): void {
    this.stats.stale++;
    this.ctx.emit({ kind: 'token-stale', epoch, generation, from });
  }

  // ---- regeneration ----------------------------------------------------------------------------

  private lossTimeoutMs(): number {
    return this.timings.lossBaseMs + this.ring().length * this.timings.lossPerPeerMs;
  }

  private tickClaim(now: number): void {
    if (this.claim) {
      if (now - this.claim.startedAt > this.timings.claimTimeoutMs) {
        this.claim = null;
        this.nextClaimAt = now + this.timings.claimTimeoutMs * (1 + this.ctx.random());
      }
      return;
    }
    if (this.held || this.pending || now < this.nextClaimAt) return;
    const rank = this.ring().indexOf(this.ctx.self.id);
    if (now - this.lastActivity <= this.lossTimeoutMs() + rank * this.timings.claimTimeoutMs) return;
    if (!this.fallBack(now)) this.startClaim(now, 'lost');
  }

  private seeOlder(epoch: number, generation: number, holder: PeerId | ''): void {
    const older = this.older;
    if (!older || compareTokens(epoch, generation, older.epoch, older.generation) >= 0)
      this.older = { epoch, generation, holder, at: this.ctx.now() };
  }

  /**
   * Our newest token has shown no activity for the loss timeout, while a token of an older epoch
   * (not below our promise) was in use within it: our newest was only ever heard of (a forged
   * message can name any epoch within the step), so we take the older one as newest again.
   */
  private fallBack(now: number): boolean {
    const older = this.older;
    this.older = null;
    if (!older || older.epoch < this.promised || now - older.at > this.lossTimeoutMs()) return false;
    if (compareTokens(older.epoch, older.generation, this.newestEpoch, this.newestGeneration) >= 0)
      return false;
    this.newestEpoch = older.epoch;
    this.newestGeneration = older.generation;
    this.newestHolder = older.holder;
    this.lastActivity = older.at;
    // The set learned with our newest is as unreal as it: the one before counts again.
    const before = this.knownBefore;
    if (this.known.epoch > older.epoch && before && before.epoch <= older.epoch) {
      this.known = before;
      this.knownBefore = null;
      this.persist();
    }
    return true;
  }

  private needsReconfigure(held: Held, now: number): boolean {
    if (now < this.nextReconfigAt) return false;
    const want = this.ring().slice(0, RING_CONFIG_MAX);
    const quorumSet = this.quorum(held.epoch);
    return want.length !== quorumSet.length || want.some((id, i) => quorumSet[i] !== id);
  }

  private startClaim(now: number, reason: Claim['reason']): void {
    const base = this.known.epoch;
    const quorumSet =
      base === 0 || this.known.quorumSet.length === 0
        ? this.ring().slice(0, RING_CONFIG_MAX)
        : this.known.quorumSet;
    const epoch = Math.max(this.promised, this.promisedSeen, this.known.epoch, this.newestEpoch) + 1;
    const held = this.held;
    this.claim = {
      epoch,
      base,
      quorumSet,
      confirms: new Set(),
      highestGeneration: this.highestGeneration,
      startedAt: now,
      reason,
    };
    if (reason === 'reconfigure') this.nextReconfigAt = now + this.lossTimeoutMs();
    const body: ClaimBody = {
      epoch,
      base,
      tokenEpoch: held?.epoch ?? 0,
      tokenGen: held?.generation ?? 0,
      tokenBranch: held?.branch ?? 0,
    };
    if (this.mayConfirm(this.ctx.self.id, body, now)) this.claim.confirms.add(this.ctx.self.id);
    this.ctx.broadcast(...CLAIM.out(body));
    this.checkClaim(now);
  }

  private onClaim(sender: PeerId, from: Address, body: ClaimBody): void {
    const ok = this.mayConfirm(sender, body, this.ctx.now());
    this.ctx.send(
      from,
      ...CONF.out({
        epoch: body.epoch,
        ok,
        promised: this.promised,
        knownEpoch: this.known.epoch,
        knownCfg: this.known.quorumSet,
        maxGen: this.highestGeneration,
      }),
    );
  }

  /** The confirmer's rule (see the header). Records the promise when it says yes. */
  private mayConfirm(claimer: PeerId, body: ClaimBody, now: number): boolean {
    if (
      now < this.quietUntil ||
      body.epoch <= this.promised ||
      body.epoch <= this.newestEpoch ||
      this.known.epoch > body.base
    )
      return false;
    const order = compareTokens(body.tokenEpoch, body.tokenGen, this.newestEpoch, this.newestGeneration);
    const claimerHoldsNewest =
      body.tokenEpoch > 0 &&
      (order > 0 || (order === 0 && (this.newestHolder === claimer || this.newestHolder === '')));
    // Liveness only: do not kill a token that is moving. Half the loss timeout, so a claimer whose
    // timer fired is not refused by peers that heard the last activity a little later.
    if (!claimerHoldsNewest && now - this.lastActivity <= this.lossTimeoutMs() / 2) return false;
    if (this.held && claimer !== this.ctx.self.id) return false; // we hold a token: it is not lost
    const last = this.lastAck;
    const leasesOver =
      !last ||
      now >= last.at + this.timings.leaseMs + this.timings.leaseGuardMs ||
      (last.holder === claimer && claimerHoldsNewest) ||
      (claimerHoldsNewest &&
        last.passedOn &&
        last.epoch === body.tokenEpoch &&
        last.branch === body.tokenBranch &&
        body.tokenGen > last.generation);
    if (!leasesOver) return false;
    // Acknowledged means durable: a promise that did not reach the disk could be forgotten in a
    // crash, and two claims of one epoch confirmed. Not stored, it is taken back and refused.
    const before = this.promised;
    this.promised = body.epoch;
    if (this.persist()) return true;
    this.promised = before;
    return false;
  }

  private onConfirm(sender: PeerId, body: Body<typeof CONF>): void {
    const claim = this.claim;
    if (!claim || body.epoch !== claim.epoch) return;
    this.highestGeneration = Math.max(this.highestGeneration, body.maxGen);
    this.promisedSeen = Math.max(this.promisedSeen, body.promised);
    if (body.knownEpoch > claim.base) {
      // A newer epoch exists: the claim is moot; learn it and start over from it if still needed.
      this.promisedSeen = Math.max(this.promisedSeen, body.knownEpoch);
      if (body.knownEpoch > this.known.epoch) this.learn(body.knownEpoch, body.knownCfg);
      this.claim = null;
      this.nextClaimAt = this.ctx.now() + this.timings.passRetryMs;
      return;
    }
    if (!body.ok) return;
    claim.confirms.add(sender);
    claim.highestGeneration = Math.max(claim.highestGeneration, body.maxGen);
    this.checkClaim(this.ctx.now());
  }

  private checkClaim(now: number): void {
    const claim = this.claim;
    if (!claim || !majority(claim.quorumSet, claim.confirms, this.gone)) return;
    this.claim = null;
    const quorumSet = this.ring().slice(0, RING_CONFIG_MAX);
    const generation = Math.max(claim.highestGeneration, this.highestGeneration) + 1;
    if (this.criticalSection) this.exit('superseded');
    // A holder that remakes a token it has already used (reconfiguring on its way to pass it) keeps
    // it marked used, so it moves on: otherwise the holder takes a second turn in a row while its
    // successors wait (fairness, not safety: the new token has a new gen).
    const used = this.held?.leased ?? false;
    this.known = { epoch: claim.epoch, quorumSet };
    this.see(claim.epoch, generation, this.ctx.self.id, quorumSet);
    this.held = {
      epoch: claim.epoch,
      generation,
      branch: this.newBranch(),
      quorumSet,
      since: now,
      leased: used,
    };
    this.lease = null;
    this.leaseAskedAt = -Infinity;
    this.stats.regenerations++;
    this.ctx.emit({
      kind: 'token-regenerated',
      epoch: claim.epoch,
      generation,
      ring: quorumSet.length,
      reason: claim.reason === 'lost' && claim.base === 0 ? 'first' : claim.reason,
    });
    this.beat(this.held, now);
  }

  // ---- ring ------------------------------------------------------------------------------------

  /**
   * A member that left gracefully has stopped for good: once every ack it gave has expired, it no
   * longer counts in the quorum set, so the last peers standing can carry on (and reconfigure)
   * after the others leave one by one. A crashed member is not `left`: it stays in the quorum
   * until a reconfiguration removes it with a majority's consent.
   */
  private trackLeavers(now: number): void {
    for (const member of this.membership.list()) {
      if (member.state !== 'left') {
        this.leftAt.delete(member.id);
        this.gone.delete(member.id);
        continue;
      }
      const at = this.leftAt.get(member.id);
      if (at === undefined) this.leftAt.set(member.id, now);
      else if (now - at >= this.timings.leaseMs + this.timings.leaseGuardMs) this.gone.add(member.id);
    }
    for (const id of this.leftAt.keys()) if (!this.membership.get(id)) this.leftAt.delete(id);
    // A forgotten leaver stays gone while some quorum set may still name it.
    for (const id of this.gone)
      if (!this.membership.get(id) && !this.known.quorumSet.includes(id)) this.gone.delete(id);
  }

  /**
   * Takes `quorumSet` as the one of `epoch` (newer than any learned) if a majority of it is in
   * our live ring, so that a claim from it can get a majority, and it holds a majority of our live
   * ring, so that a forged set of a few members cannot make them a quorum (see "Learning a quorum
   * set" in the header).
   */
  private learn(epoch: number, quorumSet: PeerId[]): void {
    const ring = this.ring();
    if (!majority(quorumSet, new Set(ring), this.gone) || !majority(ring, new Set(quorumSet), this.gone))
      return;
    this.knownBefore = this.known;
    this.known = { epoch, quorumSet };
  }

  /**
   * The quorum set leases of `epoch` are counted against: the one learned for it (or made by us),
   * never the set a token names, which anyone can forge. Empty when none was learned: no lease.
   */
  private quorum(epoch: number): PeerId[] {
    return this.known.epoch === epoch ? this.known.quorumSet : [];
  }

  /** `holder` passed on its token (epoch, generation, branch): if it is the one we backed last, it left its CS. */
  private sawPassOn(holder: PeerId, epoch: number, generation: number, branch: number): void {
    const last = this.lastAck;
    if (
      last &&
      last.holder === holder &&
      last.epoch === epoch &&
      last.branch === branch &&
      generation > last.generation
    )
      last.passedOn = true;
  }

  /** Emits 'token-ring-changed' when the live ring differs from the one at the last tick. */
  private noteRingChange(): void {
    const ring = this.ring();
    const last = this.lastRing;
    if (ring.length === last.length && ring.every((id, i) => last[i] === id)) return;
    this.lastRing = ring;
    const joined = ring.filter((id) => id !== this.ctx.self.id && !last.includes(id));
    const departed = last.filter((id) => !ring.includes(id));
    if (joined.length + departed.length > 0)
      this.ctx.emit({ kind: 'token-ring-changed', joined, departed, ring });
  }

  /** The live members that run the ring (RING_TAG) and this peer, by id. */
  private ring(): PeerId[] {
    const ids = this.membership
      .live()
      .filter((member) => member.tags[RING_TAG] === true)
      .map((member) => member.id);
    ids.push(this.ctx.self.id);
    return ids.sort();
  }

  /** The next peer of the live ring after this one in id order, not in `skip`; null when alone. */
  private successor(skip: Set<PeerId>): PeerId | null {
    const ring = this.ring();
    const i = ring.indexOf(this.ctx.self.id);
    for (let k = 1; k < ring.length; k++) {
      const id = ring[(i + k) % ring.length]!;
      if (!skip.has(id)) return id;
    }
    return null;
  }

  private newBranch(): number {
    return Math.floor(this.ctx.random() * 0x100000000);
  }

  /** Whether `generation` (or a later one) is stored; writes the state if not. */
  private storedUpTo(generation: number, now: number): boolean {
    if (!this.opts.durable) return true;
    if (!this.unstored && this.storedGeneration >= generation) return true;
    // A failed write is not retried at every visit of the token: see DURABLE_RETRY_MS.
    if (this.unstored && now - this.lastSaveAt < DURABLE_RETRY_MS) return false;
    return this.persist() && this.storedGeneration >= generation;
  }

  /** Writes the durable state; false (and retried from tick) when the write failed. */
  private persist(): boolean {
    const durable = this.opts.durable;
    if (!durable) return true;
    const generation = Math.max(this.newestGeneration, this.held?.generation ?? 0);
    this.lastSaveAt = this.ctx.now();
    const ok = durable.save({
      promised: this.promised,
      epoch: this.known.epoch,
      gen: generation,
      cfg: this.known.quorumSet,
    });
    this.unstored = !ok;
    if (ok) this.storedGeneration = generation;
    return ok;
  }
}
