/**
 * The built CLI on a real, tiny, full disk. Each holder runs in a mount namespace of its own on a
 * 2 MB tmpfs (test/support/tmpfs.ts: `unshare --mount`, so nothing is mounted on the host); the
 * test reaches its files through /proc/<pid>/root and fills the disk with a filler file:
 *   - `peer replicate` holders r1 (full) and r2 (healthy), written to with `--acks all` until r1
 *     refuses; `peer kv serve` holder k1 (full), written to through `peer kv shell`;
 *   - every write a holder acknowledged is in its file (replica file, kv_log) while the disk is full;
 *   - the holders stay up through the full disk, their checkpoint timers included, and each says
 *     ONE line that writes fail; writers get a one-line refusal and exit 1;
 *   - the filler deleted, new writes succeed without a restart and each holder says ONE line that
 *     writes work again, once they went a few seconds without a failure (said from the checkpoint
 *     timer, which must have kept running);
 *   - `peer token-ring`: one member of three on a full disk skips its turns (it cannot store its
 *     fencing token) while the two others keep taking theirs, and takes turns again once space
 *     returns;
 *   - `peer worker` coordinating on a full disk refuses new tasks: `peer task submit` exits 1 at
 *     once with one line, and the same submission is done once space returns.
 * Loopback, like the other real-process kv and replicate tests; test/lan/disk-full.test.ts runs
 * the same disk on separate hosts of a namespace LAN.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, Lines, alive, loopbackFlags, runCli, tempDir, testPort } from '../support/proc.js';
import {
  countStderr,
  expectRecoveredOnce,
  expectUpAndSaidOnce,
  FAILING,
  fill,
  inside,
  onTmpfs,
  RECOVERED,
  storedKvLog,
  storedReplica,
  unfill,
} from '../support/tmpfs.js';
import { STORAGE_RECOVERED_AFTER_MS } from '../../src/storage/health.js';

/** The room left on each holder's tmpfs when it is filled. */
const ROOM_BYTES = 96 * 1024;
/** Writes per batch, each with a text of this many bytes: a few batches fill the room. */
const BATCH_LINES = 100;
const TEXT_BYTES = 500;
const BATCHES_MAX = 30;

const running: Lines[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
});

