/**
 * A rogue host on a SimNetwork: it sends well-formed envelopes with whatever bodies a test crafts,
 * as anyone on an open LAN could, and hears nothing. Its Lamport time stays low so that only the
 * crafted body field is under test.
 */
import { Codec, PROTOCOL_VERSION } from '../../src/p2p/wire.js';
import type { SimNetwork } from '../../src/p2p/transport/sim.js';
import type { Address } from '../../src/p2p/transport/transport.js';

export interface Rogue {
  readonly id: string;
  readonly address: Address;
  send(to: Address, type: string, body: unknown): void;
  broadcast(type: string, body: unknown): void;
}

export async function rogue(net: SimNetwork, id = 'ffffffffffffffff', name = 'rogue'): Promise<Rogue> {
  const transport = net.transport();
  await transport.start(() => {});
  // Encoding checks only the size; the receivers' codecs judge the bodies.
  const codec = new Codec({});
  let seq = 0;
  const encode = (t: string, b: unknown) =>
    codec.encode({ v: PROTOCOL_VERSION, t, i: id, n: name, c: 1, s: ++seq, l: 1, b });
  return {
    id,
    address: transport.address,
    send: (to, type, body) => transport.send(to, encode(type, body)),
    broadcast: (type, body) => transport.broadcast(encode(type, body)),
  };
}
