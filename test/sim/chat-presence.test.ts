/**
 * Who a person in the chat hears of: chat members only. A `peer up`, a worker or any peer without
 * chat, and a one-shot `peer chat --send`, are in the group but not in the chat: never announced
 * as joined or left (the one-shot sender's line still shows under its name). Found by a newcomer:
 * "ua joined" for a `peer up`, then /who said nobody was here. At 10 % loss with duplication and
 * reordering, so that a late heartbeat without the tag does not make a member flap.
 */
import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import { Chat, CHAT_TAG, type ChatLine, type Presence } from '../../src/p2p/chat.js';
import { ReliableDelivery } from '../../src/p2p/reliable/index.js';

const SEEDS = Array.from({ length: 20 }, (_, i) => i + 1);

/** Peers named up* run no chat (a `peer up`); s* are one-shot senders; the others read. */
async function harness(seed: number, names: string[]) {
  const chat = new Map<string, Chat>();
  const heard = new Map<string, string[]>();
  const lines = new Map<string, ChatLine[]>();
  const c = new SimCluster(
    seed,
    { loss: 0.1, duplicate: 0.05, delayMaxMs: 8 },
    PROFILES.lan,
    (node, peer) => {
      if (peer.name.startsWith('up')) return;
      const rel = node.install(
        (ctx, n) =>
          new ReliableDelivery(ctx, n.membership, {
            audience: (m) => m.tags[CHAT_TAG] === true,
          }),
      );
      const reader = !peer.name.startsWith('s');
      const ch = node.install((ctx, n) => new Chat(ctx, n.membership, rel, { reader }));
      chat.set(peer.name, ch);
      if (!heard.has(peer.name)) heard.set(peer.name, []);
      lines.set(peer.name, []);
      ch.onPresence((p: Presence) => heard.get(peer.name)!.push(`${p.member.name} ${p.kind}`));
      ch.onLine((l) => lines.get(peer.name)!.push(l));
    },
  );
  const peers = new Map<string, SimPeer>();
  for (const n of names) peers.set(n, await c.add(n));
  return { c, chat, heard, lines, peer: (n: string) => peers.get(n)! };
}

describe('chat presence (simulation)', () => {
  it.each(SEEDS)(
    'only chat members are announced and listed; a peer up and a one-shot sender are not, seed %i',
    async (seed) => {
      const h = await harness(seed, ['ana', 'bea', 'upa']);
      const who = (n: string) =>
        h.chat
          .get(n)!
          .members()
          .map((m) => m.name);
      expect(h.c.rt.runUntilTrue(() => h.c.converged() && who('ana').length === 1, 5_000)).toBe(true);
      expect(who('ana')).toEqual(['bea']);

      // A one-shot sender comes, speaks and leaves; a second `peer up` comes and goes.
      const sid = await h.c.add('sid');
      const upb = await h.c.add('upb');
      expect(h.c.rt.runUntilTrue(() => h.c.converged(), 5_000)).toBe(true);
      h.chat.get('sid')!.say('hello from sid');
      expect(
        h.c.rt.runUntilTrue(() => h.lines.get('ana')!.some((l) => l.text === 'hello from sid'), 5_000),
      ).toBe(true);
      expect(h.lines.get('ana')!.find((l) => l.text === 'hello from sid')!.fromName).toBe('sid');
      await h.c.leave(sid);
      await h.c.leave(upb);
      // bea leaves, then a reader crashes: both are announced, each once.
      const cid = await h.c.add('cid');
      expect(h.c.rt.runUntilTrue(() => h.heard.get('ana')!.includes('cid joined'), 5_000)).toBe(true);
      await h.c.leave(h.peer('bea'));
      await h.c.crash(cid);
      expect(h.c.rt.runUntilTrue(() => h.heard.get('ana')!.includes('cid gone'), 30_000)).toBe(true);
      h.c.rt.runFor(5_000);
      // A leave is a few unacknowledged datagrams: when all are lost bea is found gone instead.
      const [first, second, beaOut, last, ...more] = h.heard.get('ana')!;
      expect([first, second, last, more]).toEqual(['bea joined', 'cid joined', 'cid gone', []]);
      expect(beaOut).toMatch(/^bea (left|gone)$/);
      expect(who('ana')).toEqual([]);
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );
});
