/** Durations as `peer run --timeout` reads them (GNU parallel's: a bare number is seconds). */
import { describe, expect, it } from 'vitest';
import { durationMs } from '../../src/cli/run/duration.js';

const WEEK_MS = 7 * 86_400_000;

describe('durationMs', () => {
  it.each([
    ['90', 90_000],
    ['1.5s', 1500],
    ['500ms', 500],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['0.25', 250],
    [' 3s ', 3000],
  ])('%s is %d ms', (text, ms) => {
    expect(durationMs('--timeout', text, 1, WEEK_MS)).toBe(ms);
  });

  it.each(['', '1d', '-1', '1.s', 's', '10%', '1e3'])('%j is refused with the flag and examples', (text) => {
    expect(() => durationMs('--timeout', text, 1, WEEK_MS)).toThrow(
      /^--timeout .* is not a duration between 1ms and 168h; use e\.g\. 500ms, 2s, 1m or 1h/,
    );
  });

  it('the bounds are inclusive', () => {
    expect(durationMs('--kill-grace', '100ms', 100, 60_000)).toBe(100);
    expect(durationMs('--kill-grace', '60', 100, 60_000)).toBe(60_000);
    expect(() => durationMs('--kill-grace', '99ms', 100, 60_000)).toThrow(/between 100ms and 1m/);
  });

  it('a duration out of range names the range, without examples that may be out of it too', () => {
    expect(() => durationMs('--kill-grace', '1h', 100, 60_000)).toThrow(
      /^--kill-grace 1h is out of range: give one between 100ms and 1m$/,
    );
    expect(() => durationMs('--timeout', '0', 1, WEEK_MS)).toThrow(
      /^--timeout 0 is out of range: give one between 1ms and 168h$/,
    );
  });
});
