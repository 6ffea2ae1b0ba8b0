import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import {
  Chat,
  CHAT_TAG,
  CHAT_HISTORY_KEEP_BYTES_MAX,
  CHAT_TEXT_BYTES_MAX,
  ChatError,
  LamportOrderer,
  lamportOrder,
  type ChatLine,
} from '../../src/p2p/chat.js';
import { ReliableDelivery, type AckStatus, type SendResult } from '../../src/p2p/reliable/index.js';
import type { MemberView, ProtocolContext } from '../../src/p2p/protocol.js';
import { Codec, PROTOCOL_VERSION } from '../../src/p2p/wire.js';

const SEEDS = Array.from({ length: 30 }, (_, i) => i + 1);

interface H {
  c: SimCluster;
  chat: Map<SimPeer, Chat>;
  lines: Map<SimPeer, ChatLine[]>;
  reliable: Map<SimPeer, ReliableDelivery>;
}

/** Every peer whose name does not start with "plain" runs chat, as `peer chat` installs it. */
async function harness(
  seed: number,
  names: string[],
  faults = {},
  historyWanted = 20,
  history: ChatLine[] = [],
): Promise<H> {
  const chat = new Map<SimPeer, Chat>();
  const lines = new Map<SimPeer, ChatLine[]>();
  const reliable = new Map<SimPeer, ReliableDelivery>();
  const c = new SimCluster(seed, faults, PROFILES.lan, (node, peer) => {
    if (peer.name.startsWith('plain')) return;
    const rel = node.install(
      (ctx, n) =>
        new ReliableDelivery(ctx, n.membership, {
          audience: (m) => m.tags[CHAT_TAG] === true,
        }),
    );
    const ch = node.install((ctx, n) => new Chat(ctx, n.membership, rel, { historyWanted, history }));
    reliable.set(peer, rel);
    chat.set(peer, ch);
    lines.set(peer, []);
    ch.onLine((l) => lines.get(peer)!.push(l));
  });
  for (const n of names) await c.add(n);
  return { c, chat, lines, reliable };
}

const chatConverged = (h: H) =>
  [...h.chat.entries()].every(([p, ch]) => ch.members().length === h.chat.size - 1 && p.up);

