/**
 * Detached runs kept by the elected coordinator (src/p2p/jobs/keeper.ts), in the simulation with
 * lossy links and the real election:
 *   - handed over, then its submitter gone: every job runs and is recorded once, in the keeper's
 *     store and in every other full peer's store, and a client pages every result back;
 *   - cancelled: no job of it is left running anywhere, the run says cancelled everywhere;
 *   - results come back a page at a time (bytes-bounded), each job once, in job order;
 *   - announcements (jd.run, jd.fin, jd.state) from a member that is not the coordinator are
 *     dropped by every store, and a jb.open from one cannot take a detached run from its keeper.
 */
import { describe, expect, it } from 'vitest';
import { execSpec, lines, runUntil, startsOf } from '../support/jobs.js';
import { collect, keeperCluster, okValue, settle, type KeeperPeerSpec } from '../support/keeper.js';
import { RUN_PAGE_BYTES_MAX } from '../../src/p2p/jobs/limits.js';
import { FIN, JOB_TOPIC, KEPT, OPEN, STATE, encodeJob, keptResults } from '../../src/p2p/jobs/messages.js';

const SEEDS = Array.from({ length: 8 }, (_, i) => i + 1);
const PEERS: KeeperPeerSpec[] = [
  { name: 'k1', priority: 10 },
  { name: 'w1', priority: 0, slots: 2 },
  { name: 'w2', priority: 0, slots: 2 },
];
const OPTS = { retries: 1, maxRunning: null, workers: null };

