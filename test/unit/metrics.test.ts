/**
 * `peer up --metrics`: the collectors over a simulated group (three peers, one killed), read as
 * Prometheus text: every metric docs/metrics.md lists has its HELP and TYPE lines and the value
 * the run produced. And the --metrics address: loopback unless a host is given.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Registry } from 'prom-client';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { installCoordination, type Coordination } from '../../src/cli/coordination.js';
import { ReliableDelivery } from '../../src/p2p/reliable/index.js';
import { guardFollowsMembers, securityLayers, type SecurityLayers } from '../../src/cli/security.js';
import { parseMetricsAddress, registerPeerMetrics, type MeteredPeer } from '../../src/cli/metrics.js';
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

interface Metered {
  peer: SimPeer;
  registry: Registry;
  coordination: Coordination;
  reliable: ReliableDelivery;
  /** Calls the checkpoint listener as checkpointing.ts would after a commit. */
  committed: (ms: number) => void;
}

/** Three peers; `keyed`: the names of those that seal with one shared group key (the rest run open). */
async function group(seed: number, keyed: string[] = []) {
  const key = randomBytes(32);
  const layers = new Map<string, SecurityLayers>();
  const metered = new Map<string, Metered>();
  const c = new SimCluster(seed, { delayMaxMs: 2 }, undefined, (node, peer) => {
    const security = layers.get(peer.name)!;
    if (security.guard) guardFollowsMembers(security.guard.guard, node);
    const coordination = installCoordination(node, { priority: 0, candidate: true });
    const reliable = node.install((ctx, n) => new ReliableDelivery(ctx, n.membership));
    const registry = new Registry();
    let listener: (ms: number) => void = () => {};
    const parts: MeteredPeer = {
      node,
      security,
      udpErrors: null,
      reliable,
      coordination,
      commits: { commits: 3, ops: 7, batchMax: 4, failed: 0 },
      onCheckpointCommitted: (l) => {
        listener = l;
        return () => {};
      },
    };
    registerPeerMetrics(registry, parts);
    metered.set(peer.name, { peer, registry, coordination, reliable, committed: (ms) => listener(ms) });
  });
  c.wrapTransport = (t, peer) => {
    const keys = keyed.includes(peer.name) ? { file: 'group.key', keys: [key], warning: null } : null;
    const l = securityLayers(t, 'sim', keys, { openOnPurpose: true, notify: () => {} });
    layers.set(peer.name, l);
    return l.transport;
  };
  for (const name of ['ann', 'bob', 'cid']) await c.add(name);
  return { c, metered: (name: string) => metered.get(name)! };
}

describe('peer metrics over a simulated group', () => {
  it('has HELP and TYPE for every metric, and the values of a run where a member died', async () => {
    const { c, metered } = await group(7);
    const ann = metered('ann');
    const cid = metered('cid');
    expect(
      c.rt.runUntilTrue(() => c.converged() && ann.coordination.election.coordinator() !== null, 5_000),
    ).toBe(true);
    ann.reliable.publish('metrics', Buffer.from('hello'));
    await c.crash(cid.peer);
    const annSees = (state: string) =>
      ann.peer.node.membership.list().filter((m) => m.state === state).length;
    expect(c.rt.runUntilTrue(() => annSees('dead') === 1, 10_000)).toBe(true);
    ann.committed(3); // one checkpoint that took 3 ms

    const text = await ann.registry.metrics();
    for (const [name, type] of Object.entries(TYPES)) {
      expect(text, name).toContain(`\n# TYPE ${name} ${type}\n`);
      expect(text, name).toMatch(new RegExp(`(^|\\n)# HELP ${name} \\S.*\\n`));
    }
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
    expect(sample(text, 'peer_election_term')).toBe(ann.coordination.election.term());
    const role = ann.coordination.election.isCoordinator() ? 'self' : 'other';
    expect(sample(text, `peer_coordinator{role="${role}"}`)).toBe(1);
    expect(sample(text, 'peer_coordinator{role="none"}')).toBe(0);
    expect(sample(text, 'peer_clock_rounds_total')).toBe(ann.coordination.clock.rounds);
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
    const { c, metered } = await group(3, ['ann', 'bob']);
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