describe('chat (simulation)', () => {
  it.each(SEEDS)(
    'a late joiner receives the last lines once each, in Lamport order, under 10 %% loss, seed %i',
    async (seed) => {
      const h = await harness(seed, ['alice', 'bob', 'carol'], { loss: 0.1, duplicate: 0.03, delayMaxMs: 4 });
      expect(h.c.rt.runUntilTrue(() => chatConverged(h), 5_000)).toBe(true);
      const [a, b] = h.c.peers as [SimPeer, SimPeer];
      for (let i = 0; i < 15; i++) {
        h.chat.get(a)!.say(`a${i}`);
        h.chat.get(b)!.say(`b${i}`);
        h.c.rt.runFor(5);
      }
      h.c.rt.runFor(1_000);
      const dave = await h.c.add('dave');
      expect(h.c.rt.runUntilTrue(() => h.lines.get(dave)!.length >= 20, 5_000)).toBe(true);
      h.c.rt.runFor(500);
      const got = h.lines.get(dave)!;
      expect(got).toHaveLength(20);
      expect(got.every((l) => l.history)).toBe(true);
      expect(new Set(got.map((l) => l.id)).size).toBe(20);
      // Exactly the 20 most recent of the 30, as the member that answered orders them.
      const all = h.chat.get(a)!.recent(30);
      expect(all).toHaveLength(30);
      expect(got.map((l) => l.id)).toEqual(all.slice(-20).map((l) => l.id));
      // Live lines after joining arrive too, not marked as history.
      h.chat.get(b)!.say('welcome dave');
      expect(h.c.rt.runUntilTrue(() => got.some((l) => l.text === 'welcome dave' && !l.history), 3_000)).toBe(
        true,
      );
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 10))(
    'a direct message reaches only its target; group acks ignore peers not running chat, seed %i',
    async (seed) => {
      const h = await harness(seed, ['alice', 'bob', 'carol', 'plain-up'], { loss: 0.05, delayMaxMs: 3 });
      expect(h.c.rt.runUntilTrue(() => chatConverged(h), 5_000)).toBe(true);
      const [a, b, c] = h.c.peers as [SimPeer, SimPeer, SimPeer];
      let dm: SendResult | undefined;
      h.chat.get(a)!.whisper(b.node.id, 'secret', (r) => (dm = r));
      let st: AckStatus | undefined;
      h.chat.get(a)!.say('public', (s) => (st = s));
      expect(h.c.rt.runUntilTrue(() => dm !== undefined && st !== undefined, 3_000)).toBe(true);
      expect(dm!.ok).toBe(true);
      expect(st!.complete).toBe(true);
      expect(st!.acked.sort()).toEqual([b.node.id, c.node.id].sort());
      const bLine = h.lines.get(b)!.find((l) => l.text === 'secret')!;
      expect(bLine).toMatchObject({ from: a.node.id, fromName: 'alice', to: b.node.id, toName: 'bob' });
      expect(h.lines.get(c)!.some((l) => l.text === 'secret')).toBe(false);
      expect(h.lines.get(c)!.filter((l) => l.text === 'public')).toHaveLength(1);
    },
  );

  it.each(SEEDS.slice(0, 5))(
    "lines piped in one burst show in the sender's order on every listener, with rising Lamport times, seed %i",
    async (seed) => {
      const h = await harness(seed, ['alice', 'bob', 'carol'], { loss: 0.1, delayMaxMs: 4 }, 0);
      expect(h.c.rt.runUntilTrue(() => chatConverged(h), 5_000)).toBe(true);
      const [a, ...listeners] = h.c.peers as [SimPeer, ...SimPeer[]];
      const texts = Array.from({ length: 50 }, (_, i) => `line${i + 1}`);
      const sent = texts.map((t) => h.chat.get(a)!.say(t));
      expect(sent.every((l, i) => i === 0 || l.lamport > sent[i - 1]!.lamport)).toBe(true);
      expect(
        h.chat
          .get(a)!
          .recent(50)
          .map((l) => l.text),
      ).toEqual(texts);
      for (const r of listeners) {
        const got = () => h.lines.get(r)!.filter((l) => l.from === a.node.id);
        expect(h.c.rt.runUntilTrue(() => got().length === texts.length, 3_000)).toBe(true);
        expect(got().map((l) => [l.text, l.lamport])).toEqual(sent.map((l) => [l.text, l.lamport]));
        // What the reader shows: the display orderer, fed in whatever order lines came.
        const o = new LamportOrderer(0);
        for (const l of [...got()].reverse()) o.push(l, 0);
        expect(o.drain(0).map((l) => l.text)).toEqual(texts);
      }
    },
  );

  it('a history line stamped later than the message serving it is refused: its time would outlast the forger', async () => {
    const h = await harness(7, ['alice', 'bob'], {}, 0);
    expect(h.c.rt.runUntilTrue(() => chatConverged(h), 5_000)).toBe(true);
    const [a, b] = h.c.peers as [SimPeer, SimPeer];
    // A stranger (its own id and address) serves bob two history lines, one stamped after the
    // message that carries it (within the counter bound, so only this rule refuses it).
    // Its datagrams come from a ReliableDelivery of its own, so they are well formed.
    const strangerId = 'e'.repeat(16);
    const out: Array<{ body: unknown; att: Buffer }> = [];
    const ctx: ProtocolContext = {
      self: { id: strangerId, name: 'mallory', incarnation: 1 },
      now: () => 0,
      wall: () => 0,
      random: () => 0,
      lamport: () => 5,
      stamp: () => 5, // the time of each history message; its envelope says 10
      broadcast: () => 0,
      send: (_to, _t, body, att) => (out.push({ body, att: Buffer.from(att!) }), 0),
      emit: () => {},
      refuse: () => {},
      soon: (fn) => fn(), // unused: sendTo() sends at once
      sendFrame: () => {},
      bodyBytesMax: () => 0, // reliable delivery sizes its datagrams itself (datagram.ts)
      wakeAt: () => {},
    };
    const bob: MemberView = {
      id: b.node.id,
      name: 'bob',
      address: b.address,
      state: 'alive',
      incarnation: 1,
      lastSeenMs: 0,
      duplicateName: false,
      tags: {},
    };
    const rd = new ReliableDelivery(ctx, { live: () => [bob], get: () => bob });
    for (const [text, lamport] of [
      ['kept', 3],
      ['forged', 1_000_000],
    ] as const)
      rd.sendTo(
        b.node.id,
        'chat.h',
        JSON.stringify([`${strangerId}/1/${lamport}`, a.node.id, 'alice', null, null, text, lamport, 0]),
      );
    const codec = new Codec(rd.messages, rd.attachments);
    const stranger = h.c.net.transport();
    await stranger.start(() => {});
    for (const { body, att } of out)
      stranger.send(
        b.address,
        codec.encode(
          { v: PROTOCOL_VERSION, t: 'rm.u', i: strangerId, n: 'mallory', c: 1, s: 1, l: 10, b: body },
          att,
        ),
      );
    h.c.rt.runFor(50);
    expect(h.lines.get(b)!.map((l) => [l.text, l.lamport])).toEqual([['kept', 3]]);
    expect(b.node.stats.refused.lamport).toBe(1);
    await stranger.close();
  });

  it('rejects empty and oversized text with a clear error', () => {
    expect(() => Chat.checkText('')).toThrow(ChatError);
    expect(() => Chat.checkText('x'.repeat(CHAT_TEXT_BYTES_MAX))).not.toThrow();
    expect(() => Chat.checkText('x'.repeat(CHAT_TEXT_BYTES_MAX + 1))).toThrow(/over the \d+-byte limit/);
    expect(() => Chat.checkText('x'.repeat(CHAT_TEXT_BYTES_MAX + 1))).toThrow(/--send-file/);
  });
});

