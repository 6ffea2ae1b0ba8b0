/**
 * `peer run` through the built CLI on loopback (inside a private network namespace, as CI runs
 * test/cli), against real `peer worker --allow-exec` processes of a keyed group: input lines,
 * GNU parallel's exit status, --json exact, the joblog and --resume, --on all with --tag, Ctrl-C
 * killing every job's process group (TERM-ignoring ones too), and the refusals, each one line
 * with exit 255.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BIN,
  loopbackFlags,
  processesMatching,
  runCli,
  startCli,
  tempDir,
  testPort,
  type Lines,
  groupKeyFile,
} from '../support/proc.js';
import { execFileSync, spawn } from 'node:child_process';
import { JOBLOG_HEADER, readJoblog } from '../../src/cli/run/joblog.js';

const keyFile = groupKeyFile(tempDir('run-key'));
const running: Lines[] = [];

/** A keyed group of its own on loopback: its flags, and workers started in it. */
function group() {
  const port = testPort();
  const net = (dir: string) => [...loopbackFlags(port, dir), '--key-file', keyFile];
  return {
    net,
    /**
     * `peer run` flags: a data dir of its own (it keeps nothing); unless `args` says, workers waited
     * for up to 5 s (the first one ends the wait; --on all waits it whole: give it 1s).
     */
    run: (...args: string[]) => [
      'run',
      ...net(tempDir('run')),
      ...(args.includes('--discover') ? [] : ['--discover', '5s']),
      ...args,
    ],
    async worker(name: string, ...extra: string[]): Promise<Lines> {
      const w = startCli(['worker', '--name', name, ...net(tempDir(`run-${name}`)), ...extra]);
      running.push(w);
      await w.until((l) => l.lines.some((x) => / up at /.test(x)), 15_000, `${name} up`);
      return w;
    },
  };
}

/** The one line on stderr, the CLI's own. */
function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines, stderr).toHaveLength(1);
  return lines[0]!;
}

afterAll(async () => {
  for (const p of running.splice(0)) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
});

describe('refusals: one line, exit 255', () => {
  const g = group();

  it('an open group: commands run only in a keyed group, and why', async () => {
    const port = String(testPort());
    const r = await runCli(['run', '--interface', '127.0.0.1', '--ttl', '0', '--port', port, '--', 'true']);
    expect(r.code).toBe(255);
    expect(oneLine(r.stderr)).toBe(
      'peer: commands run only in a keyed group: without --key-file any host on the LAN could run code on the workers; make a key with peer keygen and pass --key-file here and to every worker',
    );
    const open = await runCli([...g.run('--open', '--', 'true')]);
    expect(open.code).toBe(255);
    expect(oneLine(open.stderr)).toMatch(/^peer: commands run only in a keyed group/);
  });

  it.each<[string, string[], RegExp]>([
    ['no command', [], /give the command after --/],
    [
      '--resume without --joblog',
      ['--resume', '--', 'true'],
      /--resume and --resume-failed need --joblog FILE/,
    ],
    ['a bad --timeout', ['--timeout', '5x', '--', 'true'], /--timeout 5x is not a duration/],
    [
      'an unknown flag',
      ['--nosuch', '--', 'true'],
      /^peer: Nonexistent flag: --nosuch; see peer run --help$/,
    ],
    ['--retries 0', ['--retries', '0', '--', 'true'], /--retries.* 0; see peer run --help$/],
    ['an --input that does not exist', ['--input', '/nonexistent/lines', '--', 'echo'], /--input .*ENOENT/],
  ])('%s', async (_what, args, said) => {
    const r = await runCli(g.run(...args));
    expect(r.code, r.stderr).toBe(255);
    expect(oneLine(r.stderr)).toMatch(said);
  });

  it('a flag it cannot parse, with --json: also {"error"} on stdout', async () => {
    const r = await runCli(g.run('--json', '--retries', '0', '--', 'echo', '--json'));
    expect(r.code).toBe(255);
    expect(oneLine(r.stderr)).toMatch(/--retries/);
    expect(JSON.parse(r.stdout)).toEqual({ error: expect.stringMatching(/--retries.*see peer run --help$/) });
    // --json after -- is the command's, not ours: no JSON on stdout.
    const words = await runCli(g.run('--retries', '0', '--', 'echo', '--json'));
    expect(words.code).toBe(255);
    expect(words.stdout).toBe('');
  });

  it('nobody there: no worker answered; with --json also {"error"}', async () => {
    const r = await runCli(g.run('--discover', '300ms', '--json', '--', 'true'));
    expect(r.code).toBe(255);
    expect(oneLine(r.stderr)).toMatch(
      /^peer: no worker answered within 300 ms; start one with peer worker --allow-exec/,
    );
    expect(JSON.parse(r.stdout)).toEqual({ error: expect.stringMatching(/^no worker answered/) });
  });

  it('keyed workers without --allow-exec: no worker accepts commands', async () => {
    await g.worker('plain', '--slots', '1');
    const r = await runCli(g.run('--discover', '1s', '--', 'true'));
    expect(r.code).toBe(255);
    expect(oneLine(r.stderr)).toMatch(/^peer: no worker accepts commands \(1 worker without --allow-exec\)/);
  });
});

