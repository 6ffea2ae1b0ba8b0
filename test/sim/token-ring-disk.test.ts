/**
 * The token ring on a failing disk (simulation, faults from the seed through SimDisk). One member
 * of three cannot store its state (a full disk, or every write failing with EIO) while every
 * member asks for a turn at every visit of the token:
 *   - no member enters with a fencing token above the highest it stored (no turn unfenced), so
 *     the failing one takes no new turn while the fault lasts;
 *   - the ring keeps moving: the two others keep taking turns, strictly increasing, never overlapping;
 *   - once the fault clears it takes turns again, without a restart;
 *   - no handler error anywhere.
 * And in a ring of five whose holder crashes while one member's disk fails: that member confirms
 * no claim whose promise it could not store, and the three healthy ones make a new token and go on.
 */
import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import { TokenRing, type TokenRingDurable } from '../../src/p2p/token-ring/index.js';
import type { ProtocolContext } from '../../src/p2p/protocol.js';
import { SimDisk } from '../support/sim-disk.js';

const T = PROFILES.lan.tokenRing;
const SEEDS = Array.from({ length: Number(process.env.TOKEN_DISK_SEEDS ?? 8) }, (_, i) => i + 1);
const LINKS = { loss: 0.03, duplicate: 0.02, delayMinMs: 0.1, delayMaxMs: 5 };
const TURN_MS = 40;
const FAULT_MS = 6_000;
/** Turns each healthy member must take while the fault lasts: the ring did not stall. */
const HEALTHY_TURNS_MIN = 5;

interface Turn {
  peer: string;
  gen: number;
  enter: number;
  exit: number | null;
  /** The highest gen the member had stored when it entered. */
  storedGen: number;
}

/** A confirm a member sent, with the promise it had stored when it sent it. */
interface Confirm {
  peer: string;
  e: number;
  ok: boolean;
  storedPromise: number;
}

async function setup(seed: number, members = 3) {
  const tok = new Map<string, TokenRing>();
  const disks = new Map<string, SimDisk>();
  const stored = new Map<string, TokenRingDurable>();
  const turns: Turn[] = [];
  const confirms: Confirm[] = [];
  const c: SimCluster = new SimCluster(seed, LINKS, PROFILES.lan, (node, peer) => {
    const disk = new SimDisk(c.rt.random);
    disks.set(peer.name, disk);
    // Sees every confirm the member sends, beside what its disk held at that moment.
    const tap = (ctx: ProtocolContext): ProtocolContext => ({
      self: ctx.self,
      now: () => ctx.now(),
      wall: () => ctx.wall(),
      random: () => ctx.random(),
      lamport: () => ctx.lamport(),
      stamp: () => ctx.stamp(),
      broadcast: (type, body, att) => ctx.broadcast(type, body, att),
      send: (to, type, body, att) => {
        if (type === 'tok.conf') {
          const b = body as { e: number; ok: boolean };
          confirms.push({
            peer: peer.name,
            e: b.e,
            ok: b.ok,
            storedPromise: stored.get(peer.name)?.promised ?? 0,
          });
        }
        return ctx.send(to, type, body, att);
      },
      emit: (e) => ctx.emit(e),
      refuse: (counter) => ctx.refuse(counter),
      soon: (fn) => ctx.soon(fn),
      sendFrame: () => {},
      bodyBytesMax: (type) => ctx.bodyBytesMax(type),
      wakeAt: (at) => ctx.wakeAt(at),
    });
    const ring = node.install(
      (ctx, nd) =>
        new TokenRing(tap(ctx), nd.membership, {
          timings: T,
          durable: {
            load: () => stored.get(peer.name) ?? null,
            save: (d) => {
              if (disk.write(JSON.stringify(d).length).error) return false;
              stored.set(peer.name, d);
              return true;
            },
          },
        }),
    );
    tok.set(peer.name, ring);
    // Every member wants a short turn at every visit, as `peer token-ring --hold 40` does.
    ring.request(TURN_MS);
    node.on((e) => {
      if (e.kind === 'token-enter')
        turns.push({
          peer: peer.name,
          gen: e.generation,
          enter: c.rt.now(),
          exit: null,
          storedGen: stored.get(peer.name)?.gen ?? 0,
        });
      else if (e.kind === 'token-exit') {
        const open = turns.findLast((t) => t.peer === peer.name && t.exit === null);
        if (open) open.exit = c.rt.now();
        ring.request(TURN_MS);
      }
    });
  });
  for (let i = 0; i < members; i++) await c.add(`p${i}`);
  return { c, tok, disks, turns, confirms };
}

