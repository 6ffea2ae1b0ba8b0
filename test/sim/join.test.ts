/**
 * Joining through seeds where multicast does not reach (join/): two segments (subnets joined by a
 * router without multicast routing), one seed. Every peer must meet every other, each side adding
 * the other on the other's own envelope. Then a restart with remembered peers and no seed, and
 * what forged pages, hellos and floods at a door can do: bounded, never a member or a remembered
 * row, at most twice the bytes a forger sent to a forged source address.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_SIM_HOST, SimCluster, SimForger, sending, type SimPeer } from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import { SIM_DOOR_PORT } from '../../src/p2p/transport/sim.js';
import { parseAddress, type Address } from '../../src/p2p/transport/transport.js';
import { Codec } from '../../src/p2p/wire.js';
import {
  HELLO,
  JOIN_MESSAGES,
  PAGE,
  SYNC,
  SYNC_PAGE_ENTRIES_MAX,
  SYNC_PAGES_MAX,
  SYNC_REQUEST_BYTES_MIN,
  decodeHints,
  encodeHints,
  type Hint,
} from '../../src/p2p/join/messages.js';
import {
  ANSWERS_PER_S,
  ANSWERS_PER_SOURCE_PER_S,
  HELLO_BURST,
  HELLO_EXCHANGES_PER_S,
  HELLO_REPEAT_MS,
  HELLO_TRIES_MAX,
  HELLOS_PER_S,
  RECONNECT_INTERVAL_MS,
  SEED_RESYNC_MS,
} from '../../src/p2p/join/index.js';
import { SecureTransport } from '../../src/p2p/transport/secure.js';
import { Keyring } from '../../src/p2p/transport/keyring.js';

const P = PROFILES.lan;
const SEEDS = [1, 2, 3, 4, 5];
/** Every pair has met this long after the last peer started (a sync, a page, hellos: a few round trips). */
const FIRST_CONTACT_MS = 2000;
/** The same at 10 % loss: a sync and hellos lost and sent again (the sync's retry is 250 ms). */
const LATE_CONTACT_AT_LOSS_MS = 1500;
/**
 * A member back from a cut, with every other: a sync with a member of its segment that hears it
 * again on the group, then hellos. With every peer unicast-only nobody hears anybody after the
 * cut: the next reconnect finds them.
 */
const BACK_CONTACT_MS = DEFAULT_SIM_HOST.mode === 'unicast' ? RECONNECT_INTERVAL_MS + 1000 : 1000;

const doorOf = (p: SimPeer): Address => `${parseAddress(p.address).host}:${SIM_DOOR_PORT}`;
const codec = new Codec(JOIN_MESSAGES.checks, { [PAGE.type]: decodeHints });

/** The ids of the members `p` added (its `join` events). */
function firstContacts(p: SimPeer): Set<string> {
  return new Set(p.events.flatMap((e) => (e.kind === 'join' ? [e.member.id] : [])));
}

/** A segment-0 seed holding its door, then `perSegment` peers in each of two segments joining it. */
async function twoSegments(seed: number, perSegment = 5, remember = false) {
  const c = new SimCluster(seed, { loss: 0.01, delayMaxMs: 2 }, P);
  const s = await c.add('seed', {}, { segment: 0 }, { door: true, remember });
  const join = { seeds: [doorOf(s)], remember };
  for (let i = 1; i < perSegment; i++) await c.add(`a${i}`, {}, { segment: 0 }, join);
  for (let i = 0; i < perSegment; i++) await c.add(`b${i}`, {}, { segment: 1 }, join);
  return { c, s };
}

/** A unicast-only seed holding its door, and `n - 1` unicast-only peers given only that door. */
async function throughOneSeed(c: SimCluster, n: number): Promise<SimPeer> {
  const s = await c.add('s0', {}, { mode: 'unicast' }, { door: true });
  for (let i = 1; i < n; i++)
    await c.add(`s${i}`, {}, { mode: 'unicast' }, { seeds: [doorOf(s)], hello: false });
  return s;
}

/** Every peer has added every other (each on the other's own envelope). */
const allMet = (c: SimCluster) => () =>
  c.peers.every((p) => c.peers.every((q) => q === p || firstContacts(p).has(q.node.id)));

