/**
 * One exit-code rule for every command (src/cli/base.ts, README "Exit codes"): 0 done; 1 the group
 * could not do it; 2 bad input or a local error; either failure is one line on stderr. The built
 * CLI, inside a private network namespace with only loopback: every networked command asks a group
 * where nobody answers (each on a port of its own, so that the commands of this file never answer
 * one another) and must exit 1; each also gets bad input and must exit 2; every help ends with the
 * rule. The group is keyed so that no open-group warning shares stderr with the one line.
 */
import { describe, expect, it } from 'vitest';
import { ROOT, runCli, tempDir, testPort, groupKeyFile } from '../support/proc.js';
import { Config, type Command } from '@oclif/core';
import { EXIT_STATUS_HELP } from '../../src/cli/base.js';
import PeerHelp from '../../src/cli/help.js';

/** Short waits: nobody will answer, and the whole file must stay well under a minute. */
const WAIT_MS = '300';

/** A group key as `peer keygen` writes it (base64, mode 0600), written here to spare a process. */
const keyFile = groupKeyFile(tempDir('exit-key'));

/** `args` on loopback, TTL 0, with the group key, on a port and data dir of its own (unless `args` says otherwise). */
function alone(args: string[]): string[] {
  const defaults: Array<[string, string]> = [
    ['--interface', '127.0.0.1'],
    ['--ttl', '0'],
    ['--port', String(testPort())],
    ['--data-dir', tempDir('exit')],
    ['--key-file', keyFile],
  ];
  return [...args, ...defaults.filter(([flag]) => !args.includes(flag)).flat()];
}

/** Exactly one line on stderr, the CLI's own ("peer: ..."), and no stack trace. */
function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^peer: \S/);
  return lines[0]!;
}

