/**
 * A child process whose stdout is read as lines (and JSON objects), with waits on conditions
 * with deadlines. Used by `peer demo` to narrate real peers, and by the tests and benches.
 */
import fs from 'node:fs';
import type { ChildProcess } from 'node:child_process';

export class ChildLines {
  readonly lines: string[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<number | null>;
  private waiters: Array<() => void> = [];
  private parsed: Array<Record<string, unknown>> = [];
  private parsedUpTo = 0;

  constructor(readonly child: ChildProcess) {
    let buf = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        this.lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      this.wake();
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => this.stderr.push(d));
    this.exited = new Promise((resolve) =>
      child.on('exit', (code) => {
        this.wake();
        resolve(code);
      }),
    );
  }

  /** The JSON objects printed so far (other lines are skipped). */
  json(): Array<Record<string, unknown>> {
    for (; this.parsedUpTo < this.lines.length; this.parsedUpTo++) {
      const l = this.lines[this.parsedUpTo]!;
      if (!l.startsWith('{')) continue;
      try {
        this.parsed.push(JSON.parse(l));
      } catch {
        /* not JSON after all */
      }
    }
    return this.parsed;
  }

  /** Resolves once `pred` holds over the output so far; rejects after `timeoutMs`. */
  async until(pred: (l: this) => boolean, timeoutMs: number, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what}; last output:\n${this.lines.slice(-10).join('\n')}\n${this.stderr.join('').slice(-1000)}`,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** The membership state a `peer up --log-format json` process last logged for `name`. */
export function loggedState(peer: ChildLines, name: string): string | undefined {
  let state: string | undefined;
  for (const e of peer.json()) {
    if (e.name !== name) continue;
    if (e.event === 'join' || e.event === 'alive' || e.event === 'restart') state = 'alive';
    else if (e.event === 'suspect' || e.event === 'dead' || e.event === 'left') state = e.event as string;
  }
  return state;
}

/** When `peer` logged `event` about `name` (ms since the epoch), if it did. */
export function loggedAt(peer: ChildLines, name: string, event: string): number | undefined {
  const e = peer.json().find((x) => x.name === name && x.event === event);
  return e ? Date.parse(e.at as string) : undefined;
}

/**
 * The pids below `pid` (the command a peer runs under --exec), read from /proc while the peer
 * still lives, so a crash of the whole host can be simulated by killing them too.
 */
export function descendants(pid: number): number[] {
  let kids: number[];
  try {
    kids = fs
      .readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .split(' ')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
  return kids.flatMap((k) => [k, ...descendants(k)]);
}
