/**
 * Messages larger than one datagram (fragments.ts, bulk.ts, flow.ts), in virtual time: whole and
 * exactly once under loss, duplication and reordering, or reported lost whole; never half a
 * message; bounded memory on both sides; refusals reach the sender.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SimCluster, SimForger, type SimPeer } from '../support/cluster.js';
import { FRAGMENT_FRAME, framePrefix } from '../../src/p2p/reliable/fragments.js';
import { PROFILES } from '../../src/p2p/config.js';
import {
  messageKey,
  ReliableDelivery,
  RELIABLE_BULK_BUFFER_BYTES_MAX,
  RELIABLE_BULK_WINDOW_BYTES_MAX,
  RELIABLE_MESSAGE_BYTES_MAX,
  RELIABLE_QUEUE_BYTES_MAX,
  RELIABLE_SILENT_RECEIVER_MS,
  RELIABLE_WRITES_AHEAD_MAX,
  type AckStatus,
  type Delivery,
  type LostReport,
  type ReliableOptions,
  type SendResult,
} from '../../src/p2p/reliable/index.js';
import { frameHeader, writeVarint } from '../../src/p2p/wire.js';
import type { Transport } from '../../src/p2p/transport/transport.js';

const SEEDS = Array.from({ length: 12 }, (_, i) => i + 1);

interface Got {
  topic: string;
  from: string;
  seq: number;
  bytes: number;
  sha: string;
  text?: string;
}

interface Harness {
  c: SimCluster;
  rm: Map<SimPeer, ReliableDelivery>;
  got: Map<SimPeer, Got[]>;
  lost: Map<SimPeer, LostReport[]>;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function harness(
  seed: number,
  n: number,
  faults = {},
  opts: (name: string) => ReliableOptions = () => ({}),
): Promise<Harness> {
  const rm = new Map<SimPeer, ReliableDelivery>();
  const got = new Map<SimPeer, Got[]>();
  const lost = new Map<SimPeer, LostReport[]>();
  const c = new SimCluster(seed, faults, PROFILES.lan, (node, peer) => {
    const r = node.install((ctx, nd) => new ReliableDelivery(ctx, nd.membership, opts(peer.name)));
    rm.set(peer, r);
    got.set(peer, got.get(peer) ?? []);
    lost.set(peer, lost.get(peer) ?? []);
    const record = (d: Delivery) =>
      got.get(peer)!.push({
        topic: d.topic,
        from: d.from,
        seq: d.id.seq,
        bytes: d.data.length,
        sha: sha(d.data),
        text: d.topic === 'small' ? d.payload : undefined,
      });
    for (const topic of ['big', 'small', 'other']) r.on(topic, record);
    r.onLost((l) => lost.get(peer)!.push(l));
  });
  for (let i = 0; i < n; i++) await c.add(`p${i}`);
  return { c, rm, got, lost };
}

/** `t` whose datagrams containing `marker` are dropped on their way out while `drop()` says so. */
function dropping(t: Transport, drop: () => boolean, marker: string): Transport {
  const kept = (d: Uint8Array) => !drop() || !Buffer.from(d).includes(marker);
  return {
    get address() {
      return t.address;
    },
    mode: t.mode,
    start: (handler) => t.start(handler),
    broadcast: (d, also) => {
      if (kept(d)) t.broadcast(d, also);
    },
    send: (to, d) => {
      if (kept(d)) t.send(to, d);
    },
    close: () => t.close(),
  };
}

/** Bytes that differ by seed and index, so a mixed-up reassembly cannot pass. */
function blob(seed: number, i: number, bytes: number): Buffer {
  const b = Buffer.allocUnsafe(bytes);
  let x = (seed * 7919 + i * 104729) >>> 0 || 1;
  for (let k = 0; k < bytes; k++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[k] = x & 0xff;
  }
  return b;
}

