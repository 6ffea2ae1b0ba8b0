/**
 * What one forged datagram can do to membership and to the envelope's counters (issue 17): a
 * stranger on the LAN sends well-formed envelopes with extreme counters or another member's id.
 * None of them may do lasting harm, and the legitimate cases they look like (a restart, a group
 * whose Lamport time is far ahead) must still work.
 */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_SIM_HOST,
  HELLO_RETRY_MS,
  SimCluster,
  SimForger,
  idFrom,
  type SimPeer,
} from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import { COUNTER_MAX } from '../../src/p2p/bounds.js';
import { LAMPORT_CATCH_UP_MS, LAMPORT_STEP_MAX } from '../../src/p2p/lamport.js';
import {
  INCARNATION_STEP_MAX,
  NEWCOMER_PING_AFTER_MS,
  NEWCOMER_PINGS_PER_S,
} from '../../src/p2p/membership.js';
import { Election } from '../../src/p2p/election.js';
import { Chat, type ChatLine } from '../../src/p2p/chat.js';
import { ReliableDelivery } from '../../src/p2p/reliable/index.js';

const P = PROFILES.lan;
const T = P.membership;
const SEEDS = Array.from({ length: 10 }, (_, i) => i + 1);
const FAR_AHEAD = 2 ** 40;
/** A round trip at the simulated links' delayMaxMs of 2 ms, with room for a tick in between. */
const ROUND_TRIP_MS = 10;

async function cluster(seed: number, n: number, configure?: ConstructorParameters<typeof SimCluster>[3]) {
  const c = new SimCluster(seed, { loss: 0.01, delayMaxMs: 2 }, P, configure);
  for (let i = 0; i < n; i++) await c.add(`p${i}`);
  expect(c.rt.runUntilTrue(() => c.converged(), 2_000)).toBe(true);
  return c;
}

/** Runs `ms` of virtual time, checking `ok` after every tick; the first tick where it fails, or null. */
function holdsFor(c: SimCluster, ms: number, ok: () => boolean): number | null {
  const end = c.rt.now() + ms;
  while (c.rt.now() < end) {
    c.rt.runFor(P.tickMs);
    if (!ok()) return c.rt.now();
  }
  return null;
}

/** Every live peer other than `m` sees `m` alive at its own address. */
const aliveAtHome = (c: SimCluster, m: SimPeer) => () =>
  c.live().every((p) => {
    if (p === m) return true;
    const v = p.node.membership.get(m.node.id);
    return v?.state === 'alive' && v.address === m.address;
  });

/** A stranger whose datagrams all arrive, so that the counts below are exact. */
async function stranger(c: SimCluster): Promise<SimForger> {
  const f = await c.forger();
  for (const p of c.peers) c.net.setLink(f.address, p.address, { loss: 0 });
  return f;
}

interface ChatOf {
  chat: Chat;
  lines: ChatLine[];
}

/** Installs chat (over reliable delivery) on every peer, keeping the lines each one shows in `chats`. */
function withChat(chats: Map<SimPeer, ChatOf>): ConstructorParameters<typeof SimCluster>[3] {
  return (node, peer) => {
    const rel = node.install((ctx, n) => new ReliableDelivery(ctx, n.membership, { audience: () => true }));
    const chat = node.install((ctx, n) => new Chat(ctx, n.membership, rel, { historyWanted: 0 }));
    const lines: ChatLine[] = [];
    chat.onLine((l) => lines.push(l));
    chats.set(peer, { chat, lines });
  };
}

const refused = (p: SimPeer, counter: string) => p.node.stats.refused[counter] ?? 0;
const eventsOf = (c: SimCluster, kind: string) =>
  c.peers.flatMap((p) => p.events.filter((e) => e.kind === kind));

