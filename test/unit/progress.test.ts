/**
 * The status line of a wait (src/cli/progress.ts): on a terminal it appears once the wait has
 * lasted a second, says what is awaited, stays out of the way of output and is cleared at the
 * end; piped or with --json nothing is written at all.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  Progress,
  PROGRESS_AFTER_MS,
  PROGRESS_FRAME_MS,
  showingWait,
  type ProgressStream,
} from '../../src/cli/progress.js';

const CLEAR = '\r\x1b[2K';

/** A stream that records what is written to it, in one log shared by stdout and stderr. */
function streams(tty: { out: boolean; err: boolean }) {
  const log: Array<[string, string]> = [];
  const stream = (name: string, isTTY: boolean): ProgressStream => ({
    isTTY,
    write: (chunk) => {
      log.push([name, String(chunk)]);
      return true;
    },
  });
  return { log, stdout: stream('out', tty.out), stderr: stream('err', tty.err) };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('Progress', () => {
  it('on a terminal: nothing for the first second, then the line, replaced, then cleared', () => {
    const s = streams({ out: true, err: true });
    const p = new Progress(s);
    p.update('waiting for kv holders to answer');
    vi.advanceTimersByTime(PROGRESS_AFTER_MS - PROGRESS_FRAME_MS);
    expect(s.log).toEqual([]);
    vi.advanceTimersByTime(2 * PROGRESS_FRAME_MS);
    const last = s.log.at(-1)!;
    expect(last[0]).toBe('err');
    expect(last[1].startsWith(CLEAR)).toBe(true);
    expect(last[1].slice(CLEAR.length)).toMatch(/^[|/\\-] waiting for kv holders to answer \(1 s\)$/);
    p.update('waiting for \x1b[31mh1\x1b[0m');
    vi.advanceTimersByTime(PROGRESS_AFTER_MS);
    expect(s.log.at(-1)![1]).toMatch(/waiting for \\x1b\[31mh1\\x1b\[0m \(2 s\)$/);
    p.done();
    expect(s.log.at(-1)).toEqual(['err', CLEAR]);
    const n = s.log.length;
    vi.advanceTimersByTime(10 * PROGRESS_AFTER_MS);
    expect(s.log).toHaveLength(n);
  });

  it('a text wider than the terminal is cut to fit, so clearing the line leaves nothing behind', () => {
    const s = streams({ out: true, err: true });
    const p = new Progress({ ...s, stderr: { ...s.stderr, columns: 40 } });
    p.update(`waiting for ${'x'.repeat(100)}`);
    vi.advanceTimersByTime(PROGRESS_AFTER_MS + PROGRESS_FRAME_MS);
    const line = s.log.at(-1)![1].slice(CLEAR.length);
    expect([...line].length).toBeLessThanOrEqual(39);
    expect(line).toMatch(/^[|/\\-] waiting for x+… \(1 s\)$/);
    p.done();
  });

  it('output written while the line is up clears it first; the streams are restored after', () => {
    const s = streams({ out: true, err: true });
    const write = s.stdout.write;
    const p = new Progress(s);
    p.update('waiting');
    vi.advanceTimersByTime(PROGRESS_AFTER_MS + PROGRESS_FRAME_MS);
    s.stdout.write('result\n');
    expect(s.log.slice(-2)).toEqual([
      ['err', CLEAR],
      ['out', 'result\n'],
    ]);
    p.done();
    expect(s.stdout.write).toBe(write);
  });

  it('piped (stdout or stderr not a terminal) or with --json: never writes', async () => {
    for (const opts of [
      streams({ out: false, err: true }),
      streams({ out: true, err: false }),
      { ...streams({ out: true, err: true }), json: true },
    ]) {
      const waited = showingWait(
        'waiting',
        new Promise((r) => setTimeout(() => r('v'), 5 * PROGRESS_AFTER_MS)),
        opts,
      );
      await vi.advanceTimersByTimeAsync(5 * PROGRESS_AFTER_MS);
      expect(await waited).toBe('v');
      expect(opts.log).toEqual([]);
    }
  });

  it('showingWait clears its line when the work settles, also when it fails', async () => {
    const s = streams({ out: true, err: true });
    const failing = showingWait(
      'waiting',
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('nobody answered')), 2 * PROGRESS_AFTER_MS),
      ),
      s,
    );
    const settled = expect(failing).rejects.toThrow('nobody answered');
    await vi.advanceTimersByTimeAsync(2 * PROGRESS_AFTER_MS);
    await settled;
    expect(s.log.at(-1)).toEqual(['err', CLEAR]);
  });
});
