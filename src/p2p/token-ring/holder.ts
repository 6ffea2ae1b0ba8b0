/**
 * The holder: taking the token, keeping it for one turn, and passing it on (see "Passing" in
 * token-ring.ts). A pass is multicast, addressed to the successor by id and incarnation, and resent
 * every passRetryMs until the successor acks it; after passAttempts sends the successor is skipped
 * with a new gen and branch. A holder that keeps the token multicasts a beat every beatIntervalMs,
 * so the others know it is not lost. Its critical section is the lease's (lease.ts).
 */
import type { PeerId } from '../wire.js';
import type { Body } from '../kit/message.js';
import type { ProtocolContext } from '../protocol.js';
import type { Address } from '../transport/transport.js';
import type { Lease } from './lease.js';
import { BEAT, PASS, PASS_ACK } from './messages.js';
import type { RingState } from './ring-state.js';
import type { TokenRingTimings } from './timings.js';
import { compareTokens, newBranch, type Held, type Token } from './token.js';
import type { Voter } from './voter.js';

/** A leaving holder multicasts its last pass this many times: it cannot wait for an ack. */
export const LEAVE_PASS_COPIES = 3;

/** A pass of ours not yet acknowledged. */
interface Pending {
  token: Token;
  to: PeerId;
  attempts: number;
  nextAt: number;
  skipped: Set<PeerId>;
}

