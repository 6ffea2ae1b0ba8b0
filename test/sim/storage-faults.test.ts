/**
 * Storage faults in the simulation tier, injected from the seed (test/support/sim-disk.ts): a full
 * disk, EIO and torn writes on replica holders and kv holders. Over many seeds:
 *   - every write a holder acknowledged is in what it stored (its file, its kv_log), while the
 *     fault lasts, after a crash and restart, and after the fault clears;
 *   - what a holder holds in memory (what its digest advertises) is never more than it stored;
 *   - a write meeting the fault gets a clear refusal (rp.nak: full or io), not silence;
 *   - once the fault clears, new writes are acknowledged by every holder without a restart.
 */
import { describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { MemoryReplica } from '../support/memory-replica.js';
import {
  Replication,
  envelopeOverhead,
  entryId,
  parseReplica,
  type Entry,
} from '../../src/p2p/replication/index.js';
import { SimDisk } from '../support/sim-disk.js';
import { KeyValue } from '../../src/p2p/kv/index.js';
import { KvStore } from '../../src/storage/kv.js';
import type { PeerNode } from '../../src/p2p/node.js';

const SEEDS = Array.from({ length: Number(process.env.DISK_SEEDS ?? 24) }, (_, i) => i + 1);
const LINKS = { loss: 0.05, duplicate: 0.03, delayMinMs: 0.1, delayMaxMs: 15 };
const MODES = ['full', 'eio', 'torn'] as const;
type Mode = (typeof MODES)[number];

/** Starts a fault on a disk: room for a few lines only, failing writes, or torn writes. */
function inject(disk: SimDisk, mode: Mode, random: () => number): void {
  if (mode === 'full') disk.fill(Math.floor(random() * 300));
  else if (mode === 'eio') disk.flaky(0.6, 0);
  else disk.flaky(0, 0.6);
}

/** Acks a peer received, as `holder id -> entry ids`. */
function acksOf(p: SimPeer, kind: 'replica-ack' | 'kv-ack'): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const e of p.events)
    if (e.kind === kind) {
      if (!out.has(e.holder)) out.set(e.holder, new Set());
      out.get(e.holder)!.add(e.id);
    }
  return out;
}

function refusalsOf(
  p: SimPeer,
  kind: 'replica-refused' | 'kv-refused',
): Array<{ holder: string; reason: string }> {
  return p.events.flatMap((e) => (e.kind === kind ? [{ holder: e.holder, reason: e.reason }] : []));
}

class ReplicaFaultCluster {
  readonly c: SimCluster;
  readonly files = new Map<string, MemoryReplica>();
  readonly disks = new Map<string, SimDisk>();
  readonly rps = new Map<string, Replication>();
  /** Lines found torn (rejected) by restarts. */
  tornFound = 0;

  constructor(seed: number) {
    this.c = new SimCluster(seed, LINKS, undefined, (node: PeerNode, peer: SimPeer) => {
      let sink: MemoryReplica | undefined;
      if (peer.name.startsWith('h')) {
        let disk = this.disks.get(peer.name);
        if (!disk) this.disks.set(peer.name, (disk = new SimDisk(this.c.rt.random)));
        const before = this.files.get(peer.name);
        // A restart reads the file back with the file's own parser: torn lines are rejected.
        sink = before ? MemoryReplica.reopen(before.content(), disk) : new MemoryReplica([], disk);
        this.tornFound += sink.rejected;
        this.files.set(peer.name, sink);
      }
      this.rps.set(
        peer.name,
        node.install(
          (ctx, n) =>
            new Replication(ctx, n.membership, { sink, envelopeBytes: envelopeOverhead(peer.name) }),
        ),
      );
    });
  }

  get rt() {
    return this.c.rt;
  }

  holders(): SimPeer[] {
    return this.c.peers.filter((p) => p.name.startsWith('h'));
  }

