/**
 * The live ring as this peer sees it (see "Ring" in token-ring.ts): the live members that run the
 * ring and this peer, by id; who comes after us; how long a silent token takes to count as lost;
 * and which members that left gracefully no longer count in a quorum set.
 */
import type { PeerId } from '../wire.js';
import type { ProtocolContext } from '../protocol.js';
import type { Membership } from '../membership.js';
import type { TokenRingTimings } from './timings.js';

/**
 * Membership tag (on every heartbeat) of a peer that runs the ring: `true`. Members without it
 * (`peer up`, workers, chat...) are not in the ring (see "Ring" in token-ring.ts).
 */
export const RING_TAG = 'ring';

export class RingView {
  /** When we first saw each member as left; after leaseMs + leaseGuardMs it leaves the quorum (`gone`). */
  private readonly leftAt = new Map<PeerId, number>();
  readonly gone = new Set<PeerId>();
  /** The live ring at the last tick, for 'token-ring-changed'. */
  private lastRing: PeerId[] = [];

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly membership: Membership,
    private readonly timings: TokenRingTimings,
  ) {}

  /** The live members that run the ring (RING_TAG) and this peer, by id. */
  members(): PeerId[] {
    const ids = this.membership
      .live()
      .filter((member) => member.tags[RING_TAG] === true)
      .map((member) => member.id);
    ids.push(this.ctx.self.id);
    return ids.sort();
  }

  /** The next peer of the live ring after this one in id order, not in `skip`; null when alone. */
  successor(skip: Set<PeerId>): PeerId | null {
    const ring = this.members();
    const i = ring.indexOf(this.ctx.self.id);
    for (let k = 1; k < ring.length; k++) {
      const id = ring[(i + k) % ring.length]!;
      if (!skip.has(id)) return id;
    }
    return null;
  }

  lossTimeoutMs(): number {
    return this.timings.lossBaseMs + this.members().length * this.timings.lossPerPeerMs;
  }

  /** Whether `id` is unknown, dead or left: a pass to it is not sent again. */
  unreachable(id: PeerId): boolean {
    const live = this.membership.get(id);
    return !live || live.state === 'dead' || live.state === 'left';
  }

  /** The life of `id` as membership knows it (0 if unknown): a pass names it. */
  incarnation(id: PeerId): number {
    return this.membership.get(id)?.incarnation ?? 0;
  }

  /**
   * A member that left gracefully has stopped for good: once every ack it gave has expired, it no
   * longer counts in the quorum set, so the last peers standing can carry on (and reconfigure)
   * after the others leave one by one. A crashed member is not `left`: it stays in the quorum
   * until a reconfiguration removes it with a majority's consent. `quorumSet` is the newest known.
   */
  trackLeavers(now: number, quorumSet: PeerId[]): void {
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
    for (const id of this.gone) if (!this.membership.get(id) && !quorumSet.includes(id)) this.gone.delete(id);
  }

  /** Emits 'token-ring-changed' when the live ring differs from the one at the last tick. */
  noteChange(): void {
    const ring = this.members();
    const last = this.lastRing;
    if (ring.length === last.length && ring.every((id, i) => last[i] === id)) return;
    this.lastRing = ring;
    const joined = ring.filter((id) => id !== this.ctx.self.id && !last.includes(id));
    const departed = last.filter((id) => !ring.includes(id));
    if (joined.length + departed.length > 0)
      this.ctx.emit({ kind: 'token-ring-changed', joined, departed, ring });
  }
}
