/**
 * The simulated forger (issue 17): a stranger on an open group sends well-formed datagrams of
 * every message type with extreme and crafted fields for FORGE_MS, then stops; within twice the
 * detection time the group must be whole again, and then do its work: writes acknowledged, clocks
 * advancing and agreeing, the token going round one holder at a time, chat delivered, a task run,
 * no handler error (test/support/forger-group.ts says exactly what is checked).
 *
 * Each seed draws the forger's plan with fast-check from that seed, so a failure replays:
 * FORGER_SEEDS=a,b to run chosen seeds. Seeds run in a worker thread with a wall-clock deadline,
 * so a peer stuck in a loop fails its seed instead of hanging the run.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { FORGERIES, planArbitrary, corrupted, encodeForged, type Forge } from '../support/forger.js';
import { ForgerGroup, FORGE_MS, protocolsOf, registered, runForgerSeed } from '../support/forger-group.js';
import { ForgerWorker } from '../support/forger-worker.js';
import { Codec } from '../../src/p2p/wire.js';

const SEEDS = process.env.FORGER_SEEDS
  ? process.env.FORGER_SEEDS.split(',').map(Number)
  : Array.from({ length: 20 }, (_, i) => i + 1);
/** Wall time one seed may take on a loaded 2-core machine before it counts as stuck (a seed takes about 1 s). */
const SEED_WALL_MS_MAX = 30_000;
const CONTROL_SEEDS = [1, 2, 3];

/** A formed group, for what it registers. */
async function formedGroup(): Promise<ForgerGroup> {
  const g = new ForgerGroup(1);
  await g.start();
  return g;
}

describe('the forger covers every message type', () => {
  it('has a generator for every type a protocol registers, and none for a type nobody registers', async () => {
    const g = await formedGroup();
    const types = g.members.flatMap((m) => Object.keys(registered(m).bodies));
    expect(new Set(types).size).toBeGreaterThan(0);
    expect(Object.keys(FORGERIES).sort()).toEqual([...new Set(types)].sort());
  });

  it('runs every protocol module there is in src/p2p', async () => {
    // A new module's types are forged only if the forger's group installs it.
    const dir = path.join(import.meta.dirname, '../../src/p2p');
    const declared = readdirSync(dir)
      .filter((f) => f.endsWith('.ts'))
      .flatMap((f) => [
        ...readFileSync(path.join(dir, f), 'utf8').matchAll(
          /export class (\w+) implements [^{]*\bProtocol\b/g,
        ),
      ])
      .map((m) => m[1]!);
    const g = await formedGroup();
    const installed = protocolsOf(g.members[0]!).map((p) => p.constructor.name);
    expect(declared.length).toBeGreaterThan(0);
    expect([...new Set(installed)].sort()).toEqual(expect.arrayContaining(declared.sort()));
  });

  it('makes datagrams the members decode for every type, and breaks one field in some to test the decoder', async () => {
    const g = await formedGroup();
    const { bodies, attachments } = registered(g.members[0]!);
    const codec = new Codec(bodies, attachments);
    const members = g.victims();
    const f: Forge = { victim: members[0]!, members, strangers: ['5151515151515151'] };
    const [plan] = fc.sample(
      planArbitrary({
        types: Object.keys(bodies),
        members: members.length,
        forgeMs: FORGE_MS,
        perTypeMin: 20,
        perTypeMax: 20,
      }),
      { seed: 42, numRuns: 1 },
    );
    const ok: Record<string, number> = {};
    let refusedWhole = 0;
    let broken = 0;
    for (const step of plan!) {
      const [env, m] = step.corrupt
        ? corrupted(step.corrupt, step.envelope(f), step.message(f))
        : [step.envelope(f), step.message(f)];
      const r = codec.decode(encodeForged(step.type, env, m));
      if (step.corrupt) broken++;
      if (r.ok) ok[step.type] = (ok[step.type] ?? 0) + 1;
      // Oversize and, for attachments, sequences or Lamport times summed past 2^53 are refused by design.
      else if (!step.corrupt && r.reason !== 'oversize' && r.reason !== 'attachment') refusedWhole++;
    }
    // Every type gets through the decoder often (what reaches the protocols is what tests them)...
    for (const t of Object.keys(bodies)) expect(ok[t] ?? 0, t).toBeGreaterThanOrEqual(5);
    // ...a datagram not broken on purpose is refused only for what its extreme values add up to...
    expect(refusedWhole).toBe(0);
    // ...and some are broken on purpose.
    expect(broken).toBeGreaterThan(plan!.length / 20);
  });
});

describe('the group is whole again after the forger stops', () => {
  const worker = new ForgerWorker();
  afterAll(() => worker.close());

  it.each(CONTROL_SEEDS)('without the forger, the same checks pass (control, seed %i)', async (seed) => {
    const outcome = await runForgerSeed(seed, { forge: false });
    expect(outcome.failures).toEqual([]);
  });

  it.each(SEEDS)(
    'seed %i',
    async (seed) => {
      const outcome = await worker.run(seed, { forge: true }, SEED_WALL_MS_MAX);
      expect(outcome.failures).toEqual([]);
      expect(outcome.sent).toBeGreaterThan(0);
    },
    SEED_WALL_MS_MAX + 5_000,
  );
});