describe.concurrent('exit 1 when the group could not do it (nobody answers)', () => {
  it.each<[string, string[], RegExp, string?]>([
    ['clock', ['clock', '--wait', WAIT_MS], /no coordinator answered within 300 ms; start 'peer up'/],
    ['kv get', ['kv', 'get', 'k', '--timeout', WAIT_MS], /no kv holder answered.*'peer kv serve'/],
    ['kv put', ['kv', 'put', 'k', 'v', '--timeout', WAIT_MS], /no kv holder answered/],
    ['kv delete', ['kv', 'delete', 'k', '--timeout', WAIT_MS], /no kv holder answered/],
    ['kv dump', ['kv', 'dump', '--timeout', WAIT_MS], /no kv holder answered/],
    ['kv shell', ['kv', 'shell', '--timeout', WAIT_MS], /no kv holder answered/, 'GET k\n'],
    ['kv bench', ['kv', 'bench', '--clients', '1', '--ops', '1', '--timeout', WAIT_MS], /no kv holder/],
    ['replicate MSG', ['replicate', 'hello', '--timeout', WAIT_MS], /no replica holder answered/],
    ['replicate -', ['replicate', '-', '--timeout', WAIT_MS], /no replica holder answered/, 'a\nb\n'],
    ['reconcile', ['reconcile', '--timeout', WAIT_MS], /no replica holder answered.*'peer replicate'/],
    ['snapshot', ['snapshot', '--wait', WAIT_MS], /no live peer answered.*'peer up'/],
    ['task submit', ['task', 'submit', 'sum', '1', '2', '--timeout', WAIT_MS], /no coordinator answered/],
    ['task list', ['task', 'list', '--timeout', WAIT_MS], /no coordinator answered/],
    ['chat --send', ['chat', '--send', 'hi', '--name', 'alice'], /no chat member answered/],
    // A repeatable flag takes one value: the name after it is the query's, not a second tag.
    [
      'query after a repeatable flag',
      ['query', '--tag', 'role=db', 'load', '--timeout', `${WAIT_MS}ms`],
      /no peer matches query load/,
    ],
  ])('%s', async (_what, args, said, input) => {
    const r = await runCli(alone(args), { input });
    expect(r.code, r.stderr).toBe(1);
    expect(oneLine(r.stderr)).toMatch(said);
  });

  it('with --json the same failure is also an "error" field on stdout', async () => {
    const r = await runCli(alone(['kv', 'put', 'k', 'v', '--timeout', WAIT_MS, '--json']));
    expect(r.code, r.stderr).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/no kv holder answered/);
    expect(JSON.parse(r.stdout)).toEqual({ error: expect.stringMatching(/^no kv holder answered/) });
    // One object on one line, as every --json prints (a script reads it line by line).
    expect(r.stdout).toMatch(/^\{[^\n]*\}\n$/);
    const task = await runCli(alone(['task', 'submit', 'sum', '1', '--timeout', WAIT_MS, '--json']));
    expect(task.code, task.stderr).toBe(1);
    expect(task.stdout).toMatch(/^\{"error":"no coordinator answered[^\n]*\}\n$/);
  });

  it.each([
    ['peers', ['peers', '--wait', '100']],
    ['stats', ['stats', '--wait', '100']],
  ])('a listing is an answer even when empty: %s exits 0', async (_what, args) => {
    const r = await runCli(alone(args));
    expect(r.code, r.stderr).toBe(0);
    // Where multicast does not reach, what to try is naming a member.
    if (args[0] === 'peers') expect(r.stdout + r.stderr).toMatch(/--join HOST of a member/);
  });
});

describe.concurrent('exit 2 on bad input or a local error', () => {
  const elsewhere = ['--interface', '10.254.254.254'];
  it.each<[string, string[], RegExp]>([
    ['clock: --wait below its minimum', ['clock', '--wait', '5'], /--wait/],
    ['clock: an address this machine does not have', ['clock', ...elsewhere], /not an address/],
    ['kv get: a key with a space', ['kv', 'get', 'a b'], /key/],
    [
      'kv get: no key, named with what it is and where to look',
      ['kv', 'get'],
      /^peer: missing argument KEY \(The key\); see peer kv get --help$/,
    ],
    ['kv put: an --acks policy that does not exist', ['kv', 'put', 'k', 'v', '--acks', 'some'], /--acks/],
    ['kv put: a key file that does not exist', ['kv', 'put', 'k', 'v', '--key-file', '/nonexistent'], /key/],
    ['kv delete: --acks 0', ['kv', 'delete', 'k', '--acks', '0'], /--acks/],
    ['kv dump: --timeout 0', ['kv', 'dump', '--timeout', '0'], /--timeout/],
    ['kv shell: a bad --read', ['kv', 'shell', '--read', 'most'], /--read/],
    ['kv bench: a bad --mix', ['kv', 'bench', '--mix', '1:2'], /--mix/],
    ['replicate: a bad --acks', ['replicate', 'hello', '--acks', 'none'], /--acks/],
    ['reconcile --offline: no replica files', ['reconcile', '--offline', '--dir', '.'], /no replica files/],
    ['snapshot: an address this machine does not have', ['snapshot', ...elsewhere], /not an address/],
    ['task submit: an operation that does not exist', ['task', 'submit', 'divide', '1'], /divide/],
    [
      'task submit: a flag that does not exist, and where to look',
      ['task', 'submit', 'sum', '1', '--nosuch'],
      /^peer: Nonexistent flag: --nosuch; see peer task submit --help$/,
    ],
    ['task list: an address this machine does not have', ['task', 'list', ...elsewhere], /not an address/],
    ['chat: an address this machine does not have', ['chat', '--send', 'hi', ...elsewhere], /not an address/],
    ['peers: a group that is not multicast', ['peers', '--group', '10.0.0.1'], /not a multicast/],
    ['stats: an interface name that does not exist', ['stats', '--interface', 'nosuch0'], /nosuch0/],
    [
      'chat: a --join name that does not resolve, said in words',
      ['chat', '--send', 'hi', '--join', 'nosuch.invalid'],
      /^peer: --join nosuch\.invalid: (no such name|the name could not be looked up now \(no DNS server answered\)); check the name/,
    ],
  ])('%s', async (_what, args, said) => {
    const r = await runCli(alone(args));
    expect(r.code, r.stderr).toBe(2);
    expect(oneLine(r.stderr)).toMatch(said);
  });
});

describe('every help states the rule', () => {
  const rule = EXIT_STATUS_HELP.split('\n');
  /** The three lines under the EXIT STATUS header of a help text. */
  const stated = (help: string) =>
    help
      .slice(help.indexOf('EXIT STATUS\n'))
      .split('\n')
      .slice(1, 1 + rule.length)
      .map((l) => l.trim());

  it('peer kv put --help, through the built CLI', async () => {
    const r = await runCli(['kv', 'put', '--help']);
    expect(r.code, r.stderr).toBe(0);
    expect(stated(r.stdout)).toEqual(rule);
  });

  it('and the help of every command in the manifest (rendered in this process)', async () => {
    const config = await Config.load(ROOT);
    expect(config.commands.length).toBeGreaterThan(20);
    // formatCommand is protected: this test reads what `peer X --help` prints, without 24 processes.
    const help = new PeerHelp(config) as unknown as { formatCommand(c: Command.Loadable): string };
    for (const c of config.commands.filter((c) => c.id !== 'run'))
      expect(stated(help.formatCommand(c)), c.id).toEqual(rule);
  });

  it("peer run states its own: GNU parallel's exit status", async () => {
    const config = await Config.load(ROOT);
    const help = new PeerHelp(config) as unknown as { formatCommand(c: Command.Loadable): string };
    const run = help.formatCommand(config.findCommand('run')!);
    expect(run.slice(run.indexOf('EXIT STATUS\n'))).toMatch(
      /101 +more than 100 jobs failed\n.*130 +cancelled by Ctrl-C/s,
    );
  });
});
