/**
 * `--metrics`: the collectors over simulated groups, read as Prometheus text: every metric
 * docs/metrics.md lists has its HELP and TYPE lines and the value the run produced, for what
 * `peer up` runs (three peers, one killed), the token ring (`peer token-ring`), a replica holder
 * (`peer replicate`) and a kv holder (`peer kv serve`). And the --metrics address: loopback unless
 * a host is given.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Registry } from 'prom-client';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { installCoordination, type Coordination } from '../../src/cli/coordination.js';
import { ReliableDelivery } from '../../src/p2p/reliable/index.js';
import { guardFollowsMembers, securityLayers, type SecurityLayers } from '../../src/cli/security.js';
import {
  parseMetricsAddress,
  registerPeerMetrics,
  type MeteredModules,
  type MeteredPeer,
} from '../../src/cli/metrics.js';
import type { PeerNode } from '../../src/p2p/node.js';
import { TokenRing } from '../../src/p2p/token-ring/index.js';
import { Replication, envelopeOverhead, type Entry } from '../../src/p2p/replication/index.js';
import { KeyValue } from '../../src/p2p/kv/index.js';
import { KvStore } from '../../src/storage/kv.js';
import Database from 'better-sqlite3';
import { MemoryReplica } from '../support/memory-replica.js';
import { UsageError } from '../../src/cli/network.js';
import { sample } from '../support/prometheus.js';

/** Every metric of a peer with a checkpoint store, by type (docs/metrics.md's table). */
const TYPES: Record<string, 'counter' | 'gauge' | 'histogram'> = {
  peer_members: 'gauge',
  peer_health_score: 'gauge',
  peer_incarnation: 'gauge',
  peer_member_joins_total: 'counter',
  peer_member_restarts_total: 'counter',
  peer_suspicions_total: 'counter',
  peer_refutations_total: 'counter',
  peer_deaths_total: 'counter',
  peer_leaves_total: 'counter',
  peer_datagrams_received_total: 'counter',
  peer_datagrams_sent_total: 'counter',
  peer_received_bytes_total: 'counter',
  peer_sent_bytes_total: 'counter',
  peer_datagrams_dropped_total: 'counter',
  peer_messages_refused_total: 'counter',
  peer_handler_errors_total: 'counter',
  peer_rate_guard_dropped_total: 'counter',
  peer_rate_guard_sources: 'gauge',
  peer_seal_dropped_total: 'counter',
  peer_udp_errors_total: 'counter',
  peer_reliable_published_total: 'counter',
  peer_reliable_delivered_total: 'counter',
  peer_reliable_duplicates_total: 'counter',
  peer_reliable_nacks_sent_total: 'counter',
  peer_reliable_repairs_sent_total: 'counter',
  peer_reliable_repairs_rate_limited_total: 'counter',
  peer_reliable_lost_total: 'counter',
  peer_election_term: 'gauge',
  peer_coordinator: 'gauge',
  peer_clock_rounds_total: 'counter',
  peer_clock_offset_seconds: 'gauge',
  peer_store_commits_total: 'counter',
  peer_store_commit_ops_total: 'counter',
  peer_store_commit_failures_total: 'counter',
  peer_checkpoint_commit_seconds: 'histogram',
};

interface Metered<M> {
  peer: SimPeer;
  registry: Registry;
  /** What the peer runs, as its command hands it to the collectors. */
  modules: M;
  /** Calls the checkpoint listener as checkpointing.ts would after a commit. */
  committed: (ms: number) => void;
}

/**
 * Peers named `names` that each run what `install` installs, metered as a command meters them;
 * `keyed`: the names of those that seal with one shared group key (the rest run open).
 */
