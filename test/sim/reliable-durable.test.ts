/**
 * Acks after durability (issue 8): a receiver whose topic handler returns the promise of its
 * durable write acks a message only once that write committed. Each receiver here has a simulated
 * group-commit store: writes queue and commit together after a delay in virtual time; a crash
 * drops what had not committed yet, as kill -9 does to an open batch. The invariant checked over
 * many seeds: every peer a sender counts as having acked a message holds it on its "disk", and
 * holds it once.
 */
import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import {
  ReliableDelivery,
  RELIABLE_UNICAST_TIMEOUT_MS,
  type AckStatus,
  type MessageId,
  type SendResult,
} from '../../src/p2p/reliable/index.js';

const SEEDS = Array.from({ length: 30 }, (_, i) => i + 1);
/** Virtual time advanced between two turns of the microtask queue (promise callbacks). */
const STEP_MS = 5;

/** A peer's simulated store: `disk` survives crashes, the open batch does not. */
interface DurableStore {
  disk: string[];
  /** The batch of the current life: dropped by a crash. */
  life: { alive: boolean; batch: Array<{ key: string; resolve: () => void }>; scheduled: boolean };
}

interface Harness {
  c: SimCluster;
  rm: Map<SimPeer, ReliableDelivery>;
  stores: Map<SimPeer, DurableStore>;
}

/**
 * Every peer runs ReliableDelivery; on topic 't' a receiver writes the message key to its store,
 * committed `commitMs(peer)` ms after the batch's first write. `defer` false: the handler returns
 * nothing (acked at delivery, the behaviour before issue 8), as the control case.
 */
async function harness(
  seed: number,
  n: number,
  commitMs: (p: SimPeer) => number,
  defer = true,
  faults = {},
): Promise<Harness> {
  const rm = new Map<SimPeer, ReliableDelivery>();
  const stores = new Map<SimPeer, DurableStore>();
  const c: SimCluster = new SimCluster(seed, faults, PROFILES.lan, (node, peer) => {
    const r = node.install((ctx, nd) => new ReliableDelivery(ctx, nd.membership));
    rm.set(peer, r);
    const store = stores.get(peer) ?? { disk: [], life: { alive: true, batch: [], scheduled: false } };
    const life = { alive: true, batch: [] as DurableStore['life']['batch'], scheduled: false };
    store.life = life;
    stores.set(peer, store);
    r.on('t', (d) => {
      const written = new Promise<void>((resolve) => life.batch.push({ key: d.key, resolve }));
      if (!life.scheduled) {
        life.scheduled = true;
        c.rt.schedule(commitMs(peer), () => {
          life.scheduled = false;
          if (!life.alive) return; // crashed before the commit: the batch is gone
          for (const w of life.batch.splice(0)) {
            store.disk.push(w.key);
            w.resolve();
          }
        });
      }
      return defer ? written : undefined;
    });
  });
  for (let i = 0; i < n; i++) await c.add(`p${i}`);
  return { c, rm, stores };
}

/** Runs virtual time, letting promise callbacks (resolved writes) run every STEP_MS. */
async function run(h: Harness, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += STEP_MS) {
    h.c.rt.runFor(Math.min(STEP_MS, ms - t));
    await new Promise((r) => setImmediate(r));
  }
}

async function runUntil(h: Harness, done: () => boolean, withinMs: number): Promise<boolean> {
  for (let t = 0; t < withinMs && !done(); t += STEP_MS) await run(h, STEP_MS);
  return done();
}

async function crash(h: Harness, p: SimPeer): Promise<void> {
  h.stores.get(p)!.life.alive = false;
  await h.c.crash(p);
}

const key = (id: MessageId) => `${id.origin}/${id.epoch}/${id.seq}`;