/** A long text of `bytes` UTF-8 bytes, many lines, several scripts, so a misplaced fragment shows. */
function longText(bytes: number, tag: string): string {
  const line = (i: number) => `${tag} line ${i}: naïve façade — 日本語 ✓\n`;
  const lines: string[] = [];
  let n = 0;
  for (let i = 0; n < bytes - 100; i++) {
    lines.push(line(i));
    n += ReliableDelivery.payloadBytes(line(i));
  }
  return lines.join('') + 'x'.repeat(bytes - n);
}

describe('long chat messages (simulation)', () => {
  it.each(SEEDS.slice(0, 8))(
    "a 1 MiB line among bursts of short ones under loss: each sender's lines in its order, the long one whole, seed %i",
    async (seed) => {
      const h = await harness(
        seed,
        ['alice', 'bob', 'carol'],
        { loss: 0.1, duplicate: 0.03, delayMaxMs: 4 },
        0,
      );
      expect(h.c.rt.runUntilTrue(() => chatConverged(h), 5_000)).toBe(true);
      // Until its next tick a sender has not met a member chat just saw: it would not wait for
      // that member's acks of what it published before (reliable-delivery.ts), nor order by them.
      h.c.rt.runFor(PROFILES.lan.tickMs * 2);
      const [a, b, c] = h.c.peers as [SimPeer, SimPeer, SimPeer];
      const big = longText(CHAT_TEXT_BYTES_MAX, 'alice');
      expect(ReliableDelivery.payloadBytes(big)).toBe(CHAT_TEXT_BYTES_MAX);
      const sent = new Map<SimPeer, string[]>([
        [a, []],
        [b, []],
      ]);
      const say = (p: SimPeer, text: string) => {
        h.chat.get(p)!.say(text);
        sent.get(p)!.push(text);
      };
      let bigSettled: AckStatus | undefined;
      for (let i = 0; i < 30; i++) {
        if (i === 10) {
          h.chat.get(a)!.say(big, (s) => (bigSettled = s));
          sent.get(a)!.push(big);
        }
        say(a, `a${i}`);
        say(b, `b${i}`);
        if (i % 5 === 0) h.c.rt.runFor(3);
      }
      const received = (r: SimPeer, from: SimPeer) =>
        h.lines
          .get(r)!
          .filter((l) => l.from === from.node.id)
          .map((l) => l.text);
      const done = () =>
        received(b, a).length === 31 && received(c, a).length === 31 && received(c, b).length === 30;
      expect(h.c.rt.runUntilTrue(done, 30_000)).toBe(true);
      h.c.rt.runFor(500);
      for (const r of [b, c]) expect(received(r, a)).toEqual(sent.get(a));
      expect(received(c, b)).toEqual(sent.get(b));
      expect(received(a, b)).toEqual(sent.get(b));
      expect(h.c.rt.runUntilTrue(() => bigSettled !== undefined, 10_000)).toBe(true);
      expect(bigSettled!.complete).toBe(true);
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 4))(
    'a late joiner gets a 1 MiB line in its history, whole and once, seed %i',
    async (seed) => {
      const h = await harness(seed, ['alice', 'bob'], { loss: 0.05, delayMaxMs: 3 });
      expect(h.c.rt.runUntilTrue(() => chatConverged(h), 5_000)).toBe(true);
      const [a] = h.c.peers as [SimPeer];
      const big = longText(CHAT_TEXT_BYTES_MAX, 'history');
      h.chat.get(a)!.say('before');
      h.chat.get(a)!.say(big);
      h.chat.get(a)!.say('after');
      h.c.rt.runFor(2_000);
      const dave = await h.c.add('dave');
      const got = () => h.lines.get(dave)!;
      expect(h.c.rt.runUntilTrue(() => got().length >= 3, 10_000)).toBe(true);
      h.c.rt.runFor(500);
      // In display order (history is unicast, and reliable delivery keeps no order across its lanes there).
      expect([...got()].sort(lamportOrder).map((l) => l.text)).toEqual(['before', big, 'after']);
      expect(got().every((l) => l.history)).toBe(true);
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );

  it('a received text over the limit is refused and counted, one at the limit is shown', async () => {
    const h = await harness(3, ['alice', 'bob'], {}, 0);
    expect(h.c.rt.runUntilTrue(() => chatConverged(h), 5_000)).toBe(true);
    const [a, b] = h.c.peers as [SimPeer, SimPeer];
    // Sent below Chat, as a peer that skips its own check would.
    const rel = h.reliable.get(a)!;
    rel.publish('chat', `0 ${'y'.repeat(CHAT_TEXT_BYTES_MAX + 1)}`);
    rel.publish('chat', `0 ${'z'.repeat(CHAT_TEXT_BYTES_MAX)}`);
    expect(h.c.rt.runUntilTrue(() => h.lines.get(b)!.length === 1, 10_000)).toBe(true);
    h.c.rt.runFor(500);
    expect(h.lines.get(b)!.map((l) => l.text.length)).toEqual([CHAT_TEXT_BYTES_MAX]);
    expect(b.node.stats.refused['chat-text']).toBe(1);
  });

  it('lines kept in memory are bounded in bytes, the newest kept', async () => {
    const stored: ChatLine[] = Array.from({ length: 40 }, (_, i) => ({
      id: `${'a'.repeat(16)}/1/${i + 1}`,
      from: 'a'.repeat(16),
      fromName: 'alice',
      to: null,
      toName: null,
      text: `${i} ${'x'.repeat(CHAT_TEXT_BYTES_MAX - 3)}`,
      lamport: i + 1,
      at: 0,
      history: false,
    }));
    const h = await harness(4, ['bob'], {}, 0, stored);
    const kept = h.chat.get(h.c.peers[0]!)!.recent(500);
    const bytes = kept.reduce((n, l) => n + ReliableDelivery.payloadBytes(l.text), 0);
    expect(bytes).toBeLessThanOrEqual(CHAT_HISTORY_KEEP_BYTES_MAX);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.at(-1)!.id).toBe(stored.at(-1)!.id);
  });
});

