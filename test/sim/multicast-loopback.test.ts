/**
 * Multicast loopback follows the peers on our host (node.ts): off once the grace after start is
 * over while every member runs on another host, on while one shares ours. The simulated network
 * models it as a real interface does: with a sender's loopback off, the other processes on its
 * machine (same IP, another port) miss its multicasts; unicast is unaffected.
 */
import { describe, expect, it } from 'vitest';
import {
  MULTICAST_LOOPBACK_GRACE_MS,
  MULTICAST_LOOPBACK_OBSERVER_MS,
  MULTICAST_LOOPBACK_PROBE_EVERY_MS,
  PeerNode,
  sharesHost,
} from '../../src/p2p/node.js';
import { PROFILES } from '../../src/p2p/config.js';
import { SimNetwork } from '../../src/p2p/transport/sim.js';
import { idFrom } from '../support/cluster.js';

async function peer(net: SimNetwork, address: string, name: string, observer = false): Promise<PeerNode> {
  const node = new PeerNode({
    observer,
    id: idFrom(net.runtime.random),
    name,
    incarnation: 1,
    profile: PROFILES.lan,
    transport: net.transport(address),
    runtime: net.runtime.forPeer(),
  });
  await node.start();
  return node;
}

const knows = (a: PeerNode, b: PeerNode) => a.membership.live().some((m) => m.id === b.id);

