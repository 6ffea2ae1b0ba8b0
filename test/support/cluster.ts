/**
 * A simulated cluster: N peers over one SimNetwork in virtual time, with crash and restart that
 * keep only what a peer persisted (its id and incarnation), as a real crash keeps only SQLite.
 */
import { randomBytes } from 'node:crypto';
import { PeerNode, type NodeOptions, type NodeStats } from '../../src/p2p/node.js';
import { PROFILES, type Profile } from '../../src/p2p/config.js';
import {
  SimNetwork,
  type LinkFaults,
  type SimHostOptions,
  type SimTransport,
} from '../../src/p2p/transport/sim.js';
import type { PeerEvent } from '../../src/p2p/protocol.js';
import { MemoryRememberedPeers } from '../../src/p2p/join/remembered.js';
import { HB } from '../../src/p2p/membership.js';
import type { Address, Transport, Via } from '../../src/p2p/transport/transport.js';
import { Codec, PROTOCOL_VERSION, type Envelope } from '../../src/p2p/wire.js';

export interface SimPeer {
  node: PeerNode;
  name: string;
  address: string;
  events: PeerEvent[];
  /** What survives a crash. */
  persisted: { id: string; incarnation: number };
  up: boolean;
  /** Its host's segment and transport mode, kept across restarts. */
  host: SimHostOptions;
  /** Its seeds, and whether it claims its machine's door (SimNetwork.claimDoor) at every boot. */
  join: SimJoinOptions;
  /** Members it met (join/remembered.ts), kept across a crash as its database would be; null: none kept. */
  remembered: MemoryRememberedPeers | null;
}

export interface SimJoinOptions {
  /** Addresses to sync with (`--join`): doors (`ip:SIM_DOOR_PORT`) or peers' own addresses. */
  seeds?: Address[];
  door?: boolean;
  /** Keeps remembered peers (as a CLI peer does in its database). */
  remember?: boolean;
  /**
   * false: a unicast-only peer meets the group only through its seeds, as a real one does, without
   * the test's hello to every live peer (SimCluster.introduce), which costs O(N^2) at scale. The
   * default: the test's hellos only for a peer given no seeds (they stand in for `--join`; one
   * given seeds meets the group through them, which is what its test tests).
   */
  hello?: boolean;
}

/**
 * The transport mode of peers added without one: PEER_SIM_TRANSPORT=unicast runs a sim suite with
 * every peer unicast-only (no multicast at all), as CI does once for the suites that matter.
 */
export const DEFAULT_SIM_HOST: SimHostOptions =
  process.env.PEER_SIM_TRANSPORT === 'unicast' ? { mode: 'unicast' } : {};

/** How often, and how many times, the test's hello is repeated until both peers know each other. */
export const HELLO_RETRY_MS = 250;
export const HELLO_TRIES = 12;

export class SimCluster {
  readonly net: SimNetwork;
  readonly peers: SimPeer[] = [];
  /** Optional layer around each peer's sim transport (encryption, rate guard); applied at every boot. */
  wrapTransport?: (transport: Transport, peer: SimPeer) => Transport;
  private readonly observers = new Set<SimPeer>();

  constructor(
    readonly seed: number,
    faults: Partial<LinkFaults> = {},
    readonly profile: Profile = PROFILES.lan,
    private readonly configure?: (node: PeerNode, peer: SimPeer) => void,
  ) {
    this.net = new SimNetwork(seed, faults);
  }

  get rt() {
    return this.net.runtime;
  }

  /** A peer on a new host; `host` puts it in another segment or makes it unicast-only. */
  async add(
    name: string,
    extra: Partial<NodeOptions> = {},
    hostOpts: SimHostOptions = {},
    join: SimJoinOptions = {},
  ): Promise<SimPeer> {
    const host = { ...DEFAULT_SIM_HOST, ...hostOpts };
    // A unicast-only observer (a one-shot command, the monitor) meets the group only through
    // `--join`, as a user runs it: its seeds are the members' own addresses.
    if (extra.observer && host.mode === 'unicast' && join.seeds === undefined)
      join = { ...join, seeds: this.members().map((p) => p.address) };
    const id = idFrom(this.net.runtime.random);
    const transport = this.net.transport(undefined, host);
    const peer: SimPeer = {
      node: null as unknown as PeerNode,
      name,
      address: transport.address,
      events: [],
      persisted: { id, incarnation: 1 },
      up: false,
      host,
      join,
      remembered: join.remember ? new MemoryRememberedPeers() : null,
    };
    await this.boot(peer, transport, extra);
    this.peers.push(peer);
    // An observer never says hello (it is no member): it meets nobody without `--join`.
    if (extra.observer) this.observers.add(peer);
    else if (introduced(host, join)) this.introduceToAll(peer);
    return peer;
  }