describe('run: detached runs (simulation)', () => {
  it.each(SEEDS)(
    'a detached run outlives its submitter: every job recorded once everywhere, seed %i',
    async (seed) => {
      const h = await keeperCluster(seed, PEERS, (req) => ({
        durationMs: 200 + (req.job % 4) * 50,
        exit: req.job % 7 === 0 ? 3 : 0,
        ignoresTerm: false,
        stdout: `out ${req.job}\n`,
      }));
      const run = okValue(await settle(h, h.jobs.get('client')!.keeper.detach(execSpec(), lines(40), OPTS)));
      // Stored (acknowledged means durable) before the answer came.
      expect(h.stores.get('k1')!.get(run)?.state).toBe('open');
      await h.c.crash(h.client);
      const k1 = h.stores.get('k1')!;
      expect(await runUntil(h, () => k1.get(run)?.state === 'done', 60_000)).toBe(true);
      for (const name of ['k1', 'w1', 'w2']) {
        const store = h.stores.get(name)!;
        expect(await runUntil(h, () => store.get(run)?.state === 'done', 10_000)).toBe(true);
        const page = store.results(run, 0, Infinity, 1000);
        expect(page.results.map((r) => r.job)).toEqual(lines(40).map((j) => j.job));
        expect(store.view(run)).toMatchObject({ jobs: 40, done: 40 - 5, failed: 5, state: 'done' });
      }
      // Nothing was lost but datagrams: each job ran once, on the worker its result names.
      const starts = startsOf(h, run);
      expect(starts.map((s) => s.job).sort((a, b) => a - b)).toEqual(lines(40).map((j) => j.job));
      for (const r of k1.results(run, 0, Infinity, 1000).results) {
        expect(Buffer.from(r.stdout).toString()).toBe(`out ${r.job}\n`);
        expect(r.workerName).toBe(starts.find((s) => s.job === r.job)!.worker);
      }
      // A client that comes later reads every result back.
      await h.c.restart(h.client);
      const results = await collect(h, run);
      expect(results.map((r) => r.job)).toEqual(lines(40).map((j) => j.job));
      expect(results.filter((r) => r.exit !== 0).map((r) => r.job)).toEqual([7, 14, 21, 28, 35]);
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );

  it.each(SEEDS.slice(0, 4))('a cancelled run leaves nothing running anywhere, seed %i', async (seed) => {
    const h = await keeperCluster(seed, PEERS, () => ({ durationMs: 5000, exit: 0, ignoresTerm: true }));
    const api = h.jobs.get('client')!.keeper;
    const run = okValue(await settle(h, api.detach(execSpec({ graceMs: 300 }), lines(30), OPTS)));
    const running = () => [...h.executors.values()].flat().reduce((n, e) => n + e.aliveOf(run), 0);
    expect(await runUntil(h, () => running() === 4, 10_000)).toBe(true);
    const view = okValue(await settle(h, api.cancelRun(run)));
    expect(view.state).toBe('cancelled');
    expect(await runUntil(h, () => running() === 0, 10_000)).toBe(true);
    for (const name of ['k1', 'w1', 'w2'])
      expect(await runUntil(h, () => h.stores.get(name)!.get(run)?.state === 'cancelled', 10_000)).toBe(true);
    // Cancelled is final: the run is not placed again, and says so to whoever asks.
    await runUntil(h, () => false, 3000);
    expect(startsOf(h, run).length).toBe(4);
    expect(okValue(await settle(h, api.results(run, 0))).view.state).toBe('cancelled');
    const unknown = await settle(h, api.cancelRun('0123456789abcdef'));
    expect(unknown).toEqual({ ok: false, why: 'no run 0123456789abcdef in the group' });
    expect(h.c.handlerErrors()).toEqual([]);
  });

  it('results come a page at a time, bounded in bytes, each job once in job order', async () => {
    const big = 'x'.repeat(600 * 1024);
    const h = await keeperCluster(3, PEERS, (req) => ({
      durationMs: 50,
      exit: 0,
      ignoresTerm: false,
      stdout: big + req.job,
    }));
    const api = h.jobs.get('client')!.keeper;
    const run = okValue(await settle(h, api.detach(execSpec(), lines(12), OPTS)));
    expect(await runUntil(h, () => h.stores.get('k1')!.get(run)?.state === 'done', 60_000)).toBe(true);
    const pages: number[][] = [];
    let after = 0;
    for (;;) {
      const page = okValue(await settle(h, api.results(run, after)));
      pages.push(page.results.map((r) => r.job));
      // Each result with its input line: what its command was.
      expect(page.inputs).toEqual(page.results.map((r) => String(r.job)));
      const bytes = page.results.reduce((n, r) => n + r.stdout.length, 0);
      expect(bytes).toBeLessThanOrEqual(RUN_PAGE_BYTES_MAX);
      if (page.next === null) break;
      after = page.next;
    }
    expect(pages.length).toBeGreaterThan(1);
    expect(pages.flat()).toEqual(lines(12).map((j) => j.job));
    // Read to its end once over: collected.
    expect(h.stores.get('k1')!.get(run)?.collectedAtWallMs).not.toBeNull();
  });

  it.each(SEEDS.slice(0, 4))(
    'announcements and takeovers from a non-coordinator are dropped, seed %i',
    async (seed) => {
      // Jobs long enough that their workers still hold them when the client tries its takeover,
      // 1 s after they all started, however fast the starts are reported.
      const h = await keeperCluster(seed, PEERS, (req) => ({
        durationMs: 3000,
        exit: 0,
        ignoresTerm: false,
        stdout: `real ${req.job}`,
      }));
      const spec = execSpec({ detached: true });
      const run = okValue(await settle(h, h.jobs.get('client')!.keeper.detach(spec, lines(4), OPTS)));
      expect(await runUntil(h, () => startsOf(h, run).length === 4, 10_000)).toBe(true);
      const w1 = h.peer('w1').node;
      const forged = keptResults([
        {
          ...startsOf(h, run)[0]!,
          worker: w1.id,
          workerName: 'w1',
          stdout: Buffer.from('forged'),
          stderr: Buffer.from(''),
          started: true,
          exit: 0,
          signal: 0,
          timedOut: false,
          cancelled: false,
          startedAtWallMs: 0,
          runtimeUs: 0,
          truncated: false,
          error: null,
          sendBytes: 0,
          receiveBytes: 0,
        },
      ]);
      const w1r = h.reliables.get('w1')!;
      w1r.publish(JOB_TOPIC, encodeJob(FIN, { run, results: forged.entries }, forged.bytes));
      w1r.publish(JOB_TOPIC, encodeJob(STATE, { run, state: 'cancelled', collected: 0 }));
      const { run: _r, detached: _d, output: _o, transfers: _t, returns: _x, ...fields } = { ...spec, run };
      const fake = 'fedcba9876543210';
      w1r.publish(
        JOB_TOPIC,
        encodeJob(KEPT, {
          ...fields,
          run: fake,
          retries: 1,
          maxRunning: null,
          workers: null,
          jobs: [[1, 1, 'x', null]],
          submitter: w1.id,
          submitterName: 'w1',
          at: 0,
        }),
      );
      await runUntil(h, () => false, 1000);
      // The client tries to take the run over on a worker that holds jobs of it.
      const holder = startsOf(h, run)[0]!.worker;
      const before = h.jobs.get(holder)!.stats.wrongSender;
      const open = encodeJob(OPEN, { ...spec, run });
      h.reliables.get('client')!.sendTo(h.peer(holder).node.id, JOB_TOPIC, open);
      expect(await runUntil(h, () => h.jobs.get(holder)!.stats.wrongSender > before, 5000)).toBe(true);
      const k1 = h.stores.get('k1')!;
      expect(await runUntil(h, () => k1.get(run)?.state === 'done', 30_000)).toBe(true);
      for (const name of ['k1', 'w1', 'w2']) {
        const store = h.stores.get(name)!;
        expect(await runUntil(h, () => store.view(run)?.done === 4, 10_000)).toBe(true);
        expect(store.get(run)?.state).toBe('done');
        expect(store.get(fake)).toBeUndefined();
        const texts = store
          .results(run, 0, Infinity, 10)
          .results.map((r) => Buffer.from(r.stdout).toString());
        expect(texts).toEqual(['real 1', 'real 2', 'real 3', 'real 4']);
        // The forger's own announcements never reach itself.
        if (name !== 'w1') expect(h.jobs.get(name)!.stats.wrongSender).toBeGreaterThanOrEqual(3);
      }
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );
});
