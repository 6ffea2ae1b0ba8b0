/**
 * The joblog (src/cli/run/joblog.ts) is GNU parallel's: rows it writes are read by parallel's
 * --resume regexps, and logs parallel wrote (GNU parallel 20221122, copied verbatim below) are read
 * by ours, with parallel's meaning of "seen" and "done with Exitval 0 and Signal 0".
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  exitval,
  jobFailed,
  Joblog,
  JOBLOG_HEADER,
  joblogRow,
  logged,
  readJoblog,
} from '../../src/cli/run/joblog.js';
import type { JobResult } from '../../src/p2p/jobs/types.js';
import { tempDir } from '../support/proc.js';

/** What `parallel --joblog` wrote: ok, exit 1, ok, two appended runs (+FILE), a job killed by SIGKILL. */
const PARALLEL_LOG = [
  'Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand',
  '1\t:\t1796544972.672\t     0.013\t0\t0\t0\t0\tsleep 0.01; test 1 != 2',
  '2\t:\t1796544972.677\t     0.026\t0\t0\t1\t0\tsleep 0.02; test 2 != 2',
  '3\t:\t1796544972.687\t     0.032\t0\t0\t0\t0\tsleep 0.03; test 3 != 2',
  '1\t:\t1796544972.815\t     1.004\t0\t2\t0\t0\tsleep 1; echo a',
  '5\t:\t1796544973.927\t     0.003\t0\t0\t0\t9\tkill -9 $$ z',
  '6\t:\t1796544870.128\t     0.004\t0\t5\t0\t0\tprintf "%s" "x\0y"; echo q',
  '',
].join('\n');

function result(over: Partial<JobResult> = {}): JobResult {
  return {
    run: '0123456789abcdef',
    job: 7,
    seq: 7,
    attempt: 1,
    fence: 12,
    started: true,
    exit: 0,
    signal: 0,
    timedOut: false,
    cancelled: false,
    startedAtWallMs: 1_764_000_000_123,
    runtimeUs: 52_400,
    stdout: new Uint8Array(),
    stderr: new Uint8Array(),
    truncated: false,
    error: null,
    worker: 'aaaaaaaaaaaaaaaa',
    workerName: 'w1',
    sendBytes: 10,
    receiveBytes: 20,
    ...over,
  };
}

describe('joblogRow', () => {
  it('writes the columns as parallel does: %.3f start, %10.3f runtime, NUL for a newline', () => {
    expect(joblogRow(result(), 'echo 7')).toBe('7\tw1\t1764000000.123\t     0.052\t10\t20\t0\t0\techo 7');
    expect(joblogRow(result({ runtimeUs: 1_234_567_890 }), 'x').split('\t')[3]).toBe('  1234.568');
    expect(joblogRow(result(), 'printf "a\nb"')).toBe(
      '7\tw1\t1764000000.123\t     0.052\t10\t20\t0\t0\tprintf "a\0b"',
    );
  });

  it('Exitval -1 for a job killed by timeout or cancel, 0 with the signal for one a signal ended', () => {
    expect(exitval(result({ timedOut: true, exit: null, signal: 15 }))).toBe(-1);
    expect(exitval(result({ cancelled: true, exit: null, signal: 15 }))).toBe(-1);
    expect(exitval(result({ exit: null, signal: 9 }))).toBe(0);
    expect(jobFailed(result({ exit: null, signal: 9 }))).toBe(true);
    expect(exitval(result({ started: false, exit: null, error: 'no shell' }))).toBe(255);
    expect(jobFailed(result({ exit: 3 }))).toBe(true);
    expect(jobFailed(result())).toBe(false);
  });

  it('a job cancelled before it started gets no row, so --resume runs it', () => {
    expect(logged(result({ started: false, cancelled: true, exit: null }))).toBe(false);
    expect(logged(result({ cancelled: true, exit: null, signal: 15 }))).toBe(true);
    expect(logged(result({ started: false, exit: 255, error: 'worker gone' }))).toBe(true);
  });

  it("our rows pass parallel's --resume-failed regexp exactly when they ended well", () => {
    const ok = /^(\d+)(?:\t[^\t]+){5}\t0\t0\t/;
    expect(joblogRow(result(), 'true')).toMatch(ok);
    expect(joblogRow(result({ exit: 1 }), 'false')).not.toMatch(ok);
    expect(joblogRow(result({ timedOut: true, exit: null, signal: 15 }), 'sleep 9')).not.toMatch(ok);
    expect(JOBLOG_HEADER.split('\t')).toHaveLength(joblogRow(result(), 'a\tb').split('\t').length - 1);
  });
});

