/**
 * Reach: which members our multicast reaches, so that every group send also goes by unicast to
 * those it does not (another subnet behind a router, a switch or access point that drops
 * multicast one way, a VPN, a peer run with `--transport unicast`). The protocols above keep
 * their meaning of `broadcast`, "to every member": the node multicasts, then sends the same bytes
 * to `fanout()` (node.ts, transport.ts).
 *
 * Algorithm. Per member, two views of one path each way:
 *   - ours: whether we hear its multicast. Yes while an admitted envelope of its arrived on the
 *     group within the silence window; no once only unicast from it arrived in that window (it is
 *     alive, its multicast does not come); unchanged while it is silent on both paths (a silence
 *     says nothing about multicast: membership deals with it);
 *   - its own, about us: whether it hears our multicast, as it last told us. Until it says, we
 *     assume the path is symmetric: yes if we hear it on the group, no if we know it only by
 *     unicast.
 * Each peer tells a member its view with `rc.st {g}` when that view flips, and a "no" at once on
 * first contact (a "yes" agrees with the member's own default, or, where it does not, the member
 * tells us "no" first and our answer carries the "yes"). A statement carries a nonce `n`; the
 * member answers with `e` = that nonce and its own view, so each statement is retried, with
 * backoff, until answered, and while ours is "no" it is refreshed every REACH_REFRESH_MS (longer
 * in a large group: REACH_REFRESH_PER_MEMBER_MS): one lost datagram, or a member that restarted
 * and forgot us, does no lasting harm.
 * The fan-out: the live members (alive or suspect) that say our multicast does not reach them, or
 * every live member when we run unicast-only; none when we run multicast-only.
 *
 * Who may make us send (docs/security.md, "Joining and unicast"). In an open group anyone can
 * send a datagram with a forged source address; a fan-out list that took a forged word would aim
 * every group send of ours at a victim. So
 *   - the list holds members only: a member is added, or comes back alive, only on its own
 *     envelope from its own address (membership.ts); a statement counts only from a live member
 *     at its known address, anything else is refused and counted (`refused.reach`);
 *   - a member enters the list only once its address is proved its own: a nonce we sent to that
 *     address came back from it (return routability, as QUIC's address validation). A member
 *     added from a forged source address never answers, so it gets our statements (at most one
 *     per retry, 1:1 with what the forger sends) but never our group traffic;
 *   - answers are rate-limited per member (REACH_ANSWER_GAP_MS), and the list is capped per
 *     host (FANOUT_PER_HOST_MAX): one host can prove as many addresses as it has ports.
 * A forged statement from a member's own spoofed address can only cost needless copies ("no"),
 * or stop our copies ("yes") until that member's next refresh restores them.
 *
 * Observers (the monitor, one-shot commands) are no members, yet read what the group says and
 * send to it. One that does not hear our multicast (met through `--join`) states so like a
 * member, marked `o`, and refreshes it every REACH_REFRESH_MS while it runs; its address is
 * proved by the same nonce exchange, and it is in our fan-out while its statements keep coming
 * (OBSERVER_FANOUT_MS). At most OBSERVERS_MAX are kept, and what we answer observers not proved
 * yet shares the strangers' budget (REACH_HELLOS_PER_S): a forged source gets a few answers a
 * second, never our group traffic. The observer's own fan-out is the members it proved.
 *
 * A state machine over the context (protocol.ts): no socket, no timer, no clock of its own. The
 * node feeds it every admitted datagram with how it came (`heard`) and every membership event
 * (`follow`), and reads `fanout()` on every group send, so the list is cached and rebuilt only
 * when it changes.
 */
import type { PeerId } from './wire.js';
import { f, message, messages, type Body, type Origin } from './kit/message.js';
import { PROBE } from './membership.js';
import { MinHeap } from './kit/heap.js';
import { SecondBudget } from './bounds.js';
import type { MemberState, PeerEvent, Protocol, ProtocolContext } from './protocol.js';
import { parseAddress, type Address, type Via } from './transport/transport.js';

/**
 * How a peer reaches the group (`--transport`): `auto` multicasts and fans out by unicast to the
 * members that do not hear it; `multicast` never fans out (today's LAN behaviour); `unicast`
 * sends no multicast and fans out to every live member.
 */
