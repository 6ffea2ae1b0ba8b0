/**
 * History is validated like datagrams: lines a member loaded from its store and history items a
 * member sends are checked against the wire's limits (names as the envelope's `n`, text size, a
 * Lamport time below the bounds), so a damaged row or a forged item is never shown or re-served.
 */
import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import {
  Chat,
  CHAT_HISTORY_TOPIC,
  CHAT_TAG,
  CHAT_TEXT_BYTES_MAX,
  type ChatLine,
} from '../../src/p2p/chat.js';
import { ReliableDelivery } from '../../src/p2p/reliable/index.js';

const ALICE_ID = 'a'.repeat(16);
const stored = (id: string, extra: Partial<ChatLine> = {}): ChatLine => ({
  id: `${ALICE_ID}/1/${id}`,
  from: ALICE_ID,
  fromName: 'alice',
  to: null,
  toName: null,
  text: `line ${id}`,
  lamport: Number(id),
  at: 1_700_000_000_000,
  history: false,
  ...extra,
});

interface Peer {
  chat: Chat;
  reliable: ReliableDelivery;
  lines: ChatLine[];
}

async function cluster(history: Map<string, ChatLine[]>) {
  const peers = new Map<SimPeer, Peer>();
  const c = new SimCluster(7, {}, PROFILES.lan, (node, peer) => {
    const reliable = node.install(
      (ctx, n) =>
        new ReliableDelivery(ctx, n.membership, {
          audience: (m) => m.tags[CHAT_TAG] === true,
        }),
    );
    const chat = node.install(
      (ctx, n) =>
        new Chat(ctx, n.membership, reliable, { history: history.get(peer.name) ?? [], historyWanted: 20 }),
    );
    const lines: ChatLine[] = [];
    chat.onLine((l) => lines.push(l));
    peers.set(peer, { chat, reliable, lines });
  });
  return { c, peers };
}

describe('chat history is validated like datagrams', () => {
  it('a member never loads or serves stored lines that break the wire limits', async () => {
    const good = stored('1');
    const bad = [
      stored('2', { fromName: 'mallory\x1b]0;pwned\x07' }), // a name the wire would refuse
      stored('3', { fromName: 'eve\u202e' }),
      stored('4', { lamport: Number.MAX_SAFE_INTEGER }), // past the counter bound
      stored('5', { text: 'x'.repeat(CHAT_TEXT_BYTES_MAX + 1) }),
      stored('6', { from: 'not-an-id' }),
      stored('7', { to: ALICE_ID, toName: '' }),
    ];
    const { c, peers } = await cluster(new Map([['alice', [good, ...bad]]]));
    const alice = await c.add('alice');
    expect(peers.get(alice)!.chat.stats.storedRejected).toBe(bad.length);
    expect(
      peers
        .get(alice)!
        .chat.recent(50)
        .map((l) => l.id),
    ).toEqual([good.id]);
    c.rt.runFor(1_000);
    const bob = await c.add('bob');
    const got = peers.get(bob)!.lines;
    expect(c.rt.runUntilTrue(() => got.length >= 1, 5_000)).toBe(true);
    c.rt.runFor(1_000);
    expect(got.map((l) => l.id)).toEqual([good.id]);
    expect(c.handlerErrors()).toEqual([]);
  });

  it('a newcomer drops history items with control characters in a name, or an unbounded Lamport time', async () => {
    const { c, peers } = await cluster(new Map());
    const alice = await c.add('alice');
    const bob = await c.add('bob');
    const [a, b] = [peers.get(alice)!, peers.get(bob)!];
    expect(
      c.rt.runUntilTrue(() => a.chat.members().length === 1 && b.chat.members().length === 1, 5_000),
    ).toBe(true);
    const item = (l: ChatLine) =>
      JSON.stringify([l.id, l.from, l.fromName, l.to, l.toName, l.text, l.lamport, l.at]);
    const forged = [
      stored('2', { fromName: 'mallory\x1b[2J' }),
      stored('3', { toName: 'x\u2066', to: b.chat.members()[0]!.id }),
      stored('4', { lamport: Number.MAX_SAFE_INTEGER }),
    ];
    const before = b.chat.stats.malformed;
    for (const l of forged) a.reliable.sendTo(bob.node.id, CHAT_HISTORY_TOPIC, item(l));
    a.reliable.sendTo(bob.node.id, CHAT_HISTORY_TOPIC, item(stored('9')));
    expect(c.rt.runUntilTrue(() => b.lines.some((l) => l.id === stored('9').id), 5_000)).toBe(true);
    expect(b.lines.map((l) => l.id)).toEqual([stored('9').id]);
    expect(b.chat.stats.malformed - before).toBe(forged.length);
    expect(c.handlerErrors()).toEqual([]);
  });
});
