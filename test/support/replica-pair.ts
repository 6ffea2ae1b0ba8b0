import { Codec, PROTOCOL_VERSION, bodyBytesMax, type Envelope } from '../../src/p2p/wire.js';
import type { ProtocolContext } from '../../src/p2p/protocol.js';
import type { Address } from '../../src/p2p/transport/transport.js';
import type { Tags } from '../../src/p2p/membership.js';
import {
  REPLICA_TAG,
  Replication,
  contentDigest,
  envelopeOverhead,
  type Directory,
  type ReplicaSet,
  type ReplicaSink,
} from '../../src/p2p/replication/index.js';
import { mix32 } from '../../src/p2p/replication/hash.js';
import { MESSAGES } from '../../src/p2p/replication/messages.js';

export interface PairResult {
  converged: boolean;
  /** Encoded envelope bytes both ways, every rp.* datagram counted. */
  bytes: number;
  datagrams: number;
  bytesByType: Record<string, number>;
  fetched: number;
  pushed: number;
  sessions: number;
  virtualMs: number;
}

/**
 * Reconciles two in-memory replicas with the real protocol over a lossless in-memory link and
 * counts the bytes: for benchmarks (bytes exchanged against the bytes of the differing lines).
 * `a` initiates sessions until both digests agree; both sets are modified in place.
 */
export function reconcilePair(
  a: ReplicaSet,
  b: ReplicaSet,
  opts: { virtualMsMax?: number; tickMs?: number } = {},
): PairResult {
  const tickMs = opts.tickMs ?? 25;
  const res: PairResult = {
    converged: false,
    bytes: 0,
    datagrams: 0,
    bytesByType: {},
    fetched: 0,
    pushed: 0,
    sessions: 0,
    virtualMs: 0,
  };
  let now = 0;
  const queue: Array<{ to: number; env: Envelope; from: Address }> = [];
  const ids = ['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb'];
  const addrs = ['a:1', 'b:1'];
  const codec = new Codec(MESSAGES.checks);
  const sets = [a, b];
  const protos: Replication[] = [];
  const tags: Tags[] = [{}, {}];
  const seqs = [0, 0];
  // Each side's Lamport clock starts above every entry it holds and merges what it receives, as
  // a node's does (see ENTRY_LAMPORT_AHEAD_MAX).
  const clocks = sets.map((s) => s.entries.reduce((m, e) => Math.max(m, e.lamport), 0));
  for (let i = 0; i < 2; i++) {
    const other = 1 - i;
    const transmit = (to: number, type: string, body: unknown) => {
      const env: Envelope = {
        v: PROTOCOL_VERSION,
        t: type,
        i: ids[i]!,
        n: `h${i}`,
        c: 1,
        s: ++seqs[i]!,
        l: ++clocks[i]!,
        b: body,
      };
      const data = codec.encode(env);
      res.bytes += data.length;
      res.datagrams++;
      res.bytesByType[type] = (res.bytesByType[type] ?? 0) + data.length;
      const decoded = codec.decode(data);
      if (!decoded.ok) throw new Error(`pair harness: ${type} failed to decode (${decoded.reason})`);
      queue.push({ to, env: decoded.env, from: addrs[i]! });
      return clocks[i]!;
    };
    const ctx: ProtocolContext = {
      self: { id: ids[i]!, name: `h${i}`, incarnation: 1 },
      now: () => now,
      wall: () => now,
      random: seededUnit(i + 1),
      lamport: () => clocks[i]!,
      stamp: () => ++clocks[i]!,
      broadcast: (type, body) => transmit(other, type, body),
      send: (_to, type, body) => transmit(other, type, body),
      soon: (fn) => fn(),
      sendFrame: () => {},
      bodyBytesMax: (type) => bodyBytesMax(type, `h${i}`),
      wakeAt: () => {},
      refuse: () => {},
      emit: (e) => {
        if (e.kind === 'replica-sync' && i === 0) {
          res.sessions++;
          res.fetched += e.fetched;
          res.pushed += e.pushed;
        }
      },
    };
    const dir: Directory = {
      list: () => [
        {
          id: ids[other]!,
          name: `h${other}`,
          address: addrs[other]!,
          state: 'alive',
          incarnation: 1,
          lastSeenMs: 0,
          duplicateName: false,
          tags: { [REPLICA_TAG]: `${sets[other]!.digest()}:${sets[other]!.size}` },
        },
      ],
      get ownTags() {
        return tags[i]!;
      },
      setTags: (t) => (tags[i] = t),
    };
    const sink: ReplicaSink = {
      set: sets[i]!,
      apply: (es) => {
        const r = sets[i]!.plan(es);
        for (const e of [...r.added, ...r.replaced]) sets[i]!.resolve(e);
        return r;
      },
      flush: () => true,
      rewriteCanonical: () => contentDigest(sets[i]!.canonical()),
    };
    protos.push(
      new Replication(ctx, dir, { sink, envelopeBytes: envelopeOverhead(`h${i}`), passive: i === 1 }),
    );
  }
  const limit = opts.virtualMsMax ?? 600_000;
  while (now <= limit) {
    for (const p of protos) p.tick(now);
    while (queue.length > 0) {
      const { to, env, from } = queue.shift()!;
      clocks[to] = Math.max(clocks[to]!, env.l) + 1;
      protos[to]!.onMessage(env, from);
    }
    if (a.digest() === b.digest() && a.size === b.size && !protos[0]!.syncing) {
      res.converged = true;
      break;
    }
    now += tickMs;
  }
  res.virtualMs = now;
  return res;
}

function seededUnit(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    return mix32(s) / 4294967296;
  };
}
