/**
 * Bounded resources whatever arrives: a per-source rate limit in front of everything else a
 * datagram costs (decryption, JSON parsing, protocol work), wrapped around any Transport.
 *
 * Algorithm: one token bucket per source address ("host:port"), refilled at
 * GUARD_SOURCE_DATAGRAMS_PER_S (GUARD_MEMBER_DATAGRAMS_PER_S for the address of a live member, as
 * the node tells it: setMembers) up to GUARD_SOURCE_BURST_DATAGRAMS; a datagram that finds its
 * bucket empty is dropped and counted. Buckets live in a table of at most GUARD_SOURCES_MAX
 * entries kept in recency order; a new source beyond the cap evicts the least recently heard one.
 *
 * Why evict rather than refuse new sources: refusing would let a flood of spoofed sources lock a
 * newly started legitimate peer out of the group. Evicting only ever resets a bucket to full, which
 * is harmless to a legitimate peer. The price: a flooder that forges a fresh source address per
 * datagram is not slowed down by a per-source limit (nothing can tell its datagrams apart); what
 * bounds it is that its datagrams then cost one failed authentication each (secure.ts) and no
 * memory beyond this table. A flooder from one address, the common case of a misbehaving or
 * malicious host, is held to the rate.
 *
 * Time is injected (`now`), so the same guard runs in real time and in virtual time.
 */
import type { Address, DatagramHandler, Transport, TransportMode } from './transport.js';

/**
 * Sustained datagrams per second accepted from one source. A sender pushing chat or replication
 * as fast as it goes packs about 10 messages per datagram and reaches 10-20k datagrams/s on these
 * machines (BENCHMARKS.md, chat); 2,000 capped a single open-group sender at about 21k messages/s.
 * At about 5 µs of validation each, 20,000/s from one source costs at most a tenth of a core.
 */
export const GUARD_SOURCE_DATAGRAMS_PER_S = 20_000;
/** Datagrams one source may send at once after being quiet (a replication or chat burst). */
export const GUARD_SOURCE_BURST_DATAGRAMS = 40_000;
/**
 * Sustained datagrams per second from the address of a live member (setMembers). A member sending
 * a file goes as fast as its link: about 81,000 full frames/s on gigabit Ethernet. At 20,000/s the
 * guard dropped a quarter of a 256 MiB file's fragments to 4 receivers on an idle 2-core machine
 * (the sender reached 24,000/s), and every one dropped was repaired (1.22 times the file's bytes
 * on the wire instead of 1.05). A stranger stays at GUARD_SOURCE_DATAGRAMS_PER_S; in an open group
 * a host can become a member by sending heartbeats, so this is the most one host can make a peer
 * validate: about half a core.
 */
export const GUARD_MEMBER_DATAGRAMS_PER_S = 100_000;
/** Source addresses tracked at once: 4 times MEMBERS_MAX, about 200 KB. */
export const GUARD_SOURCES_MAX = 4096;

export interface GuardOptions {
  now: () => number;
  ratePerS?: number;
  /** The rate of a live member's address (setMembers). */
  memberRatePerS?: number;
  burst?: number;
  sourcesMax?: number;
}

export interface GuardStats {
  admitted: number;
  rateLimited: number;
  /** Sources dropped from the table to make room for new ones. */
  sourcesEvicted: number;
  /** Sources tracked now (at most GUARD_SOURCES_MAX). */
  sourcesTracked: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateGuard {
  readonly stats: GuardStats = { admitted: 0, rateLimited: 0, sourcesEvicted: 0, sourcesTracked: 0 };
  private readonly buckets = new Map<Address, Bucket>();
  private readonly ratePerMs: number;
  private readonly memberRatePerMs: number;
  private readonly burst: number;
  private readonly sourcesMax: number;
  private members: ReadonlySet<Address> = new Set();
  /** The source of the last datagram admitted or refused: its bucket is the newest in the table already. */
  private newest: Address | null = null;

  constructor(private readonly opts: GuardOptions) {
    this.ratePerMs = (opts.ratePerS ?? GUARD_SOURCE_DATAGRAMS_PER_S) / 1000;
    this.memberRatePerMs = (opts.memberRatePerS ?? GUARD_MEMBER_DATAGRAMS_PER_S) / 1000;
    this.burst = opts.burst ?? GUARD_SOURCE_BURST_DATAGRAMS;
    this.sourcesMax = opts.sourcesMax ?? GUARD_SOURCES_MAX;
  }

  /** The addresses of the live members (the node's membership): they refill at the member rate. */
  setMembers(addresses: ReadonlySet<Address>): void {
    this.members = addresses;
  }

  /** True if a datagram from `source` may be processed now; spends one token. */
  admit(source: Address): boolean {
    const now = this.opts.now();
    let b = this.buckets.get(source);
    if (b) {
      const perMs = this.members.has(source) ? this.memberRatePerMs : this.ratePerMs;
      b.tokens = Math.min(this.burst, b.tokens + Math.max(0, now - b.at) * perMs);
      b.at = now;
      // Map order is recency order: re-inserted at the end, unless it is there already (a
      // transfer's datagrams come from one source in a row, each a delete and an insert otherwise).
      if (source !== this.newest) {
        this.buckets.delete(source);
        this.buckets.set(source, b);
      }
    } else {
      b = { tokens: this.burst, at: now };
      if (this.buckets.size >= this.sourcesMax) {
        this.buckets.delete(this.buckets.keys().next().value as Address);
        this.stats.sourcesEvicted++;
      }
      this.buckets.set(source, b);
    }
    this.newest = source;
    this.stats.sourcesTracked = this.buckets.size;
    if (b.tokens < 1) {
      this.stats.rateLimited++;
      return false;
    }
    b.tokens -= 1;
    this.stats.admitted++;
    return true;
  }
}

/** A Transport whose received datagrams pass a RateGuard first. Sending is untouched. */
export class GuardedTransport implements Transport {
  readonly guard: RateGuard;

  constructor(
    private readonly inner: Transport,
    opts: GuardOptions,
  ) {
    this.guard = new RateGuard(opts);
  }

  get address(): Address {
    return this.inner.address;
  }

  get mode(): TransportMode {
    return this.inner.mode;
  }

  get stats(): GuardStats {
    return this.guard.stats;
  }

  start(onDatagram: DatagramHandler): Promise<void> {
    return this.inner.start((data, from, via) => {
      if (this.guard.admit(from)) onDatagram(data, from, via);
    });
  }

  broadcast(data: Uint8Array, also?: readonly Address[]): void {
    this.inner.broadcast(data, also);
  }

  send(to: Address, data: Uint8Array): void {
    this.inner.send(to, data);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  setMulticastLoopback(on: boolean): void {
    this.inner.setMulticastLoopback?.(on);
  }
}
