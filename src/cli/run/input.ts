/**
 * What `peer run` runs: one job per input line (`--input FILE`, `-` for stdin, or stdin itself
 * when it is not a terminal and the command has `{}`), or one job without input; with `--on`, each
 * of those once on every named worker (pdsh, clush), pinned there. Lines are read as the run has
 * room for them (RunHandle.room()), so a million-line input never sits in memory: only the
 * protocol's window of jobs does. A line is what comes before a newline, as GNU parallel reads
 * it: an empty line is a job with an empty input, a last line without a newline is a job too.
 */
import fs from 'node:fs';
import type { PeerId } from '../../p2p/wire.js';
import { JOB_INPUT_BYTES_MAX } from '../../p2p/jobs/limits.js';
import type { JobInput, WorkerAdvert } from '../../p2p/jobs/types.js';
import { UsageError } from '../network.js';

/** One job's input line at most: the protocol's bound on a job's input (the worker checks it again). */
export const INPUT_LINE_BYTES_MAX = JOB_INPUT_BYTES_MAX;
/** Workers named in the error line of an unknown `--on` name. */
const NAMES_SHOWN_MAX = 20;
const NEWLINE = 0x0a;

/** Lines of a stream, read as they are asked for: only what is asked for is read, plus one chunk. */
export class LineReader {
  private readonly chunks: AsyncIterator<Buffer | string>;
  private buffer = Buffer.alloc(0);
  private ended = false;
  private line = 0;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(
    stream: NodeJS.ReadableStream,
    /** How errors name the input: "--input jobs.txt", "stdin". */
    private readonly label: string,
  ) {
    this.chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  }

  /** The next line, or null at the end of the input. */
  async next(): Promise<string | null> {
    for (;;) {
      const at = this.buffer.indexOf(NEWLINE);
      if (at >= 0) {
        const bytes = this.buffer.subarray(0, at);
        this.buffer = this.buffer.subarray(at + 1);
        return this.checked(bytes);
      }
      if (this.buffer.length > INPUT_LINE_BYTES_MAX) return this.checked(this.buffer);
      if (this.ended) {
        if (this.buffer.length === 0) return null;
        const last = this.buffer;
        this.buffer = Buffer.alloc(0);
        return this.checked(last);
      }
      await this.read();
    }
  }

