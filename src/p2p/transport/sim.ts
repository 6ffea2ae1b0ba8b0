/**
 * An in-memory LAN in virtual time, for tests of 3-50 peers in one process.
 *
 * VirtualRuntime is a discrete-event scheduler: time only moves when the test runs it, events at
 * the same instant run in the order they were scheduled, and randomness comes from one seeded
 * generator, so a failing seed replays exactly.
 *
 * SimNetwork delivers each datagram to each recipient independently: it may be lost, duplicated,
 * delayed by a random amount (which reorders), or blocked by a partition or a crashed host.
 * Faults are set per network and overridden per directed link. Hosts sit in segments (multicast
 * domains, as subnets joined by a router without multicast routing): a multicast reaches the hosts
 * of the sender's segment, a unicast any host; multicast can also be blocked into or out of one host.
 */
import type { Cancel, Runtime } from '../runtime.js';
import { MinHeap } from '../kit/heap.js';
import {
  parseAddress,
  type Address,
  type DatagramHandler,
  type Transport,
  type TransportMode,
  type Via,
} from './transport.js';

/** mulberry32: a tiny, fast, well-distributed 32-bit PRNG; enough for fault injection. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One event in virtual time: a timer or a datagram on its way. A delivery is its own event (one
 * object per datagram per recipient, no closure), as the heap of a large simulation holds mostly
 * deliveries.
 */
interface SimEvent {
  at: number;
  order: number;
  cancelled: boolean;
  fire(): void;
}

class Timer implements SimEvent {
  cancelled = false;
  constructor(
    readonly at: number,
    readonly order: number,
    private readonly fn: () => void,
  ) {}
  fire(): void {
    this.fn();
  }
}

const before = (x: SimEvent, y: SimEvent) => x.at < y.at || (x.at === y.at && x.order < y.order);

/** The wall clock of every simulated peer at virtual time 0 (a whole second, 2023-11-14). */
export const SIM_EPOCH_MS = 1_700_000_000_000;

export class VirtualRuntime {
  readonly random: () => number;
  private t = 0;
  private order = 0;
  /** Events by (at, order). */
  private readonly heap = new MinHeap<SimEvent>(before);

  constructor(seed: number) {
    this.random = seededRandom(seed);
  }

  now(): number {
    return this.t;
  }

  schedule(delayMs: number, fn: () => void): Cancel {
    const timer = new Timer(this.at(delayMs), this.order++, fn);
    this.heap.push(timer);
    return () => {
      timer.cancelled = true;
    };
  }

  /** The time `delayMs` from now, and the next order: what a new event carries. */
  private at(delayMs: number): number {
    return this.t + Math.max(0, delayMs);
  }

  /** @internal A datagram on its way (SimNetwork): scheduled as a timer would be, never cancelled. */
  deliverIn(delayMs: number, d: Delivery): void {
    d.at = this.at(delayMs);
    d.order = this.order++;
    this.heap.push(d);
  }

  /** A Runtime view for one peer; `wallOffsetMs` skews its wall clock (clock-sync tests). */
  forPeer(wallOffsetMs = 0, epochMs = SIM_EPOCH_MS): Runtime {
    return {
      now: () => this.t,
      wall: () => epochMs + this.t + wallOffsetMs,
      random: this.random,
      after: (ms, fn) => this.schedule(ms, fn),
      every: (ms, fn) => {
        let cancel: Cancel = () => {};
        const loop = () => {
          cancel = this.schedule(ms, loop);
          fn();
        };
        cancel = this.schedule(ms, loop);
        return () => cancel();
      },
    };
  }

  /** Runs every event up to and including `at`, then sets the time to `at`. */
  runUntil(at: number): void {
    for (;;) {
      const next = this.heap.peek();
      if (!next || next.at > at) break;
      this.heap.pop();
      if (next.cancelled) continue;
      this.t = next.at;
      next.fire();
    }
    this.t = Math.max(this.t, at);
  }

  runFor(ms: number): void {
    this.runUntil(this.t + ms);
  }