  /**
   * Makes `a` and `b` meet where no multicast carries their probes: each sends the other its
   * heartbeat by unicast, the hello a seed's hint leads to (`--join`), so each adds the other on
   * its own word. Repeated, as `--join` retries, while either does not know the other (a lost
   * hello), up to HELLO_TRIES times, for as long as both run the processes they ran.
   */
  introduce(a: SimPeer, b: SimPeer, tries = HELLO_TRIES): void {
    const [na, nb] = [a.node, b.node];
    // Known as live: two peers that saw each other die (a partition) send each other nothing.
    const knows = (x: PeerNode, y: PeerNode) => {
      const m = x.membership.get(y.id);
      return m !== undefined && (m.state === 'alive' || m.state === 'suspect');
    };
    if (!a.up || !b.up || na !== a.node || nb !== b.node || (knows(na, nb) && knows(nb, na))) return;
    for (const [from, to] of [
      [a, b],
      [b, a],
    ] as const)
      from.node.context.send(to.address, ...HB.out({ tags: from.node.membership.ownTags }));
    if (tries > 1) this.rt.schedule(HELLO_RETRY_MS, () => this.introduce(a, b, tries - 1));
  }

  /** A unicast-only peer meets nobody by itself: the test's hello to every live peer stands in for `--join`. */
  private introduceToAll(peer: SimPeer): void {
    for (const q of this.members()) if (q !== peer) this.introduce(peer, q);
  }

  /** Live peers that are members (no observers). */
  private members(): SimPeer[] {
    return this.peers.filter((p) => p.up && !this.observers.has(p));
  }

  /**
   * Heals every partition. Where one of two peers runs unicast-only, two that saw each other die
   * send each other nothing more (a fan-out holds live members only) until the product's
   * reconnect (join/index.ts: a dead member's address every RECONNECT_INTERVAL_MS) meets one
   * side again: the test's hellos stand in for it, at once, as multicast heartbeats heal a LAN at
   * once. heal.test.ts tests the reconnect itself, with `net.heal()`.
   */
  heal(): void {
    this.net.heal();
    this.reintroduce();
  }

  /** Cuts a peer's host off (`ip link set down`), or brings it back: as heal() then. */
  setDown(peer: SimPeer, down: boolean): void {
    this.net.setDown(peer.address, down);
    if (!down) this.reintroduce();
  }

  /** The test's hellos, after a heal, between members of which one runs unicast-only (see heal()). */
  private reintroduce(): void {
    const members = this.members();
    for (const [i, a] of members.entries())
      for (const b of members.slice(i + 1))
        if (a.host.mode === 'unicast' || b.host.mode === 'unicast') this.introduce(a, b);
  }

  private async boot(
    peer: SimPeer,
    transport = this.net.transport(peer.address, peer.host),
    extra: Partial<NodeOptions> = {},
  ) {
    const node = new PeerNode({
      id: peer.persisted.id,
      name: peer.name,
      incarnation: peer.persisted.incarnation,
      profile: this.profile,
      transport: this.wrapTransport ? this.wrapTransport(transport, peer) : transport,
      runtime: this.net.runtime.forPeer(),
      persistIncarnation: (n) => (peer.persisted.incarnation = n),
      remembered: peer.remembered,
      ...extra,
    });
    node.on((e) => peer.events.push(e));
    node.join.setSeeds(peer.join.seeds ?? []);
    peer.node = node;
    this.configure?.(node, peer);
    await node.start();
    if (peer.join.door) transport.claimDoor();
    peer.up = true;
  }

  async crash(peer: SimPeer): Promise<void> {
    await peer.node.crash();
    peer.up = false;
  }

  /** Restarts a crashed peer on the same host with a higher incarnation, as a real restart does. */
  async restart(peer: SimPeer): Promise<void> {
    peer.persisted.incarnation++;
    await this.boot(peer);
    if (introduced(peer.host, peer.join)) this.introduceToAll(peer);
  }

  async leave(peer: SimPeer): Promise<void> {
    await peer.node.stop();
    peer.up = false;
  }

  /** A stranger on this network that sends envelopes of its own making (SimForger). */
  async forger(address?: Address): Promise<SimForger> {
    const transport = this.net.transport(address);
    await transport.start(() => {});
    // Where the group runs unicast-only, a stranger's "multicast" is a copy to every peer's address.
    const group = DEFAULT_SIM_HOST.mode === 'unicast' ? () => this.peers.map((p) => p.address) : null;
    return new SimForger(this.net, transport, group);
  }

  live(): SimPeer[] {
    return this.peers.filter((p) => p.up);
  }

  /**
   * Every live peer sees exactly the other live peers as alive, and where one of two runs
   * unicast-only, each is in the other's fan-out (reach.ts): until then group sends miss it.
   */
  converged(): boolean {
    const live = this.live();
    const unicast = (p: SimPeer) => p.host.mode === 'unicast';
    const reached = live.every((p) => {
      if (this.observers.has(p)) return true;
      // A set: a lookup per pair in the fan-out array would make this O(N^3) at scale.
      const fanout = new Set(p.node.reach.fanout());
      return live.every(
        (q) => q === p || this.observers.has(q) || !(unicast(p) || unicast(q)) || fanout.has(q.address),
      );
    });
    return (
      reached &&
      live.every((p) => {
        const alive = new Set(
          p.node.membership
            .list()
            .filter((m) => m.state === 'alive')
            .map((m) => m.id),
        );
        return alive.size === live.length - 1 && live.every((q) => q === p || alive.has(q.node.id));
      })
    );
  }

