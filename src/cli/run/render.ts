/**
 * How a job's result looks: its output on a terminal or raw, the `--tag` prefix, the `--json`
 * objects, the summary. Output bytes go raw to a pipe or a file (exact, like --json: they are the
 * user's own command's output); on a terminal every byte from a worker goes through
 * escapeForTerminal, line by line, so no escape sequence from a worker ever reaches the terminal.
 */
import type { JobResult, RunId } from '../../p2p/jobs/types.js';
import { escapeForTerminal } from '../sanitize.js';
import { exitval } from './joblog.js';

const NEWLINE = 0x0a;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const lenient = new TextDecoder('utf-8');

/** Where output goes: process.stdout or process.stderr (or a test's stand-in). */
export interface OutStream {
  isTTY?: boolean;
  write(chunk: string | Uint8Array): boolean;
}

/**
 * `w1:7<TAB>` (--tag): the worker and the Seq, as `parallel --tag` puts its argument first; on a
 * terminal the worker's name (it came from the network) escaped, the TAB ours and kept.
 */
export function tagOf(workerName: string | null, seq: number, terminal: boolean): string {
  if (workerName === null) return `${seq}\t`;
  return `${terminal ? escapeForTerminal(workerName) : workerName}:${seq}\t`;
}

/**
 * Writes `bytes` (whole lines, and perhaps a last piece without a newline) to `to`, each line
 * after `tag` (tagOf, made for that stream): raw to a pipe or file; escaped on a terminal, where a
 * last piece gets its newline so the next job's output starts a line of its own.
 */
export function writeOutput(to: OutStream, bytes: Uint8Array, tag: string): void {
  if (bytes.length === 0) return;
  if (to.isTTY !== true) {
    if (tag === '') {
      to.write(bytes);
      return;
    }
    const parts: Uint8Array[] = [];
    const prefix = Buffer.from(tag);
    let start = 0;
    while (start < bytes.length) {
      const nl = bytes.indexOf(NEWLINE, start);
      const end = nl < 0 ? bytes.length : nl + 1;
      parts.push(prefix, bytes.subarray(start, end));
      start = end;
    }
    to.write(Buffer.concat(parts));
    return;
  }
  const text = lenient.decode(bytes);
  const lines = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n');
  to.write(lines.map((l) => `${tag}${escapeForTerminal(l)}\n`).join(''));
}

/** Both streams as UTF-8 text when both are, else both base64 (--json stays exact for any bytes). */
function encoded(r: JobResult): { stdout: string; stderr: string; encoding: 'utf8' | 'base64' } {
  try {
    return { stdout: utf8.decode(r.stdout), stderr: utf8.decode(r.stderr), encoding: 'utf8' };
  } catch {
    return {
      stdout: Buffer.from(r.stdout).toString('base64'),
      stderr: Buffer.from(r.stderr).toString('base64'),
      encoding: 'base64',
    };
  }
}

/**
 * One `--json` line per job. `id` is the run and the job (unique across runs); `exit` is the
 * joblog's Exitval (-1: killed by timeout or Ctrl-C); `start` epoch seconds, `runtime` seconds.
 */
export function jobJson(r: JobResult, command: string, problem: string | null): string {
  return JSON.stringify({
    type: 'job',
    run: r.run,
    job: r.job,
    seq: r.seq,
    id: `${r.run}-${r.job}`,
    attempt: r.attempt,
    fence: r.fence,
    host: r.workerName,
    hostId: r.worker,
    start: Math.round(r.startedAtWallMs) / 1000,
    runtime: Math.round(r.runtimeUs / 1000) / 1000,
    exit: exitval(r),
    signal: r.signal,
    timedOut: r.timedOut,
    cancelled: r.cancelled,
    send: r.sendBytes,
    receive: r.receiveBytes,
    command,
    ...encoded(r),
    truncated: r.truncated,
    error: problem ?? r.error,
  });
}

export interface RunSummary {
  /** Null when there was nothing to run. */
  run: RunId | null;
  jobs: number;
  ok: number;
  failed: number;
  cancelled: number;
  /** Lines the joblog had (--resume). */
  skipped: number;
  /** Jobs started again after their worker was lost. */
  reassigned: number;
  wallMs: number;
  exit: number;
}

/** The last `--json` line. */
export function summaryJson(s: RunSummary): string {
  return JSON.stringify({ type: 'summary', ...s });
}

/** The last line on a terminal: "1000 jobs in 12.3 s (81 jobs/s): 997 ok, 3 failed". */
export function summaryLine(s: RunSummary): string {
  const secs = s.wallMs / 1000;
  const rate = secs > 0 ? Math.round(s.jobs / secs) : s.jobs;
  const parts = [`${s.ok} ok`, `${s.failed} failed`];
  if (s.cancelled > 0) parts.push(`${s.cancelled} cancelled`);
  if (s.skipped > 0) parts.push(`${s.skipped} skipped (in the joblog already)`);
  if (s.reassigned > 0) parts.push(`${s.reassigned} started again after their worker was lost`);
  return `${s.jobs} jobs in ${secs.toFixed(1)} s (${rate} jobs/s): ${parts.join(', ')}`;
}
