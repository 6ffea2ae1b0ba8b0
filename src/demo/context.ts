/**
 * What a demo scene gets: a private loopback group (127.0.0.1, TTL 0, a port of its own), a
 * scratch data dir, and helpers to start real `peer` processes and narrate what they do. The
 * narration quotes what the peers printed (names, chat lines): escaped, as all remote text.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import chalk from 'chalk';
import { ChildLines } from '../cli/child.js';
import { escapeForTerminal } from '../cli/sanitize.js';

export interface DemoScene {
  title: string;
  /** One sentence on what the scene shows. */
  about: string;
  run(ctx: DemoContext): Promise<void>;
}

export class DemoContext {
  private readonly children = new Set<ChildLines>();

  constructor(
    readonly bin: string,
    readonly port: number,
    readonly dataDir: string,
    readonly replicasDir: string,
    private readonly out: (line: string) => void,
  ) {}

  /** Flags every demo peer gets: loopback only, and a group nobody else uses. */
  get network(): string[] {
    return [
      '--interface',
      '127.0.0.1',
      '--ttl',
      '0',
      '--port',
      String(this.port),
      '--data-dir',
      this.dataDir,
    ];
  }

  /** Starts `peer <args>` as a real process; killed when the demo ends. */
  start(args: string[]): ChildLines {
    const child = spawn(process.execPath, [this.bin, ...args], {
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const lines = new ChildLines(child);
    this.children.add(lines);
    void lines.exited.then(() => this.children.delete(lines));
    return lines;
  }

  /** Runs `peer <args>` to completion. */
  async run(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; lines: ChildLines }> {
    const lines = this.start(args);
    lines.child.stdin?.end();
    const timer = setTimeout(() => lines.child.kill('SIGKILL'), timeoutMs);
    const code = await lines.exited;
    clearTimeout(timer);
    return { code, lines };
  }

  step(text: string): void {
    this.out(`  ${chalk.gray('•')} ${escapeForTerminal(text)}`);
  }

  ok(text: string): void {
    this.out(`  ${chalk.green('✓')} ${escapeForTerminal(text)}`);
  }

  note(text: string): void {
    this.out(`    ${chalk.gray(escapeForTerminal(text))}`);
  }

  replicaFile(name: string): string {
    return path.join(this.replicasDir, `${name}.txt`);
  }

  async stopAll(): Promise<void> {
    const all = [...this.children];
    for (const c of all) c.child.kill('SIGTERM');
    await Promise.all(all.map((c) => Promise.race([c.exited, new Promise((r) => setTimeout(r, 3000))])));
    for (const c of this.children) c.child.kill('SIGKILL');
  }
}

export function seconds(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}
