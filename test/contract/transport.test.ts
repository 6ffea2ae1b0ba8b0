/**
 * One contract, two transports: what the node relies on must hold over UDP on loopback and over
 * the simulated network alike.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SimNetwork } from '../../src/p2p/transport/sim.js';
import { UdpTransport } from '../../src/p2p/transport/udp.js';
import type { Address, Transport, TransportMode, Via } from '../../src/p2p/transport/transport.js';
import { testPort } from '../support/proc.js';
import { GuardedTransport } from '../../src/p2p/transport/guard.js';
import { Keyring } from '../../src/p2p/transport/keyring.js';
import { SecureTransport } from '../../src/p2p/transport/secure.js';

interface Harness {
  make(mode?: TransportMode): Transport;
  /** Lets deliveries happen: real time for UDP, virtual time for the simulation. */
  settle(until: () => boolean): Promise<boolean>;
}

function udpHarness(): Harness {
  const port = testPort();
  return {
    make: (mode) => new UdpTransport({ group: '239.255.77.77', port, interface: '127.0.0.1', ttl: 0, mode }),
    async settle(until) {
      const deadline = Date.now() + 2000;
      while (!until() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      return until();
    },
  };
}

function simHarness(): Harness {
  const net = new SimNetwork(42);
  return {
    make: (mode) => net.transport(undefined, { mode }),
    async settle(until) {
      return net.runtime.runUntilTrue(until, 1000);
    },
  };
}

/** The same transport behind the layers the CLI adds: AES-GCM sealing with a key, a rate guard without. */
function sealed(make: () => Harness): () => Harness {
  return () => {
    const h = make();
    const keyring = new Keyring([Buffer.alloc(32, 5)]);
    return {
      make: (mode) => new SecureTransport(h.make(mode), { keyring, group: 'contract:1' }),
      settle: h.settle,
    };
  };
}

function guarded(make: () => Harness): () => Harness {
  return () => {
    const h = make();
    return {
      make: (mode) => new GuardedTransport(h.make(mode), { now: () => performance.now() }),
      settle: h.settle,
    };
  };
}

type Received = Array<{ data: string; from: Address; via: Via }>;

describe.each([
  ['udp on loopback', udpHarness],
  ['simulated network', simHarness],
  ['sealed over udp on loopback', sealed(udpHarness)],
  ['sealed over the simulated network', sealed(simHarness)],
  ['rate-guarded over udp on loopback', guarded(udpHarness)],
])('transport contract: %s', (_label, makeHarness) => {
  const open: Transport[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()));
  });

  async function started(h: Harness, mode?: TransportMode): Promise<{ t: Transport; got: Received }> {
    const t = h.make(mode);
    const got: Received = [];
    await t.start((data, from, via) => got.push({ data: Buffer.from(data).toString(), from, via }));
    open.push(t);
    return { t, got };
  }

  it('a broadcast reaches every other member, with the sender as source, and never the sender', async () => {
    const h = makeHarness();
    const a = await started(h);
    const b = await started(h);
    const c = await started(h);
    a.t.broadcast(Buffer.from('hello'));
    b.t.broadcast(Buffer.from('marker'));
    // b's later broadcast reaching a shows a's own would have arrived by then.
    expect(await h.settle(() => [b, c].every((x) => x.got.length >= 1) && a.got.length === 1)).toBe(true);
    for (const x of [b, c]) expect(x.got[0]).toEqual({ data: 'hello', from: a.t.address, via: 'group' });
    expect(a.got).toEqual([{ data: 'marker', from: b.t.address, via: 'group' }]);
  });

  it('a unicast reaches only its target, and the source address is where a reply goes', async () => {
    const h = makeHarness();
    const a = await started(h);
    const b = await started(h);
    const c = await started(h);
    a.t.send(b.t.address, Buffer.from('to-b'));
    expect(await h.settle(() => b.got.length === 1)).toBe(true);
    b.t.send(b.got[0]!.from, Buffer.from('reply'));
    expect(await h.settle(() => a.got.length === 1)).toBe(true);
    expect(a.got[0]).toEqual({ data: 'reply', from: b.t.address, via: 'unicast' });
    expect(c.got).toEqual([]);
  });

  it('a broadcast also goes by unicast to the addresses named, once each', async () => {
    const h = makeHarness();
    const a = await started(h);
    const b = await started(h);
    const u = await started(h, 'unicast');
    a.t.broadcast(Buffer.from('all'), [u.t.address]);
    expect(await h.settle(() => b.got.length === 1 && u.got.length === 1)).toBe(true);
    expect(b.got).toEqual([{ data: 'all', from: a.t.address, via: 'group' }]);
    expect(u.got).toEqual([{ data: 'all', from: a.t.address, via: 'unicast' }]);
  });

  it('in unicast mode nothing is multicast and no multicast is heard; unicast works both ways', async () => {
    const h = makeHarness();
    const u = await started(h, 'unicast');
    const b = await started(h);
    const c = await started(h);
    expect(u.t.mode).toBe('unicast');
    u.t.broadcast(Buffer.from('not-multicast'), [b.t.address]);
    b.t.broadcast(Buffer.from('group-only'));
    b.t.send(u.t.address, Buffer.from('direct'));
    // c hearing b's multicast shows u's would have reached c by then, had it been multicast.
    expect(await h.settle(() => c.got.length === 1 && u.got.length === 1 && b.got.length === 1)).toBe(true);
    expect(c.got).toEqual([{ data: 'group-only', from: b.t.address, via: 'group' }]);
    expect(u.got).toEqual([{ data: 'direct', from: b.t.address, via: 'unicast' }]);
    expect(b.got).toEqual([{ data: 'not-multicast', from: u.t.address, via: 'unicast' }]);
  });

  it('a closed transport receives nothing and sending on it does not throw', async () => {
    const h = makeHarness();
    const a = await started(h);
    const b = await started(h);
    const c = await started(h);
    await b.t.close();
    expect(() => b.t.broadcast(Buffer.from('x'))).not.toThrow();
    a.t.broadcast(Buffer.from('after-close'));
    expect(await h.settle(() => c.got.length === 1)).toBe(true);
    expect(b.got).toEqual([]);
  });

  it('sending to an address nobody holds is silent', async () => {
    const h = makeHarness();
    const a = await started(h);
    const b = await started(h);
    expect(() => a.t.send('127.0.0.1:9', Buffer.from('void'))).not.toThrow();
    a.t.broadcast(Buffer.from('still-works'));
    expect(await h.settle(() => b.got.length === 1)).toBe(true);
  });
});