describe('join through a seed across segments (simulation)', () => {
  it.each(SEEDS)('seed %i: every peer meets every other in both segments, both ways', async (seed) => {
    const { c } = await twoSegments(seed);
    const started = c.rt.now();
    expect(c.rt.runUntilTrue(allMet(c), FIRST_CONTACT_MS)).toBe(true);
    // Members of the other segment were added on their own hellos from their own addresses.
    for (const p of c.peers)
      for (const q of c.peers) {
        if (p === q) continue;
        const seen = p.events.find((e) => e.kind === 'join' && e.member.id === q.node.id);
        expect(seen && seen.kind === 'join' && seen.member.address).toBe(q.address);
      }
    expect(c.rt.now() - started).toBeLessThanOrEqual(FIRST_CONTACT_MS);
    expect(c.handlerErrors()).toEqual([]);
  });

  it.each(SEEDS)('seed %i: a peer started later meets everyone through the seed', async (seed) => {
    const { c, s } = await twoSegments(seed, 3);
    c.rt.runFor(5000);
    const late = await c.add('late', {}, { segment: 2 }, { seeds: [doorOf(s)] });
    expect(
      c.rt.runUntilTrue(
        () => c.peers.every((q) => q === late || firstContacts(late).has(q.node.id)),
        FIRST_CONTACT_MS,
      ),
    ).toBe(true);
    expect(c.peers.every((q) => q === late || firstContacts(q).has(late.node.id))).toBe(true);
  });

  it.each(SEEDS)(
    'seed %i: with a tenth of datagrams lost, a late peer still meets everyone at once (a lost hello is sent again)',
    async (seed) => {
      const c = new SimCluster(seed, { loss: 0.1, delayMaxMs: 2 }, P);
      const s = await c.add('seed', {}, { segment: 0 }, { door: true });
      for (let i = 1; i < 8; i++) await c.add(`a${i}`, {}, { segment: i % 2 }, { seeds: [doorOf(s)] });
      expect(c.rt.runUntilTrue(allMet(c), 10_000)).toBe(true);
      // A one-shot command settles on whom it met within about a second (peer chat --send): a
      // hello or its answer lost must not leave a member out until the next re-sync.
      const late = await c.add('late', {}, { segment: 2 }, { seeds: [doorOf(s)] });
      const metAll = () => c.peers.every((q) => q === late || firstContacts(late).has(q.node.id));
      expect(c.rt.runUntilTrue(metAll, LATE_CONTACT_AT_LOSS_MS)).toBe(true);
    },
  );

  it.each(SEEDS)(
    'seed %i: a peer cut off until all call it dead meets the other segment again at once when it is back',
    async (seed) => {
      const { c } = await twoSegments(seed, 3);
      expect(c.rt.runUntilTrue(() => c.converged(), FIRST_CONTACT_MS)).toBe(true);
      const cut = c.peers.find((p) => p.name === 'a1')!;
      const others = c.peers.filter((p) => p !== cut);
      c.net.setDown(cut.address, true);
      const sawDead = (p: SimPeer, q: SimPeer) => p.node.membership.get(q.node.id)?.state === 'dead';
      expect(c.rt.runUntilTrue(() => others.every((p) => sawDead(p, cut) && sawDead(cut, p)), 10_000)).toBe(
        true,
      );
      c.net.setDown(cut.address, false);
      // Its own segment hears it at once; the other, with no multicast between them, learns it from
      // the exchange of lists that a member coming back starts, not from the next reconnect.
      const alive = (p: SimPeer, q: SimPeer) => p.node.membership.get(q.node.id)?.state === 'alive';
      expect(
        c.rt.runUntilTrue(() => others.every((p) => alive(p, cut) && alive(cut, p)), BACK_CONTACT_MS),
      ).toBe(true);
    },
  );

  it.each(SEEDS)(
    'seed %i: without a seed, a restart finds the group through its remembered peers',
    async (seed) => {
      const { c, s } = await twoSegments(seed, 3, true);
      expect(c.rt.runUntilTrue(allMet(c), FIRST_CONTACT_MS)).toBe(true);
      c.rt.runFor(1000); // the rows are written in a batch after the turn that met them
      const b0 = c.peers.find((p) => p.name === 'b0')!;
      expect(b0.remembered!.rows.size).toBe(c.peers.length - 1);
      await c.crash(s); // the only seed is gone
      await c.crash(b0);
      b0.join = {}; // and the restart is given none
      b0.events.length = 0;
      await c.restart(b0);
      const others = c.live().filter((p) => p !== b0 && p.host.segment === 0);
      expect(others.length).toBe(2);
      expect(
        c.rt.runUntilTrue(
          () =>
            others.every((q) =>
              b0.events.some(
                (e) =>
                  (e.kind === 'join' || e.kind === 'alive' || e.kind === 'restart') &&
                  e.member.id === q.node.id,
              ),
            ),
          FIRST_CONTACT_MS,
        ),
      ).toBe(true);
    },
  );

  it('seeds are synced with again: a seed restarted after everyone gave up is found again', async () => {
    const c = new SimCluster(7, { loss: 0 }, P);
    const s = await c.add('seed', {}, { segment: 0 }, { door: true });
    c.net.setDown(s.address, true);
    const b = await c.add('b', {}, { segment: 1 }, { seeds: [doorOf(s)] });
    c.rt.runFor(20_000); // every retry went unanswered
    expect(firstContacts(b).has(s.node.id)).toBe(false);
    c.net.setDown(s.address, false);
    expect(c.rt.runUntilTrue(() => firstContacts(b).has(s.node.id), SEED_RESYNC_MS)).toBe(true);
  });
});

