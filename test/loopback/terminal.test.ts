/**
 * Terminal safety with the built CLI on loopback (127.0.0.1, TTL 0): a chat line and a kv value
 * holding a title change, a screen clear, an 8-bit CSI, a CR and a right-to-left override reach
 * people escaped (a `--listen` reader, a late joiner's history, `--history`, `kv get`, `kv dump`,
 * `kv shell`), and reach scripts exact (`--json`). Needs `npm run build` first; run in a private
 * network namespace (see the working rules).
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, startCli, tempDir, testPort, type Lines, loopbackFlags } from '../support/proc.js';

const HOSTILE = 'A\x1b]0;pwned\x07B\x1b[2J\x9b1m\rC\u202eD';
const SHOWN = 'A\\x1b]0;pwned\\x07B\\x1b[2J\\x9b1m\\rC\\u202eD';
/** What must never reach a terminal from remote text. */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

const running: Lines[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await p.exited;
  }
});

function start(args: string[]): Lines {
  const p = startCli(args);
  running.push(p);
  return p;
}

const text = (p: Lines) => p.lines.join('\n');

describe('remote text reaches a terminal escaped, and --json exact', () => {
  it('chat: a --listen reader, a late joiner, and --history show the hostile line escaped', async () => {
    const dataDir = path.join(tempDir('term-chat'), 'data');
    const net = loopbackFlags(testPort(), dataDir, 'local');
    const bob = start(['chat', ...net, '--name', 'bob', '--listen']);
    const carol = start(['chat', ...net, '--name', 'carol', '--listen', '--json']);
    await bob.until((l) => text(l).includes('carol joined'), 20_000, 'bob to see carol');

    const alice = await runCli(['chat', ...net, '--name', 'alice', '--send', HOSTILE]);
    expect(alice.code, alice.stderr).toBe(0);
    expect(alice.stdout).toContain(`alice: ${SHOWN}`); // the sender's own echo too
    await bob.until((l) => text(l).includes(SHOWN), 10_000, 'bob to print the line');
    expect(text(bob)).toContain(`alice: ${SHOWN}`);
    expect(text(bob)).not.toMatch(RAW);
    await carol.until((l) => l.json().some((e) => e.event === 'message'), 10_000, 'carol to print the line');
    expect(carol.json().find((e) => e.event === 'message')!.text).toBe(HOSTILE);

    // A late joiner gets it as history from bob or carol, and shows it escaped too.
    const dave = start(['chat', ...net, '--name', 'dave', '--listen']);
    await dave.until((l) => text(l).includes('(history)'), 20_000, 'dave to get history');
    expect(text(dave)).toContain(`alice (history): ${SHOWN}`);
    expect(text(dave)).not.toMatch(RAW);

    bob.child.kill('SIGINT');
    expect(await bob.exited).toBe(0);
    const hist = await runCli(['chat', ...net, '--name', 'bob', '--history', '10']);
    expect(hist.code, hist.stderr).toBe(0);
    expect(hist.stdout).toContain(`alice: ${SHOWN}`);
    expect(hist.stdout).not.toMatch(RAW);
    const histJson = await runCli(['chat', ...net, '--name', 'bob', '--history', '10', '--json']);
    expect(histJson.code, histJson.stderr).toBe(0);
    expect(JSON.parse(histJson.stdout.trim()).text).toBe(HOSTILE);

    // A row the wire would refuse (a name with an ESC), written into the file behind chat's back:
    // skipped and counted, in both forms.
    const db = new Database(path.join(dataDir, 'bob.db'));
    db.prepare(
      `INSERT INTO chat_messages (id, sender_id, sender_name, text, lamport, sent_at, received_at)
       VALUES ('0123456789abcdef/1/1', '0123456789abcdef', 'mallory\x1b[2J', 'forged', 1, 0, 0)`,
    ).run();
    db.close();
    for (const json of [[], ['--json']]) {
      const checked = await runCli(['chat', ...net, '--name', 'bob', '--history', '10', ...json]);
      expect(checked.code, checked.stderr).toBe(0);
      expect(checked.stdout).not.toContain('forged');
      expect(checked.stderr).toContain(
        '1 stored line(s) failed validation (damaged or forged) and were skipped',
      );
    }
  }, 90_000);

  it('kv: get, dump and the shell show a hostile value escaped; get --json carries it exactly', async () => {
    const net = loopbackFlags(testPort(), path.join(tempDir('term-kv'), 'data'), 'local');
    const h1 = start(['kv', 'serve', ...net, '--name', 'h1', '--log-format', 'json']);
    await h1.until((l) => l.json().some((e) => e.event === 'up'), 20_000, 'the holder to start');

    const put = await runCli(['kv', 'put', 'evil', HOSTILE, ...net, '--acks', 'all']);
    expect(put.code, put.stderr).toBe(0);

    const get = await runCli(['kv', 'get', 'evil', ...net]);
    expect(get.code, get.stderr).toBe(0);
    expect(get.stdout).toBe(`${SHOWN}\n`);
    const getJson = await runCli(['kv', 'get', 'evil', ...net, '--json']);
    expect(getJson.code, getJson.stderr).toBe(0);
    expect((JSON.parse(getJson.stdout) as { value: string }).value).toBe(HOSTILE);

    const dump = await runCli(['kv', 'dump', ...net]);
    expect(dump.code, dump.stderr).toBe(0);
    expect(dump.stdout).toContain(`"${SHOWN}"`);
    expect(dump.stdout).not.toMatch(RAW);

    const shell = await runCli(['kv', 'shell', ...net], { input: 'GET evil\nDUMP\nexit\n' });
    expect(shell.code, shell.stderr).toBe(0);
    expect(shell.stdout.split('\n')).toEqual(expect.arrayContaining([SHOWN, `evil = ${SHOWN}`]));
    expect(shell.stdout).not.toMatch(RAW);
  }, 90_000);
});
