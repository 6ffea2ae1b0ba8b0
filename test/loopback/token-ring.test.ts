/**
 * `peer token-ring --exec` end to end: three built CLI processes on loopback (127.0.0.1, TTL 0)
 * take turns appending "enter TOKEN" / "exit TOKEN" to one shared file, and
 * scripts/check-fencing.mjs verifies the file: no overlap, strictly increasing fencing tokens.
 * Needs `npm run build` first (npm test runs it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startCli, tempDir, testPort, type Lines } from '../support/proc.js';

const ROUNDS = 4;
const PEERS = ['ann', 'bob', 'cat'];
/** Bootstrap (about 1 s), then 12 sections of about 60 ms each plus passes: far less than this. */
const FINISH_WITHIN_MS = 30_000;

const running: Lines[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await p.exited;
  }
});

beforeAll(() => {
  if (!fs.existsSync(path.join(ROOT, 'dist/commands/token-ring.js')))
    throw new Error('dist/commands/token-ring.js is missing: run npm run build first');
});

function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]);
}

describe('peer token-ring on loopback', () => {
  it('three --exec processes take turns on one file: all exit 0, no overlap, increasing tokens', async () => {
    const port = testPort();
    const dir = tempDir('token-ring');
    const shared = path.join(dir, 'shared.log');
    fs.writeFileSync(shared, '');
    // The file name goes into the shell command quoted; tempDir names have no quotes.
    // Turns start once all three see each other (the gate file): on a loaded machine one process
    // may start seconds before the others and take all its rounds in a ring of its own; the ring
    // the others form afterwards never met it and starts its fencing tokens again at 1.
    const gate = path.join(dir, 'gate');
    const cmd = `while [ ! -e '${gate}' ]; do sleep 0.05; done; echo "enter $PEER_FENCING_TOKEN $PEER_TOKEN_HOLDER" >> '${shared}'; sleep 0.05; echo "exit $PEER_FENCING_TOKEN $PEER_TOKEN_HOLDER" >> '${shared}'`;
    const procs = PEERS.map((name) => {
      const p = startCli(
        [
          'token-ring',
          '--interface',
          '127.0.0.1',
          '--ttl',
          '0',
          '--port',
          String(port),
          '--data-dir',
          path.join(dir, 'data'),
          '--name',
          name,
          '--exec',
          cmd,
          '--rounds',
          String(ROUNDS),
          '--json',
        ],
        { PEER_KEY_FILE: '' },
      );
      running.push(p);
      return p;
    });

    const sees = (p: Lines, name: string) => p.json().some((e) => e.event === 'join' && e.peer === name);
    for (const [i, p] of procs.entries())
      await p.until(
        (l) => PEERS.every((n) => n === PEERS[i] || sees(l, n)),
        FINISH_WITHIN_MS,
        `${PEERS[i]} to see the others`,
      );
    fs.writeFileSync(gate, '');

    const codes = await deadline(
      Promise.all(procs.map((p) => p.exited)),
      FINISH_WITHIN_MS,
      'all three to exit',
    );
    const diag = procs.map(
      (p, i) => `${PEERS[i]}: ${p.lines.slice(-5).join(' | ')} ${p.stderr.join('').slice(-300)}`,
    );
    expect(codes, diag.join('\n')).toEqual([0, 0, 0]);

    // Every process entered ROUNDS times and its fencing tokens rose.
    const enters: number[] = [];
    for (const p of procs) {
      const mine = p
        .json()
        .filter((e) => e.event === 'enter')
        .map((e) => e.generation as number);
      expect(mine.length).toBeGreaterThanOrEqual(ROUNDS);
      expect([...mine].sort((a, b) => a - b)).toEqual(mine);
      enters.push(...mine);
      expect(p.json().some((e) => e.event === 'exec-failed')).toBe(false);
    }

    // The shared file saw exactly those sections, one at a time, tokens strictly increasing.
    const lines = fs.readFileSync(shared, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(2 * PEERS.length * ROUNDS);
    const fileTokens = lines.filter((l) => l.startsWith('enter')).map((l) => Number(l.split(' ')[1]));
    expect([...fileTokens].sort((a, b) => a - b)).toEqual([...enters].sort((a, b) => a - b));
    const check = spawnSync(process.execPath, [path.join(ROOT, 'scripts/check-fencing.mjs'), shared], {
      encoding: 'utf8',
    });
    expect(check.stdout).toMatch(/^OK: 12 critical sections/m);
    expect(check.status).toBe(0);

    // And the checker does catch a bad log (so the pass above means something).
    const bad = path.join(dir, 'bad.log');
    fs.writeFileSync(bad, `${lines.slice(0, 2).join('\n')}\n${lines[0]}\n${lines[1]}\n`);
    const badCheck = spawnSync(process.execPath, [path.join(ROOT, 'scripts/check-fencing.mjs'), bad], {
      encoding: 'utf8',
    });
    expect(badCheck.status).toBe(1);
    expect(badCheck.stdout).toMatch(/not increasing/);
  });
});