describe('tags come with an introduction (simulation)', () => {
  it.each(SEEDS)(
    'seed %i: 40 unicast-only peers that meet through a seed and hellos ping nobody for tags they were given',
    async (seed) => {
      const n = 40;
      let pings = 0;
      const c = new SimCluster(seed, { loss: 0, delayMaxMs: 2 }, P);
      c.wrapTransport = (t) =>
        sending(t, (d, to) => {
          if (to === null) return;
          if (Buffer.from(d).includes('"t":"ping"')) pings++;
        });
      await throughOneSeed(c, n);
      expect(c.rt.runUntilTrue(() => c.converged(), 10_000)).toBe(true);
      c.rt.runFor(5_000);
      // Without the tags' version on a sync or hello, each member pinged each other once for them
      // at its first heartbeat: about n^2.
      expect(pings).toBeLessThan(n);
      expect(c.handlerErrors()).toEqual([]);
    },
  );
});

describe('seeds live here are not synced with again (simulation)', () => {
  it.each(SEEDS)(
    'seed %i: members that met their seed sync with it no more while it is live; once it died, again',
    async (seed) => {
      const syncs: Array<{ to: Address; at: number }> = [];
      const c = new SimCluster(seed, { loss: 0.01, delayMaxMs: 2 }, P);
      c.wrapTransport = (t) =>
        sending(t, (d, to) => {
          if (to === null) return;
          const r = codec.decode(d);
          if (r.ok && r.env.t === SYNC.type) syncs.push({ to, at: c.rt.now() });
        });
      const s = await throughOneSeed(c, 5);
      const door = doorOf(s);
      expect(c.rt.runUntilTrue(() => c.converged(), 5_000)).toBe(true);
      const from = c.rt.now();
      c.rt.runFor(2 * SEED_RESYNC_MS + 1_000);
      expect(syncs.filter((x) => x.to === door && x.at >= from)).toEqual([]);
      // The seed crashes: dead everywhere, so the members sync with its door again, and find it
      // once it is back.
      await c.crash(s);
      const m0 = c.peers[1]!;
      expect(c.rt.runUntilTrue(() => m0.node.membership.get(s.node.id)?.state === 'dead', 10_000)).toBe(true);
      const crashed = c.rt.now();
      c.rt.runFor(SEED_RESYNC_MS + 1_000);
      expect(syncs.filter((x) => x.to === door && x.at >= crashed).length).toBeGreaterThan(0);
      await c.restart(s);
      expect(c.rt.runUntilTrue(() => c.converged(), SEED_RESYNC_MS + 5_000)).toBe(true);
      expect(c.handlerErrors()).toEqual([]);
    },
  );
});

