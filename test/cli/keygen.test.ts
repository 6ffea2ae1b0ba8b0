/**
 * peer keygen as the built CLI: the path its own help and `peer doctor` suggest
 * (~/.peer/group.key) works on a fresh machine, where ~/.peer does not exist yet.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../support/proc.js';

const mode = (p: string) => fs.statSync(p).mode & 0o777;

describe('peer keygen --out', () => {
  it('creates the missing directories private (0700) and the key file 0600, with or without --force', async () => {
    const home = tempDir('keygen-home');
    for (const [file, extra] of [
      [path.join(home, '.peer', 'group.key'), []],
      [path.join(home, 'keys', 'lab', 'next.key'), ['--force']],
    ] as const) {
      const r = await runCli(['keygen', '--out', file, ...extra, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ file });
      expect(mode(file).toString(8)).toBe('600');
      for (let dir = path.dirname(file); dir !== home; dir = path.dirname(dir))
        expect(mode(dir).toString(8), dir).toBe('700');
    }
  });

  it('leaves an existing directory as it is', async () => {
    const dir = tempDir('keygen-dir');
    fs.chmodSync(dir, 0o755);
    const r = await runCli(['keygen', '--out', path.join(dir, 'group.key')]);
    expect(r.code, r.stderr).toBe(0);
    expect(mode(dir).toString(8)).toBe('755');
  });
});
