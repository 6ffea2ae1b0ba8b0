/**
 * Cancelling a run in the simulation (src/p2p/jobs), as Ctrl-C on `peer run` does: no attempt is
 * placed afterwards; every process group of the run is empty soon after the grace (jobs that
 * ignore SIGTERM end by SIGKILL after it); the run ends with 'run-cancelled', every worker
 * confirmed, and the counts add up.
 */
import { describe, expect, it } from 'vitest';
import { PROFILES } from '../../src/p2p/config.js';
import { LOSSY, execSpec, jobsCluster, lines, runUntil, startRun, startsOf } from '../support/jobs.js';

const SEEDS = Array.from({ length: 30 }, (_, i) => i + 1);
const JOBS = 100;
const GRACE_MS = 1000;
/** Reliable unicast retries a lost cancel every 100 ms: allowance for a few losses in a row, and two ticks. */
const DELIVERY_ALLOWANCE_MS = 600 + 2 * PROFILES.lan.tickMs;

describe('run: cancel (simulation)', () => {
  it.each(SEEDS)(
    'cancel mid-run: nothing placed after, every group empty by the grace, seed %i',
    async (seed) => {
      const workers = ['w1', 'w2', 'w3'].map((name) => ({ name, slots: 2 }));
      const h = await jobsCluster(
        seed,
        workers,
        (req) => ({ durationMs: 400 + (req.job % 4) * 100, exit: 0, ignoresTerm: req.job % 3 === 0 }),
        LOSSY,
      );
      const t = startRun(h, lines(JOBS), {}, execSpec({ graceMs: GRACE_MS }));
      expect(await runUntil(h, () => t.sink.records.length >= 10, 30_000)).toBe(true);
      const cancelAt = h.c.rt.now();
      const lamportAtCancel = h.submitter.node.lamport;
      t.handle.cancel();
      expect(t.handle.room()).toBe(0);
      const groupsEmpty = () =>
        [...h.executors.values()].every((l) => l.every((e) => e.aliveOf(t.handle.run) === 0));
      expect(await runUntil(h, groupsEmpty, GRACE_MS + DELIVERY_ALLOWANCE_MS)).toBe(true);
      expect(await runUntil(h, t.over, 10_000)).toBe(true);
      const end = t.events.at(-1)!;
      expect(end, JSON.stringify([end, t.handle.counts()])).toMatchObject({
        kind: 'run-cancelled',
        unconfirmed: [],
      });
      // Attempts that started after the cancel were all placed before it (fences are Lamport times).
      for (const s of startsOf(h, t.handle.run)) expect(s.fence).toBeLessThanOrEqual(lamportAtCancel);
      const c = t.handle.counts();
      expect(c.done + c.failed + c.cancelled).toBe(c.fed);
      expect(c.cancelled).toBeGreaterThan(0);
      // A job that ignored SIGTERM and was killed ended by SIGKILL, recorded as killed by us.
      for (const r of t.sink.records.filter((x) => x.cancelled && x.started)) {
        expect(r.exit).toBe(-1);
        expect(r.signal).toBe(r.job % 3 === 0 ? 9 : 15);
      }
      expect([...t.sink.perJob().values()].every((n) => n === 1)).toBe(true);
      await runUntil(h, () => false, 1000);
      for (const w of h.workers) expect(h.jobs.get(w.name)!.runner!.held()).toBe(0);
      expect(cancelAt).toBeGreaterThan(0);
      expect(h.c.handlerErrors()).toEqual([]);
    },
  );
});
