import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { NO_DROPS, SimCluster, type SimPeer } from '../support/cluster.js';
import { guardFollowsMembers } from '../../src/cli/security.js';
import { Keyring, keyId, KEYS_MAX } from '../../src/p2p/transport/keyring.js';
import {
  HEADER_BYTES,
  REBIND_QUIET_MS,
  REPLAY_SENDERS_MAX,
  REPLAY_WINDOW_DATAGRAMS,
  SEALED_DATAGRAM_BYTES_MAX,
  SECURE_DROP_REASONS,
  SECURE_OVERHEAD_BYTES,
  SecureTransport,
  UNVERIFIED_OPENS_BURST,
  UNVERIFIED_OPENS_PER_S,
  type SecureOptions,
} from '../../src/p2p/transport/secure.js';
import {
  GUARD_SOURCE_BURST_DATAGRAMS,
  GUARD_SOURCE_DATAGRAMS_PER_S,
  GUARD_SOURCES_MAX,
  RateGuard,
} from '../../src/p2p/transport/guard.js';
import { DATAGRAM_PAYLOAD_BYTES_MAX, FRAME_BYTES_MAX } from '../../src/p2p/wire.js';
import type { Address, DatagramHandler, Transport } from '../../src/p2p/transport/transport.js';

const GROUP = '239.255.77.77:47777';
const SEEDS = Array.from({ length: 10 }, (_, i) => i + 1);
const key1 = Buffer.alloc(32, 1);
const key2 = Buffer.alloc(32, 2);
const keyX = Buffer.alloc(32, 9);

/** A transport that only records what is sent and lets a test inject received datagrams. */
class Tap implements Transport {
  readonly mode = 'multicast';
  readonly sent: Uint8Array[] = [];
  private handler: DatagramHandler | null = null;
  constructor(
    private readonly inner: Transport | null = null,
    readonly address: Address = '10.9.9.9:7000',
  ) {}
  async start(h: DatagramHandler): Promise<void> {
    this.handler = h;
    await this.inner?.start(h);
  }
  broadcast(d: Uint8Array, also?: readonly Address[]): void {
    this.sent.push(d);
    this.inner?.broadcast(d, also);
  }
  send(to: Address, d: Uint8Array): void {
    this.sent.push(d);
    this.inner?.send(to, d);
  }
  async close(): Promise<void> {
    await this.inner?.close();
  }
  inject(d: Uint8Array, from: Address): void {
    this.handler?.(d, from, 'group');
  }
}

/** A sealing layer for unit tests: no limits on unverified senders unless the test sets them. */
function secure(keys: Buffer[], group = GROUP, extra: Partial<SecureOptions> = {}) {
  return new SecureTransport(new Tap(), {
    keyring: new Keyring(keys),
    group,
    unverifiedLimits: false,
    ...extra,
  });
}

const envelope = (n = 0) => Buffer.from(JSON.stringify({ hello: 'group', n }));
const totalDropped = (s: SecureTransport) => Object.values(s.stats.dropped).reduce((a, b) => a + b, 0);

