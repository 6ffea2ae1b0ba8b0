/**
 * File transfer's roles (src/p2p/files/) over a scripted channel: every message arrives, in order,
 * unless its receiver is down, and time is a number the test moves. What reliable delivery does
 * under loss is the simulation's to show (test/sim/files.test.ts); here: the protocol's decisions.
 * The receiver's accept and refuse, with reasons on both sides; the verified file in place; a
 * receiver killed mid-transfer that restarts and gets the rest, not the whole file again; a
 * receiver that goes silent; a disk that fails.
 */
import { describe, expect, it } from 'vitest';
import type { MemberView, ProtocolContext } from '../../src/p2p/protocol.js';
import {
  FILE_RECEIVER_SILENT_MS,
  FILE_STALLED_MS,
  Files,
  type FileChannel,
  type FileDelivery,
  type IncomingEvent,
  type Sent,
  type Settled,
  type TransferResult,
} from '../../src/p2p/files/index.js';
import { MemoryIncomingFiles, memoryDisk, memoryFile, type MemoryDisk } from '../support/memory-files.js';

const TICK_MS = 50;
/** Messages the network carries per tick: a transfer takes many ticks, so a crash lands mid-way. */
const MESSAGES_PER_TICK = 4;

/** Peers on a perfect network; a peer down gets nothing and is "dead" to the others. */
class Bus {
  now = 0;
  readonly peers = new Map<string, Endpoint>();
  /** Messages on their way, in order. */
  readonly wire: Array<{ from: Endpoint; bytes: number; go: () => void }> = [];
  private seed = 7;

  random = (): number => {
    this.seed = (this.seed * 48271) % 2147483647;
    return this.seed / 2147483647;
  };

  view(id: string): MemberView | undefined {
    const p = this.peers.get(id);
    if (!p) return undefined;
    return {
      id,
      name: p.name,
      address: id,
      state: p.up ? 'alive' : 'dead',
      incarnation: 1,
      lastSeenMs: 0,
      duplicateName: false,
      tags: {},
    };
  }

  /** Lets every promise and delivery in flight run. */
  async settle(): Promise<void> {
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  }

  /** Ticks every live peer until `done` holds, at most `ms` of virtual time. */
  async until(done: () => boolean, ms: number): Promise<void> {
    const end = this.now + ms;
    while (!done() && this.now < end) {
      this.now += TICK_MS;
      for (const m of this.wire.splice(0, MESSAGES_PER_TICK)) m.go();
      for (const p of this.peers.values()) if (p.up) p.files?.tick(this.now);
      await this.settle();
    }
    expect(done()).toBe(true);
  }
}

class Endpoint implements FileChannel {
  up = true;
  files: Files | null = null;
  readonly events: IncomingEvent[] = [];
  /** Multicast offers this peer never sees (it joined the sender's stream just after one). */
  missesOffers = false;
  /** Reliable delivery here refuses binary messages over this many bytes ('too-large'). */
  messageBytesMax = Infinity;
  private handlers = new Map<string, (d: FileDelivery) => unknown>();

  constructor(
    private readonly bus: Bus,
    readonly id: string,
    readonly name: string,
  ) {
    bus.peers.set(id, this);
  }

  /** (Re)starts this peer's file transfer, receiving into `disk` when given. */
  boot(disk?: MemoryDisk, maxFileBytes?: number, incoming = disk && new MemoryIncomingFiles(disk)): Files {
    this.up = true;
    this.handlers = new Map();
    const ctx = {
      self: { id: this.id, name: this.name, incarnation: 1 },
      now: () => this.bus.now,
      random: this.bus.random,
      wakeAt: () => {}, // the bus ticks every peer at every step
    } as unknown as ProtocolContext;
    this.files = new Files(
      ctx,
      this,
      { get: (id) => this.bus.view(id) },
      { incoming, maxFileBytes, chunkBytes: 1000 },
    );
    this.files.onIncoming((e) => this.events.push(e));
    return this.files;
  }

