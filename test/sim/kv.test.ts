import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import Database from 'better-sqlite3';
import { NO_DROPS, SimCluster, type SimPeer } from '../support/cluster.js';
import {
  KeyValue,
  KV_TAG,
  KV_KEY_BYTES_MAX,
  KV_VALUE_BYTES_MAX,
  decodeOp,
  encodeOp,
  foldLww,
  opProblem,
  type KvOp,
  type KvVersion,
} from '../../src/p2p/kv/index.js';
import {
  appendFits,
  entryProblem,
  envelopeOverhead,
  acksSatisfied,
  type Entry,
} from '../../src/p2p/replication/index.js';
import { DATAGRAM_PAYLOAD_BYTES_MAX } from '../../src/p2p/wire.js';
import { KvStore, KvStoreError } from '../../src/storage/kv.js';
import type { PeerNode } from '../../src/p2p/node.js';
import { rogue } from '../support/rogue.js';
import { COUNTER_MAX } from '../../src/p2p/bounds.js';

// KV_SEEDS=500 for a soak; KV_SEED_FROM to replay a range.
const SEEDS = Array.from(
  { length: Number(process.env.KV_SEEDS ?? 30) },
  (_, i) => i + Number(process.env.KV_SEED_FROM ?? 1),
);
const LOSSY = { loss: 0.1, duplicate: 0.05, delayMinMs: 0.1, delayMaxMs: 20 };
const KEYS = ['a', 'b', 'c', 'dé', '😀'];

/**
 * Holders (names h*) keep a KvStore on an in-memory SQLite database that outlives a crash, as the
 * file does: a restarted holder reopens the same tables and reloads its log. Others are clients.
 */
class KvCluster {
  readonly c: SimCluster;
  readonly dbs = new Map<string, Database.Database>();
  readonly stores = new Map<string, KvStore>();
  readonly kvs = new Map<string, KeyValue>();

  constructor(seed: number, faults = {}) {
    this.c = new SimCluster(seed, faults, undefined, (node: PeerNode, peer: SimPeer) => {
      let store: KvStore | undefined;
      if (peer.name.startsWith('h')) {
        let db = this.dbs.get(peer.name);
        if (!db) this.dbs.set(peer.name, (db = new Database(':memory:')));
        store = KvStore.open(db);
        this.stores.set(peer.name, store);
      }
      const kv = node.install(
        (ctx, n) => new KeyValue(ctx, n.membership, { store, envelopeBytes: envelopeOverhead(peer.name) }),
      );
      this.kvs.set(peer.name, kv);
    });
  }

  get rt() {
    return this.c.rt;
  }

  kv(p: SimPeer): KeyValue {
    return this.kvs.get(p.name)!;
  }

  store(p: SimPeer): KvStore {
    return this.stores.get(p.name)!;
  }

  holders(): SimPeer[] {
    return this.c.peers.filter((p) => p.name.startsWith('h'));
  }

  /** Every holder is up and holds exactly `n` operations with one digest. */
  converged(n: number): boolean {
    const hs = this.holders();
    return (
      hs.every((h) => h.up && this.store(h).set.size === n) &&
      new Set(hs.map((h) => this.store(h).set.digest())).size === 1
    );
  }
}

