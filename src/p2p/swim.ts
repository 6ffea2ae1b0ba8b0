/**
 * SWIM probes (Das et al. 2002, as hashicorp/memberlist runs them): the failure detector for the
 * members whose heartbeats do not reach us (membership.ts says which: a group past
 * HEARTBEAT_FANOUT_MAX unicast members, or in the SLOW regime). A heartbeat detector costs every
 * peer O(N) datagrams per interval where there is no multicast; probing costs a few per interval
 * whatever N.
 *
 * Algorithm. Every PROBE_INTERVAL_MS we take the next member of a shuffled round-robin order
 * (shuffled again at each pass, so every member is probed once per pass and a dead one is found
 * by someone within about one interval of the group's probes) and send it `sw.ping {q}`. Its
 * `sw.ack {q}`, from its own address, ends the probe. With no ack after PROBE_TIMEOUT_MS we ask
 * INDIRECT_PROBES other members to probe it for us (`sw.req {q, t}`): a link between us two that
 * drops everything must not make a live member look dead. A relay pings the target and forwards
 * its ack, or answers `sw.nack {q}` after RELAY_NACK_MS (Lifeguard: "I am alive, the target did not
 * answer me"). No ack by the end of the interval: the probe failed, and membership suspects the
 * target on our own evidence; the nacks that came tell it whether the relays heard us (if not, our
 * own receive path is the likelier fault, and its health score rises: Lifeguard).
 * Suspicion, confirmation and death are membership's (suspicionTimeoutMs below gives the time).
 *
 * Updates ride on the probes (memberlist's piggybacked broadcasts): `alive` for each member met
 * or back alive, `suspect` for each suspicion of ours, each sent RETRANSMIT_MULT x
 * ceil(log10(N + 1)) times, least-sent first, at most PIGGYBACK_UPDATES_MAX per datagram; one
 * entry per member, the newest replacing the older; the queue is capped (UPDATES_QUEUE_MAX), the
 * most-sent going first. So a group without multicast learns joins and suspicions epidemically,
 * in about log2 N probe intervals. What a receiver makes of them is membership's: hints only (an
 * alive update makes us say hello to the address, join/; a suspicion counts as its sender's).
 *
 * Who may make us send. A `sw.ping` is answered 1:1 to its source, like `ping`. A `sw.req` is
 * taken only from a live member at its known address, only about a live member, and we ping the
 * address we know for it, never one the request names: a forger can make us send at most one
 * datagram per request, to a member, and the relay table is capped (RELAYS_MAX). An ack counts
 * only from the probed member's own address or from a relay we asked.
 *
 * A state machine over the context, driven by membership's tick and its messages: no socket,
 * timer or clock of its own.
 */
import { is, type PeerId } from './wire.js';
import { f, message, messages, type Body, type Origin } from './kit/message.js';
import type { ProtocolContext } from './protocol.js';
import type { Address } from './transport/transport.js';

/** One probe per this many ms (x (1 + health score)): about 5 pings and 5 acks out a second. */
export const PROBE_INTERVAL_MS = 200;
/** A direct ping unanswered this long (x (1 + health score)) goes to relays. */
export const PROBE_TIMEOUT_MS = 100;
/** A relay that got no ack in this long says so: its nack must reach us before the probe ends. */
export const RELAY_NACK_MS = 80;
/** Relays asked per failed direct ping: all of them must lose the target for it to be suspected. */
export const INDIRECT_PROBES = 3;
/** Indirect probes we run for others at once; each lives one interval. */
export const RELAYS_MAX = 64;
/** Members waiting for a probe out of turn (a suspicion others sent us), at most. */
export const URGENT_PROBES_MAX = 16;
/**
 * Suspicion timeout (Lifeguard): min = SUSPICION_MULT x max(1, log10 N) x PROBE_INTERVAL_MS,
 * max = SUSPICION_MAX_RATIO x min, shrinking from max towards min as confirmations (distinct
 * suspecters, and our own failed probe) come in, down to min at SUSPECT_CONFIRMATIONS_MIN.
 * At N <= 10: 400 ms with 3 confirmations, 1.4 s with our own evidence alone.
 */
