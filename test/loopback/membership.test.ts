/**
 * A few real peers in one process over UDP multicast on loopback (127.0.0.1, TTL 0): the kernel
 * and the UDP transport together, in real time.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PeerNode } from '../../src/p2p/node.js';
import { PROFILES, type Profile } from '../../src/p2p/config.js';
import { realRuntime } from '../../src/p2p/runtime.js';
import { UdpTransport } from '../../src/p2p/transport/udp.js';
import type { PeerEvent } from '../../src/p2p/protocol.js';
import { NO_DROPS, randomId } from '../support/cluster.js';
import { testPort } from '../support/proc.js';

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  return cond();
}

describe('membership over UDP on loopback', () => {
  const nodes: PeerNode[] = [];
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((n) => n.crash()));
  });

  async function peer(
    port: number,
    name: string,
    events: PeerEvent[] = [],
    profile: Profile = PROFILES.lan,
  ): Promise<PeerNode> {
    const node = new PeerNode({
      id: randomId(),
      name,
      incarnation: 1,
      profile,
      transport: new UdpTransport({ group: '239.255.77.77', port, interface: '127.0.0.1', ttl: 0 }),
      runtime: realRuntime,
    });
    node.on((e) => events.push(e));
    await node.start();
    nodes.push(node);
    return node;
  }

  it('three peers converge, a silent one is declared dead, a leaving one is seen leaving', async () => {
    const port = testPort();
    const events: PeerEvent[] = [];
    const a = await peer(port, 'a', events);
    const b = await peer(port, 'b');
    const c = await peer(port, 'c');
    expect(
      await until(
        () =>
          a.membership.live().length === 2 &&
          b.membership.live().length === 2 &&
          c.membership.live().length === 2,
        3000,
      ),
    ).toBe(true);

    const crashedAt = Date.now();
    await c.crash();
    expect(await until(() => a.membership.get(c.id)?.state === 'dead', 3000)).toBe(true);
    const took = Date.now() - crashedAt;
    expect(took).toBeGreaterThanOrEqual(
      PROFILES.lan.membership.deadAfterMs - PROFILES.lan.membership.heartbeatIntervalMs,
    );

    await b.stop();
    expect(await until(() => a.membership.get(b.id)?.state === 'left', 1000)).toBe(true);
    expect(
      events.filter((e) => e.kind === 'dead').map((e) => (e.kind === 'dead' ? e.member.name : '')),
    ).toEqual(['c']);
    expect(a.stats.handlerErrors).toBe(0);
    expect(a.stats.dropped).toEqual(NO_DROPS);
  });

  it('an observer learns the members from the answers to its probe', async () => {
    const port = testPort();
    // Members that heartbeat once a minute: only their answers to the probe can teach the observer.
    const quiet: Profile = {
      ...PROFILES.lan,
      membership: {
        ...PROFILES.lan.membership,
        heartbeatIntervalMs: 60_000,
        suspectAfterMs: 120_000,
        deadAfterMs: 180_000,
      },
    };
    const a = await peer(port, 'a', [], quiet);
    const b = await peer(port, 'b', [], quiet);
    expect(
      await until(() => a.membership.live().length === 1 && b.membership.live().length === 1, 2000),
    ).toBe(true);
    const obs = new PeerNode({
      id: randomId(),
      name: 'obs',
      incarnation: 1,
      profile: PROFILES.lan,
      transport: new UdpTransport({ group: '239.255.77.77', port, interface: '127.0.0.1', ttl: 0 }),
      runtime: realRuntime,
      observer: true,
    });
    await obs.start();
    nodes.push(obs);
    expect(await until(() => obs.membership.live().length === 2, 5000)).toBe(true);
    expect(a.membership.get(obs.id)).toBeUndefined();
  });
});