export class Holder {
  private readonly startIncarnation: number;
  private pending: Pending | null = null;
  private lastBeat = -Infinity;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly ring: RingState,
    private readonly voter: Voter,
    private readonly lease: Lease,
    private readonly timings: TokenRingTimings,
  ) {
    this.startIncarnation = ctx.self.incarnation;
  }

  /** Whether a pass of ours is waiting for its ack. */
  get passing(): boolean {
    return this.pending !== null;
  }

  /** A pass addressed to us: true when we took the token (and dropped any we held). */
  onPass(sender: PeerId, from: Address, body: Body<typeof PASS>): boolean {
    const ring = this.ring;
    const self = this.ctx.self.id;
    // Always acknowledge: the sender stops resending whether we take the token or not.
    this.ctx.send(from, ...PASS_ACK.out({ epoch: body.epoch, gen: body.gen }));
    if (body.toIncarnation < this.startIncarnation) return false; // meant for our previous life
    const order = compareTokens(body.epoch, body.gen, ring.newestEpoch, ring.newestGeneration);
    if (order === 0 && ring.newestHolder === self) return false; // a resend of what we took
    if (body.epoch < ring.promised || order < 0 || (order === 0 && ring.newestHolder !== '')) {
      // If our newest was never real, we fall back to this one (and take it if it comes again).
      if (order < 0 && body.epoch >= ring.promisedFirm) ring.seeOlder(body.epoch, body.gen, '');
      ring.stale(body.epoch, body.gen, sender);
      return false;
    }
    ring.see(body.epoch, body.gen, self, body.cfg);
    ring.newestHolder = self; // also when (epoch, generation) was known without its holder
    this.drop();
    // The token's own set is only its sender's word: it is passed on as learned (see RingState.quorum).
    const quorumSet = ring.known.epoch === body.epoch ? ring.known.quorumSet : body.cfg;
    ring.held = {
      epoch: body.epoch,
      generation: body.gen,
      branch: body.branch,
      quorumSet,
      since: this.ctx.now(),
      leased: false,
    };
    this.lease.restartWait();
    this.lastBeat = this.ctx.now();
    this.ctx.emit({ kind: 'token-received', epoch: body.epoch, generation: body.gen, from: sender });
    return true;
  }

  onPassAck(sender: PeerId, body: Body<typeof PASS_ACK>): void {
    const pending = this.pending;
    if (
      !pending ||
      pending.to !== sender ||
      pending.token.epoch !== body.epoch ||
      pending.token.generation !== body.gen
    )
      return;
    this.pending = null;
    this.ring.stats.passes++;
    this.ctx.emit({ kind: 'token-passed', epoch: body.epoch, generation: body.gen, to: sender });
  }

  /** Resends an unacknowledged pass, or skips its successor for the next one. */
  tickPending(now: number): void {
    const pending = this.pending;
    const ring = this.ring;
    if (!pending || now < pending.nextAt) return;
    // Superseded in flight (a newer token exists): nothing left to deliver.
    if (
      compareTokens(pending.token.epoch, pending.token.generation, ring.newestEpoch, ring.newestGeneration) <
        0 ||
      pending.token.epoch < ring.promised
    ) {
      this.pending = null;
      return;
    }
    if (pending.attempts < this.timings.passAttempts && !ring.view.unreachable(pending.to)) {
      pending.attempts++;
      pending.nextAt = now + this.timings.passRetryMs;
      this.sendPass(pending.token, pending.to);
      return;
    }
    pending.skipped.add(pending.to);
    ring.stats.skips++;
    this.ctx.emit({ kind: 'token-skipped', peer: pending.to, generation: pending.token.generation });
    const next = ring.view.successor(pending.skipped);
    if (!next) {
      // Everyone else skipped: start over with the full ring (a lone survivor keeps resending).
      pending.skipped.clear();
    }
    const to = next ?? ring.view.successor(pending.skipped);
    if (!to) {
      // We are alone: take the token back rather than hold a pass to nobody. A new gen and
      // branch: the last successor may hold the pass we sent.
      this.pending = null;
      const back = {
        ...pending.token,
        generation: ring.highestGeneration + 1,
        branch: newBranch(this.ctx),
      };
      ring.held = { ...back, since: now, leased: false };
      this.lease.restartWait();
      ring.see(back.epoch, back.generation, this.ctx.self.id, back.quorumSet);
      return;
    }
    // A new gen: the skipped successor may hold the old one, and copies must never tie.
    const token = { ...pending.token, generation: ring.highestGeneration + 1, branch: newBranch(this.ctx) };
    ring.see(token.epoch, token.generation, to, token.quorumSet);
    pending.token = token;
    pending.to = to;
    pending.attempts = 1;
    pending.nextAt = now + this.timings.passRetryMs;
    this.sendPass(token, to);
  }

  /**
   * One tick of holding `held`: renews the lease in the CS, asks for one while the CS is wanted, or
   * keeps the token idle for idleHoldMs. True when the turn is over and the token should move on.
   */
  tick(held: Held, now: number): boolean {
    const lease = this.lease;
    if (lease.inside) {
      lease.renew(held, now);
      return false;
    }
    // A fencing token must be stored before the resource sees it: after a restart of the whole
    // ring, new tokens start above the highest stored. Unstored, the turn is given up (the token
    // moves on as if used); the next visit tries again.
    if (lease.wanting && !held.leased && !this.ring.storedUpTo(held.generation, now)) {
      held.leased = true;
      this.ring.stats.unstoredTurns++;
    }
    // One critical section per token: after it (held.leased), the token moves on, so the
    // resource never sees one fencing token twice.
    if (lease.wanting && !held.leased) {
      if (lease.waiting(now)) {
        lease.renew(held, now);
        return false;
      }
    } else if (now - held.since < this.timings.idleHoldMs) return false;
    return true;
  }

  /** Passes the token on at the end of a turn; alone, passes it to ourselves (a new gen). */
  moveOn(held: Held, now: number): void {
    if (this.pass(held, now)) return;
    // Alone: nobody to pass to. Pass to ourselves: a new gen, so the next CS has a new fencing token.
    this.lease.restartWait();
    if (held.leased) {
      const token = this.nextToken(held);
      this.ring.see(token.epoch, token.generation, this.ctx.self.id, token.quorumSet);
      this.ring.held = { ...token, since: now, leased: false };
    }
  }

  /** Beats while we keep the token, every beatIntervalMs. */
  tickBeat(now: number): void {
    const held = this.ring.held;
    if (held && now - this.lastBeat >= this.timings.beatIntervalMs) this.beat(held, now);
  }

  beat(held: Held, now: number): void {
    this.lastBeat = now;
    this.ring.lastActivity = now;
    this.ctx.broadcast(...BEAT.out({ epoch: held.epoch, gen: held.generation, cfg: held.quorumSet }));
  }

  /** Holds a token this peer made (claimer.ts), with a new lease to ask; `used`: its turn is had. */
  hold(token: Token, now: number, used: boolean): Held {
    const held = { ...token, since: now, leased: used };
    this.ring.held = held;
    this.lease.reset();
    return held;
  }

  /** A newer token exists: ours is stale and dropped. */
  supersede(): void {
    const held = this.ring.held;
    if (held) this.ring.stale(held.epoch, held.generation, this.ctx.self.id);
    this.drop();
  }

  /** A graceful stop: leave the CS and hand the token to the successor without waiting for an ack. */
  leave(): void {
    this.lease.exit('stopped');
    const held = this.ring.held;
    if (!held) return;
    const to = this.ring.view.successor(new Set());
    if (!to) return;
    const token = this.nextToken(held);
    for (let i = 0; i < LEAVE_PASS_COPIES; i++) this.sendPass(token, to);
    this.ring.held = null;
  }

  /** Lets go of the token we hold (a newer one exists), leaving its CS. */
  private drop(): void {
    this.lease.exit('superseded');
    this.ring.held = null;
    this.lease.dropRound();
  }

  private pass(held: Held, now: number): boolean {
    const to = this.ring.view.successor(new Set());
    if (!to) return false; // alone: keep it, beat, and enter at will
    const token = this.nextToken(held);
    this.voter.sawPassOn(this.ctx.self.id, token.epoch, token.generation, token.branch);
    this.ring.held = null;
    this.lease.reset();
    this.ring.see(token.epoch, token.generation, to, token.quorumSet);
    this.pending = { token, to, attempts: 1, nextAt: now + this.timings.passRetryMs, skipped: new Set() };
    this.sendPass(token, to);
    return true;
  }

  /** The token as passed on: the next gen, same epoch, branch and quorum set. */
  private nextToken(held: Held): Token {
    const generation = Math.max(this.ring.highestGeneration, held.generation) + 1;
    return {
      epoch: held.epoch,
      generation,
      branch: held.branch,
      quorumSet: held.quorumSet,
    };
  }

  private sendPass(token: Token, to: PeerId): void {
    this.ctx.broadcast(
      ...PASS.out({
        epoch: token.epoch,
        gen: token.generation,
        branch: token.branch,
        cfg: token.quorumSet,
        to,
        toIncarnation: this.ring.view.incarnation(to),
      }),
    );
  }
}
