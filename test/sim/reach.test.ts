/**
 * Reach (src/p2p/reach.ts): group sends reach members our multicast does not, by unicast, in
 * virtual time: a host whose multicast is blocked one way or both, two segments joined as by a
 * router, unicast-only peers among multicast ones, and forged statements.
 */
import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import { INCARNATION_STEP_MAX } from '../../src/p2p/membership.js';
import { Chat, CHAT_TAG, type ChatLine } from '../../src/p2p/chat.js';
import { ReliableDelivery, type AckStatus } from '../../src/p2p/reliable/index.js';
import {
  FANOUT_PER_HOST_MAX,
  OBSERVER_FANOUT_MS,
  Reach,
  REACH_REFRESH_MS,
  REACH_RETRY_MS,
  STATEMENT,
} from '../../src/p2p/reach.js';
import type { PeerEvent, ProtocolContext } from '../../src/p2p/protocol.js';
import type { Address } from '../../src/p2p/transport/transport.js';
import type { Envelope } from '../../src/p2p/wire.js';

const LOSSY = { loss: 0.1, duplicate: 0.02, delayMinMs: 0.1, delayMaxMs: 4 };

interface H {
  c: SimCluster;
  chat: Map<SimPeer, Chat>;
  lines: Map<SimPeer, ChatLine[]>;
}

/** A cluster whose peers all run chat over reliable delivery, as `peer chat` installs them. */
function harness(seed: number, faults = {}): H {
  const chat = new Map<SimPeer, Chat>();
  const lines = new Map<SimPeer, ChatLine[]>();
  const c = new SimCluster(seed, faults, PROFILES.lan, (node, peer) => {
    const rel = node.install(
      (ctx, n) => new ReliableDelivery(ctx, n.membership, { audience: (m) => m.tags[CHAT_TAG] === true }),
    );
    const ch = node.install((ctx, n) => new Chat(ctx, n.membership, rel, { historyWanted: 0 }));
    chat.set(peer, ch);
    if (!lines.has(peer)) lines.set(peer, []);
    ch.onLine((l) => lines.get(peer)!.push(l));
  });
  return { c, chat, lines };
}

/** Every live peer's chat knows every other live peer (lines sent before that may miss a newcomer). */
const chatConverged = (h: H) =>
  h.c.live().every((p) => h.chat.get(p)!.members().length === h.c.live().length - 1);

const deaths = (c: SimCluster) => c.peers.flatMap((p) => p.events.filter((e) => e.kind === 'dead'));

/** Each peer says `n` lines; returns how each settled. */
function chatRound(h: H, n: number, tag: string): AckStatus[] {
  const settled: AckStatus[] = [];
  for (let i = 0; i < n; i++) {
    for (const p of h.c.live()) h.chat.get(p)!.say(`${tag}-${p.name}-${i}`, (s) => settled.push(s));
    h.c.rt.runFor(20);
  }
  return settled;
}

/** Every live peer got every live peer's lines of `tag` (its own included) exactly once. */
function expectExactlyOnce(h: H, tag: string, n: number): void {
  for (const p of h.c.live()) {
    const got = h.lines
      .get(p)!
      .filter((l) => l.text.startsWith(`${tag}-`))
      .map((l) => l.text);
    const want = h.c.live().flatMap((q) => Array.from({ length: n }, (_, i) => `${tag}-${q.name}-${i}`));
    expect(got.sort()).toEqual(want.sort());
  }
}

/** Who a peer's multicast reaches, from how the test built the network. */
interface Place {
  segment: number;
  in: boolean;
  out: boolean;
  unicast: boolean;
}
const reaches = (from: Place, to: Place) =>
  from.segment === to.segment && !from.out && !to.in && !from.unicast && !to.unicast;

/**
 * These tests build multicast topologies (blocked directions, segments): their peers run with
 * multicast even in a unicast-only run of the suite (PEER_SIM_TRANSPORT), unless a test says.
 */
