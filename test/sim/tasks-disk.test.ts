/**
 * Tasks on a failing disk (simulation, faults from the seed through SimDisk). The coordinator's
 * log stops storing (a full disk, or every write failing with EIO):
 *   - a task submitted meanwhile is not accepted: its submitter is told why, at once, and stops
 *     sending it; nothing is accepted that the log does not hold;
 *   - a result that arrives meanwhile is neither acknowledged nor reported: the worker keeps it,
 *     and it is recorded (once) and delivered by itself when the fault clears;
 *   - after the fault, new tasks are accepted and done without a restart;
 *   - no handler error anywhere.
 */
import { describe, expect, it } from 'vitest';
import { SimCluster, type SimPeer } from '../support/cluster.js';
import { FakeElection, SimExecutor } from '../support/tasks.js';
import { PROFILES } from '../../src/p2p/config.js';
import {
  MemoryTaskLog,
  Tasks,
  type LogWrite,
  type TaskLog,
  type TaskRecord,
} from '../../src/p2p/tasks/index.js';
import { SimDisk } from '../support/sim-disk.js';
import { writeFailure } from '../../src/storage/health.js';
import type { PeerEvent, PeerEventOf } from '../../src/p2p/protocol.js';

const SEEDS = Array.from({ length: Number(process.env.TASKS_DISK_SEEDS ?? 12) }, (_, i) => i + 1);
const LINKS = { loss: 0.05, duplicate: 0.03, delayMinMs: 0.1, delayMaxMs: 5 };
/**
 * A task runs this long on its worker: long enough that both tasks below are still running when
 * the second one starts (an assignment may need a few resends), so the disk fails under them.
 */
const TASK_MS = 1500;
/**
 * How long a result may take to reach its submitter: both pushes of it can be lost, and polls
 * come 3, 6, then 12 s after acceptance (RESULT_POLL_MS doubling).
 */
const RESULT_WAIT_MS = 25_000;

/** A log on a SimDisk: a write the disk refuses leaves the log as it was and says why. */
class DiskLog implements TaskLog {
  readonly mem = new MemoryTaskLog();
  constructor(readonly disk: SimDisk) {}
  get = (id: string) => this.mem.get(id);
  list = (offset: number, limit: number) => this.mem.list(offset, limit);
  count = () => this.mem.count();
  outstanding = (limit: number) => this.mem.outstanding(limit);
  save(rec: TaskRecord): LogWrite {
    return this.write(rec, () => this.mem.save(rec));
  }
  finish(rec: TaskRecord): LogWrite {
    return this.write(rec, () => this.mem.finish(rec));
  }
  private write(rec: TaskRecord, apply: () => LogWrite): LogWrite {
    const { error } = this.disk.write(JSON.stringify(rec).length);
    return error ? { first: false, failed: writeFailure('coord.db', error).kind } : apply();
  }
}

function eventsOf<K extends PeerEvent['kind']>(p: SimPeer, kind: K): PeerEventOf<K>[] {
  return p.events.filter((e) => e.kind === kind) as unknown as PeerEventOf<K>[];
}

async function setup(seed: number) {
  const fake = new FakeElection();
  const tasks = new Map<string, Tasks>();
  const executors: SimExecutor[] = [];
  const disk = { current: null as SimDisk | null };
  let coordLog: DiskLog | null = null;
  const c: SimCluster = new SimCluster(seed, LINKS, PROFILES.lan, (node, peer) => {
    let log: TaskLog | undefined;
    if (peer.name === 'coord') {
      disk.current = new SimDisk(c.rt.random);
      log = coordLog = new DiskLog(disk.current);
    }
    const executor: SimExecutor | undefined = peer.name.startsWith('w')
      ? new SimExecutor(
          2,
          c.rt,
          () => TASK_MS,
          () => (peer.up && peer.node === node ? (tasks.get(peer.name) ?? null) : null),
        )
      : undefined;
    if (executor) executors.push(executor);
    const view = fake.viewFor(() => node.id);
    tasks.set(
      peer.name,
      node.install((ctx, n) => new Tasks(ctx, n.membership, { view, log, executor })),
    );
  });
  for (const n of ['coord', 'w0', 'w1', 'client']) await c.add(n);
  const peer = (name: string) => c.peers.find((p) => p.name === name)!;
  fake.elect(peer('coord').node.id);
  expect(c.rt.runUntilTrue(() => c.converged(), 3_000)).toBe(true);
  const started = (id: string) => executors.some((x) => x.started.includes(id));
  return { c, tasks, disk: disk.current!, log: coordLog!, peer, started };
}

