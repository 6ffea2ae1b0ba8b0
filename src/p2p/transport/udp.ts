/**
 * UDP multicast transport over Node's dgram.
 *
 * Two sockets per peer:
 *  - the group socket binds the group address and port with reuseAddr, so several peers on one
 *    host share the port, and joins the group on the chosen interface only;
 *  - the unicast socket binds the interface address on an ephemeral port. It sends everything,
 *    multicast included (IP_MULTICAST_IF = the interface, TTL as configured), so the source
 *    address of every datagram is the sender's unicast address: replies need no address inside
 *    the message. Multicast loopback starts on, so peers on the same host hear each other;
 *    PeerNode turns it off while no other peer shares the host (setMulticastLoopback). On the
 *    loopback interface itself it makes no difference: every multicast comes back in through lo.
 *
 * Both sockets ask for a UDP_RECEIVE_BUFFER_BYTES kernel receive buffer: the default (208 KiB on
 * Linux) overflows when a fast sender's window of packed messages (hundreds of datagrams) lands
 * while this process is not scheduled, and every datagram the kernel drops costs a NACK and a
 * repair. The kernel caps the request at net.core.rmem_max without an error.
 *
 * While loopback is on, our own multicasts come back on the group socket too; they are dropped by
 * source address (compared without building the address string) before anything else looks at
 * them.
 *
 * In `unicast` mode (transport.ts) only the unicast socket exists.
 *
 * The door (claimDoor): one well-known unicast port per host, the group port on the interface
 * address, where `--join HOST[:PORT]` finds a peer without knowing its ephemeral port. It is bound
 * without reuseAddr, so only one process of the host holds it (the others get EADDRINUSE and retry:
 * startPeer); it only receives, through the same handler as the other sockets, and the answers
 * leave from the unicast socket as every datagram does (a member's address stays its one source).
 * Bound to the interface address, it shares the port with the group sockets, bound to the group
 * address, without taking their multicast.
 *
 * Binding the group socket to the group address (not 0.0.0.0) keeps unicast traffic to the group
 * port out of it. Send errors (a link going down, ENOBUFS under load) are counted, never thrown.
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import { isIPv4 } from 'node:net';
import {
  formatAddress,
  parseAddress,
  type Address,
  type DatagramHandler,
  type Transport,
  type TransportMode,
  type Via,
} from './transport.js';

/** Requested SO_RCVBUF per socket (see the header). */
export const UDP_RECEIVE_BUFFER_BYTES = 2 * 1024 * 1024;

/**
 * dgram resolves the host of every send through its lookup function, by default dns.lookup: a
 * process.nextTick and two closures per datagram even for an IPv4 address, which is all this
 * transport sends to (the group, members' addresses), and a file transfer sends a datagram per
 * 1.4 KB. An IPv4 address is given back at once; anything else still goes to dns.lookup.
 */
function lookupAddress(
  host: string,
  options: dns.LookupOneOptions | number,
  done: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  if (isIPv4(host)) done(null, host, 4);
  else if (typeof options === 'number') dns.lookup(host, options, done);
  else dns.lookup(host, options, done);
}

/** The socket options every socket here shares. */
const SOCKET = { type: 'udp4', recvBufferSize: UDP_RECEIVE_BUFFER_BYTES, lookup: lookupAddress } as const;

export interface UdpOptions {
  group: string;
  port: number;
  /** IPv4 address of the interface to use. */
  interface: string;
  ttl: number;
  /** Unicast port; 0 picks a free one. */
  unicastPort?: number;
  /** `unicast`: no group socket, no multicast sent (transport.ts); default `multicast`. */
  mode?: TransportMode;
}

export class UdpTransport implements Transport {
  private group: dgram.Socket | null = null;
  private unicast: dgram.Socket | null = null;
  private door: dgram.Socket | null = null;
  /** The receive path of start(), for a door claimed later. */
  private listen: ((socket: dgram.Socket) => void) | null = null;
  private addr: Address = '';
  /** Sends not yet handed to the kernel; close() waits for them so a leave is not cut off. */
  private pending = 0;
  private drained: (() => void) | null = null;
  readonly errors = { send: 0, socket: 0, lastError: '' };