describe('sealed datagrams', () => {
  it('round-trips and has the documented layout', () => {
    const a = secure([key1]);
    const b = secure([key1]);
    const sealed = a.seal(envelope());
    expect(sealed.length).toBe(envelope().length + SECURE_OVERHEAD_BYTES);
    expect(sealed[0]).toBe(1);
    expect(sealed.subarray(1, 5).equals(keyId(key1))).toBe(true);
    const r = b.open(sealed);
    expect(r.ok && r.plaintext.toString()).toBe(envelope().toString());
    // The ciphertext hides the envelope.
    expect(sealed.includes(Buffer.from('group'))).toBe(false);
  });

  it('never reuses a nonce: consecutive seals differ in their counter, one by one', () => {
    const a = secure([key1], GROUP, { nonceCounter: 41 });
    const nonces = Array.from({ length: 100 }, () =>
      a.seal(envelope()).subarray(5, HEADER_BYTES).toString('hex'),
    );
    expect(new Set(nonces).size).toBe(100);
    expect(nonces[0]!.slice(16)).toBe('00000029');
    expect(nonces[1]!.slice(16)).toBe('0000002a');
  });

  it('redraws the nonce prefix before the 32-bit counter wraps', () => {
    const a = secure([key1], GROUP, { nonceCounter: 0xffffffff });
    const last = a.seal(envelope()).subarray(5, HEADER_BYTES);
    const next = a.seal(envelope()).subarray(5, HEADER_BYTES);
    expect(last.readUInt32BE(8)).toBe(0xffffffff);
    expect(next.readUInt32BE(8)).toBe(0);
    expect(next.subarray(0, 8).equals(last.subarray(0, 8))).toBe(false);
  });

  it('refuses wrong key, other group, plaintext, tampering and replays, with the right reason', () => {
    const a = secure([key1]);
    const b = secure([key1]);
    const sealed = a.seal(envelope());
    expect(secure([keyX]).open(sealed)).toEqual({ ok: false, reason: 'key' });
    expect(secure([key1], '239.255.77.77:47778').open(sealed)).toEqual({ ok: false, reason: 'auth' });
    expect(b.open(envelope())).toEqual({ ok: false, reason: 'plaintext' });
    for (let i = 0; i < sealed.length; i++) {
      const t = Buffer.from(sealed);
      t[i]! ^= 0x01;
      const expected = i === 0 ? 'format' : i < 5 ? 'key' : 'auth';
      expect(b.open(t), `byte ${i}`).toEqual({ ok: false, reason: expected });
    }
    expect(b.open(sealed).ok).toBe(true);
    expect(b.open(sealed)).toEqual({ ok: false, reason: 'replay' });
    expect(b.open(sealed.subarray(0, SECURE_OVERHEAD_BYTES))).toEqual({ ok: false, reason: 'short' });
    expect(b.open(Buffer.alloc(SEALED_DATAGRAM_BYTES_MAX + 1, 1))).toEqual({ ok: false, reason: 'oversize' });
  });

  it('a forged datagram with a valid header but a guessed tag does not advance the replay window', () => {
    const a = secure([key1], GROUP, { nonceCounter: 5000 });
    const b = secure([key1]);
    const good = a.seal(envelope());
    const forged = Buffer.from(good);
    forged.writeUInt32BE(900_000, 13); // far ahead: would make every real datagram 'stale' if trusted
    expect(b.open(forged)).toEqual({ ok: false, reason: 'auth' });
    expect(b.open(good).ok).toBe(true);
    expect(b.stats.sendersTracked).toBe(1);
  });

  it('accepts reordering within the window, refuses anything older', () => {
    const a = secure([key1]);
    const b = secure([key1]);
    const sealed = Array.from({ length: REPLAY_WINDOW_DATAGRAMS + 10 }, (_, i) => a.seal(envelope(i)));
    expect(b.open(sealed[REPLAY_WINDOW_DATAGRAMS + 9]!).ok).toBe(true);
    expect(b.open(sealed[10]!).ok).toBe(true); // exactly window - 1 behind
    expect(b.open(sealed[9]!)).toEqual({ ok: false, reason: 'stale' });
    expect(b.open(sealed[10]!)).toEqual({ ok: false, reason: 'replay' });
  });

  it('replay window: any delivery order accepts each datagram at most once (model check)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat(3 * REPLAY_WINDOW_DATAGRAMS), { minLength: 1, maxLength: 300 }),
        (order) => {
          const b = secure([key1]);
          const prefix = randomBytes(8);
          const sealed = new Map<number, Buffer>();
          for (const c of order)
            if (!sealed.has(c))
              sealed.set(
                c,
                secure([key1], GROUP, { noncePrefix: prefix, nonceCounter: c }).seal(envelope(c)),
              );
          const accepted = new Set<number>();
          let top = -1;
          for (const c of order) {
            const r = b.open(sealed.get(c)!);
            const fresh = c > top || (top - c < REPLAY_WINDOW_DATAGRAMS && !accepted.has(c));
            expect(r.ok).toBe(fresh);
            if (r.ok) {
              accepted.add(c);
              top = Math.max(top, c);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('fuzz: random datagrams never throw and are always dropped', () => {
    const b = secure([key1, key2]);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 1400 }), (bytes) => {
        const r = b.open(bytes);
        expect(r.ok).toBe(false);
      }),
      { numRuns: 3000 },
    );
    // Random bytes that start like our format and carry a key id we hold: only the tag stops them.
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 1200 }), fc.boolean(), (bytes, second) => {
        const d = Buffer.concat([Buffer.from([1]), keyId(second ? key2 : key1), Buffer.from(bytes)]);
        const r = b.open(d);
        expect(r.ok).toBe(false);
        if (d.length > SECURE_OVERHEAD_BYTES && d.length <= SEALED_DATAGRAM_BYTES_MAX)
          expect(r).toEqual({ ok: false, reason: 'auth' });
      }),
      { numRuns: 3000 },
    );
    expect(b.stats.opened).toBe(0);
    expect(b.stats.sendersTracked).toBe(0);
  });

  it('fuzz: mutated real datagrams (flips, truncation, extension, splices) are always dropped', () => {
    const a = secure([key1]);
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
      fc.record({
        kind: fc.constant('grow' as const),
        extra: fc.uint8Array({ minLength: 1, maxLength: 64 }),
      }),
      fc.record({ kind: fc.constant('splice' as const), at: fc.nat() }),
    );
    fc.assert(
      fc.property(
        fc.string({ maxLength: 400 }),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        (text, ms) => {
          const b = secure([key1]);
          const original = a.seal(Buffer.from(JSON.stringify({ text })));
          const other = a.seal(Buffer.from(JSON.stringify({ other: text })));
          let d = Buffer.from(original);
          for (const m of ms) {
            if (m.kind === 'flip') d[m.at % d.length]! ^= 1 << m.bit;
            else if (m.kind === 'cut') d = d.subarray(0, m.at % d.length);
            else if (m.kind === 'grow') d = Buffer.concat([d, m.extra]);
            else d = Buffer.concat([d.subarray(0, m.at % d.length), other.subarray(m.at % d.length)]);
            // A splice may rebuild `other` whole: a genuine datagram, rightly accepted; excluded below.
            if (d.length === 0) d = Buffer.from([0]);
          }
          fc.pre(!d.equals(original) && !d.equals(other));
          expect(b.open(d).ok).toBe(false);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('keyring', () => {
  it('install, use, remove as Serf does; refuses bad keys and removing the key in use', () => {
    const ring = new Keyring([key1]);
    ring.install(key2);
    expect(ring.ids()).toEqual([keyId(key1).toString('hex'), keyId(key2).toString('hex')]);
    expect(() => ring.remove(key1)).toThrow(/key in use/);
    ring.use(key2);
    ring.remove(key1);
    expect(ring.ids()).toEqual([keyId(key2).toString('hex')]);
    expect(() => ring.install(Buffer.alloc(16))).toThrow(/32 bytes/);
    for (let i = 0; i < KEYS_MAX - 1; i++) ring.install(randomBytes(32));
    expect(() => ring.install(randomBytes(32))).toThrow(/at most/);
  });
});

/** A cluster whose peers seal with the keyring named for them (same keyring object: rotation). */
function secureCluster(seed: number, rings: Map<string, Keyring>, faults = {}) {
  const c = new SimCluster(seed, faults);
  const secures = new Map<string, SecureTransport>();
  const taps = new Map<string, Tap>();
  c.wrapTransport = (t, peer: SimPeer) => {
    const tap = new Tap(t, t.address);
    const s = new SecureTransport(tap, {
      keyring: rings.get(peer.name)!,
      group: GROUP,
      now: () => c.rt.now(),
    });
    secures.set(peer.name, s);
    taps.set(peer.name, tap);
    return s;
  };
  return { c, secures, taps };
}

const idsSeenBy = (p: SimPeer) =>
  new Set(
    p.node.membership
      .list()
      .filter((m) => m.state === 'alive')
      .map((m) => m.id),
  );

describe('groups over one network (simulation)', () => {
  it.each(SEEDS)(
    'peers with different keys never see each other; same-key peers converge, seed %i',
    async (seed) => {
      const rings = new Map<string, Keyring>();
      for (const n of ['a0', 'a1', 'a2']) rings.set(n, new Keyring([key1]));
      for (const n of ['b0', 'b1', 'b2']) rings.set(n, new Keyring([key2]));
      const { c, secures } = secureCluster(seed, rings, { loss: 0.05, duplicate: 0.2, delayMaxMs: 5 });
      for (const n of rings.keys()) await c.add(n);
      c.rt.runFor(3_000);
      const a = c.peers.filter((p) => p.name.startsWith('a'));
      const b = c.peers.filter((p) => p.name.startsWith('b'));
      for (const [mine, theirs] of [
        [a, b],
        [b, a],
      ] as const) {
        for (const p of mine) {
          const seen = idsSeenBy(p);
          expect(seen.size).toBe(2);
          for (const q of mine) if (q !== p) expect(seen.has(q.node.id)).toBe(true);
          for (const q of theirs) expect(p.node.membership.get(q.node.id)).toBeUndefined();
          const s = secures.get(p.name)!;
          expect(s.stats.dropped.key).toBeGreaterThan(0); // the other group's traffic, refused by key id
          expect(s.stats.dropped.auth).toBe(0);
          expect(p.node.stats.dropped).toEqual(NO_DROPS);
        }
      }
      // The network duplicates 20 % of datagrams: the replay windows refuse the copies.
      expect([...secures.values()].reduce((n, s) => n + s.stats.dropped.replay, 0)).toBeGreaterThan(0);
      expect(c.handlerErrors()).toEqual([]);
    },
  );

  it('a keyless peer and a keyed peer on one network ignore each other, counted as plaintext / json', async () => {
    const rings = new Map([['k0', new Keyring([key1])]]);
    const c = new SimCluster(3);
    const secures: SecureTransport[] = [];
    c.wrapTransport = (t, peer) => {
      const ring = rings.get(peer.name);
      if (!ring) return t;
      const s = new SecureTransport(t, { keyring: ring, group: GROUP });
      secures.push(s);
      return s;
    };
    const keyed = await c.add('k0');
    const open = await c.add('open0');
    c.rt.runFor(2_000);
    expect(keyed.node.membership.list()).toEqual([]);
    expect(open.node.membership.list()).toEqual([]);
    expect(secures[0]!.stats.dropped.plaintext).toBeGreaterThan(0);
    expect(open.node.stats.dropped.json).toBeGreaterThan(0);
  });
});

describe('key rotation (simulation)', () => {
  it.each(SEEDS)('install, use one by one, remove: the group never splits, seed %i', async (seed) => {
    const names = ['p0', 'p1', 'p2', 'p3'];
    const rings = new Map(names.map((n) => [n, new Keyring([key1])]));
    const { c, secures } = secureCluster(seed, rings, { loss: 0.05, delayMaxMs: 5 });
    for (const n of names) await c.add(n);
    expect(c.rt.runUntilTrue(() => c.converged(), 3_000)).toBe(true);
    const step = (fn: (ring: Keyring) => void) => {
      for (const n of names) {
        fn(rings.get(n)!);
        c.rt.runFor(700); // the others keep running between two operators' actions
        expect(c.converged()).toBe(true);
      }
    };
    step((r) => r.install(key2));
    step((r) => r.use(key2));
    const before = names.map((n) => secures.get(n)!.stats.openedByKey[keyId(key1).toString('hex')] ?? 0);
    c.rt.runFor(2_000);
    // Nobody sends with key1 any more: the counters say when it is safe to remove it.
    const after = names.map((n) => secures.get(n)!.stats.openedByKey[keyId(key1).toString('hex')] ?? 0);
    expect(after).toEqual(before);
    step((r) => r.remove(key1));
    c.rt.runFor(3_000);
    expect(c.converged()).toBe(true);
    const events = c.peers.flatMap((p) => p.events.filter((e) => e.kind === 'dead' || e.kind === 'suspect'));
    expect(events).toEqual([]);
    for (const n of names) expect(secures.get(n)!.stats.dropped.key).toBe(0);
  });

  it('the test can fail: removing the old key before everyone sends with the new one splits the group', async () => {
    const names = ['p0', 'p1', 'p2'];
    const rings = new Map(names.map((n) => [n, new Keyring([key1])]));
    const { c } = secureCluster(7, rings);
    for (const n of names) await c.add(n);
    expect(c.rt.runUntilTrue(() => c.converged(), 3_000)).toBe(true);
    const r0 = rings.get('p0')!;
    r0.use(key2); // p0 jumps straight to key2 and drops key1; nobody else has key2
    r0.remove(key1);
    c.rt.runFor(3_000);
    expect(c.converged()).toBe(false);
    expect(c.peers[1]!.node.membership.get(c.peers[0]!.node.id)?.state).toBe('dead');
  });
});

describe('bounded resources under a flood (simulation)', () => {
  it('100,000 spoofed sources: tracked state stays at the caps, every forged datagram dropped, no false death', async () => {
    const names = ['p0', 'p1', 'p2'];
    const rings = new Map(names.map((n) => [n, new Keyring([key1])]));
    const { c, secures, taps } = secureCluster(11, rings, { loss: 0.02, delayMaxMs: 3 });
    for (const n of names) await c.add(n);
    expect(c.rt.runUntilTrue(() => c.converged(), 3_000)).toBe(true);
    const victim = 'p0';
    const tap = taps.get(victim)!;
    const s = secures.get(victim)!;
    const inBefore = c.peers[0]!.node.stats.datagramsIn;
    const openedBefore = s.stats.opened;
    // 100,000 datagrams in one virtual second, each from its own spoofed address: a third random
    // bytes, a third forged with our header and key id, a third plaintext envelopes.
    const forgedHeader = Buffer.concat([Buffer.from([1]), keyId(key1)]);
    const FLOOD = 100_000;
    const BATCH = 1_000;
    for (let b = 0; b < FLOOD / BATCH; b++) {
      c.rt.schedule(b * 10, () => {
        for (let i = 0; i < BATCH; i++) {
          const k = b * BATCH + i;
          const from = `172.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}:${1024 + (k % 50_000)}`;
          const body = randomBytes(40 + (k % 200));
          const d =
            k % 3 === 0
              ? body
              : k % 3 === 1
                ? Buffer.concat([forgedHeader, body])
                : Buffer.from(JSON.stringify({ v: 1, t: 'mb.hb', k }));
          tap.inject(d, from);
        }
      });
    }
    c.rt.runFor(2_000);
    const forged = Math.ceil((FLOOD - 1) / 3);
    // Per-source buckets exist only for datagrams that reached the decryption step.
    const g = s.stats.unverifiedSources;
    expect(g.sourcesTracked).toBeLessThanOrEqual(GUARD_SOURCES_MAX);
    expect(g.sourcesEvicted).toBeGreaterThanOrEqual(forged - GUARD_SOURCES_MAX);
    expect(totalDropped(s)).toBeGreaterThanOrEqual(FLOOD);
    expect(s.stats.dropped.plaintext).toBeGreaterThanOrEqual(Math.floor(FLOOD / 3));
    // Every forgery was refused: most without decryption (`limited`), the rest by the tag, and
    // the decryptions tried stayed within the budget for unverified senders (the flood lasts 1 s).
    expect(s.stats.dropped.auth + s.stats.dropped.limited).toBeGreaterThanOrEqual(forged);
    expect(s.stats.dropped.auth).toBeLessThanOrEqual(UNVERIFIED_OPENS_BURST + UNVERIFIED_OPENS_PER_S * 1);
    expect(s.stats.dropped.limited).toBeGreaterThan(forged / 2);
    // Replay state is only created by authenticated senders: the 2 other real peers (a peer never
    // hears itself).
    expect(s.stats.sendersTracked).toBe(2);
    // Nothing forged reached the node; the real peers' traffic kept flowing.
    expect(c.peers[0]!.node.stats.datagramsIn - inBefore).toBe(s.stats.opened - openedBefore);
    expect(c.converged()).toBe(true);
    expect(c.peers.flatMap((p) => p.events.filter((e) => e.kind === 'dead' || e.kind === 'suspect'))).toEqual(
      [],
    );
    expect(c.handlerErrors()).toEqual([]);
  });

  it.each(SEEDS.slice(0, 5))(
    "a stranger flooding forgeries from a member's own address cannot silence that member, seed %i",
    async (seed) => {
      const names = ['p0', 'p1', 'p2'];
      const rings = new Map(names.map((n) => [n, new Keyring([key1])]));
      const { c, secures, taps } = secureCluster(seed, rings, { loss: 0.02, delayMaxMs: 3 });
      for (const n of names) await c.add(n);
      expect(c.rt.runUntilTrue(() => c.converged(), 3_000)).toBe(true);
      const [p0, p1] = c.peers as [SimPeer, SimPeer];
      // Forgeries at 20,000/s for 5 s, all claiming p1's address, with random and with copied
      // nonce prefixes: a source-address rate limit in front of decryption would starve p1.
      const captured = [...taps.get('p1')!.sent];
      expect(captured.length).toBeGreaterThan(0);
      const forgedHeader = Buffer.concat([Buffer.from([1]), keyId(key1)]);
      for (let b = 0; b < 500; b++) {
        c.rt.schedule(b * 10, () => {
          for (let i = 0; i < 200; i++) {
            const d =
              i % 2 === 0
                ? Buffer.concat([forgedHeader, randomBytes(150)])
                : Buffer.concat([captured[i % captured.length]!.subarray(0, 13), randomBytes(150)]);
            taps.get('p0')!.inject(d, p1.address);
          }
        });
      }
      c.rt.runFor(5_500);
      const s = secures.get('p0')!;
      expect(s.stats.dropped.limited).toBeGreaterThan(0);
      expect(s.stats.opened).toBeGreaterThan(0);
      expect(p0.node.membership.get(p1.node.id)?.state).toBe('alive');
      expect(c.converged()).toBe(true);
      expect(
        c.peers.flatMap((p) => p.events.filter((e) => e.kind === 'dead' || e.kind === 'suspect')),
      ).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 5))(
    'a new peer still joins during a flood of forgeries from spoofed sources, seed %i',
    async (seed) => {
      const names = ['p0', 'p1', 'new'];
      const rings = new Map(names.map((n) => [n, new Keyring([key1])]));
      const { c, secures, taps } = secureCluster(seed, rings, { loss: 0.02, delayMaxMs: 3 });
      await c.add('p0');
      await c.add('p1');
      expect(c.rt.runUntilTrue(() => c.converged(), 3_000)).toBe(true);
      // 20,000 forgeries/s at p0, each from a fresh address, for as long as the test runs.
      const forgedHeader = Buffer.concat([Buffer.from([1]), keyId(key1)]);
      let k = 0;
      const flood = () => {
        for (let i = 0; i < 200; i++, k++)
          taps
            .get('p0')!
            .inject(
              Buffer.concat([forgedHeader, randomBytes(100)]),
              `172.16.${(k >> 8) & 255}.${k & 255}:${k % 60_000}`,
            );
        c.rt.schedule(10, flood);
      };
      flood();
      c.rt.runFor(1_000);
      const joiner = await c.add('new');
      // Its datagrams compete for the unverified budget with 10 times as many forgeries; members
      // already known are unaffected, and the newcomer gets through within a few heartbeats.
      expect(c.rt.runUntilTrue(() => c.converged(), 10_000)).toBe(true);
      expect(secures.get('p0')!.stats.dropped.limited).toBeGreaterThan(0);
      expect(c.peers[0]!.node.membership.get(joiner.node.id)?.state).toBe('alive');
    },
  );

  it('unverified senders: per-source and total budgets; authenticated senders bypass both', () => {
    let now = 0;
    const b = secure([key1], GROUP, {
      now: () => now,
      unverifiedLimits: { perSourcePerS: 10, perSourceBurst: 5, totalPerS: 100, totalBurst: 20 },
    });
    const forged = () => Buffer.concat([Buffer.from([1]), keyId(key1), randomBytes(120)]);
    const results = Array.from(
      { length: 10 },
      () => b.open(forged(), '10.0.0.66:1').ok || b.stats.dropped.limited,
    );
    expect(results).toEqual([0, 0, 0, 0, 0, 1, 2, 3, 4, 5]); // 5 tried (auth), then limited
    for (let i = 0; i < 30; i++) b.open(forged(), `10.1.0.${i}:1`);
    expect(b.stats.dropped.auth).toBe(20); // the total burst of 20 tried, the rest limited
    // A real sender's first datagram is limited now too; once one gets through, the rest flow.
    const a = secure([key1]);
    expect(b.open(a.seal(envelope()), '10.0.0.7:1')).toEqual({ ok: false, reason: 'limited' });
    now += 1000;
    expect(b.open(a.seal(envelope()), '10.0.0.7:1').ok).toBe(true);
    for (let i = 0; i < 200; i++) b.open(forged(), '10.0.0.7:1'); // spoofing the sender's address
    for (let i = 0; i < 100; i++) expect(b.open(a.seal(envelope()), '10.0.0.7:1').ok).toBe(true);
  });

  it("a forger copying a member's nonce prefix from another address is held to the unverified budget", () => {
    let now = 0;
    const b = secure([key1], GROUP, {
      now: () => now,
      unverifiedLimits: { perSourcePerS: 10, perSourceBurst: 5, totalPerS: 100, totalBurst: 20 },
    });
    const a = secure([key1]);
    now += 1000;
    expect(b.open(a.seal(envelope()), '10.0.0.7:1').ok).toBe(true); // a's window, bound to 10.0.0.7
    // Copied header, counter ahead, random tag: tried once per budget token, then `limited`.
    const copied = (i: number) => {
      const d = a.seal(envelope(i));
      d.writeUInt32BE(d.readUInt32BE(13) + 10_000, 13);
      return Buffer.concat([d.subarray(0, HEADER_BYTES), randomBytes(150)]);
    };
    for (let i = 0; i < 1_000; i++) b.open(copied(i), `10.6.6.${i % 50}:4000`);
    // The total burst of 20, less the token a's first datagram took; no more decryptions.
    expect(b.stats.dropped.auth).toBe(19);
    expect(b.stats.dropped.limited).toBe(981);
    // The member, heard from its own address, is still always tried (any port of that address).
    for (let i = 0; i < 50; i++)
      expect(b.open(a.seal(envelope()), `10.0.0.7:${i % 2 ? 1 : 2}`).ok).toBe(true);
    // The same copied forgeries from the member's own address cost a decryption each, as before.
    for (let i = 0; i < 10; i++) b.open(copied(i), '10.0.0.7:1');
    expect(b.stats.dropped.auth).toBe(29);
  });

  it('a copy of one of our own datagrams is refused as a replay before any decryption, and binds nothing', () => {
    const b = secure([key1]);
    const mine = b.seal(envelope());
    for (let i = 0; i < 3; i++) expect(b.open(mine, '10.6.6.6:1')).toEqual({ ok: false, reason: 'replay' });
    const ahead = Buffer.from(b.seal(envelope()));
    ahead.writeUInt32BE(ahead.readUInt32BE(13) + 1_000, 13);
    ahead[ahead.length - 1]! ^= 0xff;
    expect(b.open(ahead, '10.6.6.6:1')).toEqual({ ok: false, reason: 'replay' });
    expect(b.stats.dropped.auth).toBe(0);
    expect(b.stats.sendersTracked).toBe(0);
  });

  it('a window moves to a new address once the old one is quiet, and not while the member is heard there', () => {
    let now = 0;
    const limits = { perSourcePerS: 10, perSourceBurst: 5, totalPerS: 100, totalBurst: 20 };
    const b = secure([key1], GROUP, { now: () => now, unverifiedLimits: limits });
    const a = secure([key1]);
    const spend = () => {
      for (let i = 0; i < 100; i++)
        b.open(Buffer.concat([Buffer.from([1]), keyId(key1), randomBytes(120)]), `10.1.0.${i}:1`);
    };
    expect(b.open(a.seal(envelope()), '10.0.0.7:1').ok).toBe(true);
    // A datagram of a's that b never got (captured on the wire), replayed from a stranger's address:
    // authentic and new, so accepted once, but the window stays with a, who is still heard.
    const captured = a.seal(envelope());
    now += 10;
    expect(b.open(captured, '10.6.6.6:1').ok).toBe(true);
    expect(b.stats.sendersMoved).toBe(0);
    now += 1;
    spend(); // the budget is empty: only a bound sender gets through
    expect(b.open(a.seal(envelope()), '10.0.0.7:1').ok).toBe(true);
    expect(b.open(a.seal(envelope()), '10.6.6.6:1')).toEqual({ ok: false, reason: 'limited' });

    // a moves to 10.0.0.8 and its old address falls quiet: its datagrams compete for the budget
    // until REBIND_QUIET_MS has passed since the old address was last heard, then move the window.
    now += REBIND_QUIET_MS / 2;
    expect(b.open(a.seal(envelope()), '10.0.0.8:1').ok).toBe(true); // within the refilled budget
    expect(b.stats.sendersMoved).toBe(0);
    now += REBIND_QUIET_MS / 2;
    expect(b.open(a.seal(envelope()), '10.0.0.8:1').ok).toBe(true);
    expect(b.stats.sendersMoved).toBe(1);
    spend();
    for (let i = 0; i < 20; i++) expect(b.open(a.seal(envelope()), '10.0.0.8:1').ok).toBe(true);
    expect(b.open(a.seal(envelope()), '10.0.0.7:1')).toEqual({ ok: false, reason: 'limited' });
  });

  it('replay state is capped even for senders that hold the key (LRU over nonce prefixes)', () => {
    const cap = 64;
    const b = secure([key1], GROUP, { replaySendersMax: cap });
    for (let i = 0; i < 1_000; i++) expect(b.open(secure([key1]).seal(envelope(i))).ok).toBe(true);
    expect(b.stats.sendersTracked).toBe(cap);
    expect(b.stats.sendersEvicted).toBe(1_000 - cap);
    expect(REPLAY_SENDERS_MAX).toBeGreaterThan(0);
  });

  it('one flooding source is held to its rate; other sources are untouched', () => {
    let now = 0;
    const g = new RateGuard({ now: () => now });
    let admitted = 0;
    // Four times the allowed rate for 2 s from one address.
    const perMs = (GUARD_SOURCE_DATAGRAMS_PER_S * 4) / 1000;
    const total = Math.round(perMs * 2000);
    for (let i = 0; i < total; i++) {
      now = i / perMs;
      if (g.admit('10.0.0.66:4000')) admitted++;
      if (i % 500 === 0) expect(g.admit('10.0.0.1:7000')).toBe(true);
    }
    const expected = GUARD_SOURCE_BURST_DATAGRAMS + GUARD_SOURCE_DATAGRAMS_PER_S * 2;
    expect(admitted).toBeGreaterThanOrEqual(expected - 2);
    expect(admitted).toBeLessThanOrEqual(expected + 1);
    expect(g.stats.rateLimited).toBe(total - admitted);
  });

  it('a live member sending a file faster than a stranger may is not throttled; a stranger still is', () => {
    let now = 0;
    const g = new RateGuard({ now: () => now });
    const member = '10.0.0.2:40000';
    const stranger = '10.0.0.66:4000';
    g.setMembers(new Set([member]));
    // 1.5 times the stranger's rate for 6 s from each: past the burst for the stranger.
    const perMs = (GUARD_SOURCE_DATAGRAMS_PER_S * 1.5) / 1000;
    const total = Math.round(perMs * 6000);
    let fromMember = 0;
    let fromStranger = 0;
    for (let i = 0; i < total; i++) {
      now = i / perMs;
      if (g.admit(member)) fromMember++;
      if (g.admit(stranger)) fromStranger++;
    }
    expect(fromMember).toBe(total);
    expect(fromStranger).toBeLessThanOrEqual(
      GUARD_SOURCE_BURST_DATAGRAMS + GUARD_SOURCE_DATAGRAMS_PER_S * 6 + 1,
    );
    // Once it is no longer a member, its address is a stranger's again.
    g.setMembers(new Set());
    let after = 0;
    const start = now;
    for (let i = 0; i < total; i++) {
      now = start + i / perMs;
      if (g.admit(member)) after++;
    }
    expect(after).toBeLessThan(total);
  });

  it('a peer keeps its guard told who the live members are: joined, they refill at the member rate; dead, no longer', async () => {
    let now = 0;
    const g = new RateGuard({ now: () => now });
    const c = new SimCluster(4);
    const a = await c.add('a');
    guardFollowsMembers(g, a.node);
    const b = await c.add('b');
    c.rt.runFor(2_000);
    expect(a.node.membership.get(b.node.id)?.state).toBe('alive');
    // A second's refill after the burst is spent: the member rate for b, a stranger's for others.
    const refill = (source: string): number => {
      now += 10_000;
      while (g.admit(source));
      now += 1000;
      let n = 0;
      while (g.admit(source)) n++;
      return n;
    };
    expect(refill(b.node.address)).toBe(GUARD_SOURCE_BURST_DATAGRAMS);
    expect(refill('10.0.0.66:4000')).toBe(GUARD_SOURCE_DATAGRAMS_PER_S);
    await c.crash(b);
    c.rt.runFor(5_000);
    expect(a.node.membership.get(b.node.id)?.state).toBe('dead');
    expect(refill(b.node.address)).toBe(GUARD_SOURCE_DATAGRAMS_PER_S);
  });

  it('the source table never exceeds its cap, and an evicted source comes back with a full bucket', () => {
    const g = new RateGuard({ now: () => 0, sourcesMax: 100, burst: 2 });
    for (let i = 0; i < 100_000; i++) g.admit(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}:1`);
    expect(g.stats.sourcesTracked).toBe(100);
    expect(g.stats.sourcesEvicted).toBe(100_000 - 100);
    expect(g.admit('10.0.0.0:1')).toBe(true);
  });
});

it('every secure drop reason is a counter', () => {
  const s = secure([key1]);
  expect(Object.keys(s.stats.dropped).sort()).toEqual([...SECURE_DROP_REASONS].sort());
  // The largest datagram sealed is a frame (wire.ts): sealed, it fills an Ethernet frame's UDP payload.
  expect(Math.max(DATAGRAM_PAYLOAD_BYTES_MAX, FRAME_BYTES_MAX) + SECURE_OVERHEAD_BYTES).toBe(
    SEALED_DATAGRAM_BYTES_MAX,
  );
  expect(SEALED_DATAGRAM_BYTES_MAX).toBe(1500 - 20 - 8);
});
