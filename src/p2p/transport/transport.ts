/**
 * What a peer needs from a network: multicast to the group, unicast to one address, and a stream
 * of received datagrams with the unicast address of their sender. Two implementations: UDP
 * (udp.ts) and an in-memory network in virtual time (sim.ts). Both pass test/contract.
 *
 * Addresses are "host:port" strings. A peer multicasts from its unicast socket, so the source
 * address of every datagram, multicast or not, is where replies go. A peer never receives its own
 * datagrams: multicast loopback must stay on for peers sharing a host, and the echo would cost
 * the sender a full receive (decryption, decoding) of everything it sends.
 */
export type Address = string;

/**
 * How a datagram reached us: on the group's multicast address, or sent to our own address. A
 * member whose multicasts we never hear is reached, and reaches us, by unicast only (another
 * subnet, a switch or access point that drops multicast, a VPN).
 */
export type Via = 'group' | 'unicast';

export type DatagramHandler = (data: Uint8Array, from: Address, via: Via) => void;

/**
 * Whether the transport multicasts. `unicast` opens no group socket and sends no multicast
 * datagram: every group send goes by unicast to the addresses the caller names (PeerNode's fan-out).
 */
export type TransportMode = 'multicast' | 'unicast';

export interface Transport {
  /** This peer's unicast address; valid after start(). */
  readonly address: Address;
  readonly mode: TransportMode;
  start(onDatagram: DatagramHandler): Promise<void>;
  /**
   * Multicast to every other member of the group (not in `unicast` mode), and the same bytes by
   * unicast to each of `also`: the members our multicast does not reach. Never throws: a failed
   * send is counted.
   */
  broadcast(data: Uint8Array, also?: readonly Address[]): void;
  /** Unicast to one peer. Never throws. */
  send(to: Address, data: Uint8Array): void;
  close(): Promise<void>;
  /**
   * Whether our multicasts also reach the other processes on this host (on at start). PeerNode
   * turns it off while no other peer shares our host: every copy looped back costs the kernel a
   * local delivery, our own group socket included (a third of a multicast send's CPU on a veth).
   */
  setMulticastLoopback?(on: boolean): void;
}

export function formatAddress(host: string, port: number): Address {
  return `${host}:${port}`;
}

export function parseAddress(address: Address): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}
