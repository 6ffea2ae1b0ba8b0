/**
 * The process executor with real processes: each attempt runs as its own process group, is killed
 * as a group (grandchildren too, SIGKILL after the grace for those ignoring SIGTERM), never ends
 * while something it started still runs, keeps a bounded head of its output, runs in a fresh
 * directory that is removed after, gets none of the worker's PEER_* variables, and returns only
 * files inside its directory. A worker killed -9 leaves a ledger that its next start uses to kill
 * the orphans and remove their directories, never a process whose number was reused.
 *
 * Run it in a network namespace as every real-process test: unshare --net (see README).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessExecutor } from '../../src/cli/run/exec.js';
import { bootId, procStat, reapOrphans } from '../../src/cli/run/process-group.js';
import { JobProcs } from '../../src/storage/job-procs.js';
import type { AttemptKey, ExecOutcome, RunSpec, StartRequest } from '../../src/p2p/jobs/types.js';
import { ROOT, sleepsOf, tempDir } from '../support/proc.js';

const RUN = 'a1b2c3d4e5f60718';
const GRACE_MS = 300;
/** Every wait for processes has a deadline, never a fixed sleep. */
const DEADLINE_MS = 10_000;

let jobs = 0;
function request(
  command: string,
  extra: Partial<StartRequest> = {},
  spec: Partial<RunSpec> = {},
): StartRequest {
  const job = ++jobs;
  return {
    run: RUN,
    job,
    attempt: 1,
    seq: job,
    fence: 7,
    command,
    env: { PEER_JOB_ID: `${RUN}-${job}` },
    transfers: [],
    returns: [],
    spec: {
      run: RUN,
      kind: 'exec',
      words: [command],
      env: [],
      detached: false,
      timeoutMs: null,
      graceMs: GRACE_MS,
      output: 'group',
      transfers: [],
      returns: [],
      ...spec,
    },
    ...extra,
  };
}

/** Markers used by the test running, whose sleeps afterEach kills should the test fail. */
const markers: string[] = [];
/** A `sleep` whose command line no other process has: `sleep 1000.<random>`. */
const marker = () => {
  const m = `1000.${Math.floor(Math.random() * 1e9)}`;
  markers.push(m);
  return m;
};

async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Harness {
  executor: ProcessExecutor;
  jobDir: string;
  output: Array<{ key: AttemptKey; stream: 1 | 2; chunk: Uint8Array }>;
  ended: (key: AttemptKey) => Promise<ExecOutcome>;
  endedCount: (key: AttemptKey) => number;
}

const open: ProcessExecutor[] = [];
const dirs: string[] = [];
const helpers: ChildProcess[] = [];
afterEach(async () => {
  for (const c of helpers.splice(0)) c.kill('SIGKILL');
  for (const e of open.splice(0)) await e.close();
  for (const m of markers.splice(0)) for (const pid of sleepsOf(m)) process.kill(pid, 'SIGKILL');
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function harness(over: Partial<ConstructorParameters<typeof ProcessExecutor>[0]> = {}): Harness {
  const jobDir = path.join(tempDir('exec'), 'jobs');
  dirs.push(path.dirname(jobDir));
  const executor = new ProcessExecutor({
    slots: 4,
    allowExec: true,
    jobDir,
    shell: '/bin/sh',
    outputBytesMax: 1 << 20,
    ...over,
  });
  open.push(executor);
  const outcomes = new Map<string, ExecOutcome[]>();
  const waiters = new Map<string, (o: ExecOutcome) => void>();
  const id = (k: AttemptKey) => `${k.run}/${k.job}/${k.attempt}`;
  const output: Harness['output'] = [];
  executor.bind({
    output: (key, stream, chunk) => output.push({ key, stream, chunk }),
    ended: (key, outcome) => {
      outcomes.set(id(key), [...(outcomes.get(id(key)) ?? []), outcome]);
      waiters.get(id(key))?.(outcome);
    },
  });
  return {
    executor,
    jobDir,
    output,
    ended: (key) => {
      const done = outcomes.get(id(key))?.[0];
      if (done) return Promise.resolve(done);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`job ${key.job} did not end`)), DEADLINE_MS);
        waiters.set(id(key), (o) => {
          clearTimeout(timer);
          resolve(o);
        });
      });
    },
    endedCount: (key) => outcomes.get(id(key))?.length ?? 0,
  };
}

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');

