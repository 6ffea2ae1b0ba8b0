/**
 * A peer: one transport, one Lamport clock, the membership protocol and whatever other protocol
 * modules a command installs. The node owns the envelope: it stamps id, name, incarnation,
 * sequence number and Lamport time on every send, decodes and validates every datagram, merges
 * the Lamport time, and dispatches the envelope to the module that owns its type.
 * An envelope is dropped whole, before any module reads it, when membership does not take it as
 * its sender's word (an impostor using a member's id, an incarnation past its bound). One whose
 * Lamport time is past the clock's bound (lamport.ts) is withheld from every protocol too, but
 * membership still counts it as a sign of life from a member it knows: the sender is who it says
 * (admitted), only its clock is out of step with ours, and a forger able to split the group's
 * clocks must not make members give each other up for dead. Both are counted.
 */
import {
  Codec,
  FRAME_BYTES_MAX,
  FRAME_MARK,
  PROTOCOL_VERSION,
  bodyBytesMax,
  decodeFrame,
  frameHeader,
  type AttachmentDecoder,
  type Check,
  type DropReason,
  type Envelope,
  type PeerId,
} from './wire.js';
import { LamportClock } from './lamport.js';
import { Membership, OBSERVER_PROBE_EVERY_MAX_MS } from './membership.js';
import { Join } from './join/index.js';
import type { RememberedPeers } from './join/remembered.js';
import { Reach, type ReachMode } from './reach.js';
import { MEMBERS_MAX, type Profile } from './config.js';
import type { PeerEvent, Protocol, ProtocolContext, Self } from './protocol.js';
import type { Cancel, Runtime } from './runtime.js';
import { parseAddress, type Address, type Transport, type Via } from './transport/transport.js';

/**
 * Multicast loopback (Transport.setMulticastLoopback) is on only while it serves another peer on
 * our host, plus two safety windows:
 * - the grace after start: a peer already on this host may have turned its own off (it had no
 *   neighbour); it hears us, sees a neighbour and turns it on, and only then do we hear it;
 * - a probe window at a fixed period: if two neighbours ever both turned it off without having
 *   met (each cut off from the other at start), each window lets the other hear us again.
 * A neighbour is a member on our host, or an observer on our host that probed within
 * MULTICAST_LOOPBACK_OBSERVER_MS: an observer (a one-shot `peer replicate MSG`, `peer kv get`, the
 * monitor) never heartbeats, so it is never a member, yet it needs our heartbeats to know us; it
 * probes again (membership.ts) more often than that window, so we keep hearing it while it runs.
 * An observer keeps its own loopback on: its probes are what tell a neighbour it is there. (A
 * process on our host can keep our loopback on by probing: that costs us only the looped copies.)
 */
export const MULTICAST_LOOPBACK_GRACE_MS = 2000;
export const MULTICAST_LOOPBACK_PROBE_EVERY_MS = 30_000;
const MULTICAST_LOOPBACK_PROBE_MS = 1000;
export const MULTICAST_LOOPBACK_OBSERVER_MS = 3 * OBSERVER_PROBE_EVERY_MAX_MS + 1000;

/**
 * Rounds of soon() callbacks run at the end of one message or tick when callbacks keep queueing
 * more (a flush that queues another flush); what is left then waits for the runtime's next turn,
 * so a callback that requeues itself for ever cannot hold the event loop.
 */
export const SOON_ROUNDS_MAX = 16;

/**
 * Deadline ticks. Each protocol's tick returns when it next needs one, and the node keeps one
 * timer at the earliest: an idle peer wakes for its heartbeat and little else, instead of every
 * `tickMs` (a timer wake costs a process more than the work most ticks do). A wake ticks only the
 * protocols that have something to do: those whose deadline came, those that handled a message
 * since their last tick (membership and reach see every one), every protocol when an event was
 * emitted or a wakeAt() time came (a change another protocol may read in its tick), and those
 * whose tick returns no deadline (the token ring, chat...: their ticks look at what changed, so
 * they tick at every wake, at least every `tickMs`, as before deadlines). Under
 * churn no two scheduled ticks come closer than TICK_GAP_MIN_MS (at most 200 wakes/s). A wake
 * comes at least every TICK_GAP_MAX_MS whatever the protocols ask, and a protocol that has not
 * ticked for that long (up to TICK_GAP_MIN_MS less: timers fire a little late) ticks in the next
 * wake, a safety net for a deadline forgotten that adds no wake of its own. Every 5 s, not every
 * second: in an idle peer up, seven protocols have nothing due, and their ticks once a second were
 * about a tenth of its CPU (two groups of 5 in namespaces over the same 90 s: 0.287 % of a core
 * each with the net at 1 s, 0.262 % at 5 s).
 */
