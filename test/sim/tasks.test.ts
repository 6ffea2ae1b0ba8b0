import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { FakeElection, SimExecutor } from '../support/tasks.js';
import { rogue } from '../support/rogue.js';
import { PROFILES } from '../../src/p2p/config.js';
import Database from 'better-sqlite3';
import {
  MemoryTaskLog,
  runTask,
  TaskInputError,
  Tasks,
  type CoordinatorView,
  type TaskLog,
  type TaskSpec,
} from '../../src/p2p/tasks/index.js';
import { TaskStore } from '../../src/storage/tasks.js';
import { Election } from '../../src/p2p/election.js';
import type { LinkFaults } from '../../src/p2p/transport/sim.js';
import type { PeerEvent, PeerEventOf } from '../../src/p2p/protocol.js';

const SEEDS = Array.from({ length: 30 }, (_, i) => i + 1);
const LOSSY: Partial<LinkFaults> = { loss: 0.1, duplicate: 0.05, delayMinMs: 0.1, delayMaxMs: 5 };

interface World {
  c: SimCluster;
  fake: FakeElection;
  tasks: Map<string, Tasks>;
  logs: Map<string, TaskLog>;
  executors: Map<string, SimExecutor>;
  /** The coordinator view each peer's tasks module uses (the current boot's). */
  views: Map<string, CoordinatorView>;
  peer(name: string): SimPeer;
  proto(name: string): Tasks;
}

/**
 * A group of peers running the tasks protocol; `workers` maps a name to its thread count. Each
 * peer's log survives its crashes, as its SQLite file would.
 */
async function world(
  seed: number,
  faults: Partial<LinkFaults>,
  names: string[],
  workers: Record<string, number>,
  durationMs: (t: TaskSpec, random: () => number) => number,
  /** Logs in SQLite (in memory) instead of MemoryTaskLog. */
  sqlite = false,
  /** Run the real bully election (every peer but 'client' a candidate) instead of the fake view. */
  election = false,
): Promise<World> {
  const fake = new FakeElection();
  const tasks = new Map<string, Tasks>();
  const logs = new Map<string, TaskLog>();
  const executors = new Map<string, SimExecutor>();
  const views = new Map<string, CoordinatorView>();
  const c = new SimCluster(seed, faults, PROFILES.lan, (node, peer) => {
    const log =
      logs.get(peer.name) ?? (sqlite ? new TaskStore(new Database(':memory:')) : new MemoryTaskLog());
    logs.set(peer.name, log);
    const cap = workers[peer.name];
    const executor =
      cap === undefined
        ? undefined
        : new SimExecutor(
            cap,
            c.rt,
            (t) => durationMs(t, c.rt.random),
            () => (peer.up && peer.node === node ? (tasks.get(peer.name) ?? null) : null),
          );
    if (executor) executors.set(peer.name, executor);
    // Installed first, so it ticks first: tasks see the view of this tick.
    const view = election
      ? node.install(
          (ctx, n) =>
            new Election(ctx, n.membership, {
              timings: PROFILES.lan.election,
              priority: 0,
              candidate: peer.name !== 'client',
            }),
        )
      : fake.viewFor(() => node.id);
    views.set(peer.name, view);
    const t = node.install((ctx, n) => new Tasks(ctx, n.membership, { view, log, executor }));
    tasks.set(peer.name, t);
  });
  for (const n of names) await c.add(n);
  const peer = (name: string) => c.peers.find((p) => p.name === name)!;
  return { c, fake, tasks, logs, executors, views, peer, proto: (name) => tasks.get(name)! };
}

/** The fake election names 'coord' coordinator, and the group converges. */
function coordLeads(w: World): void {
  w.fake.elect(w.peer('coord').node.id);
  expect(w.c.rt.runUntilTrue(() => w.c.converged(), 3_000)).toBe(true);
}