  /** Sum of handler errors over all peers: a protocol bug if not zero. */
  handlerErrors(): string[] {
    return this.peers
      .filter((p) => p.node.stats.handlerErrors > 0)
      .map((p) => `${p.name}: ${p.node.stats.lastHandlerError}`);
  }
}

/**
 * A stranger on the simulated LAN that sends hand-made envelopes: any id, name, incarnation,
 * Lamport time and body, well-formed or not as the test chooses, from its own address or (with
 * `spoofFrom`) from any host's address, as a LAN attacker can. Fields left out get the stranger's
 * own values (SimForger.ID, incarnation 1, Lamport 1, a fresh sequence number).
 */
export class SimForger {
  static readonly ID = 'f0f0f0f0f0f0f0f0';
  /** Encodes any type: the codec only checks types and bodies on decode. */
  private readonly codec = new Codec({});
  private seq = 0;

  constructor(
    private readonly net: SimNetwork,
    private readonly transport: SimTransport,
    /** The addresses a send to the group goes to one by one (a unicast-only group); null: multicast. */
    private readonly group: (() => Address[]) | null = null,
  ) {}

  get address(): Address {
    return this.transport.address;
  }

  /** Sends any bytes (a frame, say: wire.ts) to `to`, or multicasts them with `to` null. */
  sendBytes(to: Address | null, data: Uint8Array, opts: { spoofFrom?: Address } = {}): void {
    this.transmit(to, data, opts.spoofFrom);
  }

  /** Sends one envelope to `to`, or multicasts it with `to` null. */
  send(
    to: Address | null,
    env: Pick<Envelope, 't' | 'b'> & Partial<Envelope>,
    opts: { attachment?: Uint8Array; spoofFrom?: Address } = {},
  ): void {
    this.transmit(to, this.encode(env, opts.attachment), opts.spoofFrom);
  }

  /** The datagram `send` would send for `env` (a test that counts the bytes it sends). */
  encode(env: Pick<Envelope, 't' | 'b'> & Partial<Envelope>, attachment?: Uint8Array): Buffer {
    return this.codec.encode(
      { v: PROTOCOL_VERSION, i: SimForger.ID, n: 'stranger', c: 1, s: ++this.seq, l: 1, ...env },
      attachment,
    );
  }

  private transmit(to: Address | null, data: Uint8Array, spoofFrom?: Address): void {
    const from = spoofFrom ?? this.transport.address;
    if (to !== null) this.net.unicast(from, to, data);
    else if (this.group) for (const addr of this.group()) this.net.unicast(from, addr, data);
    else this.net.multicast(from, data);
  }
}

/**
 * `t`, handing its peer only the datagrams it receives that `keep` accepts (the text is the
 * datagram read as latin1, to look for an envelope's fields): a fault in one peer's receive path,
 * for SimCluster.wrapTransport.
 */
export function receiving(t: Transport, keep: (text: string, from: Address, via: Via) => boolean): Transport {
  return {
    get address() {
      return t.address;
    },
    mode: t.mode,
    start: (handle) =>
      t.start((data, from, via) => {
        if (keep(Buffer.from(data).toString('latin1'), from, via)) handle(data, from, via);
      }),
    broadcast: (data, also) => t.broadcast(data, also),
    send: (to, data) => t.send(to, data),
    close: () => t.close(),
  };
}

/**
 * `t`, telling `sent` of every datagram it sends before it goes: `to` is the unicast address, or
 * null for the group. For SimCluster.wrapTransport.
 */
export function sending(t: Transport, sent: (data: Uint8Array, to: Address | null) => void): Transport {
  return {
    get address() {
      return t.address;
    },
    mode: t.mode,
    start: (handle) => t.start(handle),
    broadcast: (data, also) => {
      sent(data, null);
      t.broadcast(data, also);
    },
    send: (to, data) => {
      sent(data, to);
      t.send(to, data);
    },
    close: () => t.close(),
  };
}

/** Whether the test's hellos stand in for `--join` for a peer (SimJoinOptions.hello). */
function introduced(host: SimHostOptions, join: SimJoinOptions): boolean {
  return host.mode === 'unicast' && (join.hello ?? !join.seeds?.length);
}

export function idFrom(random: () => number): string {
  let s = '';
  for (let i = 0; i < 16; i++) s += Math.floor(random() * 16).toString(16);
  return s;
}

export function randomId(): string {
  return randomBytes(8).toString('hex');
}

/** A node's `stats.dropped` when it refused no datagram: what a clean run must end with. */
export const NO_DROPS: NodeStats['dropped'] = {
  oversize: 0,
  json: 0,
  envelope: 0,
  version: 0,
  type: 0,
  body: 0,
  attachment: 0,
  frame: 0,
};
