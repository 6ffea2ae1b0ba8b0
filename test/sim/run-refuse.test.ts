/**
 * Refusals in the simulation (src/p2p/jobs): commands run only in a keyed group on workers started
 * with --allow-exec. Workers that do not advertise it are never sent a command and the run fails
 * saying so; a worker sent one anyway (its advert claims more than it allows) answers jb.refuse
 * and nothing runs; a member that is not the run's submitter or worker (a forger) can neither add
 * jobs to a run nor record a result in it.
 */
import { describe, expect, it } from 'vitest';
import { JOB_NO_WORKER_MS, TAG_EXEC } from '../../src/p2p/jobs/index.js';
import { DONE, JOBS, JOB_TOPIC, encodeJob } from '../../src/p2p/jobs/messages.js';
import {
  LOSSY,
  jobsCluster,
  lines,
  runUntil,
  startRun,
  startsOf,
  type JobsHarness,
} from '../support/jobs.js';

const SEEDS = Array.from({ length: 30 }, (_, i) => i + 1);
const quick = () => ({ durationMs: 20, exit: 0, ignoresTerm: false });
const starts = (h: JobsHarness) => [...h.executors.values()].flat().reduce((n, e) => n + e.started.length, 0);

/** Makes a worker's advert claim it runs commands, whatever it allows. */
function claimExec(h: JobsHarness): void {
  for (const w of h.workers) w.node.membership.setTags({ ...w.node.membership.ownTags, [TAG_EXEC]: '1' });
}

describe('run: refusals (simulation)', () => {
  it.each(SEEDS)(
    'workers without --allow-exec: the run fails saying so, nothing runs, seed %i',
    async (seed) => {
      const workers = ['w1', 'w2', 'w3'].map((name) => ({ name, slots: 2, allowExec: false }));
      const h = await jobsCluster(seed, workers, quick, LOSSY);
      const t = startRun(h, lines(20));
      expect(await runUntil(h, t.over, JOB_NO_WORKER_MS + 1000)).toBe(true);
      expect(t.events.at(-1)).toMatchObject({
        kind: 'run-failed',
        why: 'no worker accepts commands (3 workers without --allow-exec)',
      });
      expect(starts(h)).toBe(0);
    },
  );

  it.each(SEEDS)(
    'a worker in an open group refuses commands whatever its advert says, seed %i',
    async (seed) => {
      const h = await jobsCluster(seed, [{ name: 'w1', slots: 2, keyed: false }], quick, LOSSY);
      claimExec(h);
      expect(await runUntil(h, () => h.jobs.get('submitter')!.workers()[0]?.allowExec === true, 5000)).toBe(
        true,
      );
      const t = startRun(h, lines(20));
      expect(await runUntil(h, t.over, JOB_NO_WORKER_MS + 5000)).toBe(true);
      expect(t.events.at(-1)).toMatchObject({ kind: 'run-failed' });
      expect((t.events.at(-1) as { why: string }).why).toContain('commands run only in a keyed group');
      expect(starts(h)).toBe(0);
      expect(t.sink.records).toEqual([]);
    },
  );

  it.each(SEEDS)(
    'a worker without --allow-exec refuses commands whatever its advert says, seed %i',
    async (seed) => {
      const h = await jobsCluster(seed, [{ name: 'w1', slots: 2, allowExec: false }], quick, LOSSY);
      claimExec(h);
      expect(await runUntil(h, () => h.jobs.get('submitter')!.workers()[0]?.allowExec === true, 5000)).toBe(
        true,
      );
      const t = startRun(h, lines(20));
      expect(await runUntil(h, t.over, JOB_NO_WORKER_MS + 5000)).toBe(true);
      expect((t.events.at(-1) as { why: string }).why).toContain('--allow-exec');
      expect(starts(h)).toBe(0);
    },
  );

  it.each(SEEDS)(
    'a forger can neither add jobs to a run nor record a result in it, seed %i',
    async (seed) => {
      const workers = ['w1', 'w2'].map((name) => ({ name, slots: 2 }));
      const h = await jobsCluster(
        seed,
        workers,
        () => ({ durationMs: 200, exit: 0, ignoresTerm: false }),
        LOSSY,
        {
          others: ['mallory'],
        },
      );
      const t = startRun(h, lines(30));
      // Both workers run it (w1 must know the run to take mallory's jobs for forged, not unknown).
      const running = (w: string) => startsOf(h, t.handle.run).some((s) => s.worker === w);
      expect(await runUntil(h, () => running('w1') && running('w2'), 10_000)).toBe(true);
      const mallory = h.reliables.get('mallory')!;
      const malloryPeer = h.c.peers.find((p) => p.name === 'mallory')!;
      const knows = () =>
        h.c.peers.every(
          (p) =>
            p === malloryPeer ||
            (malloryPeer.node.membership.get(p.node.id) && p.node.membership.get(malloryPeer.node.id)),
        );
      expect(await runUntil(h, knows, 5000)).toBe(true);
      const run = t.handle.run;
      const victim = startsOf(h, run)[0]!;
      const w1 = h.workers[0]!.node.id;
      // Jobs of the run from mallory to a worker that runs it: a job the run lacks, a job it has.
      mallory.sendTo(w1, JOB_TOPIC, encodeJob(JOBS, { run, jobs: [[999, 999, 1, 2 ** 40, 'evil']] }));
      mallory.sendTo(
        w1,
        JOB_TOPIC,
        encodeJob(JOBS, { run, jobs: [[victim.job, victim.seq, 9, 2 ** 40, 'evil']] }),
      );
      // A result for an attempt the submitter placed, from mallory.
      const result = {
        job: victim.job,
        attempt: victim.attempt,
        fence: victim.fence,
        exit: 0,
        signal: 0,
        timedOut: false,
        cancelled: false,
        started: true,
        at: 0,
        us: 1,
        out: 4,
        err: 0,
        truncated: false,
        why: null,
      };
      const submitter = h.submitter.node.id;
      mallory.sendTo(
        submitter,
        JOB_TOPIC,
        encodeJob(DONE, { run, free: 0, seen: 0, results: [result] }, Buffer.from('evil')),
      );
      expect(await runUntil(h, t.over, 30_000)).toBe(true);
      expect(t.events.at(-1)).toMatchObject({ kind: 'run-finished', counts: { done: 30 } });
      expect(
        t.sink.records.every(
          (r) => r.workerName !== 'mallory' && Buffer.from(r.stdout).toString() !== 'evil',
        ),
      ).toBe(true);
      expect(startsOf(h, run).every((s) => s.job <= 30 && !s.command.includes('evil'))).toBe(true);
      expect(h.jobs.get('w1')!.stats.wrongSender).toBe(2);
      // Taken for a result from the wrong peer, or for a late one when the job was recorded first.
      const stats = h.jobs.get('submitter')!.stats;
      expect(stats.wrongSender + stats.duplicateResults).toBeGreaterThanOrEqual(1);
      expect([...t.sink.perJob().values()].every((n) => n === 1)).toBe(true);
    },
  );
});