async function group<M extends MeteredModules>(
  seed: number,
  install: (node: PeerNode, name: string) => M,
  { keyed = [], names = ['ann', 'bob', 'cid'] }: { keyed?: string[]; names?: string[] } = {},
) {
  const key = randomBytes(32);
  const layers = new Map<string, SecurityLayers>();
  const metered = new Map<string, Metered<M>>();
  const c = new SimCluster(seed, { delayMaxMs: 2 }, undefined, (node, peer) => {
    const security = layers.get(peer.name)!;
    if (security.guard) guardFollowsMembers(security.guard.guard, node);
    const modules = install(node, peer.name);
    const registry = new Registry();
    let listener: (ms: number) => void = () => {};
    const parts: MeteredPeer = {
      node,
      security,
      udpErrors: null,
      commits: { commits: 3, ops: 7, batchMax: 4, failed: 0 },
      onCheckpointCommitted: (l) => {
        listener = l;
        return () => {};
      },
      ...modules,
    };
    registerPeerMetrics(registry, parts);
    metered.set(peer.name, { peer, registry, modules, committed: (ms) => listener(ms) });
  });
  c.wrapTransport = (t, peer) => {
    const keys = keyed.includes(peer.name) ? { file: 'group.key', keys: [key], warning: null } : null;
    const l = securityLayers(t, 'sim', keys, { openOnPurpose: true, notify: () => {} });
    layers.set(peer.name, l);
    return l.transport;
  };
  for (const name of names) await c.add(name);
  return { c, metered: (name: string) => metered.get(name)! };
}

/** What `peer up` runs. */
function upModules(node: PeerNode): { coordination: Coordination; reliable: ReliableDelivery } {
  return {
    coordination: installCoordination(node, { priority: 0, candidate: true }),
    reliable: node.install((ctx, n) => new ReliableDelivery(ctx, n.membership)),
  };
}

/** Every metric has its HELP and TYPE lines in `text`. */
function expectDeclared(text: string, types: Record<string, string>): void {
  for (const [name, type] of Object.entries(types)) {
    expect(text, name).toContain(`\n# TYPE ${name} ${type}\n`);
    expect(text, name).toMatch(new RegExp(`(^|\\n)# HELP ${name} \\S.*\\n`));
  }
}

describe('peer metrics over a simulated group', () => {
  it('has HELP and TYPE for every metric, and the values of a run where a member died', async () => {
    const { c, metered } = await group(7, upModules);
    const ann = metered('ann');
    const cid = metered('cid');
    const { coordination, reliable } = ann.modules;
    expect(
      c.rt.runUntilTrue(() => c.converged() && coordination.election.coordinator() !== null, 5_000),
    ).toBe(true);
    reliable.publish('metrics', Buffer.from('hello'));
    await c.crash(cid.peer);
    const annSees = (state: string) =>
      ann.peer.node.membership.list().filter((m) => m.state === state).length;
    expect(c.rt.runUntilTrue(() => annSees('dead') === 1, 10_000)).toBe(true);
    ann.committed(3); // one checkpoint that took 3 ms

    const text = await ann.registry.metrics();
    expectDeclared(text, TYPES);
    expect(sample(text, 'peer_members{state="alive"}')).toBe(1);
    expect(sample(text, 'peer_members{state="dead"}')).toBe(1);
    expect(sample(text, 'peer_members{state="suspect"}')).toBe(0);
    expect(sample(text, 'peer_members{state="left"}')).toBe(0);
    expect(sample(text, 'peer_member_joins_total')).toBe(2);
    expect(sample(text, 'peer_suspicions_total')).toBe(1);
    expect(sample(text, 'peer_deaths_total')).toBe(1);
    expect(sample(text, 'peer_leaves_total')).toBe(0);
    const node = ann.peer.node;
    expect(sample(text, 'peer_datagrams_received_total')).toBe(node.stats.datagramsIn);
    expect(sample(text, 'peer_datagrams_sent_total')).toBe(node.stats.datagramsOut);
    expect(sample(text, 'peer_sent_bytes_total')).toBe(node.stats.bytesOut);
    expect(node.stats.bytesOut).toBeGreaterThan(0);
    expect(sample(text, 'peer_datagrams_dropped_total{reason="json"}')).toBe(0);
    expect(sample(text, 'peer_reliable_published_total')).toBe(1);
    expect(sample(text, 'peer_election_term')).toBe(coordination.election.term());
    const role = coordination.election.isCoordinator() ? 'self' : 'other';
    expect(sample(text, `peer_coordinator{role="${role}"}`)).toBe(1);
    expect(sample(text, 'peer_coordinator{role="none"}')).toBe(0);
    expect(sample(text, 'peer_clock_rounds_total')).toBe(coordination.clock.rounds);
    expect(sample(text, 'peer_store_commit_ops_total')).toBe(7);
    expect(sample(text, 'peer_checkpoint_commit_seconds_count')).toBe(1);
    expect(sample(text, 'peer_checkpoint_commit_seconds_bucket{le="0.0025"}')).toBe(0);
    expect(sample(text, 'peer_checkpoint_commit_seconds_bucket{le="0.005"}')).toBe(1);
    expect(c.handlerErrors()).toEqual([]);

    // Counters follow the peer as it runs: read again at the next scrape, never stale.
    c.rt.runFor(2_000);
    const later = await ann.registry.metrics();
    expect(sample(later, 'peer_datagrams_sent_total')).toBe(node.stats.datagramsOut);
    expect(sample(later, 'peer_datagrams_sent_total')).toBeGreaterThan(
      sample(text, 'peer_datagrams_sent_total')!,
    );
  });
});