describe('reliable delivery of large messages (simulation)', () => {
  it.each(SEEDS)(
    'large messages reach every member whole, exactly once and in order under loss, duplication and reordering; the callbacks complete; seed %i',
    async (seed) => {
      const loss = 0.05 + (seed % 4) * 0.05; // 5 % to 20 %
      const h = await harness(seed, 4, { loss, duplicate: 0.05, delayMinMs: 0.1, delayMaxMs: 6 });
      expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
      const [sender, ...receivers] = h.c.peers as [SimPeer, ...SimPeer[]];
      const sizes = [701, 5_000, 300_000, 1024 * 1024 + 17, 0, 2_000_000];
      const sent = sizes.map((bytes, i) => blob(seed, i, bytes));
      const settled: AckStatus[] = [];
      for (const b of sent) h.rm.get(sender)!.publish('big', b, (s) => settled.push(s));
      expect(h.c.rt.runUntilTrue(() => settled.length === sent.length, 60_000)).toBe(true);
      for (const s of settled) {
        expect(s.complete).toBe(true);
        expect(s.acked.sort()).toEqual(receivers.map((r) => r.node.id).sort());
      }
      for (const r of receivers) {
        const big = h.got.get(r)!.filter((g) => g.topic === 'big');
        expect(big.map((g) => g.sha)).toEqual(sent.map(sha));
        expect(h.lost.get(r)).toEqual([]);
      }
      // Nothing left behind: the sender's queue and every reassembly are empty.
      expect(h.rm.get(sender)!.memory()).toMatchObject({ queuedBytes: 0, waiters: 0 });
      for (const r of receivers) expect(h.rm.get(r)!.memory().reassemblyBytes).toBe(0);
    },
  );

  it.each(SEEDS.slice(0, 6))(
    'small messages of another topic do not wait behind a large one; those of its own topic follow it; seed %i',
    async (seed) => {
      // No loss: a lost small datagram waits for its repair, which is not what this measures.
      const h = await harness(seed, 3, { delayMinMs: 0.1, delayMaxMs: 2 });
      expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
      const [sender, r1] = h.c.peers as [SimPeer, SimPeer];
      const rd = h.rm.get(sender)!;
      rd.publish('big', blob(seed, 0, 8 * 1024 * 1024));
      rd.publish('big', 'after the large one, same topic');
      rd.publish('other', 'another topic');
      const got = h.got.get(r1)!;
      expect(h.c.rt.runUntilTrue(() => got.some((g) => g.topic === 'other'), 2_000)).toBe(true);
      // The other topic's line came while the large message was still on its way.
      expect(got.filter((g) => g.topic === 'big')).toEqual([]);
      expect(h.c.rt.runUntilTrue(() => got.filter((g) => g.topic === 'big').length === 2, 60_000)).toBe(true);
      const big = got.filter((g) => g.topic === 'big');
      expect(big[0]!.bytes).toBe(8 * 1024 * 1024);
      expect(big[1]!.bytes).toBe(Buffer.byteLength('after the large one, same topic'));
    },
  );

  it.each(SEEDS.slice(0, 6))(
    'flow control: a 16 MiB stream under 10 percent loss never evicts what a receiver still needs (nothing lost), and the sender holds at most its buffer; seed %i',
    async (seed) => {
      const h = await harness(seed, 3, { loss: 0.1, delayMinMs: 0.1, delayMaxMs: 4 });
      expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
      const [sender, ...receivers] = h.c.peers as [SimPeer, ...SimPeer[]];
      const rd = h.rm.get(sender)!;
      let peakBuffer = 0;
      for (let i = 0; i < 16; i++) rd.publish('big', blob(seed, i, 1024 * 1024));
      const done = () => receivers.every((r) => h.got.get(r)!.filter((g) => g.topic === 'big').length === 16);
      expect(
        h.c.rt.runUntilTrue(() => {
          peakBuffer = Math.max(peakBuffer, rd.memory().bulkBufferBytes);
          return done();
        }, 120_000),
      ).toBe(true);
      expect(peakBuffer).toBeLessThanOrEqual(RELIABLE_BULK_BUFFER_BYTES_MAX);
      for (const r of receivers) expect(h.lost.get(r)).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 8))(
    'a sender that crashes mid-message: receivers report it lost whole and never deliver part of it; seed %i',
    async (seed) => {
      const h = await harness(seed, 3, { loss: 0.05, delayMinMs: 0.1, delayMaxMs: 2 });
      expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
      const [sender, ...receivers] = h.c.peers as [SimPeer, ...SimPeer[]];
      h.rm.get(sender)!.publish('big', blob(seed, 0, 4 * 1024 * 1024));
      // Crash once every receiver holds part of it: one that heard nothing of it yet (its first
      // datagrams lost) has nothing to report lost.
      const holdsPart = (r: SimPeer) => h.rm.get(r)!.memory().reassemblyBytes > 0;
      expect(h.c.rt.runUntilTrue(() => receivers.every(holdsPart), 5_000)).toBe(true);
      await h.c.crash(sender);
      for (const r of receivers) {
        expect(h.c.rt.runUntilTrue(() => h.lost.get(r)!.length > 0, 60_000)).toBe(true);
        expect(h.got.get(r)!.filter((g) => g.topic === 'big')).toEqual([]);
        expect(h.lost.get(r)!.every((l) => l.from === sender.node.id && l.count >= 1)).toBe(true);
        expect(h.rm.get(r)!.memory().reassemblyBytes).toBe(0);
      }
    },
  );

  it.each(SEEDS.slice(0, 6))(
    'a receiver that joins mid-message gets the messages after it whole and never a part; seed %i',
    async (seed) => {
      const h = await harness(seed, 2, { delayMinMs: 0.1, delayMaxMs: 2 });
      expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
      const [sender] = h.c.peers as [SimPeer];
      const rd = h.rm.get(sender)!;
      const first = blob(seed, 0, 6 * 1024 * 1024);
      rd.publish('big', first);
      h.c.rt.runFor(20);
      const late = await h.c.add('late');
      expect(h.c.rt.runUntilTrue(() => h.c.converged(), 10_000)).toBe(true);
      const second = blob(seed, 1, 300_000);
      const settled: AckStatus[] = [];
      rd.publish('big', second, (s) => settled.push(s));
      expect(h.c.rt.runUntilTrue(() => settled.length === 1, 60_000)).toBe(true);
      const big = h.got.get(late)!.filter((g) => g.topic === 'big');
      // Whole messages only: the second for sure, the first only if it joined before it began.
      expect(big.map((g) => g.sha).filter((s) => s !== sha(first))).toEqual([sha(second)]);
      expect(h.rm.get(late)!.memory().reassemblyBytes).toBe(0);
    },
  );

  it('a receiver refuses a message over its bound; the sender hears which and why, the others get it', async () => {
    const h = await harness(1, 3, { loss: 0.05 }, (name) =>
      name === 'p2' ? { messageBytesMax: 100_000 } : {},
    );
    expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
    const [sender, ok, small] = h.c.peers as [SimPeer, SimPeer, SimPeer];
    const settled: AckStatus[] = [];
    h.rm.get(sender)!.publish('big', blob(1, 0, 500_000), (s) => settled.push(s));
    expect(h.c.rt.runUntilTrue(() => settled.length === 1, 30_000)).toBe(true);
    const s = settled[0]!;
    expect(s.complete).toBe(false);
    expect(s.acked).toEqual([ok.node.id]);
    expect(s.refused).toEqual([{ peer: small.node.id, reason: 'too-large' }]);
    expect(h.got.get(ok)!.filter((g) => g.topic === 'big')).toHaveLength(1);
    expect(h.got.get(small)!).toEqual([]);
    expect(h.lost.get(small)).toEqual([]); // refused is not lost
    // The stream goes on: a smaller message after it reaches both.
    const next: AckStatus[] = [];
    h.rm.get(sender)!.publish('big', blob(1, 1, 50_000), (x) => next.push(x));
    expect(h.c.rt.runUntilTrue(() => next.length === 1, 30_000)).toBe(true);
    expect(next[0]!.complete).toBe(true);

    // Unicast too: the callback says refused, with the reason.
    const results: SendResult[] = [];
    h.rm.get(sender)!.sendTo(small.node.id, 'big', blob(1, 2, 200_000), (r) => results.push(r));
    expect(h.c.rt.runUntilTrue(() => results.length === 1, 30_000)).toBe(true);
    expect(results[0]).toMatchObject({ ok: false, reason: 'too-large' });
  });

  it.each(SEEDS.slice(0, 6))(
    'unicast: a 3 MiB message reaches its one receiver whole under 10 percent loss; a small one after it on the same topic comes after it; seed %i',
    async (seed) => {
      const h = await harness(seed, 3, { loss: 0.1, duplicate: 0.05, delayMinMs: 0.1, delayMaxMs: 4 });
      expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
      const [sender, to, other] = h.c.peers as [SimPeer, SimPeer, SimPeer];
      const data = blob(seed, 0, 3 * 1024 * 1024);
      const results: SendResult[] = [];
      h.rm.get(sender)!.sendTo(to.node.id, 'big', data, (r) => results.push(r));
      h.rm.get(sender)!.sendTo(to.node.id, 'big', 'then this', (r) => results.push(r));
      expect(h.c.rt.runUntilTrue(() => results.length === 2, 60_000)).toBe(true);
      expect(results.every((r) => r.ok)).toBe(true);
      const got = h.got.get(to)!.filter((g) => g.topic === 'big');
      expect(got.map((g) => g.sha)).toEqual([sha(data), sha(Buffer.from('then this'))]);
      expect(h.got.get(other)).toEqual([]);
      expect(h.rm.get(sender)!.memory()).toMatchObject({ queuedBytes: 0, unicastPending: 0 });
    },
  );

  it.each(SEEDS.slice(0, 4))(
    'a message in several fragments from a sender the receiver has not heard of yet waits for repair, and is taken once it is known, seed %i',
    async (seed) => {
      const h = await harness(seed, 0, { loss: 0.02, delayMinMs: 0.1, delayMaxMs: 2 });
      // The sender's heartbeats are lost on their way out for a while: it knows the receiver (whose
      // heartbeats arrive), the receiver does not know it. On one multicast LAN, as a peer that
      // publishes right after it starts.
      let hidden = true;
      h.c.wrapTransport = (t, peer) => (peer.name === 'sender' ? dropping(t, () => hidden, '"t":"hb"') : t);
      const multicast = { mode: 'multicast' } as const;
      const receiver = await h.c.add('receiver', {}, multicast);
      const sender = await h.c.add('sender', {}, multicast);
      const knows = (a: SimPeer, b: SimPeer) => a.node.membership.get(b.node.id)?.state === 'alive';
      expect(h.c.rt.runUntilTrue(() => knows(sender, receiver), 2_000)).toBe(true);
      const data = blob(seed, 0, 100_000);
      const settled: AckStatus[] = [];
      h.rm.get(sender)!.publish('big', data, (s) => settled.push(s));
      h.c.rt.runFor(1_000);
      expect(knows(receiver, sender)).toBe(false);
      expect(h.got.get(receiver)).toEqual([]);
      // Nothing of it held meanwhile: the first fragment was left untaken, for a NACK to ask again.
      expect(h.rm.get(receiver)!.memory()).toMatchObject({ reassemblyBytes: 0 });
      expect(h.rm.get(receiver)!.stats.fragmentsLeft).toBeGreaterThan(0);
      hidden = false;
      expect(h.c.rt.runUntilTrue(() => settled.length === 1, 30_000)).toBe(true);
      expect(settled[0]).toMatchObject({ complete: true, acked: [receiver.node.id], refused: [] });
      expect(h.got.get(receiver)!.map((g) => g.sha)).toEqual([sha(data)]);
      expect(h.lost.get(receiver)).toEqual([]);
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );

  it('a flood of forged first fragments (64 x 64 MiB announced) from strangers holds nothing, and a member still gets through', async () => {
    const h = await harness(3, 2, { delayMinMs: 0.1, delayMaxMs: 1 });
    expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
    const [sender, receiver] = h.c.peers as [SimPeer, SimPeer];
    const forger = await h.c.forger();
    // Each forged stream opens a 64 MiB message and sends only its first fragment.
    for (let i = 0; i < 64; i++) {
      const id = (0x1000 + i).toString(16).padStart(16, 'a');
      const a = Buffer.alloc(32);
      let o = writeVarint(a, 0, 1); // seq 1
      o = writeVarint(a, o, 0); // lamport 0
      a[o++] = 0; // topic 0
      const head = Buffer.alloc(16);
      let ho = 0;
      head[ho++] = 1; // first fragment
      ho = writeVarint(head, ho, 64 * 1024 * 1024);
      ho = writeVarint(head, ho, 70_000);
      o = writeVarint(a, o, ho + 4);
      head.copy(a, o, 0, ho);
      o += ho + 4;
      forger.send(
        receiver.address,
        {
          t: 'rb.u',
          i: id,
          b: { e: 1, to: receiver.node.id, b: 1, k: ['big'] },
        },
        { attachment: a.subarray(0, o) },
      );
    }
    h.c.rt.runFor(100);
    // Senders membership does not know make it hold nothing at all; each first fragment was
    // left untaken (a resend would be asked about again), none refused.
    expect(h.rm.get(receiver)!.memory()).toMatchObject({ reassemblyBytes: 0, held: 0 });
    expect(h.rm.get(receiver)!.stats.fragmentsLeft).toBe(64);
    expect(h.rm.get(receiver)!.stats.messagesRefused).toBe(0);
    // A member's message gets through as before.
    const settled: AckStatus[] = [];
    h.rm.get(sender)!.publish('big', blob(3, 0, 100_000), (s) => settled.push(s));
    expect(h.c.rt.runUntilTrue(() => settled.length === 1, 30_000)).toBe(true);
    expect(settled[0]!.complete).toBe(true);
  });

  it('a large message and a small one numbered alike in their lanes have different ids: both delivered, both acked', async () => {
    const h = await harness(5, 2);
    expect(
      h.c.rt.runUntilTrue(() => [...h.rm.keys()].every((p) => p.node.membership.live().length === 1), 5_000),
    ).toBe(true);
    const [sender, receiver] = h.c.peers as [SimPeer, SimPeer];
    const keys: string[] = [];
    h.rm.get(receiver)!.on('keyed', (d) => void keys.push(d.key));
    const settled: AckStatus[] = [];
    const rd = h.rm.get(sender)!;
    // The first of each lane: sequence 1 of the small lane, sequence 1 of the bulk lane.
    const small = rd.publish('keyed', 'short', (s) => settled.push(s));
    const large = rd.publish('keyed', 'x'.repeat(5000), (s) => settled.push(s));
    expect(small.seq).toBe(large.seq);
    expect(h.c.rt.runUntilTrue(() => settled.length === 2, 5_000)).toBe(true);
    expect(new Set(keys).size).toBe(2);
    expect(keys).toEqual([small, large].map(messageKey));
    expect(settled.every((s) => s.complete)).toBe(true);
  });
});

describe('the sender bounds what waits for its windows', () => {
  it('publish() throws and sendTo() fails busy past RELIABLE_QUEUE_BYTES_MAX', async () => {
    const h = await harness(9, 2, { delayMinMs: 0.1, delayMaxMs: 1 });
    expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
    const [sender, to] = h.c.peers as [SimPeer, SimPeer];
    const rd = h.rm.get(sender)!;
    // Views of one buffer: what is bounded is what waits, not what the caller allocated.
    const chunk = Buffer.alloc(RELIABLE_MESSAGE_BYTES_MAX);
    const fit = RELIABLE_QUEUE_BYTES_MAX / RELIABLE_MESSAGE_BYTES_MAX;
    for (let i = 0; i < fit; i++) rd.publish('big', chunk);
    expect(() => rd.publish('big', chunk)).toThrow(/still waiting to be sent/);
    const results: SendResult[] = [];
    for (let i = 0; i <= fit; i++) rd.sendTo(to.node.id, 'big', chunk, (r) => results.push(r));
    h.c.rt.runFor(30); // failures are told at the next tick
    expect(results).toEqual([expect.objectContaining({ ok: false, reason: 'busy' })]);
    expect(rd.queuedBytes()).toBeLessThanOrEqual(2 * RELIABLE_QUEUE_BYTES_MAX);
  });
});

describe("frames: the fragments after a message's first, without an envelope", () => {
  it('a frame is taken only from a live member at its address, into a stream an envelope opened, in its epoch', async () => {
    const h = await harness(5, 2, { delayMinMs: 0.1, delayMaxMs: 1 });
    expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
    const [sender, receiver] = h.c.peers as [SimPeer, SimPeer];
    const forger = await h.c.forger();
    const frame = (id: string, epoch: number, seq: number) =>
      Buffer.concat([frameHeader(FRAGMENT_FRAME, id), framePrefix(epoch, seq), Buffer.of(0, 1, 2, 3)]);
    const dropped = () => receiver.node.stats.dropped.frame;
    // A stranger's id, and a member's id from another address: dropped by the node.
    forger.sendBytes(receiver.address, frame(SimForger.ID, 1, 2));
    forger.sendBytes(receiver.address, frame(sender.node.id, h.rm.get(sender)!.epoch, 2));
    h.c.rt.runFor(5);
    expect(dropped()).toBe(2);
    // From the member's own address but for a stream never opened: nothing is created.
    forger.sendBytes(receiver.address, frame(sender.node.id, h.rm.get(sender)!.epoch, 2), {
      spoofFrom: sender.address,
    });
    h.c.rt.runFor(5);
    expect(h.rm.get(receiver)!.memory().streams).toBe(0);
    // Once the stream is open, a spoofed frame of another epoch or far ahead changes nothing.
    const settled: AckStatus[] = [];
    h.rm.get(sender)!.publish('big', blob(5, 0, 20_000), (s) => settled.push(s));
    expect(h.c.rt.runUntilTrue(() => settled.length === 1, 10_000)).toBe(true);
    const epoch = h.rm.get(sender)!.epoch;
    const refusedBefore = receiver.node.stats.refused['seq'] ?? 0;
    forger.sendBytes(receiver.address, frame(sender.node.id, epoch + 1, 40), { spoofFrom: sender.address });
    forger.sendBytes(receiver.address, frame(sender.node.id, epoch, 2 ** 30), { spoofFrom: sender.address });
    h.c.rt.runFor(50);
    expect(receiver.node.stats.refused['seq']).toBe(refusedBefore + 1);
    // The next message still arrives whole, and nothing was delivered from the forged frames.
    const next: AckStatus[] = [];
    h.rm.get(sender)!.publish('big', blob(5, 1, 20_000), (s) => next.push(s));
    expect(h.c.rt.runUntilTrue(() => next.length === 1, 10_000)).toBe(true);
    expect(h.got.get(receiver)!.map((g) => g.sha)).toEqual([
      sha(blob(5, 0, 20_000)),
      sha(blob(5, 1, 20_000)),
    ]);
    expect(receiver.node.stats.handlerErrors).toBe(0);
  });

  it('any bytes after a frame header never throw in the receiver (fuzzed)', async () => {
    const h = await harness(6, 2, { delayMinMs: 0.1, delayMaxMs: 1 });
    expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
    const [sender, receiver] = h.c.peers as [SimPeer, SimPeer];
    h.rm.get(sender)!.publish('big', blob(6, 0, 50_000));
    h.c.rt.runFor(2);
    const forger = await h.c.forger();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0, max: 3 }), (body, kind) => {
        forger.sendBytes(receiver.address, Buffer.concat([frameHeader(kind, sender.node.id), body]), {
          spoofFrom: sender.address,
        });
        h.c.rt.runFor(1);
      }),
      { numRuns: 500 },
    );
    h.c.rt.runFor(5_000);
    expect(receiver.node.stats.handlerErrors).toBe(0);
  });
});