describe('token ring: a member whose disk fails skips its turns, the ring goes on', () => {
  it.each(SEEDS)('seed %i', async (seed) => {
    const { c, tok, disks, turns } = await setup(seed);
    c.rt.runFor(3_000);
    const names = c.peers.map((p: SimPeer) => p.name);
    for (const n of names)
      expect(
        turns.some((t) => t.peer === n),
        `${n} took a turn before the fault`,
      ).toBe(true);

    const victim = names[seed % names.length]!;
    const disk = disks.get(victim)!;
    if (seed % 2 === 0) disk.fill(0);
    else disk.flaky(1, 0);
    const faultAt = c.rt.now();
    c.rt.runFor(FAULT_MS);
    const during = turns.filter((t) => t.enter >= faultAt);
    expect(
      turns.filter((t) => t.gen > t.storedGen),
      'turns entered with a fencing token not stored',
    ).toEqual([]);
    // Allow one turn whose token was stored just before the fault began.
    expect(during.filter((t) => t.peer === victim).length).toBeLessThanOrEqual(1);
    for (const n of names.filter((x) => x !== victim))
      expect(
        during.filter((t) => t.peer === n).length,
        `${n}'s turns during the fault`,
      ).toBeGreaterThanOrEqual(HEALTHY_TURNS_MIN);
    expect(tok.get(victim)!.stats.unstoredTurns).toBeGreaterThan(0);

    disk.clear();
    const clearedAt = c.rt.now();
    expect(
      c.rt.runUntilTrue(() => turns.some((t) => t.peer === victim && t.enter >= clearedAt), 5_000),
      `${victim} takes turns again once writes work`,
    ).toBe(true);
    c.rt.runFor(1_000);

    // The resource's view: fencing tokens strictly rise and turns never overlap.
    for (let i = 1; i < turns.length; i++) {
      const [a, b] = [turns[i - 1]!, turns[i]!];
      expect(b.gen, `turn ${i} (${b.peer})`).toBeGreaterThan(a.gen);
      expect(a.exit, `turn ${i - 1} (${a.peer}) ended before turn ${i} began`).not.toBeNull();
      expect(a.exit!).toBeLessThanOrEqual(b.enter);
    }
    expect(c.handlerErrors()).toEqual([]);
  });
});

describe('token ring: a member whose disk fails confirms no claim it could not store', () => {
  it.each(SEEDS)('seed %i', async (seed) => {
    const { c, tok, disks, turns, confirms } = await setup(seed, 5);
    c.rt.runFor(3_000);
    const holding = () => c.peers.find((p) => tok.get(p.name)!.status().holding);
    expect(
      c.rt.runUntilTrue(() => holding() !== undefined, 2_000),
      'someone holds the token',
    ).toBe(true);
    const holder = holding();
    const others = c.peers.filter((p) => p !== holder);
    const victim = others[seed % others.length]!;
    const disk = disks.get(victim.name)!;
    if (seed % 2 === 0) disk.fill(0);
    else disk.flaky(1, 0);
    const regenerations = () =>
      others.reduce((n, p) => n + p.events.filter((e) => e.kind === 'token-regenerated').length, 0);
    const before = regenerations();
    await c.crash(holder!);
    const crashedAt = c.rt.now();
    c.rt.runFor(FAULT_MS);
    // The three healthy members are a majority of five without the victim: a new token, and turns.
    expect(regenerations(), 'a new token after the crash').toBeGreaterThan(before);
    for (const p of others.filter((x) => x !== victim))
      expect(
        turns.filter((t) => t.peer === p.name && t.enter > crashedAt).length,
        `${p.name}'s turns after the crash`,
      ).toBeGreaterThan(0);
    // Every confirm the victim said yes to was backed by a promise on its disk.
    const unstored = confirms.filter((x) => x.peer === victim.name && x.ok && x.e > x.storedPromise);
    expect(unstored, `${victim.name} confirmed claims it had not stored`).toEqual([]);
    expect(turns.filter((t) => t.gen > t.storedGen)).toEqual([]);
    expect(c.handlerErrors()).toEqual([]);
  });
});