describe('a group joining at once (simulation)', () => {
  it.each(SEEDS)(
    'seed %i: 120 unicast-only peers joining through one seed converge, and hellos start at most HELLO_EXCHANGES_PER_S list exchanges a second each',
    async (seed) => {
      const n = 120;
      let pages = 0;
      const c = new SimCluster(seed, { loss: 0.01, delayMaxMs: 2 }, P);
      c.wrapTransport = (t) =>
        sending(t, (d, to) => {
          if (to === null) return;
          const r = codec.decode(d);
          if (r.ok && r.env.t === PAGE.type) pages++;
        });
      await throughOneSeed(c, n);
      const start = c.rt.now();
      expect(c.rt.runUntilTrue(() => c.converged(), 10_000)).toBe(true);
      const seconds = (c.rt.now() - start) / 1000;
      // A list is ceil(n / SYNC_PAGE_ENTRIES_MAX) pages; each exchange moves it both ways. Allowed:
      // every peer's first sync through the seed, its exchanges started by hellos at the pace, and
      // as many started by syncs (each exchange answers one). With one per hello it was ~n^2 lists.
      const list = Math.ceil(n / SYNC_PAGE_ENTRIES_MAX);
      const exchanges = n * (1 + 2 * Math.ceil(HELLO_EXCHANGES_PER_S * (seconds + 1)));
      expect(pages).toBeLessThanOrEqual(2 * list * exchanges);
      expect(c.handlerErrors()).toEqual([]);
    },
  );
});

describe('re-contact (simulation)', () => {
  it('a dead member is tried once per RECONNECT_INTERVAL_MS; one that left is never tried again', async () => {
    const sent: Array<{ to: Address; at: number }> = [];
    const c = new SimCluster(9, { loss: 0 }, P);
    c.wrapTransport = (t, peer) =>
      peer.name !== 'a' ? t : sending(t, (_, to) => to !== null && sent.push({ to, at: c.rt.now() }));
    const a = await c.add('a', {}, {}, { remember: true });
    const gone = await c.add('gone');
    const dead = await c.add('dead');
    expect(c.rt.runUntilTrue(() => c.converged(), 2000)).toBe(true);
    await c.leave(gone);
    await c.crash(dead);
    expect(c.rt.runUntilTrue(() => a.node.membership.get(dead.node.id)?.state === 'dead', 3000)).toBe(true);
    const from = c.rt.now();
    const span = P.membership.deadRetentionMs + RECONNECT_INTERVAL_MS;
    c.rt.runFor(span);
    // Retention ended meanwhile: from then on the dead member is tried as a remembered peer.
    expect(a.node.membership.get(dead.node.id)).toBeUndefined();
    const to = (addr: Address) => sent.filter((x) => x.to === addr && x.at >= from).length;
    expect(to(gone.address)).toBe(0);
    expect(to(dead.address)).toBeGreaterThanOrEqual(span / RECONNECT_INTERVAL_MS - 1);
    expect(to(dead.address)).toBeLessThanOrEqual(span / RECONNECT_INTERVAL_MS);
    expect(a.remembered!.rows.has(gone.node.id)).toBe(false);
    expect(a.remembered!.rows.has(dead.node.id)).toBe(true);
  });
});

/** A stranger that answers every sync it gets with pages of made-up hints, for ever. */
async function forgedSeed(c: SimCluster, hints: (page: number) => Hint[]) {
  const t = c.net.transport(undefined, { segment: 5 });
  const f = new SimForger(c.net, t);
  let page = 0;
  const requests: number[] = [];
  await t.start((data, from) => {
    const r = codec.decode(data);
    if (!r.ok || r.env.t !== SYNC.type) return;
    requests.push(data.length);
    const body = SYNC.of(r.env)!;
    const h = hints(page++);
    f.send(
      from,
      {
        t: PAGE.type,
        b: PAGE.toWire({ nonce: body.nonce, total: 2000, next: page.toString(16).padStart(16, '0') }),
      },
      { attachment: encodeHints(h) },
    );
  });
  return { f, address: t.address, requests };
}

const fakeHint = (page: number, i: number): Hint => ({
  id: (page * SYNC_PAGE_ENTRIES_MAX + i).toString(16).padStart(16, '0'),
  address: `10.9.${page % 250}.${i + 1}:7000`,
});

