/**
 * Online reconcile, the coordinator's side (`peer reconcile`). The coordinator polls every holder
 * with `rp.rnd` every ROUND_POLL_MS and collects their `rp.st`. When every live holder reports one
 * digest it sends `rp.fin` with it instead; the round is done when every holder rewrote the same
 * content (one SHA-256).
 */
import type { ProtocolContext } from '../protocol.js';
import type { PeerId } from '../wire.js';
import type { Body, Origin } from '../kit/message.js';
import type { Address } from '../transport/transport.js';
import { nameOrUnheard } from '../names.js';
import { liveHoldersIn, type Directory } from './directory.js';
import { ROUND_FINISH, ROUND_POLL, ROUND_STATUS } from './messages.js';

/** How often a reconcile coordinator polls every holder. */
export const ROUND_POLL_MS = 150;

export interface HolderReport {
  id: PeerId;
  name: string;
  /** Entries when the round reached this holder. */
  before: number;
  entries: number;
  digest: string;
  /** SHA-256 of the rewritten file, '' until the holder rewrote it for this round. */
  sha256: string;
}

export interface RoundStatus {
  holders: HolderReport[];
  waiting: string[];
  agreed: boolean;
  done: boolean;
}

interface Participant {
  id: PeerId;
  name: string;
  address: Address | null;
  count: number;
  digest: string;
}

interface RoundTrack {
  id: number;
  reports: Map<PeerId, HolderReport>;
  /** Live holders the reporting holders see: the round waits for them too. */
  heard: Set<PeerId>;
  lastPoll: number;
  /** The digest every holder agreed on, '' until they do. */
  target: string;
}

export class RoundCoordinator {
  private round: RoundTrack | null = null;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly dir: Directory,
  ) {}

  /** Starts (or restarts) a reconcile round; returns its id. */
  start(): number {
    const id = 1 + Math.floor(this.ctx.random() * 2 ** 31);
    this.round = { id, reports: new Map(), heard: new Set(), lastPoll: -Infinity, target: '' };
    return id;
  }

  /** The round's reports, and whether every live holder rewrote the same content. */
  status(): RoundStatus {
    const round = this.round;
    const holders = this.participants().map(
      (h) =>
        round?.reports.get(h.id) ?? {
          id: h.id,
          name: h.name,
          before: h.count,
          entries: h.count,
          digest: h.digest,
          sha256: '',
        },
    );
    const reported = holders.every((h) => round?.reports.has(h.id));
    const digests = new Set(holders.map((h) => h.digest));
    const agreed = holders.length > 0 && reported && digests.size === 1;
    const shas = new Set(holders.map((h) => h.sha256));
    const done = agreed && shas.size === 1 && !shas.has('');
    const waiting = holders
      .filter((h) => !h.sha256 || (round?.target && h.digest !== round.target))
      .map((h) => h.name);
    return { holders, waiting, agreed, done };
  }

  onStatus(from: Origin, st: Body<typeof ROUND_STATUS>): void {
    const round = this.round;
    if (!round || st.round !== round.id) return;
    for (const x of st.holders) round.heard.add(x);
    const prev = round.reports.get(from.id);
    round.reports.set(from.id, {
      id: from.id,
      name: from.name,
      before: prev?.before ?? st.before,
      entries: st.entries,
      digest: st.digest,
      sha256: st.sha256,
    });
  }

  /** Polls the round's holders when due; returns when it next is (Infinity: no round). */
  poll(now: number): number {
    const round = this.round;
    if (!round) return Infinity;
    if (now - round.lastPoll < ROUND_POLL_MS) return round.lastPoll + ROUND_POLL_MS;
    round.lastPoll = now;
    const st = this.status();
    round.target = st.agreed ? st.holders[0]!.digest : '';
    for (const h of this.participants()) {
      if (h.address === null) continue;
      const rep = round.reports.get(h.id);
      if (st.agreed && !rep?.sha256)
        this.ctx.send(h.address, ...ROUND_FINISH.out({ round: round.id, digest: round.target }));
      else this.ctx.send(h.address, ...ROUND_POLL.out({ round: round.id }));
    }
    return now + ROUND_POLL_MS;
  }

  /**
   * Who takes part in the round: the live holders this peer hears, the holders that reported in
   * this round (unless they left), and the live holders any reporting holder hears (a holder slow
   * to answer our probe is not left out) unless this peer saw them die or leave.
   */
  private participants(): Participant[] {
    const out = new Map<PeerId, Participant>();
    for (const h of liveHoldersIn(this.dir))
      out.set(h.id, { id: h.id, name: h.name, address: h.address, count: h.count, digest: h.digest });
    if (!this.round) return [...out.values()];
    const members = this.dir.list();
    const states = new Map(members.map((m) => [m.id, m.state]));
    const addresses = new Map(members.map((m) => [m.id, m.address]));
    const names = new Map(members.map((m) => [m.id, m.name]));
    // A holder that reported in this round stays in it unless it left: a holder busy rewriting a
    // large file can miss heartbeats long enough to look dead, and a crashed one must show up as
    // not converged rather than vanish from the table.
    for (const r of this.round.reports.values()) {
      if (out.has(r.id) || states.get(r.id) === 'left') continue;
      const address = addresses.get(r.id) ?? null;
      out.set(r.id, { id: r.id, name: r.name, address, count: r.entries, digest: r.digest });
    }
    for (const x of this.round.heard) {
      const state = states.get(x);
      if (out.has(x) || x === this.ctx.self.id || state === 'dead' || state === 'left') continue;
      const name = nameOrUnheard(names.get(x), x);
      out.set(x, { id: x, name, address: addresses.get(x) ?? null, count: 0, digest: '' });
    }
    return [...out.values()];
  }
}