export const SUSPICION_MULT = 2;
export const SUSPICION_MAX_RATIO = 6;
/**
 * Distinct suspecters that make a suspicion enough for a death without a failed probe of our
 * own: one lossy peer, or two, cannot talk the others into a death.
 */
export const SUSPECT_CONFIRMATIONS_MIN = 3;
const SEQ_MAX = 2 ** 32 - 1;
/** Updates on one probe datagram (each at most about 40 bytes as JSON). */
export const PIGGYBACK_UPDATES_MAX = 8;
/** Sends of each update: this many x ceil(log10(N + 1)) (4 at 5 members, 8 at 50, 16 at 1,000). */
export const RETRANSMIT_MULT = 4;
/** Updates waiting to be sent, at most. */
export const UPDATES_QUEUE_MAX = 1024;
/** An address on the wire (IPv4:port): what an alive update carries. */
const ADDRESS_RE = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d{1,5}$/;

/** On the wire: `[0, id, incarnation, address]` (alive) or `[1, id, incarnation]` (suspect). */
export type WireUpdate = [0, PeerId, number, Address] | [1, PeerId, number];

function isWireUpdate(v: unknown): v is WireUpdate {
  if (!Array.isArray(v) || !is.peerId()(v[1]) || !is.uint()(v[2])) return false;
  if (v[0] === 0) return v.length === 4 && typeof v[3] === 'string' && ADDRESS_RE.test(v[3]);
  return v[0] === 1 && v.length === 3;
}

const updates = f.optional(f.array(f.guard(isWireUpdate), PIGGYBACK_UPDATES_MAX)).wire('up');

/** `gv`: the sender's tags version (membership.ts): a receiver holding another one asks for them. */
export const SW_PING = message('sw.ping', {
  seq: f.uint(SEQ_MAX).wire('q'),
  tagsVersion: f.optional(f.uint()).wire('gv'),
  updates,
});
export const SW_ACK = message('sw.ack', {
  seq: f.uint(SEQ_MAX).wire('q'),
  tagsVersion: f.optional(f.uint()).wire('gv'),
  updates,
});
export const SW_REQ = message('sw.req', { seq: f.uint(SEQ_MAX).wire('q'), target: f.peerId().wire('t') });
export const SW_NACK = message('sw.nack', { seq: f.uint(SEQ_MAX).wire('q') });
export const SWIM_MESSAGES = messages(SW_PING, SW_ACK, SW_REQ, SW_NACK);

export interface ProbeTarget {
  id: PeerId;
  address: Address;
}

/** What the prober reads of membership, and how it reports. */
export interface SwimMembers {
  /** The live members watched by probes (read once per pass). */
  probeWatched(): ProbeTarget[];
  /** Whether member `id` is live and watched by probes now. */
  isProbeWatched(id: PeerId): boolean;
  /** Live member `id` (alive or suspect), or undefined. */
  liveMember(id: PeerId): ProbeTarget | undefined;
  /** Live members, to draw relays from (shared: read, never modify). */
  relayCandidates(): readonly ProbeTarget[];
  /** Our health score: probe timeouts are x(1 + score). */
  score(): number;
  tagsVersion(): number;
  /** A member showed the version of its tags (ask for them when we hold another). */
  heardTagsVersion(from: Origin, version: number): void;
  /** A probe ended: acked, or failed with `nacks` of `relays` relays saying they are alive. */
  probed(id: PeerId, result: { ok: boolean; relays: number; nacks: number }): void;
  /** Updates that rode on a probe or an ack from `from` (checked for shape only). */
  heardUpdates(from: Origin, updates: readonly WireUpdate[]): void;
  /** Live members (for the retransmit limit). */
  size(): number;
}