function sorted(vs: Iterable<KvVersion>): KvVersion[] {
  return [...vs].map((v) => ({ ...v })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

function randomOp(rnd: () => number, i: number): KvOp {
  const key = KEYS[Math.floor(rnd() * KEYS.length)]!;
  if (rnd() < 0.25) return { kind: 'delete', key };
  const pool = ['x', ' ', '\t', '"', '\\', 'é', '😀', '\n'];
  let value = `v${i}`;
  for (let k = Math.floor(rnd() * 6); k > 0; k--) value += pool[Math.floor(rnd() * pool.length)];
  return { kind: 'put', key, value };
}

describe('kv (simulation)', () => {
  it.each(SEEDS)(
    'concurrent conflicting writes under loss, a partition and a holder crash converge to LWW on every holder, seed %i',
    async (seed) => {
      const kc = new KvCluster(seed, LOSSY);
      const hs: SimPeer[] = [];
      for (let i = 0; i < 3; i++) hs.push(await kc.c.add(`h${i}`));
      const clients: SimPeer[] = [];
      for (let i = 0; i < 3; i++) clients.push(await kc.c.add(`c${i}`, { observer: true }));
      kc.rt.runFor(600);
      const written: Entry[] = [];
      const N = 60;
      for (let i = 0; i < N; i++) {
        if (i === 15)
          kc.c.net.partition(
            [hs[2]!.address],
            kc.c.peers.filter((p) => p !== hs[2]).map((p) => p.address),
          );
        if (i === 25) await kc.c.crash(hs[1]!);
        if (i === 40) kc.c.heal();
        if (i === 45) await kc.c.restart(hs[1]!);
        // Writers: the clients, and the holders themselves (a partitioned one too).
        const writers = [...clients, ...hs].filter((p) => p.up);
        const w = writers[Math.floor(kc.rt.random() * writers.length)]!;
        written.push(kc.kv(w).write(randomOp(kc.rt.random, i)));
        kc.rt.runFor(kc.rt.random() * 30);
      }
      expect(kc.rt.runUntilTrue(() => kc.converged(N), 30_000)).toBe(true);
      const expected = sorted(foldLww(written).values());
      for (const h of hs) expect(sorted(kc.store(h).all()), h.name).toEqual(expected);

      // The read path agrees: a client asking every holder gets the fold's version of each key.
      const c = kc.kv(clients[0]!);
      const qs = KEYS.map((k) => c.read(k));
      expect(kc.rt.runUntilTrue(() => qs.every((q) => c.readStatus(q)!.answers.size === 3), 5_000)).toBe(
        true,
      );
      const fold = foldLww(written);
      // A dump pages through a holder's table over the same lossy links (small pages: 2 rows).
      const scan = c.scan({ id: hs[0]!.node.id, address: hs[0]!.address }, 2);
      expect(kc.rt.runUntilTrue(() => scan.done, 10_000)).toBe(true);
      expect(scan.failed).toBe('');
      expect(sorted(scan.rows)).toEqual(expected);
      KEYS.forEach((k, i) => {
        const st = c.readStatus(qs[i]!)!;
        expect(st.latest ?? undefined).toEqual(fold.get(k));
        for (const v of st.answers.values()) expect(v ?? undefined).toEqual(fold.get(k));
      });
      expect(kc.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 15))(
    'read-your-writes: a write acknowledged by all is what a majority read returns, under loss, seed %i',
    async (seed) => {
      const kc = new KvCluster(seed, LOSSY);
      for (let i = 0; i < 3; i++) await kc.c.add(`h${i}`);
      const a = await kc.c.add('ca', { observer: true });
      const b = await kc.c.add('cb', { observer: true });
      kc.rt.runFor(600);
      for (let i = 0; i < 10; i++) {
        const writer = kc.kv(i % 2 === 0 ? a : b);
        const reader = kc.kv(i % 2 === 0 ? b : a);
        const e = writer.write({ kind: 'put', key: 'k', value: `v${i}` });
        const id = `${e.origin}:${e.seq}`;
        const acked = () => {
          const st = writer.writeStatus(id)!;
          return acksSatisfied({ kind: 'all' }, st.acked.length, st.known);
        };
        expect(kc.rt.runUntilTrue(acked, 5_000)).toBe(true);
        writer.settle(id);
        const q = reader.read('k');
        expect(kc.rt.runUntilTrue(() => reader.readStatus(q)!.answers.size >= 2, 5_000)).toBe(true);
        expect(reader.readStatus(q)!.latest?.value).toBe(`v${i}`);
        reader.endRead(q);
      }
      expect(kc.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 15))(
    'a fresh client that listened to the holders writes after an acknowledged write and wins, under loss, seed %i',
    async (seed) => {
      const kc = new KvCluster(seed, LOSSY);
      for (let i = 0; i < 3; i++) await kc.c.add(`h${i}`);
      kc.rt.runFor(600);
      const writes: Entry[] = [];
      for (let i = 0; i < 6; i++) {
        // As a one-shot `kv put` does: a new peer, listening to the holders a moment, then writing.
        const c = await kc.c.add(`c${i}`, { observer: true });
        kc.rt.runFor(300);
        const e = kc.kv(c).write({ kind: 'put', key: 'k', value: `v${i}` });
        writes.push(e);
        const id = `${e.origin}:${e.seq}`;
        const acked = () => {
          const st = kc.kv(c).writeStatus(id)!;
          return acksSatisfied({ kind: 'all' }, st.acked.length, st.known);
        };
        expect(kc.rt.runUntilTrue(acked, 5_000)).toBe(true);
        if (i > 0) expect(e.lamport).toBeGreaterThan(writes[i - 1]!.lamport);
        await kc.c.leave(c);
      }
      for (const h of kc.holders()) expect(kc.store(h).get('k')?.value).toBe('v5');
    },
  );

  it('a read counts holders the answering holders know, so a majority does not shrink when holders die unseen', async () => {
    const kc = new KvCluster(11);
    const hs: SimPeer[] = [];
    for (let i = 0; i < 5; i++) hs.push(await kc.c.add(`h${i}`));
    kc.rt.runFor(600);
    await kc.c.crash(hs[3]!);
    await kc.c.crash(hs[4]!);
    kc.rt.runFor(3_000);
    // A client that starts now never hears h3 or h4; the answers say there are five holders.
    const c = await kc.c.add('late', { observer: true });
    kc.rt.runFor(300);
    expect(kc.kv(c).holders()).toHaveLength(3);
    const q = kc.kv(c).read('x');
    expect(kc.rt.runUntilTrue(() => kc.kv(c).readStatus(q)!.answers.size === 3, 2_000)).toBe(true);
    const st = kc.kv(c).readStatus(q)!;
    expect(st.known).toBe(5);
    expect(acksSatisfied({ kind: 'majority' }, 2, st.known)).toBe(false);
    expect(acksSatisfied({ kind: 'majority' }, st.answers.size, st.known)).toBe(true);
  });

  it('a holder with the longest name pages the largest rows to a client within one datagram each', async () => {
    const kc = new KvCluster(7);
    // The widest name in bytes: 64 UTF-16 units of three UTF-8 bytes each.
    const long = `h${'€'.repeat(63)}`;
    const h = await kc.c.add(long);
    const c = await kc.c.add('c', { observer: true });
    kc.rt.runFor(600);
    const key = (i: number) => `${String(i).padStart(2, '0')}${'😀'.repeat(31)}`;
    const written: Entry[] = [];
    for (let i = 0; i < 20; i++) {
      // The largest value whose op still fits one datagram of the holder's: quotes escape to two
      // bytes each.
      let value = '"'.repeat(DATAGRAM_PAYLOAD_BYTES_MAX);
      while (!appendFits(encodeOp({ kind: 'put', key: key(i), value }), envelopeOverhead(long)))
        value = value.slice(1);
      written.push(kc.kv(c).write({ kind: 'put', key: key(i), value }));
      kc.rt.runFor(20);
    }
    expect(kc.rt.runUntilTrue(() => kc.store(h).set.size === 20, 5_000)).toBe(true);
    const scan = kc.kv(c).scan({ id: h.node.id, address: h.address });
    expect(kc.rt.runUntilTrue(() => scan.done, 5_000)).toBe(true);
    expect(kc.c.handlerErrors()).toEqual([]);
    expect(scan.failed).toBe('');
    expect(sorted(scan.rows)).toEqual(sorted(foldLww(written).values()));
    expect(c.node.stats.dropped).toEqual(NO_DROPS);
    expect(kc.c.handlerErrors()).toEqual([]);
    // The holder advertised its digest under the kv tag, not replication's.
    expect(typeof h.node.membership.ownTags[KV_TAG]).toBe('string');
    expect(h.node.membership.ownTags.rp).toBeUndefined();
  });

  it('a crashed holder keeps its acknowledged writes and serves them after a restart', async () => {
    const kc = new KvCluster(3);
    const h = await kc.c.add('h0');
    const c = await kc.c.add('c', { observer: true });
    kc.rt.runFor(600);
    const e = kc.kv(c).write({ kind: 'put', key: 'x', value: '1' });
    expect(
      kc.rt.runUntilTrue(() => kc.kv(c).writeStatus(`${e.origin}:${e.seq}`)!.acked.length === 1, 2_000),
    ).toBe(true);
    await kc.c.crash(h);
    kc.rt.runFor(100);
    await kc.c.restart(h);
    kc.rt.runFor(600);
    expect(kc.store(h).get('x')?.value).toBe('1');
    const q = kc.kv(c).read('x');
    expect(kc.rt.runUntilTrue(() => kc.kv(c).readStatus(q)!.answers.size === 1, 2_000)).toBe(true);
    expect(kc.kv(c).readStatus(q)!.latest?.value).toBe('1');
  });

  it.each([1, 2, 3])(
    'a forged write stamped far ahead of the clocks is refused, and writes made after it win, seed %i',
    async (seed) => {
      const kc = new KvCluster(seed, { delayMaxMs: 2 });
      const hs: SimPeer[] = [];
      for (let i = 0; i < 3; i++) hs.push(await kc.c.add(`h${i}`));
      const c = await kc.c.add('c', { observer: true });
      kc.rt.runFor(600);
      const r = await rogue(kc.c.net);
      const forged = (lamport: number, origin = r.id, seq = 1): unknown[] => [
        origin,
        seq,
        lamport,
        encodeOp({ kind: 'put', key: 'a', value: `forged at ${lamport}` }),
      ];
      const ahead = Math.max(...hs.map((h) => h.node.lamport)) + 1_000;
      // Appended, and pushed as a repair; one also takes a holder's own id with the last seq.
      r.broadcast('kvr.app', { e: forged(Number.MAX_SAFE_INTEGER) });
      r.broadcast('kvr.app', { e: forged(ahead) });
      for (const h of hs) r.send(h.address, 'kvr.put', { q: 1, e: [forged(ahead, r.id, 2)] });
      r.broadcast('kvr.app', { e: forged(1, hs[0]!.node.id, Number.MAX_SAFE_INTEGER) });
      kc.rt.runFor(50);
      const w = kc.kv(c).write({ kind: 'put', key: 'a', value: 'real' });
      expect(
        kc.rt.runUntilTrue(() => kc.kv(c).writeStatus(`${w.origin}:${w.seq}`)!.acked.length === 3, 2_000),
      ).toBe(true);
      kc.rt.runFor(2_000);
      for (const h of hs) {
        expect(kc.store(h).get('a')?.value).toBe('real');
        expect(h.node.lamport).toBeLessThan(ahead);
        expect(h.node.stats.refused.lamport).toBe(3);
        expect(h.node.stats.refused.sequence).toBe(1);
      }
      // The holder whose id was borrowed still writes with its own next seq.
      const own = kc.kv(hs[0]!).write({ kind: 'put', key: 'b', value: 'mine' });
      expect(own.seq).toBeLessThan(10);
      expect(kc.c.handlerErrors()).toEqual([]);
    },
  );
});

describe('kv reads under forged answers (simulation)', () => {
  it.each([1, 2, 3])(
    'answers from a non-holder, or stamped ahead of the clock, do not count and do not win, seed %i',
    async (seed) => {
      const kc = new KvCluster(seed, { delayMaxMs: 2 });
      const hs: SimPeer[] = [];
      for (let i = 0; i < 3; i++) hs.push(await kc.c.add(`h${i}`));
      const c = await kc.c.add('c', { observer: true });
      kc.rt.runFor(600);
      const w = kc.kv(c).write({ kind: 'put', key: 'a', value: 'real' });
      expect(
        kc.rt.runUntilTrue(() => kc.kv(c).writeStatus(`${w.origin}:${w.seq}`)!.acked.length === 3, 2_000),
      ).toBe(true);
      const r = await rogue(kc.c.net);
      const h0 = hs[0]!.node.id;
      // After the real answers: one in a holder's name and from its address (spoofed, so that
      // membership takes it as the holder's word), stamped at the end of the range, and one from an
      // id no holder has, claiming the group has thousands of holders.
      r.onHeard = (h) => {
        if (h.t !== 'kv.read') return;
        kc.rt.schedule(5, () => {
          r.send(
            h.from,
            'kv.val',
            { q: h.b.q, w: ['a', 'forged', Number.MAX_SAFE_INTEGER, h0, 1], n: 3 },
            h0,
            hs[0]!.address,
          );
          r.send(h.from, 'kv.val', { q: h.b.q, w: ['a', 'forged', 1, r.id, 1], n: 4096 });
        });
      };
      const q = kc.kv(c).read('a');
      kc.rt.runFor(50);
      const st = kc.kv(c).readStatus(q)!;
      expect(st.latest?.value).toBe('real');
      expect(st.answers.size).toBe(3);
      expect(st.known).toBe(3);
      expect(c.node.stats.refused.lamport).toBe(1);
    },
  );
});

describe('kv write acks under forgery (simulation)', () => {
  it('an ack from an id that is no holder does not count', async () => {
    const kc = new KvCluster(4, { delayMaxMs: 2 });
    const h = await kc.c.add('h0');
    const c = await kc.c.add('c', { observer: true });
    kc.rt.runFor(600);
    const r = await rogue(kc.c.net);
    // Whoever hears the append multicast acks it at once, under its own made-up id.
    r.onHeard = (x) => {
      if (x.t !== 'kvr.app') return;
      const [o, s] = x.b.e as [string, number];
      r.send(x.from, 'kvr.ack', { o, s, k: [] });
    };
    const w = kc.kv(c).write({ kind: 'put', key: 'a', value: '1' });
    kc.rt.runFor(100);
    expect(kc.kv(c).writeStatus(`${w.origin}:${w.seq}`)!.acked).toEqual([h.node.id]);
  });
});

describe('kv operations and the conflict rule', () => {
  const keyArb = fc
    .string({ minLength: 1, maxLength: 20, unit: 'grapheme' })
    .filter((k) => opProblem({ kind: 'delete', key: k }) === null);
  const opArb: fc.Arbitrary<KvOp> = fc.oneof(
    fc.record({
      kind: fc.constant('put' as const),
      key: keyArb,
      value: fc.string({ maxLength: 40, unit: 'grapheme' }),
    }),
    fc.record({ kind: fc.constant('delete' as const), key: keyArb }),
  );

  it('every valid operation round-trips through its entry text', () => {
    fc.assert(
      fc.property(opArb, (op) => {
        expect(decodeOp(encodeOp(op))).toEqual(op);
      }),
    );
  });

  it('limits are enforced at their boundary, with one-line reasons', () => {
    const k = 'k'.repeat(KV_KEY_BYTES_MAX);
    expect(opProblem({ kind: 'delete', key: k })).toBeNull();
    expect(opProblem({ kind: 'delete', key: `${k}k` })).toMatch(/at most 1024 bytes \(1 KiB\)/);
    expect(opProblem({ kind: 'put', key: 'k', value: 'v'.repeat(KV_VALUE_BYTES_MAX) })).toBeNull();
    expect(opProblem({ kind: 'put', key: 'k', value: 'v'.repeat(KV_VALUE_BYTES_MAX + 1) })).toMatch(
      /at most 1048576 bytes \(1 MiB\)/,
    );
    // The longest key with the longest value, or a value that escapes to 6 bytes a character in
    // JSON, still makes one entry: limits are on the text, not on its escaped form.
    expect(opProblem({ kind: 'put', key: k, value: '\u0001'.repeat(KV_VALUE_BYTES_MAX) })).toBeNull();
    expect(
      entryProblem({
        origin: '0'.repeat(16),
        seq: 1,
        lamport: 0,
        text: encodeOp({ kind: 'put', key: k, value: 'v'.repeat(KV_VALUE_BYTES_MAX) }),
      }),
    ).toBeNull();
    expect(opProblem({ kind: 'put', key: '', value: 'v' })).toMatch(/empty/);
    expect(opProblem({ kind: 'put', key: 'a b', value: 'v' })).toMatch(/whitespace/);
    expect(opProblem({ kind: 'put', key: 'a', value: '\uD800' })).toMatch(/lone surrogate/);
    expect(decodeOp('P9:short')).toBeNull();
    expect(decodeOp('X')).toBeNull();
    expect(decodeOp('D')).toBeNull();
  });

  it('SQLite folds any order of the operations, with duplicates, into the same table as foldLww', () => {
    const entryArb = fc.record({
      origin: fc.constantFrom('00000000000000aa', '00000000000000bb', '00000000000000cc'),
      seq: fc.integer({ min: 1, max: 8 }),
      lamport: fc.integer({ min: 0, max: 6 }),
      op: fc.oneof(
        fc.record({
          kind: fc.constant('put' as const),
          key: fc.constantFrom('a', 'b'),
          value: fc.string({ maxLength: 3 }),
        }),
        fc.record({ kind: fc.constant('delete' as const), key: fc.constantFrom('a', 'b') }),
      ),
    });
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 30 }), fc.integer(), (raw, shuffleSeed) => {
        // One version per identity (replication's conflict rule for reused ids is tested apart).
        const byId = new Map<string, Entry>();
        for (const r of raw)
          byId.set(`${r.origin}:${r.seq}`, {
            origin: r.origin,
            seq: r.seq,
            lamport: r.lamport,
            text: encodeOp(r.op),
          });
        const entries = [...byId.values()];
        const shuffled = [...entries, ...entries.slice(0, 5)];
        let s = shuffleSeed >>> 0;
        for (let i = shuffled.length - 1; i > 0; i--) {
          s = (s * 1103515245 + 12345) >>> 0;
          const j = s % (i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
        }
        const store = KvStore.open(new Database(':memory:'));
        for (let i = 0; i < shuffled.length; i += 3) store.apply(shuffled.slice(i, i + 3));
        expect(sorted(store.all())).toEqual(sorted(foldLww(entries).values()));
      }),
      { numRuns: 200 },
    );
  });

  it('a saved Lamport time or seq past COUNTER_MAX is damage: the store refuses to open', () => {
    for (const [seq, lamport] of [
      [1, COUNTER_MAX + 1],
      [Number.MAX_SAFE_INTEGER, 1],
    ]) {
      const db = new Database(':memory:');
      KvStore.open(db).apply([
        {
          origin: 'a'.repeat(16),
          seq: seq!,
          lamport: lamport!,
          text: encodeOp({ kind: 'delete', key: 'k' }),
        },
      ]);
      expect(() => KvStore.open(db)).toThrow(KvStoreError);
      expect(() => KvStore.open(db)).toThrow(/damaged.*peer recover/);
    }
    const db = new Database(':memory:');
    KvStore.open(db).apply([
      {
        origin: 'a'.repeat(16),
        seq: COUNTER_MAX,
        lamport: COUNTER_MAX,
        text: encodeOp({ kind: 'delete', key: 'k' }),
      },
    ]);
    expect(KvStore.open(db).set.size).toBe(1);
  });

  it('a reused identity with a later version refolds the key it named', () => {
    const store = KvStore.open(new Database(':memory:'));
    const o = '00000000000000aa';
    store.apply([{ origin: o, seq: 1, lamport: 5, text: encodeOp({ kind: 'put', key: 'a', value: 'old' }) }]);
    store.apply([
      { origin: o, seq: 2, lamport: 3, text: encodeOp({ kind: 'put', key: 'a', value: 'older' }) },
    ]);
    // The preferred version of o:1 (later Lamport time) now names key b: a falls back to o:2.
    const r = store.apply([
      { origin: o, seq: 1, lamport: 9, text: encodeOp({ kind: 'put', key: 'b', value: 'new' }) },
    ]);
    expect(r.replaced).toHaveLength(1);
    expect(store.get('a')?.value).toBe('older');
    expect(store.get('b')?.value).toBe('new');
  });
});
