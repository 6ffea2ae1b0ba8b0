/**
 * Token ring fairness around a reconfiguration. A holder that has just used its token and must
 * remake it for a new quorum set (a peer died during its turn) gets a fresh token; that token
 * must still move on, as the used one would have, and not give the same holder a second turn in a
 * row while another peer has been waiting (found on a namespace LAN: `--exec` re-asks at once).
 */
import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { PROFILES } from '../../src/p2p/config.js';
import { TokenRing } from '../../src/p2p/token-ring/index.js';

const T = PROFILES.lan.tokenRing;
/** P's turn outlasts the dead peer's detection (dead after ~1.1 s), so P reconfigures right after it. */
const LONG_TURN_MS = 2_500;
const SHORT_TURN_MS = 50;

interface Turn {
  peer: string;
  gen: number;
  at: number;
}

async function setup(seed: number) {
  const tok = new Map<SimPeer, TokenRing>();
  const c: SimCluster = new SimCluster(seed, { delayMaxMs: 2 }, PROFILES.lan, (node, peer) => {
    tok.set(
      peer,
      node.install((ctx, nd) => new TokenRing(ctx, nd.membership, { timings: T })),
    );
  });
  for (let i = 0; i < 4; i++) await c.add(`p${i}`);
  const turns: Turn[] = [];
  for (const p of c.peers)
    p.node.on((e) => {
      if (e.kind === 'token-enter') turns.push({ peer: p.name, gen: e.generation, at: c.rt.now() });
    });
  return { c, tok, turns };
}

describe('token ring: a reconfiguring holder passes its used token on', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('seed %i', async (seed) => {
    const { c, tok, turns } = await setup(seed);
    c.rt.runFor(2_000);
    const [P, Q, , D] = c.peers as [SimPeer, SimPeer, SimPeer, SimPeer];
    // P asks again the moment its turn ends, as `peer token-ring --exec/--hold` does.
    let pTurns = 0;
    P.node.on((e) => {
      if (e.kind === 'token-exit' && ++pTurns === 1) tok.get(P)!.request(SHORT_TURN_MS);
    });
    tok.get(P)!.request(LONG_TURN_MS);
    expect(c.rt.runUntilTrue(() => tok.get(P)!.inCriticalSection, 2_000)).toBe(true);
    // D dies during P's turn; Q asks and waits.
    await c.crash(D);
    tok.get(Q)!.request(SHORT_TURN_MS);
    const qAskedAt = c.rt.now();
    expect(c.rt.runUntilTrue(() => turns.filter((t) => t.peer === Q.name).length > 0, 6_000)).toBe(true);
    c.rt.runFor(1_000);
    // P's turn ended after D was seen dead, so P remade the token for the ring without D ...
    expect(
      P.events.some((e) => e.kind === 'token-regenerated' && e.reason === 'reconfigure' && e.ring === 3),
    ).toBe(true);
    // ... and the next turn after P's first is Q's (waiting since before it), not P's again.
    const pFirst = turns.findIndex((t) => t.peer === P.name && t.at <= qAskedAt);
    expect(pFirst).toBeGreaterThanOrEqual(0);
    expect(turns[pFirst + 1]?.peer).toBe(Q.name);
    // Fencing tokens still rise turn after turn.
    for (let i = 1; i < turns.length; i++) expect(turns[i]!.gen).toBeGreaterThan(turns[i - 1]!.gen);
    expect(c.handlerErrors()).toEqual([]);
  });
});

/**
 * After a skip (the successor died but is not yet known dead), the next holder's token is on a
 * new branch, and the others back it only once their last lease ack has expired. A holder that
 * wants its turn must wait that long (leaseWaitMs > leaseMs + leaseGuardMs) rather than give up,
 * or it loses its visit and the ring is not fair ("enters within one rotation").
 */
describe('token ring: no visit is lost after a skip', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('seed %i', async (seed) => {
    const { c, tok, turns } = await setup(seed);
    c.rt.runFor(2_000);
    // Every peer wants a short turn at every visit, as `peer token-ring --hold 20` does.
    for (const p of c.peers) {
      tok.get(p)!.request(SHORT_TURN_MS);
      p.node.on((e) => {
        if (e.kind === 'token-exit') tok.get(p)!.request(SHORT_TURN_MS);
      });
    }
    c.rt.runFor(1_000);
    const D = c.peers[3]!;
    if (tok.get(D)!.inCriticalSection) c.rt.runUntilTrue(() => !tok.get(D)!.inCriticalSection, 1_000);
    const from = turns.length;
    await c.crash(D);
    c.rt.runFor(8_000);
    const after = turns.slice(from).filter((t) => t.peer !== D.name);
    expect(after.length).toBeGreaterThan(6);
    // Between two turns of one live peer, each other live peer has exactly one turn.
    const live = c.live().map((p) => p.name);
    for (const name of live) {
      const idx = after.map((t, i) => (t.peer === name ? i : -1)).filter((i) => i >= 0);
      for (let k = 1; k < idx.length; k++) {
        const between = after.slice(idx[k - 1]! + 1, idx[k]!).map((t) => t.peer);
        expect(between.sort(), `${name}'s visits ${k - 1} and ${k}`).toEqual(
          live.filter((n) => n !== name).sort(),
        );
      }
    }
    for (let i = 1; i < turns.length; i++) expect(turns[i]!.gen).toBeGreaterThan(turns[i - 1]!.gen);
    expect(c.handlerErrors()).toEqual([]);
  });
});
