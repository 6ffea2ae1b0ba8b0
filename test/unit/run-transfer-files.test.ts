/**
 * How `peer run` reads its `--transfer` files (src/cli/run/transfer-files.ts): relative to where it
 * started, regular files only (a FIFO must not hang the run), at most JOB_FILE_BYTES_MAX, each
 * refusal one reason the run can print after the path.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TransferFiles } from '../../src/cli/run/transfer-files.js';
import { JOB_FILE_BYTES_MAX } from '../../src/p2p/jobs/limits.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-transfer-'));
const files = new TransferFiles(dir);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('TransferFiles', () => {
  it('reads a file relative to its directory', () => {
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.writeFileSync(path.join(dir, 'sub', 'a.txt'), 'contents');
    expect(Buffer.from(files.read('sub/a.txt')).toString()).toBe('contents');
  });

  it('refuses what it cannot send, saying why', () => {
    expect(() => files.read('nothere.txt')).toThrow(/^no such file \(paths are relative to the directory/);
    expect(() => files.read('sub')).toThrow('it is not a regular file');
    execFileSync('mkfifo', [path.join(dir, 'fifo')]);
    expect(() => files.read('fifo')).toThrow('it is not a regular file');
    // Sparse: the size is what is checked, before anything is read.
    fs.writeFileSync(path.join(dir, 'big'), '');
    fs.truncateSync(path.join(dir, 'big'), JOB_FILE_BYTES_MAX + 1);
    expect(() => files.read('big')).toThrow(`it is over ${JOB_FILE_BYTES_MAX} bytes`);
  });
});