export const TICK_GAP_MIN_MS = 5;
export const TICK_GAP_MAX_MS = 5000;
/**
 * A tick more than this after the earliest deadline a protocol asked for is counted in
 * `stats.lateTicks` (the simulation asserts none: its timers are exact, so one would be a
 * deadline the scheduler lost; over UDP it measures a starved event loop).
 */
export const TICK_LATE_MS = 30;

export interface NodeOptions {
  id: PeerId;
  name: string;
  /** Incarnation to start with: the caller makes it larger than any this peer used before. */
  incarnation: number;
  lamport?: number;
  profile: Profile;
  transport: Transport;
  runtime: Runtime;
  /** Listen without joining: `peer peers`. */
  observer?: boolean;
  /** Called whenever the incarnation rises, so a restart can start above it. */
  persistIncarnation?: (incarnation: number) => void;
  /** Members met before, tried at start and kept up to date (join/remembered.ts). */
  remembered?: RememberedPeers | null;
  /** `--transport` (reach.ts): default `auto`, or `unicast` when the transport is unicast-only. */
  reach?: ReachMode;
}

export interface NodeStats {
  datagramsIn: number;
  datagramsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Datagrams carrying our own id: another process started with our data dir, or a replay. */
  ownId: number;
  dropped: Record<DropReason, number>;
  /** Messages dropped because a counter in them would move ours past its bound (bounds.ts), by counter. */
  refused: Record<string, number>;
  /** Valid messages a protocol failed to handle: always a bug of ours, so tests assert zero. */
  handlerErrors: number;
  lastHandlerError: string;
  /** Scheduled ticks run (deadline scheduling: see TICK_GAP_MIN_MS). */
  ticks: number;
  /** Ticks that came more than TICK_LATE_MS after the earliest deadline asked for. */
  lateTicks: number;
}

/** When a protocol next needs a tick, when it last had one, and whether it has news since. */
interface Slot {
  dueAt: number;
  tickedAt: number;
  touched: boolean;
  /** Its last tick returned no deadline: it ticks at every wake, as all did before deadlines. */
  cadence: boolean;
}

export type Installer<P extends Protocol> = (ctx: ProtocolContext, node: PeerNode) => P;

export class PeerNode {
  readonly membership: Membership;
  /** Seeds, remembered peers and re-contact (join/): how members beyond our multicast meet. */
  readonly join: Join;
  /** Which members our multicast reaches: every group send also goes by unicast to `reach.fanout()`. */
  readonly reach: Reach;
  readonly stats: NodeStats = {
    datagramsIn: 0,
    datagramsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    ownId: 0,
    dropped: { oversize: 0, json: 0, envelope: 0, version: 0, type: 0, body: 0, attachment: 0, frame: 0 },
    refused: {},
    handlerErrors: 0,
    lastHandlerError: '',
    ticks: 0,
    lateTicks: 0,
  };
  readonly context: ProtocolContext;
  private readonly self: { id: PeerId; name: string; incarnation: number };
  private readonly clock: LamportClock;
  private readonly protocols: Protocol[] = [];
  /** Each protocol's scheduling, by protocol (see TICK_GAP_MIN_MS). */
  private readonly slots = new Map<Protocol, Slot>();
  private readonly owners = new Map<string, Protocol>();
  /** Each frame kind's protocol and its handler. */
  private readonly frameOwners = new Map<
    number,
    { protocol: Protocol; handle: (sender: PeerId, body: Buffer, from: Address) => void }
  >();
  /** Each frame kind's header with our id (wire.ts), written once. */
  private readonly frameHeaders = new Map<number, Buffer>();
  private codec: Codec;
  private seq = 0;
  private listeners: Array<(e: PeerEvent) => void> = [];
  private cancelTick: Cancel | null = null;
  /** When the armed timer fires (Infinity: none armed), and when the last tick ran. */
  private armedAt = Infinity;
  private lastTickAt = -Infinity;
  /** The earliest wakeAt() time asked for since the last tick: every protocol ticks then. */
  private allDueAt = Infinity;
  private readonly versionWarned = new Set<Address>();
  private running = false;
  private startedAt = 0;
  private loopback = true;
  /** When an observer on our host last probed (see MULTICAST_LOOPBACK_OBSERVER_MS). */
  private observerHeardAt = -Infinity;
  /** ProtocolContext.soon: what runs once the current message or tick is handled. */
  private soonQueue: Array<() => void> = [];
  /** Messages and ticks being handled (a transport may deliver within a send): soon() waits for them. */
  private handling = 0;
  /** A runtime turn is booked to run soon() callbacks queued outside any message or tick. */
  private soonBooked = false;
  private readonly bodyRoom = new Map<string, number>();

