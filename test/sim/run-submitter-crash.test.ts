/**
 * The submitter of an attached run crashes (`peer run` killed) in the simulation (src/p2p/jobs):
 * within membership's death detection (deadAfterMs x (1 + health score)) and the grace, no worker
 * holds or runs anything of the run (jobs that ignore SIGTERM end by SIGKILL), and once a worker
 * holds the submitter dead it sends it nothing more.
 */
import { describe, expect, it } from 'vitest';
import { PROFILES } from '../../src/p2p/config.js';
import { LOSSY, execSpec, jobsCluster, lines, runUntil, startRun } from '../support/jobs.js';

const SEEDS = Array.from({ length: 30 }, (_, i) => i + 1);
const GRACE_MS = 500;
const { deadAfterMs } = PROFILES.lan.membership;
const { tickMs } = PROFILES.lan;

describe('run: submitter crash (simulation)', () => {
  it.each(SEEDS)('no worker holds or runs the run once its submitter is dead, seed %i', async (seed) => {
    const workers = ['w1', 'w2', 'w3'].map((name) => ({ name, slots: 2 }));
    const h = await jobsCluster(
      seed,
      workers,
      (req) => ({ durationMs: 300 + (req.job % 5) * 100, exit: 0, ignoresTerm: req.job % 2 === 0 }),
      LOSSY,
    );
    const t = startRun(h, lines(200), {}, execSpec({ graceMs: GRACE_MS }));
    expect(await runUntil(h, () => t.sink.records.length >= 10, 30_000)).toBe(true);
    // Every worker has met the submitter (at 10 % loss one may not have yet): a death is seen only
    // by those that knew it alive.
    const known = () => h.workers.every((w) => w.node.membership.get(h.submitter.node.id)?.state === 'alive');
    expect(await runUntil(h, known, 30_000)).toBe(true);
    const deadAt = new Map<string, number>();
    for (const w of h.workers)
      w.node.on((e) => {
        if (e.kind === 'dead' && e.member.id === h.submitter.node.id) deadAt.set(w.address, h.c.rt.now());
      });
    await h.c.crash(h.submitter);
    const crashedAt = h.c.rt.now();
    let health = 0;
    const clear = () => {
      for (const w of h.workers) health = Math.max(health, w.node.membership.health.score);
      return (
        h.workers.every((w) => h.jobs.get(w.name)!.runner!.held() === 0) &&
        [...h.executors.values()].every((l) => l.every((e) => e.aliveOf(t.handle.run) === 0))
      );
    };
    expect(await runUntil(h, clear, 30_000)).toBe(true);
    expect(h.c.rt.now() - crashedAt).toBeLessThanOrEqual(deadAfterMs * (1 + health) + GRACE_MS + 4 * tickMs);
    expect(await runUntil(h, () => deadAt.size === h.workers.length, 30_000)).toBe(true);
    await runUntil(h, () => false, 3000);
    const late = h.sends.filter((s) => s.to === h.submitter.address && s.at > deadAt.get(s.from)! + tickMs);
    expect(late).toEqual([]);
    expect(h.c.handlerErrors()).toEqual([]);
  });
});
