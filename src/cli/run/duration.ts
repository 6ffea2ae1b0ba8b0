/**
 * Durations on the command line, as GNU parallel reads `--timeout`: a bare number is seconds
 * (`90`, `0.5`), or a number with a unit: `500ms`, `1.5s`, `5m`, `2h`. parallel's `%` (a share
 * of the median runtime) is not supported: a run has no median before its jobs end.
 */
import { UsageError } from '../network.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;

/** `ms` as the shortest of 24h, 5m, 2s, 500ms that is exact (for the error line). */
function shown(ms: number): string {
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const)
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/**
 * `text` in whole milliseconds, between `minMs` and `maxMs`; otherwise a UsageError that names
 * `flag`, the range, and examples.
 */
export function durationMs(flag: string, text: string, minMs: number, maxMs: number): number {
  const m = DURATION_RE.exec(text.trim());
  const ms = m ? Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 's']!) : NaN;
  const range = `between ${shown(minMs)} and ${shown(maxMs)}`;
  if (!Number.isFinite(ms))
    throw new UsageError(
      `${flag} ${text} is not a duration ${range}; use e.g. 500ms, 2s, 1m or 1h (a bare number is seconds)`,
    );
  // A duration, out of range: examples that may be out of range too would mislead.
  if (ms < minMs || ms > maxMs) throw new UsageError(`${flag} ${text} is out of range: give one ${range}`);
  return ms;
}