describe('forged member lists and floods (simulation)', () => {
  it('a forged seed paging for ever: pages per sync, hellos per second and per address are bounded; no member, no row', async () => {
    const c = new SimCluster(3, { loss: 0 }, P);
    const forged = await forgedSeed(c, (page) =>
      Array.from({ length: SYNC_PAGE_ENTRIES_MAX }, (_, i) => fakeHint(page, i)),
    );
    const p = await c.add('p', {}, { segment: 0 }, { seeds: [forged.address], remember: true });
    const sentBefore = p.node.stats.datagramsOut;
    const helloTimes: Array<{ at: number; to: Address }> = [];
    const send = p.node.context.send;
    // Count the hellos p sends, by address, as they leave.
    p.node.context.send = (to, type, body, att) => {
      if (type === HELLO.type) helloTimes.push({ at: c.rt.now(), to });
      return send(to, type, body, att);
    };
    c.rt.runFor(10_000);
    // One sync follows at most SYNC_PAGES_MAX pages (then the next re-contact starts again).
    expect(forged.requests.length).toBeLessThanOrEqual(SYNC_PAGES_MAX + 1);
    // At most HELLOS_PER_S hellos in any second (plus one burst), each address at most
    // HELLO_TRIES_MAX times (a hello not answered is sent again).
    for (let t = 0; t < 10_000; t += 100) {
      const n = helloTimes.filter((h) => h.at >= t && h.at < t + 1000).length;
      expect(n).toBeLessThanOrEqual(HELLOS_PER_S + HELLO_BURST);
    }
    const perAddress = new Map<Address, number>();
    for (const h of helloTimes) perAddress.set(h.to, (perAddress.get(h.to) ?? 0) + 1);
    expect(Math.max(...perAddress.values())).toBe(HELLO_TRIES_MAX);
    expect(helloTimes.length).toBeGreaterThan(0);
    expect(p.node.membership.list()).toEqual([]);
    c.rt.runFor(HELLO_REPEAT_MS);
    expect(p.remembered!.rows.size).toBe(0);
    expect(p.node.stats.datagramsOut - sentBefore).toBeLessThan((20_000 / 1000) * (HELLOS_PER_S + 50));
    expect(c.handlerErrors()).toEqual([]);
  });

  it('pages nobody asked for are ignored; unpadded requests are refused and counted', async () => {
    const c = new SimCluster(4, { loss: 0 }, P);
    const m = await c.add('m', {}, { segment: 0 }, { door: true, remember: true });
    const f = await c.forger();
    // The forged pages hint at a host that counts what reaches it.
    const hinted = c.net.transport(undefined, { segment: 4 });
    let reached = 0;
    await hinted.start(() => reached++);
    const hint = { id: 'abababababababab', address: hinted.address };
    for (let i = 0; i < 50; i++)
      f.send(
        m.address,
        { t: PAGE.type, b: PAGE.toWire({ nonce: i, total: 1 }) },
        { attachment: encodeHints([hint]) },
      );
    f.send(doorOf(m), { t: SYNC.type, b: SYNC.toWire({ cursor: '', nonce: 1, tags: {} }) });
    f.send(m.address, { t: HELLO.type, b: HELLO.toWire({ tags: {}, answer: 1 }) });
    c.rt.runFor(2000);
    expect(reached).toBe(0);
    expect(m.node.stats.refused.sync).toBe(1);
    expect(m.node.stats.refused.hello).toBe(1);
    expect(c.handlerErrors()).toEqual([]);
  });

  it('a flood of syncs with a forged source: at most 2x the bytes sent, at a bounded rate, door included', async () => {
    const c = new SimCluster(5, { loss: 0 }, P);
    const m = await c.add('m', {}, { segment: 0 }, { door: true });
    for (let i = 0; i < 40; i++) await c.add(`x${i}`); // a page of 32 and a second one
    c.rt.runFor(1000);
    const victim = c.net.transport(undefined, { segment: 3 });
    let toVictim = 0;
    let answers = 0;
    await victim.start((d) => {
      toVictim += d.length;
      answers++;
    });
    const f = await c.forger();
    let sent = 0;
    const body = SYNC.toWire({
      cursor: '',
      nonce: 9,
      observer: 1,
      padding: ' '.repeat(SYNC_REQUEST_BYTES_MIN),
    });
    const seconds = 3;
    for (let t = 0; t < seconds * 1000; t += 10) {
      for (const to of [m.address, doorOf(m)]) {
        const d = f.encode({ t: SYNC.type, b: body });
        sent += d.length;
        f.sendBytes(to, d, { spoofFrom: victim.address });
      }
      c.rt.runFor(10);
    }
    c.rt.runFor(100);
    expect(answers).toBeGreaterThan(0);
    expect(answers).toBeLessThanOrEqual((seconds + 1) * ANSWERS_PER_SOURCE_PER_S);
    expect(toVictim / sent).toBeLessThanOrEqual(2);
    expect(m.node.stats.refused.sync).toBeGreaterThan(0);
  });

  it('a door flood from many sources: answers in all stay within ANSWERS_PER_S', async () => {
    const c = new SimCluster(6, { loss: 0 }, P);
    const m = await c.add('m', {}, { segment: 0 }, { door: true });
    const f = await c.forger();
    const body = SYNC.toWire({
      cursor: '',
      nonce: 9,
      observer: 1,
      padding: ' '.repeat(SYNC_REQUEST_BYTES_MIN),
    });
    const sources: Address[] = [];
    for (let k = 0; k < 40; k++) {
      const t = c.net.transport(undefined, { segment: 7 });
      await t.start(() => {});
      sources.push(t.address);
    }
    const pagesBefore = m.node.stats.datagramsOut;
    for (let t = 0; t < 1000; t += 1) {
      for (let k = 0; k < 2; k++)
        f.sendBytes(doorOf(m), f.encode({ t: SYNC.type, b: body }), { spoofFrom: sources[(2 * t + k) % 40] });
      c.rt.runFor(1);
    }
    const heartbeats = Math.ceil(1000 / P.membership.heartbeatIntervalMs) + 1;
    expect(m.node.stats.datagramsOut - pagesBefore).toBeLessThanOrEqual(ANSWERS_PER_S + heartbeats);
    expect(m.node.stats.refused.sync).toBeGreaterThanOrEqual(2000 - ANSWERS_PER_S);
  });
});

