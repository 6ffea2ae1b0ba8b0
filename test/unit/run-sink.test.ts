/**
 * The submitter's sink (src/cli/run/sink.ts): output raw to pipes and files, escaped on a
 * terminal; --tag, --line-buffer, --json exact; the joblog; --return files under the working
 * directory only.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Joblog, JOBLOG_HEADER, joblogRow } from '../../src/cli/run/joblog.js';
import type { OutStream } from '../../src/cli/run/render.js';
import { RunOutput, LINE_PIECE_BYTES_MAX, type SinkOptions } from '../../src/cli/run/sink.js';
import type { JobResult } from '../../src/p2p/jobs/types.js';
import { tempDir } from '../support/proc.js';

function stream(isTTY: boolean) {
  const chunks: Buffer[] = [];
  const s: OutStream & { text(): string; bytes(): Buffer } = {
    isTTY,
    write: (c) => {
      chunks.push(Buffer.from(c));
      return true;
    },
    text: () => Buffer.concat(chunks).toString('utf8'),
    bytes: () => Buffer.concat(chunks),
  };
  return s;
}

function sink(over: Partial<SinkOptions> & { tty?: boolean } = {}) {
  const stdout = stream(over.tty ?? false);
  const stderr = stream(over.tty ?? false);
  const out = new RunOutput({
    stdout,
    stderr,
    json: false,
    lines: false,
    tag: false,
    joblog: null,
    commandOf: (input) => `echo ${input ?? ''}`,
    returns: [],
    cwd: process.cwd(),
    ...over,
  });
  out.expect([
    { job: 1, seq: 1, input: 'a', pin: null },
    { job: 2, seq: 2, input: 'b', pin: null },
  ]);
  return { out, stdout, stderr };
}

const bytes = (s: string) => new Uint8Array(Buffer.from(s));

function result(over: Partial<JobResult> = {}): JobResult {
  return {
    run: '0123456789abcdef',
    job: 1,
    seq: 1,
    attempt: 1,
    fence: 5,
    started: true,
    exit: 0,
    signal: 0,
    timedOut: false,
    cancelled: false,
    startedAtWallMs: 1_764_000_000_123,
    runtimeUs: 52_000,
    stdout: bytes('out\n'),
    stderr: new Uint8Array(),
    truncated: false,
    error: null,
    worker: 'aaaaaaaaaaaaaaaa',
    workerName: 'w1',
    sendBytes: 0,
    receiveBytes: 0,
    ...over,
  };
}

describe('grouped output (the default)', () => {
  it('to a pipe: the bytes exactly, escapes and all; stdout and stderr apart; counted', () => {
    const { out, stdout, stderr } = sink();
    out.record(result({ stdout: bytes('\x1b[31mred\x1b[0m\nno newline'), stderr: bytes('warn\n') }));
    out.record(result({ job: 2, seq: 2, exit: 3, stdout: bytes('x\n') }));
    expect(stdout.text()).toBe('\x1b[31mred\x1b[0m\nno newlinex\n');
    expect(stderr.text()).toBe('warn\n');
    expect([out.ok, out.failed, out.recorded]).toEqual([1, 1, 2]);
  });

  it('to a terminal: every byte from the worker escaped, line by line, a last piece ended', () => {
    const { out, stdout } = sink({ tty: true });
    out.record(result({ stdout: bytes('\x1b]0;pwned\x07\nok\ttab\npiece') }));
    expect(stdout.text()).toBe('\\x1b]0;pwned\\x07\nok\\ttab\npiece\n');
  });

  it("--tag: worker:seq and a TAB before every line (on a terminal the worker's name escaped)", () => {
    const pipe = sink({ tag: true });
    pipe.out.record(result({ stdout: bytes('one\ntwo\n') }));
    expect(pipe.stdout.text()).toBe('w1:1\tone\nw1:1\ttwo\n');
    const tty = sink({ tag: true, tty: true });
    tty.out.record(result({ workerName: 'w\x1b1', stdout: bytes('one\n') }));
    expect(tty.stdout.text()).toBe('w\\x1b1:1\tone\n');
  });

  it('a cut output and a worker error are one line each on stderr, escaped', () => {
    const { out, stderr } = sink();
    out.record(result({ truncated: true, exit: null, error: 'no \x1b shell', started: false }));
    expect(stderr.text()).toBe(
      'peer: job 1 on w1: its output was cut at the limit a job may send back; the head is shown\n' +
        'peer: job 1 on w1: no \\x1b shell\n',
    );
    expect(out.failed).toBe(1);
  });
});

describe('--line-buffer', () => {
  it('whole lines as they come, the unfinished line held until it ends or the job does', () => {
    const { out, stdout, stderr } = sink({ lines: true, tag: true });
    out.output(1, 1, 1, bytes('first\nsec'));
    expect(stdout.text()).toBe('1\tfirst\n');
    out.output(1, 1, 2, bytes('err'));
    out.output(1, 1, 1, bytes('ond\nthi'));
    expect(stdout.text()).toBe('1\tfirst\n1\tsecond\n');
    out.record(result({ stdout: new Uint8Array() }));
    expect(stdout.text()).toBe('1\tfirst\n1\tsecond\n1\tthi');
    expect(stderr.text()).toBe('1\terr');
  });

  it('a later attempt replaces the unfinished line of a lost one; late output of the lost one is dropped', () => {
    const { out, stdout } = sink({ lines: true });
    out.output(1, 1, 1, bytes('lost piece'));
    out.output(1, 2, 1, bytes('again\n'));
    out.output(1, 1, 1, bytes('late\n'));
    out.record(result({ attempt: 2 }));
    expect(stdout.text()).toBe('again\n');
  });

  it('an unfinished line is printed once it is over the bound', () => {
    const { out, stdout } = sink({ lines: true });
    out.output(1, 1, 1, new Uint8Array(LINE_PIECE_BYTES_MAX).fill(0x61));
    expect(stdout.bytes().length).toBe(0);
    out.output(1, 1, 1, bytes('b'));
    expect(stdout.bytes().length).toBe(LINE_PIECE_BYTES_MAX + 1);
  });
});

describe('--json', () => {
  it('one exact object per job: UTF-8 text, or base64 for both streams when either is not', () => {
    const { out, stdout } = sink({ json: true });
    out.record(result({ stdout: bytes('hé\n'), stderr: bytes('\x1b') }));
    out.record(
      result({ job: 2, seq: 2, stdout: new Uint8Array([0xff]), timedOut: true, exit: null, signal: 15 }),
    );
    const [a, b] = stdout
      .text()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(a).toEqual({
      type: 'job',
      run: '0123456789abcdef',
      job: 1,
      seq: 1,
      id: '0123456789abcdef-1',
      attempt: 1,
      fence: 5,
      host: 'w1',
      hostId: 'aaaaaaaaaaaaaaaa',
      start: 1764000000.123,
      runtime: 0.052,
      exit: 0,
      signal: 0,
      timedOut: false,
      cancelled: false,
      send: 0,
      receive: 0,
      command: 'echo a',
      stdout: 'hé\n',
      stderr: '\x1b',
      encoding: 'utf8',
      truncated: false,
      error: null,
    });
    expect(b).toMatchObject({
      stdout: '/w==',
      stderr: '',
      encoding: 'base64',
      exit: -1,
      signal: 15,
      command: 'echo b',
    });
  });
});

describe('--joblog', () => {
  it('a row per job, none for a job cancelled before it started', () => {
    const file = path.join(tempDir('run-sink'), 'log');
    const joblog = Joblog.open(file, null);
    const { out } = sink({ joblog });
    out.record(result());
    out.record(result({ job: 2, seq: 2, started: false, cancelled: true, exit: null }));
    joblog.close();
    expect(fs.readFileSync(file, 'utf8')).toBe(`${JOBLOG_HEADER}\n${joblogRow(result(), 'echo a')}\n`);
    expect([out.ok, out.failed, out.cancelled, out.recorded]).toEqual([1, 0, 1, 2]);
  });
});

describe('--return', () => {
  it('written under the working directory at the template path, {} the job input', async () => {
    const cwd = tempDir('run-return');
    const { out } = sink({ cwd, returns: ['out/{}.txt'] });
    await out.returned(1, 0, bytes('A'));
    out.record(result());
    expect(fs.readFileSync(path.join(cwd, 'out/a.txt'), 'utf8')).toBe('A');
    expect(fs.readdirSync(path.join(cwd, 'out'))).toEqual(['a.txt']);
    expect(out.ok).toBe(1);
  });

  it('never outside it: .. in the input, a symlink out; the job counts as failed and says why', async () => {
    const cwd = tempDir('run-return');
    const outside = tempDir('run-outside');
    fs.symlinkSync(outside, path.join(cwd, 'link'));
    const { out, stderr } = sink({ cwd, returns: ['{}', 'link/{}'] });
    out.expect([{ job: 3, seq: 3, input: '../escaped', pin: null }]);
    await out.returned(3, 0, bytes('x'));
    out.record(result({ job: 3, seq: 3 }));
    await out.returned(1, 1, bytes('y'));
    out.record(result());
    // A returned file index the run never asked for is ignored.
    await out.returned(2, 7, bytes('z'));
    out.record(result({ job: 2, seq: 2 }));
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(fs.existsSync(path.join(cwd, '..', 'escaped'))).toBe(false);
    expect(stderr.text()).toBe(
      'peer: job 3 on w1: cannot write its returned file ../escaped: the path leaves the working directory\n' +
        'peer: job 1 on w1: cannot write its returned file link/a: a symbolic link leads out of the working directory\n',
    );
    expect([out.ok, out.failed]).toEqual([1, 2]);
  });
});
