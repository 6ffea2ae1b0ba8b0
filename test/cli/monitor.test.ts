/**
 * peer monitor as a person sees it: the built CLI in a real terminal (a tmux pane of 120x30 on a
 * private tmux server), watching a small loopback group of `peer up` processes. Asserts on the
 * pane's text: the tab bar, the members, tab switching by key, a resize, and a clean exit that
 * gives the shell its screen back, by q and by SIGTERM.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  BIN,
  ROOT,
  runCli,
  startCli,
  tempDir,
  testPort,
  type Lines,
  loopbackFlags,
} from '../support/proc.js';

const SERVER = `peer-monitor-test-${process.pid}`;
const tmux = (...args: string[]) => execFileSync('tmux', ['-L', SERVER, ...args], { encoding: 'utf8' });
const pane = () => tmux('capture-pane', '-p', '-t', 'mon');
/** The pane with its scrollback: a resize may push the shell's first lines into history. */
const paneAndHistory = () => tmux('capture-pane', '-p', '-S', '-100', '-t', 'mon');
const alternateOn = () => tmux('display-message', '-p', '-t', 'mon', '#{alternate_on}').trim() === '1';

async function until(what: string, pred: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; pane:\n${pane()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const running: Lines[] = [];

/** alice runs `peer up`, bob `peer chat --listen` (a chat member); returns the network flags. */
async function loopbackGroup(): Promise<{ net: string[]; bob: Lines }> {
  const net = loopbackFlags(testPort(), tempDir('mon'), 'local');
  const alice = startCli(['up', '--name', 'alice', '--log-format', 'json', ...net]);
  running.push(alice);
  await alice.until((l) => l.json().some((e) => e.event === 'up'), 10_000, 'alice up');
  const bob = startCli(['chat', '--name', 'bob', '--listen', '--json', ...net]);
  running.push(bob);
  return { net, bob };
}

function startMonitor(net: string[]): void {
  // The shell prints a marker before and the exit code after: what the screen must show again.
  const cmd = `echo BEFORE-MONITOR; NO_COLOR=1 ${process.execPath} ${BIN} monitor ${net.join(' ')}; echo EXIT=$?; sleep 600`;
  tmux('new-session', '-d', '-s', 'mon', '-x', '120', '-y', '30', '-c', ROOT, 'sh', '-c', cmd);
}

afterEach(async () => {
  try {
    tmux('kill-session', '-t', 'mon');
  } catch {
    /* already gone */
  }
  for (const p of running.splice(0)) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
});
afterAll(() => {
  try {
    tmux('kill-server');
  } catch {
    /* no server left */
  }
});

describe('peer monitor in a terminal', () => {
  it('shows the tabs and the group, chats both ways, switches tabs by key, redraws on resize, and q restores the terminal', async () => {
    const { net, bob } = await loopbackGroup();
    startMonitor(net);
    await until('the dashboard', () => /\[1 Peers\]/.test(pane()));
    expect(alternateOn()).toBe(true);
    await until('both members', () => /^alice .* alive /m.test(pane()) && /^bob .* alive /m.test(pane()));
    const peers = pane();
    expect(peers).toMatch(/\[1 Peers\] {2}2 Chat {3}3 Tasks {3}4 Token {3}5 Replicas {3}6 Logs/);
    expect(peers).toMatch(/NAME +ID +ADDRESS +STATE +COORD +RANK +LAMPORT +OFFSET +LOAD +LAST SEEN/);
    expect(peers).toMatch(/q: quit/);
    expect(peers).not.toMatch(/BEFORE-MONITOR/); // full screen: the shell is hidden

    // Chat: a line from another peer shows up; a line typed here reaches bob. Typing 'q' and '1'
    // in the draft neither quits nor switches tabs.
    tmux('send-keys', '-t', 'mon', '2');
    await until('the Chat tab', () => /\[2 Chat\]/.test(pane()) && /Enter: write to the group/.test(pane()));
    const carol = await runCli(['chat', '--name', 'carol', '--send', 'hi monitor', ...net]);
    expect(carol.code, carol.stderr).toBe(0);
    await until('carol’s line', () => /carol +all +hi monitor/.test(pane()));
    tmux('send-keys', '-t', 'mon', 'Enter');
    await until('the draft line', () => /^> ▏/m.test(pane()));
    tmux('send-keys', '-t', 'mon', '-l', 'hello from tmux q1');
    await until('the typed text', () => /^> hello from tmux q1▏/m.test(pane()));
    tmux('send-keys', '-t', 'mon', 'Enter');
    await until('our line', () => /monitor +all +hello from tmux q1/.test(pane()));
    expect(pane()).toMatch(/\[2 Chat\]/);
    await bob.until(
      (l) => l.lines.some((x) => x.includes('hello from tmux q1')),
      10_000,
      'bob hears the monitor',
    );

    tmux('send-keys', '-t', 'mon', '6');
    await until('the Logs tab', () => /\[6 Logs\]/.test(pane()));
    await until(
      'join lines',
      () => /join +alice .* joined/.test(pane()) && /join +bob .* joined/.test(pane()),
    );

    tmux('send-keys', '-t', 'mon', 'Right');
    await until('wrap to Peers', () => /\[1 Peers\]/.test(pane()));
    tmux('send-keys', '-t', 'mon', 'Right');
    await until('the Chat tab again', () => /\[2 Chat\]/.test(pane()));

    tmux('resize-window', '-t', 'mon', '-x', '70', '-y', '16');
    await until('a redraw at 70 columns', () => {
      const lines = pane().split('\n');
      const shown = lines.filter((l) => l.trim() !== '');
      // Every line cut to the new width, the header ellipsised, the key help still at the bottom.
      return (
        lines.every((l) => l.length <= 70) &&
        /^peer monitor .*…$/.test(shown[0] ?? '') &&
        /\[2 Chat\]/.test(shown[1] ?? '') &&
        /^←\/→ or Tab: switch tab/.test(shown.at(-1) ?? '')
      );
    });

    tmux('send-keys', '-t', 'mon', 'q');
    await until('the shell again', () => /EXIT=0/.test(pane()));
    const after = paneAndHistory();
    expect(after).toMatch(/BEFORE-MONITOR/);
    expect(after).not.toMatch(/peer monitor|\[\d \w+\]/); // nothing of the dashboard left
    expect(alternateOn()).toBe(false);
  });

  it('SIGTERM also restores the terminal and ends the monitor with exit code 0', async () => {
    const { net } = await loopbackGroup();
    startMonitor(net);
    await until('the dashboard', () => /\[1 Peers\]/.test(pane()));
    const shell = tmux('display-message', '-p', '-t', 'mon', '#{pane_pid}').trim();
    const monitorPid = Number(
      execFileSync('pgrep', ['-P', shell], { encoding: 'utf8' }).trim().split('\n')[0],
    );
    process.kill(monitorPid, 'SIGTERM');
    await until('the shell again', () => /EXIT=0/.test(pane()));
    expect(pane()).toMatch(/BEFORE-MONITOR/);
    expect(alternateOn()).toBe(false);
  });

  it('shows a chat line with escape sequences escaped in the Chat tab: the title and the screen stay', async () => {
    const { net } = await loopbackGroup();
    startMonitor(net);
    await until('the dashboard', () => /\[1 Peers\]/.test(pane()));
    const title = tmux('display-message', '-p', '-t', 'mon', '#{pane_title}').trim();
    tmux('send-keys', '-t', 'mon', '2');
    await until('the Chat tab', () => /\[2 Chat\]/.test(pane()));
    // A title change, a screen clear, an 8-bit CSI, a CR and a right-to-left override.
    const hostile = 'A\x1b]0;pwned\x07B\x1b[2J\x9b1m\rC\u202eD';
    const carol = await runCli(['chat', '--name', 'carol', '--send', hostile, ...net]);
    expect(carol.code, carol.stderr).toBe(0);
    await until(
      'carol’s line, escaped',
      () =>
        /carol +all +A\\x1b/.test(pane()) &&
        pane().includes('A\\x1b]0;pwned\\x07B\\x1b[2J\\x9b1m\\rC\\u202eD'),
    );
    expect(pane()).toMatch(/\[2 Chat\]/); // the screen was not cleared
    expect(tmux('display-message', '-p', '-t', 'mon', '#{pane_title}').trim()).toBe(title);
  });

  it('refuses to run without a terminal, in one line', async () => {
    const r = await runCli([
      'monitor',
      '--interface',
      '127.0.0.1',
      '--ttl',
      '0',
      '--port',
      String(testPort()),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/^peer: peer monitor needs a terminal.*peer peers --json$/);
  });
});
