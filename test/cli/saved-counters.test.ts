/**
 * Counters a peer starts from (its incarnation, its Lamport time) come from its data dir; one
 * past the bound of bounds.ts (a forged value saved by an older version, or damage) is reported
 * as damage in one line with exit code 2, never adopted.
 */
import { describe, expect, it } from 'vitest';
import { openCheckpoints } from '../../src/storage/checkpoint.js';
import { PeerStore } from '../../src/storage/store.js';
import { registerStandardSources } from '../../src/cli/checkpointing.js';
import { loopbackFlags, runCli, tempDir, testPort } from '../support/proc.js';

/** A peer that would start would run until killed: a refusal comes long before this. */
const REFUSAL_MS_MAX = 10_000;

function expectDamageLine(r: { code: number | null; stderr: string }, what: RegExp) {
  expect(r.code).toBe(2);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(what);
  expect(lines[0]).toMatch(/is damaged: .* restore a backup, or move it aside/);
}

describe('counters saved past their bound', () => {
  it('a saved incarnation at the end of the safe range is damage, and stays as it was', async () => {
    const dir = tempDir('saved-inc');
    const store = PeerStore.open(dir, 'zed');
    store.startIdentity();
    store.saveIncarnation(Number.MAX_SAFE_INTEGER);
    store.close();
    const r = await runCli(['up', '--name', 'zed', ...loopbackFlags(testPort(), dir)], {
      timeoutMs: REFUSAL_MS_MAX,
    });
    expectDamageLine(r, /saved incarnation '9007199254740991'/);
    const after = PeerStore.open(dir, 'zed');
    expect(after.getMeta('incarnation')).toBe(String(Number.MAX_SAFE_INTEGER));
    after.close();
  });

  it('a checkpointed Lamport time at the end of the safe range is damage', async () => {
    const dir = tempDir('saved-lamport');
    const cp = openCheckpoints(dir, 'zed');
    registerStandardSources(
      cp,
      () => Number.MAX_SAFE_INTEGER,
      () => true,
    );
    cp.checkpoint();
    cp.close();
    const r = await runCli(['up', '--name', 'zed', ...loopbackFlags(testPort(), dir)], {
      timeoutMs: REFUSAL_MS_MAX,
    });
    expectDamageLine(r, /saved Lamport time 9007199254740991/);
  });
});