describe('readJoblog', () => {
  it("reads parallel's own log: seen and ok as its --resume and --resume-failed take them", () => {
    const r = readJoblog(PARALLEL_LOG);
    expect(r.problem).toBeNull();
    expect([...r.seen].sort()).toEqual([1, 2, 3, 5, 6]);
    // 2 exited 1, 5 was killed by signal 9: --resume-failed runs them again.
    expect([...r.ok].sort()).toEqual([1, 3, 6]);
  });

  it('reads back what we write', () => {
    const text = [
      JOBLOG_HEADER,
      joblogRow(result({ seq: 1 }), 'a'),
      joblogRow(result({ seq: 2, exit: 2 }), 'b'),
      joblogRow(result({ seq: 3, cancelled: true, exit: null, signal: 15 }), 'c\nd'),
      '',
    ].join('\n');
    const r = readJoblog(text);
    expect(r).toEqual({ seen: new Set([1, 2, 3]), ok: new Set([1]), problem: null });
  });

  it('the first line is the header, whatever it says; an empty log has no rows', () => {
    expect(readJoblog('').seen.size).toBe(0);
    expect(readJoblog('1\tw\t1.000\t     0.000\t0\t0\t0\t0\tx\n').seen.size).toBe(0);
  });

  it('a line that is no row makes the log unreadable, naming the line', () => {
    const r = readJoblog(`${JOBLOG_HEADER}\n1\tw\t1.000\t     0.000\t0\t0\t0\t0\tx\nnot a row\n`);
    expect(r.problem).toBe('line 3 is not a joblog row: not a row');
  });
});

describe('Joblog (the file)', () => {
  const rows = (file: string) => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);

  it('writes the header, then rows; +FILE appends without a second header', () => {
    const file = path.join(tempDir('joblog'), 'log');
    const a = Joblog.open(file, null);
    a.write(result({ seq: 1 }), 'a');
    a.close();
    const b = Joblog.open(`+${file}`, null);
    b.write(result({ seq: 2 }), 'b');
    b.close();
    expect(rows(file)).toEqual([
      JOBLOG_HEADER,
      joblogRow(result({ seq: 1 }), 'a'),
      joblogRow(result({ seq: 2 }), 'b'),
    ]);
    const c = Joblog.open(file, null);
    c.close();
    expect(rows(file)).toEqual([JOBLOG_HEADER]);
  });

  it('--resume skips the seqs seen, --resume-failed those that ended well; both append', () => {
    const file = path.join(tempDir('joblog'), 'log');
    fs.writeFileSync(file, PARALLEL_LOG);
    const resume = Joblog.open(file, 'resume');
    expect([...resume.skip].sort()).toEqual([1, 2, 3, 5, 6]);
    resume.write(result({ seq: 4 }), 'd');
    resume.close();
    const failed = Joblog.open(file, 'resume-failed');
    expect([...failed.skip].sort()).toEqual([1, 3, 4, 6]);
    failed.close();
    expect(rows(file)).toHaveLength(PARALLEL_LOG.split('\n').filter(Boolean).length + 1);
  });

  it('--resume with no log yet runs everything and starts one; a damaged log is refused', () => {
    const dir = tempDir('joblog');
    const fresh = Joblog.open(path.join(dir, 'new'), 'resume');
    expect(fresh.skip.size).toBe(0);
    fresh.close();
    expect(rows(path.join(dir, 'new'))).toEqual([JOBLOG_HEADER]);
    fs.writeFileSync(path.join(dir, 'bad'), `${JOBLOG_HEADER}\nhello\n`);
    expect(() => Joblog.open(path.join(dir, 'bad'), 'resume-failed')).toThrow(
      /--joblog .*bad: line 2 is not a joblog row: hello; .*without --resume-failed/,
    );
  });
});