  constructor(private readonly opts: NodeOptions) {
    this.self = { id: opts.id, name: opts.name, incarnation: opts.incarnation };
    this.clock = new LamportClock(opts.lamport ?? 0);
    const self: Self = this.self;
    this.context = {
      self,
      now: () => opts.runtime.now(),
      wall: () => opts.runtime.wall(),
      random: () => opts.runtime.random(),
      lamport: () => this.clock.time,
      stamp: () => this.clock.tick(),
      broadcast: (type, body, attachment) => this.transmit(null, type, body, attachment),
      send: (to, type, body, attachment) => this.transmit(to, type, body, attachment),
      sendFrame: (to, kind, ...parts) => this.transmitFrame(to, kind, parts),
      emit: (e) => this.emit(e),
      refuse: (counter) => {
        this.stats.refused[counter] = (this.stats.refused[counter] ?? 0) + 1;
      },
      soon: (fn) => this.soon(fn),
      bodyBytesMax: (type) => {
        let room = this.bodyRoom.get(type);
        if (room === undefined) this.bodyRoom.set(type, (room = bodyBytesMax(type, this.self.name)));
        return room;
      },
      wakeAt: (at) => this.wakeAt(at),
      groupReaches: (id) => this.reach.reaches(id),
    };
    this.membership = new Membership(this.context, {
      timings: opts.profile.membership,
      observer: opts.observer ?? false,
      membersMax: MEMBERS_MAX,
      raiseIncarnation: (min) => this.raiseIncarnation(min),
      observerProbed: (from) => {
        if (sharesHost(this.address, [{ address: from }])) this.observerHeardAt = opts.runtime.now();
      },
      introduction: (env) => this.join.introduction(env),
      fanout: () => this.reach.fanout(),
      multicast: (type, body) => this.transmit(null, type, body, undefined, false),
      hinted: (hint) => this.join.hint(hint),
      rescheduled: (at) => this.rescheduled(this.membership, at),
    });
    this.codec = this.register(this.membership);
    this.join = new Join(this.context, {
      membership: this.membership,
      observer: opts.observer ?? false,
      remembered: opts.remembered ?? null,
      address: () => this.address,
    });
    this.codec = this.register(this.join);
    this.listeners.push((e) => {
      if (e.kind === 'join' || e.kind === 'alive' || e.kind === 'restart')
        this.join.memberChanged(e.member, true);
      else if (e.kind === 'dead' || e.kind === 'left') this.join.memberChanged(e.member, false);
    });
    const unicastOnly = opts.transport.mode === 'unicast';
    this.reach = new Reach(this.context, {
      mode: opts.reach ?? (unicastOnly ? 'unicast' : 'auto'),
      unicastOnly,
      observer: opts.observer ?? false,
      heartbeatIntervalMs: opts.profile.membership.heartbeatIntervalMs,
      members: this.membership,
    });
    this.codec = this.register(this.reach);
    this.listeners.push((e) => this.reach.follow(e));
  }

  get id(): PeerId {
    return this.self.id;
  }
  get name(): string {
    return this.self.name;
  }
  get incarnation(): number {
    return this.self.incarnation;
  }
  get lamport(): number {
    return this.clock.time;
  }
  get address(): Address {
    return this.opts.transport.address;
  }
  get profile(): Profile {
    return this.opts.profile;
  }
  get runtime(): Runtime {
    return this.opts.runtime;
  }
  /** Whether our multicasts are looped back to this host's other processes (see MULTICAST_LOOPBACK_GRACE_MS). */
  get multicastLoopback(): boolean {
    return this.loopback;
  }

