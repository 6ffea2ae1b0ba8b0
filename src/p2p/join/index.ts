/**
 * Join: finding the group where multicast does not reach (another subnet, an access point or a
 * VPN that drops it), through seed addresses (`--join`), remembered peers and re-contact.
 *
 * Algorithm (memberlist's push/pull, in datagrams).
 *  - Sync. We send `ms.sync` by unicast to a seed (a host's door, its well-known port, or a
 *    member's own address); it answers with cursor-paged `ms.page`s of member hints (id and
 *    address, sorted by id, itself included), one page per request; we ask for the next page
 *    while the answer names a next cursor. Answers are matched by nonce, not by address: a door's
 *    answer leaves from its holder's own address. A request is retried after SYNC_RETRY_MS,
 *    doubling, at most SYNC_TRIES_MAX times.
 *  - Hello. A hint of a member that is not live here makes us send that address `ms.hello`
 *    (paced at HELLOS_PER_S, once per address per HELLO_REPEAT_MS), asking for an answer. The
 *    member there adds us on our hello, which is our own envelope from our own address, and
 *    answers with its own hello, on which we add it. A hint is never a fact: membership adds a
 *    member only on its own envelope (docs/security.md). A forged page can only make us send
 *    paced hellos to addresses of its choice, one datagram each.
 *  - Push half. A member that introduced itself to us (a sync, a hello asking for an answer) and
 *    with which we have not exchanged lists within SYNC_BACK_MIN_MS gets a sync from us too, so
 *    each side learns the other's list: two groups that meet through one pair merge. Hellos start
 *    at most HELLO_EXCHANGES_PER_S a second: a group joining at once says hello pairwise.
 *  - Re-contact. Every SEED_RESYNC_MS we sync again with each seed not live here (it may have
 *    been restarted, or the network healed; one live here is in our part of the group already);
 *    every RECONNECT_INTERVAL_MS with one random address among the dead members and the
 *    remembered peers not live (Serf's reconnect). So two halves of a partition with no seed in
 *    common find each other again once it heals.
 *  - Start. We sync with every seed and with up to REJOIN_CANDIDATES_MAX remembered peers.
 *  - Answers (pages and hello answers) are rate-limited per source and in all, and a request must
 *    be padded to SYNC_REQUEST_BYTES_MIN, so a forged source address gets at most 2x the bytes
 *    the forger sent, at a bounded rate. Every table here has a cap.
 * An observer (a one-shot command) syncs with seeds as `o: 1` (never added as a member) and asks
 * hinted members by a unicast probe instead of a hello; it remembers nothing.
 */
import type { MemberView, Protocol, ProtocolContext } from '../protocol.js';
import type { Envelope, PeerId } from '../wire.js';
import type { Body, Origin } from '../kit/message.js';
import { PROBE, type Membership, type Tags } from '../membership.js';
import type { Address } from '../transport/transport.js';
import type { RememberedPeers } from './remembered.js';
import {
  HELLO,
  JOIN_MESSAGES,
  PAGE,
  SYNC,
  SYNC_PAGE_ENTRIES_MAX,
  SYNC_PAGES_MAX,
  decodeHints,
  encodeHints,
  paddedEnough,
  paddingFor,
  type Hint,
} from './messages.js';

/** Seeds kept (`--join` repeated or a name resolving to several addresses). */
export const JOIN_SEEDS_MAX = 16;
/** First wait for a page before asking again, doubled at each try up to SYNC_RETRY_MAX_MS. */
export const SYNC_RETRY_MS = 250;
export const SYNC_RETRY_MAX_MS = 4000;
/** Requests per sync page before the target is given up until the next re-contact. */
export const SYNC_TRIES_MAX = 6;
/** Syncs in flight at once; more wait for the next re-contact. */
export const SYNCS_IN_FLIGHT_MAX = 32;
/** How often every seed is synced with again. */
export const SEED_RESYNC_MS = 30_000;
/** How often one dead or remembered member is tried (Serf's reconnect interval is 30 s; ours is cheaper). */
export const RECONNECT_INTERVAL_MS = 10_000;
/** Remembered peers synced with at start. */
export const REJOIN_CANDIDATES_MAX = 16;
/** The least time between two list exchanges with one member started by its introduction. */
export const SYNC_BACK_MIN_MS = 30_000;
/** Members whose last exchange time is kept (oldest forgotten first). */
export const SYNCED_MEMBERS_MAX = 2048;
/** Members called dead that are followed, to sync with one heard again (oldest forgotten first). */
export const DEAD_FOLLOWED_MAX = 2048;
/**
 * List exchanges a hello may start per second, in bursts of as many (exchangeWith). Each moves the
 * whole list both ways, and a group joining at once says hello pairwise: with one exchange per
 * hello, N peers moved about N^3 hints before they converged (120 through one seed: about 18,000
 * pages of 32; 400 took 7.5 virtual s to converge, 4 with this pace).
 */
