/**
 * Running the built CLI as real processes and waiting on what they print. Waits are on
 * conditions with deadlines, never fixed sleeps.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { ChildLines } from '../../src/cli/child.js';

import { procStat } from '../../src/cli/run/process-group.js';
export { ChildLines as Lines, loggedState } from '../../src/cli/child.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'bin/run.js');

/** Whether a started process is still running (neither exited nor killed by a signal). */
export const alive = (p: ChildLines): boolean => p.child.exitCode === null && p.child.signalCode === null;

export function tempDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `peer-${label}-`));
}

/** A fresh group key file (as `peer keygen` writes one: 32 random bytes in base64, mode 0600) in `dir`. */
export function groupKeyFile(dir: string): string {
  const file = path.join(dir, 'group.key');
  fs.writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  return file;
}

/**
 * Flags that keep a CLI peer on this host: loopback, TTL 0, a group port and a data dir of its
 * own. `local` picks the slower failure detection, for tests whose peers share a loaded machine.
 */
export function loopbackFlags(port: number, dataDir: string, profile?: 'local'): string[] {
  const flags = ['--interface', '127.0.0.1', '--ttl', '0', '--port', String(port), '--data-dir', dataDir];
  return profile ? [...flags, '--profile', profile] : flags;
}

/** A port unlikely to collide with another test file running in parallel. */
export function testPort(): number {
  return 40000 + Math.floor(Math.random() * 20000);
}

/** Runs the CLI to completion and returns its exit code and output. */
export function runCli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number; cwd?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, NO_COLOR: '1', ...opts.env },
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `peer ${args.join(' ')} did not finish in ${opts.timeoutMs ?? 20_000} ms; stderr: ${stderr}`,
        ),
      );
    }, opts.timeoutMs ?? 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Starts the CLI as a long-running process on loopback. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): ChildLines {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return new ChildLines(child);
}

/**
 * Pids of the live (not zombie) processes on this host, in any namespace, whose command line (its
 * arguments joined by spaces) matches `re`; this process left out.
 */
export function processesMatching(re: RegExp): number[] {
  const found: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'latin1').split('\0').filter(Boolean).join(' ');
      if (re.test(cmd) && procStat(Number(name))?.state !== 'Z') found.push(Number(name));
    } catch {
      // Gone between the listing and the read.
    }
  }
  return found;
}

/** The running `sleep <m>` processes (m a marker made of digits and a dot). */
export const sleepsOf = (m: string): number[] =>
  processesMatching(new RegExp(`^sleep ${m.replace('.', '\\.')}$`));