  /** Entry ids in a holder's file, whole lines only (what a restart would read back). */
  stored(h: SimPeer): Set<string> {
    return new Set(parseReplica(this.files.get(h.name)!.content()).set.entries.map(entryId));
  }

  /** Acked ⊆ stored on every holder, and held in memory ⊆ stored. */
  check(app: SimPeer, when: string): void {
    const acks = acksOf(app, 'replica-ack');
    for (const h of this.holders()) {
      const stored = this.stored(h);
      for (const id of acks.get(h.node.id) ?? [])
        expect(stored.has(id), `${when}: ${h.name} acknowledged ${id} but its file lacks it`).toBe(true);
      if (!h.up) continue;
      for (const e of this.files.get(h.name)!.set.entries)
        expect(stored.has(entryId(e)), `${when}: ${h.name} holds ${entryId(e)} it never stored`).toBe(true);
    }
  }
}

describe('replication on failing disks (simulation)', () => {
  it.each(SEEDS)(
    'acked appends are in the acking holder file through a full disk, EIO or torn writes, a crash, and after; seed %i',
    async (seed) => {
      const mode = MODES[seed % MODES.length]!;
      const rc = new ReplicaFaultCluster(seed);
      for (let i = 0; i < 3; i++) await rc.c.add(`h${i}`);
      const app = await rc.c.add('app', { observer: true });
      const rp = () => rc.rps.get('app')!;
      rc.rt.runFor(600);
      const [h0, h1] = rc.holders() as [SimPeer, SimPeer];
      const written: Entry[] = [];
      const write = (text: string) => {
        written.push(rp().append(text));
        rc.rt.runFor(rc.rt.random() * 40);
      };
      for (let i = 0; i < 5; i++) write(`before ${i}`);

      // The fault: on two of the three holders; h2's disk stays healthy.
      inject(rc.disks.get('h0')!, mode, rc.rt.random);
      inject(rc.disks.get('h1')!, mode, rc.rt.random);
      for (let i = 0; i < 30; i++) {
        if (i === 15) {
          await rc.c.crash(h1);
          rc.check(app, 'after the crash');
          await rc.c.restart(h1);
        }
        write(`during ${i} ${'x'.repeat(Math.floor(rc.rt.random() * 40))}`);
      }
      rc.rt.runFor(2_000);
      rc.check(app, 'during the fault');
      // Writes met the fault and were refused in words, by the faulty holders only.
      const refused = refusalsOf(app, 'replica-refused');
      expect(refused.length, 'no refusal heard during the fault').toBeGreaterThan(0);
      for (const r of refused) expect([h0.node.id, h1.node.id]).toContain(r.holder);
      expect(new Set(refused.map((r) => r.reason))).toEqual(new Set([mode === 'full' ? 'full' : 'io']));
      expect(rc.files.get('h2')!.set.size).toBe(written.length);

      // The fault clears: new appends are acknowledged by every holder, without a restart.
      for (const d of rc.disks.values()) d.clear();
      const after: Entry[] = [];
      for (let i = 0; i < 5; i++) {
        const e = rp().append(`after ${i}`);
        after.push(e);
        written.push(e);
        const id = entryId(e);
        expect(
          rc.rt.runUntilTrue(() => rp().appendStatus(id)!.acked.length === 3, 5_000),
          `${id} not acknowledged by all three once the disks recovered`,
        ).toBe(true);
      }
      // Anti-entropy fills in what the faulty holders refused.
      expect(
        rc.rt.runUntilTrue(
          () => rc.holders().every((h) => rc.files.get(h.name)!.set.size === written.length),
          30_000,
        ),
      ).toBe(true);
      rc.check(app, 'after the fault');

      // And everything acknowledged survives a crash of every holder.
      for (const h of rc.holders()) await rc.c.crash(h);
      for (const h of rc.holders()) await rc.c.restart(h);
      rc.check(app, 'after crashing every holder');
      for (const h of rc.holders()) expect(rc.stored(h).size).toBe(written.length);
      if (mode === 'torn')
        expect(rc.disks.get('h0')!.failures.torn + rc.disks.get('h1')!.failures.torn).toBeGreaterThan(0);
      expect(rc.c.handlerErrors()).toEqual([]);
    },
  );

  it('a torn append is cut off before the next one, and a restart rejects a torn line it finds', () => {
    let r = 0.99;
    const disk = new SimDisk(() => r);
    const f = new MemoryReplica([], disk);
    const e = (seq: number, text: string): Entry => ({ origin: 'a'.repeat(16), seq, lamport: seq, text });
    expect(f.apply([e(1, 'one')]).failure).toBeUndefined();
    disk.flaky(0, 1);
    r = 0.5; // tears the write half-way
    const torn = f.apply([e(2, 'two')]);
    expect(torn.failure?.kind).toBe('io');
    expect(f.set.has(e(2, 'two'))).toBe(false);
    expect(f.tail.length).toBeGreaterThan(0);
    // Found by a restart: rejected, not held.
    const reopened = MemoryReplica.reopen(f.content(), disk);
    expect(reopened.rejected).toBe(1);
    expect(reopened.set.entries.map((x) => x.text)).toEqual(['one']);
    // Or cut off by the next append, which then reads back whole.
    disk.clear();
    expect(f.apply([e(3, 'three')]).added).toHaveLength(1);
    expect(parseReplica(f.content()).rejected).toEqual([]);
    expect(parseReplica(f.content()).set.entries.map((x) => x.text)).toEqual(['one', 'three']);
  });
});