describe('the first message after a quiet spell', () => {
  it.each(SEEDS)(
    'a member that misses the first datagram of each lane, long after it was tracked, still gets both messages; seed %i',
    async (seed) => {
      const h = await harness(seed, 3, { loss: 0.05, duplicate: 0.05, delayMinMs: 0.1, delayMaxMs: 4 });
      expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
      const [sender, r1, r2] = h.c.peers as [SimPeer, SimPeer, SimPeer];
      // Nothing published for longer than a receiver may stay silent: nobody has acked anything.
      h.c.rt.runFor(RELIABLE_SILENT_RECEIVER_MS + 1000);
      // r2 misses the first datagram of each lane; r1 acks them meanwhile.
      h.c.net.setLink(sender.address, r2.address, { loss: 1 });
      const rd = h.rm.get(sender)!;
      const big = blob(seed, 0, 3_000);
      const settled: AckStatus[] = [];
      rd.publish('big', big, (s) => settled.push(s));
      rd.publish('small', 'a line', (s) => settled.push(s));
      expect(h.c.rt.runUntilTrue(() => h.got.get(r1)!.length === 2, 5_000)).toBe(true);
      h.c.rt.runFor(100);
      h.c.net.setLink(sender.address, r2.address, {});
      expect(h.c.rt.runUntilTrue(() => settled.length === 2, 30_000)).toBe(true);
      for (const s of settled) expect(s).toMatchObject({ complete: true, gone: [] });
      const got = h.got
        .get(r2)!
        .map((g) => g.sha)
        .sort();
      expect(got).toEqual([sha(big), sha(Buffer.from('a line'))].sort());
      expect(h.lost.get(r2)).toEqual([]);
    },
  );
});