  crash(): void {
    this.up = false;
    this.files = null;
  }

  publish(topic: string, payload: string | Uint8Array, onSettled?: (s: Settled) => void): void {
    const isOffer = typeof payload === 'string';
    const others = [...this.bus.peers.values()].filter((p) => p !== this && !(isOffer && p.missesOffers));
    this.onWire(payload, () => {
      const acks = others.map((p) => p.deliver(this, topic, payload, null).then((ok) => [p.id, ok] as const));
      void Promise.all(acks).then((rs) =>
        onSettled?.({
          acked: rs.filter(([, ok]) => ok).map(([id]) => id),
          gone: rs.filter(([, ok]) => !ok).map(([id]) => id),
          refused: [],
        }),
      );
    });
  }

  sendTo(to: string, topic: string, payload: string | Uint8Array, done?: (r: Sent) => void): void {
    const p = this.bus.peers.get(to)!;
    if (typeof payload !== 'string' && payload.length > p.messageBytesMax) {
      void Promise.resolve().then(() => done?.({ ok: false, reason: 'too-large' }));
      return;
    }
    void p
      .deliver(this, topic, payload, to)
      .then((ok) => done?.(ok ? { ok: true } : { ok: false, reason: 'gone' }));
  }

  on(topic: string, handler: (d: FileDelivery) => unknown): void {
    this.handlers.set(topic, handler);
  }

  queuedBytes(): number {
    return this.bus.wire.reduce((n, m) => n + (m.from === this ? m.bytes : 0), 0);
  }

  private onWire(payload: string | Uint8Array, go: () => void): void {
    this.bus.wire.push({
      from: this,
      bytes: typeof payload === 'string' ? payload.length : payload.length,
      go,
    });
  }

  /** Resolves true once acked (the handler's write done), false when down or the write failed. */
  private async deliver(
    from: Endpoint,
    topic: string,
    payload: string | Uint8Array,
    to: string | null,
  ): Promise<boolean> {
    await Promise.resolve();
    if (!this.up) return false;
    const h = this.handlers.get(topic);
    if (!h) return true; // acked at delivery, as reliable delivery does without a handler
    const data = Buffer.from(typeof payload === 'string' ? Buffer.from(payload) : payload);
    try {
      await h({ from: from.id, fromName: from.name, to, data });
      return this.up;
    } catch {
      return false;
    }
  }
}

function group(receivers: number) {
  const bus = new Bus();
  const alice = new Endpoint(bus, 'a000000000000001', 'alice');
  alice.boot();
  const rs = Array.from({ length: receivers }, (_, i) => {
    const e = new Endpoint(bus, `b00000000000000${i + 1}`, ['bob', 'carol', 'dave'][i]!);
    return { e, disk: memoryDisk() };
  });
  return { bus, alice, rs };
}

function send(
  alice: Endpoint,
  bus: Bus,
  file: ReturnType<typeof memoryFile>,
  to: Endpoint[],
  unicast = false,
) {
  const out: { result?: TransferResult } = {};
  alice.files!.send(file, {
    targets: to.map((e) => bus.view(e.id)!),
    unicast,
    onEnd: (r) => (out.result = r),
  });
  return out;
}