describe('join in a keyed group (simulation)', () => {
  it('a door datagram is sealed like any other; a peer with another key cannot join', async () => {
    const c = new SimCluster(8, { loss: 0 }, P);
    const secures = new Map<string, SecureTransport>();
    c.wrapTransport = (t, peer) => {
      const key = Buffer.alloc(32, peer.name === 'outsider' ? 9 : 1);
      const s = new SecureTransport(t, {
        keyring: new Keyring([key]),
        group: '239.255.77.77:47777',
        now: () => c.rt.now(),
      });
      secures.set(peer.name, s);
      return s;
    };
    const s = await c.add('seed', {}, { segment: 0 }, { door: true });
    const b = await c.add('b', {}, { segment: 1 }, { seeds: [doorOf(s)] });
    expect(
      c.rt.runUntilTrue(
        () => firstContacts(b).has(s.node.id) && firstContacts(s).has(b.node.id),
        FIRST_CONTACT_MS,
      ),
    ).toBe(true);
    const o = await c.add('outsider', {}, { segment: 1 }, { seeds: [doorOf(s), s.address, b.address] });
    c.rt.runFor(5000);
    expect(firstContacts(o).size).toBe(0);
    expect(firstContacts(s).has(o.node.id)).toBe(false);
    expect(firstContacts(b).has(o.node.id)).toBe(false);
    // The outsider's syncs reached the seed through its door and were dropped before decoding.
    const dropped = secures.get('seed')!.stats.dropped;
    expect(Object.values(dropped).reduce((a, n) => a + n, 0)).toBeGreaterThan(0);
    // A plaintext sync to the door is dropped too.
    const f = await c.forger();
    const plaintext = dropped.plaintext;
    f.send(doorOf(s), {
      t: SYNC.type,
      b: SYNC.toWire({ cursor: '', nonce: 1, tags: {}, padding: ' '.repeat(SYNC_REQUEST_BYTES_MIN) }),
    });
    c.rt.runFor(100);
    expect(dropped.plaintext).toBe(plaintext + 1);
    expect(firstContacts(s).has(SimForger.ID)).toBe(false);
  });
});