describe('forged counters and member ids (simulation)', () => {
  it.each(SEEDS)(
    'a forged Lamport time near the end of the safe range, or far ahead, moves no clock, seed %i',
    async (seed) => {
      const chats = new Map<SimPeer, ChatOf>();
      const c = await cluster(seed, 3, withChat(chats));
      c.rt.runFor(500);
      const forger = await stranger(c);
      const before = c.peers.map((p) => p.node.lamport);
      // One at the very end of the safe range, then (a while later, as a second try) one that
      // is within the bound but far beyond any step a live group could take.
      forger.send(null, { t: 'hb', b: { g: {} }, l: Number.MAX_SAFE_INTEGER });
      c.rt.runFor(300);
      forger.send(null, { t: 'hb', b: { g: {} }, l: COUNTER_MAX - 1 });
      // A few times far ahead, but for less than the catch-up time: still refused.
      for (let k = 0; k < 4; k++) {
        forger.send(null, { t: 'probe', b: {}, l: FAR_AHEAD + k });
        c.rt.runFor((LAMPORT_CATCH_UP_MS * 0.9) / 4);
      }
      for (const [i, p] of c.peers.entries()) {
        expect(p.node.lamport).toBeLessThan(before[i]! + LAMPORT_STEP_MAX);
        expect(refused(p, 'lamport')).toBe(6);
        // Dropped whole: the stranger's heartbeats did not make it a member.
        expect(p.node.membership.get(SimForger.ID)).toBeUndefined();
      }
      // Clocks go on counting, and a chat line (a write stamped with the clock) gets through.
      const mid = c.peers.map((p) => p.node.lamport);
      const [a, b, d] = c.peers as [SimPeer, SimPeer, SimPeer];
      chats.get(a)!.chat.say('still here');
      const heard = () => [b, d].every((p) => chats.get(p)!.lines.some((l) => l.text === 'still here'));
      expect(c.rt.runUntilTrue(heard, 2_000)).toBe(true);
      c.rt.runFor(500);
      for (const [i, p] of c.peers.entries()) expect(p.node.lamport).toBeGreaterThan(mid[i]!);
      expect(c.converged()).toBe(true);
      expect(c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS)(
    'a forged suspicion with an incarnation beyond the target own leaves it alive, also after a restart, seed %i',
    async (seed) => {
      const c = await cluster(seed, 4);
      const victim = c.peers[1]!;
      const inc = victim.node.incarnation;
      const forger = await stranger(c);
      forger.send(null, { t: 'suspect', b: { target: victim.node.id, inc: Number.MAX_SAFE_INTEGER } });
      forger.send(victim.address, { t: 'suspect', b: { target: victim.node.id, inc: inc + 5 } });
      expect(holdsFor(c, 3 * T.deadAfterMs, aliveAtHome(c, victim))).toBeNull();
      expect(victim.node.incarnation).toBe(inc);
      expect(victim.events.filter((e) => e.kind === 'refute')).toEqual([]);
      expect(refused(victim, 'incarnation')).toBe(2);

      await c.crash(victim);
      c.rt.runFor(200);
      await c.restart(victim);
      expect(victim.node.incarnation).toBe(inc + 1);
      expect(c.rt.runUntilTrue(aliveAtHome(c, victim), 2 * T.heartbeatIntervalMs)).toBe(true);
      expect(holdsFor(c, 3 * T.deadAfterMs, aliveAtHome(c, victim))).toBeNull();
      expect(c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS)(
    'a forged leave from a stranger address marks nobody left and starts no election, seed %i',
    async (seed) => {
      const elections = new Map<SimPeer, Election>();
      const c = await cluster(seed, 4, (node, peer) => {
        // p3 ranks highest: the victim is the coordinator, whose leave would start an election.
        const priority = peer.name === 'p3' ? 2 : 0;
        elections.set(
          peer,
          node.install((ctx, n) => new Election(ctx, n.membership, { timings: P.election, priority })),
        );
      });
      const victim = c.peers[3]!;
      const leads = () => c.peers.every((p) => elections.get(p)!.coordinator() === victim.node.id);
      expect(c.rt.runUntilTrue(leads, 3_000)).toBe(true);
      c.rt.runFor(1_000);
      const started = eventsOf(c, 'election-started').length;
      const forger = await stranger(c);
      const claim = { i: victim.node.id, n: victim.name, c: victim.node.incarnation };
      for (let k = 0; k < 3; k++) forger.send(null, { t: 'leave', b: {}, ...claim });
      expect(holdsFor(c, 3 * T.deadAfterMs, aliveAtHome(c, victim))).toBeNull();
      expect(eventsOf(c, 'left')).toEqual([]);
      expect(eventsOf(c, 'election-started').length).toBe(started);
      expect(leads()).toBe(true);
      expect(c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS)(
    'a forged heartbeat with a member id and a higher incarnation from another address changes nothing, seed %i',
    async (seed) => {
      const c = await cluster(seed, 4);
      const victim = c.peers[2]!;
      const inc = victim.node.incarnation;
      const forger = await stranger(c);
      const claim = { i: victim.node.id, n: victim.name };
      forger.send(null, { t: 'hb', b: { g: { role: 'forged' } }, ...claim, c: inc + 1 });
      expect(holdsFor(c, 300, aliveAtHome(c, victim))).toBeNull();
      forger.send(null, { t: 'hb', b: { g: {} }, ...claim, c: COUNTER_MAX });
      expect(holdsFor(c, 3 * T.deadAfterMs, aliveAtHome(c, victim))).toBeNull();
      for (const p of c.live()) {
        if (p === victim) continue;
        const v = p.node.membership.get(victim.node.id)!;
        expect(v.incarnation).toBe(inc);
        expect(v.tags).toEqual({});
        // The first is an impostor; the second is refused already for its incarnation.
        expect(p.node.stats.refused.impostor).toBe(1);
        expect(refused(p, 'incarnation')).toBe(1);
      }
      expect(victim.node.incarnation).toBe(inc);
      expect(c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS)(
    'a heartbeat spoofed from a member own address with an incarnation past the step is refused, seed %i',
    async (seed) => {
      const c = await cluster(seed, 3);
      const victim = c.peers[0]!;
      const inc = victim.node.incarnation;
      const forger = await stranger(c);
      const claim = { i: victim.node.id, n: victim.name, c: inc + INCARNATION_STEP_MAX + 1 };
      for (const p of c.peers) c.net.setLink(victim.address, p.address, { loss: 0 });
      forger.send(null, { t: 'hb', b: { g: {} }, ...claim }, { spoofFrom: victim.address });
      expect(holdsFor(c, 3 * T.deadAfterMs, aliveAtHome(c, victim))).toBeNull();
      for (const p of c.live()) {
        if (p === victim) continue;
        expect(p.node.membership.get(victim.node.id)!.incarnation).toBe(inc);
        expect(refused(p, 'incarnation')).toBe(1);
      }
    },
  );

  it.each(SEEDS)(
    'a member restarted on a new port of its host is seen as restarted at once, seed %i',
    async (seed) => {
      const c = await cluster(seed, 4);
      const p = c.peers[1]!;
      const before = p.node.incarnation;
      await c.crash(p);
      c.rt.runFor(T.heartbeatIntervalMs);
      const host = p.address.slice(0, p.address.lastIndexOf(':'));
      p.address = `${host}:7001`;
      await c.restart(p);
      const restartedAt = c.rt.now();
      const seen = () =>
        c
          .live()
          .every((q) => q === p || q.events.some((e) => e.kind === 'restart' && e.member.id === p.node.id));
      expect(c.rt.runUntilTrue(seen, 2 * T.heartbeatIntervalMs)).toBe(true);
      expect(c.rt.now() - restartedAt).toBeLessThanOrEqual(T.heartbeatIntervalMs);
      expect(holdsFor(c, 2 * T.deadAfterMs, aliveAtHome(c, p))).toBeNull();
      for (const q of c.live())
        if (q !== p) expect(q.node.membership.get(p.node.id)!.incarnation).toBe(before + 1);
      expect(eventsOf(c, 'dead')).toEqual([]);
    },
  );

  // Three members ahead: the others can catch up with two that agree at once. One member ahead:
  // the laggards can catch up with it only a second after the forger stops, and must not give it
  // up for dead meanwhile.
  it.each(SEEDS.flatMap((seed) => [3, 1].map((ahead) => [seed, ahead])))(
    'a forger that splits the Lamport clocks and then claims the members it cut off leaves the group whole within twice the detection time, seed %i, %i ahead',
    async (seed, aheadCount) => {
      const chats = new Map<SimPeer, ChatOf>();
      const c = await cluster(seed, 4, withChat(chats));
      const ahead = c.peers.slice(0, aheadCount);
      const behind = c.peers.slice(aheadCount);
      const [first, last] = [c.peers[0]!, c.peers[3]!];
      const heard = (text: string) => () =>
        c.peers.every((p) => chats.get(p)!.lines.some((l) => l.text === text));
      // The group at work before the forger.
      for (const p of [first, last]) chats.get(p)!.chat.say(`before, from ${p.name}`);
      const before = () => [first, last].every((p) => heard(`before, from ${p.name}`)());
      expect(c.rt.runUntilTrue(before, 2_000)).toBe(true);
      const forger = await stranger(c);
      const far = Math.max(...c.peers.map((p) => p.node.lamport)) + FAR_AHEAD;
      // The members ahead are told one far-ahead time, which they catch up with after a second.
      // The others are told ever lower far-ahead times in between, each disagreeing with the last
      // and with the new time of those ahead, so that they keep refusing their envelopes. Once
      // they could have given them up for dead, heartbeats in their names come from the forger's
      // address, with counters that jump as if most heartbeats were lost.
      const forgeMs = 3_000;
      const everyMs = 20;
      for (let k = 0; k * everyMs < forgeMs; k++) {
        for (const p of ahead) forger.send(p.address, { t: 'probe', b: {}, l: far + k });
        for (const p of behind)
          forger.send(p.address, { t: 'probe', b: {}, l: far - (k + 2) * 2 * LAMPORT_STEP_MAX });
        if (k * everyMs >= forgeMs - 2 * T.suspectAfterMs)
          for (const p of ahead)
            for (const q of behind) {
              const claim = { i: p.node.id, n: p.name, c: p.node.incarnation };
              forger.send(q.address, { t: 'hb', b: { g: {}, h: 10 * k }, ...claim });
            }
        c.rt.runFor(everyMs);
      }
      for (const p of ahead) expect(p.node.lamport).toBeGreaterThan(far);
      const clocksAgree = () => {
        const times = c.peers.map((p) => p.node.lamport);
        return Math.max(...times) - Math.min(...times) <= LAMPORT_STEP_MAX;
      };
      const whole = () => clocksAgree() && c.converged() && c.peers.every((p) => aliveAtHome(c, p)());
      expect(c.rt.runUntilTrue(whole, 2 * T.deadAfterMs)).toBe(true);
      expect(holdsFor(c, 2 * T.deadAfterMs, whole)).toBeNull();
      // Refusing a member's Lamport time never made it look dead, so nothing was reclaimed.
      expect(eventsOf(c, 'dead')).toEqual([]);
      // Writes stamped with the clock get through both ways, and the clocks go on counting.
      const mid = c.peers.map((p) => p.node.lamport);
      chats.get(first)!.chat.say('after, from the first');
      chats.get(last)!.chat.say('after, from the last');
      expect(c.rt.runUntilTrue(heard('after, from the first'), 2_000)).toBe(true);
      expect(c.rt.runUntilTrue(heard('after, from the last'), 2_000)).toBe(true);
      for (const [i, p] of c.peers.entries()) expect(p.node.lamport).toBeGreaterThan(mid[i]!);
      expect(c.handlerErrors()).toEqual([]);
    },
  );

  // A settled member pings a newcomer whose probe it hears. A stranger sending probes under fresh
  // ids from a victim's address made each member answer and ping the victim: two datagrams
  // reflected for each forged one, where the answer alone was one.
  it.each(SEEDS)(
    'probes under fresh ids from a spoofed address draw at most NEWCOMER_PINGS_PER_S pings a second, seed %i',
    async (seed) => {
      const c = await cluster(seed, 3);
      c.rt.runFor(NEWCOMER_PING_AFTER_MS);
      const forger = await stranger(c);
      const victim = c.net.transport();
      const got = { ping: 0, hb: 0 };
      await victim.start((data, _from, via) => {
        if (via !== 'unicast') return; // the group's own heartbeats
        const text = Buffer.from(data).toString('latin1');
        if (text.includes('"t":"ping"')) got.ping++;
        else if (text.includes('"t":"hb"')) got.hb++;
      });
      // The probes travel as from the victim: no loss either way, so the counts are exact.
      for (const p of c.peers) {
        c.net.setLink(p.address, victim.address, { loss: 0 });
        c.net.setLink(victim.address, p.address, { loss: 0 });
      }
      const random = c.rt.random;
      const PROBES = 100;
      for (let k = 0; k < PROBES; k++) {
        forger.send(null, { t: 'probe', b: {}, i: idFrom(random) }, { spoofFrom: victim.address });
        c.rt.runFor(990 / PROBES);
      }
      c.rt.runFor(ROUND_TRIP_MS);
      // Each probe is still answered: a real newcomer among them must find the group.
      expect(got.hb).toBe(PROBES * c.peers.length);
      expect(got.ping).toBeGreaterThan(0);
      expect(got.ping).toBeLessThanOrEqual(NEWCOMER_PINGS_PER_S * c.peers.length);
      expect(c.converged()).toBe(true);
      expect(c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS)(
    'a member reclaimed from a stranger address while it was dead here is taken back when heard at its own address, seed %i',
    async (seed) => {
      const c = await cluster(seed, 4);
      const [member, , , cutOff] = c.peers as [SimPeer, SimPeer, SimPeer, SimPeer];
      const cut = (loss: number) => {
        c.net.setLink(member.address, cutOff.address, { loss });
        c.net.setLink(cutOff.address, member.address, { loss });
      };
      cut(1);
      const dead = () => cutOff.node.membership.get(member.node.id)?.state === 'dead';
      expect(c.rt.runUntilTrue(dead, 2 * T.deadAfterMs)).toBe(true);
      const forger = await stranger(c);
      const claim = { i: member.node.id, n: member.name, c: member.node.incarnation + 1 };
      let k = 0;
      const forge = () => forger.send(cutOff.address, { t: 'hb', b: { g: { role: 'forged' } }, ...claim });
      forge();
      c.rt.runFor(T.heartbeatIntervalMs);
      expect(cutOff.node.membership.get(member.node.id)?.address).toBe(forger.address);
      // The link heals while the forger goes on: the member's own heartbeats win it back.
      cut(0);
      c.heal(); // unicast-only, the reconnect that makes them meet again (see heal())
      const home = () => cutOff.node.membership.get(member.node.id)?.address === member.address;
      const healedAt = c.rt.now();
      while (!home() && c.rt.now() - healedAt < 2 * T.heartbeatIntervalMs) {
        if (k++ % 2 === 0) forge();
        c.rt.runFor(P.tickMs);
      }
      expect(home()).toBe(true);
      const stays = () => {
        forge();
        return aliveAtHome(c, member)();
      };
      expect(holdsFor(c, 3 * T.deadAfterMs, stays)).toBeNull();
      expect(cutOff.node.membership.get(member.node.id)!.tags).toEqual({});
      expect(c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS)(
    'a fresh peer joins a group whose Lamport time is far ahead at once, and a group catches up with a lone peer ahead, seed %i',
    async (seed) => {
      const c = new SimCluster(seed, { loss: 0.01, delayMaxMs: 2 }, P);
      await c.add('p0', { lamport: FAR_AHEAD });
      await c.add('p1', { lamport: FAR_AHEAD });
      expect(c.rt.runUntilTrue(() => c.converged(), 2_000)).toBe(true);
      // Two members answer the newcomer's probe at once: two addresses agree, it catches up. A
      // member whose answer was refused before that is taken from its next heartbeat, and when
      // that one carries no tags (membership.ts: TAGS_EVERY_HEARTBEATS) a round trip later.
      const fresh = await c.add('fresh');
      // Unicast-only, it meets them by the test's hellos and proves addresses by statements, each
      // retried HELLO_RETRY_MS later when lost: seed 7 lost two (504 ms).
      const retries = DEFAULT_SIM_HOST.mode === 'unicast' ? 2 * HELLO_RETRY_MS : 0;
      expect(
        c.rt.runUntilTrue(() => c.converged(), 2 * T.heartbeatIntervalMs + ROUND_TRIP_MS + retries),
      ).toBe(true);
      expect(refused(fresh, 'lamport')).toBeGreaterThan(0);
      expect(fresh.node.lamport).toBeGreaterThan(FAR_AHEAD);

      // A lone peer far ahead of a group (its own history) is not cut off either, but one sender
      // has to keep claiming its time for the catch-up time first.
      const addedAt = c.rt.now();
      const ahead = await c.add('ahead', { lamport: 2 * FAR_AHEAD });
      expect(c.rt.runUntilTrue(() => c.converged(), LAMPORT_CATCH_UP_MS + 4 * T.heartbeatIntervalMs)).toBe(
        true,
      );
      expect(c.rt.now() - addedAt).toBeGreaterThanOrEqual(LAMPORT_CATCH_UP_MS);
      for (const p of c.peers) expect(p.node.lamport).toBeGreaterThan(2 * FAR_AHEAD);
      expect(holdsFor(c, 2 * T.deadAfterMs, () => c.converged())).toBeNull();
      expect(ahead.node.stats.refused.lamport ?? 0).toBe(0);
      expect(c.handlerErrors()).toEqual([]);
    },
  );
});