describe('peer metrics in a keyed group', () => {
  it('count what the encryption layer dropped, by reason, and read its rate guard', async () => {
    // ann and bob hold the key; cid runs open: its plaintext is dropped, never a member.
    const { c, metered } = await group(3, upModules, { keyed: ['ann', 'bob'] });
    const ann = metered('ann');
    const annAlive = () => ann.peer.node.membership.list().filter((m) => m.state === 'alive').length;
    expect(c.rt.runUntilTrue(() => annAlive() === 1, 5_000)).toBe(true);
    c.rt.runFor(2_000);
    const text = await ann.registry.metrics();
    expect(sample(text, 'peer_members{state="alive"}')).toBe(1);
    expect(sample(text, 'peer_seal_dropped_total{reason="plaintext"}')).toBeGreaterThan(0);
    expect(sample(text, 'peer_seal_dropped_total{reason="auth"}')).toBe(0);
    expect(sample(text, 'peer_rate_guard_dropped_total')).toBe(0);
    expect(sample(text, 'peer_rate_guard_sources')).toBeGreaterThanOrEqual(0);
    expect(c.handlerErrors()).toEqual([]);
  });
});

const TOKEN_RING_TYPES: Record<string, 'counter' | 'gauge'> = {
  peer_token_passes_total: 'counter',
  peer_token_skips_total: 'counter',
  peer_token_stale_total: 'counter',
  peer_token_regenerations_total: 'counter',
  peer_token_lease_rounds_total: 'counter',
  peer_token_critical_sections_total: 'counter',
  peer_token_unstored_turns_total: 'counter',
  peer_token_generation: 'gauge',
  peer_token_epoch: 'gauge',
  peer_token_ring_members: 'gauge',
  peer_token_holding: 'gauge',
  peer_token_in_critical_section: 'gauge',
};

describe('peer token-ring metrics', () => {
  it('read the ring’s counters, and count regenerations by why, through a holder’s crash', async () => {
    const { c, metered } = await group(11, (node) => ({
      tokenRing: node.install((ctx, n) => new TokenRing(ctx, n.membership, { timings: n.profile.tokenRing })),
    }));
    const rings = ['ann', 'bob', 'cid'].map((name) => metered(name));
    const ring = (name: string) => metered(name).modules.tokenRing;
    const { passes } = ring('ann').stats;
    ring('ann').request(10);
    expect(
      c.rt.runUntilTrue(
        () => ring('ann').stats.critical >= 1 && ring('ann').stats.passes > passes + 1,
        30_000,
      ),
    ).toBe(true);
    // The holder crashes: a survivor remakes the lost token.
    expect(ring('ann').stats.passes).toBeGreaterThan(0);
    const holder = rings.find((m) => m.modules.tokenRing.status().holding) ?? rings[0]!;
    await c.crash(holder.peer);
    const survivors = rings.filter((m) => m !== holder);
    const regenerated = () => survivors.reduce((n, m) => n + m.modules.tokenRing.stats.regenerations, 0);
    const before = regenerated();
    expect(c.rt.runUntilTrue(() => regenerated() > before, 60_000)).toBe(true);

    let lost = 0;
    for (const m of survivors) {
      const text = await m.registry.metrics();
      expectDeclared(text, TOKEN_RING_TYPES);
      // A token-ring peer runs no election: only what it runs is exposed.
      expect(text).not.toContain('peer_election_term');
      const t = m.modules.tokenRing;
      const s = t.stats;
      expect(sample(text, 'peer_token_passes_total')).toBe(s.passes);
      expect(sample(text, 'peer_token_skips_total')).toBe(s.skips);
      expect(sample(text, 'peer_token_stale_total')).toBe(s.stale);
      expect(sample(text, 'peer_token_lease_rounds_total')).toBe(s.leaseRounds);
      expect(sample(text, 'peer_token_critical_sections_total')).toBe(s.critical);
      expect(sample(text, 'peer_token_unstored_turns_total')).toBe(0);
      const reasons = ['first', 'lost', 'reconfigure'].map((r) =>
        sample(text, `peer_token_regenerations_total{reason="${r}"}`)!,
      );
      expect(reasons.reduce((a, b) => a + b, 0)).toBe(s.regenerations);
      lost += reasons[1]!;
      const st = t.status();
      expect(sample(text, 'peer_token_generation')).toBe(st.generation);
      expect(sample(text, 'peer_token_epoch')).toBe(st.epoch);
      expect(sample(text, 'peer_token_ring_members')).toBe(st.ring.length);
      expect(sample(text, 'peer_token_holding')).toBe(Number(st.holding));
      expect(sample(text, 'peer_token_in_critical_section')).toBe(Number(t.inCriticalSection));
    }
    // The crashed holder's token was remade by a survivor because it was lost.
    expect(lost).toBe(1);
    expect(c.handlerErrors()).toEqual([]);
  });
});

