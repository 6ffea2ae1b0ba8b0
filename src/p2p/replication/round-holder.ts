/**
 * Online reconcile, the holder's side. A holder polled with `rp.rnd` answers `rp.st` (its count at
 * the round's start, its count and digest now) and, while a round is fresh, runs anti-entropy more
 * often (boosted). On `rp.fin` naming the digest it still has, it rewrites its replica in canonical
 * order, once per round, and reports the file's SHA-256.
 */
import type { ProtocolContext } from '../protocol.js';
import type { Body } from '../kit/message.js';
import type { Address } from '../transport/transport.js';
import { liveHoldersIn, type Directory } from './directory.js';
import type { Holder } from './holder.js';
import { ACK_HOLDERS_MAX, ROUND_FINISH, ROUND_POLL, ROUND_STATUS } from './messages.js';

/** How long after the last `rp.rnd` a holder keeps the faster anti-entropy period. */
export const ROUND_BOOST_MS = 5_000;
/** Rounds a holder remembers (entries before, rewrite result). */
export const ROUNDS_REMEMBERED_MAX = 16;

interface RoundMemory {
  before: number;
  /** The SHA-256 of this round's rewrite, and the digest of the content it wrote. */
  sha256: string;
  digest: string;
}

export class RoundHolder {
  private readonly rounds = new Map<number, RoundMemory>();
  private boostUntil = -Infinity;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly dir: Directory,
    private readonly holder: Holder,
  ) {}

  /** Whether a round is fresh (anti-entropy then runs more often). */
  boosted(now: number): boolean {
    return now < this.boostUntil;
  }

  onPoll(from: Address, { round }: Body<typeof ROUND_POLL>): void {
    this.boostUntil = this.ctx.now() + ROUND_BOOST_MS;
    this.sendStatus(from, round, this.remember(round));
  }

  onFinish(from: Address, { round, digest }: Body<typeof ROUND_FINISH>): void {
    const mem = this.remember(round);
    const set = this.holder.set;
    // Rewrite once per round, or again if entries arrived after the rewrite.
    if (!this.rewriteCurrent(mem) && set.digest() === digest) {
      // A failed rewrite leaves the old file; the round sees no SHA from us and asks again.
      const sha = this.holder.sink.rewriteCanonical();
      if (sha !== null) {
        mem.sha256 = sha;
        mem.digest = set.digest();
        this.ctx.emit({ kind: 'replica-rewrite', round, sha256: sha, entries: set.size });
      }
    }
    this.sendStatus(from, round, mem);
  }

  private remember(round: number): RoundMemory {
    let mem = this.rounds.get(round);
    if (!mem) {
      mem = { before: this.holder.set.size, sha256: '', digest: '' };
      this.rounds.set(round, mem);
      if (this.rounds.size > ROUNDS_REMEMBERED_MAX) this.rounds.delete(this.rounds.keys().next().value!);
    }
    return mem;
  }

  /**
   * Whether the round's rewrite is still the file: canonical, and no entry arrived since. (An entry
   * appended after it can leave the file canonical, a rewritten empty file then one line, while the
   * SHA-256 the round saw is of the old content: every holder then reported another SHA for good.)
   */
  private rewriteCurrent(mem: RoundMemory): boolean {
    const set = this.holder.set;
    return mem.sha256 !== '' && set.isCanonical() && set.digest() === mem.digest;
  }

  private sendStatus(to: Address, round: number, mem: RoundMemory): void {
    const set = this.holder.set;
    const holders = liveHoldersIn(this.dir)
      .map((h) => h.id)
      .slice(0, ACK_HOLDERS_MAX);
    this.ctx.send(
      to,
      ...ROUND_STATUS.out({
        round,
        entries: set.size,
        digest: set.digest(),
        before: mem.before,
        sha256: this.rewriteCurrent(mem) ? mem.sha256 : '',
        holders,
      }),
    );
  }
}