describe('a file to the group', () => {
  it('reaches every receiver whole and verified, and the sender hears done from each', async () => {
    const { bus, alice, rs } = group(2);
    for (const r of rs) r.e.boot(r.disk);
    const file = memoryFile('notes.bin', 10_500);
    const out = send(
      alice,
      bus,
      file,
      rs.map((r) => r.e),
    );
    await bus.until(() => out.result !== undefined, 10_000);
    expect(out.result!.ok).toBe(true);
    expect(out.result!.receivers.map((r) => [r.name, r.status])).toEqual([
      ['bob', 'done'],
      ['carol', 'done'],
    ]);
    for (const r of rs) {
      expect(r.disk.files.get('alice/notes.bin')).toEqual(file.content);
      expect(r.e.events.at(-1)).toMatchObject({ kind: 'received', path: 'alice/notes.bin' });
    }
  });

  it('an empty file arrives too', async () => {
    const { bus, alice, rs } = group(1);
    rs[0]!.e.boot(rs[0]!.disk);
    const out = send(alice, bus, memoryFile('empty', 0), [rs[0]!.e]);
    await bus.until(() => out.result !== undefined, 10_000);
    expect(out.result!.ok).toBe(true);
    expect(rs[0]!.disk.files.get('alice/empty')).toEqual(Buffer.alloc(0));
  });

  it('a receiver over its --max-file-bytes refuses, saying why on both sides; the others still get it', async () => {
    const { bus, alice, rs } = group(2);
    rs[0]!.e.boot(rs[0]!.disk, 5000);
    rs[1]!.e.boot(rs[1]!.disk);
    const out = send(
      alice,
      bus,
      memoryFile('big.bin', 6000),
      rs.map((r) => r.e),
    );
    await bus.until(() => out.result !== undefined, 10_000);
    expect(out.result!.ok).toBe(false);
    const bob = out.result!.receivers.find((r) => r.name === 'bob')!;
    expect([bob.status, bob.reason]).toEqual([
      'refused',
      'too large: 6000 bytes, this receiver takes at most 5000',
    ]);
    expect(rs[0]!.e.events).toEqual([expect.objectContaining({ kind: 'refused', reason: bob.reason })]);
    expect(rs[0]!.disk.partial.size + rs[0]!.disk.files.size).toBe(0);
    expect(rs[1]!.disk.files.size).toBe(1);
  });

  it('a receiver that missed the offer in the stream gets it by unicast, and the file', async () => {
    const { bus, alice, rs } = group(2);
    for (const r of rs) r.e.boot(r.disk);
    rs[0]!.e.missesOffers = true;
    const file = memoryFile('notes.bin', 10_500);
    const out = send(
      alice,
      bus,
      file,
      rs.map((r) => r.e),
    );
    await bus.until(() => out.result !== undefined, 20_000);
    expect(out.result!.receivers.map((r) => [r.name, r.status])).toEqual([
      ['bob', 'done'],
      ['carol', 'done'],
    ]);
    expect(rs[0]!.disk.files.get('alice/notes.bin')).toEqual(file.content);
  });

  it('a receiver without the disk space refuses', async () => {
    const { bus, alice, rs } = group(1);
    rs[0]!.disk.free = 100;
    rs[0]!.e.boot(rs[0]!.disk);
    const out = send(alice, bus, memoryFile('big.bin', 6000), [rs[0]!.e]);
    await bus.until(() => out.result !== undefined, 10_000);
    expect(out.result!.receivers[0]).toMatchObject({
      status: 'refused',
      reason: 'not enough disk space: 6000 bytes needed, 100 free',
    });
  });

  it('a receiver killed mid-transfer and restarted gets the rest, not the whole file again', async () => {
    const { bus, alice, rs } = group(2);
    for (const r of rs) r.e.boot(r.disk);
    const bob = rs[0]!;
    const file = memoryFile('movie.bin', 50_000); // 50 chunks of 1000
    const out = send(
      alice,
      bus,
      file,
      rs.map((r) => r.e),
    );
    await bus.until(() => (bob.disk.partial.values().next().value?.held[1] ?? 0) !== 0, 10_000); // past chunk 8
    bob.e.crash();
    await bus.until(() => bus.now > 3000, 5000);
    const restarted = new MemoryIncomingFiles(bob.disk);
    bob.e.boot(bob.disk, undefined, restarted);
    await bus.until(() => out.result !== undefined, 60_000);
    expect(out.result!.ok).toBe(true);
    expect(bob.disk.files.get('alice/movie.bin')).toEqual(file.content);
    expect(bob.e.events.map((e) => e.kind)).toContain('resumed');
    expect(restarted.writes).toBeLessThan(50);
    expect(restarted.writes).toBeGreaterThan(0);
  });

  it('a receiver that stays down is named gone once it was silent long enough', async () => {
    const { bus, alice, rs } = group(2);
    for (const r of rs) r.e.boot(r.disk);
    const out = send(
      alice,
      bus,
      memoryFile('movie.bin', 50_000),
      rs.map((r) => r.e),
    );
    await bus.until(() => rs[0]!.disk.partial.size > 0, 5000);
    rs[0]!.e.crash();
    await bus.until(() => out.result !== undefined, FILE_RECEIVER_SILENT_MS + 10_000);
    expect(out.result!.receivers.map((r) => [r.name, r.status])).toEqual([
      ['bob', 'gone'],
      ['carol', 'done'],
    ]);
  });

  it('a disk that fails: the chunk is not acknowledged, the sender is told why, nothing is left behind', async () => {
    const { bus, alice, rs } = group(1);
    const store = new MemoryIncomingFiles(rs[0]!.disk);
    store.failWrites = true;
    rs[0]!.e.boot(rs[0]!.disk, undefined, store);
    const out = send(alice, bus, memoryFile('a.bin', 3000), [rs[0]!.e]);
    await bus.until(() => out.result !== undefined, 10_000);
    expect(out.result!.receivers[0]).toMatchObject({
      status: 'failed',
      reason: 'cannot write the file: disk full',
    });
    expect(rs[0]!.disk.partial.size).toBe(0);
  });
});

