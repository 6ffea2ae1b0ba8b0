/**
 * --transport unicast never multicasts, so a peer started with it and no --join (and nobody it
 * remembers) finds nobody by itself: it must say so and what to do, once, on stderr, instead of
 * running on silently alone. Built CLI on loopback, a port of its own.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, startCli, tempDir, testPort, loopbackFlags, type Lines } from '../support/proc.js';

const ALONE = /--transport unicast without --join/;
const START_MS = 10_000;

const running: Lines[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
});

describe('--transport unicast without --join', () => {
  it('peer up says in one line that others must join it, naming its address', async () => {
    const port = testPort();
    const up = startCli(['up', '--open', '--transport', 'unicast', ...loopbackFlags(port, tempDir('ua'))]);
    running.push(up);
    await up.until((l) => l.stderr.some((s) => ALONE.test(s)), START_MS, 'the unicast-alone line');
    const said = up.stderr.filter((s) => ALONE.test(s));
    expect(said).toHaveLength(1);
    expect(said[0]).toContain(`--join 127.0.0.1:${port}`);
  });

  it('a one-shot command says to pass --join, and stays quiet once given one', async () => {
    const port = testPort();
    const flags = [
      '--open',
      '--transport',
      'unicast',
      '--wait',
      '200',
      ...loopbackFlags(port, tempDir('ua')),
    ];
    const [alone, joined, multicast] = await Promise.all([
      runCli(['peers', ...flags]),
      runCli(['peers', ...flags, '--join', `127.0.0.1:${port}`]),
      runCli(['peers', '--open', '--wait', '200', ...loopbackFlags(port, tempDir('ua'))]),
    ]);
    expect(alone.code, alone.stderr).toBe(0);
    expect(alone.stderr).toMatch(ALONE);
    expect(
      alone.stderr
        .trim()
        .split('\n')
        .filter((s) => ALONE.test(s))[0],
    ).toMatch(/pass --join HOST/);
    expect(joined.stderr).not.toMatch(ALONE);
    expect(multicast.stderr).not.toMatch(ALONE);
  });
});