describe('multicast loopback follows the peers on our host', () => {
  it('off after the grace with no neighbour; a late neighbour turns it on for both; off again when it leaves (10 seeds)', async () => {
    for (let seed = 1; seed <= 10; seed++) {
      const net = new SimNetwork(seed);
      const a = await peer(net, '10.0.0.1:7000', 'a');
      const b = await peer(net, '10.0.0.2:7000', 'b');
      net.runtime.runFor(MULTICAST_LOOPBACK_GRACE_MS / 2);
      expect([a.multicastLoopback, b.multicastLoopback]).toEqual([true, true]);
      net.runtime.runFor(MULTICAST_LOOPBACK_GRACE_MS);
      expect([a.multicastLoopback, b.multicastLoopback], `seed ${seed}`).toEqual([false, false]);
      expect(knows(a, b) && knows(b, a)).toBe(true);

      // A neighbour on a's machine: a hears it (its loopback is on in its grace) and turns its own on,
      // so the neighbour hears a as well, well before its grace ends.
      const n = await peer(net, '10.0.0.1:7001', 'n');
      expect(
        net.runtime.runUntilTrue(
          () => knows(n, a) && knows(a, n) && knows(n, b),
          MULTICAST_LOOPBACK_GRACE_MS,
        ),
        `seed ${seed}`,
      ).toBe(true);
      net.runtime.runFor(MULTICAST_LOOPBACK_GRACE_MS * 3);
      expect([a.multicastLoopback, b.multicastLoopback, n.multicastLoopback]).toEqual([true, false, true]);
      expect(knows(n, a) && knows(a, n)).toBe(true);

      await n.stop();
      expect(
        net.runtime.runUntilTrue(() => !a.multicastLoopback, 3000),
        `seed ${seed}`,
      ).toBe(true);
      await a.stop();
      await b.stop();
    }
  });

  it('two neighbours that never met and both turned loopback off find each other in a probe window (10 seeds)', async () => {
    for (let seed = 1; seed <= 10; seed++) {
      const net = new SimNetwork(seed);
      const a = await peer(net, '10.0.0.1:7000', 'a');
      // b is cut off right after it starts: the two never meet, and each turns loopback off.
      const b = await peer(net, '10.0.0.1:7001', 'b');
      net.setDown('10.0.0.1:7001', true);
      net.runtime.runFor(MULTICAST_LOOPBACK_GRACE_MS * 3);
      expect([a.multicastLoopback, b.multicastLoopback]).toEqual([false, false]);
      expect(knows(a, b) || knows(b, a)).toBe(false);
      net.setDown('10.0.0.1:7001', false);
      // Neither hears the other's multicasts now, until the next probe window.
      expect(
        net.runtime.runUntilTrue(() => knows(a, b) && knows(b, a), MULTICAST_LOOPBACK_PROBE_EVERY_MS + 3000),
        `seed ${seed}`,
      ).toBe(true);
      net.runtime.runFor(MULTICAST_LOOPBACK_PROBE_EVERY_MS);
      expect([a.multicastLoopback, b.multicastLoopback]).toEqual([true, true]);
      expect(knows(a, b) && knows(b, a)).toBe(true);
      await a.stop();
      await b.stop();
    }
  });

  it('an observer on the host of a member with loopback off learns it though its probe or the answer is lost, and keeps hearing it (10 seeds each)', async () => {
    for (const lost of ['probe', 'answer'] as const) {
      for (let seed = 1; seed <= 10; seed++) {
        const net = new SimNetwork(seed);
        const a = await peer(net, '10.0.0.1:7000', 'a');
        const b = await peer(net, '10.0.0.2:7000', 'b');
        net.runtime.runFor(MULTICAST_LOOPBACK_GRACE_MS * 3);
        expect(a.multicastLoopback).toBe(false);
        // A one-shot command on a's machine: the one datagram that would have introduced them is lost.
        const [from, to] = lost === 'probe' ? ['10.0.0.1:7001', a.address] : [a.address, '10.0.0.1:7001'];
        net.setLink(from, to, { loss: 1 });
        const o = await peer(net, '10.0.0.1:7001', 'o', true);
        net.runtime.runFor(50);
        net.setLink(from, to, {});
        expect(
          net.runtime.runUntilTrue(() => knows(o, a) && knows(o, b), MULTICAST_LOOPBACK_GRACE_MS),
          `${lost} lost, seed ${seed}`,
        ).toBe(true);
        // While the observer runs (a long `peer monitor`), a keeps its loopback on and stays known.
        net.runtime.runFor(MULTICAST_LOOPBACK_OBSERVER_MS * 2);
        expect([a.multicastLoopback, knows(o, a)], `${lost} lost, seed ${seed}`).toEqual([true, true]);
        expect(knows(a, o)).toBe(false); // an observer is never a member
        await o.stop();
        expect(
          net.runtime.runUntilTrue(() => !a.multicastLoopback, MULTICAST_LOOPBACK_OBSERVER_MS + 1000),
          `${lost} lost, seed ${seed}`,
        ).toBe(true);
        await a.stop();
        await b.stop();
      }
    }
  });

  it('the simulated network: loopback off skips the same IP for multicast only; a new socket starts with it on', async () => {
    const net = new SimNetwork(1);
    const got = new Map<string, string[]>();
    const open = async (address: string) => {
      const t = net.transport(address);
      await t.start((data, from) =>
        got.set(address, [...(got.get(address) ?? []), `${Buffer.from(data)} from ${from}`]),
      );
      return t;
    };
    const a = await open('10.0.0.1:7000');
    await open('10.0.0.1:7001');
    await open('10.0.0.2:7000');
    a.setMulticastLoopback(false);
    a.broadcast(Buffer.from('m1'));
    a.send('10.0.0.1:7001', Buffer.from('u1'));
    net.runtime.runFor(10);
    expect(got.get('10.0.0.1:7001')).toEqual(['u1 from 10.0.0.1:7000']);
    expect(got.get('10.0.0.2:7000')).toEqual(['m1 from 10.0.0.1:7000']);
    // The process restarts on the same address: its new socket has loopback on again.
    await a.close();
    const again = await open('10.0.0.1:7000');
    again.broadcast(Buffer.from('m2'));
    net.runtime.runFor(10);
    expect(got.get('10.0.0.1:7001')).toEqual(['u1 from 10.0.0.1:7000', 'm2 from 10.0.0.1:7000']);
  });

  it('compares hosts by IP address only', () => {
    expect(sharesHost('10.0.0.1:7000', [{ address: '10.0.0.1:41234' }])).toBe(true);
    expect(sharesHost('10.0.0.1:7000', [{ address: '10.0.0.11:7000' }, { address: '10.0.0.2:7000' }])).toBe(
      false,
    );
    expect(sharesHost('10.0.0.1:7000', [])).toBe(false);
  });
});
