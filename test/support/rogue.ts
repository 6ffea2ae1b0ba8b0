/**
 * A rogue host on a SimNetwork: it sends well-formed envelopes with whatever bodies a test crafts,
 * as anyone on an open LAN could, and hears what the group sends it. Its Lamport time stays low,
 * so that only the crafted body field is under test.
 */
import { Codec, PROTOCOL_VERSION } from '../../src/p2p/wire.js';
import type { SimNetwork } from '../../src/p2p/transport/sim.js';
import type { Address } from '../../src/p2p/transport/transport.js';

/** An envelope the rogue heard, read leniently (no body checks; any attachment is ignored). */
export interface Heard {
  t: string;
  i: string;
  b: Record<string, unknown>;
  from: Address;
}

export interface Rogue {
  readonly id: string;
  readonly address: Address;
  /** Called for every datagram the rogue hears. */
  onHeard: (h: Heard) => void;
  /** Unicasts; `as` sends under another id, `spoofFrom` from another host's address. */
  send(to: Address, type: string, body: unknown, as?: string, spoofFrom?: Address): void;
  broadcast(type: string, body: unknown): void;
}

export async function rogue(net: SimNetwork, id = 'ffffffffffffffff', name = 'rogue'): Promise<Rogue> {
  // Encoding checks only the size; the receivers' codecs judge the bodies.
  const codec = new Codec({});
  let seq = 0;
  const encode = (t: string, b: unknown, i = id) =>
    codec.encode({ v: PROTOCOL_VERSION, t, i, n: name, c: 1, s: ++seq, l: 1, b });
  const transport = net.transport();
  const r: Rogue = {
    id,
    address: transport.address,
    onHeard: () => {},
    send: (to, type, body, as, spoofFrom) =>
      spoofFrom
        ? net.deliver(spoofFrom, to, encode(type, body, as))
        : transport.send(to, encode(type, body, as)),
    broadcast: (type, body) => transport.broadcast(encode(type, body)),
  };
  await transport.start((data, from) => {
    const buf = Buffer.from(data);
    const mark = buf.indexOf(0);
    const env = JSON.parse(buf.toString('utf8', 0, mark < 0 ? buf.length : mark)) as Omit<Heard, 'from'>;
    r.onHeard({ t: env.t, i: env.i, b: env.b, from });
  });
  return r;
}