export const REACH_MODES = ['auto', 'multicast', 'unicast'] as const;
export type ReachMode = (typeof REACH_MODES)[number];

/**
 * A member is heard on the group while one of its envelopes arrived there within this many of its
 * heartbeat intervals, and never less than REACH_SILENCE_MIN_MS: at 10 % loss, three heartbeats
 * lost in a row happen once in a thousand windows, and a wrong "no" costs only duplicates until
 * the next one arrives.
 */
export const REACH_SILENCE_HEARTBEATS = 3;
export const REACH_SILENCE_MIN_MS = 1000;
/**
 * A member first met by unicast (the answer to our probe comes before its next multicast
 * heartbeat) is not declared unheard on the group before this many heartbeat intervals: on a
 * LAN its heartbeat arrives by then, and the "no" would be withdrawn at once.
 */
export const REACH_SETTLE_HEARTBEATS = 2;
/** A statement not answered is sent again after this, doubling up to REACH_REFRESH_MS. */
export const REACH_RETRY_MS = 250;
/**
 * While we hear a member only by unicast, our "no" is stated again this often: a member that lost
 * its state of us (a restart we did not notice, a forged "yes") fans out to us again within this.
 * Costs two datagrams per such member per period.
 */
export const REACH_REFRESH_MS = 2000;
/**
 * In a large group the refresh period stretches to this many ms per member known (those we state
 * "no" to are some of them), so that refreshing costs a peer at most about
 * 1000 / REACH_REFRESH_PER_MEMBER_MS statements a second (and as many answers) whatever N, as a
 * unicast-only group of 1,000 must (issue: per-peer datagrams per second independent of N). A
 * restart does not wait for it: on a new port the member moves and its entry starts afresh, stated
 * to as on first contact; at the same address its own first statement to us asks for our view
 * (heard()). What waits longer is only a forged "yes".
 */
export const REACH_REFRESH_PER_MEMBER_MS = 200;
/**
 * How often our "no" is restated to each member while we know `members` of them: REACH_REFRESH_MS,
 * stretched by group size (REACH_REFRESH_PER_MEMBER_MS). Each member's period counts from when we
 * met it, so a group that met at once restates in one burst per period.
 */
export function reachRefreshMs(members: number): number {
  return Math.max(REACH_REFRESH_MS, members * REACH_REFRESH_PER_MEMBER_MS);
}
/** At most one answer to a member's statements per this many ms: a flood of them costs one answer each. */
export const REACH_ANSWER_GAP_MS = 50;
/**
 * Fan-out addresses kept per host (IP address): the 50 peers on one host fit, and one
 * host, which can prove as many addresses as it has ports, gets at most this many copies of each
 * group send. The members met first keep their place (a late flood cannot push them out).
 */
export const FANOUT_PER_HOST_MAX = 64;
/**
 * Unicast probes per second to peers whose statements reach us before we know them (hello()).
 * Peers meet a few at a time; a forger's statements from made-up sources get no more than this.
 */
export const REACH_HELLOS_PER_S = 20;
/** Observers kept (see the header): the monitor and a few one-shot commands at a time. */
export const OBSERVERS_MAX = 8;
/** An observer leaves our fan-out when no statement of its came for this long (it restates every REACH_REFRESH_MS). */
export const OBSERVER_FANOUT_MS = 3 * REACH_REFRESH_MS;
const NONCE_MAX = 2 ** 32 - 1;

/**
 * `g` 1: "I hear your multicast", 0: "I do not". `n`: a nonce to answer with `e`; `e`: the nonce of
 * the statement this answers (it proves the answering member's address, and that it got ours).
 */
export const STATEMENT = message('rc.st', {
  hears: f.literal(0, 1).wire('g'),
  nonce: f.optional(f.uint(NONCE_MAX)).wire('n'),
  echo: f.optional(f.uint(NONCE_MAX)).wire('e'),
  /** Sent by an observer (see the header). */
  observer: f.optional(f.literal(1)).wire('o'),
});
const MESSAGES = messages(STATEMENT);

