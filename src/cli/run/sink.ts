/**
 * The submitter's end of a run (RunSink): each job's result printed (grouped: whole when the job
 * ends, as GNU parallel's default; `--line-buffer`: lines as they come), logged (`--joblog`) and
 * counted, its `--return` files written. A result comes once per job (the protocol records it
 * once); the worker's ack of it waits for what record() and returned() return, so a returned file
 * is on disk before the worker forgets it.
 *
 * Returned files land under the submitter's working directory at the path the run's own template
 * names (never a path from the worker), and never outside that directory: no absolute path, no
 * `..`, no symlink out of it; each is written to a temporary file, synced and renamed.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { JobInput, JobResult, RunSink } from '../../p2p/jobs/types.js';
import { escapeForTerminal } from '../sanitize.js';
import { jobFailed, logged, type Joblog } from './joblog.js';
import { jobJson, tagOf, writeOutput, type OutStream } from './render.js';

/** A `--line-buffer` piece without its newline is printed once it is this long. */
export const LINE_PIECE_BYTES_MAX = 64 * 1024;

export interface SinkOptions {
  stdout: OutStream;
  stderr: OutStream;
  json: boolean;
  /** --line-buffer: print lines as they come (RunSink.output) rather than whole at the end. */
  lines: boolean;
  tag: boolean;
  joblog: Pick<Joblog, 'write'> | null;
  /** The command a job runs, after `{}` substitution (what the joblog and --json show). */
  commandOf: (input: string | null) => string;
  /** --return path templates, and the directory they are written under. */
  returns: string[];
  cwd: string;
}

interface Pending {
  seq: number;
  input: string | null;
  /** --line-buffer: the attempt whose output is shown, and its unfinished lines per stream. */
  attempt: number;
  pieces: [Uint8Array, Uint8Array];
  /** Why a returned file could not be written (the job then counts as failed). */
  problem: string | null;
}

export class RunOutput implements RunSink {
  /** Jobs that ended well, failed (parallel's rule, or a returned file not written), were cancelled. */
  ok = 0;
  failed = 0;
  cancelled = 0;
  /** Told once when a joblog row cannot be written (RunSession stops the run), with the line why. */
  onJoblogFailure: ((why: string) => void) | null = null;
  private joblogFailed = false;
  private readonly jobs = new Map<number, Pending>();
  private cwdReal: string | null = null;

  constructor(private readonly o: SinkOptions) {}

  /** Jobs about to be fed to the run: what their results will be shown with. */
  expect(jobs: JobInput[]): void {
    for (const j of jobs)
      this.jobs.set(j.job, {
        seq: j.seq,
        input: j.input,
        attempt: 0,
        pieces: [new Uint8Array(), new Uint8Array()],
        problem: null,
      });
  }

  /** Jobs whose result came. */
  get recorded(): number {
    return this.ok + this.failed + this.cancelled;
  }

  output(job: number, attempt: number, stream: 1 | 2, chunk: Uint8Array): void {
    const p = this.jobs.get(job);
    if (!p || !this.o.lines || this.o.json || attempt < p.attempt) return;
    if (attempt > p.attempt) {
      // An attempt after a lost worker: what the lost one printed stays, its unfinished lines go.
      p.attempt = attempt;
      p.pieces = [new Uint8Array(), new Uint8Array()];
    }
    const all = Buffer.concat([p.pieces[stream - 1]!, chunk]);
    const cut = all.lastIndexOf(0x0a) + 1;
    const whole = cut > 0 ? cut : all.length > LINE_PIECE_BYTES_MAX ? all.length : 0;
    p.pieces[stream - 1] = all.subarray(whole);
    this.print(stream, all.subarray(0, whole), p.seq, null);
  }

  async returned(job: number, index: number, data: Uint8Array): Promise<void> {
    const p = this.jobs.get(job);
    const template = this.o.returns[index];
    if (!p || template === undefined) return;
    const rel = template.split('{}').join(p.input ?? '');
    try {
      await this.writeReturned(rel, data);
    } catch (err) {
      p.problem ??= `cannot write its returned file ${rel}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    }
  }

  record(r: JobResult): void {
    const p = this.jobs.get(r.job);
    this.jobs.delete(r.job);
    const input = p?.input ?? null;
    const command = this.o.commandOf(input);
    const problem = p?.problem ?? null;
    // A job killed by Ctrl-C is cancelled, not failed: the run exits 130 whatever it did.
    if (r.cancelled) this.cancelled++;
    else if (jobFailed(r) || problem !== null) this.failed++;
    else this.ok++;
    if (this.o.joblog && logged(r)) this.log(this.o.joblog, r, command);
    if (this.o.json) {
      this.o.stdout.write(`${jobJson(r, command, problem)}\n`);
      return;
    }
    if (this.o.lines) {
      if (p) for (const s of [1, 2] as const) this.print(s, p.pieces[s - 1]!, r.seq, r.workerName);
    } else {
      this.print(1, r.stdout, r.seq, r.workerName);
      this.print(2, r.stderr, r.seq, r.workerName);
    }
    const why = [
      problem,
      r.truncated ? 'its output was cut at the limit a job may send back; the head is shown' : null,
      r.error,
    ].filter((x) => x !== null);
    for (const w of why)
      this.o.stderr.write(
        `peer: job ${r.seq} on ${escapeForTerminal(r.workerName)}: ${escapeForTerminal(w)}\n`,
      );
  }

  /** A job's row; a failure never reaches the protocol recording the result, only the session. */
  private log(joblog: Pick<Joblog, 'write'>, r: JobResult, command: string): void {
    try {
      joblog.write(r, command);
    } catch (err) {
      if (this.joblogFailed) return;
      this.joblogFailed = true;
      this.onJoblogFailure?.((err as Error).message);
    }
  }

  private print(stream: 1 | 2, bytes: Uint8Array, seq: number, workerName: string | null): void {
    const to = stream === 1 ? this.o.stdout : this.o.stderr;
    // Lines that come as they are printed (--line-buffer) come before the job's result, which
    // names its worker: their tag is the Seq alone, for every line of the job alike.
    const tag = this.o.tag ? tagOf(this.o.lines ? null : workerName, seq, to.isTTY === true) : '';
    writeOutput(to, bytes, tag);
  }

  private async writeReturned(rel: string, data: Uint8Array): Promise<void> {
    this.cwdReal ??= await fs.realpath(this.o.cwd);
    const root = this.cwdReal;
    if (path.isAbsolute(rel) || rel.split(/[\\/]/).includes('..'))
      throw new Error('the path leaves the working directory');
    const full = path.resolve(root, rel);
    const dir = path.dirname(full);
    if (!full.startsWith(root + path.sep)) throw new Error('the path leaves the working directory');
    await fs.mkdir(dir, { recursive: true });
    const real = await fs.realpath(dir);
    if (real !== root && !real.startsWith(root + path.sep))
      throw new Error('a symbolic link leads out of the working directory');
    const tmp = path.join(real, `.${path.basename(full)}.peer-${process.pid}.tmp`);
    const fh = await fs.open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, path.join(real, path.basename(full)));
  }
}