export const HELLO_EXCHANGES_PER_S = 2;
/** Hellos sent per second, whatever the hints say, in bursts of at most HELLO_BURST. */
export const HELLOS_PER_S = 200;
export const HELLO_BURST = HELLOS_PER_S / 10;
/** Hinted addresses waiting for a hello; a hint older than HELLO_PENDING_MS is dropped. */
export const PENDING_HELLOS_MAX = 512;
export const HELLO_PENDING_MS = 5000;
/**
 * A hello not answered (the member not met) is sent again after HELLO_RETRY_MS, doubling, up to
 * HELLO_TRIES_MAX hellos in all: at 10 % loss each way a hello and its answer both arrive 81 % of
 * the time, and a one-shot command settles on whom it met within about a second (peer chat
 * --send), so a single lost datagram left a member out until the next re-sync. Tries at 0, 200,
 * 600 and 1400 ms miss a member with 0.19^4 = 0.13 % at that loss.
 */
export const HELLO_RETRY_MS = 200;
export const HELLO_TRIES_MAX = 4;
/** A first hello per address per this long; the addresses are kept up to HELLO_ADDRESSES_MAX. */
export const HELLO_REPEAT_MS = 10_000;
export const HELLO_ADDRESSES_MAX = 4096;
/** Answers (pages, hellos) per second to one source address, and to all. */
export const ANSWERS_PER_SOURCE_PER_S = 20;
export const ANSWERS_PER_S = 400;
/** Source addresses counted per second; answers to further sources wait for the next second. */
const ANSWER_SOURCES_MAX = 1024;
const NONCE_RANGE = 2 ** 32;

export interface JoinOptions {
  membership: Membership;
  /** A one-shot command: never introduced as a member, never answers, remembers nothing. */
  observer: boolean;
  remembered: RememberedPeers | null;
  /** Our own unicast address (valid once the node started). */
  address(): Address;
}

/** A page a seed answered: who answered (a door's holder), its member count, this page's hints. */
export interface SeedPage {
  sender: PeerId;
  total: number;
  hints: readonly Hint[];
}

/** A hinted member to say hello to: when the hint expires unsent, hellos sent, when the next is due. */
interface PendingHello {
  id: PeerId;
  expires: number;
  tries: number;
  nextAt: number;
  /** When the last hello went (-Infinity: none yet). */
  sentAt: number;
}

/** One sync under way with one target address: the page asked for and its retries. */
interface Sync {
  target: Address;
  nonce: number;
  cursor: PeerId | '';
  /** Pages received so far (SYNC_PAGES_MAX bounds a sync). */
  pages: number;
  tries: number;
  /** Requests per page before giving up: one for a reconnect, which is tried again anyway. */
  triesMax: number;
  nextAt: number;
  back: boolean;
}

