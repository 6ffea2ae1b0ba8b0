/**
 * `--joblog FILE`: one row per finished job in GNU parallel's own format, so its tools and
 * `parallel --resume` read our logs and we read theirs. As parallel's print_joblog writes it: a
 * header, then per job Seq, Host, Starttime (`%.3f` epoch seconds), JobRuntime (`%10.3f`
 * seconds), Send, Receive, Exitval, Signal, Command, TAB-separated, the command's newlines
 * written as NUL so a row stays one line. Exitval is -1 for a job we killed (timeout, Ctrl-C), as
 * parallel writes it.
 *
 * `--resume` / `--resume-failed` read the log back with parallel's regexps (open_joblog): the
 * first line is the header, whatever it says; `^(\d+)` marks a Seq as seen,
 * `^(\d+)(?:\t[^\t]+){5}\t0\t0\t` as done with Exitval 0 and Signal 0. A line that matches
 * neither `^\d+` nor parallel's loose row pattern makes the log unreadable (parallel exits 255).
 *
 * Rows are written whole with one write each, so a `peer run` killed mid-run leaves whole rows:
 * the worker's ack of a result waits for its row, and a run started again with --resume skips it.
 * A row the disk takes only in part (full) is cut off again, so the log stays whole rows, and the
 * write throws: the run stops (RunSession), as a job without its row would run again after --resume.
 */
import fs from 'node:fs';
import type { JobResult } from '../../p2p/jobs/types.js';
import { UsageError } from '../network.js';
import { writeFailure } from '../../storage/health.js';
import { failureReason } from '../../p2p/write-failure.js';

export const JOBLOG_HEADER = 'Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand';

/** parallel's regexps (open_joblog in src/parallel). */
const SEEN_RE = /^(\d+)/;
const OK_RE = /^(\d+)(?:\t[^\t]+){5}\t0\t0\t/;
const ROW_RE = /\d+\s+[^\s]+\s+([-0-9.]+\s+){6}/;
/** Characters of an unreadable line quoted in the error. */
const QUOTED_LINE_CHARS_MAX = 80;

/** Exitval of a result: -1 when we killed it, 255 when it could not start (as ssh failures in parallel). */
export function exitval(r: JobResult): number {
  if (r.timedOut || r.cancelled) return -1;
  if (r.exit !== null) return r.exit;
  return r.signal !== 0 ? 0 : 255;
}

/** parallel's rule: a job failed when its Exitval or its Signal is not 0. */
export function jobFailed(r: JobResult): boolean {
  return exitval(r) !== 0 || r.signal !== 0;
}

/** A job cancelled before it started has no row, so --resume runs it. */
export function logged(r: JobResult): boolean {
  return r.started || !r.cancelled;
}

/** One row, without its newline. */
export function joblogRow(r: JobResult, command: string): string {
  // A worker's name never holds a TAB or newline (wire.ts checks names), but it came from the network.
  const host = r.workerName.replace(/[\t\n]/g, ' ') || '?';
  return [
    r.seq,
    host,
    (r.startedAtWallMs / 1000).toFixed(3),
    (r.runtimeUs / 1e6).toFixed(3).padStart(10),
    r.sendBytes,
    r.receiveBytes,
    exitval(r),
    r.signal,
    command.replace(/\n/g, '\0'),
  ].join('\t');
}

/** The Seqs a joblog names (seen) and those that ended with Exitval 0 and Signal 0 (ok). */
export function readJoblog(text: string): { seen: Set<number>; ok: Set<number>; problem: string | null } {
  const seen = new Set<number>();
  const ok = new Set<number>();
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const good = OK_RE.exec(line);
    if (good) ok.add(Number(good[1]));
    const any = SEEN_RE.exec(line);
    if (any) seen.add(Number(any[1]));
    else if (!ROW_RE.test(line)) {
      const quoted =
        line.length > QUOTED_LINE_CHARS_MAX ? `${line.slice(0, QUOTED_LINE_CHARS_MAX)}...` : line;
      return { seen, ok, problem: `line ${i + 1} is not a joblog row: ${quoted}` };
    }
  }
  return { seen, ok, problem: null };
}

/** An open joblog: rows appended whole, one write each. */
export class Joblog {
  private constructor(
    readonly file: string,
    private readonly fd: number,
    /** The log's length: where a row written in part is cut back to. */
    private size: number,
    /** Seqs to skip (--resume: seen; --resume-failed: ok); empty otherwise. */
    readonly skip: ReadonlySet<number>,
  ) {}

  /**
   * `--joblog FILE` (`+FILE` appends). With a resume mode the log is read first and appended to;
   * a new or empty file gets the header in every mode.
   */
  static open(spec: string, resume: 'resume' | 'resume-failed' | null): Joblog {
    const append = spec.startsWith('+');
    const file = append ? spec.slice(1) : spec;
    let skip = new Set<number>();
    if (resume) {
      let text = '';
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw cannot(file, 'read', err);
      }
      const read = readJoblog(text);
      if (read.problem)
        throw new UsageError(
          `--joblog ${file}: ${read.problem}; pass the log a run wrote, or start afresh without --${resume}`,
        );
      skip = resume === 'resume' ? read.seen : read.ok;
    }
    let log: Joblog;
    try {
      const fd = fs.openSync(file, append || resume ? 'a' : 'w');
      log = new Joblog(file, fd, fs.fstatSync(fd).size, skip);
      if (log.size === 0) log.append(`${JOBLOG_HEADER}\n`);
    } catch (err) {
      throw cannot(file, 'write', err);
    }
    return log;
  }

  /** Appends a job's row whole, or throws saying what to do (see above). */
  write(r: JobResult, command: string): void {
    try {
      this.append(`${joblogRow(r, command)}\n`);
    } catch (err) {
      const f = writeFailure(this.file, err);
      throw new Error(
        `--joblog ${this.file}: cannot write a row (${failureReason(f.kind, f.code)}); the run was stopped: make room there, then run it again with --resume (jobs the log lists are not run again)`,
        { cause: err },
      );
    }
  }

  /** `text` whole at the end, or nothing of it and the error. */
  private append(text: string): void {
    const bytes = Buffer.from(text);
    let n = 0;
    try {
      // One write but for a short one (a disk filling up), whose rest then says why it failed.
      while (n < bytes.length) n += fs.writeSync(this.fd, bytes, n);
    } catch (err) {
      fs.ftruncateSync(this.fd, this.size);
      throw err;
    }
    this.size += n;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

function cannot(file: string, what: string, err: unknown): UsageError {
  return new UsageError(
    `--joblog: cannot ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check the path`,
  );
}
