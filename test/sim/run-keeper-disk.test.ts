/**
 * The keeper's disk fails (simulation, faults through SimDisk): acknowledged means durable.
 *   - a run handed over while its store cannot write is refused with the reason, at once: nothing
 *     is kept, nothing runs;
 *   - results that come while the store cannot write are not acknowledged to their workers and
 *     not announced, and the run is not over; once writes work again each is recorded once and
 *     the run ends, without a restart.
 */
import { describe, expect, it } from 'vitest';
import { execSpec, lines, runUntil, startsOf } from '../support/jobs.js';
import { keeperCluster, okValue, settle } from '../support/keeper.js';
import { SimDisk } from '../support/sim-disk.js';
import { JOB_TOPIC, decodeJob } from '../../src/p2p/jobs/messages.js';

const SEEDS = Array.from({ length: 6 }, (_, i) => i + 1);
const OPTS = { retries: 1, maxRunning: null, workers: null };

describe('run: the keeper on a failing disk (simulation)', () => {
  it.each(SEEDS)(
    'a full disk refuses a run and acknowledges no result it cannot store, seed %i',
    async (seed) => {
      const disk = new SimDisk(() => 0.5);
      const h = await keeperCluster(
        seed,
        [
          { name: 'k1', priority: 10, disk },
          { name: 'w1', priority: 0, slots: 2 },
          { name: 'w2', priority: 0, slots: 2 },
        ],
        (req) => ({ durationMs: 1500, exit: 0, ignoresTerm: false, stdout: `r${req.job}` }),
      );
      // Every jb.done a worker sends to the keeper, and whether the keeper acknowledged it.
      const acked: boolean[] = [];
      for (const w of ['w1', 'w2']) {
        const r = h.reliables.get(w)!;
        const sendTo = r.sendTo.bind(r);
        r.sendTo = (to, topic, payload, done) =>
          sendTo(to, topic, payload, (res) => {
            const m =
              topic === JOB_TOPIC
                ? decodeJob(typeof payload === 'string' ? Buffer.from(payload) : payload)
                : undefined;
            if (m?.type === 'jb.done' && m.body.results.length > 0) acked.push(res.ok);
            done?.(res);
          });
      }
      const api = h.jobs.get('client')!.keeper;
      const k1 = h.stores.get('k1')!;

      disk.fill(0);
      const refused = await settle(h, api.detach(execSpec(), lines(4), OPTS));
      expect(refused).toEqual({
        ok: false,
        why: 'the coordinator cannot store the run: disk full; free space on its disk, then run it again',
      });
      expect(k1.count()).toBe(0);
      await runUntil(h, () => false, 2000);
      expect([...h.executors.values()].flat().every((e) => e.started.length === 0)).toBe(true);

      disk.clear();
      const run = okValue(await settle(h, api.detach(execSpec(), lines(4), OPTS)));
      expect(await runUntil(h, () => startsOf(h, run).length > 0, 10_000)).toBe(true);
      disk.fill(0);
      // The jobs end and their results reach the keeper, which cannot store them.
      await runUntil(h, () => false, 8000);
      expect(startsOf(h, run).length).toBe(4);
      expect(k1.view(run)).toMatchObject({ done: 0, state: 'open' });
      expect(acked.filter((ok) => ok)).toEqual([]);
      // Nor is the run over for the keeper: its workers keep the results they could not hand over.
      const finished = () => h.peer('k1').events.some((e) => e.kind === 'run-finished' && e.run === run);
      expect(finished()).toBe(false);
      // Nothing announced either: no other store has a result the keeper's lacks.
      expect(h.stores.get('w1')!.view(run)).toMatchObject({ done: 0 });
      expect(h.stores.get('w2')!.view(run)).toMatchObject({ done: 0 });

      disk.clear();
      expect(await runUntil(h, () => k1.get(run)?.state === 'done', 20_000)).toBe(true);
      const stored = k1.results(run, 0, Infinity, 100).results;
      expect(stored.map((r) => Buffer.from(r.stdout).toString())).toEqual(['r1', 'r2', 'r3', 'r4']);
      expect(startsOf(h, run).length).toBe(4);
      expect(finished()).toBe(true);
      // The workers kept their results until the keeper stored them: then they were acknowledged.
      expect(await runUntil(h, () => acked.filter((ok) => ok).length >= 1, 10_000)).toBe(true);
      // Every member's store follows the keeper's: the worker whose acks were withheld too.
      for (const w of ['w1', 'w2']) {
        const s = h.stores.get(w)!;
        expect(await runUntil(h, () => s.view(run)?.done === 4, 10_000)).toBe(true);
      }
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );
});