describe('runs on two workers', () => {
  const g = group();
  const dir = tempDir('run-out');

  beforeAll(async () => {
    await Promise.all([
      g.worker('w1', '--allow-exec', '--slots', '2'),
      g.worker('w2', '--allow-exec', '--slots', '2'),
    ]);
  });

  it('one job per piped line, {} replaced, output raw; exit 0', async () => {
    const r = await runCli(g.run('--', 'printf', '"\\033[1m%s\\n"', 'line-{}'), { input: 'a\nb b\nc\n' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual([
      '\x1b[1mline-a',
      '\x1b[1mline-b b',
      '\x1b[1mline-c',
    ]);
    expect(r.stderr).toBe('');
  });

  it("GNU parallel's exit status: the number of failed jobs", async () => {
    const r = await runCli(g.run('--', 'exit $(( {} % 2 ))'), { input: '1\n2\n3\n4\n5\n' });
    expect(r.code, r.stderr).toBe(3);
  });

  it('--json: one exact object per job, then the summary, nothing else', async () => {
    const r = await runCli(g.run('--json', '--', 'echo {}; echo err >&2; exit {}'), { input: '0\n7\n' });
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(3);
    const bySeq = new Map(lines.slice(0, 2).map((j) => [j.seq, j]));
    expect(bySeq.get(2)).toMatchObject({
      type: 'job',
      seq: 2,
      attempt: 1,
      exit: 7,
      signal: 0,
      command: 'echo 7; echo err >&2; exit 7',
      stdout: '7\n',
      stderr: 'err\n',
      encoding: 'utf8',
      host: expect.stringMatching(/^w[12]$/),
    });
    expect(Object.keys(lines[0]!)).toEqual([
      'type',
      'run',
      'job',
      'seq',
      'id',
      'attempt',
      'fence',
      'host',
      'hostId',
      'start',
      'runtime',
      'exit',
      'signal',
      'timedOut',
      'cancelled',
      'send',
      'receive',
      'command',
      'stdout',
      'stderr',
      'encoding',
      'truncated',
      'error',
    ]);
    expect(lines[2]).toMatchObject({ type: 'summary', jobs: 2, ok: 1, failed: 1, skipped: 0, exit: 1 });
  });

  it("--joblog in GNU parallel's format, and --resume runs nothing twice", async () => {
    const log = path.join(dir, 'jobs.log');
    const input = Array.from({ length: 30 }, (_, i) => `${i + 1}\n`).join('');
    const r = await runCli(g.run('--joblog', log, '--', 'sleep 0.05; echo {}'), { input });
    expect(r.code, r.stderr).toBe(0);
    const rows = fs.readFileSync(log, 'utf8').split('\n').filter(Boolean);
    expect(rows[0]).toBe(JOBLOG_HEADER);
    expect(rows).toHaveLength(31);
    for (const row of rows.slice(1)) {
      expect(row).toMatch(/^(\d+)(?:\t[^\t]+){5}\t0\t0\tsleep 0\.05; echo \d+$/);
      const cols = row.split('\t');
      expect(cols[2]).toMatch(/^\d+\.\d{3}$/);
      expect(cols[3]).toMatch(/^ *\d+\.\d{3}$/);
      expect(cols[3]).toHaveLength(10);
    }
    expect([...readJoblog(fs.readFileSync(log, 'utf8')).ok].sort((a, b) => a - b)).toEqual(
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    const again = await runCli(g.run('--joblog', log, '--resume', '--json', '--', 'sleep 0.05; echo {}'), {
      input: `${input}31\n`,
    });
    expect(again.code, again.stderr).toBe(0);
    const out = again.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(out.map((j) => j.seq ?? j.type)).toEqual([31, 'summary']);
    expect(out[1]).toMatchObject({ jobs: 1, skipped: 30 });
    expect(fs.readFileSync(log, 'utf8').split('\n').filter(Boolean)).toHaveLength(32);
  });

  it('--joblog on a disk that fills mid-run: exit 255 and one line, every row whole, and --resume runs only the rest', () => {
    const out = tempDir('run-joblog-full');
    const mnt = tempDir('run-joblog-mnt');
    // A 64 KiB tmpfs of its own, in a mount namespace: the log's header, then filler up to the
    // last byte, so rows fill the log's first page and then the disk is full (a row cut short).
    const script = `
      d="$1" out="$2" node="$3" bin="$4"; shift 4
      mount -t tmpfs -o size=64k tmpfs "$d" || exit 99
      printf '%s\\n' "$HEADER" > "$d/jobs.log"
      dd if=/dev/zero of="$d/filler" bs=1k 2>/dev/null
      seq 1 200 | timeout 30 "$node" "$bin" "$@" --joblog "+$d/jobs.log" -- 'echo {}' >/dev/null 2>"$out/err1"
      echo $? > "$out/code1"
      cp "$d/jobs.log" "$out/full.log"
      rm "$d/filler"
      seq 1 200 | timeout 60 "$node" "$bin" "$@" --joblog "+$d/jobs.log" --resume --json -- 'echo {}' >"$out/resumed" 2>"$out/err2"
      echo $? > "$out/code2"
      cp "$d/jobs.log" "$out/final.log"`;
    execFileSync(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        script,
        'sh',
        mnt,
        out,
        process.execPath,
        BIN,
        ...g.run(),
      ],
      { env: { ...process.env, NO_COLOR: '1', HEADER: JOBLOG_HEADER }, stdio: 'ignore', timeout: 150_000 },
    );
    const read = (f: string) => fs.readFileSync(path.join(out, f), 'utf8');
    expect(read('code1').trim(), read('err1')).toBe('255');
    expect(oneLine(read('err1'))).toBe(
      `peer: --joblog ${mnt}/jobs.log: cannot write a row (disk full); the run was stopped: make room there, then run it again with --resume (jobs the log lists are not run again)`,
    );
    const full = read('full.log');
    expect(full.endsWith('\n')).toBe(true);
    const logged = readJoblog(full);
    expect(logged.problem).toBeNull();
    expect(logged.seen.size).toBeGreaterThan(0);
    expect(logged.seen.size).toBeLessThan(200);
    expect(read('code2').trim(), read('err2')).toBe('0');
    const rerun = read('resumed')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; seq?: number });
    expect(
      rerun
        .filter((j) => j.type === 'job')
        .map((j) => j.seq!)
        .sort((a, b) => a - b),
    ).toEqual(Array.from({ length: 200 }, (_, i) => i + 1).filter((n) => !logged.seen.has(n)));
    const rows = read('final.log').split('\n').filter(Boolean).slice(1);
    expect(rows.map((r) => Number(r.split('\t')[0])).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 200 }, (_, i) => i + 1),
    );
  }, 160_000);

  it('--transfer and --return: files go with each job and come back here; Send and Receive logged', async () => {
    const here = tempDir('run-files');
    fs.writeFileSync(path.join(here, 'in.txt'), 'hello\n');
    const one = await runCli(
      g.run('--transfer', 'in.txt', '--return', 'out.txt', '--', 'tr a-z A-Z < in.txt > out.txt'),
      { cwd: here },
    );
    expect(one.code, one.stderr).toBe(0);
    expect(fs.readFileSync(path.join(here, 'out.txt'), 'utf8')).toBe('HELLO\n');

    // One file of each job's own ({} is the line), one the run shares, and a joblog.
    fs.writeFileSync(path.join(here, 'suffix.txt'), '!');
    for (const x of ['a', 'b', 'c']) fs.writeFileSync(path.join(here, `in-${x}.txt`), `${x}${x}`);
    const log = path.join(here, 'files.log');
    const args = ['--joblog', log, '--transfer', 'in-{}.txt', '--transfer', 'suffix.txt'];
    const cmd = 'cat in-{}.txt suffix.txt | tr a-z A-Z > out-{}.txt';
    const many = await runCli(g.run(...args, '--return', 'out-{}.txt', '--', cmd), {
      cwd: here,
      input: 'a\nb\nc\n',
    });
    expect(many.code, many.stderr).toBe(0);
    for (const x of ['a', 'b', 'c'])
      expect(fs.readFileSync(path.join(here, `out-${x}.txt`), 'utf8')).toBe(`${x}${x}!`.toUpperCase());
    const rows = fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).slice(1);
    expect(rows).toHaveLength(3);
    // Send: the job's own 2 bytes, and the shared 1 byte with a worker's first job; Receive: 3.
    const sent = rows.map((row) => Number(row.split('\t')[4]));
    expect(sent.every((n) => n === 2 || n === 3)).toBe(true);
    expect(rows.map((row) => row.split('\t')[5])).toEqual(['3', '3', '3']);
  });

  it('--transfer of a file that is not there: the run fails saying which, exit 255', async () => {
    const here = tempDir('run-files-missing');
    const r = await runCli(g.run('--transfer', 'nothere.txt', '--', 'cat nothere.txt'), { cwd: here });
    expect(r.code).toBe(255);
    expect(oneLine(r.stderr)).toMatch(/^peer: cannot send nothere\.txt: no such file/);
  });

  it('--return of a file the job did not make: said on stderr, the job keeps its exit status (as parallel)', async () => {
    const here = tempDir('run-files-unmade');
    const r = await runCli(g.run('--return', 'never.txt', '--', 'true'), { cwd: here });
    expect(r.code).toBe(0);
    expect(oneLine(r.stderr)).toMatch(
      /^peer: job 1 on w\d: --return never\.txt: 'never\.txt' was not made by the job$/,
    );
    expect(fs.existsSync(path.join(here, 'never.txt'))).toBe(false);
  });

  it('--on all --tag: once on every worker, each line after worker:seq', async () => {
    const r = await runCli(g.run('--on', 'all', '--discover', '1s', '--tag', '--', 'echo hello'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean).sort()).toEqual(['w1:1\thello', 'w2:1\thello']);
  });

  it('Ctrl-C: every job is killed on its worker, TERM-ignoring ones too; exit 130', async () => {
    const marker = String(3_000_000 + Math.floor(Math.random() * 1_000_000));
    const child = spawn(
      process.execPath,
      [
        BIN,
        ...g.run(
          '--on',
          'all',
          '--discover',
          '1s',
          '--kill-grace',
          '500ms',
          '--',
          `trap "" TERM; sleep ${marker} & sleep ${marker}1; wait`,
        ),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 15_000;
    while (processesMatching(new RegExp(`sleep ${marker}`)).length < 4) {
      expect(Date.now(), 'both workers run both sleeps').toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(processesMatching(new RegExp(`sleep ${marker}`))).toEqual([]);
  });
});
