/**
 * How `peer run` reads its `--transfer` files for the protocol (RunFiles in src/p2p/jobs/types.ts):
 * relative to the directory it was started in, regular files only, at most JOB_FILE_BYTES_MAX.
 * Synchronous, as the protocol asks when it places a job: one read of a file on the submitter's own
 * disk, bounded in size.
 */
import fs from 'node:fs';
import path from 'node:path';
import { JOB_FILE_BYTES_MAX } from '../../p2p/jobs/limits.js';
import type { RunFiles } from '../../p2p/jobs/types.js';

export class TransferFiles implements RunFiles {
  constructor(private readonly cwd: string) {}

  read(rel: string): Uint8Array {
    let fd: number;
    try {
      // NONBLOCK: a FIFO named by --transfer must not hang the run.
      fd = fs.openSync(path.resolve(this.cwd, rel), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    } catch (err) {
      throw new Error(reason(err), { cause: err });
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new Error('it is not a regular file');
      if (st.size > JOB_FILE_BYTES_MAX) throw new Error(`it is over ${JOB_FILE_BYTES_MAX} bytes`);
      return fs.readFileSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
}

function reason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file (paths are relative to the directory peer run started in)';
  if (code === 'EACCES') return 'permission denied';
  return code ?? (err as Error).message;
}