describe('tasks on a failing coordinator disk (simulation)', () => {
  it.each(SEEDS)(
    'no acceptance or result without a record, a clear refusal, recovery; seed %i',
    async (seed) => {
      const { c, tasks, disk, log, peer, started } = await setup(seed);
      const client = peer('client');
      const submitter = tasks.get('client')!;
      const resultOf = (id: string) => eventsOf(client, 'task-result').find((e) => e.id === id);

      // Healthy: a task is accepted and done.
      const first = submitter.submit('sum', [1, 2, 3]);
      expect(c.rt.runUntilTrue(() => resultOf(first) !== undefined, RESULT_WAIT_MS)).toBe(true);

      // Tasks running on workers when the disk fails: their results cannot be recorded.
      const running = [submitter.submit('sum', [4, 5]), submitter.submit('fibonacci', [30])];
      expect(
        c.rt.runUntilTrue(() => running.every(started), 3_000),
        'both tasks reached their workers',
      ).toBe(true);
      for (const id of running) expect(resultOf(id), `${id} finished before the fault`).toBeUndefined();
      if (seed % 2 === 0) disk.fill(0);
      else disk.flaky(1, 0);

      // New tasks while the disk fails: refused at once, with the reason, and never accepted.
      const refused = [submitter.submit('sum', [7]), submitter.submit('primes', [100])];
      expect(
        c.rt.runUntilTrue(
          () => refused.every((id) => eventsOf(client, 'task-refused').some((e) => e.id === id)),
          2_000,
        ),
        'the submitter is told its tasks were refused',
      ).toBe(true);
      for (const e of eventsOf(client, 'task-refused')) {
        expect(e.reason).toBe(seed % 2 === 0 ? 'full' : 'io');
        expect(e.why).toMatch(/cannot store the task/);
      }
      c.rt.runFor(3 * TASK_MS);
      for (const id of refused) {
        expect(
          eventsOf(client, 'task-accepted').some((e) => e.id === id),
          `${id} accepted`,
        ).toBe(false);
        expect(log.get(id), `${id} in the log`).toBeUndefined();
      }
      expect(submitter.outstanding(), 'refused tasks are not re-sent').toBe(running.length);
      // The running tasks finished on their workers, but nothing was acknowledged or reported.
      for (const id of running) {
        expect(resultOf(id), `result of ${id} reported without a record`).toBeUndefined();
        expect(log.get(id)?.state).not.toBe('done');
      }
      expect(eventsOf(peer('coord'), 'task-recorded').map((e) => e.id)).toEqual([first]);
      expect(tasks.get('coord')!.stats.unstoredResults).toBeGreaterThan(0);

      // Writes work again: the held results are recorded once and delivered; new tasks are accepted.
      disk.clear();
      expect(
        c.rt.runUntilTrue(() => running.every((id) => resultOf(id) !== undefined), RESULT_WAIT_MS),
        'held results delivered once the disk works',
      ).toBe(true);
      const after = submitter.submit('sort', [3, 1, 2]);
      expect(c.rt.runUntilTrue(() => resultOf(after) !== undefined, RESULT_WAIT_MS)).toBe(true);
      c.rt.runFor(1_000);
      expect(resultOf(after)!.value).toBe('[1,2,3]');
      for (const id of [first, ...running, after]) expect(log.get(id)?.state).toBe('done');
      const recorded = eventsOf(peer('coord'), 'task-recorded').map((e) => e.id);
      expect(recorded.sort()).toEqual([first, ...running, after].sort());
      expect(submitter.outstanding()).toBe(0);
      expect(c.handlerErrors()).toEqual([]);
    },
  );
});