describe('a receiver after a restart', () => {
  it('drops a partial file whose sender no longer sends it, once nothing came for FILE_STALLED_MS', async () => {
    const { bus, alice, rs } = group(1);
    const bob = rs[0]!;
    bob.e.boot(bob.disk);
    const out = send(alice, bus, memoryFile('movie.bin', 50_000), [bob.e]);
    await bus.until(() => [...bob.disk.partial.values()].some((p) => p.held.some((b) => b !== 0)), 5000);
    bob.e.crash();
    await bus.until(() => out.result !== undefined, FILE_RECEIVER_SILENT_MS + 5000);
    expect(out.result!.receivers[0]!.status).toBe('gone');
    // bob comes back with its partial file; alice runs on but has given up on this transfer.
    bob.e.boot(bob.disk);
    await bus.until(() => bob.e.events.some((e) => e.kind === 'resumed'), 1000);
    const back = bus.now;
    await bus.until(() => bob.disk.partial.size === 0, FILE_STALLED_MS + 1000);
    expect(bus.now - back).toBeGreaterThanOrEqual(FILE_STALLED_MS - 1000);
    expect(bob.e.events.at(-1)).toMatchObject({
      kind: 'failed',
      reason: expect.stringContaining('stopped sending'),
    });
  });
});

describe('a file to one member (--to)', () => {
  it('a target whose reliable delivery refuses the chunks as too large is failed at once, with that reason', async () => {
    const { bus, alice, rs } = group(1);
    rs[0]!.e.boot(rs[0]!.disk);
    rs[0]!.e.messageBytesMax = 500;
    const out = send(alice, bus, memoryFile('a.bin', 3000), [rs[0]!.e], true);
    await bus.until(() => out.result !== undefined, 5000);
    expect(out.result!.receivers[0]).toMatchObject({
      status: 'failed',
      reason: 'refused a chunk (too-large)',
    });
  });

  it('goes to it alone', async () => {
    const { bus, alice, rs } = group(2);
    for (const r of rs) r.e.boot(r.disk);
    const file = memoryFile('secret.txt', 2500);
    const out = send(alice, bus, file, [rs[1]!.e], true);
    await bus.until(() => out.result !== undefined, 10_000);
    expect(out.result!.ok).toBe(true);
    expect(rs[1]!.disk.files.get('alice/secret.txt')).toEqual(file.content);
    expect(rs[0]!.e.events).toEqual([]);
  });
});
