/**
 * The built CLI on loopback (127.0.0.1, TTL 0): values and entries too large for one datagram
 * (src/p2p/replication/large.ts). A 1 MiB kv value put from stdin and read back byte for byte
 * from another holder; a 500 KiB replicated line reconciled to a holder that missed it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, startCli, tempDir, testPort, type Lines, loopbackFlags } from '../support/proc.js';
import { parseLine } from '../../src/p2p/replication/index.js';

const KIB = 1024;
const MIB = 1024 * KIB;

const running: Lines[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
});

/** Text of exactly `bytes` UTF-8 bytes with lines, quotes, tabs and multi-byte characters. */
function document(bytes: number, seed: string): string {
  const unit = `${seed} "quoted"\tTAB é 😀 \\ back\n`;
  let s = unit.repeat(Math.ceil(bytes / Buffer.byteLength(unit)));
  while (Buffer.byteLength(s) > bytes) s = s.slice(0, -1);
  return s.padEnd(s.length + (bytes - Buffer.byteLength(s)), 'x');
}

const joined = (p: Lines, n: number) => p.json().filter((e) => e.event === 'join').length >= n;

describe('large values on loopback', () => {
  it('kv put KEY - reads 1 MiB from stdin; kv get returns it byte for byte from another holder', async () => {
    const port = testPort();
    const root = tempDir('kv-large');
    const net = loopbackFlags(port, path.join(root, 'data'), 'local');
    const hs = ['h1', 'h2'].map((name) => {
      const p = startCli(['kv', 'serve', ...net, '--name', name, '--log-format', 'json']);
      running.push(p);
      return p;
    });
    await Promise.all(hs.map((h) => h.until((l) => joined(l, 1), 30_000, 'a join')));

    const value = document(MIB, 'config');
    expect(Buffer.byteLength(value)).toBe(MIB);
    const put = await runCli(['kv', 'put', 'app.config', '-', ...net, '--acks', 'all', '--json'], {
      input: value,
      timeoutMs: 30_000,
    });
    expect(put.code, put.stderr).toBe(0);
    expect(JSON.parse(put.stdout)).toMatchObject({ ok: true, confirmed: ['h1', 'h2'] });

    for (const from of ['h1', 'h2']) {
      // Each holder answers with the whole value; --read all waits for both.
      const get = await runCli(['kv', 'get', 'app.config', ...net, '--read', 'all', '--json'], {
        timeoutMs: 30_000,
      });
      expect(get.code, get.stderr).toBe(0);
      const g = JSON.parse(get.stdout) as { found: boolean; value: string; answered: string[] };
      expect(g.answered).toEqual(['h1', 'h2']);
      expect(g.value === value, `value read while asking ${from}`).toBe(true);
      const dump = await runCli(['kv', 'dump', ...net, '--from', from, '--json'], { timeoutMs: 30_000 });
      expect(dump.code, dump.stderr).toBe(0);
      const d = JSON.parse(dump.stdout) as { entries: Record<string, string> };
      expect(d.entries['app.config'] === value, `dump of ${from}`).toBe(true);
    }

    // One byte over the limit, or bytes that are not UTF-8: refused in one line, exit 2.
    const over = await runCli(['kv', 'put', 'k', '-', ...net], { input: `${value}x` });
    expect(over.code).toBe(2);
    expect(over.stderr).toMatch(/over 1048576 bytes \(1 MiB\); store a larger one in parts/);
    const bigKey = await runCli(['kv', 'put', 'k'.repeat(KIB + 1), 'v', ...net]);
    expect(bigKey.code).toBe(2);
    expect(bigKey.stderr).toMatch(/keys are at most 1024 bytes \(1 KiB\)/);
  }, 120_000);

  it('replicate - appends a 500 KiB line; reconcile brings it to a holder that missed it', async () => {
    const port = testPort();
    const root = tempDir('replicate-large');
    const net = loopbackFlags(port, path.join(root, 'data'), 'local');
    const dir = path.join(root, 'replicas');
    const holder = (name: string) => {
      const p = startCli(['replicate', ...net, '--dir', dir, '--name', name, '--log-format', 'json']);
      running.push(p);
      return p;
    };
    const h1 = holder('h1');
    await h1.until((l) => l.json().some((e) => e.event === 'up'), 30_000, 'h1 up');

    const line = document(500 * KIB, 'log').replace(/\n/g, ' ');
    const r = await runCli(['replicate', '-', ...net, '--acks', 'all', '--json'], {
      input: `${line}\n`,
      timeoutMs: 30_000,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, appended: 1 });

    // h2 starts after the append: only anti-entropy can bring it the entry.
    const h2 = holder('h2');
    await h2.until((l) => joined(l, 1), 30_000, 'h2 joins');
    const rec = await runCli(['reconcile', ...net, '--json', '--timeout', '30000'], { timeoutMs: 60_000 });
    expect(rec.code, rec.stderr).toBe(0);
    const files = ['h1', 'h2'].map((h) => fs.readFileSync(path.join(dir, `${h}.txt`), 'utf8'));
    expect(files[1] === files[0]).toBe(true);
    const entries = files[0]!.split('\n').filter((l) => l !== '');
    expect(entries).toHaveLength(1);
    const parsed = parseLine(entries[0]!);
    expect(parsed.ok && parsed.entry.text === line).toBe(true);
  }, 120_000);
});
