/**
 * Chandy–Lamport snapshots in simulation: peers move money between them over reliable multicast
 * while a snapshot is taken (seed 002's bank). Each peer's balance lives in its own SQLite file,
 * the only thing a crash keeps. The invariant: the recorded balances plus the transfers recorded
 * in flight (on the channel of their recipient) account for every unit exactly once, under loss,
 * duplication and reordering, and after a crash and restart from the file alone.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { tempDir } from '../support/proc.js';
import { PROFILES } from '../../src/p2p/config.js';
import { ReliableDelivery } from '../../src/p2p/reliable/index.js';
import { Snapshot, SNAPSHOT_CHANNEL_TIMEOUT_MS, SNAPSHOT_REQUESTERS_MAX } from '../../src/p2p/snapshot.js';
import { rogue } from '../support/rogue.js';

const SEEDS = Array.from({ length: 8 }, (_, i) => i + 1);
const START_BALANCE = 1000;
const PEERS = 4;

interface Bank {
  c: SimCluster;
  dbs: Map<string, Database.Database>;
  rm: Map<SimPeer, ReliableDelivery>;
  snap: Map<SimPeer, Snapshot>;
  balance(p: SimPeer): number;
  transfer(from: SimPeer, to: SimPeer, amount: number): void;
}

async function bank(seed: number, faults = {}): Promise<Bank> {
  const dir = tempDir('snap');
  const dbs = new Map<string, Database.Database>();
  const rm = new Map<SimPeer, ReliableDelivery>();
  const snap = new Map<SimPeer, Snapshot>();
  const balance = (p: SimPeer) =>
    (dbs.get(p.name)!.prepare('SELECT v FROM bal WHERE k = 1').get() as { v: number }).v;
  const add = (p: SimPeer, delta: number) =>
    dbs.get(p.name)!.prepare('UPDATE bal SET v = v + ? WHERE k = 1').run(delta);
  const c = new SimCluster(seed, faults, PROFILES.lan, (node, peer) => {
    // A (re)boot reopens the peer's file: its balance is whatever the file holds.
    const db = new Database(path.join(dir, `${peer.name}.db`));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL'); // survives a process crash, which is all the simulation models
    db.exec('CREATE TABLE IF NOT EXISTS bal (k INTEGER PRIMARY KEY CHECK (k = 1), v INTEGER NOT NULL)');
    db.prepare('INSERT OR IGNORE INTO bal (k, v) VALUES (1, ?)').run(START_BALANCE);
    dbs.set(peer.name, db);
    const r = node.install((ctx, nd) => new ReliableDelivery(ctx, nd.membership));
    r.on('bank', (d) => {
      const [to, amount] = d.payload.split(':');
      if (to === peer.node.id) add(peer, Number(amount));
    });
    rm.set(peer, r);
    snap.set(
      peer,
      node.install(
        (ctx, nd) =>
          new Snapshot(ctx, nd.membership, {
            record: () => ({ balance: balance(peer) }),
            reliable: r,
            topics: ['bank'],
          }),
      ),
    );
  });
  for (let i = 0; i < PEERS; i++) await c.add(`p${i}`);
  return {
    c,
    dbs,
    rm,
    snap,
    balance,
    transfer(from, to, amount) {
      add(from, -amount);
      rm.get(from)!.publish('bank', `${to.node.id}:${amount}`);
    },
  };
}

/** Live bank members (not the collector, which only observes). */
const members = (b: Bank) => b.c.live().filter((p) => p.name !== 'collector');

/** Random transfers among live peers for `ms` of virtual time. */
function trade(b: Bank, ms: number): void {
  const end = b.c.rt.now() + ms;
  while (b.c.rt.now() < end) {
    const live = members(b);
    const from = live[Math.floor(b.c.rt.random() * live.length)]!;
    const others = live.filter((p) => p !== from);
    const to = others[Math.floor(b.c.rt.random() * others.length)]!;
    b.transfer(from, to, 1 + Math.floor(b.c.rt.random() * 20));
    b.c.rt.runFor(0.5 + b.c.rt.random() * 3);
  }
}

/** Money in a consistent cut: recorded balances plus in-flight transfers to their recorder. */
function audit(
  b: Bank,
  id: string,
): { total: number; inFlight: number; complete: boolean; duplicates: number } {
  let total = 0;
  let inFlight = 0;
  let duplicates = 0;
  let complete = true;
  for (const p of members(b)) {
    const local = b.snap.get(p)!.core.local(id, p.name);
    expect(local, `${p.name} recorded snapshot ${id}`).not.toBeNull();
    complete &&= local!.complete;
    total += (local!.state as { balance: number }).balance;
    const seen = new Set<string>();
    for (const list of Object.values(local!.channels))
      for (const m of list) {
        if (seen.has(m.id)) duplicates++;
        seen.add(m.id);
        const [to, amount] = m.payload.split(':');
        if (to === p.node.id) {
          total += Number(amount);
          inFlight++;
        }
      }
  }
  return { total, inFlight, complete, duplicates };
}