describe('order across the lanes, one topic, unicast', () => {
  it.each(SEEDS)(
    'small, large, small to one peer on one topic arrive in that order under loss; seed %i',
    async (seed) => {
      const h = await harness(seed, 2, { loss: 0.3, delayMinMs: 0.1, delayMaxMs: 3 });
      expect(h.c.rt.runUntilTrue(() => h.c.converged(), 10_000)).toBe(true);
      const [sender, to] = h.c.peers as [SimPeer, SimPeer];
      const rd = h.rm.get(sender)!;
      const results: SendResult[] = [];
      const large = blob(seed, 0, 30_000);
      rd.sendTo(to.node.id, 'small', 'before', (r) => results.push(r));
      rd.sendTo(to.node.id, 'small', large, (r) => results.push(r));
      rd.sendTo(to.node.id, 'small', 'after', (r) => results.push(r));
      expect(h.c.rt.runUntilTrue(() => results.length === 3, 30_000)).toBe(true);
      expect(results.every((r) => r.ok)).toBe(true);
      const got = h.got.get(to)!.filter((g) => g.topic === 'small');
      expect(got.map((g) => g.sha)).toEqual([
        sha(Buffer.from('before')),
        sha(large),
        sha(Buffer.from('after')),
      ]);
    },
  );
});

