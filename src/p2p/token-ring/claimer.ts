/**
 * The claimer: making a new token (see "Regeneration" and "Falling back" in token-ring.ts). When
 * the token shows no activity for the loss timeout, the peers of the live ring claim one after
 * another in id order: a claim of the next epoch from the quorum set of the newest epoch known,
 * which needs confirms from a majority of it (Paxos phase 1). A holder claims the same way to
 * reconfigure when the live ring and the quorum set differ.
 */
import type { PeerId } from '../wire.js';
import type { Body } from '../kit/message.js';
import type { ProtocolContext } from '../protocol.js';
import type { Holder } from './holder.js';
import type { Lease } from './lease.js';
import { CLAIM, RING_CONFIG_MAX, type ClaimBody, type CONF } from './messages.js';
import type { RingState } from './ring-state.js';
import type { TokenRingTimings } from './timings.js';
import { majority, newBranch, type Held } from './token.js';
import type { Voter } from './voter.js';

interface Claim {
  epoch: number;
  base: number;
  quorumSet: PeerId[];
  confirms: Set<PeerId>;
  highestGeneration: number;
  startedAt: number;
  reason: 'lost' | 'reconfigure';
}

export class Claimer {
  private claim: Claim | null = null;
  private nextClaimAt = -Infinity;
  private nextReconfigAt = -Infinity;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly ring: RingState,
    private readonly voter: Voter,
    private readonly holder: Holder,
    private readonly lease: Lease,
    private readonly timings: TokenRingTimings,
  ) {}

  /** Whether a claim of ours waits for confirms (a holder then keeps its token meanwhile). */
  get claiming(): boolean {
    return this.claim !== null;
  }

  /** Abandons a claim that timed out; claims when the token is lost and it is our rank's turn. */
  tick(now: number): void {
    if (this.claim) {
      if (now - this.claim.startedAt > this.timings.claimTimeoutMs) {
        this.claim = null;
        this.nextClaimAt = now + this.timings.claimTimeoutMs * (1 + this.ctx.random());
      }
      return;
    }
    const ring = this.ring;
    if (ring.held || this.holder.passing || now < this.nextClaimAt) return;
    const rank = ring.view.members().indexOf(this.ctx.self.id);
    if (now - ring.lastActivity <= ring.view.lossTimeoutMs() + rank * this.timings.claimTimeoutMs) return;
    if (!ring.fallBack()) this.startClaim(now, 'lost');
  }

  /** Claims a new token from `held` if the live ring and its quorum set differ; true if it did. */
  reconfigure(held: Held, now: number): boolean {
    if (!this.needsReconfigure(held, now)) return false;
    this.startClaim(now, 'reconfigure');
    return true;
  }

  /** A reconfiguration is for the token we held: it goes with it. */
  abandonReconfigure(): void {
    if (this.claim?.reason === 'reconfigure') this.claim = null;
  }

  onConfirm(sender: PeerId, body: Body<typeof CONF>): void {
    const claim = this.claim;
    const ring = this.ring;
    if (!claim || body.epoch !== claim.epoch) return;
    ring.highestGeneration = Math.max(ring.highestGeneration, body.maxGen);
    ring.promisedSeen = Math.max(ring.promisedSeen, body.promised);
    if (body.knownEpoch > claim.base) {
      // A newer epoch exists: the claim is moot; learn it and start over from it if still needed.
      ring.promisedSeen = Math.max(ring.promisedSeen, body.knownEpoch);
      if (body.knownEpoch > ring.known.epoch) ring.learn(body.knownEpoch, body.knownCfg);
      this.claim = null;
      this.nextClaimAt = this.ctx.now() + this.timings.passRetryMs;
      return;
    }
    if (!body.ok) return;
    claim.confirms.add(sender);
    claim.highestGeneration = Math.max(claim.highestGeneration, body.maxGen);
    this.checkClaim(this.ctx.now());
  }

  private needsReconfigure(held: Held, now: number): boolean {
    if (now < this.nextReconfigAt) return false;
    const want = this.ring.view.members().slice(0, RING_CONFIG_MAX);
    const quorumSet = this.ring.quorum(held.epoch);
    return want.length !== quorumSet.length || want.some((id, i) => quorumSet[i] !== id);
  }

  private startClaim(now: number, reason: Claim['reason']): void {
    const ring = this.ring;
    const base = ring.known.epoch;
    const quorumSet =
      base === 0 || ring.known.quorumSet.length === 0
        ? ring.view.members().slice(0, RING_CONFIG_MAX)
        : ring.known.quorumSet;
    const epoch = Math.max(ring.promised, ring.promisedSeen, ring.known.epoch, ring.newestEpoch) + 1;
    const held = ring.held;
    this.claim = {
      epoch,
      base,
      quorumSet,
      confirms: new Set(),
      highestGeneration: ring.highestGeneration,
      startedAt: now,
      reason,
    };
    if (reason === 'reconfigure') this.nextReconfigAt = now + ring.view.lossTimeoutMs();
    const body: ClaimBody = {
      epoch,
      base,
      tokenEpoch: held?.epoch ?? 0,
      tokenGen: held?.generation ?? 0,
      tokenBranch: held?.branch ?? 0,
    };
    if (this.voter.mayConfirm(this.ctx.self.id, body, now)) this.claim.confirms.add(this.ctx.self.id);
    this.ctx.broadcast(...CLAIM.out(body));
    this.checkClaim(now);
  }

  private checkClaim(now: number): void {
    const claim = this.claim;
    const ring = this.ring;
    if (!claim || !majority(claim.quorumSet, claim.confirms, ring.view.gone)) return;
    this.claim = null;
    const quorumSet = ring.view.members().slice(0, RING_CONFIG_MAX);
    const generation = Math.max(claim.highestGeneration, ring.highestGeneration) + 1;
    this.lease.exit('superseded');
    // A holder that remakes a token it has already used (reconfiguring on its way to pass it) keeps
    // it marked used, so it moves on: otherwise the holder takes a second turn in a row while its
    // successors wait (fairness, not safety: the new token has a new gen).
    const used = ring.held?.leased ?? false;
    ring.known = { epoch: claim.epoch, quorumSet };
    ring.see(claim.epoch, generation, this.ctx.self.id, quorumSet);
    const held = this.holder.hold(
      { epoch: claim.epoch, generation, branch: newBranch(this.ctx), quorumSet },
      now,
      used,
    );
    ring.stats.regenerations++;
    this.ctx.emit({
      kind: 'token-regenerated',
      epoch: claim.epoch,
      generation,
      ring: quorumSet.length,
      reason: claim.reason === 'lost' && claim.base === 0 ? 'first' : claim.reason,
    });
    this.holder.beat(held, now);
  }
}