export class Join implements Protocol {
  readonly messages = JOIN_MESSAGES.checks;
  readonly attachments = { [PAGE.type]: decodeHints };
  private readonly dispatch = JOIN_MESSAGES.dispatch({
    'ms.sync': (b, from) => this.onSync(b, from),
    // Read in onMessage, with its attachment.
    'ms.page': () => {},
    'ms.hello': (b, from) => this.onHello(b, from),
  });
  private seeds: Address[] = [];
  private readonly syncs = new Map<number, Sync>();
  /** Hinted addresses waiting for a hello or its retry (insertion order = arrival). */
  private readonly pendingHellos = new Map<Address, PendingHello>();
  private readonly helloSentAt = new Map<Address, number>();
  /**
   * An observer's probes still unanswered, by address: when the next goes, and when it gives up.
   * A member answers an observer's probe with its heartbeat, once: lost, nothing else would make
   * it known (an observer says no hello, and members do not sync back with it) before the seeds'
   * re-sync. So the probe is repeated every SYNC_RETRY_MS until the member there is live here, for
   * HELLO_PENDING_MS at most; at most PENDING_HELLOS_MAX addresses, within the hellos' pace.
   */
  private readonly probing = new Map<Address, { nextAt: number; until: number }>();
  /** When we last exchanged lists with a member, by id (SYNC_BACK_MIN_MS). */
  private readonly syncedAt = new Map<PeerId, number>();
  private helloBudget = 0;
  /** What is left of the hello-started exchanges' budget (HELLO_EXCHANGES_PER_S), and since when. */
  private readonly helloExchanges = { at: -Infinity, tokens: 0 };
  private lastTick: number | null = null;
  private answers = { second: -Infinity, total: 0, bySource: new Map<Address, number>() };
  private started = false;
  private nextSeedSync = Infinity;
  private nextReconnect = Infinity;
  /** Member changes to remember, written in one batch once the current turn is handled. */
  private toRemember: Array<{ member: MemberView; connected: boolean }> = [];
  /** Members we called dead, by id, oldest first (followDeaths). */
  private readonly deadIds = new Set<PeerId>();
  /** The member that answered for each seed (a door's pages come from its holder's address). */
  private readonly seedMembers = new Map<Address, PeerId>();
  /** Who listens to the seeds' pages (onSeedPage). */
  private readonly seedPageListeners: Array<(seed: Address, page: SeedPage) => void> = [];
  /**
   * The live members (and us) as pages list them, sorted by id: built again only when
   * membership's version moved, so a page costs no scan of the members (a seed answers about
   * N / SYNC_PAGE_ENTRIES_MAX pages per joiner).
   */
  private liveIndex = { version: -1, sorted: [] as Hint[] };

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly opts: JoinOptions,
  ) {}

  onMessage(env: Envelope, from: Address): void {
    const page = PAGE.of(env);
    if (page) this.onPage(page, env.a as Hint[], env.i);
    else this.dispatch(env, from);
  }

  /**
   * The tags of a member introducing itself by this envelope (a sync or a hello from a member),
   * which membership then adds as it adds a member on its heartbeat; undefined for anything else.
   */
  introduction(env: Envelope): { tags: Tags; tagsVersion?: number } | undefined {
    const b = SYNC.of(env) ?? HELLO.of(env);
    if (b?.tags === undefined) return undefined;
    return b.tagsVersion === undefined ? { tags: b.tags } : { tags: b.tags, tagsVersion: b.tagsVersion };
  }

  /**
   * Our tags and their version, as a sync or hello carries them: without the version, every
   * member that added us on them pinged us for them at our first heartbeat (N^2 pings as a group
   * meets: at 200 unicast-only members, about 6 a second per member for a minute).
   */
  private ownTags(): { tags: Tags; tagsVersion: number } {
    return { tags: this.opts.membership.ownTags, tagsVersion: this.opts.membership.ownTagsVersion };
  }

  /** Seeds to sync with (resolved `--join` addresses); once started, new ones are synced with at once. */
  setSeeds(seeds: readonly Address[]): void {
    const fresh = seeds.slice(0, JOIN_SEEDS_MAX).filter((s) => !this.seeds.includes(s));
    this.seeds = [...new Set(seeds)].slice(0, JOIN_SEEDS_MAX);
    if (this.started) for (const s of fresh) this.sync(s, false);
  }

  /**
   * Calls `listener` with every page a seed answers (`peer doctor` reports which seeds answer, and
   * whom they list), for as long as the peer runs.
   */
  onSeedPage(listener: (seed: Address, page: SeedPage) => void): void {
    this.seedPageListeners.push(listener);
  }

  /** Syncs with the seeds and with the most recently seen remembered peers. */
  start(): void {
    this.started = true;
    const now = this.ctx.now();
    this.nextSeedSync = now + SEED_RESYNC_MS;
    this.nextReconnect = now + RECONNECT_INTERVAL_MS;
    for (const s of this.seeds) this.sync(s, false);
    for (const a of this.opts.remembered?.candidates(REJOIN_CANDIDATES_MAX) ?? []) this.sync(a, false);
  }

  /**
   * A membership event: members taken on their own word are remembered, in one batch per turn;
   * a member heard again after we called it dead gets a sync (see followDeaths).
   */
  memberChanged(member: MemberView, connected: boolean): void {
    if (this.opts.observer) return;
    this.followDeaths(member, connected);
    if (!this.opts.remembered) return;
    if (this.toRemember.length === 0) this.ctx.soon(() => this.flushRemembered());
    this.toRemember.push({ member, connected });
  }

  /**
   * A member back from the dead (a cut that healed, a partition, a suspended laptop) is synced
   * with at once: whoever was cut off learns from it, by its list, the members that its multicast
   * does not reach (another subnet), and says hello to them, instead of waiting for the next
   * reconnect or re-sync (up to RECONNECT_INTERVAL_MS, SEED_RESYNC_MS). The member's own envelope
   * brought it back, so it costs a forger nothing it could not already cause by speaking.
   */
  private followDeaths(member: MemberView, connected: boolean): void {
    if (!connected) {
      if (member.state !== 'dead') return;
      // Met before and gone silent: a hint of it (a list from a member that still hears it) is
      // worth a hello at once, whenever the last one was.
      this.helloSentAt.delete(member.address);
      this.deadIds.delete(member.id); // re-inserted last: the oldest is first
      this.deadIds.add(member.id);
      if (this.deadIds.size > DEAD_FOLLOWED_MAX) this.deadIds.delete(this.deadIds.values().next().value!);
      return;
    }
    if (this.deadIds.delete(member.id) && this.started) this.ctx.soon(() => this.sync(member.address, false));
  }

  private flushRemembered(): void {
    const batch = this.toRemember;
    this.toRemember = [];
    this.opts.remembered?.remember(batch, this.ctx.wall());
  }

  /** Returns when it next has work: a paced hello, a sync retry, the seeds' re-sync or a reconnect. */
  tick(now: number): number {
    if (!this.started) return Infinity;
    const since = this.lastTick === null ? 0 : now - this.lastTick;
    this.lastTick = now;
    this.helloBudget = Math.min(HELLO_BURST, this.helloBudget + (since * HELLOS_PER_S) / 1000);
    this.sendHellos(now);
    this.reprobe(now);
    for (const s of this.syncs.values()) if (now >= s.nextAt) this.retry(s, now);
    if (now >= this.nextSeedSync) {
      this.nextSeedSync = now + SEED_RESYNC_MS;
      for (const s of this.seeds) if (!this.seedLive(s)) this.sync(s, false);
    }
    if (now >= this.nextReconnect) {
      this.nextReconnect = now + RECONNECT_INTERVAL_MS;
      const target = this.reconnectTarget();
      if (target) this.sync(target, false, 1);
    }
    let next = Math.min(this.nextSeedSync, this.nextReconnect);
    for (const s of this.syncs.values()) next = Math.min(next, s.nextAt);
    for (const p of this.probing.values()) next = Math.min(next, p.nextAt);
    // Hellos wait for their time and for the pace: the budget grows by one every 1000 / HELLOS_PER_S ms.
    let helloAt = Infinity;
    for (const p of this.pendingHellos.values()) helloAt = Math.min(helloAt, p.nextAt);
    if (helloAt < Infinity)
      next = Math.min(
        next,
        Math.max(helloAt, now + Math.max(1, ((1 - this.helloBudget) * 1000) / HELLOS_PER_S)),
      );
    return next;
  }

  /**
   * Whether the member that answered for seed `s` is live here: we are in its part of the group,
   * whose members we learn as they come (by their hellos, and SWIM's updates). Syncing with it
   * again anyway made every member fetch the whole list from the one seed every SEED_RESYNC_MS:
   * with N members joining through one seed, N lists of N at once, past the seed's answer budget.
   */
  private seedLive(s: Address): boolean {
    const id = this.seedMembers.get(s);
    return id !== undefined && this.opts.membership.liveAddress(id) !== undefined;
  }

  /** One random address among the dead members and the remembered peers that are not live. */
  private reconnectTarget(): Address | undefined {
    const list = this.opts.membership.list();
    const live = new Set(
      list.filter((m) => m.state === 'alive' || m.state === 'suspect').map((m) => m.address),
    );
    const choices = new Set(list.filter((m) => m.state === 'dead').map((m) => m.address));
    for (const a of this.opts.remembered?.candidates(REJOIN_CANDIDATES_MAX) ?? []) choices.add(a);
    const pick = [...choices].filter((a) => !live.has(a));
    return pick.length === 0 ? undefined : pick[Math.floor(this.ctx.random() * pick.length)];
  }

  /** Starts a sync with `target` unless one is under way there or too many are. */
  private sync(target: Address, back: boolean, triesMax = SYNC_TRIES_MAX): void {
    if (target === this.opts.address() || this.syncs.size >= SYNCS_IN_FLIGHT_MAX) return;
    for (const s of this.syncs.values()) if (s.target === target) return;
    const s: Sync = { target, nonce: 0, cursor: '', pages: 0, tries: 0, triesMax, nextAt: 0, back };
    this.request(s, this.ctx.now());
  }

  private retry(s: Sync, now: number): void {
    if (s.tries >= s.triesMax) this.syncs.delete(s.nonce);
    else this.request(s, now);
  }

  /**
   * Asks `s.target` for the page after `s.cursor`: under a fresh nonce for a new page, under the
   * same one again for a retry (so a late answer to the first request still counts).
   */
  private request(s: Sync, now: number): void {
    if (s.tries === 0) {
      do s.nonce = Math.floor(this.ctx.random() * NONCE_RANGE);
      while (this.syncs.has(s.nonce));
      this.syncs.set(s.nonce, s);
    }
    s.nextAt = now + Math.min(SYNC_RETRY_MS * 2 ** s.tries, SYNC_RETRY_MAX_MS);
    this.ctx.wakeAt(s.nextAt);
    s.tries++;
    const body: Body<typeof SYNC> = {
      cursor: s.cursor,
      nonce: s.nonce,
      ...(this.opts.observer ? { observer: 1 as const } : this.ownTags()),
      ...(s.back ? { back: 1 as const } : {}),
    };
    const padding = paddingFor(SYNC.toWire(body));
    this.ctx.send(s.target, ...SYNC.out(padding === undefined ? body : { ...body, padding }));
  }

  private onSync(b: Body<typeof SYNC>, from: Origin): void {
    if (this.opts.observer) return;
    if (!paddedEnough(SYNC.toWire(b)) || !this.mayAnswer(from.address)) {
      this.ctx.refuse('sync');
      return;
    }
    this.answerPage(b, from.address);
    if (b.observer === undefined && b.back === undefined) this.exchangeWith(from);
  }

  /** One page of the live members (and us), sorted by id, after the request's cursor. */
  private answerPage(b: Body<typeof SYNC>, to: Address): void {
    const all = this.live().sorted;
    const from = firstAfter(all, b.cursor);
    const page = all.slice(from, from + SYNC_PAGE_ENTRIES_MAX);
    const more = all.length - from > page.length;
    this.ctx.send(
      to,
      ...PAGE.out({ nonce: b.nonce, total: all.length, ...(more ? { next: page.at(-1)!.id } : {}) }),
      encodeHints(page),
    );
  }

  /** `hints`: the attachment as decodeHints parsed it (the codec requires one on a page). */
  private onPage(b: Body<typeof PAGE>, hints: readonly Hint[], sender: PeerId): void {
    const s = this.syncs.get(b.nonce);
    // Not an answer to a request under way (a forgery, or a second answer to a retried request):
    // nothing to learn from it.
    if (!s) return;
    this.syncs.delete(b.nonce);
    const now = this.ctx.now();
    if (this.seeds.includes(s.target)) {
      this.seedMembers.set(s.target, sender);
      for (const l of this.seedPageListeners) l(s.target, { sender, total: b.total, hints });
    }
    this.exchanged(sender, now);
    for (const h of hints) this.hinted(h, now);
    if (b.next !== undefined && b.next > s.cursor && ++s.pages < SYNC_PAGES_MAX) {
      s.cursor = b.next;
      s.tries = 0;
      s.triesMax = SYNC_TRIES_MAX; // it answered: worth the retries now
      this.request(s, now);
    }
  }

  /** A member another one says is at an address (membership's piggybacked updates): see hinted(). */
  hint(h: Hint): void {
    this.hinted(h, this.ctx.now());
  }

  /** A hinted member: a hello to its address, unless it is live here (or is us). */
  private hinted(h: Hint, now: number): void {
    if (h.id === this.ctx.self.id || h.address === this.opts.address()) return;
    if (this.met(h.id, h.address)) return;
    if (this.pendingHellos.has(h.address)) return;
    if (this.pendingHellos.size >= PENDING_HELLOS_MAX) {
      this.ctx.refuse('hint');
      return;
    }
    this.pendingHellos.set(h.address, {
      id: h.id,
      expires: now + HELLO_PENDING_MS,
      tries: 0,
      nextAt: now,
      sentAt: -Infinity,
    });
    this.ctx.wakeAt(now);
  }

  /**
   * Whether the members the seeds name are still being met: a seed's list is still being asked
   * for (a lost page is asked for again), or a hello to an address it named (an observer's
   * probe) is still to be retried, or the last one's answer may still come. A command that looks
   * for the group before it acts waits for these (cli/peer.ts discoverSettled): where no
   * multicast carries its probes, they are how it meets the members beyond, and one missed there
   * is sent nothing. A seed meets us by its own sync too, so a member met is no sign its list came.
   */
  greeting(): boolean {
    const now = this.ctx.now();
    for (const s of this.syncs.values()) if (this.seeds.includes(s.target)) return true;
    for (const [address, p] of this.pendingHellos) {
      if (this.met(p.id, address) || (p.tries === 0 && p.expires < now)) continue;
      if (p.tries < HELLO_TRIES_MAX || now - p.sentAt < HELLO_RETRY_MS) return true;
    }
    if (this.probing.size === 0) return false;
    const live = new Set(this.opts.membership.live().map((m) => m.address));
    for (const [address, p] of this.probing) if (now <= p.until && !live.has(address)) return true;
    return false;
  }

  /** Whether the member is live here at that address: met already. */
  private met(id: PeerId, address: Address): boolean {
    return this.opts.membership.liveAddress(id) === address;
  }

  /** See `liveIndex`. */
  private live(): { sorted: Hint[] } {
    const version = this.opts.membership.version;
    if (this.liveIndex.version === version) return this.liveIndex;
    const sorted: Hint[] = [...this.opts.membership.liveAddresses()];
    sorted.push({ id: this.ctx.self.id, address: this.opts.address() });
    sorted.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    this.liveIndex = { version, sorted };
    return this.liveIndex;
  }

  /** Hellos due to the hinted addresses (first ones, then retries), oldest hint first, within the pace. */
  private sendHellos(now: number): void {
    for (const [address, p] of this.pendingHellos) {
      if (p.nextAt > now) continue;
      if (this.helloBudget < 1) return;
      const done = p.tries >= HELLO_TRIES_MAX || this.met(p.id, address);
      const last = this.helloSentAt.get(address);
      const stale =
        p.tries === 0 && (p.expires < now || (last !== undefined && now - last < HELLO_REPEAT_MS));
      if (done || stale) {
        this.pendingHellos.delete(address);
        continue;
      }
      this.helloBudget--;
      if (p.tries === 0) {
        this.helloSentAt.delete(address);
        this.helloSentAt.set(address, now);
        if (this.helloSentAt.size > HELLO_ADDRESSES_MAX)
          this.helloSentAt.delete(this.helloSentAt.keys().next().value!);
      }
      p.nextAt = now + HELLO_RETRY_MS * 2 ** p.tries;
      p.sentAt = now;
      p.tries++;
      this.hello(address, true);
    }
  }

  /** An observer's unanswered probes again (see `probing`), within the hellos' pace. */
  private reprobe(now: number): void {
    if (this.probing.size === 0) return;
    const live = new Set(this.opts.membership.live().map((m) => m.address));
    for (const [address, p] of this.probing) {
      if (now > p.until || live.has(address)) this.probing.delete(address);
      else if (now >= p.nextAt && this.helloBudget >= 1) {
        this.helloBudget--;
        p.nextAt = now + SYNC_RETRY_MS;
        this.ctx.send(address, ...PROBE.out({ observer: 1 }));
      }
    }
  }

  /** Our hello (an observer asks by probe: members answer it with their heartbeat). */
  private hello(to: Address, answer: boolean): void {
    if (this.opts.observer) {
      this.ctx.send(to, ...PROBE.out({ observer: 1 }));
      const now = this.ctx.now();
      if (this.probing.size < PENDING_HELLOS_MAX)
        this.probing.set(to, { nextAt: now + SYNC_RETRY_MS, until: now + HELLO_PENDING_MS });
      this.ctx.wakeAt(now + SYNC_RETRY_MS);
      return;
    }
    const body: Body<typeof HELLO> = { ...this.ownTags(), ...(answer ? { answer: 1 } : {}) };
    const padding = answer ? paddingFor(HELLO.toWire(body)) : undefined;
    this.ctx.send(to, ...HELLO.out(padding === undefined ? body : { ...body, padding }));
  }

  /** Membership added the sender on this hello already; we answer if asked, then exchange lists. */
  private onHello(b: Body<typeof HELLO>, from: Origin): void {
    if (b.answer === undefined || this.opts.observer) return;
    if (!paddedEnough(HELLO.toWire(b)) || !this.mayAnswer(from.address)) {
      this.ctx.refuse('hello');
      return;
    }
    this.hello(from.address, false);
    this.exchangeWith(from, true);
  }

  /**
   * The push half: a member that introduced itself learns our list, and we its list, once a while;
   * after a hello (`paced`) at most HELLO_EXCHANGES_PER_S a second.
   */
  private exchangeWith(from: Origin, paced = false): void {
    const now = this.ctx.now();
    const last = this.syncedAt.get(from.id);
    if (last !== undefined && now - last < SYNC_BACK_MIN_MS) return;
    if (paced) {
      const b = this.helloExchanges;
      b.tokens = Math.min(HELLO_EXCHANGES_PER_S, b.tokens + ((now - b.at) * HELLO_EXCHANGES_PER_S) / 1000);
      b.at = now;
      if (b.tokens < 1) return;
      b.tokens--;
    }
    this.exchanged(from.id, now);
    this.sync(from.address, true);
  }

  private exchanged(id: PeerId, now: number): void {
    this.syncedAt.delete(id); // re-inserted last: the oldest is first
    this.syncedAt.set(id, now);
    if (this.syncedAt.size > SYNCED_MEMBERS_MAX) this.syncedAt.delete(this.syncedAt.keys().next().value!);
  }

  /** Whether one more answer to `source` fits this second's budgets (per source and in all). */
  private mayAnswer(source: Address): boolean {
    const now = this.ctx.now();
    const a = this.answers;
    if (now - a.second >= 1000) {
      a.second = now;
      a.total = 0;
      a.bySource.clear();
    }
    const n = a.bySource.get(source) ?? 0;
    if (a.total >= ANSWERS_PER_S || n >= ANSWERS_PER_SOURCE_PER_S) return false;
    if (n === 0 && a.bySource.size >= ANSWER_SOURCES_MAX) return false;
    a.total++;
    a.bySource.set(source, n + 1);
    return true;
  }
}

/** The index of the first hint with an id after `cursor` in `sorted` (by id): a binary search. */
function firstAfter(sorted: readonly Hint[], cursor: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]!.id > cursor) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