describe('flow control does not wait for the disk, acks do', () => {
  it('writes of 100 ms each overlap (at most RELIABLE_WRITES_AHEAD_MAX waiting), and every callback comes after its write', async () => {
    const written = new Map<string, number>();
    let writing = 0;
    let mostWriting = 0;
    const rds = new Map<string, ReliableDelivery>();
    const c: SimCluster = new SimCluster(
      11,
      { delayMinMs: 0.1, delayMaxMs: 1 },
      PROFILES.lan,
      (node, peer) => {
        const r = node.install((ctx, nd) => new ReliableDelivery(ctx, nd.membership));
        rds.set(peer.name, r);
        if (peer.name !== 'disk') return;
        r.on('big', (d) => {
          writing++;
          mostWriting = Math.max(mostWriting, writing);
          const key = sha(d.data);
          return new Promise<void>((resolve) =>
            c.rt.schedule(100, () => {
              writing--;
              written.set(key, c.rt.now());
              resolve();
            }),
          );
        });
      },
    );
    await c.add('sender');
    await c.add('disk');
    expect(c.rt.runUntilTrue(() => c.converged(), 5_000)).toBe(true);
    const messages = Array.from({ length: 16 }, (_, i) => blob(11, i, 1024 * 1024));
    const settledAt = new Map<string, number>();
    const t0 = c.rt.now();
    for (const m of messages)
      rds.get('sender')!.publish('big', m, (s) => {
        expect(s.complete).toBe(true);
        settledAt.set(sha(m), c.rt.now());
      });
    // Resolved writes run as promise callbacks: let them run between slices of virtual time.
    for (let t = 0; t < 10_000 && settledAt.size < messages.length; t += 5) {
      c.rt.runFor(5);
      await Promise.resolve();
    }
    expect(settledAt.size).toBe(messages.length);
    // Sixteen writes of 100 ms one window (1 MiB) apart would take 1.6 s and more; overlapped, far less.
    expect(c.rt.now() - t0).toBeLessThan(800);
    expect(mostWriting).toBeGreaterThan(1);
    // Bounded: the receiver stops saying "received" past RELIABLE_WRITES_AHEAD_MAX waiting writes,
    // and what the window had in flight then still arrives.
    expect(mostWriting).toBeLessThanOrEqual(
      RELIABLE_WRITES_AHEAD_MAX + Math.ceil(RELIABLE_BULK_WINDOW_BYTES_MAX / (1024 * 1024)) + 1,
    );
    for (const m of messages) expect(settledAt.get(sha(m))!).toBeGreaterThanOrEqual(written.get(sha(m))!);
  });
});