function randomTask(random: () => number): { op: string; args: number[] } {
  const int = (max: number) => Math.floor(random() * (max + 1));
  switch (int(3)) {
    case 0:
      return { op: 'sum', args: Array.from({ length: 1 + int(5) }, () => int(1000) - 500) };
    case 1:
      return { op: 'fibonacci', args: [int(300)] };
    case 2:
      return { op: 'sort', args: Array.from({ length: 1 + int(6) }, () => int(100) - 50) };
    default:
      return { op: 'primes', args: [int(5000)] };
  }
}

function eventsOf<K extends PeerEvent['kind']>(p: SimPeer, kind: K): PeerEventOf<K>[] {
  return p.events.filter((e) => e.kind === kind) as unknown as PeerEventOf<K>[];
}

/** Submits n random tasks from `from`; returns what each should yield. */
function submitMany(w: World, from: string, n: number): Map<string, { op: string; args: number[] }> {
  const out = new Map<string, { op: string; args: number[] }>();
  for (let i = 0; i < n; i++) {
    const t = randomTask(w.c.rt.random);
    out.set(w.proto(from).submit(t.op, t.args), t);
  }
  return out;
}

/** Every task got exactly one result at its submitter, and it is the right one. */
function expectResultsOnce(
  w: World,
  submitter: string,
  submitted: Map<string, { op: string; args: number[] }>,
) {
  const results = eventsOf(w.peer(submitter), 'task-result');
  expect(results.map((r) => r.id).sort()).toEqual([...submitted.keys()].sort());
  for (const r of results) {
    const t = submitted.get(r.id)!;
    const want = runTask(t.op, t.args);
    expect(want.ok).toBe(true);
    expect({ ok: r.ok, value: r.value }).toEqual({ ok: true, value: want.ok ? want.value : '' });
  }
}

/** On every peer, each task id was recorded as finished at most once; returns the ids recorded. */
function recordedOnce(w: World): Set<string> {
  const all = new Set<string>();
  for (const p of w.c.peers) {
    const ids = eventsOf(p, 'task-recorded').map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    ids.forEach((id) => all.add(id));
  }
  return all;
}

const fast = (_t: TaskSpec, random: () => number) => 5 + random() * 60;
const slow = (_t: TaskSpec, random: () => number) => 300 + random() * 500;

