/**
 * Bad input of any kind gets one clear line on stderr and exit code 2, never a stack trace, and
 * nothing already stored is touched.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, tempDir, testPort } from '../support/proc.js';

const base = (iface = '127.0.0.1') => [
  '--interface',
  iface,
  '--ttl',
  '0',
  '--port',
  String(testPort()),
  '--data-dir',
  tempDir('err'),
];

function expectOneLineError(r: { code: number | null; stderr: string }, pattern: RegExp) {
  expect(r.code).toBe(2);
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '');
  expect(lines.some((l) => pattern.test(l))).toBe(true);
  expect(r.stderr).not.toMatch(/\n\s+at .+\(.+:\d+:\d+\)/); // no stack trace
}

describe('one-line errors for bad input', () => {
  it.each([
    [
      'an interface address this machine does not have',
      [],
      /not an address of this machine/,
      '10.254.254.254',
    ],
    ['an unknown interface name', [], /neither an IPv4 address nor an interface name/, 'nosuch0'],
    ['a group that is not multicast', ['--group', '10.0.0.1'], /not a multicast address/],
    ['a group that is not an address', ['--group', 'lan'], /not an IPv4 address/],
    ['a name with a slash', ['--name', 'a/b'], /not a valid name/],
  ])('peer up refuses %s', async (_what, extra, pattern, iface?: string) => {
    const r = await runCli(['up', ...base(iface), ...extra]);
    expectOneLineError(r, pattern);
  });

  it('a flag that needs another names it, without oclif framing around it but with the help to read', async () => {
    const r = await runCli(['chat', ...base(), '--to', 'bob', '--listen']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      'peer: One of the following must be provided when using --to: --send, --send-file; see peer chat --help',
    );
  });

  it('peer up refuses a port out of range', async () => {
    const r = await runCli(['up', ...base(), '--port', '70000']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/port/i);
  });

  it('peer up refuses a damaged database and leaves it untouched', async () => {
    const dir = tempDir('corrupt');
    const file = path.join(dir, 'zed.db');
    const garbage = Buffer.from('this is not a database, but somebody may need these bytes'.repeat(100));
    fs.writeFileSync(file, garbage);
    const r = await runCli([
      'up',
      '--name',
      'zed',
      '--interface',
      '127.0.0.1',
      '--ttl',
      '0',
      '--port',
      String(testPort()),
      '--data-dir',
      dir,
    ]);
    expectOneLineError(r, /cannot be opened as a peer database.*left untouched/);
    expect(fs.readFileSync(file).equals(garbage)).toBe(true);
  });

  it('peer up refuses a data dir under a plain file', async () => {
    const dir = tempDir('ro');
    const file = path.join(dir, 'plain-file');
    fs.writeFileSync(file, '');
    const r = await runCli([
      'up',
      '--name',
      'x',
      '--interface',
      '127.0.0.1',
      '--ttl',
      '0',
      '--port',
      String(testPort()),
      '--data-dir',
      path.join(file, 'sub'),
    ]);
    expectOneLineError(r, /--data-dir .*plain-file\/sub is not a directory \(a part of its path is a file\)/);
  });

  it('peer peers --json prints an empty list when nobody answers', async () => {
    const r = await runCli(['peers', ...base(), '--wait', '200', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([]);
  });
});
