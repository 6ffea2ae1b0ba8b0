/**
 * Waits and the kv shell as a person meets them: the built CLI in a real terminal (a tmux pane on
 * a private tmux server), peers on loopback. A command that waits for the group says what it
 * awaits and clears the line when done; the kv shell leaves on Ctrl-D with code 0, recalls history
 * with Up, lists its commands on `help`, and draws nothing but its prompt.
 */
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Tmux } from '../support/tmux.js';
import { BIN, runCli, startCli, tempDir, testPort, type Lines, loopbackFlags } from '../support/proc.js';

const term = new Tmux('waits', 'waits');
const pane = () => term.pane();
const keys = (...k: string[]) => term.keys(...k);
const until = (what: string, pred: () => boolean, timeoutMs = 20_000) => term.until(what, pred, timeoutMs);

/** Runs `peer ARGS` in the pane; the shell prints EXIT=<code> after it, then waits. */
function inTerminal(args: string[]): void {
  const cmd = `NO_COLOR=1 PEER_KEY_FILE= ${process.execPath} ${BIN} ${args.join(' ')}; echo EXIT=$?; sleep 600`;
  term.start(cmd);
}

const running: Lines[] = [];
afterEach(async () => {
  term.killSession();
  for (const p of running.splice(0)) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
});
afterAll(() => term.killServer());

describe('waits in a terminal', () => {
  it('kv get with no holder says what it waits for, then clears that line; piped it says nothing', async () => {
    const net = loopbackFlags(testPort(), tempDir('waits'));
    inTerminal(['kv', 'get', 'color', '--timeout', '4000', ...net]);
    await until('the waiting line', () => /^[|/\\-] looking for kv holders \(\d s\)$/m.test(pane()));
    await until('the command to end', () => /EXIT=\d/.test(pane()));
    const end = pane();
    expect(end).toMatch(/peer: no kv holder answered within 4000 ms/);
    expect(end).not.toMatch(/looking for kv holders/);
    const piped = await runCli(['kv', 'get', 'color', '--timeout', '2000', ...net]);
    expect(piped.stderr).toMatch(/no kv holder answered/);
    expect(piped.stderr).not.toMatch(/looking for/);
  }, 60_000);
});

describe('task submit waits in a terminal', () => {
  it('a coordinator but no worker: the waiting line counts the tasks and says no worker is there', async () => {
    const port = testPort();
    const dir = tempDir('waits-tasks');
    const up = startCli(['up', ...loopbackFlags(port, dir), '--name', 'u1', '--log-format', 'json'], {
      PEER_KEY_FILE: '',
    });
    running.push(up);
    await up.until((l) => l.json().some((e) => e.event === 'elected'), 15_000, 'u1 to be elected');
    const net = loopbackFlags(port, path.join(dir, 'client'));
    inTerminal(['task', 'submit', 'sum', '1', '--repeat', '3', '--wait', '--timeout', '5000', ...net]);
    await until('the waiting line', () =>
      /^[|/\\-] waiting for 3 tasks: 0 done; no worker in the group yet \(start one with peer worker\) \(\d s\)$/m.test(
        pane(),
      ),
    );
    await until('the command to end', () => /EXIT=\d/.test(pane()));
    expect(pane()).toMatch(/no worker is in the group: start one with peer worker/);
    expect(pane()).toMatch(/EXIT=1/);
  }, 60_000);
});

describe('kv shell in a terminal', () => {
  it('help, Up-arrow history, no stray marks before the prompt, and Ctrl-D leaves with code 0', async () => {
    const root = tempDir('kv-shell');
    const net = loopbackFlags(testPort(), path.join(root, 'data'), 'local');
    const holder = startCli(['kv', 'serve', ...net, '--name', 'h1', '--log-format', 'json', '--open']);
    running.push(holder);
    await holder.until((l) => l.json().some((e) => e.event === 'up'), 20_000, 'the holder up');
    inTerminal(['kv', 'shell', '--open', ...net]);
    // capture-pane drops trailing spaces: the bare prompt reads 'kv>'.
    await until('the prompt', () => /^kv>$/m.test(pane()));
    expect(pane()).toMatch(/connected to 1 kv holder\(s\)/);

    keys('-l', 'help');
    keys('Enter');
    await until('the command list', () => /^GET KEY +print the value of KEY/m.test(pane()));
    expect(pane()).toMatch(/^exit +leave \(also quit, or Ctrl-D\)/m);

    keys('-l', 'PUT color blue');
    keys('Enter');
    await until('the write confirmed', () => /^OK [0-9a-f]+:\d+ \(1 holders\)$/m.test(pane()));
    keys('-l', 'GET color');
    keys('Enter');
    await until('the value', () => /^blue$/m.test(pane()));
    // Up twice recalls the PUT; edited to another value and sent again.
    keys('Up');
    keys('Up');
    await until('the recalled line', () =>
      /^kv> PUT color blue$/m.test(pane().trimEnd().split('\n').at(-1)!),
    );
    keys('BSpace', 'BSpace', 'BSpace', 'BSpace');
    // The new value and the next command in one write, as a paste or fast typing gives them: the
    // GET's answer is on a line of its own, not after a prompt drawn while it was waiting.
    keys('green', 'Enter', 'GET', 'Space', 'color', 'Enter');
    await until('the new value', () => /^green$/m.test(pane()));

    // Every prompt line is the bare prompt or the prompt and what was typed: no ✔ or other mark.
    const prompts = pane()
      .split('\n')
      .filter((l) => l.includes('kv>'));
    expect(prompts.length).toBeGreaterThanOrEqual(5);
    for (const l of prompts) expect(l).toMatch(/^kv>( |$)/);
    expect(pane()).not.toMatch(/✔/);

    keys('C-d');
    await until('the shell to end', () => /EXIT=\d/.test(pane()));
    expect(pane()).toMatch(/^EXIT=0$/m);
  }, 90_000);
});