/** The updates waiting to ride on probes (see the header). */
export class UpdateQueue {
  private readonly queue = new Map<PeerId, { update: WireUpdate; sent: number }>();

  get length(): number {
    return this.queue.size;
  }

  /** Queues `u`, replacing what was queued about the same member. */
  add(u: WireUpdate): void {
    this.queue.delete(u[1]);
    if (this.queue.size >= UPDATES_QUEUE_MAX) {
      let most: PeerId | undefined;
      let sent = -1;
      for (const [id, e] of this.queue) if (e.sent > sent) [most, sent] = [id, e.sent];
      this.queue.delete(most!);
    }
    this.queue.set(u[1], { update: u, sent: 0 });
  }

  /** Up to PIGGYBACK_UPDATES_MAX updates, least sent first, each dropped once sent `limit` times. */
  take(limit: number): WireUpdate[] | undefined {
    if (this.queue.size === 0) return undefined;
    // One pass keeping the least sent, in queue order among equals (what a stable sort would pick):
    // a sort of the whole queue for every probe and ack was half a 1,000-peer simulation's time,
    // with a joiner's thousand alive updates queued.
    const chosen: Array<{ update: WireUpdate; sent: number }> = [];
    for (const e of this.queue.values()) {
      if (chosen.length === PIGGYBACK_UPDATES_MAX) {
        if (e.sent >= chosen[PIGGYBACK_UPDATES_MAX - 1]!.sent) continue;
        chosen.pop();
      }
      let i = chosen.length;
      while (i > 0 && chosen[i - 1]!.sent > e.sent) i--;
      chosen.splice(i, 0, e);
      if (chosen.length === PIGGYBACK_UPDATES_MAX && chosen[PIGGYBACK_UPDATES_MAX - 1]!.sent === 0) break;
    }
    for (const e of chosen) if (++e.sent >= limit) this.queue.delete(e.update[1]);
    return chosen.map((e) => e.update);
  }
}

interface Probe {
  target: PeerId;
  address: Address;
  seq: number;
  /** When the relays are asked, and when the probe fails. */
  indirectAt: number;
  endAt: number;
  /** The relays asked (null: not yet), and those that nacked. */
  relays: Address[] | null;
  nacked: Set<Address>;
}

interface Relay {
  requester: Address;
  /** The requester's sequence number, to forward the ack or nack under. */
  seq: number;
  target: Address;
  /** When we nack (null: nacked already), and when the entry is forgotten. */
  nackAt: number | null;
  expiresAt: number;
}

/**
 * Lifeguard's suspicion timeout for a group of `members` with `confirmations` (see SUSPICION_MULT),
 * its shortest never under `floorMs` (membership passes its profile's suspicion stage, so a slower
 * profile, for loaded hosts, is as patient with probed members as with heartbeat-watched ones).
 */
export function suspicionTimeoutMs(members: number, confirmations: number, floorMs = 0): number {
  const min = Math.max(
    floorMs,
    SUSPICION_MULT * Math.max(1, Math.log10(Math.max(1, members))) * PROBE_INTERVAL_MS,
  );
  const max = SUSPICION_MAX_RATIO * min;
  const c = Math.min(Math.max(0, confirmations), SUSPECT_CONFIRMATIONS_MIN);
  return Math.max(min, max - ((max - min) * Math.log(c + 1)) / Math.log(SUSPECT_CONFIRMATIONS_MIN + 1));
}