/** Metrics of a holder, under `peer_replica_` or `peer_kv_` (docs/metrics.md). */
function holderTypes(prefix: string): Record<string, 'counter' | 'gauge'> {
  return {
    [`${prefix}_entries`]: 'gauge',
    [`${prefix}_written_entries_total`]: 'counter',
    [`${prefix}_written_bytes_total`]: 'counter',
    [`${prefix}_sync_sessions_total`]: 'counter',
    [`${prefix}_sync_entries_total`]: 'counter',
    [`${prefix}_rejected_total`]: 'counter',
  };
}

const textBytes = (entries: readonly Entry[]) => entries.reduce((n, e) => n + Buffer.byteLength(e.text), 0);

describe('peer replicate metrics', () => {
  it('count entries kept and written by how they came, and what anti-entropy moved to a late holder', async () => {
    const files = new Map<string, MemoryReplica>();
    const { c, metered } = await group(
      5,
      (node, name) => {
        const set = new MemoryReplica();
        files.set(name, set);
        const replication = node.install(
          (ctx, n) =>
            new Replication(ctx, n.membership, { sink: set, envelopeBytes: envelopeOverhead(name) }),
        );
        return { replica: { replication, set: set.set } };
      },
      { names: ['h0', 'h1'] },
    );
    const h0 = metered('h0');
    expect(c.rt.runUntilTrue(() => c.converged(), 5_000)).toBe(true);
    const texts = ['one', 'deux', 'très', '😀 four'];
    const appended = texts.map((t) => h0.modules.replica.replication.append(t));
    expect(c.rt.runUntilTrue(() => files.get('h1')!.set.size === texts.length, 5_000)).toBe(true);
    // A holder that starts now gets every entry from the others' anti-entropy, none from an append.
    await c.add('h2');
    const h2 = metered('h2');
    expect(c.rt.runUntilTrue(() => files.get('h2')!.set.size === texts.length, 30_000)).toBe(true);
    c.rt.runFor(1_000);

    const bytes = textBytes(appended);
    const t0 = await h0.registry.metrics();
    expectDeclared(t0, holderTypes('peer_replica'));
    expect(sample(t0, 'peer_replica_entries')).toBe(texts.length);
    expect(sample(t0, 'peer_replica_written_entries_total{via="local"}')).toBe(texts.length);
    expect(sample(t0, 'peer_replica_written_bytes_total{via="local"}')).toBe(bytes);
    const t1 = await metered('h1').registry.metrics();
    expect(sample(t1, 'peer_replica_written_entries_total{via="append"}')).toBe(texts.length);
    expect(sample(t1, 'peer_replica_written_bytes_total{via="append"}')).toBe(bytes);
    const t2 = await h2.registry.metrics();
    expect(sample(t2, 'peer_replica_entries')).toBe(texts.length);
    expect(sample(t2, 'peer_replica_written_entries_total{via="repair"}')).toBe(texts.length);
    expect(sample(t2, 'peer_replica_written_bytes_total{via="repair"}')).toBe(bytes);
    expect(sample(t2, 'peer_replica_written_entries_total{via="append"}')).toBe(0);
    expect(sample(t2, 'peer_replica_rejected_total')).toBe(0);
    // The sessions that brought them: h2's own fetches, or the others' pushes to it.
    const all = [t0, t1, t2];
    const sum = (series: string) => all.reduce((n, t) => n + sample(t, series)!, 0);
    expect(sum('peer_replica_sync_sessions_total{result="ok"}')).toBeGreaterThan(0);
    expect(
      sample(t2, 'peer_replica_sync_entries_total{direction="fetched"}')! +
        sample(t0, 'peer_replica_sync_entries_total{direction="pushed"}')! +
        sample(t1, 'peer_replica_sync_entries_total{direction="pushed"}')!,
    ).toBe(texts.length);
    expect(c.handlerErrors()).toEqual([]);
  });
});

