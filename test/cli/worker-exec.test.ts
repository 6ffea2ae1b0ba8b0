/**
 * `peer worker --allow-exec` refuses what it cannot run safely, before it joins any group: without
 * a key any host on the LAN could run code on it; a shell that cannot run would fail every job.
 * Exit 2, one line on stderr. The built CLI, in a private network namespace (unshare --net).
 */
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, tempDir, testPort, groupKeyFile } from '../support/proc.js';

const dirs = [tempDir('worker-exec-key')];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
const keyFile = groupKeyFile(dirs[0]!);

const loopback = () => {
  const dataDir = tempDir('worker-exec');
  dirs.push(dataDir);
  return ['--interface', '127.0.0.1', '--ttl', '0', '--port', String(testPort()), '--data-dir', dataDir];
};

function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^peer: \S/);
  return lines[0]!;
}

describe.concurrent('peer worker --allow-exec refuses, exit 2', () => {
  it('without a key: says why and what to do', async () => {
    const r = await runCli(['worker', '--allow-exec', ...loopback()], { env: { PEER_KEY_FILE: '' } });
    expect(r.code, r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toMatch(
      /only in a keyed group: without --key-file any host on the LAN could run code.*peer keygen/,
    );
  });

  it('with --open: the same', async () => {
    const r = await runCli(['worker', '--allow-exec', '--open', ...loopback()], {
      env: { PEER_KEY_FILE: '' },
    });
    expect(r.code, r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/only in a keyed group/);
  });

  it('with a shell that is not an executable file', async () => {
    const r = await runCli([
      'worker',
      '--allow-exec',
      '--key-file',
      keyFile,
      '--shell',
      '/nonexistent/sh',
      ...loopback(),
    ]);
    expect(r.code, r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/--shell \/nonexistent\/sh is not an executable file/);
  });

  it.each([
    ['0', /greater than or equal to 1 but received: 0/],
    ['257', /less than or equal to 256 but received: 257/],
  ])('with --slots %s', async (slots, said) => {
    const r = await runCli(['worker', '--slots', slots, '--key-file', keyFile, ...loopback()]);
    expect(r.code, r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toMatch(said);
  });
});
