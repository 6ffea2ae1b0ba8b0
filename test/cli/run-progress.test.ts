/**
 * `peer run`'s progress line in a real terminal (tmux, loopback group in a private namespace):
 * while jobs run it says how many are done of how many and the ETA; at the end it is gone and one
 * summary line stays; with stdout piped (`| cat`) there is no bar at all.
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

const term = new Tmux('run-progress', 'run');
const keyFile = groupKeyFile(tempDir('run-progress-key'));
const port = testPort();
const net = (dir: string) => [...loopbackFlags(port, dir), '--key-file', keyFile];
const workers: Lines[] = [];
/** The bar's text: "12/100 done · 4 running · 0 failed". */
const BAR = /\d+\/100 done · \d+ running · \d+ failed/;

beforeAll(async () => {
  for (const name of ['w1', 'w2']) {
    const w = startCli([
      'worker',
      '--name',
      name,
      '--allow-exec',
      '--slots',
      '2',
      ...net(tempDir(`rp-${name}`)),
    ]);
    workers.push(w);
    await w.until((l) => l.lines.some((x) => / up at /.test(x)), 15_000, `${name} up`);
  }
});

afterAll(async () => {
  term.killServer();
  for (const w of workers) {
    w.child.kill('SIGTERM');
    await w.exited;
  }
});

/** 100 jobs of 0.1 s on 4 slots: about 2.5 s, long enough for many frames. */
function runCommand(pipe: string): string {
  const run = [process.execPath, BIN, 'run', ...net(tempDir('rp-run')), '--discover', '5s'].join(' ');
  return `seq 1 100 | ${run} -- 'sleep 0.1; true {}' ${pipe}; echo EXIT=$?; sleep 600`;
}

describe('the progress line', () => {
  it('on a terminal: done of total and ETA while it runs; at the end no bar, one summary line', async () => {
    term.start(runCommand(''));
    await term.until('the bar with an ETA', () => BAR.test(term.pane()) && /ETA \d+s/.test(term.pane()));
    await term.until('the end', () => /EXIT=\d+/.test(term.pane()), 30_000);
    const pane = term.pane();
    expect(pane).toMatch(/EXIT=0/);
    expect(pane).not.toMatch(BAR);
    expect(pane).toMatch(/^100 jobs in \d+\.\d s \(\d+ jobs\/s\): 100 ok, 0 failed$/m);
    term.killSession();
  });

  it('stdout piped: no bar at any time; the summary still on the terminal (stderr)', async () => {
    term.start(runCommand('| cat'));
    const seen: string[] = [];
    await term.until(
      'the end',
      () => {
        seen.push(term.pane());
        return /EXIT=\d+/.test(seen.at(-1)!);
      },
      30_000,
    );
    expect(seen.some((p) => BAR.test(p))).toBe(false);
    expect(seen.at(-1)).toMatch(/EXIT=0/);
    expect(seen.at(-1)).toMatch(/^100 jobs in \d+\.\d s \(\d+ jobs\/s\): 100 ok, 0 failed$/m);
    term.killSession();
  });
});
