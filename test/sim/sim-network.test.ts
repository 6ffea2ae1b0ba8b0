/**
 * The simulated network's multicast domains: segments joined as by a router (unicast crosses,
 * multicast does not), and multicast blocked into or out of one host, as a switch or firewall rule
 * that drops it would.
 */
import { describe, expect, it } from 'vitest';
import { SimNetwork, type SimHostOptions } from '../../src/p2p/transport/sim.js';
import type { Via } from '../../src/p2p/transport/transport.js';

async function hosts(net: SimNetwork, ...opts: SimHostOptions[]) {
  return Promise.all(
    opts.map(async (o) => {
      const t = net.transport(undefined, o);
      const got: Array<{ data: string; via: Via }> = [];
      await t.start((data, _from, via) => got.push({ data: Buffer.from(data).toString(), via }));
      return { t, got };
    }),
  );
}

describe('simulated network: segments and multicast blocks', () => {
  it('a multicast reaches only its own segment; a unicast crosses segments', async () => {
    const net = new SimNetwork(1);
    const [a, b, c] = await hosts(net, { segment: 0 }, { segment: 0 }, { segment: 1 });
    expect(c!.t.address.startsWith('10.1.')).toBe(true);
    a!.t.broadcast(Buffer.from('m'));
    a!.t.send(c!.t.address, Buffer.from('u'));
    net.runtime.runFor(100);
    expect(b!.got).toEqual([{ data: 'm', via: 'group' }]);
    expect(c!.got).toEqual([{ data: 'u', via: 'unicast' }]);
  });

  it('blocks multicast in one direction at one host only, and lifts the block', async () => {
    const net = new SimNetwork(2);
    const [a, b, c] = await hosts(net, {}, {}, {});
    net.blockMulticast(b!.t.address, { in: true, out: false });
    a!.t.broadcast(Buffer.from('to-all'));
    b!.t.broadcast(Buffer.from('from-b'));
    a!.t.send(b!.t.address, Buffer.from('direct'));
    net.runtime.runFor(100);
    expect(b!.got).toEqual([{ data: 'direct', via: 'unicast' }]);
    expect(c!.got.map((g) => g.data).sort()).toEqual(['from-b', 'to-all']);

    net.blockMulticast(b!.t.address, { in: false, out: true });
    b!.t.broadcast(Buffer.from('muted'));
    a!.t.broadcast(Buffer.from('heard'));
    net.runtime.runFor(100);
    expect(b!.got.at(-1)).toEqual({ data: 'heard', via: 'group' });
    expect(c!.got.map((g) => g.data)).not.toContain('muted');

    net.blockMulticast(b!.t.address, { in: false, out: false });
    b!.t.broadcast(Buffer.from('back'));
    net.runtime.runFor(100);
    expect(c!.got.at(-1)).toEqual({ data: 'back', via: 'group' });
  });

  it('a restarted host keeps its segment and blocks', async () => {
    const net = new SimNetwork(3);
    const [a, b] = await hosts(net, { segment: 2 }, { segment: 2 });
    net.blockMulticast(b!.t.address, { in: true, out: true });
    await b!.t.close();
    const again = net.transport(b!.t.address);
    const got: string[] = [];
    await again.start((data) => got.push(Buffer.from(data).toString()));
    a!.t.broadcast(Buffer.from('m'));
    a!.t.send(again.address, Buffer.from('u'));
    net.runtime.runFor(100);
    expect(got).toEqual(['u']);
  });
});
