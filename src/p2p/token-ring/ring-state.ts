/**
 * What every role of the token ring reads and updates: the newest token seen and who held it, the
 * highest gen, the promises, the quorum sets learned (see "Learning a quorum set" and "Falling
 * back" in token-ring.ts), the token this peer holds, the counters, and the durable state with its
 * writes (see "Storage"). The roles share this object and keep their own state to themselves.
 */
import type { PeerId } from '../wire.js';
import type { ProtocolContext } from '../protocol.js';
import type { RingView } from './ring-view.js';
import { compareTokens, majority, type Held } from './token.js';

/**
 * While the durable state is not stored (a write failed), it is written again at most this often:
 * a full disk fails every write, and trying at every tick would only burn fsyncs; a second is how
 * soon a holder takes its turns again once space returns.
 */
export const DURABLE_RETRY_MS = 1000;

/** What must survive a crash: promises to claimers and the newest epoch known (Paxos acceptor state). */
export interface TokenRingDurable {
  promised: number;
  epoch: number;
  gen: number;
  /** Quorum set of `epoch`: a restarted claimer must count confirms against the real one. */
  cfg: PeerId[];
}

/**
 * Loads and saves the durable state (SQLite in the CLI, a map in simulations). `save` returns true
 * once the state is durable and false when the write failed (a full disk, EIO): it never throws for
 * a failed write, and a failure is never taken as stored.
 */
export interface DurableRing {
  load(): TokenRingDurable | null;
  save(stored: TokenRingDurable): boolean;
}

/** An epoch and the quorum set its leases and claims are counted against. */
interface Learned {
  epoch: number;
  quorumSet: PeerId[];
}

/** Counters for tests and the command's status line. */
export function newStats() {
  return {
    passes: 0,
    skips: 0,
    stale: 0,
    regenerations: 0,
    leaseRounds: 0,
    critical: 0,
    /** Turns given up because the fencing token could not be stored (a failing disk). */
    unstoredTurns: 0,
  };
}
export type TokenRingStats = ReturnType<typeof newStats>;

export class RingState {
  readonly stats = newStats();
  /** Newest token seen, and who held it. */
  newestEpoch = 0;
  newestGeneration = 0;
  newestHolder: PeerId | '' = '';
  /** Highest gen seen in any epoch: new tokens start above it. */
  highestGeneration = 0;
  promised = 0;
  /**
   * The highest promise that may guard a real token: one made to another claimer, the epoch of a
   * token we held (a claim of ours that made one, or a token passed to us), or a promise read back
   * from disk. Above it, `promised` holds only our own claims' promises that made no token (only
   * its claimer makes one, and late confirms of an abandoned claim are dropped): what those guard
   * against cannot exist, so falling back may take a token below them (fallBack()).
   */
  promisedFirm = 0;
  /** Highest promise any confirmer reported: the next claim must go above it. */
  promisedSeen = 0;
  /** The newest epoch known and its quorum set. */
  known: Learned = { epoch: 0, quorumSet: [] };
  /** The one before, learned from messages: what falling back returns to (see fallBack()). */
  private knownBefore: Learned | null = null;
  lastActivity: number;
  /**
   * The newest token of an older epoch than our newest (but not below our promise) seen in use,
   * and when: what we fall back to if our newest never shows itself (see "Falling back" in token-ring.ts).
   */
  private older: { epoch: number; generation: number; holder: PeerId | ''; at: number } | null = null;
  /** The token this peer holds; only the holder (holder.ts) takes and gives it up. */
  held: Held | null = null;
  /** The gen in the last state stored, and whether the state in memory differs from it. */
  private storedGeneration = 0;
  private unstored = false;
  private lastSaveAt = -Infinity;

  constructor(
    private readonly ctx: ProtocolContext,
    readonly view: RingView,
    private readonly durable: DurableRing | undefined,
    now: number,
  ) {
    this.lastActivity = now;
    const stored = durable?.load();
    if (stored) {
      this.promised = stored.promised;
      this.promisedFirm = stored.promised;
      this.newestEpoch = stored.epoch;
      this.newestGeneration = stored.gen;
      this.highestGeneration = stored.gen;
      this.storedGeneration = stored.gen;
      this.known = { epoch: stored.epoch, quorumSet: stored.cfg };
    }
  }

  /**
   * Records token activity (epoch, generation) held by `holder`; true when it supersedes the token
   * we hold (the holder then drops it).
   */
  observe(epoch: number, generation: number, holder: PeerId | '', quorumSet: PeerId[] | null): boolean {
    const order = compareTokens(epoch, generation, this.newestEpoch, this.newestGeneration);
    if (epoch < this.promised) {
      // Below our own claims' promises only: still a token in use we may fall back to.
      if (order < 0 && holder !== '' && epoch >= this.promisedFirm) this.seeOlder(epoch, generation, holder);
      return false;
    }
    if (order < 0) {
      if (holder !== '') this.seeOlder(epoch, generation, holder); // a token in use, not hearsay (tok.lnak)
      return false;
    }
    if (order === 0 && holder !== '' && this.newestHolder !== '' && holder !== this.newestHolder)
      return false;
    if (order === 0 && this.newestHolder === '') this.newestHolder = holder;
    this.lastActivity = this.ctx.now();
    if (order > 0) {
      this.see(epoch, generation, holder, quorumSet);
      return (
        this.held !== null && compareTokens(this.held.epoch, this.held.generation, epoch, generation) < 0
      );
    }
    if (quorumSet && epoch > this.known.epoch) this.learn(epoch, quorumSet);
    return false;
  }

