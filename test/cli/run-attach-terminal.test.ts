/**
 * Detached runs in a real terminal (tmux, loopback group in a private namespace): `peer run
 * --detach` prints the run's id and, on a terminal, how to collect it; `peer run --attach ID`
 * draws the progress line (done of the run's jobs) while the run goes on, and ends with no bar
 * and one summary line.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BIN,
  loopbackFlags,
  startCli,
  tempDir,
  testPort,
  type Lines,
  groupKeyFile,
} from '../support/proc.js';
import { Tmux } from '../support/tmux.js';

const term = new Tmux('run-attach', 'attach');
const keyFile = groupKeyFile(tempDir('run-attach-key'));
const port = testPort();
const net = (dir: string) => [...loopbackFlags(port, dir), '--key-file', keyFile];
const peers: Lines[] = [];
/** The attach's bar: done and failed (the keeper does not say what runs now, so no 'running'). */
const BAR = /\d+\/60 done · \d+ failed/;

beforeAll(async () => {
  for (const args of [
    ['up', '--name', 'k1', '--priority', '10'],
    ['worker', '--name', 'w1', '--allow-exec', '--slots', '2'],
  ]) {
    const p = startCli([...args, ...net(tempDir(`ra-${args[2]}`))]);
    peers.push(p);
    await p.until((l) => l.lines.some((x) => / up at /.test(x)), 15_000, `${args[2]} up`);
  }
});

afterAll(async () => {
  term.killServer();
  for (const p of peers) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
});

const peerRun = (...args: string[]) =>
  [process.execPath, BIN, 'run', ...net(tempDir('ra-run')), ...args].join(' ');

describe('detached runs on a terminal', () => {
  it('--detach says how to collect; --attach draws the bar, then one summary line', async () => {
    // 60 jobs of 0.2 s on 2 slots: about 6 s, so the attach below finds it running.
    term.start(`seq 1 60 | ${peerRun('--detach', '--', "'sleep 0.2; true {}'")}; echo EXIT=$?; sleep 600`);
    await term.until('the id', () => /EXIT=\d+/.test(term.pane()), 20_000);
    const detached = term.pane();
    expect(detached).toMatch(/EXIT=0/);
    const run = /^([0-9a-f]{16})$/m.exec(detached)?.[1];
    expect(run, detached).toBeDefined();
    expect(detached).toContain(
      `peer: 60 jobs kept by the group; peer run --attach ${run} prints their results`,
    );
    term.killSession();

    term.start(`${peerRun('--attach', run!)}; echo EXIT=$?; sleep 600`);
    await term.until('the bar', () => BAR.test(term.pane()), 20_000);
    await term.until('the end', () => /EXIT=\d+/.test(term.pane()), 30_000);
    const pane = term.pane();
    expect(pane).toMatch(/EXIT=0/);
    expect(pane).not.toMatch(BAR);
    expect(pane).toMatch(/^60 jobs in \d+\.\d s \(\d+ jobs\/s\): 60 ok, 0 failed$/m);
    term.killSession();
  }, 90_000);
});
