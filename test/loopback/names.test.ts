/**
 * Logs name peers, not ids: every envelope carries its sender's name, so a holder that repairs
 * entries from another says which one by name (unit tests cover the sync line). The built CLI on
 * loopback (127.0.0.1, TTL 0), inside a private network namespace: two replica holders, one down
 * while an entry is appended, then back with a text log.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, startCli, tempDir, testPort, type Lines, loopbackFlags } from '../support/proc.js';

const running: Lines[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
});

describe('names in holder logs', () => {
  it('a holder back from a crash logs "repair 1 entry from h1", by name', async () => {
    const root = tempDir('names');
    // Slower failure detection: this runs on a loaded 2-core machine next to other test files.
    const net = loopbackFlags(testPort(), path.join(root, 'data'), 'local');
    const holder = (name: string, format: 'json' | 'text') => {
      const p = startCli([
        'replicate',
        ...net,
        '--dir',
        path.join(root, 'replicas'),
        '--name',
        name,
        '--log-format',
        format,
      ]);
      running.push(p);
      return p;
    };
    const h1 = holder('h1', 'json');
    const h2 = holder('h2', 'json');
    for (const h of [h1, h2])
      await h.until((l) => l.json().some((e) => e.event === 'join'), 30_000, 'the other holder to join');

    h2.child.kill('SIGKILL');
    await h2.exited;
    const r = await runCli(['replicate', 'while h2 is down', ...net, '--acks', '1']);
    expect(r.code, r.stderr).toBe(0);

    const back = holder('h2', 'text');
    await back.until(
      (l) => l.lines.some((x) => / repair 1 entry from h1$/.test(x)),
      20_000,
      'the repair line',
    );
  });
});