/** What reach reads of a member (membership.ts), for the rare datagram from an address it did not expect. */
export interface ReachMembers {
  get(id: PeerId): { address: Address; state: MemberState } | undefined;
  /** Member `id`'s incarnation, without the view get() builds: read for every datagram heard. */
  incarnationOf(id: PeerId): number | undefined;
  /** The heartbeat interval member `id` announced (it beats slower in SLOW, config.ts). */
  beatIntervalMs?(id: PeerId): number | undefined;
}

export interface ReachOptions {
  mode: ReachMode;
  /** Our transport sends no multicast and hears none (transport.ts `unicast`). */
  unicastOnly: boolean;
  /** Observers are no members: nobody takes their statements, and they fan out nothing. */
  observer: boolean;
  heartbeatIntervalMs: number;
  members: ReachMembers;
}

interface Entry {
  id: PeerId;
  address: Address;
  /** Its incarnation as membership last took it (heard()). */
  incarnation: number;
  host: string;
  /** When it was met (or met again after a death): the settle time runs from here. */
  since: number;
  groupHeardAt: number;
  unicastHeardAt: number;
  /** Our last view with evidence (view()), kept through silences; undefined: none yet. */
  seen: boolean | undefined;
  /** Our view as last told (or carried by an answer); undefined: not told, the member's default stands. */
  told: boolean | undefined;
  /** Its word on whether our multicast reaches it; undefined: not said yet. */
  hearsUs: boolean | undefined;
  /** Its address answered a nonce of ours from that address. */
  validated: boolean;
  /** The nonce of our statement awaiting an answer, or null. */
  awaiting: number | null;
  /** It was heard at a higher incarnation: our view goes to it again, at restateAt() (heard()). */
  restate: boolean;
  sentAt: number;
  retryGap: number;
  answeredAt: number;
  /** When it next may have work (tick()); Infinity: nothing due. */
  dueAt: number;
}

/** An observer that stated it does not hear our multicast, by its address. */
interface ObserverEntry {
  id: PeerId;
  validated: boolean;
  /** Our nonce it must echo from this address; null once proved. */
  awaiting: number | null;
  heardAt: number;
  answeredAt: number;
}

