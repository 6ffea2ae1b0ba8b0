/**
 * Multi-line messages in interactive `peer chat`, in a real terminal (a tmux pane on a private
 * tmux server) in a loopback group with a chat member (bob, `--listen --json`): a block pasted with
 * bracketed paste is ONE message, sent with Enter, and a multi-line message from another member
 * shows whole, its later lines indented under the line that names its sender.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BIN, runCli, startCli, tempDir, testPort, loopbackFlags, type Lines } from '../support/proc.js';
import { Tmux } from '../support/tmux.js';

const term = new Tmux('chat-paste', 'paste');
const running: Lines[] = [];

afterEach(async () => {
  term.killSession();
  for (const p of running.splice(0)) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
});
afterAll(() => term.killServer());

describe('multi-line chat messages in a terminal', () => {
  it('a pasted 3-line block is one message; a 3-line message received shows indented under its sender', async () => {
    const net = loopbackFlags(testPort(), tempDir('chat-paste'), 'local');
    const bob = startCli(['chat', '--name', 'bob', '--listen', '--json', ...net]);
    running.push(bob);
    term.start(
      `NO_COLOR=1 ${process.execPath} ${BIN} chat --name carol ${net.join(' ')}; echo EXIT=$?; sleep 600`,
    );
    await term.until('bob joined', () => /^[\d:.]+ bob joined$/m.test(term.pane()), 20_000);

    // tmux turns the buffer's newlines into Enter keys, wrapped in ESC[200~ ... ESC[201~ (-p).
    term.run('set-buffer', '-b', 'block', 'first line\nsecond line\nthird line');
    term.run('paste-buffer', '-p', '-b', 'block', '-t', term.session);
    term.keys('Enter');
    const fromCarol = () => bob.json().filter((e) => e.event === 'message' && e.from === 'carol');
    await bob.until(() => fromCarol().length > 0, 10_000, 'the pasted message');
    // Another line after it: had the paste gone as three messages, they would all be here first.
    term.keys('-l', 'after the paste');
    term.keys('Enter');
    await bob.until(() => fromCarol().length >= 2, 10_000, 'the next line');
    expect(fromCarol().map((e) => e.text)).toEqual([
      'first line\nsecond line\nthird line',
      'after the paste',
    ]);

    const sent = await runCli(['chat', '--name', 'dave', '--send', '-', ...net], {
      input: 'one\n  two\nthree \x1b[2Jnot cleared\n',
      timeoutMs: 20_000,
    });
    expect(sent.code, sent.stderr).toBe(0);
    await term.until('the message from dave', () => /not cleared/.test(term.pane()));
    expect(term.pane()).toMatch(/^[\d:.]+ dave: one\n {4} {2}two\n {4}three \\x1b\[2Jnot cleared$/m);
  });
});
