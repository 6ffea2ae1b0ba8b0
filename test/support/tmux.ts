/**
 * Drives a real terminal for the interactive commands' tests: a private tmux server (its own
 * socket name, so the tests never touch a user's tmux) with one session per test, and a wait on
 * the pane's text with a deadline.
 */
import { execFileSync } from 'node:child_process';
import { ROOT } from './proc.js';

export class Tmux {
  private readonly server: string;

  constructor(
    label: string,
    readonly session: string,
  ) {
    this.server = `peer-${label}-test-${process.pid}`;
  }

  run(...args: string[]): string {
    return execFileSync('tmux', ['-L', this.server, ...args], { encoding: 'utf8' });
  }

  /** Starts `cmd` under sh in a new detached session of `columns`x`rows`, in the repository. */
  start(cmd: string, columns = 120, rows = 30): void {
    this.run(
      'new-session',
      '-d',
      '-s',
      this.session,
      '-x',
      String(columns),
      '-y',
      String(rows),
      '-c',
      ROOT,
      'sh',
      '-c',
      cmd,
    );
  }

  /** Keys as tmux names them ('Enter', 'C-c', 'q'); `-l` first sends the rest literally. */
  keys(...keys: string[]): void {
    this.run('send-keys', '-t', this.session, ...keys);
  }

  pane(): string {
    return this.run('capture-pane', '-p', '-t', this.session);
  }

  /** The pane with its scrollback: a resize may push the shell's first lines into history. */
  paneAndHistory(): string {
    return this.run('capture-pane', '-p', '-S', '-100', '-t', this.session);
  }

  display(format: string): string {
    return this.run('display-message', '-p', '-t', this.session, format).trim();
  }

  alternateOn(): boolean {
    return this.display('#{alternate_on}') === '1';
  }

  async until(what: string, pred: () => boolean, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; pane:\n${this.pane()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  killSession(): void {
    try {
      this.run('kill-session', '-t', this.session);
    } catch {
      /* already gone */
    }
  }

  killServer(): void {
    try {
      this.run('kill-server');
    } catch {
      /* no server left */
    }
  }
}
