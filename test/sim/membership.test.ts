import { describe, expect, it } from 'vitest';
import { DEFAULT_SIM_HOST, SimCluster, receiving, type SimPeer } from '../support/cluster.js';
import { HELLOS_PER_S } from '../../src/p2p/join/index.js';
import { PROFILES } from '../../src/p2p/config.js';
import { NEWCOMER_PING_AFTER_MS } from '../../src/p2p/membership.js';
import { parseAddress } from '../../src/p2p/transport/transport.js';

const T = PROFILES.lan.membership;
const SEEDS = Array.from({ length: 40 }, (_, i) => i + 1);

async function cluster(seed: number, n: number, faults = {}) {
  const c = new SimCluster(seed, faults);
  for (let i = 0; i < n; i++) await c.add(`p${i}`);
  return c;
}

describe('membership (simulation)', () => {
  it.each(SEEDS)('converges and detects a crash within deadAfterMs + a tick, seed %i', async (seed) => {
    const c = await cluster(seed, 5, { loss: 0.05, duplicate: 0.05, delayMinMs: 0.1, delayMaxMs: 5 });
    expect(c.rt.runUntilTrue(() => c.converged(), 2_000)).toBe(true);

    const victim = c.peers[2]!;
    const crashedAt = c.rt.now();
    await c.crash(victim);
    const survivors = c.live();
    const seenDead = () => survivors.every((p) => p.node.membership.get(victim.node.id)?.state === 'dead');
    expect(c.rt.runUntilTrue(seenDead, 5_000)).toBe(true);
    expect(c.rt.now() - crashedAt).toBeLessThanOrEqual(T.deadAfterMs + PROFILES.lan.tickMs + 5);
    // Nobody else was harmed.
    for (const p of survivors) {
      for (const q of survivors) if (p !== q) expect(p.node.membership.get(q.node.id)?.state).toBe('alive');
    }
    expect(c.handlerErrors()).toEqual([]);
  });

  it.each(SEEDS.slice(0, 5))(
    'holds nothing of a member it forgot: a dead one gone after deadRetentionMs leaves no trace, seed %i',
    async (seed) => {
      const c = await cluster(seed, 4, { loss: 0.05 });
      expect(c.rt.runUntilTrue(() => c.converged(), 2_000)).toBe(true);
      const victim = c.peers[1]!;
      await c.crash(victim);
      c.rt.runFor(T.deadAfterMs + T.deadRetentionMs + 5_000);
      for (const p of c.live()) {
        expect(p.node.membership.get(victim.node.id)).toBeUndefined();
        // The members a tick must look at (membership.ts `attention`) let go of it too: a small
        // group that saw members come and go for days must not keep every one it forgot.
        const held = (p.node.membership as unknown as { attention: Set<{ id: string }> }).attention;
        expect([...held].map((m) => m.id)).not.toContain(victim.node.id);
      }
    },
  );

  // A heartbeat lost (and the first ping's answer with it) makes no suspicion: the member is
  // pinged from checkAfterMs on, telling nobody, and its answer counts as heard. Without the
  // check, the next heartbeat came after suspectAfterMs of silence.
  it.each(SEEDS.slice(0, 10))(
    'a member whose heartbeat is lost is pinged and answers before anyone suspects it, seed %i',
    async (seed) => {
      const c = await cluster(seed, 3, { loss: 0, delayMaxMs: 2 });
      expect(c.rt.runUntilTrue(() => c.converged(), 2_000)).toBe(true);
      const [a, x] = c.peers as [SimPeer, SimPeer];
      const silence = () => x.node.membership.get(a.node.id)!.lastSeenMs;
      // Right after a's heartbeat reached x, everything of a's to x is lost until past the check.
      c.rt.runFor(T.heartbeatIntervalMs * 3);
      expect(c.rt.runUntilTrue(() => silence() === 0, T.heartbeatIntervalMs * 2)).toBe(true);
      c.net.setLink(a.address, x.address, { loss: 1 });
      c.rt.runFor(T.checkAfterMs + T.pingIntervalMs / 2);
      c.net.setLink(a.address, x.address, { loss: 0 });
      expect(c.rt.runUntilTrue(() => silence() < T.pingIntervalMs, T.pingIntervalMs)).toBe(true);
      c.rt.runFor(T.deadAfterMs);
      expect(
        c.peers.flatMap((p) => p.events).filter((e) => e.kind === 'suspect' || e.kind === 'dead'),
      ).toEqual([]);
      expect(c.handlerErrors()).toEqual([]);
    },
  );

  // Its heartbeats carrying its tags lost, a newcomer was met only at a later one, half a second
  // on: a member that hears its probe pings it, and the answer brings them.
  it.each(SEEDS.slice(0, 5))(
    'a newcomer whose heartbeats are all lost to a member is met by its probe, seed %i',
    async (seed) => {
      const c = new SimCluster(seed, { loss: 0, delayMaxMs: 2 });
      // x takes nothing from the newcomer but its probe and answers (no heartbeat counter).
      c.wrapTransport = (t, peer) =>
        peer.name !== 'x'
          ? t
          : receiving(t, (text) => !(text.includes('"n":"late"') && text.includes('"h":')));
      const x = await c.add('x');
      for (const n of ['a', 'b']) await c.add(n);
      expect(c.rt.runUntilTrue(() => c.converged(), 2_000)).toBe(true);
      c.rt.runFor(NEWCOMER_PING_AFTER_MS);
      const late = await c.add('late');
      expect(c.rt.runUntilTrue(() => x.node.membership.get(late.node.id)?.state === 'alive', 50)).toBe(true);
      expect(c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS)('no false death over 5 minutes at 10 %% loss with 5 peers, seed %i', async (seed) => {
    const c = await cluster(seed, 5, { loss: 0.1, duplicate: 0.01, delayMinMs: 0.1, delayMaxMs: 3 });
    c.rt.runFor(5 * 60_000);
    const deaths = c.peers.flatMap((p) => p.events.filter((e) => e.kind === 'dead'));
    expect(deaths).toEqual([]);
    expect(c.converged()).toBe(true);
  });

  it.each(SEEDS.slice(0, 20))('a suspected live peer refutes and stays alive, seed %i', async (seed) => {
    const c = await cluster(seed, 4);
    c.rt.runFor(1_000);
    const [a, b] = c.peers as [NonNullable<(typeof c.peers)[0]>, NonNullable<(typeof c.peers)[0]>];
    // Before the fault: every peer suspects b at the same deadline, so b may refute the first
    // suspicion that reaches it before a's has been seen.
    const before = b.node.incarnation;
    // a stops hearing b's multicasts for a while; unicast still works both ways only from b's side.
    for (const p of c.peers) if (p !== b) c.net.setLink(b.address, p.address, { loss: 1 });
    c.rt.runUntilTrue(() => a.node.membership.get(b.node.id)?.state === 'suspect', 2_000);
    expect(a.node.membership.get(b.node.id)?.state).toBe('suspect');
    for (const p of c.peers) if (p !== b) c.net.setLink(b.address, p.address, { loss: 0 });
    c.rt.runFor(T.pingIntervalMs * 3);
    expect(b.node.incarnation).toBeGreaterThan(before);
    expect(b.events.some((e) => e.kind === 'refute')).toBe(true);
    expect(a.node.membership.get(b.node.id)?.state).toBe('alive');
    // Cleared either by the refutation or by b's answer to the unicast ping, whichever came first.
    expect(a.events.some((e) => e.kind === 'alive' && e.member.id === b.node.id)).toBe(true);
    expect(c.peers.flatMap((p) => p.events).filter((e) => e.kind === 'dead')).toEqual([]);
  });

  it.each(SEEDS.slice(0, 20))(
    'a partition is seen as deaths on both sides and heals, seed %i',
    async (seed) => {
      const c = await cluster(seed, 5, { loss: 0.02, delayMaxMs: 2 });
      expect(c.rt.runUntilTrue(() => c.converged(), 2_000)).toBe(true);
      const left = c.peers.slice(0, 2);
      const right = c.peers.slice(2);
      c.net.partition(
        left.map((p) => p.address),
        right.map((p) => p.address),
      );
      c.rt.runFor(T.deadAfterMs + 500);
      for (const p of left)
        for (const q of right) expect(p.node.membership.get(q.node.id)?.state).toBe('dead');
      for (const p of right)
        for (const q of left) expect(p.node.membership.get(q.node.id)?.state).toBe('dead');
      c.heal();
      expect(c.rt.runUntilTrue(() => c.converged(), T.heartbeatIntervalMs * 3)).toBe(true);
    },
  );

  it.each(SEEDS.slice(0, 10))('a graceful leave is seen by all at once, seed %i', async (seed) => {
    const c = await cluster(seed, 5, { loss: 0.1, delayMaxMs: 2 });
    c.rt.runFor(1_000);
    const leaver = c.peers[4]!;
    await c.leave(leaver);
    const at = c.rt.now();
    const allSee = () => c.live().every((p) => p.node.membership.get(leaver.node.id)?.state === 'left');
    // Three copies at 10 % loss: all lost for one receiver has probability 10^-3.
    c.rt.runUntilTrue(allSee, 100);
    const lateOnes = c.live().filter((p) => p.node.membership.get(leaver.node.id)?.state !== 'left');
    expect(lateOnes.length).toBeLessThanOrEqual(1);
    if (lateOnes.length === 0) expect(c.rt.now() - at).toBeLessThan(10);
    expect(
      c.peers.flatMap((p) => p.events).filter((e) => e.kind === 'dead' && e.member.id === leaver.node.id)
        .length,
    ).toBeLessThanOrEqual(1);
  });

  it('a restarted peer is seen as restarted with a higher incarnation', async () => {
    const c = await cluster(7, 3);
    c.rt.runFor(1_000);
    const p = c.peers[1]!;
    const before = p.node.incarnation;
    await c.crash(p);
    c.rt.runFor(2_000);
    // A restart binds a new port, as a real restart does.
    const moved = c.net.transport();
    p.address = moved.address;
    await moved.close();
    await c.restart(p);
    c.rt.runFor(500);
    expect(p.node.incarnation).toBe(before + 1);
    for (const q of c.live()) if (q !== p) expect(q.node.membership.get(p.node.id)?.state).toBe('alive');
    expect(
      c.peers[0]!.events.some(
        (e) => e.kind === 'restart' || (e.kind === 'alive' && e.member.id === p.node.id),
      ),
    ).toBe(true);
  });

  it('two peers with one name are both listed and flagged', async () => {
    const c = await cluster(3, 2);
    await c.add('p0');
    c.rt.runFor(1_000);
    const view = c.peers[1]!.node.membership.list();
    const twins = view.filter((m) => m.name === 'p0');
    expect(twins).toHaveLength(2);
    expect(twins.every((m) => m.duplicateName)).toBe(true);
    expect(c.peers[1]!.events.some((e) => e.kind === 'duplicate-name' && e.name === 'p0')).toBe(true);
  });

  it('an observer learns the group from one probe and never becomes a member', async () => {
    const c = await cluster(11, 4);
    c.rt.runFor(1_000);
    const obs = await c.add('observer', { observer: true });
    // One round trip, far less than a heartbeat interval. Unicast-only it joins through the
    // members' addresses (--join): a sync's round trip, then a probe to each member, paced.
    c.rt.runFor(DEFAULT_SIM_HOST.mode === 'unicast' ? 20 + (4 * 1000) / HELLOS_PER_S : 20);
    expect(obs.node.membership.list().filter((m) => m.state === 'alive')).toHaveLength(4);
    c.rt.runFor(2_000);
    for (const p of c.peers.slice(0, 4)) expect(p.node.membership.get(obs.node.id)).toBeUndefined();
  });

  it('memory stays bounded whatever senders arrive', async () => {
    const c = await cluster(5, 1);
    const [p] = c.peers;
    const { Codec, PROTOCOL_VERSION } = await import('../../src/p2p/wire.js');
    const codec = new Codec({ hb: () => true });
    const flood = c.net.transport();
    await flood.start(() => {});
    for (let i = 0; i < 3000; i++) {
      const id = i.toString(16).padStart(16, '0');
      flood.send(
        p!.address,
        codec.encode({ v: PROTOCOL_VERSION, t: 'hb', i: id, n: `x${i}`, c: 1, s: 1, l: 1, b: { g: {} } }),
      );
    }
    c.rt.runFor(100);
    expect(p!.node.membership.list().length).toBeLessThanOrEqual(1024);
    expect(p!.node.membership.refused).toBeGreaterThan(0);
  });
});

describe('live members per host (issue 22)', () => {
  it.each([1, 2, 3, 4, 5])(
    'with crashes, restarts and leaves, liveOnHost and the live count agree with the live list at every step, seed %i',
    async (seed) => {
      const c = new SimCluster(seed, { loss: 0.05, delayMaxMs: 2 });
      for (let i = 0; i < 8; i++) await c.add(`p${i}`);
      const host = (a: string) => parseAddress(a).host;
      const check = () => {
        const hosts = new Set(c.peers.map((p) => host(p.address)));
        for (const p of c.live())
          for (const h of hosts)
            expect(p.node.membership.liveOnHost(h), `${p.name} ${h}`).toBe(
              p.node.membership.live().some((m) => host(m.address) === h),
            );
        // The group's size, counted the same way (membership.ts `liveCount`).
        for (const p of c.live())
          expect((p.node.membership as unknown as { liveCount: number }).liveCount, p.name).toBe(
            p.node.membership.live().length,
          );
      };
      for (let step = 0; step < 40; step++) {
        c.rt.runFor(c.rt.random() * 2 * T.deadAfterMs);
        check();
        const p = c.peers[Math.floor(c.rt.random() * c.peers.length)]!;
        if (!p.up) await c.restart(p);
        else if (c.rt.random() < 0.5) await c.crash(p);
        else await c.leave(p);
      }
      expect(c.handlerErrors()).toEqual([]);
    },
  );
});
