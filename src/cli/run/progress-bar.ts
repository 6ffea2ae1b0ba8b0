/**
 * `peer run`'s progress line, on stderr, only when stdout and stderr are terminals and not with
 * --json (piped, the output is exactly the jobs' own):
 *
 *   412/1000 done · 6 running · 3 failed  [████████░░░░░░░░░░░░]  41%  83 jobs/s  ETA 7s  w1 2/2 w2 2/2
 *
 * `412/≥600` while the input is still being read. The rate is an exponentially weighted average
 * over RATE_WINDOW_MS, so a burst neither promises nor spoils the ETA for long. Redrawn at most
 * PROGRESS_REDRAWS_PER_S times a second; cleared before any other write to stdout or stderr (a
 * job's output) and drawn again below it, as the wait line of progress.ts.
 */
import { interposeWrites, type Interposed, type ProgressStream } from '../progress.js';
import { escapeForTerminal } from '../sanitize.js';
import type { RunCounts } from '../../p2p/jobs/types.js';

export const PROGRESS_REDRAWS_PER_S = 8;
/** The rate's time constant: about the last 5 s of jobs weigh in the rate and the ETA. */
export const RATE_WINDOW_MS = 5_000;
const BAR_CHARS = 20;
const CLEAR_LINE = '\r\x1b[2K';
/** Width when the terminal does not say (a line wider than the terminal would wrap and not clear). */
const COLUMNS_DEFAULT = 80;

/** What the line shows, read at each frame. */
export interface RunProgressState {
  counts: RunCounts;
  /** Jobs whose result came, and those of them that failed (the sink's counts). */
  done: number;
  failed: number;
  /**
   * False when the jobs running now are not known here (--attach: the keeper tells done and
   * failed only): the line then leaves them out rather than saying 0.
   */
  runningKnown?: boolean;
}

export interface RunProgressOptions {
  json: boolean;
  stdout?: ProgressStream & { columns?: number };
  stderr?: ProgressStream & { columns?: number };
  now?: () => number;
}

export class RunProgress {
  private readonly out: ProgressStream;
  private readonly err: ProgressStream & { columns?: number };
  private readonly enabled: boolean;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private interposed: Interposed | null = null;
  private shown = false;
  private rate = 0;
  private last: { at: number; done: number } | null = null;

  constructor(opts: RunProgressOptions) {
    this.out = opts.stdout ?? process.stdout;
    this.err = opts.stderr ?? process.stderr;
    this.now = opts.now ?? Date.now;
    this.enabled = !opts.json && this.out.isTTY === true && this.err.isTTY === true;
  }

  /** Draws the line from `state` until stop(). */
  start(state: () => RunProgressState): void {
    if (!this.enabled || this.timer) return;
    this.interposed = interposeWrites([this.out, this.err], () => this.clear());
    this.timer = setInterval(() => this.draw(state()), 1000 / PROGRESS_REDRAWS_PER_S);
    this.timer.unref();
  }

  /** Clears the line and gives the streams back. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.clear();
    this.interposed?.restore();
    this.interposed = null;
  }

  /** The line for `s`; each call folds `s.done` into the rate. */
  line(s: RunProgressState): string {
    const c = s.counts;
    const total = c.inputEnded ? c.fed : null;
    this.sample(s.done);
    const running = s.runningKnown === false ? '' : ` · ${c.running} running`;
    const head = `${s.done}/${total ?? `≥${c.fed}`} done${running} · ${s.failed} failed`;
    const parts = [head];
    if (total !== null) {
      const f = total === 0 ? 1 : Math.min(1, s.done / total);
      const filled = Math.round(f * BAR_CHARS);
      parts.push(
        `[${'█'.repeat(filled)}${'░'.repeat(BAR_CHARS - filled)}] ${String(Math.floor(f * 100)).padStart(3)}%`,
      );
    }
    parts.push(`${Math.round(this.rate)} jobs/s`);
    if (total !== null && this.rate > 0) parts.push(`ETA ${eta((total - s.done) / this.rate)}`);
    const workers = c.workers.map((w) => `${escapeForTerminal(w.name)} ${w.running}/${w.slots}`).join(' ');
    if (workers) parts.push(workers);
    const text = parts.join('  ');
    const width = (this.err.columns ?? COLUMNS_DEFAULT) - 1;
    return [...text].length > width ? [...text].slice(0, width).join('') : text;
  }

  private draw(s: RunProgressState): void {
    this.interposed?.write(this.err, `${CLEAR_LINE}${this.line(s)}`);
    this.shown = true;
  }

  private clear(): void {
    if (!this.shown) return;
    this.shown = false;
    this.interposed?.write(this.err, CLEAR_LINE);
  }

  /** Folds jobs done since the last frame into the rate (an average over RATE_WINDOW_MS). */
  private sample(done: number): void {
    const at = this.now();
    if (this.last === null) {
      this.last = { at, done };
      return;
    }
    const dt = at - this.last.at;
    if (dt <= 0) return;
    const instant = ((done - this.last.done) * 1000) / dt;
    const weight = 1 - Math.exp(-dt / RATE_WINDOW_MS);
    this.rate = this.rate === 0 ? instant : this.rate + weight * (instant - this.rate);
    this.last = { at, done };
  }
}

/** 7s, 3m05s, 2h10m. */
function eta(seconds: number): string {
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
