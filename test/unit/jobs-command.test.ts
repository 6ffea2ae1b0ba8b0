/**
 * The command a job runs (src/p2p/jobs/command.ts): GNU parallel's `{}` rules on its own examples,
 * quoting that /bin/sh reads back exactly, and every bound of a run's spec at its boundary.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { commandFor, inputProblem, problemOf, shellQuote } from '../../src/p2p/jobs/command.js';
import {
  JOB_ENV_MAX,
  JOB_GRACE_MS_MAX,
  JOB_GRACE_MS_MIN,
  JOB_INPUT_BYTES_MAX,
  JOB_PATHS_MAX,
  JOB_PATH_BYTES_MAX,
  JOB_TIMEOUT_MS_MAX,
  JOB_WORDS_MAX,
  JOB_WORD_BYTES_MAX,
} from '../../src/p2p/jobs/limits.js';
import type { RunSpec } from '../../src/p2p/jobs/types.js';

const spec = (over: Partial<Omit<RunSpec, 'run'>> = {}): Omit<RunSpec, 'run'> => ({
  kind: 'exec',
  words: ['echo', '{}'],
  env: [],
  detached: false,
  timeoutMs: null,
  graceMs: 2000,
  output: 'group',
  transfers: [],
  returns: [],
  ...over,
});

describe('commandFor: parallel {} rules', () => {
  it('appends the quoted line to a template without {} (parallel gzip ::: a.txt)', () => {
    expect(commandFor(['gzip'], 'a.txt')).toBe('gzip a.txt');
    expect(commandFor(['gzip', '-9'], 'my file.txt')).toBe("gzip -9 'my file.txt'");
  });

  it('replaces every {} with the quoted line, inside words too (parallel mv {} {}.bak)', () => {
    expect(commandFor(['mv', '{}', '{}.bak'], 'a')).toBe('mv a a.bak');
    expect(commandFor(['mv', '{}', '{}.bak'], 'a b')).toBe("mv 'a b' 'a b'.bak");
    expect(commandFor(['echo', '{}'], "it's")).toBe("echo 'it'\\''s'");
  });

  it('joins the words unquoted: the template is shell text', () => {
    expect(commandFor(['echo {} | wc -c'], 'x')).toBe('echo x | wc -c');
    expect(commandFor(['sleep 0.05;', 'true', '{}'], '7')).toBe('sleep 0.05; true 7');
  });

  it('runs the line itself when the template starts with {} or is empty (parallel ::: "echo a")', () => {
    expect(commandFor(['{}'], 'echo a')).toBe('echo a');
    expect(commandFor(['{}', '--version'], 'node')).toBe('node --version');
    expect(commandFor([], 'echo a')).toBe('echo a');
  });

  it('places nothing for a job without input', () => {
    expect(commandFor(['uptime'], null)).toBe('uptime');
    expect(commandFor(['echo', '[{}]'], null)).toBe('echo []');
  });
});

describe('shellQuote', () => {
  it('leaves plain words as they are and quotes the rest', () => {
    expect(shellQuote('a.txt')).toBe('a.txt');
    expect(shellQuote('-n')).toBe('-n');
    expect(shellQuote('')).toBe("''");
    expect(shellQuote('$HOME')).toBe("'$HOME'");
    expect(shellQuote('a;b')).toBe("'a;b'");
  });

  it('is read back by /bin/sh as exactly the line (fast-check)', () => {
    const line = fc.string({ unit: 'grapheme', maxLength: 40 }).filter((s) => inputProblem(s) === null);
    fc.assert(
      fc.property(line, (s) => {
        const out = execFileSync('/bin/sh', ['-c', `printf %s ${shellQuote(s)}`]).toString();
        expect(out).toBe(s);
      }),
      { numRuns: 60, seed: 21 },
    );
  });
});

describe('problemOf: the bounds of a run', () => {
  it('takes a spec within every bound', () => {
    expect(problemOf(spec())).toBeNull();
    expect(
      problemOf(
        spec({
          words: Array.from({ length: JOB_WORDS_MAX }, () => 'x'),
          env: Array.from({ length: JOB_ENV_MAX }, (_, i): [string, string] => [`V${i}`, 'v']),
          timeoutMs: JOB_TIMEOUT_MS_MAX,
          graceMs: JOB_GRACE_MS_MAX,
          transfers: Array.from({ length: JOB_PATHS_MAX }, (_, i) => `f${i}`),
          returns: ['a'.repeat(JOB_PATH_BYTES_MAX)],
        }),
      ),
    ).toBeNull();
    expect(problemOf(spec({ words: ['x'.repeat(JOB_WORD_BYTES_MAX)] }))).toBeNull();
    expect(problemOf(spec({ graceMs: JOB_GRACE_MS_MIN, timeoutMs: 1 }))).toBeNull();
  });

  it('refuses each bound one past it, saying which', () => {
    const cases: Array<[Partial<Omit<RunSpec, 'run'>>, RegExp]> = [
      [{ words: Array.from({ length: JOB_WORDS_MAX + 1 }, () => 'x') }, /over 4096 words/],
      [{ words: ['x'.repeat(JOB_WORD_BYTES_MAX + 1)] }, /a word of the command is over/],
      [{ words: ['é'.repeat(JOB_WORD_BYTES_MAX / 2 + 1)] }, /a word of the command is over/],
      [{ words: Array.from({ length: 3 }, () => 'x'.repeat(JOB_WORD_BYTES_MAX)) }, /the command is over/],
      [{ words: ['echo', 'a\0b'] }, /NUL/],
      [{ words: [] }, /no command/],
      [
        { env: Array.from({ length: JOB_ENV_MAX + 1 }, (_, i): [string, string] => [`V${i}`, 'v']) },
        /over 64 variables/,
      ],
      [{ env: [['1X', 'v']] }, /not a variable name/],
      [{ env: [['PEER_KEY_FILE', '/k']] }, /set by peer/],
      [{ env: [['V', 'a\0']] }, /NUL/],
      [{ env: [['V', 'x'.repeat(64 * 1024)]] }, /variables are over/],
      [{ timeoutMs: JOB_TIMEOUT_MS_MAX + 1 }, /timeout/],
      [{ timeoutMs: 0 }, /timeout/],
      [{ graceMs: JOB_GRACE_MS_MIN - 1 }, /kill grace/],
      [{ graceMs: JOB_GRACE_MS_MAX + 1 }, /kill grace/],
      [{ transfers: Array.from({ length: JOB_PATHS_MAX + 1 }, (_, i) => `f${i}`) }, /over 16 files/],
      [{ returns: ['a'.repeat(JOB_PATH_BYTES_MAX + 1)] }, /path is over/],
      [{ transfers: ['/etc/passwd'] }, /not a relative path/],
      [{ returns: ['out/../../x'] }, /goes up/],
      [{ returns: [''] }, /empty/],
    ];
    for (const [over, why] of cases) expect(problemOf(spec(over))).toMatch(why);
  });

  it('bounds an input line: bytes, NUL, line feed', () => {
    expect(inputProblem('x'.repeat(JOB_INPUT_BYTES_MAX))).toBeNull();
    expect(inputProblem('x'.repeat(JOB_INPUT_BYTES_MAX + 1))).toMatch(/over/);
    expect(inputProblem('a\nb')).toMatch(/line feed/);
    expect(inputProblem('a\0b')).toMatch(/NUL/);
    expect(inputProblem(null)).toBeNull();
  });
});