describe('display order', () => {
  const line = (lamport: number, from: string, id: string): ChatLine => ({
    id,
    from,
    fromName: from,
    to: null,
    toName: null,
    text: id,
    lamport,
    at: 0,
    history: false,
  });

  it('holds lines briefly and releases them in Lamport order', () => {
    const o = new LamportOrderer(100);
    o.push(line(7, 'b', 'reply'), 0);
    expect(o.drain(50)).toEqual([]);
    o.push(line(5, 'a', 'original'), 60); // repaired late, but sorts first
    expect(o.drain(100).map((l) => l.id)).toEqual(['original', 'reply']);
    expect(o.size).toBe(0);
    o.push(line(9, 'a', 'x'), 200);
    o.push(line(9, 'b', 'y'), 250);
    expect(o.drain(300).map((l) => l.id)).toEqual(['x']);
    expect(o.drain(350).map((l) => l.id)).toEqual(['y']);
    o.push(line(3, 'c', 'late'), 400);
    expect(o.drain(Infinity).map((l) => l.id)).toEqual(['late']);
  });

  it('says when it next releases a line, and nothing while it holds none (the display waits for it)', () => {
    const o = new LamportOrderer(100);
    expect(o.nextDueAt()).toBeNull();
    o.push(line(7, 'b', 'reply'), 10);
    o.push(line(5, 'a', 'original'), 60);
    expect(o.nextDueAt()).toBe(110);
    expect(o.drain(109)).toEqual([]);
    expect(o.drain(o.nextDueAt()!).map((l) => l.id)).toEqual(['original', 'reply']);
    expect(o.nextDueAt()).toBeNull();
  });

  it("orders one sender's lines of equal Lamport time by its sequence, not by the id's text", () => {
    const o = new LamportOrderer(0);
    const ids = ['a/1/2', 'a/1/10', 'a/2/1', 'a/1/1', 'a/1/9'];
    for (const id of ids) o.push(line(4, 'a', id), 0);
    expect(o.drain(0).map((l) => l.id)).toEqual(['a/1/1', 'a/1/2', 'a/1/9', 'a/1/10', 'a/2/1']);
  });
});