describe('peer kv serve metrics', () => {
  it('count operations by kind, requests served and the log, on every holder', async () => {
    const stores = new Map<string, KvStore>();
    const { c, metered } = await group(
      9,
      (node, name) => {
        const store = name.startsWith('h') ? KvStore.open(new Database(':memory:')) : undefined;
        if (store) stores.set(name, store);
        const kv = node.install(
          (ctx, n) => new KeyValue(ctx, n.membership, { store, envelopeBytes: envelopeOverhead(name) }),
        );
        return { kv: { kv, set: store?.set ?? { size: 0 } } };
      },
      { names: ['h0', 'h1', 'client'] },
    );
    expect(c.rt.runUntilTrue(() => c.converged(), 5_000)).toBe(true);
    const client = metered('client').modules.kv.kv;
    const ops = [
      client.write({ kind: 'put', key: 'a', value: '1' }),
      client.write({ kind: 'put', key: 'b', value: 'deux' }),
      client.write({ kind: 'delete', key: 'a' }),
    ];
    const held = () => ['h0', 'h1'].every((h) => stores.get(h)!.set.size === ops.length);
    expect(c.rt.runUntilTrue(held, 5_000)).toBe(true);
    const q = client.read('b');
    expect(c.rt.runUntilTrue(() => (client.readStatus(q)?.answers.size ?? 0) >= 2, 5_000)).toBe(true);

    for (const h of ['h0', 'h1']) {
      const m = metered(h);
      const text = await m.registry.metrics();
      expectDeclared(text, {
        ...holderTypes('peer_kv'),
        peer_kv_operations_total: 'counter',
        peer_kv_requests_served_total: 'counter',
      });
      expect(sample(text, 'peer_kv_entries')).toBe(ops.length);
      expect(sample(text, 'peer_kv_operations_total{op="put"}')).toBe(2);
      expect(sample(text, 'peer_kv_operations_total{op="delete"}')).toBe(1);
      expect(sample(text, 'peer_kv_written_entries_total{via="append"}')).toBe(ops.length);
      expect(sample(text, 'peer_kv_written_bytes_total{via="append"}')).toBe(textBytes(ops));
      expect(sample(text, 'peer_kv_requests_served_total{kind="read"}')).toBe(m.modules.kv.kv.served.read);
      expect(sample(text, 'peer_kv_requests_served_total{kind="read"}')).toBeGreaterThanOrEqual(1);
      expect(sample(text, 'peer_kv_requests_served_total{kind="scan"}')).toBe(0);
      // kv runs replication on its own channel: nothing under a replica holder's names.
      expect(text).not.toContain('peer_replica_');
    }
    expect(c.handlerErrors()).toEqual([]);
  });
});

describe('--metrics address', () => {
  it('is loopback for a port alone, and takes a host only when given', () => {
    expect(parseMetricsAddress('9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseMetricsAddress('10.0.0.5:9100')).toEqual({ host: '10.0.0.5', port: 9100 });
    expect(parseMetricsAddress('0.0.0.0:9464')).toEqual({ host: '0.0.0.0', port: 9464 });
    expect(parseMetricsAddress('[::1]:9464')).toEqual({ host: '::1', port: 9464 });
    expect(parseMetricsAddress('localhost:1')).toEqual({ host: 'localhost', port: 1 });
    expect(parseMetricsAddress('127.0.0.1:65535')).toEqual({ host: '127.0.0.1', port: 65535 });
  });

  it.each([
    '',
    'abc',
    '0',
    '65536',
    '127.0.0.1:',
    ':9464',
    'example.com:9464',
    '[127.0.0.1]:9464',
    '::1:9464',
    '1.2.3.4:95x',
  ])('refuses %j with one line saying what to give', (spec) => {
    let err: unknown;
    try {
      parseMetricsAddress(spec);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(
      /^--metrics '.*' .+; give PORT \(127\.0\.0\.1:PORT\) or HOST:PORT/,
    );
    expect((err as Error).message).not.toContain('\n');
  });
});