  private async read(): Promise<void> {
    let r: IteratorResult<Buffer | string>;
    try {
      r = await this.chunks.next();
    } catch (err) {
      throw new UsageError(
        `${this.label}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
    }
    if (r.done) this.ended = true;
    else
      this.buffer = Buffer.concat([
        this.buffer,
        typeof r.value === 'string' ? Buffer.from(r.value) : r.value,
      ]);
  }

  private checked(bytes: Buffer): string {
    const n = ++this.line;
    const where = `line ${n} of ${this.label}`;
    if (bytes.length > INPUT_LINE_BYTES_MAX)
      throw new UsageError(`${where} is over ${INPUT_LINE_BYTES_MAX} bytes, a job's input at most; split it`);
    if (bytes.includes(0)) throw new UsageError(`${where} holds a NUL byte, which a command cannot take`);
    try {
      return this.decoder.decode(bytes);
    } catch {
      throw new UsageError(`${where} is not UTF-8 text; convert it (iconv) first`);
    }
  }
}

/**
 * Where the lines come from: `--input FILE` or `-`; else stdin when it is not a terminal and the
 * command has `{}` (it is then a filter: `ls | peer run -- gzip {}`); else none (one job).
 */
export function inputLines(
  input: string | undefined,
  words: string[],
  stdin: NodeJS.ReadStream,
): LineReader | null {
  if (input === '-') return new LineReader(stdin, 'stdin');
  if (input !== undefined) {
    let fd: number;
    try {
      fd = fs.openSync(input, 'r');
    } catch (err) {
      throw new UsageError(
        `--input ${input}: cannot open it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check the path`,
      );
    }
    return new LineReader(fs.createReadStream('', { fd }), `--input ${input}`);
  }
  if (!stdin.isTTY && words.some((w) => w.includes('{}'))) return new LineReader(stdin, 'stdin');
  return null;
}

/** `--on`: every worker, or these names. */
export type OnTarget = { all: true } | { names: string[] };

export function parseOn(text: string): OnTarget {
  if (text === 'all') return { all: true };
  const names = text.split(',').map((n) => n.trim());
  if (names.some((n) => n === ''))
    throw new UsageError(`--on ${text}: give 'all' or worker names separated by commas, like --on w1,w2`);
  return { names };
}

/** The workers `--on` names, among those that run commands; one line listing them otherwise. */
export function resolveOn(on: OnTarget, workers: WorkerAdvert[]): PeerId[] {
  const exec = workers.filter((w) => w.allowExec);
  if ('all' in on) return exec.map((w) => w.id);
  const known = () => {
    const names = exec.map((w) => w.name).sort();
    const shown = names.slice(0, NAMES_SHOWN_MAX).join(', ');
    return names.length === 0
      ? 'no worker that runs commands answered'
      : `workers that run commands: ${shown}${names.length > NAMES_SHOWN_MAX ? ', ...' : ''}`;
  };
  const seen = new Set<string>();
  return on.names.map((name) => {
    if (seen.has(name)) throw new UsageError(`--on names ${name} twice; name each worker once`);
    seen.add(name);
    const matches = exec.filter((w) => w.name === name);
    if (matches.length === 0) throw new UsageError(`--on: no worker named ${name} (${known()})`);
    if (matches.length > 1)
      throw new UsageError(
        `--on: ${matches.length} workers are named ${name}; give each worker its own --name`,
      );
    return matches[0]!.id;
  });
}

/**
 * The run's jobs in order, made as they are asked for: per line (or the one job without input),
 * one job per pinned worker or one for any worker. Lines whose Seq the joblog says are done
 * (--resume) are skipped, and counted.
 */
export class JobFeed {
  /** Lines (or the one job) skipped because the joblog had them. */
  skipped = 0;
  /** --on: the workers each line runs on (set once they are known, before the first take). */
  pins: PeerId[] | null = null;
  private seq = 0;
  private job = 0;
  private done = false;
  /** A line read ahead by empty(). */
  private peeked: { seq: number; input: string | null } | null = null;
  /** Jobs of a line made but not yet taken (several with --on). */
  private pending: JobInput[] = [];

  constructor(
    private readonly lines: LineReader | null,
    private readonly skip: ReadonlySet<number>,
  ) {}

  /** Whether there is no job at all (an empty input, or every line in the joblog already). */
  async empty(): Promise<boolean> {
    if (this.pending.length > 0 || this.peeked) return false;
    this.peeked = await this.nextLine();
    return this.peeked === null;
  }

  /** Up to `n` more jobs, and whether that was the last of them. */
  async take(n: number): Promise<{ jobs: JobInput[]; ended: boolean }> {
    const jobs: JobInput[] = [];
    while (jobs.length < n) {
      if (this.pending.length === 0) {
        const line = this.peeked ?? (await this.nextLine());
        this.peeked = null;
        if (line === null) break;
        this.pending = (this.pins ?? [null]).map((pin) => ({ job: ++this.job, ...line, pin }));
      }
      jobs.push(...this.pending.splice(0, n - jobs.length));
    }
    return { jobs, ended: this.done && this.pending.length === 0 && this.peeked === null };
  }

  /** The next line whose Seq is not skipped, or null at the end. */
  private async nextLine(): Promise<{ seq: number; input: string | null } | null> {
    for (;;) {
      if (this.done) return null;
      let input: string | null = null;
      if (this.lines) {
        input = await this.lines.next();
        if (input === null) {
          this.done = true;
          return null;
        }
      } else if (this.seq === 1) {
        this.done = true;
        return null;
      }
      const seq = ++this.seq;
      if (this.skip.has(seq)) {
        this.skipped++;
        continue;
      }
      return { seq, input };
    }
  }
}