  /** Runs until `done()` holds, checking after every event; false if `withinMs` passes first. */
  runUntilTrue(done: () => boolean, withinMs: number): boolean {
    const deadline = this.t + withinMs;
    if (done()) return true;
    for (;;) {
      const next = this.heap.peek();
      if (!next || next.at > deadline) {
        this.t = deadline;
        return done();
      }
      this.heap.pop();
      if (next.cancelled) continue;
      this.t = next.at;
      next.fire();
      if (done()) return true;
    }
  }
}

export interface LinkFaults {
  /** Probability that one datagram to one recipient is lost. */
  loss: number;
  /** Probability that a delivered datagram is delivered twice. */
  duplicate: number;
  /** Delay range in ms; a random delay in it reorders datagrams. */
  delayMinMs: number;
  delayMaxMs: number;
}

export const PERFECT_LINK: LinkFaults = { loss: 0, duplicate: 0, delayMinMs: 0.1, delayMaxMs: 0.5 };

interface Host {
  address: Address;
  /** The address's IP: hosts sharing it are one machine (multicast loopback). */
  ip: string;
  transport: SimTransport;
  handler: DatagramHandler | null;
  down: boolean;
  partition: number;
  /** Its multicast domain (a subnet): multicasts reach only hosts of the same segment. */
  segment: number;
  /** Multicast to this host is dropped (a switch or firewall that drops it); unicast still arrives. */
  multicastInBlocked: boolean;
  /** This host's multicasts reach nobody. */
  multicastOutBlocked: boolean;
}

export interface SimHostOptions {
  /** The multicast domain to put the host in (default 0); unicast crosses segments, as through a router. */
  segment?: number;
  mode?: TransportMode;
}

/** The port of a simulated machine's door (UdpTransport.claimDoor): the default group port. */
export const SIM_DOOR_PORT = 47777;

export class SimNetwork {
  readonly runtime: VirtualRuntime;
  faults: LinkFaults;
  private readonly hosts = new Map<Address, Host>();
  /** The hosts of each segment, in the order they were added: a multicast walks one array. */
  private readonly segments = new Map<number, Host[]>();
  /** Senders whose multicast loopback is off (setMulticastLoopback). */
  private readonly noLoopback = new Set<Address>();
  private readonly links = new Map<string, Partial<LinkFaults>>();
  /** Each claimed door (`ip:SIM_DOOR_PORT`) and the address of the host holding it. */
  private readonly doors = new Map<Address, Address>();
  /** Hosts that overhear the group sends of their segment made by unicast copies (overhear()). */
  private readonly sniffers = new Set<Address>();
  private nextHost = 1;
  /** Datagrams handed to the network and delivered, for tests that measure traffic. */
  readonly counters = { sent: 0, delivered: 0, lost: 0, duplicated: 0, blocked: 0 };

  constructor(seed: number, faults: Partial<LinkFaults> = {}) {
    this.runtime = new VirtualRuntime(seed);
    this.faults = { ...PERFECT_LINK, ...faults };
  }

  /**
   * A transport on a new host (address "10.0.S.N:7000" in segment S); `address` reuses a crashed
   * host's, in its segment unless `opts.segment` moves it.
   */
  transport(address?: Address, opts: SimHostOptions = {}): SimTransport {
    const existing = address === undefined ? undefined : this.hosts.get(address);
    if (existing && existing.handler) throw new Error(`sim address ${address} is in use`);
    const segment = opts.segment ?? existing?.segment ?? 0;
    const addr =
      address ?? `10.${segment}.${Math.floor(this.nextHost / 250)}.${(this.nextHost++ % 250) + 1}:7000`;
    const t = new SimTransport(this, addr, opts.mode ?? 'multicast');
    const host: Host = {
      address: addr,
      ip: parseAddress(addr).host,
      transport: t,
      handler: null,
      down: false,
      partition: existing?.partition ?? 0,
      segment,
      multicastInBlocked: existing?.multicastInBlocked ?? false,
      multicastOutBlocked: existing?.multicastOutBlocked ?? false,
    };
    this.hosts.set(addr, host);
    // A restarted host keeps its place in its segment, so a seed replays as it did before.
    const old = existing ? this.segmentOf(existing.segment) : null;
    const at = old && existing!.segment === segment ? old.indexOf(existing!) : -1;
    if (at >= 0) old![at] = host;
    else {
      if (old) old.splice(old.indexOf(existing!), 1);
      this.segmentOf(segment).push(host);
    }
    // A new socket starts with multicast loopback on, whatever the crashed one had set.
    this.noLoopback.delete(addr);
    return t;
  }

