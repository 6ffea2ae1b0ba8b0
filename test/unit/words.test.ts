/**
 * What a newcomer reads must not name the classroom exercises this project grew out of ("seed
 * 001", "the seed's tester"): they are not in the repository, so the words mean nothing to a
 * reader. Scanned: the README, docs/, and the sources of every command's help and of the demo's
 * narration. "seed" for a random seed ("a failing seed replays exactly") stays.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/**
 * "seed 001", "Seed 004's", "the seed's": an exercise, not a random seed, nor a --join seed's
 * address ("seed 192.168.1.20:47777 answered").
 */
const EXERCISE = /\bseed(?:\s+\d{3}\b(?!\.\d)|'s\b)/i;

function files(dir: string, ext: string): string[] {
  return fs
    .readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith(ext))
    .map((f) => path.join(dir, f));
}

describe('words a newcomer reads', () => {
  const read = [
    'README.md',
    ...files('docs', '.md'),
    ...files('src/commands', '.ts'),
    ...files('src/demo', '.ts'),
  ];

  it('scans the README, the docs, every command and the demo', () => {
    expect(read).toContain('docs/kv.md');
    expect(read).toContain('src/commands/kv/shell.ts');
    expect(read).toContain('src/demo/scenes/kv.ts');
  });

  it.each(read)('%s names no classroom exercise ("seed 001", "the seed\'s")', (file) => {
    const hits = fs
      .readFileSync(path.join(ROOT, file), 'utf8')
      .split('\n')
      .flatMap((line, i) => (EXERCISE.test(line) ? [`${file}:${i + 1}: ${line.trim()}`] : []));
    expect(hits).toEqual([]);
  });
});
