/**
 * One process per name and data dir, and a WAL deleted under a running peer, with the built CLI
 * as real processes on loopback (run inside a private network namespace):
 * - a second `peer kv serve` with the same --name and --data-dir exits 2 with one line naming the
 *   first one's pid, and the first runs on (it still acknowledges writes); `peer recover` is
 *   refused the same way while it runs, and the read-only `task list --local` still works; after
 *   kill -9 of the first, `peer recover` and then a restart take the lock.
 * - the WAL of a running holder is deleted after 20 acknowledged puts (small enough to stay in the
 *   WAL): the holder says so in one line, and after kill -9 and a restart all 20 are there.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loopbackFlags, runCli, startCli, tempDir, testPort, type Lines } from '../support/proc.js';
import { databasePath } from '../../src/storage/store.js';

const running: Lines[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
});

const PUTS = 20;

function serve(net: string[], name: string): Lines {
  const p = startCli(['kv', 'serve', ...net, '--name', name, '--log-format', 'json']);
  running.push(p);
  return p;
}

const up = (p: Lines) => p.json().find((e) => e.event === 'up');

async function killHard(p: Lines): Promise<void> {
  p.child.kill('SIGKILL');
  await p.exited;
}

describe('a data dir on loopback', () => {
  it('a second process with the same name and data dir exits 2 with one line; after kill -9 a restart takes the lock', async () => {
    const dir = path.join(tempDir('lock'), 'data');
    const net = loopbackFlags(testPort(), dir);
    const first = serve(net, 'h1');
    await first.until((l) => up(l) !== undefined, 20_000, 'the first holder up');

    const second = await runCli(['kv', 'serve', ...net, '--name', 'h1']);
    expect(second.code).toBe(2);
    expect(second.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(
          `^peer: a peer named 'h1' already runs on .*\\(pid ${first.child.pid} since .*\\); stop it first`,
        ),
      ),
    ]);
    const recover = await runCli(['recover', '--name', 'h1', '--data-dir', dir]);
    expect(recover.code).toBe(2);
    expect(recover.stderr).toMatch(
      new RegExp(`^peer: a peer named 'h1' already runs on .*pid ${first.child.pid}`),
    );
    expect(recover.stderr.trim().split('\n')).toHaveLength(1);
    // Read-only tools read beside the running peer.
    const list = await runCli(['task', 'list', '--local', '--name', 'h1', '--data-dir', dir]);
    expect(list.code, list.stderr).toBe(0);

    // The first runs on and still acknowledges writes.
    expect(first.child.exitCode).toBeNull();
    const put = await runCli(['kv', 'put', 'k', 'v', ...net, '--acks', 'all']);
    expect(put.code, put.stderr).toBe(0);

    // The kernel dropped the lock with its holder: nothing stale blocks recover or a restart.
    await killHard(first);
    const recovered = await runCli(['recover', '--name', 'h1', '--data-dir', dir]);
    expect(recovered.code, recovered.stderr).toBe(0);
    const restarted = serve(net, 'h1');
    await restarted.until((l) => up(l) !== undefined || l.child.exitCode !== null, 20_000, 'the restart up');
    expect(restarted.child.exitCode, restarted.stderr.join('')).toBeNull();
    expect(up(restarted)).toMatchObject({ keys: 1 });
  }, 90_000);

  it('a WAL deleted under a running holder: one line, and every acknowledged put survives kill -9 and a restart', async () => {
    const dir = path.join(tempDir('wal'), 'data');
    const net = loopbackFlags(testPort(), dir);
    const holder = serve(net, 'h1');
    await holder.until((l) => up(l) !== undefined, 20_000, 'the holder up');
    // One client for the 20 puts: it exits non-zero if any of them was not acknowledged.
    const input = Array.from({ length: PUTS }, (_, i) => `PUT key${i} value ${i}\n`).join('') + 'exit\n';
    const puts = await runCli(['kv', 'shell', ...net, '--acks', 'all'], { input, timeoutMs: 60_000 });
    expect(puts.code, puts.stderr).toBe(0);
    const wal = `${databasePath(dir, 'h1')}-wal`;
    fs.rmSync(wal);
    const said = (l: Lines) => l.stderr.join('').includes(`storage: ${wal} was deleted while the peer ran`);
    await holder.until(said, 10_000, 'the holder to notice its WAL is gone');
    expect(holder.stderr.join('').match(/storage: /g)).toHaveLength(1);

    await killHard(holder);
    const restarted = serve(net, 'h1');
    await restarted.until((l) => up(l) !== undefined || l.child.exitCode !== null, 20_000, 'the restart up');
    expect(restarted.child.exitCode, restarted.stderr.join('')).toBeNull();
    expect(up(restarted)).toMatchObject({ keys: PUTS });
    const dump = await runCli(['kv', 'dump', ...net, '--from', 'h1', '--json']);
    expect(dump.code, dump.stderr).toBe(0);
    const entries = (JSON.parse(dump.stdout) as { entries: Record<string, string> }).entries;
    expect(entries).toEqual(
      Object.fromEntries(Array.from({ length: PUTS }, (_, i) => [`key${i}`, `value ${i}`])),
    );
  }, 120_000);
});