/** Starts the CLI in its own mount namespace with a fresh tmpfs mounted on `mount`. */
function startOnTmpfs(mount: string, args: string[]): Lines {
  const run = onTmpfs(mount, process.execPath, [BIN, ...args]);
  const child = spawn(run.command, run.args, {
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const p = new Lines(child);
  running.push(p);
  return p;
}

const up = (p: Lines) => p.json().some((e) => e.event === 'up');

describe('peer replicate and peer kv serve on a full disk', () => {
  it('acknowledge only what they stored, stay up, say so once, and resume when space returns', async () => {
    const port = testPort();
    const root = tempDir('disk');
    const net = (dir: string) => loopbackFlags(port, dir, 'local');
    const holder = (name: string, command: string[]) => {
      const mount = path.join(root, name);
      const dir = path.join(mount, 'd');
      const extra = command[0] === 'replicate' ? ['--dir', dir] : [];
      const p = startOnTmpfs(mount, [
        ...command,
        ...net(dir),
        ...extra,
        '--name',
        name,
        '--log-format',
        'json',
      ]);
      return { p, mount, dir };
    };
    const r1 = holder('r1', ['replicate']);
    const r2 = holder('r2', ['replicate']);
    const k1 = holder('k1', ['kv', 'serve']);
    for (const h of [r1, r2, k1]) await h.p.until(up, 30_000, 'up');
    await r1.p.until(
      (l) => l.json().some((e) => e.event === 'join' && e.name === 'r2'),
      30_000,
      'r1 sees r2',
    );
    fill(r1.p, r1.mount, ROOM_BYTES);
    fill(k1.p, k1.mount, ROOM_BYTES);
    const client = net(path.join(root, 'client'));

    // Replicate until r1 refuses; every entry acknowledged by a holder must be in its file.
    const ackedBy = new Map<string, string[]>([
      ['r1', []],
      ['r2', []],
    ]);
    let refusal = '';
    let refusedByR1 = false;
    for (let b = 0; b < BATCHES_MAX && !refusal; b++) {
      const input = Array.from(
        { length: BATCH_LINES },
        (_, i) => `b${b} i${i} ${'x'.repeat(TEXT_BYTES)}`,
      ).join('\n');
      const r = await runCli(['replicate', '-', ...client, '--acks', 'all', '--timeout', '3000', '--json'], {
        input,
        timeoutMs: 60_000,
      });
      expect(r.stdout, `replicate exited ${r.code}: ${r.stderr}`).toMatch(/^\{/);
      const out = JSON.parse(r.stdout) as {
        entries: Array<{ ok: boolean; id: string; confirmed: string[]; refused?: string[] }>;
      };
      for (const e of out.entries) for (const h of e.confirmed) ackedBy.get(h)?.push(e.id);
      if (r.code !== 0) {
        refusal = r.stderr;
        refusedByR1 = r.code === 1 && out.entries.some((e) => e.refused?.includes('r1 (disk full)'));
      }
    }
    for (const h of [r1, r2, k1]) expect(alive(h.p), h.p.stderr.join('')).toBe(true);
    for (const [name, h] of [
      ['r1', r1],
      ['r2', r2],
    ] as const) {
      const file = storedReplica(h.p, path.join(h.dir, `${name}.txt`));
      const lost = ackedBy.get(name)!.filter((id) => !file.ids.has(id));
      expect(lost, `${name} acknowledged entries its file lacks`).toEqual([]);
      expect(file.rejected).toEqual([]);
    }
    expect(ackedBy.get('r2')!.length).toBeGreaterThan(ackedBy.get('r1')!.length);
    // The writer exited 1, and one line (besides the open-group notice every command prints) says
    // who refused and why.
    expect(refusedByR1, refusal).toBe(true);
    const said = refusal.split('\n').filter((l) => l !== '' && !l.includes('--key-file'));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(
      /^peer: .*could not be stored by r1 \(disk full\) \(--acks all\); free space there/,
    );

    // kv: put through the shell until k1 refuses; every write it confirmed is in its kv_log.
    const okIds: string[] = [];
    let kvRefusal = '';
    for (let b = 0; b < BATCHES_MAX && !kvRefusal; b++) {
      const input = Array.from(
        { length: BATCH_LINES },
        (_, i) => `POST k${b}_${i} ${'v'.repeat(TEXT_BYTES)}`,
      ).join('\n');
      const r = await runCli(['kv', 'shell', ...client, '--acks', 'all', '--timeout', '3000'], {
        input: `${input}\nexit\n`,
        timeoutMs: 120_000,
      });
      for (const m of r.stdout.matchAll(/^OK ([0-9a-f]{16}:\d+) /gm)) okIds.push(m[1]!);
      if (r.code !== 0) kvRefusal = r.stderr;
    }
    const logged = storedKvLog(k1.p, path.join(k1.dir, 'k1.db'), root);
    expect(okIds.length).toBeGreaterThan(0);
    expect(
      okIds.filter((id) => !logged.has(id)),
      'k1 confirmed writes its kv_log lacks',
    ).toEqual([]);
    expect(kvRefusal).toMatch(/could not be stored by k1 \(disk full\)/);

    // Still up (the checkpoint timers ran on the full disk meanwhile), one line each.
    expectUpAndSaidOnce([r1.p, k1.p], [r2.p]);

    // Space returns: writes succeed without a restart, and each holder says so once.
    unfill(r1.p, r1.mount);
    unfill(k1.p, k1.mount);
    const after = await runCli([
      'replicate',
      'after the disk was freed',
      ...client,
      '--acks',
      'all',
      '--json',
    ]);
    expect(after.code, after.stderr).toBe(0);
    expect((JSON.parse(after.stdout) as { confirmed: string[] }).confirmed).toEqual(['r1', 'r2']);
    const put = await runCli(['kv', 'put', 'after', 'freed', ...client, '--acks', 'all']);
    expect(put.code, put.stderr).toBe(0);
    await expectRecoveredOnce([r1.p, k1.p], 15_000);
  }, 300_000);

  it('a chat listener on a full disk stays up, says so once, and stores lines again when space returns', async () => {
    const port = testPort();
    const root = tempDir('disk-chat');
    const mount = path.join(root, 'bob');
    const dir = path.join(mount, 'd');
    const bob = startOnTmpfs(mount, [
      'chat',
      '--listen',
      '--json',
      '--name',
      'bob',
      ...loopbackFlags(port, dir, 'local'),
    ]);
    await bob.until(() => fs.existsSync(inside(bob, path.join(dir, 'bob.db'))), 30_000, 'bob up');
    const send = (text: string, waitMs: number) =>
      runCli([
        'chat',
        '--name',
        'alice',
        '--send',
        text,
        '--wait',
        String(waitMs),
        ...loopbackFlags(port, path.join(root, 'alice'), 'local'),
      ]);
    const first = await send('before the disk filled', 10_000);
    expect(first.code, first.stderr).toBe(0);
    fill(bob, mount, 0);
    // Lines bob cannot store are not acknowledged: each sender gives up (exit 1).
    for (let i = 0; i < 3; i++) expect((await send(`while full ${i}`, 1_500)).code).toBe(1);
    expect(alive(bob), bob.stderr.join('')).toBe(true);
    expect(countStderr(bob, FAILING), bob.stderr.join('')).toBe(1);
    unfill(bob, mount);
    const after = await send('after the disk was freed', 10_000);
    expect(after.code, after.stderr).toBe(0);
    await bob.until(
      (l) => countStderr(l, RECOVERED) > 0,
      STORAGE_RECOVERED_AFTER_MS + 15_000,
      'bob says writes work again',
    );
    expect(countStderr(bob, FAILING)).toBe(1);
    expect(countStderr(bob, RECOVERED)).toBe(1);
    expect(bob.lines.join('\n')).toContain('after the disk was freed');
    expect(bob.stderr.join('')).not.toMatch(/SqliteError|not stored/);
  }, 120_000);
});

describe('peer token-ring with one member on a full disk', () => {
  it('the others keep taking turns; the full one skips its turns, says so once, and resumes', async () => {
    const port = testPort();
    const root = tempDir('disk-ring');
    const names = ['ann', 'bob', 'cat'];
    const members = names.map((name) => {
      const mount = path.join(root, name);
      const p = startOnTmpfs(mount, [
        'token-ring',
        '--hold',
        '30',
        '--json',
        '--name',
        name,
        ...loopbackFlags(port, path.join(mount, 'd'), 'local'),
      ]);
      return { name, mount, p };
    });
    const [ann, bob, cat] = members as [(typeof members)[0], (typeof members)[0], (typeof members)[0]];
    const turns = (p: Lines) => p.json().filter((e) => e.event === 'enter').length;
    for (const m of members) await m.p.until(up, 30_000, `${m.name} up`);
    for (const m of members) await m.p.until((l) => turns(l) > 0, 30_000, `${m.name} takes a turn`);

    fill(cat.p, cat.mount, 0);
    await cat.p.until((l) => countStderr(l, FAILING) > 0, 15_000, 'cat says writes fail');
    // A turn whose token was stored before the disk filled may still be under way: start after it.
    const catBefore = turns(cat.p) + 1;
    const othersBefore = [turns(ann.p), turns(bob.p)];
    await ann.p.until((l) => turns(l) >= othersBefore[0]! + 10, 30_000, 'ann keeps taking turns');
    await bob.p.until((l) => turns(l) >= othersBefore[1]! + 10, 30_000, 'bob keeps taking turns');
    expect(turns(cat.p), 'cat took turns it could not fence').toBeLessThanOrEqual(catBefore);
    for (const m of members) expect(alive(m.p), m.p.stderr.join('')).toBe(true);

    unfill(cat.p, cat.mount);
    const catAfter = turns(cat.p);
    await cat.p.until((l) => turns(l) > catAfter, 30_000, 'cat takes turns again');
    await cat.p.until(
      (l) => countStderr(l, RECOVERED) > 0,
      STORAGE_RECOVERED_AFTER_MS + 15_000,
      'cat says writes work again',
    );
    expect(countStderr(cat.p, FAILING)).toBe(1);
    expect(countStderr(cat.p, RECOVERED)).toBe(1);
    for (const m of members) {
      expect(alive(m.p)).toBe(true);
      expect(m.p.stderr.join('')).not.toMatch(/SqliteError|Uncaught|at .*\.js:\d+/);
    }
    // No two turns, on any member, shared a fencing token.
    const gens = members.flatMap((m) =>
      m.p
        .json()
        .filter((e) => e.event === 'enter')
        .map((e) => e.generation as number),
    );
    expect(new Set(gens).size).toBe(gens.length);
  }, 180_000);
});

describe('peer worker coordinating on a full disk', () => {
  it('refuses new tasks at once with one line (exit 1), says so once, and takes them when space returns', async () => {
    const port = testPort();
    const root = tempDir('disk-tasks');
    const mount = path.join(root, 'w1');
    const w1 = startOnTmpfs(mount, [
      'worker',
      '--concurrency',
      '1',
      '--log-format',
      'json',
      '--name',
      'w1',
      ...loopbackFlags(port, path.join(mount, 'd'), 'local'),
    ]);
    await w1.until(up, 30_000, 'w1 up');
    const submit = () =>
      runCli([
        'task',
        'submit',
        'sum',
        '1',
        '2',
        '--wait',
        '--timeout',
        '15000',
        ...loopbackFlags(port, path.join(root, 'client'), 'local'),
      ]);
    const first = await submit();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^3 /);

    fill(w1, mount, 0);
    const started = Date.now();
    const refused = await submit();
    expect(refused.code, refused.stderr).toBe(1);
    // At once, not after --timeout: the coordinator said why.
    expect(Date.now() - started).toBeLessThan(10_000);
    const said = refused.stderr.split('\n').filter((l) => l !== '' && !l.includes('--key-file'));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(
      /^peer: the task was refused: the coordinator cannot store the run: disk full; free space on its disk/,
    );
    expect(alive(w1), w1.stderr.join('')).toBe(true);
    expect(countStderr(w1, FAILING), w1.stderr.join('')).toBe(1);

    unfill(w1, mount);
    const after = await submit();
    expect(after.code, after.stderr).toBe(0);
    expect(after.stdout).toMatch(/^3 /);
    await w1.until(
      (l) => countStderr(l, RECOVERED) > 0,
      STORAGE_RECOVERED_AFTER_MS + 15_000,
      'w1 says writes work again',
    );
    expect(countStderr(w1, FAILING)).toBe(1);
    expect(countStderr(w1, RECOVERED)).toBe(1);
    expect(w1.stderr.join('')).not.toMatch(/SqliteError|Uncaught|at .*\.js:\d+/);
  }, 120_000);
});
