/**
 * The built CLI on loopback (127.0.0.1, TTL 0): three replica holders as real processes, one-shot
 * appends with --acks, a holder killed and restarted, and `peer reconcile`: identical files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, startCli, tempDir, testPort, type Lines, loopbackFlags } from '../support/proc.js';
import { compareEntries, entryId, parseLine, type Entry } from '../../src/p2p/replication/index.js';

const running: Lines[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
});

function readReplica(file: string): Entry[] {
  const text = fs.readFileSync(file, 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const p = parseLine(l);
      if (!p.ok) throw new Error(`${file}: ${p.reason}: ${l}`);
      return p.entry;
    });
}

describe('peer replicate and peer reconcile on loopback', () => {
  it('three holders: acknowledged appends, a crashed holder catching up, reconcile to identical files', async () => {
    const port = testPort();
    const root = tempDir('replicate');
    // Slower failure detection: this runs on a loaded 2-core machine next to other test files.
    const net = loopbackFlags(port, path.join(root, 'data'), 'local');
    const dir = path.join(root, 'replicas');
    const holder = (name: string) => {
      const p = startCli(['replicate', ...net, '--dir', dir, '--name', name, '--log-format', 'json']);
      running.push(p);
      return p;
    };
    const joined = (p: Lines, n: number) => p.json().filter((e) => e.event === 'join').length >= n;
    const hs = ['h1', 'h2', 'h3'].map(holder);
    await Promise.all(hs.map((h) => h.until((l) => joined(l, 2), 30_000, 'two joins')));

    const texts = ['first', 'tab\there, "quotes" and \\ back', 'ünïcødé 😀', 'last'];
    const ids: string[] = [];
    for (const t of texts) {
      const r = await runCli(['replicate', t, ...net, '--acks', 'all', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { ok: boolean; id: string; confirmed: string[] };
      expect(out.ok).toBe(true);
      expect(out.confirmed).toEqual(['h1', 'h2', 'h3']);
      ids.push(out.id);
    }
    // Acknowledged means on disk: every file holds every entry right now.
    for (const h of ['h1', 'h2', 'h3']) {
      const got = readReplica(path.join(dir, `${h}.txt`)).map(entryId);
      expect(new Set(got)).toEqual(new Set(ids));
    }

    // h3 dies: --acks all fails and names it, --acks majority succeeds.
    const h3 = hs[2]!;
    h3.child.kill('SIGKILL');
    await h3.exited;
    const failed = await runCli([
      'replicate',
      'while h3 is down',
      ...net,
      '--acks',
      'all',
      '--timeout',
      '1500',
      '--json',
    ]);
    expect(failed.code).toBe(1);
    // One JSON object on stdout, saying what was and was not confirmed.
    const failedOut = JSON.parse(failed.stdout) as { ok: boolean; confirmed: string[] };
    expect(failedOut.ok).toBe(false);
    expect(failedOut.confirmed).toEqual(['h1', 'h2']);
    // The one-shot appender never heard h3 (dead before it started), whose name it cannot know:
    // the acks named it by id, and the line says that this is an id, not a name.
    const h3Id = String(h3.json().find((e) => e.event === 'up')!.id);
    expect(failed.stderr).toContain(`no confirmation from: ${h3Id.slice(0, 8)} (not heard from); check`);
    const maj = await runCli(['replicate', 'majority only', ...net, '--acks', 'majority', '--json']);
    expect(maj.code, maj.stderr).toBe(0);

    // h3 comes back with its file and catches up by anti-entropy.
    const back = holder('h3');
    await back.until(
      (l) =>
        l
          .json()
          .filter((e) => e.event === 'repair')
          .reduce((n, e) => n + (e.count as number), 0) >= 2,
      15_000,
      'h3 to repair the two entries it missed',
    );

    // A line typed into a holder, and a batch of lines piped into one `peer replicate -`.
    hs[0]!.child.stdin!.write('typed into h1\n');
    await hs[1]!.until(
      (l) => l.json().some((e) => e.event === 'entry' && e.text === 'typed into h1'),
      5_000,
      'h2 to receive the line typed into h1',
    );
    const batch = await runCli(['replicate', '-', ...net, '--acks', 'all', '--json'], {
      input: 'b1\nb2\n\nb3\nb4\nb5\n',
    });
    expect(batch.code, batch.stderr).toBe(0);
    const batchOut = JSON.parse(batch.stdout) as {
      ok: boolean;
      appended: number;
      entries: Array<{ ok: boolean }>;
    };
    expect(batchOut.ok).toBe(true);
    expect(batchOut.appended).toBe(5);
    expect(batchOut.entries.every((e) => e.ok)).toBe(true);

    const rec = await runCli(['reconcile', ...net, '--json', '--timeout', '15000'], { timeoutMs: 30_000 });
    expect(rec.code, rec.stderr).toBe(0);
    const result = JSON.parse(rec.stdout) as {
      ok: boolean;
      replicas: Array<{ replica: string; after: number; sha256: string }>;
    };
    expect(result.ok).toBe(true);
    expect(result.replicas.map((r) => r.replica)).toEqual(['h1', 'h2', 'h3']);
    expect(result.replicas.every((r) => r.after === 12)).toBe(true);
    expect(new Set(result.replicas.map((r) => r.sha256)).size).toBe(1);

    const files = ['h1', 'h2', 'h3'].map((h) => fs.readFileSync(path.join(dir, `${h}.txt`), 'utf8'));
    expect(new Set(files).size).toBe(1);
    const entries = readReplica(path.join(dir, 'h1.txt'));
    expect(entries).toHaveLength(12);
    expect(new Set(entries.map(entryId)).size).toBe(12);
    expect(entries).toEqual([...entries].sort(compareEntries));
    expect(entries.map((e) => e.text)).toEqual(
      expect.arrayContaining([...texts, 'while h3 is down', 'majority only', 'typed into h1', 'b1', 'b5']),
    );

    // Offline, after the holders stop: already identical, nothing to add.
    for (const p of running.splice(0)) {
      p.child.kill('SIGTERM');
      await p.exited;
    }
    const off = await runCli(['reconcile', '--offline', '--dir', dir, '--json']);
    expect(off.code, off.stderr).toBe(0);
    const offRows = (JSON.parse(off.stdout) as { replicas: Array<{ added: number; after: number }> })
      .replicas;
    expect(offRows.map((r) => [r.added, r.after])).toEqual([
      [0, 12],
      [0, 12],
      [0, 12],
    ]);
  }, 90_000);

  it('bad input is one line and exit 2', async () => {
    const root = tempDir('replicate-bad');
    const blocker = path.join(root, 'file');
    fs.writeFileSync(blocker, '');
    const r = await runCli(['reconcile', '--offline', '--dir', path.join(blocker, 'sub')]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/ENOTDIR/);
    const a = await runCli(['replicate', 'x', '--interface', '127.0.0.1', '--acks', 'some']);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/--acks some is not valid/);
  });
});