  /** Adds a protocol module; call before start(). */
  install<P extends Protocol>(make: Installer<P>): P {
    if (this.running) throw new Error('install protocols before start()');
    const p = make(this.context, this);
    this.codec = this.register(p);
    return p;
  }

  on(listener: (e: PeerEvent) => void): () => void {
    this.listeners.push(listener);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  async start(): Promise<void> {
    await this.opts.transport.start((data, from, via) => this.receive(data, from, via));
    this.running = true;
    this.startedAt = this.opts.runtime.now();
    this.membership.start();
    this.join.start();
    // The first tick comes a tick period after start, as the protocols' first deadlines assume.
    this.lastTickAt = this.startedAt;
    this.wakeAt(this.startedAt + this.opts.profile.tickMs);
  }

  /** Graceful stop: every protocol says goodbye, then the transport closes. */
  async stop(): Promise<void> {
    if (!this.running) return;
    for (const p of [...this.protocols].reverse()) p.leave?.();
    await this.halt();
  }

  /** Stops without a word, as `kill -9` would (simulation). */
  async crash(): Promise<void> {
    await this.halt();
  }

  private async halt(): Promise<void> {
    this.running = false;
    this.cancelTick?.();
    this.cancelTick = null;
    this.armedAt = Infinity;
    await this.opts.transport.close();
  }

  private register(p: Protocol): Codec {
    for (const type of Object.keys(p.messages)) {
      if (this.owners.has(type)) throw new Error(`message type '${type}' registered twice`);
      this.owners.set(type, p);
    }
    for (const [kind, handler] of Object.entries(p.frames ?? {})) {
      if (this.frameOwners.has(Number(kind))) throw new Error(`frame kind ${kind} registered twice`);
      this.frameOwners.set(Number(kind), { protocol: p, handle: handler });
    }
    this.protocols.push(p);
    this.slots.set(p, { dueAt: Infinity, tickedAt: -Infinity, touched: false, cadence: false });
    const bodies: Record<string, Check> = {};
    const attachments: Record<string, AttachmentDecoder> = {};
    for (const q of this.protocols) {
      Object.assign(bodies, q.messages);
      Object.assign(attachments, q.attachments);
    }
    return new Codec(bodies, attachments);
  }

  /**
   * Runs the tick of every protocol with something to do (see TICK_GAP_MIN_MS), in install order:
   * one may act on what another just changed (an event marks all of them), then re-arms.
   */
  private tick(at = -Infinity): void {
    if (!this.running) return;
    // A timer may fire a hair before the time it was armed for (float rounding in virtual time,
    // whole milliseconds in Node's timers): the protocols must see their deadline reached.
    const now = Math.max(this.opts.runtime.now(), at);
    this.stats.ticks++;
    if (now - this.askedAt() > TICK_LATE_MS) this.stats.lateTicks++;
    const all = now >= this.allDueAt;
    this.lastTickAt = now;
    this.allDueAt = Infinity;
    this.cancelTick?.();
    this.cancelTick = null;
    this.armedAt = Infinity;
    this.turn(() => {
      for (const p of this.protocols) {
        const s = this.slots.get(p)!;
        const safety = now >= s.tickedAt + TICK_GAP_MAX_MS - TICK_GAP_MIN_MS;
        if (!(all || s.cadence || s.touched || safety || now >= s.dueAt)) continue;
        s.touched = false;
        s.tickedAt = now;
        // Nothing returned (or a tick that threw): the fixed cadence.
        s.dueAt = now + this.opts.profile.tickMs;
        s.cadence = true;
        this.guard(() => {
          const r = p.tick(now);
          if (typeof r !== 'number') return;
          s.dueAt = r;
          s.cadence = false;
        });
      }
    });
    this.updateLoopback(now);
    this.arm(this.askedAt());
  }

  /** The earliest deadline asked for: a protocol's or a wakeAt() time. */
  private askedAt(): number {
    let at = this.allDueAt;
    for (const s of this.slots.values()) at = Math.min(at, s.dueAt);
    return at;
  }

  /** ProtocolContext.wakeAt: every protocol ticks at `at`. */
  private wakeAt(at: number): void {
    if (!this.running) return;
    this.allDueAt = Math.min(this.allDueAt, at);
    this.arm(at);
  }

  /**
   * Protocol `p` has nothing to do before `at` after all, later than its last tick asked for: the
   * timer is armed again for the earliest deadline left, unless a wakeAt() time holds it.
   */
  private rescheduled(p: Protocol, at: number): void {
    const s = this.slots.get(p);
    if (!this.running || !s || at <= s.dueAt) return;
    const was = s.dueAt;
    s.dueAt = at;
    if (this.armedAt === Infinity || was > this.armedAt) return;
    this.cancelTick?.();
    this.cancelTick = null;
    this.armedAt = Infinity;
    this.arm(this.askedAt());
  }

  /** Marks protocols to tick in the next wake, whenever it comes: it comes no later for them. */
  private touch(...ps: Array<Protocol | undefined>): void {
    for (const p of ps) if (p) this.slots.get(p)!.touched = true;
  }

  /** Arms the one timer for `at` unless it is armed earlier (see TICK_GAP_MIN_MS). */
  private arm(at: number): void {
    const when = Math.min(Math.max(at, this.lastTickAt + TICK_GAP_MIN_MS), this.lastTickAt + TICK_GAP_MAX_MS);
    if (when >= this.armedAt) return;
    this.cancelTick?.();
    this.armedAt = when;
    this.cancelTick = this.opts.runtime.after(when - this.opts.runtime.now(), () => {
      this.cancelTick = null;
      this.tick(when);
    });
  }

  /** Handles one message or tick, then runs what the protocols asked to run soon. */
  private turn(fn: () => void): void {
    this.handling++;
    try {
      fn();
    } finally {
      if (--this.handling === 0) this.runSoon();
    }
  }

  private soon(fn: () => void): void {
    this.soonQueue.push(fn);
    if (this.handling === 0) this.bookSoon();
  }

  private bookSoon(): void {
    if (this.soonBooked) return;
    this.soonBooked = true;
    this.opts.runtime.after(0, () => {
      this.soonBooked = false;
      this.runSoon();
    });
  }

  /** Callbacks queued while these run (a flush that queues another) run in the same turn, up to SOON_ROUNDS_MAX. */
  private runSoon(): void {
    for (let round = 0; this.soonQueue.length > 0; round++) {
      if (round === SOON_ROUNDS_MAX) return this.bookSoon();
      const fns = this.soonQueue;
      this.soonQueue = [];
      if (!this.running) return;
      for (const fn of fns) this.guard(fn);
    }
  }

  private updateLoopback(now: number): void {
    if (!this.opts.transport.setMulticastLoopback) return;
    const age = now - this.startedAt;
    const on =
      this.opts.observer === true ||
      age < MULTICAST_LOOPBACK_GRACE_MS ||
      age % MULTICAST_LOOPBACK_PROBE_EVERY_MS < MULTICAST_LOOPBACK_PROBE_MS ||
      now - this.observerHeardAt < MULTICAST_LOOPBACK_OBSERVER_MS ||
      this.memberSharesHost();
    if (on === this.loopback) return;
    this.loopback = on;
    this.opts.transport.setMulticastLoopback(on);
  }

  /** Whether a live member runs on our host. */
  private memberSharesHost(): boolean {
    return this.membership.liveOnHost(parseAddress(this.address).host);
  }

  private transmit(
    to: Address | null,
    type: string,
    body: unknown,
    attachment?: Uint8Array,
    fanout = true,
  ): number {
    const l = this.clock.tick();
    const env: Envelope = {
      v: PROTOCOL_VERSION,
      t: type,
      i: this.self.id,
      n: this.self.name,
      c: this.self.incarnation,
      s: ++this.seq,
      l,
      b: body,
    };
    this.put(to, this.codec.encode(env, attachment), fanout);
    return l;
  }

  private transmitFrame(to: Address | null, kind: number, parts: Uint8Array[]): void {
    let header = this.frameHeaders.get(kind);
    if (!header) this.frameHeaders.set(kind, (header = frameHeader(kind, this.self.id)));
    const data = Buffer.concat([header, ...parts]);
    if (data.length > FRAME_BYTES_MAX)
      throw new Error(`frame of ${data.length} bytes, over ${FRAME_BYTES_MAX}`);
    this.put(to, data);
  }

  /**
   * To `to`, or (null) to the group: a multicast (unless unicast-only) plus, unless `fanout` is
   * false (membership's capped heartbeats), the fan-out (reach.ts).
   */
  private put(to: Address | null, data: Uint8Array, fanout = true): void {
    let copies = 1;
    if (to === null) {
      const also = fanout ? this.reach.fanout() : [];
      copies = also.length + (this.opts.transport.mode === 'unicast' ? 0 : 1);
      this.opts.transport.broadcast(data, also);
    } else this.opts.transport.send(to, data);
    this.stats.datagramsOut += copies;
    this.stats.bytesOut += copies * data.length;
  }

  private receive(data: Uint8Array, from: Address, via: Via): void {
    if (!this.running) return;
    this.turn(() => this.handle(data, from, via));
  }

  private handle(data: Uint8Array, from: Address, via: Via): void {
    this.stats.datagramsIn++;
    this.stats.bytesIn += data.length;
    if (data[0] === FRAME_MARK)
      return this.handleFrame(Buffer.from(data.buffer, data.byteOffset, data.length), from, via);
    const r = this.codec.decode(data);
    if (!r.ok) return this.drop(r.reason, from, r.version);
    const env = r.env;
    if (env.i === this.self.id) {
      this.stats.ownId++;
      return;
    }
    // An impostor or an out-of-bound counter refuses the whole envelope, before anything reads it.
    if (!this.membership.admit(env, from)) return;
    if (!this.clock.receive(env.l, this.opts.runtime.now(), from)) {
      this.context.refuse('lamport');
      // Still its sender's own word that it is alive: a member whose clock is out of step with
      // ours (a forger split the group's clocks, lamport.ts) must not look dead until it mends.
      this.touch(this.membership, this.reach);
      this.guard(() => {
        this.membership.observe(env, from, { join: false, via });
        this.reach.heard(env.i, from, via);
      });
      return;
    }
    const owner = this.owners.get(env.t);
    this.touch(this.membership, this.reach, owner);
    this.guard(() => {
      this.membership.observe(env, from, { via });
      this.reach.heard(env.i, from, via);
      owner?.onMessage(env, from);
    });
  }

  /** A frame (wire.ts) goes to its kind's owner only from a live member at its known address. */
  private handleFrame(data: Buffer, from: Address, via: Via): void {
    const r = decodeFrame(data);
    if (!r.ok) return this.drop(r.reason, from, r.version);
    if (r.sender === this.self.id) {
      this.stats.ownId++;
      return;
    }
    const owner = this.frameOwners.get(r.kind);
    if (!owner) return this.drop('type', from);
    if (this.membership.liveAddress(r.sender) !== from) return this.drop('frame', from);
    this.touch(this.reach, owner.protocol);
    this.reach.heard(r.sender, from, via);
    this.guard(() => owner.handle(r.sender, r.body, from));
  }

  private drop(reason: DropReason, from: Address, version?: number): void {
    this.stats.dropped[reason]++;
    if (reason === 'version' && !this.versionWarned.has(from) && this.versionWarned.size < 64) {
      this.versionWarned.add(from);
      this.emit({ kind: 'version-mismatch', from, version: version ?? -1 });
    }
  }

  /** A protocol bug must not kill a peer in the field; tests assert handlerErrors stays zero. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.stats.handlerErrors++;
      this.stats.lastHandlerError = (err as Error).stack ?? String(err);
    }
  }

  private raiseIncarnation(min: number): number {
    if (min > this.self.incarnation) {
      this.self.incarnation = min;
      this.opts.persistIncarnation?.(min);
    }
    return this.self.incarnation;
  }

  private emit(e: PeerEvent): void {
    // A listener may be a protocol whose state the event changed.
    this.touch(...this.protocols);
    for (const l of this.listeners) l(e);
  }
}

/** Whether any of `members` runs on the host of `self` (same IP address). */
export function sharesHost(self: Address, members: ReadonlyArray<{ address: Address }>): boolean {
  const host = parseAddress(self).host;
  return members.some((m) => parseAddress(m.address).host === host);
}