class KvFaultCluster {
  readonly c: SimCluster;
  readonly dbs = new Map<string, Database.Database>();
  readonly stores = new Map<string, KvStore>();
  readonly disks = new Map<string, SimDisk>();
  readonly kvs = new Map<string, KeyValue>();

  constructor(seed: number) {
    this.c = new SimCluster(seed, LINKS, undefined, (node: PeerNode, peer: SimPeer) => {
      let store: KvStore | undefined;
      if (peer.name.startsWith('h')) {
        let db = this.dbs.get(peer.name);
        if (!db) this.dbs.set(peer.name, (db = new Database(':memory:')));
        let disk = this.disks.get(peer.name);
        if (!disk) this.disks.set(peer.name, (disk = new SimDisk(this.c.rt.random)));
        const d = disk;
        // A failing disk fails the commit: SQLite rolls the transaction back, as it does (at the
        // next open, from its journal) for a commit torn by a crash.
        store = KvStore.open(db, {
          beforeCommit: (bytes) => {
            const w = d.write(bytes);
            if (w.error) throw w.error;
          },
        });
        this.stores.set(peer.name, store);
      }
      this.kvs.set(
        peer.name,
        node.install(
          (ctx, n) => new KeyValue(ctx, n.membership, { store, envelopeBytes: envelopeOverhead(peer.name) }),
        ),
      );
    });
  }

  get rt() {
    return this.c.rt;
  }

  holders(): SimPeer[] {
    return this.c.peers.filter((p) => p.name.startsWith('h'));
  }

  stored(h: SimPeer): Set<string> {
    const rows = this.dbs.get(h.name)!.prepare('SELECT origin, seq FROM kv_log').all() as Array<{
      origin: string;
      seq: number;
    }>;
    return new Set(rows.map(entryId));
  }

  check(client: SimPeer, when: string): void {
    const acks = acksOf(client, 'kv-ack');
    for (const h of this.holders()) {
      const stored = this.stored(h);
      for (const id of acks.get(h.node.id) ?? [])
        expect(stored.has(id), `${when}: ${h.name} acknowledged ${id} but its kv_log lacks it`).toBe(true);
      if (!h.up) continue;
      for (const e of this.stores.get(h.name)!.set.entries)
        expect(stored.has(entryId(e)), `${when}: ${h.name} holds ${entryId(e)} it never stored`).toBe(true);
    }
  }
}

