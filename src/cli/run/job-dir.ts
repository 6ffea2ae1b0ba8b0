/**
 * A job's directory on its worker: made fresh for each attempt (`mkdtemp(<job-dir>/j-)`), filled
 * with the run's `--transfer` files before the command starts, read for its `--return` files after
 * it ended, and removed with everything in it.
 *
 * Paths come from the submitter: each must be relative, without a `..` segment, and a returned
 * file must resolve (symlinks followed) to a regular file inside the job's directory, so a job
 * cannot make its worker send /etc/shadow back by leaving a symlink to it.
 */
import fs from 'node:fs/promises';
import { constants } from 'node:fs';
import path from 'node:path';
import { JOB_FILE_BYTES_MAX } from '../../p2p/jobs/limits.js';
import type { ExecOutcome } from '../../p2p/jobs/types.js';
import { JOB_DIR_PREFIX } from '../../storage/job-procs.js';

/** A `--return` file, in bytes: the protocol's bound on one file (what one reliable message carries). */
export const JOB_RETURN_BYTES_MAX = JOB_FILE_BYTES_MAX;

/** Why `rel` cannot name a file inside a job's directory, or null. */
export function relativePathProblem(rel: string): string | null {
  if (rel === '' || rel.includes('\0')) return 'an empty path or one with a NUL';
  if (path.isAbsolute(rel)) return 'an absolute path';
  if (rel.split('/').includes('..')) return 'a path with a .. segment';
  return null;
}

/** Makes a fresh directory for one attempt under `root` (made too, private to this user). */
export async function makeJobDir(root: string): Promise<string> {
  await fs.mkdir(root, { recursive: true, mode: 0o700 });
  return fs.mkdtemp(path.join(root, JOB_DIR_PREFIX));
}

/** Writes the transferred files into a fresh job directory; throws one line on the first that fails. */
export async function writeTransfers(
  dir: string,
  transfers: ReadonlyArray<{ path: string; data: Uint8Array }>,
): Promise<void> {
  for (const t of transfers) {
    const problem = relativePathProblem(t.path);
    if (problem) throw new Error(`--transfer file '${t.path}' is ${problem}`);
    const file = path.join(dir, t.path);
    try {
      await fs.mkdir(path.dirname(file), { recursive: true });
      // 'wx': never through something already there (the directory is fresh: only an earlier
      // transfer of the same path could be).
      await fs.writeFile(file, t.data, { flag: 'wx' });
    } catch (err) {
      throw new Error(`cannot write --transfer file '${t.path}' (${codeOf(err)})`, { cause: err });
    }
  }
}

/** Reads the returned files of a job that ended; each is its data or why it could not be read. */
export async function readReturns(
  dir: string,
  returns: readonly string[],
  bytesMax = JOB_RETURN_BYTES_MAX,
): Promise<ExecOutcome['returned']> {
  const out: ExecOutcome['returned'] = [];
  let root: string;
  try {
    root = await fs.realpath(dir);
  } catch (err) {
    // The job removed its own directory.
    return returns.map((_, index) => ({ index, error: `the job's directory is gone (${codeOf(err)})` }));
  }
  for (const [index, rel] of returns.entries()) {
    try {
      out.push({ index, data: await readInside(root, rel, bytesMax) });
    } catch (err) {
      out.push({ index, error: (err as Error).message });
    }
  }
  return out;
}

async function readInside(root: string, rel: string, bytesMax: number): Promise<Uint8Array> {
  const problem = relativePathProblem(rel);
  if (problem) throw new Error(`'${rel}' is ${problem}`);
  let real: string;
  try {
    real = await fs.realpath(path.join(root, rel));
  } catch (err) {
    throw new Error(
      codeOf(err) === 'ENOENT' ? `'${rel}' was not made by the job` : `'${rel}': ${codeOf(err)}`,
      { cause: err },
    );
  }
  if (!real.startsWith(root + path.sep)) throw new Error(`'${rel}' leads outside the job's directory`);
  // NOFOLLOW: realpath resolved every link; NONBLOCK: a FIFO must not hang the worker.
  const file = await fs
    .open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
    .catch((err: unknown) => {
      throw new Error(`'${rel}': ${codeOf(err)}`, { cause: err });
    });
  try {
    const st = await file.stat();
    if (!st.isFile()) throw new Error(`'${rel}' is not a regular file`);
    if (st.size > bytesMax) throw new Error(`'${rel}' is larger than ${bytesMax} bytes`);
    return await file.readFile();
  } finally {
    await file.close();
  }
}

/**
 * Removes a job's directory and everything in it. A job may have taken permissions away from its
 * own files (chmod 000 on a directory): they are given back to this user, then removed.
 */
export async function removeJobDir(dir: string): Promise<void> {
  try {
    await fs.rm(dir, { recursive: true, force: true });
  } catch (err) {
    const code = codeOf(err);
    if (code !== 'EACCES' && code !== 'EPERM') throw err;
    await giveBack(dir);
    await fs.rm(dir, { recursive: true, force: true });
  }
}

async function giveBack(dir: string): Promise<void> {
  await fs.chmod(dir, 0o700).catch(() => undefined);
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) if (e.isDirectory()) await giveBack(path.join(dir, e.name));
}

function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}