describe('reliable delivery: acks after durability (simulation)', () => {
  it('a receiver that crashes before its write commits is not counted as having acked', async () => {
    // p1 commits 300 ms after a write (a slow disk), p2 after 5 ms. p1 is killed at 150 ms.
    const h = await harness(7, 3, (p) => (p.name === 'p1' ? 300 : 5));
    const [p0, p1, p2] = h.c.peers as [SimPeer, SimPeer, SimPeer];
    expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
    let settled: AckStatus | null = null;
    const id = h.rm.get(p0)!.publish('t', 'hello', (s) => (settled = s));
    await run(h, 150);
    // Delivered to both; p2's write committed and it acked, p1's did not commit: not acked.
    const mid = h.rm.get(p0)!.ackStatus(id)!;
    expect(mid.acked).toEqual([p2.node.id]);
    expect(mid.pending).toEqual([p1.node.id]);
    await crash(h, p1);
    expect(await runUntil(h, () => settled !== null, 10_000)).toBe(true);
    const s = settled as unknown as AckStatus;
    expect(s.complete).toBe(false);
    expect(s.acked).toEqual([p2.node.id]);
    expect(s.gone).toEqual([p1.node.id]);
    expect(h.stores.get(p1)!.disk).toEqual([]); // and indeed it holds nothing
    expect(h.stores.get(p2)!.disk).toEqual([key(id)]);
    expect(h.rm.get(p2)!.stats.writesFailed).toBe(0);
    expect(h.c.handlerErrors()).toEqual([]);
  });

  it('control: acked at delivery (no promise), the same crash loses an acknowledged message', async () => {
    const h = await harness(7, 3, (p) => (p.name === 'p1' ? 300 : 5), false);
    const [p0, p1] = h.c.peers as [SimPeer, SimPeer, SimPeer];
    expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
    let settled: AckStatus | null = null;
    h.rm.get(p0)!.publish('t', 'hello', (s) => (settled = s));
    await run(h, 150);
    await crash(h, p1);
    expect(await runUntil(h, () => settled !== null, 10_000)).toBe(true);
    expect((settled as unknown as AckStatus).acked).toContain(p1.node.id);
    expect(h.stores.get(p1)!.disk).toEqual([]);
  });

  it.each(SEEDS)(
    'under loss and a random receiver crash, every peer counted as acked holds the message exactly once, seed %i',
    async (seed) => {
      const h = await harness(seed, 5, () => 1 + ((seed * 7) % 15), true, {
        loss: 0.1,
        duplicate: 0.05,
        delayMinMs: 0.1,
        delayMaxMs: 6,
      });
      expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
      const [sender, ...receivers] = h.c.peers as [SimPeer, ...SimPeer[]];
      const victim = receivers[seed % receivers.length]!;
      const statuses = new Map<string, AckStatus>();
      const ids: MessageId[] = [];
      const MESSAGES = 120;
      const crashAt = 10 + (seed % 10) * 9; // somewhere inside the stream
      for (let i = 1; i <= MESSAGES; i++) {
        const id = h.rm.get(sender)!.publish('t', `m${i}`, (s) => statuses.set(key(s.id), s));
        ids.push(id);
        if (i === crashAt) await crash(h, victim);
        await run(h, 1 + (i % 4));
      }
      expect(await runUntil(h, () => statuses.size === MESSAGES, 20_000)).toBe(true);
      let victimAcked = 0;
      for (const id of ids) {
        const s = statuses.get(key(id))!;
        for (const p of receivers) {
          const onDisk = h.stores.get(p)!.disk.filter((k) => k === key(id)).length;
          if (s.acked.includes(p.node.id)) expect(onDisk, `${p.name} acked ${key(id)}`).toBe(1);
          else expect(p).toBe(victim); // only the crashed one may be missing an ack
        }
        if (s.acked.includes(victim.node.id)) victimAcked++;
      }
      // The victim acked only a prefix (cumulative acks), all of it on its disk.
      expect(h.stores.get(victim)!.disk.length).toBeGreaterThanOrEqual(victimAcked);
      for (const p of receivers.filter((x) => x !== victim)) {
        expect(h.stores.get(p)!.disk).toEqual(ids.map(key)); // everything, once, in order
        expect(h.rm.get(p)!.memory().held).toBe(0);
      }
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );

  it('a write that fails is never acked, nor is anything after it in the stream', async () => {
    const h = await harness(3, 2, () => 5);
    const [p0, p1] = h.c.peers as [SimPeer, SimPeer];
    expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
    let n = 0;
    h.rm.get(p1)!.on('t', () => (++n === 2 ? Promise.reject(new Error('disk full')) : undefined));
    const settled: AckStatus[] = [];
    for (let i = 0; i < 3; i++) h.rm.get(p0)!.publish('t', `m${i}`, (s) => settled.push(s));
    await run(h, 500);
    // m0 acked; m1's write failed: m1 and m2 stay unacked while p1 lives.
    expect(settled.map((s) => s.id.seq)).toEqual([1]);
    expect(
      h.rm.get(p0)!.ackStatus({ origin: p0.node.id, epoch: h.rm.get(p0)!.epoch, seq: 3 })!.pending,
    ).toEqual([p1.node.id]);
    expect(h.rm.get(p1)!.stats.writesFailed).toBe(1);
  });

  it('unicast: the ack waits for the write too', async () => {
    const h = await harness(5, 2, () => 300);
    const [p0, p1] = h.c.peers as [SimPeer, SimPeer];
    expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
    let result: { ok: boolean } | null = null;
    h.rm.get(p0)!.sendTo(p1.node.id, 't', 'direct', (r) => (result = r));
    await run(h, 200);
    expect(result).toBeNull(); // delivered, not durable yet: no ack, the sender keeps retrying
    expect(await runUntil(h, () => result !== null, 1_000)).toBe(true);
    expect(result).toMatchObject({ ok: true });
    expect(h.stores.get(p1)!.disk.length).toBe(1);
  });

  it.each(SEEDS.slice(0, 12))(
    'unicast: a durable ack that is lost is asked for again: the sender hears ok well before its timeout; seed %i',
    async (seed) => {
      const commitMs = 1000;
      const h = await harness(seed, 2, () => commitMs, true, { delayMinMs: 0.1, delayMaxMs: 4 });
      const [p0, p1] = h.c.peers as [SimPeer, SimPeer];
      expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
      const results: SendResult[] = [];
      const t0 = h.c.rt.now();
      // One message of each lane: a line, and bytes (fragments).
      h.rm.get(p0)!.sendTo(p1.node.id, 't', 'direct', (r) => results.push(r));
      h.rm.get(p0)!.sendTo(p1.node.id, 't', Buffer.alloc(3000, seed), (r) => results.push(r));
      await run(h, commitMs / 2);
      expect(results).toEqual([]); // received, not durable yet
      // The acks sent when the writes commit are lost.
      h.c.net.setLink(p1.address, p0.address, { loss: 1 });
      await run(h, commitMs / 2 + 200);
      expect(h.stores.get(p1)!.disk.length).toBe(2);
      h.c.net.setLink(p1.address, p0.address, {});
      expect(await runUntil(h, () => results.length === 2, RELIABLE_UNICAST_TIMEOUT_MS)).toBe(true);
      expect(results.map((r) => r.ok)).toEqual([true, true]);
      expect(h.c.rt.now() - t0).toBeLessThan(RELIABLE_UNICAST_TIMEOUT_MS);
    },
  );
});