describe('tasks (simulation)', () => {
  it.each(SEEDS)('at 10 percent loss every task gets one result, recorded once, seed %i', async (seed) => {
    const w = await world(seed, LOSSY, ['coord', 'w0', 'w1', 'w2', 'client'], { w0: 2, w1: 2, w2: 1 }, fast);
    coordLeads(w);
    const submitted = submitMany(w, 'client', 40);
    expect(w.c.rt.runUntilTrue(() => w.proto('client').outstanding() === 0, 60_000)).toBe(true);
    w.c.rt.runFor(2_000); // late duplicates and retries must change nothing

    expectResultsOnce(w, 'client', submitted);
    const recorded = eventsOf(w.peer('coord'), 'task-recorded').map((e) => e.id);
    expect(recorded.sort()).toEqual([...submitted.keys()].sort());
    recordedOnce(w);
    // The coordinator's log holds every task as done, with its worker and result.
    const log = w.logs.get('coord')!;
    for (const [id, t] of submitted) {
      const r = log.get(id)!;
      expect(r.state).toBe('done');
      expect(['w0', 'w1', 'w2']).toContain(r.workerName);
      expect(r.result).toBe((runTask(t.op, t.args) as { value: string }).value);
    }
    // Everyone worked: the least-loaded choice spreads 40 tasks over the three workers.
    for (const n of ['w0', 'w1', 'w2']) expect(w.executors.get(n)!.started.length).toBeGreaterThan(0);
    expect(w.c.handlerErrors()).toEqual([]);
  });

  it.each(SEEDS.slice(0, 3))(
    '1000 tasks at 5 percent loss with a worker killed midway: every result recorded exactly once, seed %i',
    async (seed) => {
      const w = await world(
        seed,
        { loss: 0.05, delayMaxMs: 3 },
        ['coord', 'w0', 'w1', 'client'],
        { w0: 2, w1: 2 },
        fast,
      );
      coordLeads(w);
      const submitted = submitMany(w, 'client', 1000);
      const client = w.peer('client');
      expect(w.c.rt.runUntilTrue(() => eventsOf(client, 'task-result').length >= 500, 120_000)).toBe(true);
      await w.c.crash(w.peer('w1'));
      expect(w.c.rt.runUntilTrue(() => w.proto('client').outstanding() === 0, 300_000)).toBe(true);
      w.c.rt.runFor(2_000);
      expectResultsOnce(w, 'client', submitted);
      const recorded = eventsOf(w.peer('coord'), 'task-recorded').map((e) => e.id);
      expect(recorded.sort()).toEqual([...submitted.keys()].sort());
      expect(w.c.handlerErrors()).toEqual([]);
    },
    60_000,
  );

  it.each(SEEDS.slice(0, 20))(
    'a worker crashed mid-task: its tasks are reassigned and complete, seed %i',
    async (seed) => {
      const w = await world(
        seed,
        { loss: 0.05, delayMaxMs: 3 },
        ['coord', 'w0', 'w1', 'client'],
        { w0: 2, w1: 2 },
        slow,
      );
      coordLeads(w);
      const submitted = submitMany(w, 'client', 16);
      expect(w.c.rt.runUntilTrue(() => w.proto('w1').heldCount() > 0, 2_000)).toBe(true);
      const victim = w.peer('w1');
      const lost = new Set(w.executors.get('w1')!.started);
      await w.c.crash(victim);
      expect(w.c.rt.runUntilTrue(() => w.proto('client').outstanding() === 0, 60_000)).toBe(true);
      w.c.rt.runFor(2_000);

      expectResultsOnce(w, 'client', submitted);
      recordedOnce(w);
      const reassigned = eventsOf(w.peer('coord'), 'task-reassigned').filter(
        (e) => e.worker === victim.node.id,
      );
      expect(reassigned.length).toBeGreaterThan(0);
      // What the dead worker had started was finished by the survivor.
      const log = w.logs.get('coord')!;
      for (const id of lost)
        if (log.get(id)?.state === 'done' && !eventsOf(victim, 'task-finished').some((e) => e.id === id))
          expect(log.get(id)!.workerName).toBe('w0');
      expect(w.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 20))(
    'the coordinator crashes: outstanding tasks complete under the next one, seed %i',
    async (seed) => {
      const w = await world(
        seed,
        { loss: 0.05, delayMaxMs: 3 },
        ['c0', 'c1', 'w0', 'client'],
        { c0: 1, c1: 1, w0: 2 },
        slow,
        seed % 2 === 1, // half the seeds log to SQLite
      );
      w.fake.elect(w.peer('c0').node.id);
      expect(w.c.rt.runUntilTrue(() => w.c.converged(), 3_000)).toBe(true);
      const submitted = submitMany(w, 'client', 12);
      w.c.rt.runFor(400); // some running, some queued, maybe one done
      const old = w.peer('c0');
      await w.c.crash(old);
      // The election would pick the next coordinator once c0 is seen dead; the fake does it then.
      const c1 = w.peer('c1');
      expect(w.c.rt.runUntilTrue(() => c1.node.membership.get(old.node.id)?.state === 'dead', 5_000)).toBe(
        true,
      );
      w.fake.elect(c1.node.id);
      expect(w.c.rt.runUntilTrue(() => w.proto('client').outstanding() === 0, 60_000)).toBe(true);
      w.c.rt.runFor(2_000);

      expectResultsOnce(w, 'client', submitted);
      const recorded = recordedOnce(w);
      expect([...recorded].sort()).toEqual([...submitted.keys()].sort());
      expect(eventsOf(c1, 'task-coordinator').length).toBe(1);
      expect(w.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 20))(
    'with the bully election: the coordinator is killed mid-run and the elected successor completes every task, seed %i',
    async (seed) => {
      const w = await world(
        seed,
        { loss: 0.05, duplicate: 0.02, delayMaxMs: 3 },
        ['w0', 'w1', 'w2', 'client'],
        { w0: 1, w1: 2, w2: 2 },
        slow,
        seed % 2 === 0,
        true,
      );
      const leader = () => {
        const ids = new Set(w.c.live().map((p) => w.views.get(p.name)!.coordinator()));
        return ids.size === 1 ? [...ids][0]! : null;
      };
      expect(w.c.rt.runUntilTrue(() => w.c.converged() && leader() !== null, 5_000)).toBe(true);
      const first = w.c.peers.find((p) => p.node.id === leader())!;
      expect(first.name).not.toBe('client');
      const submitted = submitMany(w, 'client', 16);
      w.c.rt.runFor(500);
      await w.c.crash(first);
      expect(w.c.rt.runUntilTrue(() => leader() !== null && leader() !== first.node.id, 5_000)).toBe(true);
      expect(w.c.rt.runUntilTrue(() => w.proto('client').outstanding() === 0, 60_000)).toBe(true);
      w.c.rt.runFor(2_000);

      expectResultsOnce(w, 'client', submitted);
      const recorded = recordedOnce(w);
      for (const id of submitted.keys()) expect(recorded.has(id)).toBe(true);
      const next = w.c.peers.find((p) => p.node.id === leader())!;
      expect(eventsOf(next, 'task-coordinator').length).toBeGreaterThan(0);
      expect(w.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 15))(
    'with the bully election across a partition and its healing: one result per task, recorded once per log, seed %i',
    async (seed) => {
      const w = await world(
        seed,
        { loss: 0.02, delayMaxMs: 3 },
        ['w0', 'w1', 'w2', 'w3', 'client'],
        { w0: 1, w1: 1, w2: 1, w3: 1 },
        slow,
        false,
        true,
      );
      const leaderOf = (group: SimPeer[]) => {
        const ids = new Set(group.map((p) => w.views.get(p.name)!.coordinator()));
        return ids.size === 1 ? [...ids][0]! : null;
      };
      expect(w.c.rt.runUntilTrue(() => w.c.converged() && leaderOf(w.c.live()) !== null, 5_000)).toBe(true);
      const first = w.c.peers.find((p) => p.node.id === leaderOf(w.c.live()))!;
      const submitted = submitMany(w, 'client', 12);
      w.c.rt.runFor(400);
      // The old coordinator keeps one worker; the client's side has the other two and elects its own.
      const sideA = [first, w.c.peers.find((p) => p !== first && p.name !== 'client')!];
      const sideB = w.c.peers.filter((p) => !sideA.includes(p));
      w.c.net.partition(
        sideA.map((p) => p.address),
        sideB.map((p) => p.address),
      );
      expect(w.c.rt.runUntilTrue(() => w.proto('client').outstanding() === 0, 60_000)).toBe(true);
      w.c.net.heal();
      expect(w.c.rt.runUntilTrue(() => w.c.converged() && leaderOf(w.c.live()) !== null, 10_000)).toBe(true);
      w.c.rt.runFor(3_000);

      expectResultsOnce(w, 'client', submitted);
      recordedOnce(w);
      // After healing, one coordinator, which alone holds coordinator state.
      const leaders = w.c.peers.filter((p) => w.views.get(p.name)!.isCoordinator());
      expect(leaders).toHaveLength(1);
      expect(w.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 10))(
    'a submitter that left after acceptance: the next coordinator resumes its tasks from its log, seed %i',
    async (seed) => {
      // No loss here: a task then reaches the standby's log by the coordinator's multicast for sure.
      const w = await world(seed, {}, ['c0', 'c1', 'w0', 'client'], { w0: 2 }, slow, true);
      w.fake.elect(w.peer('c0').node.id);
      expect(w.c.rt.runUntilTrue(() => w.c.converged(), 3_000)).toBe(true);
      const submitted = submitMany(w, 'client', 10);
      const client = w.peer('client');
      expect(
        w.c.rt.runUntilTrue(() => eventsOf(client, 'task-accepted').length === submitted.size, 2_000),
      ).toBe(true);
      await w.c.leave(client);
      await w.c.crash(w.peer('c0'));
      w.c.rt.runFor(1_500);
      const c1 = w.peer('c1');
      w.fake.elect(c1.node.id);
      const done = () => [...submitted.keys()].every((id) => w.logs.get('c1')!.get(id)?.state === 'done');
      expect(w.c.rt.runUntilTrue(done, 60_000)).toBe(true);
      expect(eventsOf(c1, 'task-coordinator')[0]!.resumed).toBeGreaterThan(0);
      for (const [id, t] of submitted)
        expect(w.logs.get('c1')!.get(id)!.result).toBe((runTask(t.op, t.args) as { value: string }).value);
      recordedOnce(w);
      expect(w.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 5))(
    'a peer that is coordinator, worker and submitter at once runs its own tasks, seed %i',
    async (seed) => {
      const w = await world(seed, LOSSY, ['solo', 'other'], { solo: 2 }, fast);
      w.fake.elect(w.peer('solo').node.id);
      w.c.rt.runFor(500);
      const submitted = submitMany(w, 'solo', 10);
      expect(w.c.rt.runUntilTrue(() => w.proto('solo').outstanding() === 0, 10_000)).toBe(true);
      expectResultsOnce(w, 'solo', submitted);
      expect(eventsOf(w.peer('solo'), 'task-recorded')).toHaveLength(10);
      expect(w.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 5))(
    'task list pages through the coordinator log over the network, seed %i',
    async (seed) => {
      const w = await world(seed, LOSSY, ['coord', 'w0', 'client', 'viewer'], { w0: 4 }, fast);
      coordLeads(w);
      const submitted = submitMany(w, 'client', 30);
      expect(w.c.rt.runUntilTrue(() => w.proto('client').outstanding() === 0, 60_000)).toBe(true);
      w.proto('viewer').requestList(25);
      const viewer = w.peer('viewer');
      expect(w.c.rt.runUntilTrue(() => eventsOf(viewer, 'task-list').length === 1, 10_000)).toBe(true);
      const [answer] = eventsOf(viewer, 'task-list');
      expect(answer!.error).toBeNull();
      expect(answer!.total).toBe(30);
      expect(answer!.items).toHaveLength(25);
      expect(new Set(answer!.items.map((i) => i.id)).size).toBe(25);
      for (const item of answer!.items) {
        expect(submitted.has(item.id)).toBe(true);
        expect(item.state).toBe('done');
        expect(item.worker).toBe('w0');
        expect(item.durationMs).not.toBeNull();
      }
    },
  );

  it('the largest tasks and results fit in one datagram, with 64-character peer names', async () => {
    const long = (c: string) => c.repeat(64);
    const [coord, worker, client] = [long('c'), long('w'), long('s')];
    const w = await world(8, {}, [coord, worker, client], { [worker]: 1 }, fast);
    w.fake.elect(w.peer(coord).node.id);
    w.c.rt.runFor(500);
    // 19 numbers of 24 characters: 475 characters of JSON, just under TASK_ARGS_JSON_CHARS_MAX.
    const big = Array.from({ length: 19 }, (_, i) => -(1.2345678901234567 + i / 1e15) * 1e-300);
    expect(JSON.stringify(big).length).toBeGreaterThan(470);
    const ids = [
      w.proto(client).submit('sort', big),
      w.proto(client).submit('fibonacci', [2000]),
      w.proto(client).submit('sum', big),
    ];
    expect(w.c.rt.runUntilTrue(() => w.proto(client).outstanding() === 0, 10_000)).toBe(true);
    const results = eventsOf(w.peer(client), 'task-result');
    expect(results.map((r) => r.id).sort()).toEqual([...ids].sort());
    expect(results.every((r) => r.ok)).toBe(true);
    w.proto(long('s')).requestList(10);
    expect(w.c.rt.runUntilTrue(() => eventsOf(w.peer(client), 'task-list').length === 1, 5_000)).toBe(true);
    expect(eventsOf(w.peer(client), 'task-list')[0]!.items).toHaveLength(3);
    expect(w.c.handlerErrors()).toEqual([]);
  });

  it('without a coordinator a listing fails with a clear error', async () => {
    const w = await world(3, {}, ['a', 'b'], {}, fast);
    w.c.rt.runFor(300);
    w.proto('a').requestList(10);
    w.c.rt.runFor(5_000);
    const [answer] = eventsOf(w.peer('a'), 'task-list');
    expect(answer!.error).toMatch(/no coordinator/);
  });

  it('bad input is refused at the submitter; a bad task from the wire is answered as failed', async () => {
    const w = await world(4, {}, ['coord', 'w0', 'client'], { w0: 1 }, fast);
    w.fake.elect(w.peer('coord').node.id);
    w.c.rt.runFor(500);
    const client = w.proto('client');
    expect(() => client.submit('nope', [1])).toThrow(TaskInputError);
    expect(() => client.submit('fibonacci', [1e9])).toThrow(/out of range/);
    expect(() =>
      client.submit(
        'sum',
        Array.from({ length: 65 }, () => 1),
      ),
    ).toThrow(/limit of 64/);
    expect(client.outstanding()).toBe(0);
    // A peer that skips validation (another version): the coordinator records a failure and answers.
    const coord = w.peer('coord');
    w.peer('client').node.context.send(coord.address, 'tk.submit', {
      id: 'abcdef0123456789',
      op: 'fibonacci',
      a: [5000],
      term: w.fake.term,
    });
    w.c.rt.runFor(200);
    const r = w.logs.get('coord')!.get('abcdef0123456789')!;
    expect(r.state).toBe('failed');
    expect(r.error).toMatch(/out of range/);
    expect(w.logs.get('client')!.get('abcdef0123456789')?.state).toBe('failed');
    expect(w.c.handlerErrors()).toEqual([]);
  });

  it('a full worker refuses more work and the coordinator keeps the rest queued', async () => {
    const w = await world(5, {}, ['coord', 'w0', 'client'], { w0: 1 }, slow);
    w.fake.elect(w.peer('coord').node.id);
    w.c.rt.runFor(500);
    submitMany(w, 'client', 6);
    w.c.rt.runFor(100);
    expect(w.proto('w0').heldCount()).toBeLessThanOrEqual(2);
    expect(w.proto('coord').coordinatorCounts().queued).toBeGreaterThanOrEqual(4);
    expect(w.c.rt.runUntilTrue(() => w.proto('client').outstanding() === 0, 30_000)).toBe(true);
  });

  it('worker load rides on membership tags, merged with the tags already set', async () => {
    const w = await world(6, {}, ['coord', 'w0', 'client'], { w0: 3 }, slow);
    w.peer('w0').node.membership.setTags({ role: 'gpu' });
    w.fake.elect(w.peer('coord').node.id);
    w.c.rt.runFor(500);
    submitMany(w, 'client', 4);
    w.c.rt.runFor(600);
    const seen = w.peer('coord').node.membership.get(w.peer('w0').node.id)!.tags;
    expect(seen).toMatchObject({ role: 'gpu', wk: 3 });
    expect(seen.ld).toBeGreaterThan(0);
  });
});

describe('tasks under forged coordinator messages and results (simulation)', () => {
  it.each([1, 2, 3])(
    'a result nobody computed, sent as the coordinator or as a worker, never reaches a submitter or a log, seed %i',
    async (seed) => {
      const w = await world(seed, { delayMaxMs: 2 }, ['coord', 'w0', 'client'], { w0: 1 }, slow);
      coordLeads(w);
      const r = await rogue(w.c.net);
      // The forger learns each task id from the coordinator's tk.new multicast and answers first.
      r.onHeard = (h) => {
        if (h.t !== 'tk.new') return;
        const body = { id: h.b.id, op: h.b.op, ok: true, v: 'forged', term: h.b.term };
        r.broadcast('tk.fin', { ...body, w: r.id, wn: 'rogue', ms: 1 });
        r.send(w.peer('coord').address, 'tk.result', {
          id: h.b.id,
          op: h.b.op,
          ok: true,
          v: 'forged',
          term: 1,
        });
        r.broadcast('tk.assign', { id: 'f'.repeat(16), op: 'sum', a: [1], term: h.b.term });
      };
      const submitted = submitMany(w, 'client', 5);
      expect(w.c.rt.runUntilTrue(() => w.proto('client').outstanding() === 0, 30_000)).toBe(true);
      w.c.rt.runFor(1_000);
      expectResultsOnce(w, 'client', submitted);
      for (const name of ['coord', 'w0', 'client']) {
        const log = w.logs.get(name)!;
        for (const id of submitted.keys()) expect(log.get(id)?.result ?? null).not.toBe('forged');
      }
      expect(w.executors.get('w0')!.started).not.toContain('f'.repeat(16));
      expect(w.proto('client').stats.wrongSender).toBeGreaterThan(0);
      // At the coordinator: five results, and the five fins and assigns it overheard.
      expect(w.proto('coord').stats.wrongSender).toBe(15);
      expect(w.c.handlerErrors()).toEqual([]);
    },
  );

  it('a list page from anyone but the coordinator is not taken for the answer', async () => {
    const w = await world(5, { delayMaxMs: 2 }, ['coord', 'w0', 'client'], { w0: 1 }, fast);
    coordLeads(w);
    const submitted = submitMany(w, 'client', 2);
    expect(w.c.rt.runUntilTrue(() => w.proto('client').outstanding() === 0, 10_000)).toBe(true);
    const r = await rogue(w.c.net);
    const item = { id: 'f'.repeat(16), op: 'sum', st: 'done', w: 'rogue', ms: 1, x: 'forged', at: 1 };
    w.proto('client').requestList(10);
    // List numbers count from 1: the forger answers the first few before the coordinator can.
    for (let q = 1; q <= 3; q++)
      r.send(w.peer('client').address, 'tk.page', { q, off: 0, total: 1, end: true, items: [item] });
    expect(w.c.rt.runUntilTrue(() => eventsOf(w.peer('client'), 'task-list').length === 1, 5_000)).toBe(true);
    const [answer] = eventsOf(w.peer('client'), 'task-list');
    expect(answer!.items.map((i) => i.id).sort()).toEqual([...submitted.keys()].sort());
  });

  it('a stored row whose id is not a task id reads as failed and is never resumed', () => {
    const store = new TaskStore(new Database(':memory:'));
    const rec = {
      op: 'sum',
      args: [1, 2],
      state: 'queued' as const,
      worker: null,
      workerName: null,
      submitter: null,
      submittedAt: 1,
      startedAt: null,
      finishedAt: null,
      result: null,
      error: null,
    };
    store.save({ ...rec, id: '0123456789abcdef' });
    store.save({ ...rec, id: 'not a task id' });
    expect(store.outstanding(10).map((r) => r.id)).toEqual(['0123456789abcdef']);
    expect(store.get('not a task id')?.state).toBe('failed');
  });
});