  see(epoch: number, generation: number, holder: PeerId | '', quorumSet: PeerId[] | null): void {
    const newEpoch = epoch > this.newestEpoch;
    if (compareTokens(epoch, generation, this.newestEpoch, this.newestGeneration) > 0) {
      this.newestEpoch = epoch;
      this.newestGeneration = generation;
      this.newestHolder = holder;
    }
    this.highestGeneration = Math.max(this.highestGeneration, generation);
    this.lastActivity = this.ctx.now();
    if (holder === this.ctx.self.id) this.promisedFirm = Math.max(this.promisedFirm, epoch);
    if (quorumSet && epoch > this.known.epoch) this.learn(epoch, quorumSet);
    if (newEpoch) this.persist();
  }

  seeOlder(epoch: number, generation: number, holder: PeerId | ''): void {
    const older = this.older;
    if (!older || compareTokens(epoch, generation, older.epoch, older.generation) >= 0)
      this.older = { epoch, generation, holder, at: this.ctx.now() };
  }

  /** A token older than one already seen was refused or dropped. */
  stale(epoch: number, generation: number, from: PeerId): void {
    this.stats.stale++;
    this.ctx.emit({ kind: 'token-stale', epoch, generation, from });
  }

  /**
   * Our newest token has shown no activity for the loss timeout, while a token of an older epoch
   * (not below promisedFirm) was in use within it: our newest was only ever heard of (a forged
   * message can name any epoch within the step), so we take the older one as newest again.
   * "Within it": since our newest's last activity. Not the last loss timeout before `now`: the
   * claim that asks comes at a tick, after the loss timeout (and a claim timeout per rank ahead of
   * ours), and an older token that reached us just after the forged epoch, then was lost at us as
   * stale, was seen longer ago than that: the peer claimed from the forged epoch, one past what
   * the others adopt, and the ring was split for good.
   */
  fallBack(): boolean {
    const older = this.older;
    this.older = null;
    if (!older || older.epoch < this.promisedFirm || older.at < this.lastActivity) return false;
    if (compareTokens(older.epoch, older.generation, this.newestEpoch, this.newestGeneration) >= 0)
      return false;
    this.newestEpoch = older.epoch;
    this.newestGeneration = older.generation;
    this.newestHolder = older.holder;
    this.lastActivity = older.at;
    // Our own claims from the unreal epoch promised above it; no token came of them (see
    // promisedFirm), and the token we return to must not be refused by them.
    if (this.promised > older.epoch) {
      this.promised = older.epoch;
      this.persist();
    }
    // The set learned with our newest is as unreal as it: the one before counts again.
    const before = this.knownBefore;
    if (this.known.epoch > older.epoch && before && before.epoch <= older.epoch) {
      this.known = before;
      this.knownBefore = null;
      this.persist();
    }
    return true;
  }

  /**
   * Takes `quorumSet` as the one of `epoch` (newer than any learned) if a majority of it is in
   * our live ring, so that a claim from it can get a majority, and it holds a majority of our live
   * ring, so that a forged set of a few members cannot make them a quorum (see "Learning a quorum
   * set" in token-ring.ts).
   */
  learn(epoch: number, quorumSet: PeerId[]): void {
    const ring = this.view.members();
    const gone = this.view.gone;
    if (!majority(quorumSet, new Set(ring), gone) || !majority(ring, new Set(quorumSet), gone)) return;
    this.knownBefore = this.known;
    this.known = { epoch, quorumSet };
  }

  /**
   * The quorum set leases of `epoch` are counted against: the one learned for it (or made by us),
   * never the set a token names, which anyone can forge. Empty when none was learned: no lease.
   */
  quorum(epoch: number): PeerId[] {
    return this.known.epoch === epoch ? this.known.quorumSet : [];
  }

  /** Whether `generation` (or a later one) is stored; writes the state if not. */
  storedUpTo(generation: number, now: number): boolean {
    if (!this.durable) return true;
    if (!this.unstored && this.storedGeneration >= generation) return true;
    // A failed write is not retried at every visit of the token: see DURABLE_RETRY_MS.
    if (this.unstored && now - this.lastSaveAt < DURABLE_RETRY_MS) return false;
    return this.persist() && this.storedGeneration >= generation;
  }

  /** Writes the state again if the last write failed, at most every DURABLE_RETRY_MS. */
  retryStore(now: number): void {
    if (this.unstored && now - this.lastSaveAt >= DURABLE_RETRY_MS) this.persist();
  }

  /** Writes the durable state; false (and retried from tick) when the write failed. */
  persist(): boolean {
    const durable = this.durable;
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
