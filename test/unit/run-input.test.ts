/**
 * What `peer run` runs (src/cli/run/input.ts): lines read only as far as the run asks, GNU
 * parallel's idea of a line, the bounds on one, --on names, --resume skipping.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  INPUT_LINE_BYTES_MAX,
  inputLines,
  JobFeed,
  LineReader,
  parseOn,
  resolveOn,
} from '../../src/cli/run/input.js';
import type { WorkerAdvert } from '../../src/p2p/jobs/types.js';
import { tempDir } from '../support/proc.js';

const reader = (...chunks: Array<string | Buffer>) => new LineReader(Readable.from(chunks), 'stdin');

async function all(r: LineReader): Promise<string[]> {
  const out: string[] = [];
  for (let l = await r.next(); l !== null; l = await r.next()) out.push(l);
  return out;
}

describe('LineReader', () => {
  it('splits as parallel does: empty lines are jobs, a last line without a newline is one', async () => {
    expect(await all(reader('a\n\nb'))).toEqual(['a', '', 'b']);
    expect(await all(reader('a\r\n', 'b\n'))).toEqual(['a\r', 'b']);
    expect(await all(reader(''))).toEqual([]);
    expect(await all(reader('x', 'y\nz', '\n'))).toEqual(['xy', 'z']);
  });

  it('a character split across chunks is whole', async () => {
    const bytes = Buffer.from('é\n');
    expect(await all(reader(bytes.subarray(0, 1), bytes.subarray(1)))).toEqual(['é']);
  });

  it('reads only as far as it is asked', async () => {
    const stream = new PassThrough();
    const r = new LineReader(stream, 'stdin');
    stream.write('one\ntwo\n');
    expect(await r.next()).toBe('one');
    expect(await r.next()).toBe('two');
    // Nothing more was written: the third line is awaited, not invented.
    const third = r.next();
    stream.end('three');
    expect(await third).toBe('three');
    expect(await r.next()).toBeNull();
  });

  it('refuses a line over the bound (without holding more of it), a NUL, bytes that are not UTF-8', async () => {
    const long = 'x'.repeat(INPUT_LINE_BYTES_MAX + 1);
    await expect(all(reader('ok\n', long, long, '\n'))).rejects.toThrow(
      `line 2 of stdin is over ${INPUT_LINE_BYTES_MAX} bytes, a job's input at most; split it`,
    );
    expect(await all(reader('x'.repeat(INPUT_LINE_BYTES_MAX)))).toHaveLength(1);
    await expect(all(reader('a\0b\n'))).rejects.toThrow('line 1 of stdin holds a NUL byte');
    await expect(all(reader(Buffer.from([0x61, 0xff, 0x0a])))).rejects.toThrow(
      'line 1 of stdin is not UTF-8',
    );
  });
});

describe('inputLines', () => {
  const tty = Object.assign(new PassThrough(), { isTTY: true }) as unknown as NodeJS.ReadStream;
  const pipe = Object.assign(new PassThrough(), { isTTY: false }) as unknown as NodeJS.ReadStream;

  it('stdin is read when it is not a terminal and the command has {}, or with --input -', () => {
    expect(inputLines(undefined, ['gzip', '{}'], pipe)).not.toBeNull();
    expect(inputLines(undefined, ['echo {}.done'], pipe)).not.toBeNull();
    expect(inputLines(undefined, ['uptime'], pipe)).toBeNull();
    expect(inputLines(undefined, ['gzip', '{}'], tty)).toBeNull();
    expect(inputLines('-', ['uptime'], tty)).not.toBeNull();
  });

  it('--input FILE, or one line naming what is wrong', async () => {
    const file = path.join(tempDir('run-input'), 'lines');
    fs.writeFileSync(file, '1\n2\n');
    expect(await all(inputLines(file, ['echo'], tty)!)).toEqual(['1', '2']);
    expect(() => inputLines(`${file}.missing`, ['echo'], tty)).toThrow(
      /^--input .*lines\.missing: cannot open it \(ENOENT\); check the path$/,
    );
  });
});

describe('--on', () => {
  const w = (name: string, allowExec = true, id = `id-${name}`): WorkerAdvert => ({
    id,
    name,
    slots: 2,
    held: 0,
    allowExec,
  });
  const workers = [w('w1'), w('w2'), w('w3', false)];

  it('all: every worker that runs commands; names: those, in order', () => {
    expect(resolveOn(parseOn('all'), workers)).toEqual(['id-w1', 'id-w2']);
    expect(resolveOn(parseOn('w2,w1'), workers)).toEqual(['id-w2', 'id-w1']);
  });

  it('an unknown, repeated or ambiguous name is one line listing the workers', () => {
    expect(() => resolveOn(parseOn('w1,w9'), workers)).toThrow(
      '--on: no worker named w9 (workers that run commands: w1, w2)',
    );
    expect(() => resolveOn(parseOn('w3'), workers)).toThrow(/no worker named w3/);
    expect(() => resolveOn(parseOn('w1,w1'), workers)).toThrow('--on names w1 twice');
    expect(() => resolveOn(parseOn('w1'), [...workers, w('w1', true, 'other')])).toThrow(
      '--on: 2 workers are named w1',
    );
    expect(() => parseOn('w1,,w2')).toThrow(/give 'all' or worker names/);
    expect(() => resolveOn(parseOn('w1'), [])).toThrow('no worker that runs commands answered');
  });
});

describe('JobFeed', () => {
  it('one job without input when there are no lines', async () => {
    const feed = new JobFeed(null, new Set());
    expect(await feed.take(5)).toEqual({
      jobs: [{ job: 1, seq: 1, input: null, pin: null }],
      ended: true,
    });
  });

  it('takes what the run has room for; the end is said once it is known', async () => {
    const feed = new JobFeed(reader('a\nb\nc\n'), new Set());
    expect(await feed.take(2)).toEqual({
      jobs: [
        { job: 1, seq: 1, input: 'a', pin: null },
        { job: 2, seq: 2, input: 'b', pin: null },
      ],
      ended: false,
    });
    expect(await feed.take(2)).toEqual({ jobs: [{ job: 3, seq: 3, input: 'c', pin: null }], ended: true });
  });

  it('--on: each line on every worker, Seq repeated per worker as parallel --onall, jobs unique', async () => {
    const feed = new JobFeed(reader('a\nb\n'), new Set());
    feed.pins = ['p', 'q'];
    const first = await feed.take(3);
    expect(first.jobs.map((j) => [j.job, j.seq, j.input, j.pin])).toEqual([
      [1, 1, 'a', 'p'],
      [2, 1, 'a', 'q'],
      [3, 2, 'b', 'p'],
    ]);
    expect(first.ended).toBe(false);
    expect(await feed.take(3)).toEqual({ jobs: [{ job: 4, seq: 2, input: 'b', pin: 'q' }], ended: true });
  });

  it('--resume: the Seqs the joblog has are skipped and counted; the others keep their Seq', async () => {
    const feed = new JobFeed(reader('a\nb\nc\nd\n'), new Set([1, 3]));
    const { jobs, ended } = await feed.take(10);
    expect(jobs.map((j) => [j.job, j.seq, j.input])).toEqual([
      [1, 2, 'b'],
      [2, 4, 'd'],
    ]);
    expect(ended).toBe(true);
    expect(feed.skipped).toBe(2);
    const none = new JobFeed(null, new Set([1]));
    expect(await none.take(1)).toEqual({ jobs: [], ended: true });
    expect(none.skipped).toBe(1);
  });
});

describe('JobFeed.empty', () => {
  it('says whether any job is left to run, without losing the first', async () => {
    expect(await new JobFeed(reader(''), new Set()).empty()).toBe(true);
    expect(await new JobFeed(reader('a\n'), new Set([1])).empty()).toBe(true);
    const feed = new JobFeed(reader('a\nb\n'), new Set());
    expect(await feed.empty()).toBe(false);
    // --on's workers are known only after that look (a run without jobs needs no worker).
    feed.pins = ['p'];
    expect((await feed.take(5)).jobs.map((j) => [j.job, j.input, j.pin])).toEqual([
      [1, 'a', 'p'],
      [2, 'b', 'p'],
    ]);
  });
});