  readonly mode: TransportMode;

  constructor(readonly options: UdpOptions) {
    this.mode = options.mode ?? 'multicast';
  }

  get address(): Address {
    return this.addr;
  }

  async start(onDatagram: DatagramHandler): Promise<void> {
    const { group, port, ttl } = this.options;
    const iface = this.options.interface;
    let ownPort = -1;
    const onMessage = (via: Via) => (msg: Buffer, rinfo: dgram.RemoteInfo) => {
      // Our own multicast, looped back for the peers on this host.
      if (rinfo.port === ownPort && rinfo.address === iface) return;
      onDatagram(msg, formatAddress(rinfo.address, rinfo.port), via);
    };
    const onError = (err: Error) => {
      this.errors.socket++;
      this.errors.lastError = err.message;
    };

    this.listen = (door) => door.on('message', onMessage('unicast')).on('error', onError);
    const uni = dgram.createSocket(SOCKET);
    uni.on('message', onMessage('unicast')).on('error', onError);
    await bind(uni, this.options.unicastPort ?? 0, iface);
    uni.setMulticastInterface(iface);
    uni.setMulticastTTL(ttl);
    uni.setMulticastLoopback(true);
    this.unicast = uni;
    ownPort = uni.address().port;
    this.addr = formatAddress(iface, ownPort);
    if (this.mode === 'unicast') return;

    const grp = dgram.createSocket({ ...SOCKET, reuseAddr: true });
    grp.on('message', onMessage('group')).on('error', onError);
    try {
      await bind(grp, port, group);
      grp.addMembership(group, iface);
    } catch (err) {
      grp.close();
      uni.close();
      throw err;
    }
    this.group = grp;
  }

  broadcast(data: Uint8Array, also: readonly Address[] = []): void {
    if (this.mode === 'multicast') this.sendTo(this.options.port, this.options.group, data);
    for (const to of also) this.send(to, data);
  }

  send(to: Address, data: Uint8Array): void {
    const { host, port } = parseAddress(to);
    this.sendTo(port, host, data);
  }

  private sendTo(port: number, host: string, data: Uint8Array): void {
    const s = this.unicast;
    if (!s) return;
    try {
      this.pending++;
      s.send(data, port, host, (err) => {
        if (err) {
          this.errors.send++;
          this.errors.lastError = err.message;
        }
        if (--this.pending === 0) this.drained?.();
      });
    } catch (err) {
      this.pending--;
      this.errors.send++;
      this.errors.lastError = (err as Error).message;
    }
  }

  /**
   * Binds this host's door, `interface:port` (see the header), if no process of this host holds
   * it; resolves whether we hold it now. Never throws: a failed bind is counted and is a false.
   */
  async claimDoor(): Promise<boolean> {
    if (this.door) return true;
    if (!this.listen || !this.unicast) return false;
    const door = dgram.createSocket(SOCKET);
    try {
      await bind(door, this.options.port, this.options.interface);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') {
        this.errors.socket++;
        this.errors.lastError = (err as Error).message;
      }
      door.close();
      return false;
    }
    // Closed while binding: the door goes with the other sockets.
    if (!this.unicast) {
      door.close();
      return false;
    }
    this.listen(door);
    this.door = door;
    return true;
  }

  /** Whether this process holds its host's door (claimDoor). */
  get holdsDoor(): boolean {
    return this.door !== null;
  }

  setMulticastLoopback(on: boolean): void {
    try {
      this.unicast?.setMulticastLoopback(on);
    } catch (err) {
      this.errors.socket++;
      this.errors.lastError = (err as Error).message;
    }
  }

  async close(): Promise<void> {
    if (this.pending > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    const sockets = [this.group, this.unicast, this.door].filter((s): s is dgram.Socket => s !== null);
    this.group = this.unicast = this.door = null;
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

function bind(socket: dgram.Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => reject(err);
    socket.once('error', fail);
    socket.bind({ port, address, exclusive: false }, () => {
      socket.off('error', fail);
      resolve();
    });
  });
}
