/**
 * peer up --join says whether its seeds answered: a line when a seed first answers (how many
 * members it listed), and one line when nobody was met at all within a few seconds, naming the
 * seeds and what to check. Before, a mistyped seed left a peer running alone with no word.
 * Built CLI on loopback, unicast so that only the seed can introduce anybody.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startCli, tempDir, testPort, loopbackFlags, type Lines } from '../support/proc.js';

const SILENT = /no peer met .*--join .*not answered/;
const ANSWERED = /seed +127\.0\.0\.1:(\d+) answered: \d+ member/;
/** The silence line comes 5 s after start; a loaded machine gets a margin. */
const LINE_MS = 15_000;

const running: Lines[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
});

const up = (args: string[]) => {
  const p = startCli(['up', '--open', '--transport', 'unicast', ...args]);
  running.push(p);
  return p;
};

describe('peer up --join', () => {
  it('says when its seed answered, and once that nobody was met when its seed never answers', async () => {
    const port = testPort();
    const seed = up(loopbackFlags(port, tempDir('uj')));
    await seed.until((l) => l.lines.some((s) => / up at /.test(s)), LINE_MS, 'the seed up');
    const joiner = up([
      ...loopbackFlags(port, tempDir('uj')),
      '--name',
      'joiner',
      '--join',
      `127.0.0.1:${port}`,
    ]);
    await joiner.until((l) => l.lines.some((s) => / up at /.test(s)), LINE_MS, 'the joiner up');
    // A peer given its own door (the same --join on every host, the seed's included) is not told
    // that its seed is silent.
    const ownPort = testPort();
    const own = up([
      ...loopbackFlags(ownPort, tempDir('uj')),
      '--name',
      'own',
      '--join',
      `127.0.0.1:${ownPort}`,
    ]);
    await own.until((l) => l.lines.some((s) => / up at /.test(s)), LINE_MS, 'the own-door peer up');
    // Started after the others: once it has said its silence line, their moment has passed.
    const silent = `127.0.0.1:${port + 1}`;
    const lonely = up([...loopbackFlags(port, tempDir('uj')), '--name', 'lonely', '--join', silent]);
    await joiner.until((l) => l.lines.some((s) => ANSWERED.test(s)), LINE_MS, 'the answered line');
    expect(Number(ANSWERED.exec(joiner.lines.find((s) => ANSWERED.test(s))!)![1])).toBe(port);
    await lonely.until((l) => l.lines.some((s) => SILENT.test(s)), LINE_MS, 'the silence line');
    const line = lonely.lines.find((s) => SILENT.test(s))!;
    expect(line).toContain(silent);
    expect(line).toContain(`peer doctor --join ${silent}`);
    expect(joiner.lines.some((s) => SILENT.test(s))).toBe(false);
    expect(own.lines.some((s) => SILENT.test(s))).toBe(false);
    expect(lonely.lines.filter((s) => SILENT.test(s))).toHaveLength(1);
  });
});
