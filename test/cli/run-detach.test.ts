/**
 * Detached runs through the built CLI on loopback (inside a private network namespace, as CI runs
 * test/cli): `peer up` keeps them (the coordinator), `peer worker --allow-exec` runs them.
 *   - `peer run --detach` prints the run's id once the group stored it and exits 0; the jobs run
 *     without it; `peer run --attach ID` prints every result (--json exact) and exits as the run
 *     would (GNU parallel's codes), as many times as asked;
 *   - the keeper killed -9 mid-run: the worker (the next coordinator) takes the run over and
 *     every job is recorded once;
 *   - `peer run --cancel ID` kills every job of it on the workers;
 *   - refusals are one line, exit 255.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  loopbackFlags,
  processesMatching,
  runCli,
  startCli,
  tempDir,
  testPort,
  type Lines,
  groupKeyFile,
} from '../support/proc.js';

const keyFile = groupKeyFile(tempDir('detach-key'));
const running: Lines[] = [];

afterAll(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await p.exited;
  }
});

function group() {
  const port = testPort();
  const net = (dir: string) => [...loopbackFlags(port, dir), '--key-file', keyFile];
  const start = async (args: string[], name: string) => {
    const p = startCli([...args, '--name', name, ...net(tempDir(`detach-${name}`))]);
    running.push(p);
    await p.until((l) => l.lines.some((x) => / up at /.test(x)), 15_000, `${name} up`);
    return p;
  };
  return {
    run: (...args: string[]) => ['run', ...net(tempDir('detach-run')), ...args],
    keeper: (name: string) => start(['up', '--priority', '10'], name),
    worker: (name: string) => start(['worker', '--allow-exec', '--slots', '2'], name),
  };
}

const RUN_ID = /^[0-9a-f]{16}$/;

describe('peer run --detach, --attach, --cancel', () => {
  it('a detached run runs without its submitter and is collected whole, as often as asked', async () => {
    const g = group();
    const k1 = await g.keeper('k1');
    await g.worker('w1');
    const input = Array.from({ length: 6 }, (_, i) => String(i + 1)).join('\n');
    const d = await runCli(g.run('--detach', '--', 'sleep 0.2; echo job {}; exit $(( {} == 4 ))'), { input });
    expect(d.stderr).toBe('');
    expect(d.code).toBe(0);
    const run = d.stdout.trim();
    expect(run).toMatch(RUN_ID);
    // The keeper's log says what it keeps, and when the run is over.
    const logged = (text: string) => k1.until((l) => l.lines.some((x) => x.includes(text)), 15_000, text);
    await logged(`keep    run ${run.slice(0, 8)}: 6 jobs from run-`);
    await logged(`done    run ${run.slice(0, 8)} done`);
    const log = path.join(tempDir('detach-log'), 'attach.log');
    for (let i = 0; i < 2; i++) {
      const a = await runCli(g.run('--attach', run, '--json', '--joblog', log), { timeoutMs: 30_000 });
      expect(a.code).toBe(1);
      const lines = a.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const jobs = lines.filter((l) => l.type === 'job');
      expect(jobs.map((j) => j.seq).sort()).toEqual([1, 2, 3, 4, 5, 6]);
      expect(jobs.find((j) => j.seq === 2)).toMatchObject({
        stdout: 'job 2\n',
        exit: 0,
        command: 'sleep 0.2; echo job 2; exit $(( 2 == 4 ))',
      });
      expect(lines.at(-1)).toMatchObject({ type: 'summary', run, jobs: 6, ok: 5, failed: 1, exit: 1 });
      // The joblog: its header and a row per job, written afresh by each attach.
      const rows = fs.readFileSync(log, 'utf8').trim().split('\n');
      expect(
        rows
          .slice(1)
          .map((row) => Number(row.split('\t')[0]))
          .sort(),
      ).toEqual([1, 2, 3, 4, 5, 6]);
    }
    const json = await runCli(g.run('--detach', '--json', '--', 'true'));
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({
      type: 'detached',
      run: expect.stringMatching(RUN_ID),
      jobs: 1,
    });
  }, 90_000);

  it('the keeper killed -9 mid-run: the next coordinator takes the run over, each job recorded once', async () => {
    const g = group();
    const k1 = await g.keeper('k1');
    const w1 = await g.worker('w1');
    const input = Array.from({ length: 10 }, (_, i) => String(i + 1)).join('\n');
    const d = await runCli(g.run('--detach', '--', 'sleep 0.5; echo {}'), { input });
    expect(d.code).toBe(0);
    const run = d.stdout.trim();
    // Mid-run: the first two jobs (one per slot) ended and the next ones started.
    await w1.until((l) => l.lines.filter((x) => / start +job /.test(x)).length >= 3, 15_000, 'a third job');
    k1.child.kill('SIGKILL');
    const a = await runCli(g.run('--attach', run, '--json'), { timeoutMs: 60_000 });
    expect(a.stderr).toBe('');
    expect(a.code).toBe(0);
    const jobs = a.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.type === 'job');
    expect(jobs.map((j) => j.seq).sort((x, y) => Number(x) - Number(y))).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    ]);
    for (const j of jobs) expect(j.stdout).toBe(`${j.seq}\n`);
  }, 90_000);

  it('Ctrl-C on --attach only stops watching: exit 130, the run goes on to its end', async () => {
    const g = group();
    await g.keeper('k1');
    await g.worker('w1');
    const input = Array.from({ length: 4 }, (_, i) => String(i + 1)).join('\n');
    const d = await runCli(g.run('--detach', '--', 'sleep 1; echo job {}'), { input });
    expect(d.code, d.stderr).toBe(0);
    const run = d.stdout.trim();
    const watching = startCli(g.run('--attach', run));
    running.push(watching);
    // Interrupted once it has printed the first result, while the others still run.
    await watching.until((l) => l.lines.some((x) => x.startsWith('job ')), 20_000, 'a first result');
    watching.child.kill('SIGINT');
    expect(await watching.exited).toBe(130);
    // The run was not cancelled: a second attach collects all four, and the run's status, 0.
    const a = await runCli(g.run('--attach', run), { timeoutMs: 30_000 });
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout.trim().split('\n').sort()).toEqual(['job 1', 'job 2', 'job 3', 'job 4']);
  }, 60_000);

  it('--cancel kills every job of the run on the workers', async () => {
    const g = group();
    await g.keeper('k1');
    await g.worker('w1');
    const marker = `${process.pid}.${Math.floor(Math.random() * 1e6)}`;
    const d = await runCli(g.run('--detach', '--', `sleep ${marker}; echo {}`), { input: '1\n2\n3\n' });
    expect(d.code).toBe(0);
    const run = d.stdout.trim();
    const deadline = Date.now() + 15_000;
    while (
      processesMatching(new RegExp(`^sleep ${marker.replace('.', '\\.')}$`)).length < 2 &&
      Date.now() < deadline
    )
      await new Promise((r) => setTimeout(r, 50));
    const c = await runCli(g.run('--cancel', run));
    expect(c.stderr).toBe('');
    expect(c.code).toBe(0);
    expect(c.stdout).toBe(`run ${run} cancelled on every worker: 0 of 3 jobs had ended\n`);
    const gone = Date.now() + 10_000;
    while (
      processesMatching(new RegExp(`^sleep ${marker.replace('.', '\\.')}$`)).length > 0 &&
      Date.now() < gone
    )
      await new Promise((r) => setTimeout(r, 50));
    expect(processesMatching(new RegExp(`^sleep ${marker.replace('.', '\\.')}$`))).toEqual([]);
    const a = await runCli(g.run('--attach', run));
    expect(a.code).toBe(130);
  }, 90_000);

  it('--attach with an id the group does not have: one line, exit 255, and --joblog left as it was', async () => {
    const g = group();
    await g.keeper('k1');
    const log = path.join(tempDir('detach-log'), 'jobs.log');
    const before =
      'Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n1\tw1\t1.000\t     0.001\t0\t0\t0\t0\ttrue\n';
    fs.writeFileSync(log, before);
    const r = await runCli(g.run('--attach', '0123456789abcdef', '--joblog', log), { timeoutMs: 30_000 });
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/^peer: no run 0123456789abcdef in the group[^\n]*\n$/);
    expect(fs.readFileSync(log, 'utf8')).toBe(before);
  });

  it('refusals: one line, exit 255', async () => {
    const g = group();
    const cases: Array<[string[], string]> = [
      [
        ['--detach', '--line-buffer', '--', 'true'],
        'peer: --detach prints each job whole: it does not take --line-buffer',
      ],
      [
        ['--attach', 'nope'],
        'peer: --attach needs a run id (16 hex digits, as peer run --detach printed it)',
      ],
      [
        ['--cancel', '0123456789abcdef', '--', 'true'],
        'peer: --cancel ID takes no command: the run has its own',
      ],
    ];
    for (const [args, line] of cases) {
      const r = await runCli(g.run(...args));
      expect(r.code).toBe(255);
      expect(r.stderr).toBe(`${line}\n`);
    }
  });
});