export class Swim {
  readonly messages = SWIM_MESSAGES.checks;
  readonly onMessage = SWIM_MESSAGES.dispatch({
    'sw.ping': (b, from) => this.onPing(b, from),
    'sw.ack': (b, from) => this.onAck(b, from),
    'sw.req': (b, from) => this.onReq(b, from),
    'sw.nack': (b, from) => this.onNack(b, from),
  });
  /** Probes run (ended), and those that failed: what tests and the bench read. */
  readonly stats = { probes: 0, failed: 0, indirect: 0 };
  private probe: Probe | null = null;
  private nextAt = -Infinity;
  private order: PeerId[] = [];
  private next = 0;
  private readonly urgent = new Set<PeerId>();
  private readonly relays = new Map<number, Relay>();
  /** Membership updates to spread on our probes and acks. */
  readonly updates = new UpdateQueue();
  /**
   * Our last sequence number: it only tells our probes and relayed ones apart, and an ack counts
   * only from the address it was asked of, so it needs no randomness.
   */
  private seq = 0;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly members: SwimMembers,
  ) {}

  /** Indirect probes we run for others now (at most RELAYS_MAX). */
  get relaying(): number {
    return this.relays.size;
  }

  /** Probes member `id` as soon as the probe under way ends (a suspicion of it reached us). */
  probeSoon(id: PeerId): void {
    if (this.urgent.size >= URGENT_PROBES_MAX || this.probe?.target === id) return;
    this.urgent.add(id);
    this.ctx.wakeAt(this.probe ? this.probe.endAt : this.ctx.now());
  }

  /**
   * Does what is due; `watching` says whether any member is watched by probes now (membership
   * counts them in its own tick), so a group watched by heartbeats alone never wakes for us.
   * Returns when it next has work.
   */
  tick(now: number, watching: boolean): number {
    const slower = 1 + this.members.score();
    const p = this.probe;
    if (p) {
      if (p.relays === null && now >= p.indirectAt) this.askRelays(p);
      if (now >= p.endAt) this.finish(p, false);
    }
    if (!this.probe && (watching || this.urgent.size > 0) && (now >= this.nextAt || this.urgent.size > 0))
      this.start(now, slower);
    if (!watching) this.order = [];
    let at = this.probe ? (this.probe.relays === null ? this.probe.indirectAt : this.probe.endAt) : Infinity;
    if (!this.probe && watching) at = Math.max(now, this.nextAt);
    for (const [seq, r] of this.relays) {
      if (r.nackAt !== null && now >= r.nackAt) {
        this.ctx.send(r.requester, ...SW_NACK.out({ seq: r.seq }));
        r.nackAt = null;
      }
      if (now >= r.expiresAt) this.relays.delete(seq);
      else at = Math.min(at, r.nackAt ?? r.expiresAt);
    }
    return at;
  }

  private start(now: number, slower: number): void {
    const target = this.pick();
    this.nextAt = now + PROBE_INTERVAL_MS * slower;
    if (!target) return;
    const seq = this.nextSeq();
    this.probe = {
      target: target.id,
      address: target.address,
      seq,
      indirectAt: now + PROBE_TIMEOUT_MS * slower,
      endAt: this.nextAt,
      relays: null,
      nacked: new Set(),
    };
    this.ctx.send(
      target.address,
      ...SW_PING.out({ seq, tagsVersion: this.members.tagsVersion(), updates: this.piggyback() }),
    );
  }

  private piggyback(): WireUpdate[] | undefined {
    return this.updates.take(RETRANSMIT_MULT * Math.ceil(Math.log10(this.members.size() + 1)));
  }

  /** The next member to probe: one asked for out of turn, else the next of the shuffled order. */
  private pick(): ProbeTarget | undefined {
    for (const id of this.urgent) {
      this.urgent.delete(id);
      const m = this.members.isProbeWatched(id) ? this.members.liveMember(id) : undefined;
      if (m) return m;
    }
    for (let pass = 0; pass < 2; pass++) {
      while (this.next < this.order.length) {
        const id = this.order[this.next++]!;
        if (this.members.isProbeWatched(id)) return this.members.liveMember(id);
      }
      this.order = shuffled(
        this.members.probeWatched().map((m) => m.id),
        this.ctx.random,
      );
      this.next = 0;
    }
    return undefined;
  }

  /** Asks up to INDIRECT_PROBES random live members other than the target to probe it for us. */
  private askRelays(p: Probe): void {
    const all = this.members.relayCandidates();
    const chosen = new Set<ProbeTarget>();
    // Random draws, a few more than needed: with few members some hit the target or repeat.
    for (let i = 0; i < 4 * INDIRECT_PROBES && chosen.size < INDIRECT_PROBES && all.length > 0; i++) {
      const m = all[Math.floor(this.ctx.random() * all.length)]!;
      if (m.id !== p.target) chosen.add(m);
    }
    p.relays = [...chosen].map((m) => m.address);
    if (p.relays.length > 0) this.stats.indirect++;
    for (const address of p.relays) this.ctx.send(address, ...SW_REQ.out({ seq: p.seq, target: p.target }));
  }

  private finish(p: Probe, ok: boolean): void {
    this.probe = null;
    this.stats.probes++;
    if (!ok) this.stats.failed++;
    this.members.probed(p.target, { ok, relays: p.relays?.length ?? 0, nacks: p.nacked.size });
    // The next probe goes out on its interval; one asked for out of turn, at once.
    if (this.urgent.size > 0) this.ctx.wakeAt(this.ctx.now());
  }

  private onPing(b: Body<typeof SW_PING>, from: Origin): void {
    this.ctx.send(
      from.address,
      ...SW_ACK.out({ seq: b.seq, tagsVersion: this.members.tagsVersion(), updates: this.piggyback() }),
    );
    if (b.tagsVersion !== undefined) this.members.heardTagsVersion(from, b.tagsVersion);
    if (b.updates) this.members.heardUpdates(from, b.updates);
  }

  private onAck(b: Body<typeof SW_ACK>, from: Origin): void {
    if (b.updates) this.members.heardUpdates(from, b.updates);
    const p = this.probe;
    if (p && b.seq === p.seq) {
      const direct = from.id === p.target && from.address === p.address;
      if (direct && b.tagsVersion !== undefined) this.members.heardTagsVersion(from, b.tagsVersion);
      if (direct || p.relays?.includes(from.address)) this.finish(p, true);
      return;
    }
    const r = this.relays.get(b.seq);
    if (r && from.address === r.target) {
      this.relays.delete(b.seq);
      this.ctx.send(r.requester, ...SW_ACK.out({ seq: r.seq }));
    }
  }

  private onReq(b: Body<typeof SW_REQ>, from: Origin): void {
    if (this.members.liveMember(from.id)?.address !== from.address || this.relays.size >= RELAYS_MAX) {
      this.ctx.refuse('swim');
      return;
    }
    const target = b.target === from.id ? undefined : this.members.liveMember(b.target);
    const now = this.ctx.now();
    if (!target) {
      // Not a member we know alive: we cannot help, but we are alive, and say so.
      this.ctx.send(from.address, ...SW_NACK.out({ seq: b.seq }));
      return;
    }
    const seq = this.nextSeq();
    const slower = 1 + this.members.score();
    this.relays.set(seq, {
      requester: from.address,
      seq: b.seq,
      target: target.address,
      nackAt: now + RELAY_NACK_MS * slower,
      expiresAt: now + PROBE_INTERVAL_MS * slower,
    });
    this.ctx.send(target.address, ...SW_PING.out({ seq }));
    this.ctx.wakeAt(now + RELAY_NACK_MS * slower);
  }

  private onNack(b: Body<typeof SW_NACK>, from: Origin): void {
    const p = this.probe;
    if (p && b.seq === p.seq && p.relays?.includes(from.address)) p.nacked.add(from.address);
  }

  private nextSeq(): number {
    this.seq = this.seq >= SEQ_MAX ? 0 : this.seq + 1;
    return this.seq;
  }
}

/** `xs` put in random order in place (Fisher-Yates), and returned. */
function shuffled<T>(xs: T[], random: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}
