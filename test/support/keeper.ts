/**
 * Test support for detached runs (src/p2p/jobs/keeper.ts): a simulated cluster where every peer
 * runs reliable delivery, the election and Jobs, as the CLI installs them: keepers and workers
 * stand in the election with a store (kept across crashes, as SQLite is), the client follows.
 */
import { expect } from 'vitest';
import { PROFILES } from '../../src/p2p/config.js';
import { Election } from '../../src/p2p/election.js';
import { ReliableDelivery } from '../../src/p2p/reliable/index.js';
import {
  Jobs,
  type JobResult,
  type KeeperAnswer,
  type KeeperView,
  type StartRequest,
} from '../../src/p2p/jobs/index.js';
import type { LinkFaults } from '../../src/p2p/transport/sim.js';
import { SimCluster, type SimPeer } from './cluster.js';
import {
  LOSSY,
  SimJobExecutor,
  SimThreads,
  runUntil,
  withOps,
  type JobsHarness,
  type SimJob,
} from './jobs.js';
import { MemoryRunStore } from './memory-runs.js';
import type { SimDisk } from './sim-disk.js';

export interface KeeperPeerSpec {
  name: string;
  /** Election priority: the highest live one keeps. */
  priority: number;
  /** Worker slots; none: it runs no jobs. */
  slots?: number;
  disk?: SimDisk;
  /** Its jobs protocol learns of a new coordinator this long after its election does. */
  viewLagMs?: number;
}

export interface KeeperHarness extends JobsHarness {
  client: SimPeer;
  stores: Map<string, MemoryRunStore>;
  elections: Map<string, Election>;
  peer(name: string): SimPeer;
}

/**
 * The peers of `specs` (candidates with a store) and a client (no store, follows the election);
 * waits until every peer follows the highest-priority one and the client sees every worker.
 */
export async function keeperCluster(
  seed: number,
  specs: KeeperPeerSpec[],
  behave: (req: StartRequest, worker: string) => SimJob,
  faults: Partial<LinkFaults> = LOSSY,
  /** Workers run ops too, in this many threads each, an op taking opMs (as jobsCluster). */
  ops: { threads: number; opMs: (op: string, args: number[]) => number } | null = null,
): Promise<KeeperHarness> {
  const jobs = new Map<string, Jobs>();
  const executors = new Map<string, SimJobExecutor[]>();
  const reliables = new Map<string, ReliableDelivery>();
  const stores = new Map<string, MemoryRunStore>();
  const elections = new Map<string, Election>();
  const threads = new Map<string, SimThreads>();
  const c = new SimCluster(seed, faults, PROFILES.lan, (node, peer) => {
    const spec = specs.find((s) => s.name === peer.name);
    const election = node.install(
      (ctx, n) =>
        new Election(ctx, n.membership, {
          timings: n.profile.election,
          priority: spec?.priority ?? 0,
          candidate: spec !== undefined,
        }),
    );
    elections.set(peer.name, election);
    const reliable = node.install((ctx, n) => new ReliableDelivery(ctx, n.membership));
    reliables.set(peer.name, reliable);
    const executor =
      spec?.slots === undefined
        ? undefined
        : new SimJobExecutor(spec.slots, true, c.rt, (req) => behave(req, peer.name));
    if (executor) executors.set(peer.name, [...(executors.get(peer.name) ?? []), executor]);
    let store: MemoryRunStore | undefined;
    if (spec) {
      store = stores.get(peer.name) ?? new MemoryRunStore(spec.disk ?? null);
      stores.set(peer.name, store);
    }
    const view = spec?.viewLagMs ? lagging(election, spec.viewLagMs, () => c.rt.now()) : election;
    const routed =
      executor && ops ? withOps(executor, ops, c.rt, (t) => threads.set(peer.name, t)) : executor;
    jobs.set(
      peer.name,
      node.install(
        (ctx, n) => new Jobs(ctx, reliable, n.membership, { keyed: true, executor: routed, view, store }),
      ),
    );
  });
  const peers: SimPeer[] = [];
  for (const s of specs) peers.push(await c.add(s.name));
  const client = await c.add('client');
  const top = [...specs].sort((a, b) => b.priority - a.priority)[0]!.name;
  const h: KeeperHarness = {
    c,
    submitter: client,
    client,
    workers: peers.filter((p) => specs.find((s) => s.name === p.name)!.slots !== undefined),
    jobs,
    executors,
    reliables,
    threads,
    unicast: { count: 0 },
    sends: [],
    stores,
    elections,
    peer: (name) => c.peers.find((p) => p.name === name)!,
  };
  const settled = () =>
    c.peers.every((p) => elections.get(p.name)!.coordinator() === h.peer(top).node.id) &&
    jobs.get('client')!.workers().length === h.workers.length;
  expect(c.rt.runUntilTrue(settled, 20_000)).toBe(true);
  return h;
}

/** Runs virtual time until the promise settles (or `withinMs`), and returns what it gave. */
export async function settle<T>(h: JobsHarness, p: Promise<T>, withinMs = 30_000): Promise<T> {
  let out: { v: T } | null = null;
  void p.then((v) => (out = { v }));
  expect(await runUntil(h, () => out !== null, withinMs)).toBe(true);
  return out!.v;
}

/** The value of an answer that must be ok. */
export function okValue<T>(a: KeeperAnswer<T>): T {
  if (!a.ok) throw new Error(`keeper said no: ${a.why}`);
  return a.value;
}

/** Every result of a run, paged from `client` through the KeeperApi as `peer run --attach` does. */
export async function collect(h: KeeperHarness, run: string, from = 'client'): Promise<JobResult[]> {
  const api = h.jobs.get(from)!.keeper;
  const out: JobResult[] = [];
  let after = 0;
  for (;;) {
    const page = okValue(await settle(h, api.results(run, after)));
    out.push(...page.results);
    if (page.next === null) return out;
    after = page.next;
  }
}

/** The election as a peer that hears of a new coordinator `lagMs` late sees it. */
function lagging(election: Election, lagMs: number, now: () => number): KeeperView {
  let shown = election.coordinator();
  let next: { id: string | null; at: number } | null = null;
  const coordinator = () => {
    const id = election.coordinator();
    if (id === shown) next = null;
    else if (next?.id !== id) next = { id, at: now() };
    else if (now() - next.at >= lagMs) shown = id;
    return shown;
  };
  return {
    coordinator,
    isCoordinator: () => election.isCoordinator(),
    term: () => election.term(),
  };
}
