/**
 * `peer run`'s progress line (src/cli/run/progress-bar.ts): what it says, that output clears it
 * first, that it is gone at the end, and that piped or with --json nothing is drawn at all.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  PROGRESS_REDRAWS_PER_S,
  RunProgress,
  type RunProgressState,
} from '../../src/cli/run/progress-bar.js';
import type { ProgressStream } from '../../src/cli/progress.js';
import type { RunCounts } from '../../src/p2p/jobs/types.js';

const CLEAR = '\r\x1b[2K';
const FRAME_MS = 1000 / PROGRESS_REDRAWS_PER_S;

function streams(tty: boolean) {
  const log: Array<[string, string]> = [];
  const stream = (name: string): ProgressStream & { columns: number } => ({
    isTTY: tty,
    columns: 200,
    write: (chunk) => {
      log.push([name, String(chunk)]);
      return true;
    },
  });
  return { log, stdout: stream('out'), stderr: stream('err') };
}

function counts(over: Partial<RunCounts> = {}): RunCounts {
  return {
    fed: 1000,
    inputEnded: true,
    queued: 0,
    running: 6,
    done: 0,
    failed: 0,
    cancelled: 0,
    reassigned: 0,
    workers: [
      { id: 'a', name: 'w1', slots: 2, running: 2, held: 4 },
      { id: 'b', name: 'w\x1b2', slots: 2, running: 1, held: 2 },
    ],
    ...over,
  };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('RunProgress', () => {
  it('--attach knows no running count: the line leaves it out rather than saying 0 running', () => {
    const p = new RunProgress({ json: false, ...streams(true), now: () => 0 });
    const line = p.line({
      counts: counts({ running: 0, workers: [] }),
      done: 3,
      failed: 1,
      runningKnown: false,
    });
    expect(line).toMatch(/^3\/1000 done · 1 failed /);
    expect(line).not.toMatch(/running/);
  });

  it('done / running / failed, the bar, the rate and the ETA, the workers (names escaped)', () => {
    let now = 0;
    const s = streams(true);
    const p = new RunProgress({ json: false, ...s, now: () => now });
    expect(p.line({ counts: counts(), done: 0, failed: 0 })).toMatch(/^0\/1000 done · 6 running · 0 failed/);
    now = 5000;
    expect(p.line({ counts: counts(), done: 410, failed: 3 })).toBe(
      '410/1000 done · 6 running · 3 failed  [████████░░░░░░░░░░░░]  41%  82 jobs/s  ETA 8s  w1 2/2 w\\x1b2 1/2',
    );
  });

  it('while the input is still being read: at least what was fed, no bar, no ETA', () => {
    const p = new RunProgress({ json: false, ...streams(true), now: () => 0 });
    expect(
      p.line({ counts: counts({ fed: 600, inputEnded: false, workers: [] }), done: 412, failed: 0 }),
    ).toBe('412/≥600 done · 6 running · 0 failed  0 jobs/s');
  });

  it('drawn on stderr, cleared before any output and at the end, the streams given back', () => {
    const s = streams(true);
    const write = s.stdout.write;
    const p = new RunProgress({ json: false, ...s });
    p.start(() => ({ counts: counts(), done: 1, failed: 0 }));
    vi.advanceTimersByTime(FRAME_MS);
    expect(s.log.at(-1)).toEqual([
      'err',
      `${CLEAR}1/1000 done · 6 running · 0 failed  [░░░░░░░░░░░░░░░░░░░░]   0%  0 jobs/s  w1 2/2 w\\x1b2 1/2`,
    ]);
    s.stdout.write('job output\n');
    expect(s.log.slice(-2)).toEqual([
      ['err', CLEAR],
      ['out', 'job output\n'],
    ]);
    vi.advanceTimersByTime(FRAME_MS);
    p.stop();
    expect(s.log.at(-1)).toEqual(['err', CLEAR]);
    expect(s.stdout.write).toBe(write);
  });

  it('piped, or with --json: nothing at all', () => {
    for (const [tty, json] of [
      [false, false],
      [true, true],
    ] as const) {
      const s = streams(tty);
      const p = new RunProgress({ json, ...s });
      p.start(() => ({ counts: counts(), done: 1, failed: 0 }) satisfies RunProgressState);
      vi.advanceTimersByTime(FRAME_MS * 10);
      p.stop();
      expect(s.log).toEqual([]);
    }
  });
});