describe('ProcessExecutor', () => {
  it('runs the command in a fresh directory with the worker env stripped of PEER_*, then removes the directory', async () => {
    const h = harness();
    const saved = { key: process.env.PEER_KEY_FILE, name: process.env.PEER_NAME };
    process.env.PEER_KEY_FILE = '/secret/group.key';
    process.env.PEER_NAME = 'w1';
    const r = request(
      'echo "dir=$PWD key=${PEER_KEY_FILE-unset} name=${PEER_NAME-unset} id=$PEER_JOB_ID jd=$PEER_JOB_DIR home=$HOME"; echo oops >&2; exit 3',
    );
    let o: ExecOutcome;
    try {
      h.executor.start(r);
      o = await h.ended(r);
    } finally {
      for (const [k, v] of [
        ['PEER_KEY_FILE', saved.key],
        ['PEER_NAME', saved.name],
      ] as const)
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
    }
    expect(o).toMatchObject({
      started: true,
      exit: 3,
      signal: 0,
      timedOut: false,
      cancelled: false,
      error: null,
    });
    const line = text(o.stdout);
    const dir = /dir=(\S+)/.exec(line)![1]!;
    expect(path.dirname(dir)).toBe(fs.realpathSync(h.jobDir));
    expect(path.basename(dir)).toMatch(/^j-/);
    expect(line).toContain(
      `key=unset name=unset id=${RUN}-${r.job} jd=${dir.replace(fs.realpathSync(h.jobDir), h.jobDir)} home=${process.env.HOME}`,
    );
    expect(text(o.stderr)).toBe('oops\n');
    expect(o.runtimeUs).toBeGreaterThan(0);
    expect(Math.abs(o.startedAtWallMs - Date.now())).toBeLessThan(DEADLINE_MS);
    await h.executor.close();
    expect(fs.readdirSync(h.jobDir)).toEqual([]);
    expect(h.endedCount(r)).toBe(1);
  });

  it('kills the whole group on cancel: the shell, its child and its grandchild', async () => {
    const h = harness();
    const [m1, m2] = [marker(), marker()];
    const r = request(`sh -c 'sleep ${m1} & wait' & sleep ${m2}; wait`);
    h.executor.start(r);
    await until(
      'the job and its grandchild to run',
      () => sleepsOf(m1).length === 1 && sleepsOf(m2).length === 1,
    );
    expect(h.executor.alive()).toEqual([{ run: RUN, job: r.job, attempt: 1 }]);
    h.executor.kill(r, 'cancel', GRACE_MS);
    const o = await h.ended(r);
    expect(o).toMatchObject({ started: true, exit: null, signal: 15, cancelled: true, timedOut: false });
    // Ended means empty: nothing of the job runs any more at that moment.
    expect(sleepsOf(m1)).toEqual([]);
    expect(sleepsOf(m2)).toEqual([]);
    expect(h.executor.alive()).toEqual([]);
  });

  it('kills with SIGKILL after the grace what ignores SIGTERM, and flags a timeout', async () => {
    const h = harness();
    const m = marker();
    const r = request(`trap "" TERM; sleep ${m} & sleep ${m}; wait`);
    h.executor.start(r);
    await until('both sleeps to run', () => sleepsOf(m).length === 2);
    const killedAt = Date.now();
    h.executor.kill(r, 'timeout', GRACE_MS);
    const o = await h.ended(r);
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(GRACE_MS - 20);
    expect(o).toMatchObject({ started: true, exit: null, signal: 9, timedOut: true, cancelled: false });
    expect(sleepsOf(m)).toEqual([]);
  });

  it('does not end while a background process of the job runs: it is killed with the group', async () => {
    const h = harness();
    const m = marker();
    const r = request(`sleep ${m} & echo started`);
    h.executor.start(r);
    const o = await h.ended(r);
    // The shell's own exit is the outcome; what it left behind is gone by then.
    expect(o).toMatchObject({ exit: 0, signal: 0, cancelled: false });
    expect(text(o.stdout)).toBe('started\n');
    expect(sleepsOf(m)).toEqual([]);
  });

  it('keeps the head of each stream up to outputBytesMax, flags truncated, and reports what it kept as it came', async () => {
    const h = harness({ outputBytesMax: 1000 });
    const r = request(`head -c 300000 /dev/zero | tr '\\0' a; echo small >&2`);
    h.executor.start(r);
    const o = await h.ended(r);
    expect(o.truncated).toBe(true);
    expect(text(o.stdout)).toBe('a'.repeat(1000));
    expect(text(o.stderr)).toBe('small\n');
    const reported = (s: 1 | 2) =>
      Buffer.concat(h.output.filter((x) => x.key.job === r.job && x.stream === s).map((x) => x.chunk));
    expect(reported(1).toString()).toBe('a'.repeat(1000));
    expect(reported(2).toString()).toBe('small\n');
  });

  it('writes transfers before the command and returns only regular files inside the job directory', async () => {
    const h = harness();
    const secret = path.join(path.dirname(h.jobDir), 'secret.txt');
    fs.writeFileSync(secret, 'not yours');
    const r = request(
      `cat in/data.txt > out.txt; ln -s ${secret} link; ln -s ../.. up; ln -s out.txt inner; mkfifo fifo`,
      {
        transfers: [{ path: 'in/data.txt', data: Buffer.from('payload\n') }],
        returns: ['out.txt', 'link', 'up/secret.txt', '../secret.txt', secret, 'missing', 'inner', 'fifo'],
      },
    );
    h.executor.start(r);
    const o = await h.ended(r);
    expect(o.exit).toBe(0);
    const byIndex = new Map(o.returned.map((x) => [x.index, x]));
    expect(byIndex.get(0)).toEqual({ index: 0, data: Buffer.from('payload\n') });
    expect(byIndex.get(6)).toEqual({ index: 6, data: Buffer.from('payload\n') });
    const error = (i: number) => (byIndex.get(i) as { error?: string }).error;
    expect(error(1)).toMatch(/outside the job's directory/);
    expect(error(2)).toMatch(/outside the job's directory/);
    expect(error(3)).toMatch(/\.\. segment/);
    expect(error(4)).toMatch(/absolute path/);
    expect(error(5)).toMatch(/not made by the job/);
    expect(error(7)).toMatch(/not a regular file/);
    for (const x of o.returned) if ('data' in x) expect(text(x.data)).not.toContain('not yours');
  });

  it('refuses a transfer path leaving the directory without starting anything', async () => {
    const h = harness();
    const r = request('echo ran', { transfers: [{ path: '../escape.txt', data: Buffer.from('x') }] });
    h.executor.start(r);
    const o = await h.ended(r);
    expect(o).toMatchObject({ started: false, error: expect.stringMatching(/\.\. segment/) as unknown });
    expect(fs.existsSync(path.join(path.dirname(h.jobDir), 'escape.txt'))).toBe(false);
    await h.executor.close();
    expect(fs.readdirSync(h.jobDir)).toEqual([]);
  });

  it('refuses commands without allowExec, beyond its slots, and after close', async () => {
    const closed = harness({ allowExec: false });
    const r1 = request('echo ran');
    closed.executor.start(r1);
    expect(await closed.ended(r1)).toMatchObject({
      started: false,
      error: expect.stringMatching(/--allow-exec/) as unknown,
    });

    const h = harness({ slots: 1 });
    const m = marker();
    const busy = request(`sleep ${m}`);
    const extra = request('echo ran');
    h.executor.start(busy);
    h.executor.start(extra);
    expect(await h.ended(extra)).toMatchObject({ started: false, error: 'all 1 slots are busy' });
    const closing = h.executor.close();
    const late = request('echo ran');
    h.executor.start(late);
    expect(await h.ended(late)).toMatchObject({ started: false, error: 'the worker is stopping' });
    await closing;
    expect((await h.ended(busy)).cancelled).toBe(true);
    expect(sleepsOf(m)).toEqual([]);
  });

  it('reports the signal that ended a job it did not kill, and a shell that cannot start', async () => {
    const h = harness();
    const r = request('echo before; kill -KILL $$');
    h.executor.start(r);
    expect(await h.ended(r)).toMatchObject({
      started: true,
      exit: null,
      signal: 9,
      cancelled: false,
      timedOut: false,
    });
    const missing = harness({ shell: '/nonexistent/sh' });
    const r2 = request('echo ran');
    missing.executor.start(r2);
    expect(await missing.ended(r2)).toMatchObject({
      started: false,
      error: 'cannot run /nonexistent/sh (ENOENT)',
    });
    await missing.executor.close();
    expect(fs.readdirSync(missing.jobDir)).toEqual([]);
  });

  it('ends an attempt killed while its directory is being made without starting it', async () => {
    const h = harness();
    const r = request('echo ran', { transfers: [{ path: 'big', data: Buffer.alloc(8 << 20) }] });
    h.executor.start(r);
    h.executor.kill(r, 'cancel', GRACE_MS);
    const o = await h.ended(r);
    expect(o).toMatchObject({ started: false, cancelled: true });
    expect(text(o.stdout)).toBe('');
  });
});

describe('the ledger of running groups', () => {
  it('holds a row while a job runs and none once it ended; a job it cannot record is killed', async () => {
    const db = new Database(':memory:');
    const ledger = new JobProcs(db);
    const h = harness({ ledger });
    const m = marker();
    const r = request(`sleep ${m}`);
    h.executor.start(r);
    await until('the job to run', () => sleepsOf(m).length === 1);
    const [row] = ledger.list().groups;
    expect(row).toMatchObject({ boot: bootId(), startTicks: procStat(row!.pgid)!.startTicks });
    expect(path.dirname(row!.dir)).toBe(h.jobDir);
    h.executor.kill(r, 'cancel', GRACE_MS);
    await h.ended(r);
    await h.executor.close();
    expect(ledger.list().groups).toEqual([]);

    db.pragma('query_only = ON');
    const full = harness({ ledger });
    const m2 = marker();
    const r2 = request(`sleep ${m2}`);
    full.executor.start(r2);
    const o = await full.ended(r2);
    expect(o).toMatchObject({
      started: true,
      error: expect.stringMatching(/^cannot record the job's processes/) as unknown,
    });
    expect(sleepsOf(m2)).toEqual([]);
  });

  it('lets the next start kill the jobs of an executor killed -9 and remove their directories', async () => {
    const base = tempDir('exec-orphan');
    dirs.push(base);
    const file = path.join(base, 'ledger.db');
    const jobDir = path.join(base, 'jobs');
    const [m1, m2] = [marker(), marker()];
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(ROOT, 'test/support/exec-orphan.ts'),
        file,
        jobDir,
        `sh -c 'sleep ${m1} & wait' & sleep ${m2}; wait`,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    helpers.push(child);
    let line = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (line += d));
    await until('the helper to print its ledger row', () => line.includes('\n'));
    const row = JSON.parse(line) as { pgid: number; dir: string };
    await until(
      'the job and its grandchild to run',
      () => sleepsOf(m1).length === 1 && sleepsOf(m2).length === 1,
    );
    child.kill('SIGKILL');
    await until('the helper to die', () => child.exitCode !== null || child.signalCode !== null);
    // Nobody kills them: they are orphans now.
    expect(sleepsOf(m1)).toHaveLength(1);
    expect(sleepsOf(m2)).toHaveLength(1);
    expect(fs.existsSync(row.dir)).toBe(true);

    const ledger = new JobProcs(new Database(file));
    const done = await reapOrphans(ledger);
    expect(done).toEqual({ killed: 1, removed: 1, damaged: 0, stuck: 0 });
    expect(sleepsOf(m1)).toEqual([]);
    expect(sleepsOf(m2)).toEqual([]);
    expect(fs.existsSync(row.dir)).toBe(false);
    expect(ledger.list().groups).toEqual([]);
  });

  it('kills a group whose leader is gone only when a member carries the job directory', async () => {
    const base = tempDir('exec-leaderless');
    dirs.push(base);
    const ours = path.join(base, 'j-ours01');
    const theirs = path.join(base, 'j-their1');
    fs.mkdirSync(ours);
    fs.mkdirSync(theirs);
    const [m1, m2] = [marker(), marker()];
    // Two groups whose leaders exit at once, leaving a sleep each: one with our marker, one without.
    const leaderless = (m: string, env: NodeJS.ProcessEnv) => {
      const p = spawn('/bin/sh', ['-c', `sleep ${m} & echo $$`], {
        detached: true,
        env,
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      return new Promise<number>((resolve) =>
        p.stdout.setEncoding('utf8').once('data', (d: string) => resolve(Number(d.trim()))),
      );
    };
    const pgOurs = await leaderless(m1, { ...process.env, PEER_JOB_DIR: ours });
    const pgTheirs = await leaderless(m2, { ...process.env, PEER_JOB_DIR: '/elsewhere/j-abcdef' });
    await until('both leaders to be gone', () => procStat(pgOurs) === null && procStat(pgTheirs) === null);
    // A leader may exit before its background child has exec'd sleep, on a loaded machine.
    await until('both sleeps to run', () => sleepsOf(m1).length === 1 && sleepsOf(m2).length === 1);
    const startOf = (m: string) => procStat(sleepsOf(m)[0]!)!.startTicks - 1;
    const ledger = new JobProcs(new Database(':memory:'));
    ledger.add({ pgid: pgOurs, startTicks: startOf(m1), boot: bootId(), dir: ours });
    ledger.add({ pgid: pgTheirs, startTicks: startOf(m2), boot: bootId(), dir: theirs });
    try {
      expect(await reapOrphans(ledger)).toEqual({ killed: 1, removed: 2, damaged: 0, stuck: 0 });
      expect(sleepsOf(m1)).toEqual([]);
      expect(sleepsOf(m2)).toHaveLength(1);
    } finally {
      process.kill(-pgTheirs, 'SIGKILL');
    }
  });

  it('never kills a process whose number was reused, nor one of another boot, and skips damaged rows', async () => {
    const base = tempDir('exec-reuse');
    dirs.push(base);
    const m = marker();
    const other = spawn('sleep', [m], { detached: true, stdio: 'ignore' });
    const pid = other.pid!;
    await until('the other process to run', () => sleepsOf(m).length === 1);
    const real = procStat(pid)!.startTicks;
    const reused = path.join(base, 'j-reuse1');
    const reboot = path.join(base, 'j-boot01');
    fs.mkdirSync(reused);
    fs.mkdirSync(reboot);
    const db = new Database(':memory:');
    const ledger = new JobProcs(db);
    ledger.add({ pgid: pid, startTicks: real + 1, boot: bootId(), dir: reused });
    ledger.add({ pgid: pid, startTicks: real, boot: 'another-boot', dir: reboot });
    db.prepare('INSERT INTO job_procs (dir, pgid, start_ticks, boot) VALUES (?, ?, ?, ?)').run(
      '/',
      pid,
      real,
      bootId(),
    );
    try {
      expect(await reapOrphans(ledger)).toEqual({ killed: 0, removed: 2, damaged: 1, stuck: 0 });
      expect(sleepsOf(m)).toEqual([pid]);
      expect(fs.existsSync(reused) || fs.existsSync(reboot)).toBe(false);
    } finally {
      other.kill('SIGKILL');
    }
  });
});
