/**
 * peer monitor as a person sees it: the built CLI in a real terminal (a tmux pane of 120x30 on a
 * private tmux server), watching a small loopback group of `peer up` processes. Asserts on the
 * pane's text: the tab bar, the members, tab switching by key, a resize, a worker of `peer run`
 * on the Tasks tab, and a clean exit that gives the shell its screen back, by q and by SIGTERM.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  BIN,
  runCli,
  startCli,
  tempDir,
  testPort,
  type Lines,
  loopbackFlags,
  groupKeyFile,
} from '../support/proc.js';
import { Tmux } from '../support/tmux.js';

const term = new Tmux('monitor', 'mon');
const pane = () => term.pane();
const until = (what: string, pred: () => boolean, timeoutMs?: number) => term.until(what, pred, timeoutMs);

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

function startMonitor(net: string[], columns = 120, rows = 30): void {
  // The shell prints a marker before and the exit code after: what the screen must show again.
  term.start(
    `echo BEFORE-MONITOR; NO_COLOR=1 ${process.execPath} ${BIN} monitor ${net.join(' ')}; echo EXIT=$?; sleep 600`,
    columns,
    rows,
  );
}

afterEach(async () => {
  term.killSession();
  for (const p of running.splice(0)) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
});
afterAll(() => term.killServer());

describe('peer monitor in a terminal', () => {
  it('shows the tabs and the group, chats both ways, switches tabs by key, redraws on resize, and q restores the terminal', async () => {
    const { net, bob } = await loopbackGroup();
    startMonitor(net);
    await until('the dashboard', () => /\[1 Peers\]/.test(pane()));
    expect(term.alternateOn()).toBe(true);
    await until('both members', () => /^alice .* alive /m.test(pane()) && /^bob .* alive /m.test(pane()));
    const peers = pane();
    expect(peers).toMatch(/\[1 Peers\] {2}2 Chat {3}3 Tasks {3}4 Token {3}5 Replicas {3}6 Logs/);
    expect(peers).toMatch(/NAME +ID +ADDRESS +STATE +COORD +RANK +LAMPORT +OFFSET +LOAD +LAST SEEN/);
    expect(peers).toMatch(/q: quit/);
    expect(peers).not.toMatch(/BEFORE-MONITOR/); // full screen: the shell is hidden

    // Chat: a line from another peer shows up; a line typed here reaches bob. Typing 'q' and '1'
    // in the draft neither quits nor switches tabs.
    term.keys('2');
    await until('the Chat tab', () => /\[2 Chat\]/.test(pane()) && /Enter: write to the group/.test(pane()));
    const carol = await runCli(['chat', '--name', 'carol', '--send', 'hi monitor', ...net]);
    expect(carol.code, carol.stderr).toBe(0);
    await until('carol’s line', () => /carol +all +hi monitor/.test(pane()));
    term.keys('Enter');
    await until('the draft line', () => /^> ▏/m.test(pane()));
    term.keys('-l', 'hello from tmux q1');
    await until('the typed text', () => /^> hello from tmux q1▏/m.test(pane()));
    term.keys('Enter');
    await until('our line', () => /monitor +all +hello from tmux q1/.test(pane()));
    expect(pane()).toMatch(/\[2 Chat\]/);
    // Still writing (the next line is a chat line too) until Esc.
    expect(pane()).toMatch(/^> ▏/m);
    term.keys('Escape');
    await until('writing ended', () => /Enter: write to the group/.test(pane()));
    await bob.until(
      (l) => l.lines.some((x) => x.includes('hello from tmux q1')),
      10_000,
      'bob hears the monitor',
    );

    term.keys('6');
    await until('the Logs tab', () => /\[6 Logs\]/.test(pane()));
    await until(
      'join lines',
      () => /join +alice .* joined/.test(pane()) && /join +bob .* joined/.test(pane()),
    );

    term.keys('Right');
    await until('wrap to Peers', () => /\[1 Peers\]/.test(pane()));
    term.keys('Right');
    await until('the Chat tab again', () => /\[2 Chat\]/.test(pane()));

    term.run('resize-window', '-t', 'mon', '-x', '70', '-y', '16');
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

    term.keys('q');
    await until('the shell again', () => /EXIT=0/.test(pane()));
    const after = term.paneAndHistory();
    expect(after).toMatch(/BEFORE-MONITOR/);
    expect(after).not.toMatch(/peer monitor|\[\d \w+\]/); // nothing of the dashboard left
    expect(term.alternateOn()).toBe(false);
  });

  it('sends every line typed fast or pasted in the Chat tab, Enter right after the text', async () => {
    const { net, bob } = await loopbackGroup();
    startMonitor(net);
    await until('the dashboard', () => /\[1 Peers\]/.test(pane()));
    await until('bob', () => /^bob .* alive /m.test(pane()));
    term.keys('2');
    await until('the Chat tab', () => /Enter: write to the group/.test(pane()));
    term.keys('Enter');
    await until('the draft line', () => /^> ▏/m.test(pane()));
    // Typed fast: every key in one burst, each Enter right behind its text.
    term.keys('fast one', 'Enter', 'fast two', 'Enter', 'fast three', 'Enter');
    // Pasted: text and line ends in one write.
    term.keys('-l', 'pasted four\rpasted five\r');
    const texts = ['fast one', 'fast two', 'fast three', 'pasted four', 'pasted five'];
    await bob.until(
      (l) => texts.every((t) => l.json().some((e) => e.event === 'message' && e.text === t)),
      10_000,
      'bob to hear all five lines',
    );
    for (const t of texts)
      await until(`our line ${t}`, () => new RegExp(`monitor +all +${t}$`, 'm').test(pane()));
    const sent = bob.json().filter((e) => e.event === 'message' && e.from === 'monitor');
    expect(sent.map((e) => e.text)).toEqual(texts); // each once, in the order typed
  });

  it('shows every Peers column at 80x24, LAST SEEN included', async () => {
    const { net } = await loopbackGroup();
    startMonitor(net, 80, 24);
    await until('both members', () => /^alice .* alive /m.test(pane()) && /^bob .* alive /m.test(pane()));
    const lines = pane().split('\n');
    expect(lines.every((l) => l.length <= 80)).toBe(true);
    expect(pane()).toMatch(
      /^NAME +ID +ADDRESS +STATE +COORD +RANK +LAMPORT +OFFSET +LOAD +LAST SEEN +TAGS$/m,
    );
    // Every row ends with its LAST SEEN value, whole (then TAGS: these peers have none).
    for (const name of ['alice', 'bob'])
      expect(pane()).toMatch(new RegExp(`^${name} .* alive .* \\d+(\\.\\d)? (ms|s|min) *$`, 'm'));
  });

  it('shows a worker on the Tasks tab in a keyed group: its slots, exec allowed, the jobs it holds, the runs of peer task', async () => {
    const keyFile = groupKeyFile(tempDir('mon-key'));
    const port = testPort();
    const net = (dir: string) => [...loopbackFlags(port, dir, 'local'), '--key-file', keyFile];
    const w1 = startCli([
      'worker',
      '--allow-exec',
      '--slots',
      '3',
      '--name',
      'w1',
      ...net(tempDir('mon-w1')),
    ]);
    running.push(w1);
    await w1.until((l) => l.lines.some((x) => / up at /.test(x)), 15_000, 'w1 up');
    startMonitor(net(tempDir('mon')));
    await until('the dashboard', () => /\[1 Peers\]/.test(pane()));
    term.keys('3');
    await until('the Tasks tab', () => /\[3 Tasks\]/.test(pane()));
    await until('w1 and its three free slots', () =>
      /^worker w1 +alive +░░░ 0\/3 +exec allowed *$/m.test(pane()),
    );
    expect(pane()).toMatch(/^RUN \/ WORKER +STATE +TASK \/ SLOTS +JOBS +BY \/ EXEC +AGE$/m);
    expect(pane()).toMatch(/^jobs held: 0 in 3 slots \(workers’ counts; only a run’s host sees its jobs\)/m);

    // A task: the monitor lists its run as the keeper (w1) announces it, done once w1 ran it.
    const task = await runCli(['task', 'submit', 'sum', '1', '2', '--wait', ...net(tempDir('mon-task'))]);
    expect(task.code, task.stderr).toBe(0);
    await until('the run of the task, done', () =>
      /^[0-9a-f]{16} +done +sum 1 2 +1 done, 0 failed of 1 +task-client-\d+/m.test(pane()),
    );

    // A run of one long job: the monitor sees it held by w1 (from w1's advert, not the job).
    const run = startCli(['run', ...net(tempDir('mon-run')), '--discover', '5s', '--', 'sleep 60']);
    running.push(run);
    await until(
      'the job held by w1',
      () =>
        /^worker w1 +alive +█░░ 1\/3 +exec allowed *$/m.test(pane()) &&
        /^jobs held: 1 in 3 slots /m.test(pane()),
    );
  });

  it('SIGTERM also restores the terminal and ends the monitor with exit code 0', async () => {
    const { net } = await loopbackGroup();
    startMonitor(net);
    await until('the dashboard', () => /\[1 Peers\]/.test(pane()));
    const shell = term.display('#{pane_pid}');
    const monitorPid = Number(
      execFileSync('pgrep', ['-P', shell], { encoding: 'utf8' }).trim().split('\n')[0],
    );
    process.kill(monitorPid, 'SIGTERM');
    await until('the shell again', () => /EXIT=0/.test(pane()));
    expect(pane()).toMatch(/BEFORE-MONITOR/);
    expect(term.alternateOn()).toBe(false);
  });

  it('shows a chat line with escape sequences escaped in the Chat tab: the title and the screen stay', async () => {
    const { net } = await loopbackGroup();
    startMonitor(net);
    await until('the dashboard', () => /\[1 Peers\]/.test(pane()));
    const title = term.display('#{pane_title}');
    term.keys('2');
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
    expect(term.display('#{pane_title}')).toBe(title);
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