describe('kv on failing disks (simulation)', () => {
  it.each(SEEDS)(
    'acked writes are in the acking holder kv_log through a full disk, EIO or torn commits, a crash, and after; seed %i',
    async (seed) => {
      const mode = MODES[seed % MODES.length]!;
      const kc = new KvFaultCluster(seed);
      for (let i = 0; i < 3; i++) await kc.c.add(`h${i}`);
      const client = await kc.c.add('c', { observer: true });
      const kv = () => kc.kvs.get('c')!;
      kc.rt.runFor(600);
      const [h0, h1] = kc.holders() as [SimPeer, SimPeer];
      const written: Entry[] = [];
      const write = (i: number) => {
        written.push(kv().write({ kind: 'put', key: `k${i % 7}`, value: `v${i}` }));
        kc.rt.runFor(kc.rt.random() * 40);
      };
      for (let i = 0; i < 5; i++) write(i);
      inject(kc.disks.get('h0')!, mode, kc.rt.random);
      inject(kc.disks.get('h1')!, mode, kc.rt.random);
      for (let i = 5; i < 35; i++) {
        if (i === 20) {
          await kc.c.crash(h1);
          kc.check(client, 'after the crash');
          await kc.c.restart(h1);
        }
        write(i);
      }
      kc.rt.runFor(2_000);
      kc.check(client, 'during the fault');
      const refused = refusalsOf(client, 'kv-refused');
      expect(refused.length, 'no refusal heard during the fault').toBeGreaterThan(0);
      for (const r of refused) expect([h0.node.id, h1.node.id]).toContain(r.holder);
      expect(kc.stores.get('h2')!.set.size).toBe(written.length);

      for (const d of kc.disks.values()) d.clear();
      for (let i = 35; i < 40; i++) {
        const e = kv().write({ kind: 'put', key: `k${i % 7}`, value: `v${i}` });
        written.push(e);
        const id = entryId(e);
        expect(
          kc.rt.runUntilTrue(() => kv().writeStatus(id)!.acked.length === 3, 5_000),
          `${id} not acknowledged by all three once the disks recovered`,
        ).toBe(true);
      }
      expect(
        kc.rt.runUntilTrue(
          () => kc.holders().every((h) => kc.stores.get(h.name)!.set.size === written.length),
          30_000,
        ),
      ).toBe(true);
      kc.check(client, 'after the fault');
      for (const h of kc.holders()) await kc.c.crash(h);
      for (const h of kc.holders()) await kc.c.restart(h);
      kc.check(client, 'after crashing every holder');
      for (const h of kc.holders()) expect(kc.stored(h).size).toBe(written.length);
      expect(kc.c.handlerErrors()).toEqual([]);
    },
  );

  it('a real SQLITE_FULL (a page limit) leaves nothing held, and the same write succeeds once there is room', () => {
    const db = new Database(':memory:');
    const store = KvStore.open(db);
    const pages = db.pragma('page_count', { simple: true }) as number;
    db.pragma(`max_page_count = ${pages}`);
    const e = (seq: number): Entry => ({
      origin: 'b'.repeat(16),
      seq,
      lamport: seq,
      text: `P3:key${'v'.repeat(400)}${seq}`,
    });
    const failed: Entry[] = [];
    for (let seq = 1; seq <= 40 && failed.length === 0; seq++) {
      let r: ReturnType<KvStore['apply']> | undefined;
      try {
        r = store.apply([e(seq)]);
      } catch {
        // the code before the fix threw; either way the entry must not be held
      }
      if (!r || r.failure) failed.push(e(seq));
    }
    expect(failed).toHaveLength(1);
    const lost = failed[0]!;
    expect(store.set.has(lost), 'a write SQLite refused is held in memory').toBe(false);
    db.pragma('max_page_count = 1000000');
    expect(store.apply([lost]).added).toEqual([lost]);
    expect(store.get('key')?.value).toBe(lost.text.slice(6));
  });
});
