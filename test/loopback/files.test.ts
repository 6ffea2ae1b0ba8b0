/**
 * `peer chat --send-file` with the built CLI over real UDP on 127.0.0.1 (TTL 0): two `--listen
 * --json` receivers get a multi-chunk file byte for byte, each printing exactly one JSON line for
 * it; a receiver over its --max-file-bytes, or without the disk space (a tmpfs of its own),
 * refuses, and the sender exits 1 naming it and why; a receiver killed mid-transfer resumes.
 * Run inside `unshare --net` (see the project's rules); needs `npm run build` first.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import {
  BIN,
  Lines,
  ROOT,
  alive,
  loopbackFlags,
  runCli,
  startCli,
  tempDir,
  testPort,
} from '../support/proc.js';
import { onTmpfs, TMPFS_SIZE } from '../support/tmpfs.js';

const running: Lines[] = [];
/** Enough 1 MiB chunks that a receiver can be killed with some on disk and some not. */
const BIG_FILE_BYTES = 64 * 1024 * 1024;
const dirs: string[] = [];

beforeAll(() => {
  if (!fs.existsSync(path.join(ROOT, 'dist/commands/chat.js')))
    throw new Error('dist/commands/chat.js is missing: run npm run build first');
});

afterEach(async () => {
  for (const p of running.splice(0)) {
    if (alive(p)) p.child.kill('SIGINT');
    await p.exited;
  }
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function setup() {
  const port = testPort();
  const dataDir = tempDir('files');
  dirs.push(dataDir);
  return { port, dataDir, flags: [...loopbackFlags(port, dataDir), '--open'] };
}

/** A listener is up once it announced itself: its database exists. */
async function listen(name: string, s: ReturnType<typeof setup>, extra: string[] = []): Promise<Lines> {
  const p = startCli(['chat', ...s.flags, '--name', name, '--listen', '--json', ...extra]);
  running.push(p);
  const db = path.join(s.dataDir, `${name}.db`);
  await p.until(() => fs.existsSync(db), 10_000, `${name} to start`);
  return p;
}

function file(dir: string, name: string, bytes: number): { path: string; content: Buffer; sha256: string } {
  const content = randomBytes(bytes);
  const p = path.join(dir, name);
  fs.writeFileSync(p, content);
  return { path: p, content, sha256: createHash('sha256').update(content).digest('hex') };
}

const fileLines = (p: Lines, type = 'file') => p.json().filter((j) => j.type === type);

describe('peer chat --send-file (loopback)', () => {
  it('two listeners get the file byte for byte, each printing exactly one JSON line', async () => {
    const s = setup();
    // bob in a folder of his own (--download-dir), carol in the default <data-dir>/files.
    const bobDir = path.join(s.dataDir, 'bob-downloads');
    const bob = await listen('bob', s, ['--download-dir', bobDir]);
    const carol = await listen('carol', s);
    const src = file(s.dataDir, 'photo.raw', 3 * 1024 * 1024 + 12_345);
    const r = await runCli(['chat', ...s.flags, '--name', 'alice', '--send-file', src.path], {
      timeoutMs: 60_000,
    });
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toMatch(
      /^photo\.raw \(3\.0 MiB\) is held by (bob, carol|carol, bob) \(SHA-256 verified\)\n$/,
    );
    for (const [p, dir] of [
      [bob, bobDir],
      [carol, path.join(s.dataDir, 'files')],
    ] as const) {
      await p.until(() => fileLines(p).length > 0, 10_000, 'the file line');
      const saved = path.join(dir, 'alice', 'photo.raw');
      // The line exactly: these keys, in this order, and nothing else about this file.
      expect(p.lines.filter((l) => l.includes('photo.raw'))).toEqual([
        JSON.stringify({
          type: 'file',
          from: 'alice',
          name: 'photo.raw',
          bytes: src.content.length,
          sha256: src.sha256,
          path: saved,
        }),
      ]);
      expect(fs.readFileSync(saved).equals(src.content)).toBe(true);
    }
  });

  it('a listener over its --max-file-bytes refuses; the other gets the file; the sender exits 1 naming who and why', async () => {
    const s = setup();
    const bob = await listen('bob', s, [
      '--max-file-bytes',
      '1M',
      '--download-dir',
      path.join(s.dataDir, 'bob'),
    ]);
    const carol = await listen('carol', s);
    const src = file(s.dataDir, 'big.bin', 2 * 1024 * 1024);
    const r = await runCli(['chat', ...s.flags, '--name', 'alice', '--send-file', src.path], {
      timeoutMs: 60_000,
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('big.bin (2.0 MiB) is held by carol (SHA-256 verified)\n');
    expect(r.stderr).toBe(
      `peer: big.bin is not held by bob (refused: too large: ${src.content.length} bytes, this receiver takes at most 1048576)\n`,
    );
    await bob.until(() => fileLines(bob, 'file-refused').length > 0, 10_000, "bob's refusal");
    expect(fileLines(bob, 'file-refused')).toEqual([
      {
        type: 'file-refused',
        from: 'alice',
        name: 'big.bin',
        bytes: src.content.length,
        reason: 'too large: 2097152 bytes, this receiver takes at most 1048576',
      },
    ]);
    expect(fs.existsSync(path.join(s.dataDir, 'bob', 'alice'))).toBe(false);
    await carol.until(() => fileLines(carol).length > 0, 10_000, "carol's file line");
    expect(fs.readFileSync(path.join(s.dataDir, 'files', 'alice', 'big.bin')).equals(src.content)).toBe(true);
  });

  it('--to sends to that member alone (--json says how it went); a file that cannot be read is a usage error', async () => {
    const s = setup();
    const bob = await listen('bob', s, ['--download-dir', path.join(s.dataDir, 'bob')]);
    const carol = await listen('carol', s);
    const src = file(s.dataDir, 'note.txt', 5000);
    const r = await runCli(
      ['chat', ...s.flags, '--name', 'alice', '--send-file', src.path, '--to', 'carol', '--json'],
      {
        timeoutMs: 60_000,
      },
    );
    expect([r.code, r.stderr]).toEqual([0, '']);
    const carolId = (JSON.parse(r.stdout) as { receivers: Array<{ id: string }> }).receivers[0]?.id;
    expect(r.stdout).toBe(
      `${JSON.stringify({
        type: 'file-sent',
        name: 'note.txt',
        bytes: 5000,
        sha256: src.sha256,
        ok: true,
        receivers: [{ name: 'carol', id: carolId, status: 'done', reason: '' }],
      })}\n`,
    );
    expect(carolId).toMatch(/^[0-9a-f]{16}$/);
    await carol.until(() => fileLines(carol).length > 0, 10_000, "carol's file line");
    expect(fs.readFileSync(path.join(s.dataDir, 'files', 'alice', 'note.txt')).equals(src.content)).toBe(
      true,
    );
    expect(bob.lines.filter((l) => l.includes('note.txt'))).toEqual([]);
    const missing = await runCli([
      'chat',
      ...s.flags,
      '--name',
      'alice',
      '--send-file',
      path.join(s.dataDir, 'nope'),
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^peer: --send-file: cannot read .*nope \(ENOENT\); check the path\n$/);
  });

  it(
    'a listener killed mid-transfer and started again gets the rest, and the sender exits 0',
    { timeout: 120_000 },
    async () => {
      const s = setup();
      const bobArgs = ['--download-dir', path.join(s.dataDir, 'bob')];
      let bob = await listen('bob', s, bobArgs);
      const carol = await listen('carol', s);
      const src = file(s.dataDir, 'video.bin', BIG_FILE_BYTES);
      const sending = runCli(['chat', ...s.flags, '--name', 'alice', '--send-file', src.path], {
        timeoutMs: 110_000,
      });
      // Killed once it holds some chunks on disk, not all.
      const partial = path.join(s.dataDir, 'bob', '.partial', 'bob');
      const held = () => {
        const state = fs.existsSync(partial)
          ? fs.readdirSync(partial).find((n) => n.endsWith('.state'))
          : undefined;
        if (!state) return 0;
        try {
          const bits = Buffer.from(
            (JSON.parse(fs.readFileSync(path.join(partial, state), 'utf8')) as { held: string }).held,
            'base64',
          );
          return [...bits].reduce((n, b) => n + b.toString(2).replaceAll('0', '').length, 0);
        } catch {
          return 0; // caught mid-rename
        }
      };
      await bob.until(() => held() >= 2, 60_000, 'bob to hold two chunks');
      bob.child.kill('SIGKILL');
      await bob.exited;
      const chunks = Math.ceil(BIG_FILE_BYTES / (1024 * 1024));
      expect(held()).toBeLessThan(chunks);
      bob = await listen('bob', s, bobArgs);
      const r = await sending;
      expect([r.code, r.stderr]).toEqual([0, '']);
      const resumed = fileLines(bob, 'file-resumed');
      expect(resumed).toHaveLength(1);
      expect(resumed[0]).toMatchObject({ from: 'alice', name: 'video.bin', bytes: BIG_FILE_BYTES });
      expect(resumed[0]!.held as number).toBeGreaterThan(0);
      await bob.until(() => fileLines(bob).length > 0, 10_000, "bob's file line");
      expect(fs.readFileSync(path.join(s.dataDir, 'bob', 'alice', 'video.bin')).equals(src.content)).toBe(
        true,
      );
      await carol.until(() => fileLines(carol).length > 0, 10_000, "carol's file line");
      expect(fs.readFileSync(path.join(s.dataDir, 'files', 'alice', 'video.bin')).equals(src.content)).toBe(
        true,
      );
      expect(fs.readdirSync(partial)).toEqual([]);
    },
  );

  it('a listener on a disk without room for the file refuses it, saying how much is free', async () => {
    const s = setup();
    // bob's data dir (and so its download folder) on a tmpfs of its own, in its own mount namespace.
    const mount = path.join(s.dataDir, 'bob-disk');
    const run = onTmpfs(mount, process.execPath, [
      BIN,
      'chat',
      ...loopbackFlags(s.port, mount),
      '--open',
      '--name',
      'bob',
      '--listen',
      '--json',
    ]);
    const bob = new Lines(
      spawn(run.command, run.args, {
        env: { ...process.env, NO_COLOR: '1' },
        stdio: ['pipe', 'pipe', 'pipe'],
      }),
    );
    running.push(bob);
    await bob.until(
      () => fs.existsSync(`/proc/${bob.child.pid}/root${mount}/bob.db`),
      10_000,
      'bob to start',
    );
    const src = file(s.dataDir, 'large.bin', 3 * 1024 * 1024); // the tmpfs is TMPFS_SIZE
    expect(TMPFS_SIZE).toBe('2m');
    const r = await runCli(['chat', ...s.flags, '--name', 'alice', '--send-file', src.path], {
      timeoutMs: 60_000,
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^peer: large\.bin is not held by bob \(refused: not enough disk space: 3145728 bytes needed, \d+ free\)\n$/,
    );
    await bob.until(() => fileLines(bob, 'file-refused').length > 0, 10_000, "bob's refusal");
    expect(fileLines(bob, 'file-refused')[0]).toMatchObject({
      from: 'alice',
      name: 'large.bin',
      reason: expect.stringMatching(/^not enough disk space: 3145728 bytes needed, \d+ free$/),
    });
    expect(alive(bob)).toBe(true);
  });
});
