/**
 * The bench runner: `npm run bench` runs every module, `npm run bench -- membership` a subset.
 * It rewrites BENCHMARKS.md: a header with this machine and the date, then one section per
 * module. Sections of modules not run this time are kept from the existing file, each with the
 * date it was measured, so one module can be re-measured without re-running the others.
 *
 * To add a module: write bench/<topic>.ts exporting `bench: BenchModule`, add one line to MODULES.
 */
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { progress, runCleanups, type BenchModule, type Section, type Table } from './lib.js';
import { ROOT } from '../test/support/proc.js';

const MODULES: Record<string, () => Promise<BenchModule>> = {
  membership: async () => (await import('./membership.js')).bench,
  'token-ring': async () => (await import('./token-ring.js')).bench,
  chat: async () => (await import('./chat.js')).bench,
  election: async () => (await import('./election.js')).bench,
  replication: async () => (await import('./replication.js')).bench,
  security: async () => (await import('./security.js')).bench,
  tasks: async () => (await import('./tasks.js')).bench,
  kv: async () => (await import('./kv.js')).bench,
  recovery: async () => (await import('./recovery.js')).bench,
  files: async () => (await import('./files.js')).bench,
  jobs: async () => (await import('./jobs.js')).bench,
  events: async () => (await import('./events.js')).bench,
  routed: async () => (await import('./routed.js')).bench,
  scale: async () => (await import('./scale.js')).bench,
};

const OUT = path.join(ROOT, 'BENCHMARKS.md');

function machine(): string {
  const cpuinfo = safeRead('/proc/cpuinfo');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown CPU';
  const cores = os.availableParallelism();
  const memGiB = (os.totalmem() / 2 ** 30).toFixed(1);
  const kernel = `${os.type()} ${os.release()}`;
  return `${model}, ${cores} cores, ${memGiB} GiB RAM, ${kernel}, Node ${process.version}`;
}

function safeRead(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function renderTable(t: Table): string {
  const esc = (c: string | number) => String(c).replace(/\|/g, '\\|');
  const lines = [
    `| ${t.headers.map(esc).join(' | ')} |`,
    `|${t.headers.map(() => '---').join('|')}|`,
    ...t.rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ];
  return (t.caption ? `${t.caption}\n\n` : '') + lines.join('\n');
}

const begin = (name: string, date: string) => `<!-- bench:${name} measured ${date} -->`;
const end = (name: string) => `<!-- /bench:${name} -->`;

function renderSection(name: string, s: Section, date: string): string {
  const parts = [begin(name, date), `## ${s.title}`, `_Measured ${date} on ${machine()}._`];
  if (s.summary) parts.push(s.summary);
  for (const t of s.tables) parts.push(renderTable(t));
  parts.push(`**How it was measured.** ${s.method}`);
  if (s.notes?.length) parts.push(s.notes.map((n) => `- ${n}`).join('\n'));
  parts.push(end(name));
  return parts.join('\n\n');
}

/** The sections already in BENCHMARKS.md, by module name, verbatim with their markers. */
function previousSections(): Map<string, string> {
  const text = safeRead(OUT);
  const found = new Map<string, string>();
  const re = /<!-- bench:([\w-]+) measured [^>]*-->[\s\S]*?<!-- \/bench:\1 -->/g;
  for (const m of text.matchAll(re)) found.set(m[1]!, m[0]);
  return found;
}

/** Whether `command` is on the PATH. */
function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

let aptUpdated = false;
/** Debian's switch for starting services from package scripts: exit 101 forbids it. */
const POLICY_RC_D = '/usr/sbin/policy-rc.d';

/**
 * Installs the Debian packages of the anchors a module compares against, as the bench's own setup
 * (a fresh machine has none of them). One that cannot be installed (no registry reachable, e.g. in
 * a network namespace of its own) is left to the module, which reports it as not measured.
 */
function installAnchors(mod: BenchModule): void {
  const missing = (mod.anchors ?? []).filter((a) => !onPath(a.command));
  if (missing.length === 0) return;
  const packages = missing.map((a) => a.debianPackage);
  progress(`${mod.name}: installing ${packages.join(', ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!aptUpdated)
    aptUpdated = spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env }).status === 0;
  // Debian starts some servers on install (sshd, redis, etcd) on this machine's real interfaces; a
  // bench starts its own, inside namespaces. policy-rc.d (Debian's switch) forbids that while we
  // install; one already there is left as it is.
  const ours = !fs.existsSync(POLICY_RC_D);
  if (ours) fs.writeFileSync(POLICY_RC_D, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    const r = spawnSync('apt-get', ['install', '-y', '-qq', ...packages], { stdio: 'ignore', env });
    if (r.status !== 0)
      progress(`${mod.name}: could not install ${packages.join(', ')} (apt-get exit ${r.status})`);
  } finally {
    if (ours) fs.rmSync(POLICY_RC_D, { force: true });
  }
}

async function runModule(name: string): Promise<Section> {
  const mod = await MODULES[name]!();
  installAnchors(mod);
  progress(`module ${name}: start (budget ${Math.round(mod.budgetMs / 1000)} s)`);
  let timer: NodeJS.Timeout | undefined;
  const overrun = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`module ${name} overran its budget of ${mod.budgetMs} ms`)),
      mod.budgetMs,
    );
  });
  try {
    return await Promise.race([mod.run(), overrun]);
  } finally {
    clearTimeout(timer);
    runCleanups();
  }
}

async function main(): Promise<number> {
  const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const unknown = asked.filter((a) => !(a in MODULES));
  if (unknown.length) {
    console.error(
      `unknown bench module(s): ${unknown.join(', ')}; known: ${Object.keys(MODULES).join(', ')}`,
    );
    return 2;
  }
  const names = asked.length ? asked : Object.keys(MODULES);
  const fresh = new Map<string, string>();
  let failed = 0;
  for (const name of names) {
    const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    try {
      const section = await runModule(name);
      fresh.set(name, renderSection(name, section, date));
      progress(`module ${name}: done`);
    } catch (err) {
      failed++;
      progress(`module ${name}: FAILED: ${(err as Error).stack ?? String(err)}`);
    }
    // Write after every module so a later failure does not lose an earlier result.
    write(fresh);
  }
  progress(`wrote ${path.relative(process.cwd(), OUT)}`);
  return failed ? 1 : 0;
}

function write(fresh: Map<string, string>): void {
  // Read again now, not at start: another bench run may have written its section meanwhile.
  const previous = previousSections();
  // Registry order first, then any old section whose module is no longer registered (kept, not lost).
  const order = [...Object.keys(MODULES), ...[...previous.keys()].filter((k) => !(k in MODULES))];
  const blocks = order.map((n) => fresh.get(n) ?? previous.get(n)).filter((b): b is string => !!b);
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const header = [
    '# Benchmarks',
    `Written by \`npm run bench\` (bench/run.ts) on ${date}. Machine: ${machine()}.`,
    'Each section carries the date it was last measured; `npm run bench -- <module>` re-measures one ' +
      'module and keeps the others. Numbers are from one run on a shared 2-core machine, not tuned.',
  ].join('\n\n');
  fs.writeFileSync(OUT, `${header}\n\n${blocks.join('\n\n')}\n`);
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    progress(`${sig}: tearing down`);
    runCleanups();
    process.exit(130);
  });
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error((err as Error).message);
    runCleanups();
    process.exit(1);
  },
);