  /** Every host's address, in the order they were added (a forger's "multicast" to a unicast-only group). */
  addresses(): Address[] {
    return [...this.hosts.keys()];
  }

  private segmentOf(segment: number): Host[] {
    let hosts = this.segments.get(segment);
    if (!hosts) this.segments.set(segment, (hosts = []));
    return hosts;
  }

  /** Overrides faults on the directed link from -> to. */
  setLink(from: Address, to: Address, faults: Partial<LinkFaults>): void {
    this.links.set(`${from}>${to}`, faults);
  }

  /** Hosts in different groups cannot reach each other; hosts not named stay in group 0. */
  partition(...groups: Address[][]): void {
    for (const h of this.hosts.values()) h.partition = 0;
    groups.forEach((g, i) => g.forEach((a) => (this.hostOf(a).partition = i + 1)));
  }

  heal(): void {
    for (const h of this.hosts.values()) h.partition = 0;
  }

  /** Cuts a host off (like `ip link set down`); its peer keeps running. */
  setDown(address: Address, down: boolean): void {
    this.hostOf(address).down = down;
  }

  /**
   * Drops multicast into (`in`) or out of (`out`) one host, as a firewall rule or a switch that
   * filters multicast would; unicast is untouched. Both false lifts the block.
   */
  blockMulticast(address: Address, dirs: { in: boolean; out: boolean } = { in: true, out: true }): void {
    const h = this.hostOf(address);
    h.multicastInBlocked = dirs.in;
    h.multicastOutBlocked = dirs.out;
  }

  /**
   * Lets a host overhear, once each, the group sends of its segment that unicast-only senders make
   * as copies to each member: what an attacker who sniffs a shared segment (a hub, open Wi-Fi, a
   * mirrored switch port) sees of a group that sends no multicast, as much as a multicast group
   * shows anyone on its LAN. Tests' forgers use it; no peer does.
   */
  overhear(address: Address): void {
    this.sniffers.add(address);
  }

  /** @internal A unicast-only host sends to the group: the segment's sniffers overhear it once. */
  groupSentByUnicast(from: Address, data: Uint8Array, also: readonly Address[]): void {
    if (this.sniffers.size === 0) return;
    const src = this.hostOf(from);
    for (const addr of this.sniffers) {
      const dst = this.hosts.get(addr);
      // A sniffer it sends a copy to anyway hears that copy, not a second one.
      if (!dst || dst === src || dst.segment !== src.segment || also.includes(addr)) continue;
      this.deliverOne(src, dst, Uint8Array.from(data), 'group');
    }
  }

  private hostOf(address: Address): Host {
    const h = this.hosts.get(address);
    if (!h) throw new Error(`no sim host ${address}`);
    return h;
  }

  /** @internal */ attach(address: Address, handler: DatagramHandler | null): void {
    this.hostOf(address).handler = handler;
  }

  /**
   * Claims the door of `address`'s machine, `ip:SIM_DOOR_PORT`, as UdpTransport.claimDoor binds
   * it: true if this host holds it now, false while another host of that IP holds it and is open.
   * Datagrams to the door are delivered to the holder, from their sender, as unicast.
   */
  claimDoor(address: Address): boolean {
    const door = `${this.hostOf(address).ip}:${SIM_DOOR_PORT}`;
    const holder = this.doors.get(door);
    if (holder !== undefined && holder !== address && this.hosts.get(holder)?.handler) return false;
    this.doors.set(door, address);
    return true;
  }