const LAN = { mode: 'multicast' } as const;

describe('reach (simulation)', () => {
  it.each([1, 2, 3, 4, 5])(
    'a member whose multicast-in is blocked keeps everyone alive and gets chat exactly once, acks included, seed %i',
    async (seed) => {
      const h = harness(seed, LOSSY);
      const x = await h.c.add('x', {}, LAN);
      h.c.net.blockMulticast(x.address, { in: true, out: false });
      for (const n of ['a', 'b', 'c', 'd']) await h.c.add(n, {}, LAN);
      // x meets the others only by unicast, and at this loss a lost exchange waits for its retry a
      // second later: over 30 seeds 0.4 to 5.9 s, with heartbeats on the wall clock's grid or not.
      expect(h.c.rt.runUntilTrue(() => h.c.converged() && chatConverged(h), 10_000)).toBe(true);
      // Everyone else fans out to x alone; x's multicast reaches them, so it fans out to nobody.
      const others = h.c.peers.filter((p) => p !== x);
      expect(
        h.c.rt.runUntilTrue(
          () =>
            x.node.reach.fanout().length === 0 &&
            others.every((p) => same(p.node.reach.fanout(), [x.address])),
          5_000,
        ),
      ).toBe(true);

      const settled = chatRound(h, 10, 'r1');
      h.c.rt.runFor(5_000);
      expectExactlyOnce(h, 'r1', 10);
      expect(settled).toHaveLength(50);
      expect(settled.every((s) => s.complete && s.acked.length === 4)).toBe(true);

      h.c.rt.runFor(30_000);
      expect(deaths(h.c)).toEqual([]);
      expect(h.c.converged()).toBe(true);
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );

  // Its old process heard the group's multicast and said so; the new one, at the same address,
  // hears none (a firewall rule taken up at the reboot). It meets the members by their answers to
  // its probe; c's is lost (2 s of loss from c), and c, which still takes it to hear c's multicast
  // (its word from before), sends it nothing else: the restart (a higher incarnation) must get
  // c's statement, retried. Before, 2 runs in these 20 never met c again.
  it.each(Array.from({ length: 20 }, (_, i) => i + 1))(
    'a member that restarts at the same address no longer hearing multicast is reached again, seed %i',
    async (seed) => {
      const h = harness(seed, LOSSY);
      for (const n of ['x', 'a', 'b', 'c']) await h.c.add(n, {}, LAN);
      expect(h.c.rt.runUntilTrue(() => h.c.converged() && chatConverged(h), 5_000)).toBe(true);
      const [x, , , c] = h.c.peers as [SimPeer, SimPeer, SimPeer, SimPeer];
      await h.c.crash(x);
      h.c.net.blockMulticast(x.address, { in: true, out: false });
      h.c.rt.runFor(300);
      h.c.net.setLink(c.address, x.address, { loss: 1 });
      await h.c.restart(x);
      h.c.rt.runFor(2_000);
      h.c.net.setLink(c.address, x.address, { loss: LOSSY.loss });
      // c's statement is refreshed every REACH_REFRESH_MS, and x meets c by a round trip after it:
      // at 10 % loss a refresh and a round trip are each lost now and then (seed 9 lost both).
      expect(h.c.rt.runUntilTrue(() => h.c.converged() && chatConverged(h), 5 * REACH_REFRESH_MS)).toBe(true);
      const others = h.c.live().filter((p) => p !== x);
      const reachX = () => others.every((p) => p.node.reach.fanout().includes(x.address));
      expect(h.c.rt.runUntilTrue(reachX, 5_000)).toBe(true);
      chatRound(h, 5, 'after');
      h.c.rt.runFor(5_000);
      expectExactlyOnce(h, 'after', 5);
      // None but c's of x: for the 2 s nothing of c's reaches x, c's pings cannot make good two of
      // x's heartbeats lost in a row (1 % at 10 % loss), and x is dead to c until heard again.
      expect(deaths(h.c).filter((e) => !(c.events.includes(e) && e.member.id === x.node.id))).toEqual([]);
    },
  );

  it.each([1, 2, 3])(
    'a member blocked from multicast that restarts at the same address is reached again, seed %i',
    async (seed) => {
      const h = harness(seed, LOSSY);
      const x = await h.c.add('x', {}, LAN);
      h.c.net.blockMulticast(x.address, { in: true, out: false });
      for (const n of ['a', 'b', 'c']) await h.c.add(n, {}, LAN);
      expect(h.c.rt.runUntilTrue(() => h.c.converged() && chatConverged(h), 5_000)).toBe(true);
      await h.c.crash(x);
      h.c.rt.runFor(300);
      await h.c.restart(x);
      expect(h.c.rt.runUntilTrue(() => h.c.converged() && chatConverged(h), 5_000)).toBe(true);
      chatRound(h, 5, 'after');
      h.c.rt.runFor(5_000);
      expectExactlyOnce(h, 'after', 5);
      h.c.rt.runFor(20_000);
      expect(h.c.converged()).toBe(true);
      expect(deaths(h.c)).toEqual([]);
    },
  );

  it.each(Array.from({ length: 12 }, (_, i) => i + 1))(
    'the fan-out lists equal the pairs multicast does not join, blocks one way or both and two segments, seed %i',
    async (seed) => {
      const c = new SimCluster(seed, { loss: 0.02, delayMaxMs: 2 });
      const places: Place[] = [];
      const peers: SimPeer[] = [];
      for (let i = 0; i < 6; i++) {
        const r = c.rt.random;
        const place: Place = { segment: r() < 0.3 ? 1 : 0, in: r() < 0.3, out: r() < 0.3, unicast: false };
        const p = await c.add(`p${i}`, {}, { ...LAN, segment: place.segment });
        c.net.blockMulticast(p.address, { in: place.in, out: place.out });
        places.push(place);
        peers.push(p);
      }
      // Where no multicast joins two peers, a hello stands in for `--join`.
      for (let i = 0; i < peers.length; i++)
        for (let j = i + 1; j < peers.length; j++)
          if (!reaches(places[i]!, places[j]!) && !reaches(places[j]!, places[i]!))
            c.introduce(peers[i]!, peers[j]!);
      const expected = (i: number) =>
        peers.filter((_, j) => j !== i && !reaches(places[i]!, places[j]!)).map((q) => q.address);
      const match = () => peers.every((p, i) => same(p.node.reach.fanout(), expected(i)));
      expect(c.rt.runUntilTrue(() => c.converged() && match(), 5_000)).toBe(true);
      // And they stay so.
      for (let t = 0; t < 20; t++) {
        c.rt.runFor(500);
        expect(peers.map((p) => p.node.reach.fanout().length)).toEqual(
          peers.map((_, i) => expected(i).length),
        );
      }
      expect(c.converged()).toBe(true);
      expect(deaths(c)).toEqual([]);
      expect(c.handlerErrors()).toEqual([]);
    },
  );

  it.each([1, 2, 3, 4])(
    'two segments made to meet by a hello stay converged for 3 minutes at 10 percent loss with no false death, seed %i',
    async (seed) => {
      const c = new SimCluster(seed, LOSSY);
      const left = [
        await c.add('l0', {}, { ...LAN, segment: 0 }),
        await c.add('l1', {}, { ...LAN, segment: 0 }),
      ];
      const right = [
        await c.add('r0', {}, { ...LAN, segment: 1 }),
        await c.add('r1', {}, { ...LAN, segment: 1 }),
      ];
      left.push(await c.add('l2', {}, { ...LAN, segment: 0 }));
      for (const a of left) for (const b of right) c.introduce(a, b);
      expect(c.rt.runUntilTrue(() => c.converged(), 5_000)).toBe(true);
      for (let minute = 0; minute < 3; minute++) {
        c.rt.runFor(60_000);
        expect(deaths(c)).toEqual([]);
      }
      // Each fans out to the other segment exactly. Three heartbeats lost in a row put a member of
      // its own segment there for a moment (reach.ts: a wrong "no" costs duplicates until its next
      // heartbeat), so the check waits for that to pass rather than reading one instant.
      const exact = () =>
        left.every((a) =>
          same(
            a.node.reach.fanout(),
            right.map((p) => p.address),
          ),
        ) &&
        right.every((b) =>
          same(
            b.node.reach.fanout(),
            left.map((p) => p.address),
          ),
        );
      expect(c.rt.runUntilTrue(() => c.converged() && exact(), 2_000)).toBe(true);
      expect(c.handlerErrors()).toEqual([]);
    },
  );

  it.each([1, 2, 3])(
    'unicast-only peers among multicast ones: everyone converges and chats, seed %i',
    async (seed) => {
      const h = harness(seed, LOSSY);
      const multi = [
        await h.c.add('m0', {}, LAN),
        await h.c.add('m1', {}, LAN),
        await h.c.add('m2', {}, LAN),
      ];
      // A unicast-only peer hears no multicast and sends none: the cluster's hello introduces it.
      const uni = [
        await h.c.add('u0', {}, { mode: 'unicast' }),
        await h.c.add('u1', {}, { mode: 'unicast' }),
      ];
      expect(h.c.rt.runUntilTrue(() => h.c.converged() && chatConverged(h), 5_000)).toBe(true);
      const match = () =>
        multi.every((p) => same(p.node.reach.fanout(), addresses(uni))) &&
        uni.every((p) => same(p.node.reach.fanout(), addresses([...multi, ...uni].filter((q) => q !== p))));
      expect(h.c.rt.runUntilTrue(match, 5_000)).toBe(true);
      const settled = chatRound(h, 8, 'mixed');
      h.c.rt.runFor(5_000);
      expectExactlyOnce(h, 'mixed', 8);
      expect(settled.every((s) => s.complete && s.acked.length === 4)).toBe(true);
      h.c.rt.runFor(30_000);
      expect(deaths(h.c)).toEqual([]);
      expect(h.c.converged()).toBe(true);
    },
  );

  it('a peer run multicast-only never fans out, and still tells the others what it hears', async () => {
    const c = new SimCluster(7);
    const x = await c.add('x', {}, LAN);
    c.net.blockMulticast(x.address, { in: true, out: false });
    const m = await c.add('m', { reach: 'multicast' }, LAN);
    const a = await c.add('a', {}, LAN);
    c.rt.runFor(5_000);
    expect(m.node.reach.fanout()).toEqual([]);
    // x told m that it does not hear m's multicast; a, in auto, fans out to x.
    expect(m.node.reach.hearsUs(x.node.id)).toBe(false);
    expect(a.node.reach.fanout()).toEqual([x.address]);
  });
});

describe('reach: observers met through --join (simulation)', () => {
  it.each([1, 2, 3])(
    "a unicast-only observer keeps the group in view and in the members' fan-out while it runs, and leaves it when it stops, seed %i",
    async (seed) => {
      const c = new SimCluster(seed, { loss: 0.05, delayMaxMs: 2 });
      const unicast = { mode: 'unicast' } as const;
      const members = [
        await c.add('a', {}, unicast),
        await c.add('b', {}, unicast),
        await c.add('c', {}, unicast),
      ];
      expect(c.rt.runUntilTrue(() => c.converged(), 5_000)).toBe(true);
      // Seeds: the members' own addresses (the cluster gives them to a unicast-only observer).
      const obs = await c.add('obs', { observer: true }, unicast);
      const inView = () => obs.node.membership.live().filter((m) => m.state === 'alive').length === 3;
      const fannedOut = () => members.every((p) => p.node.reach.fanout().includes(obs.address));
      expect(c.rt.runUntilTrue(() => inView() && fannedOut(), 3_000)).toBe(true);
      // Their heartbeats keep coming: no member dies in its view, for longer than any timeout.
      c.rt.runFor(20_000);
      expect(inView() && fannedOut()).toBe(true);
      expect(obs.events.filter((e) => e.kind === 'dead')).toEqual([]);
      for (const p of members) expect(p.node.membership.get(obs.node.id)).toBeUndefined();
      await c.crash(obs);
      c.rt.runFor(OBSERVER_FANOUT_MS + 1_000);
      for (const p of members) expect(p.node.reach.fanout()).not.toContain(obs.address);
      expect(c.handlerErrors()).toEqual([]);
    },
  );

  // A member's answer, or the observer's echo of it, lost: the member never proves the observer,
  // sends it no heartbeat, and the observer (which pings nobody) sees it die. Every run counts.
  it('at 10 percent loss, no member an observer met dies in its view (20 runs)', async () => {
    const died: string[] = [];
    for (let seed = 1; seed <= 20; seed++) {
      const c = new SimCluster(seed, { loss: 0.1, delayMinMs: 0.1, delayMaxMs: 4 });
      const unicast = { mode: 'unicast' } as const;
      for (const n of ['a', 'b', 'c']) await c.add(n, {}, unicast);
      expect(c.rt.runUntilTrue(() => c.converged(), 5_000)).toBe(true);
      const obs = await c.add('obs', { observer: true }, unicast);
      c.rt.runFor(10_000);
      for (const e of obs.events) if (e.kind === 'dead') died.push(`seed ${seed}: ${e.member.name}`);
      expect(c.handlerErrors()).toEqual([]);
    }
    expect(died).toEqual([]);
  });

  // A member answers an observer's probe once: that answer lost, nothing made the member known
  // to it before the seeds' re-sync (30 s). Every run counts.
  it('at 10 percent loss, an observer joining through seeds knows every member within 2 s (20 runs)', async () => {
    const late: number[] = [];
    for (let seed = 1; seed <= 20; seed++) {
      const c = new SimCluster(seed, { loss: 0.1, delayMinMs: 0.1, delayMaxMs: 4 });
      const unicast = { mode: 'unicast' } as const;
      for (const n of ['a', 'b', 'c', 'd']) await c.add(n, {}, unicast);
      expect(c.rt.runUntilTrue(() => c.converged(), 5_000)).toBe(true);
      const obs = await c.add('obs', { observer: true }, unicast);
      const all = () => obs.node.membership.live().filter((m) => m.state === 'alive').length === 4;
      if (!c.rt.runUntilTrue(all, 2_000)) late.push(seed);
    }
    expect(late).toEqual([]);
  });

  it('an observer statement from a forged source gets a few answers, never our group traffic', async () => {
    const c = new SimCluster(13);
    const unicast = { mode: 'unicast' } as const;
    const peers = [
      await c.add('a', {}, unicast),
      await c.add('b', {}, unicast),
      await c.add('c', {}, unicast),
    ];
    expect(c.rt.runUntilTrue(() => c.converged(), 5_000)).toBe(true);
    const victim = c.net.transport(undefined, { segment: 9 });
    const got: string[] = [];
    await victim.start((data) => got.push(Buffer.from(data).toString('latin1')));
    const forger = await c.forger();
    for (let t = 0; t < 20; t++) {
      for (const p of peers)
        for (const e of [undefined, 1, 2])
          forger.send(
            p.address,
            { t: 'rc.st', b: { g: 0, n: 7, o: 1, ...(e === undefined ? {} : { e }) } },
            { spoofFrom: victim.address },
          );
      c.rt.runFor(500);
    }
    for (const p of peers) expect(p.node.reach.fanout()).not.toContain(victim.address);
    expect(got.filter((d) => !d.includes('"t":"rc.st"'))).toEqual([]);
    // One answer per statement at most, within the strangers' budget per second.
    expect(got.length).toBeLessThanOrEqual(peers.length * 20);
  });
});

describe('reach: forged statements and sources', () => {
  it('a statement from a stranger, or from a member address under a stranger id, is refused and makes no fan-out', async () => {
    const c = new SimCluster(11);
    const peers = [await c.add('a', {}, LAN), await c.add('b', {}, LAN), await c.add('c', {}, LAN)];
    c.rt.runFor(2_000);
    const forger = await c.forger();
    for (const p of peers) {
      forger.send(p.address, { t: 'rc.st', b: { g: 0, n: 7 } });
      forger.send(p.address, { t: 'rc.st', b: { g: 0, e: 7 } }, { spoofFrom: peers[0]!.address });
    }
    c.rt.runFor(3_000);
    for (const p of peers) {
      expect(p.node.reach.fanout()).toEqual([]);
      expect(p.node.stats.refused.reach ?? 0).toBeGreaterThanOrEqual(p === peers[0] ? 1 : 2);
    }
  });

  it("an envelope at a member's address with an incarnation past what membership adopts makes no statement to it", async () => {
    const c = new SimCluster(13);
    const sentTo = new Map<string, number>();
    c.wrapTransport = (t, peer) => ({
      get address() {
        return t.address;
      },
      mode: t.mode,
      start: (h) => t.start(h),
      broadcast: (data, also) => t.broadcast(data, also),
      send: (to, data) => {
        if (Buffer.from(data).includes('"t":"rc.st"'))
          sentTo.set(`${peer.name}>${to}`, (sentTo.get(`${peer.name}>${to}`) ?? 0) + 1);
        t.send(to, data);
      },
      close: () => t.close(),
    });
    const [a, b] = [await c.add('a', {}, LAN), await c.add('b', {}, LAN)];
    c.rt.runFor(3_000);
    const before = sentTo.get(`a>${b.address}`) ?? 0;
    const forger = await c.forger();
    // From b's address under b's id, an incarnation far past membership's step: membership
    // refuses it, and reach must not take it as a restart (it took the envelope's own field).
    forger.send(
      a.address,
      { t: 'sw.nack', i: b.node.id, n: 'b', c: b.node.incarnation + 2 * INCARNATION_STEP_MAX, b: { q: 1 } },
      { spoofFrom: b.address },
    );
    c.rt.runFor(100);
    expect(a.node.membership.get(b.node.id)?.incarnation).toBe(b.node.incarnation);
    expect(sentTo.get(`a>${b.address}`) ?? 0).toBe(before);
  });

  it('a member made up from a forged source address never gets our group traffic, only a few statements', async () => {
    const c = new SimCluster(12);
    const peers = [await c.add('a', {}, LAN), await c.add('b', {}, LAN), await c.add('c', {}, LAN)];
    c.rt.runFor(2_000);
    // The victim: a host that runs no peer, whose address the forger writes as its source.
    // In a segment of its own: it hears none of the group's multicast by itself.
    const victim = c.net.transport(undefined, { segment: 9 });
    const got: string[] = [];
    await victim.start((data) => got.push(Buffer.from(data).toString('latin1')));
    const forger = await c.forger();
    const fake = 'abcdefabcdefabcd';
    // A made-up member at the victim's address, kept alive, saying it hears nobody's multicast.
    // Its `u: 1` (its heartbeats reach us) keeps it watched by heartbeats, which it sends: watched
    // by probes (membership.ts), which never reach it, it would die and come back every second.
    for (let t = 0; t < 20; t++) {
      for (const p of peers) {
        forger.send(
          p.address,
          { t: 'hb', i: fake, n: 'fake', b: { g: {}, u: 1 } },
          { spoofFrom: victim.address },
        );
        forger.send(
          p.address,
          { t: 'rc.st', i: fake, n: 'fake', b: { g: 0 } },
          { spoofFrom: victim.address },
        );
      }
      c.rt.runFor(500);
    }
    for (const p of peers) {
      expect(p.node.membership.get(fake)?.address).toBe(victim.address);
      expect(p.node.reach.hearsUs(fake)).toBe(false);
      expect(p.node.reach.fanout()).toEqual([]);
    }
    // No heartbeat of the group's reached the victim: only statements (and answers to its hellos).
    expect(got.filter((d) => d.includes('"t":"hb"') && d.includes('"h":'))).toEqual([]);
    const stated = (g: 0 | 1) =>
      got.filter((d) => d.includes('"t":"rc.st"') && d.includes(`"g":${g},`)).length;
    // Our "no", retried with backoff (4 retries double up to REACH_REFRESH_MS, then one per
    // REACH_REFRESH_MS); before it, for the REACH_SETTLE_HEARTBEATS intervals a member met by
    // unicast is given to show itself on the group, the first view, stated at most 3 times.
    expect(stated(0)).toBeGreaterThan(0);
    expect(stated(0)).toBeLessThanOrEqual(peers.length * (4 + 10_000 / REACH_REFRESH_MS));
    expect(stated(1)).toBeLessThanOrEqual(peers.length * 3);
  });

  it('an unanswered statement is sent again after REACH_RETRY_MS, then at doubling gaps up to REACH_REFRESH_MS', () => {
    const sent: Array<{ to: Address; body: Record<string, unknown> }> = [];
    const ctx = fakeContext(sent);
    const reach = new Reach(ctx, {
      mode: 'unicast',
      unicastOnly: true,
      observer: false,
      heartbeatIntervalMs: 200,
      members: {
        get: () => ({ address: '10.0.0.2:7000', state: 'alive', incarnation: 1 }),
        incarnationOf: () => 1,
      },
    });
    // Unicast-only, a member met is greeted at once; its answers are lost, so each statement is retried.
    reach.follow(joinEvent(id16(1), '10.0.0.2:7000'));
    const at: number[] = [];
    for (let t = 0; t <= 8_000; t += 5) {
      reach.tick(ctx.now());
      while (at.length < sent.length) at.push(ctx.now());
      ctx.advance(5);
    }
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    expect(gaps.slice(0, 5)).toEqual([
      REACH_RETRY_MS,
      2 * REACH_RETRY_MS,
      4 * REACH_RETRY_MS,
      REACH_REFRESH_MS,
      REACH_REFRESH_MS,
    ]);
  });

  // A member suspected by mistake refutes (a higher incarnation), and reach cannot tell that from
  // a restart at the same address, which it must greet again. On a crowded host 50 peers suspected
  // each other dozens of times a second, and each refutation cost the refuter a statement from every
  // member, and its answers. Now a member's rises get one statement per refresh period: before, one
  // per rise (10 here).
  it('a member that refutes again and again gets our view once per refresh period, not once per rise', () => {
    const sent: Array<{ to: Address; body: Record<string, unknown> }> = [];
    const ctx = fakeContext(sent);
    const id = id16(1);
    const address: Address = '10.0.0.2:7000';
    const member = { address, state: 'alive' as const, incarnation: 1 };
    const reach = new Reach(ctx, {
      mode: 'auto',
      unicastOnly: false,
      observer: false,
      heartbeatIntervalMs: 750,
      members: { get: () => member, incarnationOf: () => member.incarnation },
    });
    reach.follow(joinEvent(id, address));
    // Heard on the group every 100 ms, and every statement of ours answered at once.
    const run = (ms: number) => {
      for (let t = 0; t < ms; t += 100) {
        reach.heard(id, address, 'group');
        reach.tick(ctx.now());
        for (const s of sent.splice(0)) {
          stated.push(ctx.now());
          reach.onMessage(envelope(id, { g: 1, e: s.body.n }), address);
        }
        ctx.advance(100);
      }
    };
    const stated: number[] = [];
    run(10_000);
    // Its first contact: our view once it settled.
    expect(stated).toHaveLength(1);
    const from = ctx.now();
    for (let i = 0; i < 10; i++) {
      member.incarnation++;
      run(100);
    }
    run(REACH_REFRESH_MS - 1_000);
    // The first rise, long after our last statement, is greeted at once; the nine after it wait.
    expect(stated.filter((t) => t >= from)).toEqual([from]);
    run(1_000);
    expect(stated.filter((t) => t >= from)).toEqual([from, from + REACH_REFRESH_MS]);
  });

  it(`caps the fan-out at ${FANOUT_PER_HOST_MAX} addresses per host, keeping the members met first`, () => {
    const sent: Array<{ to: Address; body: Record<string, unknown> }> = [];
    const ctx = fakeContext(sent);
    const members = new Map<string, { address: Address; state: 'alive'; incarnation: number }>();
    const reach = new Reach(ctx, {
      mode: 'auto',
      unicastOnly: false,
      observer: false,
      heartbeatIntervalMs: 200,
      members: { get: (id) => members.get(id), incarnationOf: (id) => members.get(id)?.incarnation },
    });
    const join = (id: string, address: Address) => {
      members.set(id, { address, state: 'alive', incarnation: 1 });
      reach.follow(joinEvent(id, address));
    };
    const ids: string[] = [];
    for (let i = 0; i < FANOUT_PER_HOST_MAX + 20; i++) ids.push(id16(i));
    ids.forEach((id, i) => join(id, `10.0.0.9:${7000 + i}`));
    join(id16(999), '10.0.0.10:7000');
    // Each says it does not hear us, and proves its address by answering our statement's nonce.
    const say = (id: string, body: Record<string, unknown>) =>
      reach.onMessage(envelope(id, body), members.get(id)!.address);
    for (const id of [...members.keys()]) say(id, { g: 0, n: 1 });
    ctx.advance(1000);
    reach.tick(ctx.now());
    for (const s of sent) {
      const id = [...members.entries()].find(([, m]) => m.address === s.to)![0];
      if (typeof s.body.n === 'number') say(id, { g: 0, e: s.body.n });
    }
    const list = reach.fanout();
    expect(list.filter((a) => a.startsWith('10.0.0.9:'))).toEqual(
      ids.slice(0, FANOUT_PER_HOST_MAX).map((_, i) => `10.0.0.9:${7000 + i}`),
    );
    expect(list).toContain('10.0.0.10:7000');
  });
});

function same(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join() === [...b].sort().join();
}

function addresses(ps: SimPeer[]): string[] {
  return ps.map((p) => p.address);
}

function id16(i: number): string {
  return i.toString(16).padStart(16, '0');
}

function joinEvent(id: string, address: Address): PeerEvent {
  return {
    kind: 'join',
    member: {
      id,
      name: 'm',
      address,
      state: 'alive',
      incarnation: 1,
      lastSeenMs: 0,
      duplicateName: false,
      tags: {},
    },
  };
}

function envelope(id: string, body: Record<string, unknown>): Envelope {
  return { v: 4, t: STATEMENT.type, i: id, n: 'm', c: 1, s: 1, l: 1, b: body };
}

function fakeContext(
  sent: Array<{ to: Address; body: Record<string, unknown> }>,
): ProtocolContext & { advance(ms: number): void } {
  let now = 0;
  let seed = 1;
  return {
    self: { id: 'ffffffffffffffff', name: 'self', incarnation: 1 },
    now: () => now,
    wall: () => now,
    random: () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646,
    lamport: () => 0,
    stamp: () => 0,
    wakeAt: () => {},
    broadcast: () => 0,
    send: (to, _type, body) => {
      sent.push({ to, body: body as Record<string, unknown> });
      return 0;
    },
    sendFrame: () => {},
    emit: () => {},
    refuse: () => {},
    soon: (fn) => fn(),
    bodyBytesMax: () => 1000,
    advance: (ms) => (now += ms),
  };
}
