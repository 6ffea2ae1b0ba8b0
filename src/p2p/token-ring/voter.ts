/**
 * The voter: how this peer answers other peers' requests (see "Leases" and "Regeneration" in
 * token-ring.ts). It acks a holder's lease only when no other lease it gave may still run, and
 * confirms a claim (a durable promise, Paxos phase 1) only when the token looks lost and every
 * lease it gave of older epochs is over. It also answers for this peer itself: the holder counts
 * its own ack, the claimer its own confirm.
 */
import type { PeerId } from '../wire.js';
import type { Body } from '../kit/message.js';
import type { ProtocolContext } from '../protocol.js';
import type { Address } from '../transport/transport.js';
import { CONF, LEASE, LEASE_ACK, LEASE_NAK, type ClaimBody } from './messages.js';
import type { RingState } from './ring-state.js';
import type { TokenRingTimings } from './timings.js';
import { compareTokens } from './token.js';

/** Records token activity; the protocol drops our own token when it is superseded. */
export type Observe = (
  epoch: number,
  generation: number,
  holder: PeerId | '',
  quorumSet: PeerId[] | null,
) => void;

export class Voter {
  private readonly quietUntil: number;
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

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly ring: RingState,
    private readonly timings: TokenRingTimings,
    private readonly observe: Observe,
    now: number,
  ) {
    // After a restart this peer has forgotten whom it backed: it backs nobody until any lease it
    // may have granted in its previous life has expired.
    this.quietUntil = now + timings.leaseMs + timings.leaseGuardMs;
  }

  onLease(sender: PeerId, from: Address, body: Body<typeof LEASE>): void {
    const now = this.ctx.now();
    const ring = this.ring;
    const order = compareTokens(body.epoch, body.gen, ring.newestEpoch, ring.newestGeneration);
    if (
      body.epoch < ring.promised ||
      order < 0 ||
      (order === 0 && ring.newestHolder !== sender && ring.newestHolder !== '')
    ) {
      this.ctx.send(from, ...LEASE_NAK.out({ epoch: ring.newestEpoch, gen: ring.newestGeneration }));
      return;
    }
    this.observe(body.epoch, body.gen, sender, null);
    if (this.mayAck(body.epoch, body.gen, body.branch, sender, now))
      this.ctx.send(from, ...LEASE_ACK.out({ epoch: body.epoch, gen: body.gen, round: body.round }));
  }

  /** The acker's rule (see "Leases" in token-ring.ts): back this holder now, or not yet. Records the ack. */
  mayAck(epoch: number, generation: number, branch: number, holder: PeerId, now: number): boolean {
    if (now < this.quietUntil) return false;
    if (epoch < this.ring.promised) return false;
    const last = this.lastAck;
    // A newer epoch at once only if we confirmed it (or a later one): confirming waited for our
    // last ack to expire. One we never confirmed may be forged (a pass needs no claim), or made by
    // a majority without us: it waits like any unrelated holder.
    const ok =
      !last ||
      (epoch > last.epoch && epoch <= this.ring.promised) ||
      (last.holder === holder && last.epoch === epoch && last.generation === generation) ||
      (last.passedOn && last.epoch === epoch && last.branch === branch && generation > last.generation) ||
      now >= last.at + this.timings.leaseMs + this.timings.leaseGuardMs;
    if (ok) this.lastAck = { epoch, generation, branch, holder, at: now, passedOn: false };
    return ok;
  }

  /** `holder` passed on its token (epoch, generation, branch): if it is the one we backed last, it left its CS. */
  sawPassOn(holder: PeerId, epoch: number, generation: number, branch: number): void {
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

  onClaim(sender: PeerId, from: Address, body: ClaimBody): void {
    const ok = this.mayConfirm(sender, body, this.ctx.now());
    const ring = this.ring;
    this.ctx.send(
      from,
      ...CONF.out({
        epoch: body.epoch,
        ok,
        promised: ring.promised,
        knownEpoch: ring.known.epoch,
        knownCfg: ring.known.quorumSet,
        maxGen: ring.highestGeneration,
      }),
    );
  }

  /** The confirmer's rule (see "Regeneration" in token-ring.ts). Records the promise when it says yes. */
  mayConfirm(claimer: PeerId, body: ClaimBody, now: number): boolean {
    const ring = this.ring;
    if (
      now < this.quietUntil ||
      body.epoch <= ring.promised ||
      body.epoch <= ring.newestEpoch ||
      ring.known.epoch > body.base
    )
      return false;
    const order = compareTokens(body.tokenEpoch, body.tokenGen, ring.newestEpoch, ring.newestGeneration);
    const claimerHoldsNewest =
      body.tokenEpoch > 0 &&
      (order > 0 || (order === 0 && (ring.newestHolder === claimer || ring.newestHolder === '')));
    // Liveness only: do not kill a token that is moving. Half the loss timeout, so a claimer whose
    // timer fired is not refused by peers that heard the last activity a little later.
    if (!claimerHoldsNewest && now - ring.lastActivity <= ring.view.lossTimeoutMs() / 2) return false;
    if (ring.held && claimer !== this.ctx.self.id) return false; // we hold a token: it is not lost
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
    const before = ring.promised;
    ring.promised = body.epoch;
    if (!ring.persist()) {
      ring.promised = before;
      return false;
    }
    if (claimer !== this.ctx.self.id) ring.promisedFirm = Math.max(ring.promisedFirm, body.epoch);
    return true;
  }
}
