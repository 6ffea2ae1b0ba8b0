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
 * while a token of an older epoch (not below a promise it made to another claimer, nor below a
 * token it held) was in use within it, does not claim: it takes that older token as newest again, and the quorum set it knew
 * before. Safe, because the stale rule is not what keeps turns apart: a peer that confirmed
 * another's newer epoch refuses older tokens by its promise, and leases of an older token need a
 * majority that includes such peers. Its own promises above that older epoch go back down with
 * it: they are those of its own claims from the unreal epoch, which the others refused (one past
 * the step), and a claim that got no majority made no token. Without that, a peer first in the
 * ring's order, which claims before any real token can show itself, would stay out for good.
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
 *
 * Roles. This class is the protocol the node installs; it holds one state machine per role and
 * hands each message to the role it is for:
 *   - the holder (holder.ts): takes the token, keeps it for a turn, passes it on, beats;
 *   - the lease (lease.ts): lease rounds, and the critical section within the lease;
 *   - the voter (voter.ts): acks others' leases and confirms their claims (and this peer's own);
 *   - the claimer (claimer.ts): notices a lost token, claims a new one, reconfigures the quorum set.
 * They share ring-state.ts (the newest token seen, the quorum sets learned, the token held, the
 * durable state) and ring-view.ts (the live ring, successors, leavers). messages.ts declares the
 * wire, token.ts holds the pure rules on tokens, timings.ts the timings.
 */
import type { Envelope, PeerId } from '../wire.js';
import { adoptable } from '../bounds.js';
import type { Body } from '../kit/message.js';
import type { Protocol, ProtocolContext } from '../protocol.js';
import type { Membership } from '../membership.js';
import type { Address } from '../transport/transport.js';
import { Claimer } from './claimer.js';
import { Holder } from './holder.js';
import { Lease, type TokenExitReason } from './lease.js';
import {
  BEAT,
  CLAIM,
  CONF,
  EPOCH_STEP_MAX,
  GEN_STEP_MAX,
  LEASE,
  LEASE_NAK,
  MESSAGES,
  PASS,
} from './messages.js';
import { RingState, type DurableRing, type TokenRingStats } from './ring-state.js';
import { RING_TAG, RingView } from './ring-view.js';
import type { TokenRingTimings } from './timings.js';
import { Voter } from './voter.js';

export interface TokenRingOptions {
  timings: TokenRingTimings;
  /** The durable state (SQLite in the CLI, a map in simulations); see DurableRing. */
  durable?: DurableRing;
}

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

export interface TokenRingStatus {
  epoch: number;
  generation: number;
  holder: PeerId | '';
  holding: boolean;
  inCriticalSection: boolean;
  wanting: boolean;
  ring: PeerId[];
}

export class TokenRing implements Protocol {
  readonly messages = MESSAGES.checks;
  /** Each message to the role it is for. */
  private readonly dispatch = MESSAGES.dispatch({
    'tok.pass': (body, from) => this.onPass(from.id, from.address, body),
    'tok.pack': (body, from) => this.holder.onPassAck(from.id, body),
    'tok.beat': (body, from) => this.observe(body.epoch, body.gen, from.id, body.cfg),
    'tok.lease': (body, from) => this.voter.onLease(from.id, from.address, body),
    'tok.lack': (body, from) => this.lease.onAck(from.id, body),
    'tok.lnak': (body) => this.observe(body.epoch, body.gen, '', null),
    'tok.claim': (body, from) => this.voter.onClaim(from.id, from.address, body),
    'tok.conf': (body, from) => this.claimer.onConfirm(from.id, body),
  });
  /** Counters for tests and the command's status line. */
  readonly stats: TokenRingStats;
  private readonly view: RingView;
  private readonly ring: RingState;
  private readonly voter: Voter;
  private readonly lease: Lease;
  private readonly holder: Holder;
  private readonly claimer: Claimer;

