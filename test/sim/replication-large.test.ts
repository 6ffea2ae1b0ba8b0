/**
 * Entries and kv values too large for one datagram (src/p2p/replication/large.ts), in virtual
 * time: 1 MiB kv puts acknowledged by every holder under loss, anti-entropy moving hundreds of KiB
 * per entry with bounded memory, and forged oversize entries refused.
 */
import { describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import { ReliableDelivery } from '../../src/p2p/reliable/index.js';
import { KeyValue, type KvHolderStore } from '../../src/p2p/kv/index.js';
import {
  ENTRY_TEXT_BYTES_MAX,
  LARGE_QUEUED_BYTES_MAX,
  LARGE_TOPIC,
  Replication,
  encodeLarge,
  entryId,
  envelopeOverhead,
  formatLine,
  type Entry,
} from '../../src/p2p/replication/index.js';
import { KvStore } from '../../src/storage/kv.js';
import { MemoryReplica } from '../support/memory-replica.js';
import { SESSION_WINDOW_REQUESTS } from '../../src/p2p/replication/anti-entropy-initiator.js';
import type { PeerNode } from '../../src/p2p/node.js';

const SEEDS = Array.from({ length: Number(process.env.LARGE_SEEDS ?? 4) }, (_, i) => i + 1);
const LOSSY = { loss: 0.1, duplicate: 0.05, delayMinMs: 0.1, delayMaxMs: 20 };
const KIB = 1024;
/** What the issue promises: 1 MiB values (written out, not KV_VALUE_BYTES_MAX, which could shrink). */
const MIB = 1024 * KIB;

/** Text that differs by seed and index (printable ASCII), so a mixed-up reassembly cannot pass. */
function text(seed: number, i: number, bytes: number): string {
  const b = Buffer.allocUnsafe(bytes);
  let x = (seed * 7919 + i * 104729) >>> 0 || 1;
  for (let k = 0; k < bytes; k++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[k] = 0x21 + ((x >>> 0) % 94);
  }
  return b.toString('latin1');
}

/** A cluster whose peers all run reliable delivery; `setup` installs the protocol under test. */
function cluster<P>(
  seed: number,
  faults: object,
  setup: (node: PeerNode, peer: SimPeer, large: ReliableDelivery) => P,
): { c: SimCluster; of: Map<string, P>; rd: Map<string, ReliableDelivery> } {
  const of = new Map<string, P>();
  const rd = new Map<string, ReliableDelivery>();
  const c = new SimCluster(seed, faults, PROFILES.lan, (node, peer) => {
    const r = node.install((ctx, n) => new ReliableDelivery(ctx, n.membership));
    rd.set(peer.name, r);
    of.set(peer.name, setup(node, peer, r));
  });
  return { c, of, rd };
}

describe('large entries (simulation)', () => {
  it.each(SEEDS)(
    'kv: 1 MiB values put with --acks all are acknowledged by all 3 holders under loss, byte-identical, seed %i',
    async (seed) => {
      const stores = new Map<string, KvStore>();
      const { c, of } = cluster(seed, LOSSY, (node, peer, large) => {
        const store = peer.name.startsWith('h') ? KvStore.open(new Database(':memory:')) : undefined;
        if (store) stores.set(peer.name, store);
        return node.install(
          (ctx, n) =>
            new KeyValue(ctx, n.membership, { store, envelopeBytes: envelopeOverhead(peer.name), large }),
        );
      });
      for (let i = 0; i < 3; i++) await c.add(`h${i}`);
      // The client joins (large messages are taken only from members), as `peer kv put` does.
      const client = await c.add('client');
      c.rt.runFor(1_000);
      const kv = of.get('client')!;
      const values: string[] = [];
      for (let i = 0; i < 3; i++) {
        const value = text(seed, i, MIB);
        values.push(value);
        const e = kv.write({ kind: 'put', key: `k${i}`, value });
        const acked = c.rt.runUntilTrue(() => kv.writeStatus(entryId(e))!.acked.length === 3, 30_000);
        expect(acked, `put ${i} acked by ${kv.writeStatus(entryId(e))!.acked.length} of 3`).toBe(true);
        kv.settle(entryId(e));
      }
      for (const [name, store] of stores)
        for (let i = 0; i < 3; i++)
          expect(store.get(`k${i}`)?.value === values[i], `${name} k${i}`).toBe(true);
      // A read of a large value comes back whole from every holder.
      const q = kv.read('k1');
      expect(c.rt.runUntilTrue(() => kv.readStatus(q)!.answers.size === 3, 30_000)).toBe(true);
      expect(kv.readStatus(q)!.latest?.value === values[1]).toBe(true);
      expect(c.handlerErrors()).toEqual([]);
      expect(client.node.stats.handlerErrors).toBe(0);
    },
    120_000,
  );

  it.each(SEEDS)(
    'anti-entropy between two replicas differing by 20 entries of 300 KiB converges with bounded memory, seed %i',
    async (seed) => {
      const files = new Map<string, MemoryReplica>();
      const entries = (origin: string, from: number, n: number): string[] =>
        Array.from({ length: n }, (_, i): Entry => ({
          origin,
          seq: from + i,
          lamport: from + i,
          text: text(seed, from + i, 300 * KIB),
        })).map(formatLine);
      const { c, rd } = cluster(seed, LOSSY, (node, peer, large) => {
        // h0 holds 12 entries h1 lacks, h1 holds 8 h0 lacks: both fetches and pushes move.
        const lines =
          peer.name === 'h0' ? entries('00000000000000aa', 1, 12) : entries('00000000000000bb', 1, 8);
        const sink = new MemoryReplica(lines);
        files.set(peer.name, sink);
        return node.install(
          (ctx, n) =>
            new Replication(ctx, n.membership, { sink, envelopeBytes: envelopeOverhead(peer.name), large }),
        );
      });
      await c.add('h0');
      await c.add('h1');
      let queuedMax = 0;
      const converged = c.rt.runUntilTrue(() => {
        for (const r of rd.values()) queuedMax = Math.max(queuedMax, r.queuedBytes());
        const [a, b] = [files.get('h0')!.set, files.get('h1')!.set];
        return a.size === 20 && a.digest() === b.digest();
      }, 120_000);
      expect(converged, `h0 ${files.get('h0')!.set.size}, h1 ${files.get('h1')!.set.size} entries`).toBe(
        true,
      );
      expect(files.get('h0')!.lines.slice().sort()).toEqual(files.get('h1')!.lines.slice().sort());
      // What waits to go out stays within the responder's outbox bound plus the entry that crossed
      // it, plus the initiator's pushes, which go straight to reliable delivery, at most a request
      // window of them (seed 3 reached 4.8 MiB: the two sides' pushes and answers at once).
      expect(queuedMax).toBeLessThanOrEqual(
        LARGE_QUEUED_BYTES_MAX + (1 + SESSION_WINDOW_REQUESTS) * 310 * KIB,
      );
      expect(c.handlerErrors()).toEqual([]);
    },
    120_000,
  );

  it('a large append from a member is stored and acked; one over the entry limit, or from a non-holder path, is refused', async () => {
    const files = new Map<string, MemoryReplica>();
    const { c, of, rd } = cluster(3, {}, (node, peer, large) => {
      const sink = peer.name.startsWith('h') ? new MemoryReplica([]) : undefined;
      if (sink) files.set(peer.name, sink);
      return node.install(
        (ctx, n) =>
          new Replication(ctx, n.membership, { sink, envelopeBytes: envelopeOverhead(peer.name), large }),
      );
    });
    const h = await c.add('h0');
    const rogue = await c.add('rogue');
    c.rt.runFor(1_000);
    const lamport = () => rogue.node.lamport;
    const send = (t: string, seq: number) => {
      const entry = [rogue.node.id, seq, lamport(), t];
      rd.get('rogue')!.sendTo(h.node.id, LARGE_TOPIC, encodeLarge('rp.app', { e: entry }));
      c.rt.runFor(2_000);
    };
    // At the limit: stored (and acked, as any append).
    send('a'.repeat(ENTRY_TEXT_BYTES_MAX), 1);
    expect(files.get('h0')!.set.size).toBe(1);
    // One byte over (a two-byte character at the end): refused, nothing stored.
    send(`${'a'.repeat(ENTRY_TEXT_BYTES_MAX - 1)}é`, 2);
    // A body that is not an append at all, and one that is not JSON.
    rd.get('rogue')!.sendTo(h.node.id, LARGE_TOPIC, encodeLarge('rp.rnd', { r: 1 }).padEnd(2_000));
    rd.get('rogue')!.sendTo(h.node.id, LARGE_TOPIC, `[${'x'.repeat(2_000)}`);
    c.rt.runFor(2_000);
    expect(files.get('h0')!.set.size).toBe(1);
    expect(of.get('h0')!.rejected).toBe(3);
    expect(c.handlerErrors()).toEqual([]);
  });
  it("a holder answering a read with a value over 1 MiB in UTF-8 bytes (within the schema's characters) is refused", async () => {
    const { c, of } = cluster(5, {}, (node, peer, large) => {
      let store: KvHolderStore | undefined;
      if (peer.name.startsWith('h')) {
        const real = KvStore.open(new Database(':memory:'));
        // The rogue holder answers every read with 1 Mi three-byte characters: 3 MiB.
        const forged = { key: 'k', value: '€'.repeat(MIB), lamport: 1, origin: '00000000000000aa', seq: 1 };
        store =
          peer.name === 'h-rogue'
            ? {
                set: real.set,
                apply: (e) => real.apply(e),
                flush: () => real.flush(),
                rewriteCanonical: () => real.rewriteCanonical(),
                get: () => forged,
                scan: (after, limit) => real.scan(after, limit),
              }
            : real;
      }
      return node.install(
        (ctx, n) =>
          new KeyValue(ctx, n.membership, { store, envelopeBytes: envelopeOverhead(peer.name), large }),
      );
    });
    await c.add('h0');
    await c.add('h-rogue');
    await c.add('client');
    c.rt.runFor(1_000);
    const kv = of.get('client')!;
    const e = kv.write({ kind: 'put', key: 'k', value: 'v' });
    expect(c.rt.runUntilTrue(() => kv.writeStatus(entryId(e))!.acked.length === 2, 10_000)).toBe(true);
    const q = kv.read('k');
    c.rt.runFor(3_000);
    const st = kv.readStatus(q)!;
    expect([...st.answers.keys()]).toEqual([c.peers.find((p) => p.name === 'h0')!.node.id]);
    expect(st.latest?.value).toBe('v');
    expect(kv.rejected).toBeGreaterThan(0);
    expect(c.handlerErrors()).toEqual([]);
  });
});