describe('Chandy–Lamport snapshot (simulation)', () => {
  it.each(SEEDS)(
    'recorded states plus in-flight transfers account for every unit exactly once, under loss/dup/reorder, seed %i',
    async (seed) => {
      const b = await bank(seed, { loss: 0.05, duplicate: 0.05, delayMinMs: 0.1, delayMaxMs: 6 });
      expect(b.c.rt.runUntilTrue(() => b.c.converged(), 5_000)).toBe(true);
      trade(b, 300);
      const initiator = b.c.peers[seed % PEERS]!;
      b.snap.get(initiator)!.core.begin(
        's1',
        initiator.node.membership.live().map((m) => m.id),
        b.c.rt.now(),
      );
      trade(b, 300);
      b.c.rt.runFor(1000);
      const a = audit(b, 's1');
      expect(a.complete).toBe(true);
      expect(a.duplicates).toBe(0);
      expect(a.total).toBe(PEERS * START_BALANCE);
      // After the dust settles the live balances add up too (the test's own sanity).
      expect(b.c.live().reduce((s, p) => s + b.balance(p), 0)).toBe(PEERS * START_BALANCE);
      expect(b.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 6))(
    'a peer crashed and restarted with only its SQLite file takes part in a consistent snapshot, seed %i',
    async (seed) => {
      const b = await bank(seed, { loss: 0.03, delayMinMs: 0.1, delayMaxMs: 4 });
      expect(b.c.rt.runUntilTrue(() => b.c.converged(), 5_000)).toBe(true);
      trade(b, 300);
      b.c.rt.runFor(1000); // every transfer delivered: nothing in flight to the victim
      const victim = b.c.peers[1 + (seed % (PEERS - 1))]!;
      const kept = b.balance(victim);
      await b.c.crash(victim);
      b.dbs.get(victim.name)!.close(); // the process is gone; the file stays
      b.c.rt.runFor(3000);
      await b.c.restart(victim);
      expect(b.balance(victim)).toBe(kept);
      expect(b.c.rt.runUntilTrue(() => b.c.converged(), 10_000)).toBe(true);
      trade(b, 200);
      const initiator = b.c.peers[0]!;
      b.snap.get(initiator)!.core.begin(
        's2',
        initiator.node.membership.live().map((m) => m.id),
        b.c.rt.now(),
      );
      trade(b, 300);
      b.c.rt.runFor(1000);
      const a = audit(b, 's2');
      expect(a.complete).toBe(true);
      expect(a.total).toBe(PEERS * START_BALANCE);
      expect(b.c.handlerErrors()).toEqual([]);
    },
  );

  it('a peer that crashes mid-snapshot leaves its channels open: reported incomplete, never silently complete', async () => {
    const b = await bank(7, {});
    expect(b.c.rt.runUntilTrue(() => b.c.converged(), 5_000)).toBe(true);
    const [p0, , , p3] = b.c.peers as [SimPeer, SimPeer, SimPeer, SimPeer];
    await b.c.crash(p3);
    // p0 records while it still counts p3 as live: p3 will never send its marker.
    b.snap.get(p0)!.core.begin('s3', [...p0.node.membership.live().map((m) => m.id)], b.c.rt.now());
    b.c.rt.runFor(SNAPSHOT_CHANNEL_TIMEOUT_MS);
    const local = b.snap.get(p0)!.core.local('s3', 'p0')!;
    expect(local.complete).toBe(false);
    expect(local.open).toEqual([p3.node.id]);
  });

  it("a collector (observer) gathers every live peer's report over the wire", async () => {
    const b = await bank(3, { loss: 0.05, delayMinMs: 0.1, delayMaxMs: 4 });
    const collector = await b.c.add('collector', { observer: true });
    expect(
      b.c.rt.runUntilTrue(
        () => b.c.peers.slice(0, PEERS).every((p) => p.node.membership.live().length === PEERS - 1),
        5_000,
      ),
    ).toBe(true);
    expect(b.c.rt.runUntilTrue(() => collector.node.membership.live().length === PEERS, 5_000)).toBe(true);
    trade(b, 200);
    const s = b.snap.get(collector)!;
    s.request('wire-1');
    trade(b, 300);
    expect(b.c.rt.runUntilTrue(() => s.collected(), 10_000)).toBe(true);
    const g = s.result()!;
    expect(g.missing).toEqual([]);
    expect(g.complete).toBe(true);
    expect(g.peers.map((p) => p.name)).toEqual(['p0', 'p1', 'p2', 'p3']);
    const total = g.peers.reduce((t, p) => t + (p.state as { balance: number }).balance, 0);
    // Amounts in flight are in the peers' cores; the reports carry exact counts of the same.
    const a = audit(
      { ...b, c: { ...b.c, live: () => b.c.peers.slice(0, PEERS) } as unknown as SimCluster },
      'wire-1',
    );
    expect(g.inFlight).toBe(
      b.c.peers.slice(0, PEERS).reduce((t, p) => {
        const l = b.snap.get(p)!.core.local('wire-1', p.name)!;
        return t + Object.values(l.channels).reduce((u, ch) => u + ch.length, 0);
      }, 0),
    );
    expect(a.total).toBe(PEERS * START_BALANCE);
    // The reports' recorded balances are the cores' recorded balances.
    expect(total).toBe(
      members(b).reduce(
        (t, p) => t + (b.snap.get(p)!.core.local('wire-1', p.name)!.state as { balance: number }).balance,
        0,
      ),
    );
  });

  it('without a reliable stream: plain markers, multi-datagram reports with multi-byte text reassembled exactly', async () => {
    const big = { text: 'é€𝄞'.repeat(700), n: 42 };
    const snaps = new Map<SimPeer, Snapshot>();
    const c = new SimCluster(
      11,
      { loss: 0.1, duplicate: 0.1, delayMinMs: 0.1, delayMaxMs: 5 },
      PROFILES.lan,
      (node, peer) => {
        snaps.set(
          peer,
          node.install(
            (ctx, n) => new Snapshot(ctx, n.membership, { record: () => ({ who: peer.name, ...big }) }),
          ),
        );
      },
    );
    for (let i = 0; i < 3; i++) await c.add(`q${i}`);
    const collector = await c.add('collector', { observer: true });
    expect(c.rt.runUntilTrue(() => collector.node.membership.live().length === 3, 5_000)).toBe(true);
    const s = snaps.get(collector)!;
    s.request('plain-1');
    expect(c.rt.runUntilTrue(() => s.collected() && s.result()!.complete, 10_000)).toBe(true);
    const g = s.result()!;
    expect(g.peers.map((p) => p.state)).toEqual(['q0', 'q1', 'q2'].map((who) => ({ who, ...big })));
    expect(g.inFlight).toBe(0);
    expect(c.peers.reduce((t, p) => t + snaps.get(p)!.stats.badReports, 0)).toBe(0);
    expect(c.handlerErrors()).toEqual([]);
  });
});

describe('snapshot requests from many addresses', () => {
  it('one snapshot is reported to at most SNAPSHOT_REQUESTERS_MAX addresses', async () => {
    const b = await bank(3);
    b.c.rt.runFor(1_000);
    const target = b.c.peers[0]!;
    const got = new Set<string>();
    for (let i = 0; i < 3 * SNAPSHOT_REQUESTERS_MAX; i++) {
      const r = await rogue(b.c.net, `e00000000000000${i.toString(16)}`);
      r.onHeard = (h) => {
        if (h.t === 'sn.rep') got.add(r.address);
      };
      // Asked twice: once to start, once more after the report, as a collector whose report was lost.
      r.send(target.address, 'sn.go', { id: 'one-snapshot' });
      b.c.rt.schedule(SNAPSHOT_CHANNEL_TIMEOUT_MS * 2, () =>
        r.send(target.address, 'sn.go', { id: 'one-snapshot' }),
      );
    }
    b.c.rt.runFor(SNAPSHOT_CHANNEL_TIMEOUT_MS * 3);
    expect(got.size).toBe(SNAPSHOT_REQUESTERS_MAX);
  });
});

describe('snapshot reports are checked like any datagram', () => {
  it('a report of the wrong shape (open not a list, a count not a number) is refused and counted, never shown', async () => {
    const snaps = new Map<string, Snapshot>();
    const c = new SimCluster(1, {}, PROFILES.lan, (node, peer) => {
      snaps.set(
        peer.name,
        node.install((ctx, n) => new Snapshot(ctx, n.membership, { record: () => null })),
      );
    });
    const a = await c.add('a');
    await c.add('b');
    c.rt.runFor(1000);
    const r = await rogue(c.net, 'e000000000000001');
    const forged = (report: object) => {
      const d = Buffer.from(JSON.stringify(report)).toString('base64');
      r.send(a.address, 'sn.rep', { id: 'forged-shape', k: 0, n: 1, d });
    };
    snaps.get('a')!.request('forged-shape');
    const base = { id: 'forged-shape', peer: r.id, name: 'rogue', state: null, lamport: 1, complete: false };
    forged({ ...base, open: 5, channels: {} });
    c.rt.runFor(10);
    forged({ ...base, open: [], channels: { [a.node.id]: { count: 'many', ids: [] } } });
    // Delivered before the collection can end: b answers within a few ms now (deadline ticks).
    c.rt.runFor(10);
    expect(c.rt.runUntilTrue(() => snaps.get('a')!.collected(), 5000)).toBe(true);
    const result = snaps.get('a')!.result()!;
    expect(result.peers.map((p) => p.name).sort()).toEqual(['b']);
    expect(snaps.get('a')!.stats.badReports).toBe(2);
  });
});
