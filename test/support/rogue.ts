/**
 * A rogue host on a SimNetwork: it sends well-formed envelopes with whatever bodies a test crafts,
 * as anyone on an open LAN could, and hears what the group sends it. Its envelopes are SimForger's
 * (cluster.ts), whose Lamport time stays low, so that only the crafted body field is under test.
 */
import type { SimNetwork } from '../../src/p2p/transport/sim.js';
import type { Address } from '../../src/p2p/transport/transport.js';
import { DEFAULT_SIM_HOST, SimForger } from './cluster.js';

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
  const transport = net.transport();
  // Where the group runs unicast-only, its "multicast" is a copy to every host (as c.forger()).
  const group =
    DEFAULT_SIM_HOST.mode === 'unicast' ? () => net.addresses().filter((a) => a !== transport.address) : null;
  // And it hears the group's sends there as it would hear them multicast: a rogue on the segment
  // sniffs the copies (SimNetwork.overhear), which is what a unicast-only group shows it.
  if (group) net.overhear(transport.address);
  const forger = new SimForger(net, transport, group);
  const r: Rogue = {
    id,
    address: transport.address,
    onHeard: () => {},
    send: (to, t, b, as, spoofFrom) => forger.send(to, { t, b, i: as ?? id, n: name }, { spoofFrom }),
    broadcast: (t, b) => forger.send(null, { t, b, i: id, n: name }),
  };
  await transport.start((data, from) => {
    const buf = Buffer.from(data);
    const mark = buf.indexOf(0);
    const env = JSON.parse(buf.toString('utf8', 0, mark < 0 ? buf.length : mark)) as Omit<Heard, 'from'>;
    r.onHeard({ t: env.t, i: env.i, b: env.b, from });
  });
  return r;
}
