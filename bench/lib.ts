/**
 * What every bench module shares: the Section it returns, percentiles, progress lines, and
 * cleanup hooks the runner calls if a module overruns its time budget or the run is interrupted
 * (so namespaces and processes never outlive the bench).
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { procTable } from '../src/cli/udp-drops.js';

export interface Table {
  /** A line above the table, e.g. what it measures. */
  caption?: string;
  headers: string[];
  rows: Array<Array<string | number>>;
}

/** One module's block in BENCHMARKS.md. */
export interface Section {
  title: string;
  /** Markdown above the tables: the verdict against the targets, in plain words. */
  summary?: string;
  tables: Table[];
  /** How it was measured: what was started, what was timed from what to what. */
  method: string;
  /** Anything that could not be measured here and why, surprises, caveats. */
  notes?: string[];
}

export interface BenchModule {
  name: string;
  /** Hard upper bound on the module's run time; the runner aborts it (and cleans up) after that. */
  budgetMs: number;
  /** Commands the module compares against, with the Debian package of each; the runner installs what is missing. */
  anchors?: Array<{ command: string; debianPackage: string }>;
  run(): Promise<Section>;
}

const started = Date.now();

/** A progress line on stderr (stdout stays free for the final summary). */
export function progress(msg: string): void {
  const s = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${s}s] ${msg}\n`);
}

const cleanups = new Set<() => void>();

/** Registers a synchronous teardown; returns a function that unregisters it. */
export function onCleanup(fn: () => void): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** Runs every registered teardown once (used by the runner on timeout or signal). */
export function runCleanups(): void {
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    try {
      fn();
    } catch (err) {
      progress(`cleanup failed: ${(err as Error).message}`);
    }
  }
}

/** Nearest-rank percentile (p in 0..100) of values; NaN when empty. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function summarize(values: number[]): {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  min: number;
} {
  return {
    n: values.length,
    min: values.length ? Math.min(...values) : NaN,
    p50: percentile(values, 50),
    p95: percentile(values, 95),
    p99: percentile(values, 99),
    max: values.length ? Math.max(...values) : NaN,
  };
}

/** Milliseconds as a table cell. */
export function ms(v: number): string {
  return Number.isFinite(v) ? `${Math.round(v)} ms` : 'n/a';
}

/** An integer from an environment variable, or the default; a bad value is a one-line error. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `pred` every `everyMs` until it holds; rejects after `timeoutMs`. */
export async function waitFor(
  pred: () => boolean,
  timeoutMs: number,
  what: string,
  everyMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}

/** A child's stdout and stderr as lines, each stamped with when this process read it. */
export class TimedLines {
  readonly lines: Array<{ at: number; text: string }> = [];
  readonly exited: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    for (const stream of [child.stdout, child.stderr]) {
      let buf = '';
      stream?.setEncoding('utf8').on('data', (d: string) => {
        const at = Date.now();
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          this.lines.push({ at, text: buf.slice(0, i) });
          buf = buf.slice(i + 1);
        }
      });
    }
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }
  /** The first line after index `from` that contains `needle`. */
  find(needle: string, from: number): { at: number; text: string } | undefined {
    for (let i = from; i < this.lines.length; i++)
      if (this.lines[i]!.text.includes(needle)) return this.lines[i];
    return undefined;
  }
}

/** One table (`prefix`: "Udp:", "IpExt:") of /proc/net/snmp or /proc/net/netstat inside namespace `ns`. */
export function nsProcTable(
  ns: string,
  file: '/proc/net/snmp' | '/proc/net/netstat',
  prefix: string,
): Record<string, number> {
  return procTable(execFileSync('ip', ['netns', 'exec', ns, 'cat', file], { encoding: 'utf8' }), prefix);
}
