/**
 * What a command is waiting for, on a terminal: once a wait has lasted PROGRESS_AFTER_MS, one
 * status line on stderr (a spinner, what is awaited, the seconds waited), replaced as the wait
 * changes and cleared when it ends. Nothing at all when stdout or stderr is not a terminal (piped,
 * a script, a test) or with --json: the output is then exactly what the command prints.
 *
 * While the line is up, anything else written to stdout or stderr (a result, a warning) clears it
 * first and the next frame draws it again below, so a line of output never lands after the
 * spinner's text. Its timer is unref'd: a wait shown never keeps a process alive.
 */
import { escapeForTerminal } from './sanitize.js';

/** A wait shorter than this shows nothing (most answers on a LAN come in milliseconds). */
export const PROGRESS_AFTER_MS = 1_000;
/** Redraw period of the status line (the spinner's speed and the seconds counter). */
export const PROGRESS_FRAME_MS = 120;

const SPINNER = '|/-\\';
/** Back to column 0 and erase the line. */
const CLEAR_LINE = '\r\x1b[2K';
/** Width when the terminal does not say: a line wider than the terminal wraps, and is not cleared. */
const COLUMNS_DEFAULT = 80;

/** The part of a stream the progress line uses (process.stdout and process.stderr are ones). */
export interface ProgressStream {
  isTTY?: boolean;
  /** The terminal's width, where it says (a TTY stream does). */
  columns?: number;
  write(chunk: string | Uint8Array, ...rest: never[]): boolean;
}

export interface ProgressOptions {
  /** --json: never show anything. */
  json?: boolean;
  /** Show the line after this long (default PROGRESS_AFTER_MS; 0 for work known to be long: a file transfer). */
  afterMs?: number;
  /** For tests: the streams (default: process.stdout and process.stderr). */
  stdout?: ProgressStream;
  stderr?: ProgressStream;
}

export class Progress {
  private text = '';
  private shown = false;
  private readonly started = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private readonly out: ProgressStream;
  private readonly err: ProgressStream;
  private readonly enabled: boolean;
  private readonly afterMs: number;
  /** Our stand-ins for the streams' writes (only while shown). */
  private interposed: Interposed | null = null;

  constructor(opts: ProgressOptions = {}) {
    this.out = opts.stdout ?? process.stdout;
    this.err = opts.stderr ?? process.stderr;
    this.enabled = !opts.json && this.out.isTTY === true && this.err.isTTY === true;
    this.afterMs = opts.afterMs ?? PROGRESS_AFTER_MS;
  }

  /** Says what the command waits for now (text may name remote peers: it is escaped). */
  update(text: string): void {
    if (!this.enabled) return;
    this.text = text;
    if (this.timer) return;
    this.timer = setInterval(() => this.draw(), PROGRESS_FRAME_MS);
    this.timer.unref();
  }

  /** The wait is over: the line is cleared and the streams are left as they were. */
  done(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.clear();
    this.interposed?.restore();
    this.interposed = null;
  }

  private draw(): void {
    const waited = Date.now() - this.started;
    if (waited < this.afterMs) return;
    this.interposed ??= interposeWrites([this.out, this.err], () => this.clear());
    const spin = SPINNER[Math.floor(waited / PROGRESS_FRAME_MS) % SPINNER.length]!;
    const seconds = ` (${Math.floor(waited / 1000)} s)`;
    // Within the terminal's width: a wrapped line would leave its first row behind when cleared.
    const room = (this.err.columns ?? COLUMNS_DEFAULT) - 1 - spin.length - 1 - seconds.length;
    const text = [...escapeForTerminal(this.text)];
    const fitted = text.length > room ? `${text.slice(0, Math.max(0, room - 1)).join('')}…` : text.join('');
    const line = `${spin} ${fitted}${seconds}`;
    this.write(`${CLEAR_LINE}${line}`);
    this.shown = true;
  }

  private clear(): void {
    if (!this.shown) return;
    this.shown = false;
    this.write(CLEAR_LINE);
  }

  /** Writes to stderr past our own stand-in. */
  private write(s: string): void {
    if (this.interposed) this.interposed.write(this.err, s);
    else this.err.write(s);
  }
}

/** Stand-ins for streams' writes, and the streams' own writes behind them. */
export interface Interposed {
  /** Writes past the stand-in (the status line itself). */
  write(stream: ProgressStream, s: string): void;
  /** Puts the streams' own writes back. */
  restore(): void;
}

/**
 * Has every write to `streams` call `before` first: a status line clears itself so that a line of
 * output never lands after its text (the next frame draws it again below).
 */
export function interposeWrites(streams: ProgressStream[], before: () => void): Interposed {
  const originals = new Map<ProgressStream, ProgressStream['write']>();
  for (const stream of new Set(streams)) {
    const write = stream.write;
    originals.set(stream, write);
    stream.write = (chunk, ...rest) => {
      before();
      return write.call(stream, chunk, ...rest);
    };
  }
  return {
    write: (stream, s) => void (originals.get(stream) ?? stream.write).call(stream, s),
    restore: () => {
      for (const [stream, write] of originals) stream.write = write;
    },
  };
}

/** `work`, with `text` shown as what the command waits for until it settles (see Progress). */
export async function showingWait<T>(text: string, work: Promise<T>, opts: ProgressOptions = {}): Promise<T> {
  const progress = new Progress(opts);
  progress.update(text);
  try {
    return await work;
  } finally {
    progress.done();
  }
}