  /** @internal */ setLoopback(address: Address, on: boolean): void {
    if (on) this.noLoopback.delete(address);
    else this.noLoopback.add(address);
  }

  /** @internal */ multicast(from: Address, data: Uint8Array): void {
    this.counters.sent++;
    const src = this.hostOf(from);
    if (src.multicastOutBlocked) {
      this.counters.blocked++;
      return;
    }
    // Copy once: the sender may reuse its buffer, and receivers must not share mutations.
    const copy = Uint8Array.from(data);
    // Multicast loopback off: processes on the sender's machine (same IP) do not get its multicasts.
    const noLoopback = this.noLoopback.has(from);
    for (const dst of this.segmentOf(src.segment)) {
      if (dst === src) continue; // nobody hears itself (transport.ts)
      if (noLoopback && dst.ip === src.ip) continue;
      if (dst.multicastInBlocked || dst.transport.mode === 'unicast') {
        this.counters.blocked++;
        continue;
      }
      this.deliverOne(src, dst, copy, 'group');
    }
  }

  /** @internal */ unicast(from: Address, to: Address, data: Uint8Array): void {
    this.counters.sent++;
    const door = this.doors.get(to);
    const dst = this.hosts.get(door ?? to);
    if (!dst || dst.address === from) return;
    this.deliverOne(this.hostOf(from), dst, Uint8Array.from(data), 'unicast');
  }

  private deliverOne(src: Host, dst: Host, data: Uint8Array, via: Via): void {
    if (src.down || dst.down || src.partition !== dst.partition) {
      this.counters.blocked++;
      return;
    }
    // The network-wide faults as they are unless some link overrides them (most tests set none).
    const link = this.links.size === 0 ? undefined : this.links.get(`${src.address}>${dst.address}`);
    const f = link ? { ...this.faults, ...link } : this.faults;
    const rnd = this.runtime.random;
    if (rnd() < f.loss) {
      this.counters.lost++;
      return;
    }
    const copies = rnd() < f.duplicate ? 2 : 1;
    if (copies === 2) this.counters.duplicated++;
    for (let k = 0; k < copies; k++) {
      const delay = f.delayMinMs + rnd() * (f.delayMaxMs - f.delayMinMs);
      this.runtime.deliverIn(delay, new Delivery(this, src.address, dst.address, data, via));
    }
  }

  /** @internal A datagram arrives: checked again, as the host may have crashed or been cut off meanwhile. */
  arrive(d: Delivery): void {
    const h = this.hosts.get(d.to);
    if (!h || !h.handler || h.down) return;
    this.counters.delivered++;
    h.handler(d.data, d.from, d.via);
  }
}

/** A datagram to one recipient, due at `at` (VirtualRuntime.deliverIn). */
class Delivery implements SimEvent {
  at = 0;
  order = 0;
  cancelled = false;
  constructor(
    private readonly net: SimNetwork,
    readonly from: Address,
    readonly to: Address,
    readonly data: Uint8Array,
    readonly via: Via,
  ) {}
  fire(): void {
    this.net.arrive(this);
  }
}

export class SimTransport implements Transport {
  constructor(
    private readonly net: SimNetwork,
    readonly address: Address,
    readonly mode: TransportMode,
  ) {}

  async start(onDatagram: DatagramHandler): Promise<void> {
    this.net.attach(this.address, onDatagram);
  }

  broadcast(data: Uint8Array, also: readonly Address[] = []): void {
    if (this.mode === 'multicast') this.net.multicast(this.address, data);
    else this.net.groupSentByUnicast(this.address, data, also);
    for (const to of also) this.net.unicast(this.address, to, data);
  }

  send(to: Address, data: Uint8Array): void {
    this.net.unicast(this.address, to, data);
  }

  setMulticastLoopback(on: boolean): void {
    this.net.setLoopback(this.address, on);
  }

  /** Claims this machine's door (SimNetwork.claimDoor); held until this transport closes. */
  claimDoor(): boolean {
    return this.net.claimDoor(this.address);
  }

  async close(): Promise<void> {
    this.net.attach(this.address, null);
  }
}
