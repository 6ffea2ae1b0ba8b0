/**
 * The built CLI on loopback (127.0.0.1, TTL 0): three `peer kv serve` holders as real processes,
 * put/get/delete/dump and the shell through one-shot clients, a small `kv bench` that must print
 * SUCCESS, a holder killed (the bench reports FAILURE naming it) and restarted (SUCCESS again once
 * it caught up), and bad input refused in one line with exit 2.
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

describe('peer kv on loopback', () => {
  it('three holders: put, get, delete, dump, shell, bench SUCCESS; a killed holder fails the check until it is back', async () => {
    const port = testPort();
    const root = tempDir('kv');
    // Slower failure detection: this runs on a loaded 2-core machine next to other test files.
    const net = loopbackFlags(port, path.join(root, 'data'), 'local');
    const holder = (name: string) => {
      const p = startCli(['kv', 'serve', ...net, '--name', name, '--log-format', 'json']);
      running.push(p);
      return p;
    };
    const joined = (p: Lines, n: number) => p.json().filter((e) => e.event === 'join').length >= n;
    const hs = ['h1', 'h2', 'h3'].map(holder);
    await Promise.all(hs.map((h) => h.until((l) => joined(l, 2), 30_000, 'two joins')));

    const put = await runCli(['kv', 'put', 'color', 'blue', ...net, '--acks', 'all', '--json']);
    expect(put.code, put.stderr).toBe(0);
    const putOut = JSON.parse(put.stdout) as { ok: boolean; confirmed: string[]; id: string; ms: number };
    expect(putOut.ok).toBe(true);
    expect(putOut.confirmed).toEqual(['h1', 'h2', 'h3']);
    // Durations in --json are rounded to a microsecond, never 4.802677000000017.
    const ROUNDED_MS = /^\d+(\.\d{1,3})?$/;
    expect(String(putOut.ms)).toMatch(ROUNDED_MS);

    const spaced = await runCli(['kv', 'put', 'greeting', 'olá "mundo"\ttab', ...net, '--acks', 'all']);
    expect(spaced.code, spaced.stderr).toBe(0);
    expect(spaced.stdout).toMatch(/^OK [0-9a-f]{16}:1 lamport \d+: confirmed by h1, h2, h3/);

    const get = await runCli(['kv', 'get', 'color', ...net]);
    expect(get.code, get.stderr).toBe(0);
    expect(get.stdout).toBe('blue\n');
    const getJson = await runCli(['kv', 'get', 'greeting', ...net, '--read', 'all', '--json']);
    expect(getJson.code, getJson.stderr).toBe(0);
    const g = JSON.parse(getJson.stdout) as { found: boolean; value: string; answered: string[]; ms: number };
    expect(g).toMatchObject({ found: true, value: 'olá "mundo"\ttab', answered: ['h1', 'h2', 'h3'] });
    expect(String(g.ms)).toMatch(ROUNDED_MS);

    const del = await runCli(['kv', 'delete', 'color', ...net]);
    expect(del.code, del.stderr).toBe(0);
    const gone = await runCli(['kv', 'get', 'color', ...net]);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toMatch(/color: not found \(deleted\)/);

    // Every holder's dump is the same table.
    for (const from of ['h1', 'h2', 'h3']) {
      const dump = await runCli(['kv', 'dump', ...net, '--from', from, '--json']);
      expect(dump.code, dump.stderr).toBe(0);
      const d = JSON.parse(dump.stdout) as { holder: string; entries: Record<string, string> };
      expect(d.holder).toBe(from);
      expect(d.entries).toEqual({ greeting: 'olá "mundo"\ttab' });
    }

    // The seed's client commands, piped.
    const shell = await runCli(['kv', 'shell', ...net], {
      input: 'POST minha_chave meu valor\nGET minha_chave\nGET color\nBOGUS x\nDUMP\nexit\n',
    });
    expect(shell.code).toBe(1); // the BOGUS line
    expect(shell.stdout.split('\n')).toEqual(
      expect.arrayContaining(['meu valor', 'NOT FOUND', 'minha_chave = meu valor', '(2 keys)']),
    );
    expect(shell.stderr).toMatch(/line 4: unknown command 'BOGUS'/);

    const bench = await runCli(['kv', 'bench', ...net, '--clients', '3', '--ops', '30', '--keys', '4'], {
      timeoutMs: 60_000,
    });
    expect(bench.code, bench.stdout + bench.stderr).toBe(0);
    expect(bench.stdout).toMatch(/SUCCESS: every holder \(h1, h2, h3\) holds the expected state/);
    // Three clients and an observer in one process: the open-group warning is said once.
    expect(bench.stderr.match(/no --key-file: /g) ?? []).toHaveLength(1);
    expect(bench.stdout).toMatch(/90 operations in [0-9.]+ s: \d+ ops\/s/);

    // h3 dies: writes still reach a majority, but the check cannot vouch for h3.
    const h3 = hs[2]!;
    h3.child.kill('SIGKILL');
    await h3.exited;
    const h3Id = String(h3.json().find((e) => e.event === 'up')!.id);
    const failed = await runCli(
      [
        'kv',
        'bench',
        ...net,
        '--clients',
        '2',
        '--ops',
        '10',
        '--acks',
        'majority',
        '--settle',
        '1500',
        '--json',
      ],
      { timeoutMs: 60_000 },
    );
    expect(failed.code).toBe(1);
    const f = JSON.parse(failed.stdout) as { ok: boolean; problems: string[] };
    expect(f.ok).toBe(false);
    expect(f.problems.join('\n')).toContain(h3Id.slice(0, 8));

    // h3 comes back with its database and catches up by anti-entropy: the check passes again.
    holder('h3');
    const again = await runCli(['kv', 'bench', ...net, '--clients', '2', '--ops', '10', '--json'], {
      timeoutMs: 60_000,
    });
    expect(again.code, again.stdout + again.stderr).toBe(0);
    const a = JSON.parse(again.stdout) as {
      ok: boolean;
      holders: Array<{ name: string; ok: boolean }>;
      latency: Record<string, Record<string, number>>;
    };
    expect(a.ok).toBe(true);
    for (const row of Object.values(a.latency))
      for (const k of ['p50Ms', 'p90Ms', 'p99Ms', 'maxMs']) expect(String(row[k])).toMatch(ROUNDED_MS);
    expect(a.holders.map((h) => h.name)).toEqual(['h1', 'h2', 'h3']);
    const caught = await runCli(['kv', 'dump', ...net, '--from', 'h3', '--json']);
    expect(caught.code, caught.stderr).toBe(0);
    expect((JSON.parse(caught.stdout) as { entries: Record<string, string> }).entries.minha_chave).toBe(
      'meu valor',
    );
  }, 180_000);

  it('bad input is one line and exit 2', async () => {
    const net = ['--interface', '127.0.0.1', '--ttl', '0', '--port', String(testPort())];
    const cases: Array<[string[], RegExp]> = [
      [['kv', 'put', 'a b', 'v'], /whitespace/],
      // A value over 1 MiB cannot be an argument (Linux takes 128 KiB per argument): the
      // large-values test pipes one to `kv put k -`.
      [['kv', 'put', 'k'.repeat(1025), 'v'], /1025 bytes; keys are at most 1024 bytes/],
      [['kv', 'get', ''], /the key is empty/],
      [['kv', 'get', 'k', '--read', 'some'], /--read some is not valid/],
      [['kv', 'delete', 'k', '--acks', '0'], /--acks 0 is not valid/],
      [['kv', 'bench', '--mix', '1:2'], /--mix 1:2 is not valid/],
      [['kv', 'bench', '--clients', '0'], /clients/],
    ];
    for (const [args, re] of cases) {
      const r = await runCli([...args, ...net]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr, args.join(' ')).toMatch(re);
    }
  }, 60_000);
});