describe('chat re-sync after a partition (simulation)', () => {
  it.each(SEEDS.slice(0, 15))(
    'a reader cut off while a sender came, spoke and left gets the line once the partition heals, seed %i',
    async (seed) => {
      const h = await harness(seed, ['alice', 'bob', 'carol'], { loss: 0.1, delayMaxMs: 3 }, 0);
      expect(h.c.rt.runUntilTrue(() => chatConverged(h), 5_000)).toBe(true);
      const [alice, bob, carol] = h.c.peers as [SimPeer, SimPeer, SimPeer];
      h.c.setDown(carol, true);
      h.c.rt.runFor(PROFILES.lan.membership.deadAfterMs + 500);
      // A sender that only ever knew alice and bob: it speaks, is acknowledged, and leaves.
      const zed = await h.c.add('zed');
      expect(h.c.rt.runUntilTrue(() => h.chat.get(zed)!.members().length === 2, 3_000)).toBe(true);
      let settled: AckStatus | undefined;
      h.chat.get(zed)!.say('said while carol was away', (s) => (settled = s));
      expect(h.c.rt.runUntilTrue(() => settled?.complete === true, 5_000)).toBe(true);
      await h.c.leave(zed);
      h.c.rt.runFor(500);
      h.c.setDown(carol, false);
      const got = () => h.lines.get(carol)!.filter((l) => l.text === 'said while carol was away');
      expect(h.c.rt.runUntilTrue(() => got().length > 0, 5_000)).toBe(true);
      h.c.rt.runFor(1_000);
      expect(got()).toHaveLength(1);
      for (const p of [alice, bob])
        expect(h.lines.get(p)!.filter((l) => l.text === 'said while carol was away')).toHaveLength(1);
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );
});
