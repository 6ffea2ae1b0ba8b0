/**
 * One-shot senders (`peer chat --send`, piped stdin) are not chat readers: a sender waits for the
 * acks of readers only, so another one-shot sender that leaves meanwhile does not make its message
 * "not delivered". Found by the LAN test (two concurrent --send senders: one exited 1 naming the
 * other as gone).
 */
import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import { Chat, CHAT_TAG, type ChatLine } from '../../src/p2p/chat.js';
import { ReliableDelivery, type AckStatus } from '../../src/p2p/reliable/index.js';

const SEEDS = Array.from({ length: 20 }, (_, i) => i + 1);

/** Peers named s* run chat as one-shot senders (reader: false), the others as readers. */
async function harness(seed: number, names: string[]) {
  const chat = new Map<SimPeer, Chat>();
  const lines = new Map<SimPeer, ChatLine[]>();
  const c = new SimCluster(
    seed,
    { loss: 0.1, duplicate: 0.03, delayMaxMs: 4 },
    PROFILES.lan,
    (node, peer) => {
      const rel = node.install(
        (ctx, n) =>
          new ReliableDelivery(ctx, n.membership, {
            audience: (m) => m.tags[CHAT_TAG] === true,
          }),
      );
      const reader = !peer.name.startsWith('s');
      const ch = node.install((ctx, n) => new Chat(ctx, n.membership, rel, { reader }));
      chat.set(peer, ch);
      lines.set(peer, []);
      ch.onLine((l) => lines.get(peer)!.push(l));
    },
  );
  for (const n of names) await c.add(n);
  return { c, chat, lines };
}

describe('chat one-shot senders (simulation)', () => {
  it.each(SEEDS)(
    'a sender waits for readers only; another sender leaving does not fail it, seed %i',
    async (seed) => {
      const h = await harness(seed, ['ana', 'bea', 'sid', 'sol']);
      const [ana, bea, sid, sol] = h.c.peers as [SimPeer, SimPeer, SimPeer, SimPeer];
      const readers = [ana, bea];
      // Everyone sees everyone; readers list only each other, senders list the two readers.
      const count = (p: SimPeer) => h.chat.get(p)!.members().length;
      expect(
        h.c.rt.runUntilTrue(
          () =>
            h.c.converged() && count(ana) === 1 && count(bea) === 1 && count(sid) === 2 && count(sol) === 2,
          5_000,
        ),
      ).toBe(true);
      expect(
        h.chat
          .get(ana)!
          .members()
          .map((m) => m.name),
      ).toEqual(['bea']);

      let st: AckStatus | undefined;
      h.chat.get(sid)!.say('from sid', (s) => (st = s));
      await h.c.leave(sol); // another --send finishing at that moment, before it could ack
      expect(h.c.rt.runUntilTrue(() => st !== undefined, 5_000)).toBe(true);
      expect(st!.complete).toBe(true);
      expect(st!.gone).toEqual([]);
      expect(new Set(st!.acked)).toEqual(new Set(readers.map((p) => p.node.id)));
      for (const r of readers) {
        h.c.rt.runUntilTrue(() => h.lines.get(r)!.some((l) => l.text === 'from sid'), 5_000);
        expect(h.lines.get(r)!.filter((l) => l.text === 'from sid')).toHaveLength(1);
      }
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );
});