  constructor(
    private readonly ctx: ProtocolContext,
    membership: Membership,
    opts: TokenRingOptions,
  ) {
    const now = ctx.now();
    // On our first heartbeat already (set before the node starts), so that a restart of ours is
    // never seen without it: the others would see us leave the ring and come back, and remake the
    // quorum set twice. (An observer, the monitor's watch-only instance, sends no heartbeat.)
    membership.setTags({ ...membership.ownTags, [RING_TAG]: true });
    const timings = opts.timings;
    this.view = new RingView(ctx, membership, timings);
    this.ring = new RingState(ctx, this.view, opts.durable, now);
    this.stats = this.ring.stats;
    this.voter = new Voter(ctx, this.ring, timings, (...activity) => this.observe(...activity), now);
    this.lease = new Lease(ctx, this.ring, this.voter, timings);
    this.holder = new Holder(ctx, this.ring, this.voter, this.lease, timings);
    this.claimer = new Claimer(ctx, this.ring, this.voter, this.holder, this.lease, timings);
  }

  // ---- application API ------------------------------------------------------------------------

  /** Asks for the critical section; entered when the token comes and a majority grants a lease. */
  request(holdMs: number | null = null): void {
    this.lease.request(holdMs);
  }

  /** Leaves the critical section (or withdraws a request); the token moves on at the next tick. */
  release(): void {
    this.lease.release();
  }

  get inCriticalSection(): boolean {
    return this.lease.inside;
  }

  get fencingToken(): number {
    return this.ring.held?.generation ?? 0;
  }

  status(): TokenRingStatus {
    return {
      epoch: this.ring.newestEpoch,
      generation: this.ring.newestGeneration,
      holder: this.ring.newestHolder,
      holding: this.ring.held !== null,
      inCriticalSection: this.lease.inside,
      wanting: this.lease.wanting,
      ring: this.view.members(),
    };
  }

  // ---- protocol --------------------------------------------------------------------------------

  onMessage(env: Envelope, from: Address): void {
    if (this.bounded(env)) this.dispatch(env, from);
  }

  tick(now: number): void {
    this.view.noteChange();
    this.view.trackLeavers(now, this.ring.known.quorumSet);
    this.lease.tick(now);
    this.ring.retryStore(now);
    this.claimer.tick(now);
    this.holder.tickPending(now);
    const held = this.ring.held;
    // A holder done with its turn passes the token on, unless it first remakes it for a changed ring.
    if (held && !this.claimer.claiming && this.holder.tick(held, now) && !this.claimer.reconfigure(held, now))
      this.holder.moveOn(held, now);
    this.holder.tickBeat(now);
  }

  /** A graceful stop: leave the CS and hand the token to the successor without waiting for an ack. */
  leave(): void {
    this.holder.leave();
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
    const ring = this.ring;
    const newest = Math.max(ring.newestEpoch, ring.known.epoch, ring.promised, ring.promisedSeen);
    if (!epochs.every((x) => adoptable(newest, x, EPOCH_STEP_MAX))) {
      this.ctx.refuse('epoch');
      return false;
    }
    const highest = Math.max(ring.newestGeneration, ring.highestGeneration);
    if (!generations.every((x) => adoptable(highest, x, GEN_STEP_MAX))) {
      this.ctx.refuse('generation');
      return false;
    }
    return true;
  }

  /** Every pass tells the voter its sender left its CS; one addressed to us goes to the holder. */
  private onPass(sender: PeerId, from: Address, body: Body<typeof PASS>): void {
    this.voter.sawPassOn(sender, body.epoch, body.gen, body.branch);
    if (body.to !== this.ctx.self.id) this.observe(body.epoch, body.gen, body.to, body.cfg);
    else if (this.holder.onPass(sender, from, body)) this.claimer.abandonReconfigure();
  }

  /** Records token activity; a token of ours it supersedes is dropped, with any reconfiguration of it. */
  private observe(epoch: number, generation: number, holder: PeerId | '', quorumSet: PeerId[] | null): void {
    if (!this.ring.observe(epoch, generation, holder, quorumSet)) return;
    this.holder.supersede();
    this.claimer.abandonReconfigure();
  }
}