export class Reach implements Protocol {
  readonly messages = MESSAGES.checks;
  readonly onMessage = MESSAGES.dispatch({ 'rc.st': (b, from) => this.onStatement(b, from) });
  private readonly entries = new Map<PeerId, Entry>();
  private readonly observers = new Map<Address, ObserverEntry>();
  private cached: readonly Address[] = [];
  private dirty = false;
  /**
   * A tick looks only at the entries that heard or said something since the last one (`touched`)
   * and at those whose deadline came (`due`, by the time each next may have work: an item counts
   * while its entry's `dueAt` is still its time), and at every entry only after a member went
   * (`rescan`: the refresh period follows the group's size, so every restatement comes sooner). A
   * member that came moves them later, which an item that comes early finds out: a rescan per
   * join made a join's burst O(N) per new member. Looking at every entry at every tick cost each
   * peer O(N) per datagram heard: at 400 members, most of a simulated group's time.
   */
  private readonly touched = new Set<Entry>();
  private readonly due = new MinHeap<{ at: number; e: Entry }>((x, y) => x.at < y.at);
  private rescan = true;
  /** Entries looked at by ticks (tests read it: per tick it follows the traffic, not the group's size). */
  readonly stats = { examined: 0 };
  /** Datagrams to strangers we may still send this second (hellos, answers to unvalidated ones). */
  private readonly strangers = new SecondBudget(REACH_HELLOS_PER_S);
  private readonly settleMs: number;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly opts: ReachOptions,
  ) {
    this.settleMs = opts.unicastOnly ? 0 : REACH_SETTLE_HEARTBEATS * opts.heartbeatIntervalMs;
  }

  /** The addresses every group send also goes to by unicast (see the header); cached. */
  fanout(): readonly Address[] {
    if (this.dirty) this.rebuild();
    return this.cached;
  }

  /** Whether member `id` says our multicast reaches it (its default until it says; undefined: not a live member). */
  hearsUs(id: PeerId): boolean | undefined {
    const e = this.entries.get(id);
    return e && this.theyHear(e);
  }

  /**
   * Whether our group sends reach member `id` now: it hears our multicast, or its proved address
   * is in the fan-out. False for a member we do not follow, or one met by unicast whose address
   * has not answered yet. Multicast-only, every member counts as reached: nothing else would
   * reach one that does not hear us, and waiting for it would not help.
   */
  reaches(id: PeerId): boolean {
    if (this.opts.mode === 'multicast') return true;
    const e = this.entries.get(id);
    return e !== undefined && (this.theyHear(e) || this.fanout().includes(e.address));
  }

  /** Whether we hear member `id`'s multicast, as we see it now (undefined: no evidence yet). */
  weHear(id: PeerId): boolean | undefined {
    const e = this.entries.get(id);
    return e && this.view(e, this.ctx.now());
  }

  /**
   * An admitted datagram (an envelope or a frame) from member `id` arrived from `from` by `via`,
   * after membership observed it. A member restarted at the same address forgot what we told it, and may not
   * know us: its first statement to us, which it makes as to anyone it meets, asks for our view;
   * but where our sends reach it only by unicast and we still take it to hear our multicast (its
   * word from before), it never meets us. So a higher incarnation (a restart, or a refutation:
   * membership does not tell them apart at one address) of a member we take to hear us gets our
   * statement again: a process that does not know us answers a stranger's statement with a probe
   * (onStatement), and meets us. One in our fan-out meets us by our group sends. The incarnation is
   * membership's, which bounds how far a datagram may move it (the envelope's own field is not).
   * Not at once, but at the member's next restatement time (restateAt()): most rises are
   * refutations, and where CPU-starved peers suspect each other, a group of 50 refuted dozens of
   * times a second, each costing the refuter a statement from every member and its answers.
   */
  heard(id: PeerId, from: Address, via: Via): void {
    const e = this.entry(id, from);
    if (!e) return;
    if (via === 'group') e.groupHeardAt = this.ctx.now();
    else e.unicastHeardAt = this.ctx.now();
    this.touched.add(e);
    const incarnation = this.opts.members.incarnationOf(id);
    if (incarnation === undefined || incarnation <= e.incarnation) return;
    e.incarnation = incarnation;
    if (e.told !== undefined && e.awaiting === null && this.theyHear(e)) e.restate = true;
  }

  /** Follows membership: a member met or back alive gets an entry; one dead or left loses it. */
  follow(e: PeerEvent): void {
    if (e.kind === 'dead' || e.kind === 'left') {
      if (this.entries.delete(e.member.id)) {
        this.dirty = true;
        // The refresh period follows the group's size: every entry's restatement moved.
        this.rescan = true;
      }
    } else if (e.kind === 'join' || e.kind === 'alive' || e.kind === 'restart') {
      const m = e.member;
      const known = this.entries.get(m.id);
      if (!known) {
        const e = this.fresh(m.id, m.address, m.incarnation);
        this.entries.set(m.id, e);
        this.touched.add(e);
      } else if (known.address !== m.address) this.moved(known, m.address, m.incarnation);
      else return;
      // Unicast-only, a member gets none of our group sends until its address is proved: start
      // the exchange once this message is handled rather than at the next tick.
      if (this.settleMs === 0) this.ctx.soon(() => this.greet(m.id));
    }
  }

  private greet(id: PeerId): void {
    const e = this.entries.get(id);
    if (e && e.awaiting === null && e.told === undefined) this.exchange(e, this.ctx.now());
    if (e) this.touched.add(e);
  }

  /** Returns when it next has work: a statement due, a retry, or a view that may flip. */
  tick(now: number): number {
    const observersAt = this.expireObservers(now);
    if (this.rescan) {
      this.rescan = false;
      this.due.clear();
      for (const e of this.entries.values()) this.touched.add(e);
    }
    for (let top = this.due.peek(); top && top.at <= now; top = this.due.peek()) {
      this.due.pop();
      if (this.current(top)) this.touched.add(top.e);
    }
    for (const e of this.touched) {
      if (this.entries.get(e.id) !== e) continue;
      e.dueAt = this.update(e, now);
      if (e.dueAt < Infinity) this.due.push({ at: e.dueAt, e });
    }
    this.touched.clear();
    // Items left behind by entries whose deadline moved: dropped as they come to the top, and all at
    // once when they outnumber the entries (a member heard often, with a far deadline, adds one each time).
    if (this.due.size > 4 * this.entries.size + 64) {
      this.due.clear();
      for (const e of this.entries.values()) if (e.dueAt < Infinity) this.due.push({ at: e.dueAt, e });
    }
    let top = this.due.peek();
    while (top && !this.current(top)) {
      this.due.pop();
      top = this.due.peek();
    }
    return Math.min(observersAt, top?.at ?? Infinity);
  }

  private current(item: { at: number; e: Entry }): boolean {
    return item.e.dueAt === item.at && this.entries.get(item.e.id) === item.e;
  }

  /** What entry `e` has to do now (see the header); returns when it next may have work. */
  private update(e: Entry, now: number): number {
    this.stats.examined++;
    const view = this.view(e, now);
    if (view !== undefined && view !== e.seen) {
      e.seen = view;
      // Until the member says, its default follows our view (theyHear).
      if (e.hearsUs === undefined) this.dirty = true;
    }
    // Each side states its view once at first contact (after the settle time), then on flips;
    // an observer only a "no" (a member takes no observer to hear it unless it says so).
    const flipped =
      view !== undefined &&
      (e.told === undefined ? now - e.since >= this.settleMs : view !== e.told) &&
      !(this.opts.observer && view && e.told === undefined);
    if (flipped || (e.awaiting === null && this.wantsProof(e))) this.exchange(e, now);
    else if (e.awaiting !== null && now - e.sentAt >= e.retryGap) this.retry(e, now);
    else if (e.awaiting === null && (e.told === false || e.restate) && now >= this.restateAt(e))
      this.exchange(e, now);
    return this.dueAt(e, now);
  }

  /**
   * The next moment entry `e` may need a tick: its retry or restatement, the end of its settle
   * time, or the end of the group window while unicast from it is still fresh then (view() turns
   * false; a view turning undefined changes nothing, so it needs no tick).
   */
  private dueAt(e: Entry, now: number): number {
    let at = e.awaiting !== null ? e.sentAt + e.retryGap : Infinity;
    if (e.awaiting === null && (e.told === false || e.restate)) at = Math.min(at, this.restateAt(e));
    if (e.since + this.settleMs >= now) at = Math.min(at, e.since + this.settleMs);
    const silenceMs = this.silenceMs(e);
    const groupEnds = e.groupHeardAt + silenceMs + 1;
    if (groupEnds >= now && e.unicastHeardAt + silenceMs >= groupEnds) at = Math.min(at, groupEnds);
    return at;
  }

  /** How often our "no" is refreshed to a member (reachRefreshMs). */
  private refreshMs(): number {
    return reachRefreshMs(this.entries.size);
  }

  /**
   * When our "no" is stated again (or our view after a rise of the member's incarnation, `restate`):
   * every REACH_REFRESH_MS, and an observer's as soon as the member has been silent for
   * REACH_RETRY_MS since (its heartbeats come every interval once it proved our address: silence
   * says our echo of its nonce was lost, and only our statement asks again).
   */
  private restateAt(e: Entry): number {
    const refresh = e.sentAt + (this.opts.observer ? REACH_REFRESH_MS : this.refreshMs());
    if (!this.opts.observer) return refresh;
    return Math.min(refresh, Math.max(e.sentAt, e.unicastHeardAt) + REACH_RETRY_MS);
  }

  private onStatement(b: Body<typeof STATEMENT>, from: Origin): void {
    if (b.observer === 1 && !this.opts.observer && !this.entries.has(from.id))
      return this.onObserver(b, from);
    const e = this.entries.get(from.id);
    if (!e || e.address !== from.address || b.observer === 1) {
      this.ctx.refuse('reach');
      if (!e && !this.opts.observer) this.hello(from.address);
      return;
    }
    const now = this.ctx.now();
    this.touched.add(e);
    const hears = b.hears === 1;
    if (e.hearsUs !== hears) {
      e.hearsUs = hears;
      this.dirty = true;
    }
    if (b.echo !== undefined && b.echo === e.awaiting) {
      e.awaiting = null;
      e.retryGap = REACH_RETRY_MS;
      if (!e.validated) this.dirty = true;
      e.validated = true;
    }
    if (b.nonce !== undefined && now - e.answeredAt >= REACH_ANSWER_GAP_MS) {
      e.answeredAt = now;
      const view = this.view(e, now) ?? e.told ?? e.seen ?? true;
      e.told = view;
      this.ctx.send(
        e.address,
        ...STATEMENT.out({
          hears: view ? 1 : 0,
          echo: b.nonce,
          ...(e.awaiting !== null ? { nonce: e.awaiting } : {}),
          ...this.mark(),
        }),
      );
    }
  }

  /**
   * A statement of an observer (see the header): kept by address, proved by our nonce, in the
   * fan-out while it says it does not hear us and keeps saying so. Answered within the strangers'
   * budget until proved, then once per REACH_ANSWER_GAP_MS.
   */
  private onObserver(b: Body<typeof STATEMENT>, from: Origin): void {
    const now = this.ctx.now();
    let o = this.observers.get(from.address);
    if (o && o.id !== from.id) {
      this.observers.delete(from.address); // another process there now: nothing it proved holds
      this.dirty ||= o.validated;
      o = undefined;
    }
    if (!o) {
      if (this.observers.size >= OBSERVERS_MAX && !this.evictObserver()) {
        this.ctx.refuse('reach');
        return;
      }
      o = { id: from.id, validated: false, awaiting: null, heardAt: now, answeredAt: -Infinity };
      this.observers.set(from.address, o);
    }
    const wanted = b.hears === 0;
    if (b.echo !== undefined && b.echo === o.awaiting) {
      o.awaiting = null;
      o.validated = true;
      this.dirty = true;
    }
    if (o.validated && wanted !== (now - o.heardAt <= OBSERVER_FANOUT_MS && o.heardAt !== -Infinity))
      this.dirty = true;
    o.heardAt = wanted ? now : -Infinity;
    if (b.nonce === undefined || now - o.answeredAt < REACH_ANSWER_GAP_MS) return;
    if (!o.validated && !this.strangers.take(now)) return;
    o.answeredAt = now;
    if (!o.validated && o.awaiting === null) o.awaiting = Math.floor(this.ctx.random() * NONCE_MAX);
    this.ctx.send(
      from.address,
      ...STATEMENT.out({ hears: 0, echo: b.nonce, ...(o.awaiting !== null ? { nonce: o.awaiting } : {}) }),
    );
    if (o.validated) this.ctx.wakeAt(now + OBSERVER_FANOUT_MS + 1);
  }

  /** Makes room for an observer: forgets one not proved, or one that stopped stating. */
  private evictObserver(): boolean {
    const now = this.ctx.now();
    for (const [address, o] of this.observers)
      if (!o.validated || now - o.heardAt > OBSERVER_FANOUT_MS) {
        this.observers.delete(address);
        this.dirty ||= o.validated;
        return true;
      }
    return false;
  }

  /** Drops observers whose statements stopped; returns when the next one would expire. */
  private expireObservers(now: number): number {
    let next = Infinity;
    for (const [address, o] of this.observers) {
      const ends = o.heardAt + OBSERVER_FANOUT_MS;
      if (now > ends) {
        this.observers.delete(address);
        this.dirty ||= o.validated;
      } else next = Math.min(next, ends + 1);
    }
    return next;
  }

  /** Our statements carry `o` when we are an observer. */
  private mark(): { observer?: 1 } {
    return this.opts.observer ? { observer: 1 } : {};
  }

  /**
   * A statement from a peer we do not know: it hears our multicast, we do not hear its (our
   * multicast-in is blocked, and it met us on the group). A unicast probe asks it for its
   * heartbeat, its own word from its own address, as a newcomer's probe does; its statement,
   * retried, is taken then. A forged one costs one probe to the address it names, within a budget.
   */
  private hello(to: Address): void {
    if (this.strangers.take(this.ctx.now())) this.ctx.send(to, ...PROBE.out({}));
  }

  /** Starts an exchange: a fresh nonce, our view, sent now and retried until answered. */
  private exchange(e: Entry, now: number): void {
    e.awaiting = Math.floor(this.ctx.random() * NONCE_MAX);
    e.restate = false;
    e.retryGap = REACH_RETRY_MS;
    this.state(e, now);
  }

  /**
   * Sends the unanswered statement again, the gap to the next one doubled (the first retry comes
   * REACH_RETRY_MS after the statement). An observer pings nobody: a member that has not proved it
   * yet sends it no heartbeat and dies in its view after deadAfterMs. So its statement is retried
   * without backing off until then.
   */
  private retry(e: Entry, now: number): void {
    if (!(this.opts.observer && !e.validated)) e.retryGap = Math.min(e.retryGap * 2, REACH_REFRESH_MS);
    this.state(e, now);
  }

  private state(e: Entry, now: number): void {
    const view = this.view(e, now) ?? e.told ?? e.seen ?? true;
    e.told = view;
    e.sentAt = now;
    this.ctx.send(e.address, ...STATEMENT.out({ hears: view ? 1 : 0, nonce: e.awaiting!, ...this.mark() }));
    // Sent from a handler too (greet): its retry must wake us.
    this.ctx.wakeAt(e.sentAt + e.retryGap);
  }

  /** It would be in our fan-out but for the proof of its address. */
  private wantsProof(e: Entry): boolean {
    return !e.validated && this.opts.mode !== 'multicast' && !this.theyHear(e);
  }

  /** Our view of its multicast (see the header); undefined while there is no evidence either way. */
  private view(e: Entry, now: number): boolean | undefined {
    const silenceMs = this.silenceMs(e);
    if (now - e.groupHeardAt <= silenceMs) return true;
    if (now - e.unicastHeardAt > silenceMs || now - e.since < this.settleMs) return undefined;
    return false;
  }

  /** How long a member's multicast may be silent before we say we do not hear it: in its heartbeats. */
  private silenceMs(e: Entry): number {
    const interval = this.opts.members.beatIntervalMs?.(e.id) ?? this.opts.heartbeatIntervalMs;
    return Math.max(REACH_SILENCE_HEARTBEATS * interval, REACH_SILENCE_MIN_MS);
  }

  /**
   * Whether our multicast reaches it: its word, else our own view of its multicast (a member
   * still settling, or never heard either way, is taken to hear us: the LAN's usual case).
   */
  private theyHear(e: Entry): boolean {
    if (this.opts.unicastOnly || this.opts.mode === 'unicast') return false;
    return e.hearsUs ?? e.seen !== false;
  }

  /**
   * The entry of member `id` if `from` is its address. A member can move without an event
   * (membership.ts takes it back at its old address): then membership, asked, says where it is.
   */
  private entry(id: PeerId, from: Address): Entry | undefined {
    const e = this.entries.get(id);
    if (!e || e.address === from) return e;
    const m = this.opts.members.get(id);
    if (m?.address !== from) return undefined;
    this.moved(e, from, e.incarnation);
    return e;
  }

  /** Another process at another address: nothing it said or proved holds. */
  private moved(e: Entry, address: Address, incarnation: number): void {
    Object.assign(e, this.fresh(e.id, address, incarnation));
    this.touched.add(e);
    this.dirty = true;
  }

  private fresh(id: PeerId, address: Address, incarnation: number): Entry {
    this.dirty = true;
    return {
      id,
      address,
      incarnation,
      host: parseAddress(address).host,
      since: this.ctx.now(),
      groupHeardAt: -Infinity,
      unicastHeardAt: -Infinity,
      seen: undefined,
      told: undefined,
      hearsUs: undefined,
      validated: false,
      awaiting: null,
      restate: false,
      sentAt: -Infinity,
      retryGap: REACH_RETRY_MS,
      answeredAt: -Infinity,
      dueAt: Infinity,
    };
  }

  private rebuild(): void {
    this.dirty = false;
    if (this.opts.mode === 'multicast') {
      this.cached = [];
      return;
    }
    const perHost = new Map<string, number>();
    const out: Address[] = [];
    for (const e of this.entries.values()) {
      if (!e.validated || this.theyHear(e)) continue;
      const n = perHost.get(e.host) ?? 0;
      if (n >= FANOUT_PER_HOST_MAX) continue;
      perHost.set(e.host, n + 1);
      out.push(e.address);
    }
    const now = this.ctx.now();
    for (const [address, o] of this.observers)
      if (o.validated && now - o.heardAt <= OBSERVER_FANOUT_MS) out.push(address);
    this.cached = out;
  }
}
