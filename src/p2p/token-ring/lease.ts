/**
 * The lease and the critical section (see "Leases" in token-ring.ts). Holding the token is not
 * enough to act: the holder multicasts `tok.lease` and enters the CS once a majority of the
 * epoch's quorum set (as this peer learned it) acks the round. The lease runs leaseMs from when the
 * round was sent; in the CS it is renewed every leaseRenewMs, and the CS ends when it lapses. One
 * CS per token: the token is then marked used and moves on.
 */
import type { PeerId } from '../wire.js';
import type { Body } from '../kit/message.js';
import type { ProtocolContext } from '../protocol.js';
import { LEASE, LEASE_ACK } from './messages.js';
import type { RingState } from './ring-state.js';
import type { TokenRingTimings } from './timings.js';
import { majority, type Held } from './token.js';
import type { Voter } from './voter.js';

export type TokenExitReason = 'released' | 'lease-lost' | 'superseded' | 'stopped';

interface CriticalSection {
  enteredAt: number;
  holdUntil: number | null;
}

interface LeaseRound {
  round: number;
  sentAt: number;
  acks: Set<PeerId>;
}

export class Lease {
  private want = false;
  private wantHoldMs: number | null = null;
  private section: CriticalSection | null = null;
  /** The last round asked for the token we hold, and its acks. */
  private lease: LeaseRound | null = null;
  private leaseUntil = -Infinity;
  /** When the holder first asked for this token's CS: it gives up after leaseWaitMs. */
  private askedAt = -Infinity;
  private round = 0;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly ring: RingState,
    private readonly voter: Voter,
    private readonly timings: TokenRingTimings,
  ) {}

  /** Asks for the critical section; entered when the token comes and a majority grants a lease. */
  request(holdMs: number | null): void {
    this.want = true;
    this.wantHoldMs = holdMs;
  }

  /** Leaves the critical section (or withdraws a request). */
  release(): void {
    this.want = false;
    if (this.section) this.exit('released');
  }

  get inside(): boolean {
    return this.section !== null;
  }

  get wanting(): boolean {
    return this.want;
  }

  /** Ends the CS when its lease lapsed or its requested hold is over. */
  tick(now: number): void {
    if (!this.section) return;
    if (now >= this.leaseUntil) this.exit('lease-lost');
    else if (this.section.holdUntil !== null && now >= this.section.holdUntil) this.release();
  }

  /** Asks a new round for `held` if none was asked, or the last is leaseRenewMs old. */
  renew(held: Held, now: number): void {
    if (!this.lease || now - this.lease.sentAt >= this.timings.leaseRenewMs) this.ask(held, now);
  }

  /** Whether the holder still waits for a lease for `held` (it gives up after leaseWaitMs). */
  waiting(now: number): boolean {
    if (this.askedAt === -Infinity) this.askedAt = now;
    return now - this.askedAt < this.timings.leaseWaitMs;
  }

  /** A new token to hold: no round counts for it, and its wait starts over. */
  reset(): void {
    this.lease = null;
    this.askedAt = -Infinity;
  }

  /** The wait for a lease starts over at the next turn. */
  restartWait(): void {
    this.askedAt = -Infinity;
  }

  /** The token is gone: no round counts any more. */
  dropRound(): void {
    this.lease = null;
  }

  onAck(sender: PeerId, body: Body<typeof LEASE_ACK>): void {
    const held = this.ring.held;
    if (
      !held ||
      !this.lease ||
      body.epoch !== held.epoch ||
      body.gen !== held.generation ||
      body.round !== this.lease.round
    )
      return;
    this.lease.acks.add(sender);
    this.check(held, this.ctx.now());
  }

  exit(reason: TokenExitReason): void {
    const section = this.section;
    if (!section) return;
    this.section = null;
    this.lease = null;
    this.leaseUntil = -Infinity;
    this.askedAt = -Infinity;
    const epoch = this.ring.held?.epoch ?? this.ring.newestEpoch;
    const generation = this.ring.held?.generation ?? this.ring.newestGeneration;
    if (reason === 'released') this.want = false;
    this.ctx.emit({
      kind: 'token-exit',
      epoch,
      generation,
      reason,
      heldMs: Math.round(this.ctx.now() - section.enteredAt),
    });
  }

  private ask(held: Held, now: number): void {
    const round = ++this.round;
    this.lease = { round, sentAt: now, acks: new Set() };
    this.ring.stats.leaseRounds++;
    this.ring.lastActivity = now;
    if (this.voter.mayAck(held.epoch, held.generation, held.branch, this.ctx.self.id, now))
      this.lease.acks.add(this.ctx.self.id);
    this.ctx.broadcast(...LEASE.out({ epoch: held.epoch, gen: held.generation, branch: held.branch, round }));
    this.check(held, now);
  }

  private check(held: Held, now: number): void {
    const round = this.lease;
    if (!round || !majority(this.ring.quorum(held.epoch), round.acks, this.ring.view.gone)) return;
    const until = round.sentAt + this.timings.leaseMs;
    if (until <= this.leaseUntil) return;
    this.leaseUntil = until;
    if (!this.section && this.want && !held.leased && now < until) this.enter(held, now);
  }

  private enter(held: Held, now: number): void {
    held.leased = true;
    this.section = {
      enteredAt: now,
      holdUntil: this.wantHoldMs === null ? null : now + this.wantHoldMs,
    };
    this.ring.stats.critical++;
    this.ctx.emit({ kind: 'token-enter', epoch: held.epoch, generation: held.generation });
  }
}
