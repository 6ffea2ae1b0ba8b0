/**
 * Per-job overhead targets of issue 21: `peer run` against GNU parallel over ssh to the same
 * workers, and GNU parallel on one host, on the namespace LAN (test/support/netns.ts).
 *
 *   host 0: the submitter (peer run, or parallel)
 *   hosts 1-3: the workers: `peer worker --allow-exec --slots 2 --key-file K`, and an OpenSSH
 *              server (test/support/sshd.ts) for parallel's --sshlogin 2/root@ADDR
 *
 * Workloads, JOBS jobs each, input `seq 1 JOBS`, the same shell command for every tool: `true {}`
 * (the cost is the tool's) and `sleep 0.05; true {}`. ROUNDS rounds, tools alternating within a
 * round so a noisy minute on the shared machine does not land on one tool. Per run: wall time from
 * spawn to exit, jobs/s, overhead per job and slot, CPU of the tool (and of ssh's masters) and of
 * every process in the worker namespaces, and the joblog's rows (a run counts when it exits 0 with
 * JOBS rows, each seq once). parallel over ssh also runs once cold (no master connection yet).
 * Then a kill round per tool over the network: `sleep 0.05; touch M/{}`, worker 2's namespace
 * killed (every process in it, as a host crash) once half the jobs are reported.
 *
 * Parameters (environment): PEER_BENCH_JOBS_COUNT, PEER_BENCH_JOBS_ROUNDS, PEER_BENCH_JOBS_TOOLS
 * (a comma list of peer, parallel-ssh, parallel-local).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChildLines } from '../src/cli/child.js';
import { NetnsLan, netnsCapability } from '../test/support/netns.js';
import { BIN } from '../test/support/proc.js';
import { SshdSet } from '../test/support/sshd.js';
import {
  envInt,
  onCleanup,
  percentile,
  progress,
  type BenchModule,
  type Section,
  type Table,
} from './lib.js';

const JOBS = envInt('PEER_BENCH_JOBS_COUNT', 1000);
const ROUNDS = envInt('PEER_BENCH_JOBS_ROUNDS', 3);
const TOOLS = ['peer', 'parallel-ssh', 'parallel-local'] as const;
type Tool = (typeof TOOLS)[number];
const SUBMITTER = 0;
const WORKER_HOSTS = [1, 2, 3];
const SLOTS_PER_WORKER = 2;
const SLOTS = WORKER_HOSTS.length * SLOTS_PER_WORKER;
/** The worker killed in the kill round (a NetnsLan host index). */
const KILLED_HOST = 2;
/** parallel's tries in all in its kill round: the lost one and one on another host. */
const PARALLEL_KILL_RETRIES = 2;
const PORT = 47793;
const PROFILE = 'lan';
const WORKLOADS = [
  { name: 'true', command: 'true {}', runtimeS: 0 },
  { name: 'sleep 0.05', command: 'sleep 0.05; true {}', runtimeS: 0.05 },
] as const;
type Workload = (typeof WORKLOADS)[number];
/** Node start-up of three workers on a loaded 2-core machine. */
const START_TIMEOUT_MS = 60_000;
/** One run of JOBS jobs; far above any tool's time here (parallel over ssh: about 30 ms a job). */
const RUN_TIMEOUT_MS = Math.max(60_000, JOBS * 300);
/** USER_HZ of /proc/<pid>/stat times: 100 on Linux. */
const CLOCK_TICKS_PER_S = 100;
/** Runs the tool, then writes the CPU times of its reaped descendants (bash `times`) to a file. */
const TIMED = '"$@"; rc=$?; times > "$PEER_BENCH_TIMES"; exit $rc';

export const bench: BenchModule = {
  name: 'jobs',
  anchors: [
    { command: 'parallel', debianPackage: 'parallel' },
    { command: 'sshd', debianPackage: 'openssh-server' },
  ],
  budgetMs: 2_400_000,
  run,
};

function chosenTools(): Tool[] {
  const raw = process.env.PEER_BENCH_JOBS_TOOLS;
  if (raw === undefined || raw === '') return [...TOOLS];
  const asked = raw.split(',').map((t) => t.trim());
  const bad = asked.filter((t) => !(TOOLS as readonly string[]).includes(t));
  if (bad.length)
    throw new Error(
      `PEER_BENCH_JOBS_TOOLS: unknown ${bad.join(', ')}; use a comma list of ${TOOLS.join(', ')}`,
    );
  return TOOLS.filter((t) => asked.includes(t));
}

/** Whether this build has `peer run` and `peer worker --allow-exec` (issue 21). */
function peerCanRun(): boolean {
  const help = (cmd: string) => {
    try {
      return execFileSync(process.execPath, [BIN, cmd, '--help'], {
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    } catch {
      return '';
    }
  };
  return help('run').includes('--joblog') && help('worker').includes('--allow-exec');
}

// ---------------------------------------------------------------------------------------------
// measuring

/**
 * CPU seconds (user + system, with reaped children) of every process now in host i's namespace,
 * by pid. Taken before and after a run: a process alive at both ends adds its difference (the
 * job processes a worker or an sshd session reaped are in its children's times), one started
 * meanwhile adds all of its own.
 */
function namespaceCpu(lan: NetnsLan, i: number): Map<number, number> {
  const pids = execFileSync('ip', ['netns', 'pids', lan.host(i).ns], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map(Number);
  const cpu = new Map<number, number>();
  for (const pid of pids)
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces): utime, stime, cutime, cstime are 12-15.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      cpu.set(pid, (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLOCK_TICKS_PER_S);
    } catch {
      // Exited between the listing and the read.
    }
  return cpu;
}

function cpuSince(before: Map<number, number>, after: Map<number, number>): number {
  let s = 0;
  for (const [pid, v] of after) s += v - (before.get(pid) ?? 0);
  return s;
}

/** The children's user + system seconds from bash's `times` (its second line: `0m1.2s 0m0.3s`). */
function childTimes(file: string): number {
  const line = fs.readFileSync(file, 'utf8').trim().split('\n')[1] ?? '';
  const m = [...line.matchAll(/(\d+)m([\d.]+)s/g)];
  if (m.length !== 2) throw new Error(`unexpected output of bash times: "${line}"`);
  return m.reduce((s, x) => s + Number(x[1]) * 60 + Number(x[2]), 0);
}

/** Rows of a GNU parallel joblog and how many distinct seqs 1..JOBS they hold. */
function joblogRows(file: string): { rows: number; seqs: number; header: boolean } {
  if (!fs.existsSync(file)) return { rows: 0, seqs: 0, header: false };
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  const header = lines[0] === 'Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand';
  const rows = lines.slice(1);
  const seqs = new Set(rows.map((r) => Number(/^(\d+)\t/.exec(r)?.[1])).filter((n) => n >= 1 && n <= JOBS));
  return { rows: rows.length, seqs: seqs.size, header };
}

// ---------------------------------------------------------------------------------------------
// one run

interface Ctx {
  lan: NetnsLan;
  root: string;
  seqFile: string;
  keyFile: string;
  ssh: SshdSet | null;
}

interface RunResult {
  wallMs: number;
  code: number | null;
  toolCpuS: number;
  workerCpuS: number;
  rows: number;
  ok: boolean;
  problems: string[];
  proc: ChildLines;
}

/** The tool's command line; `killRound`: peer with --json, parallel with --retries. */
function argv(tool: Tool, ctx: Ctx, command: string, joblog: string, killRound: boolean): string[] {
  switch (tool) {
    case 'peer':
      return [
        process.execPath,
        BIN,
        'run',
        '--key-file',
        ctx.keyFile,
        '--input',
        ctx.seqFile,
        '--joblog',
        joblog,
        ...(killRound ? ['--json'] : []),
        '--name',
        'submitter',
        '--interface',
        ctx.lan.host(SUBMITTER).address,
        '--port',
        String(PORT),
        '--data-dir',
        path.join(ctx.root, 'data'),
        '--profile',
        PROFILE,
        '--',
        command,
      ];
    case 'parallel-ssh': {
      const logins = ctx.ssh!.logins().map((l) => `${SLOTS_PER_WORKER}/${l}`);
      return [
        'parallel',
        '--will-cite',
        '--ssh',
        ctx.ssh!.sshCommand(),
        '-S',
        logins.join(','),
        '--joblog',
        joblog,
        // The kill round: a job whose host died runs again on another.
        ...(killRound ? ['--retries', String(PARALLEL_KILL_RETRIES)] : []),
        command,
        '::::',
        ctx.seqFile,
      ];
    }
    case 'parallel-local':
      return [
        'parallel',
        '--will-cite',
        '-j',
        String(SLOTS),
        '--joblog',
        joblog,
        command,
        '::::',
        ctx.seqFile,
      ];
  }
}

async function oneRun(
  ctx: Ctx,
  tool: Tool,
  command: string,
  tag: string,
  during?: (p: ChildLines, t0: number) => Promise<void>,
): Promise<RunResult> {
  const { lan } = ctx;
  const joblog = path.join(ctx.root, `${tag}.joblog`);
  const times = path.join(ctx.root, `${tag}.times`);
  const toolCpu0 = namespaceCpu(lan, SUBMITTER);
  const workerCpu0 = WORKER_HOSTS.map((i) => namespaceCpu(lan, i));
  const t0 = Date.now();
  const child = lan.spawn(
    SUBMITTER,
    'bash',
    ['-c', TIMED, 'bench', ...argv(tool, ctx, command, joblog, !!during)],
    {
      NO_COLOR: '1',
      PEER_BENCH_TIMES: times,
      // parallel keeps its state under ~/.parallel unless told otherwise.
      PARALLEL_HOME: path.join(ctx.root, 'parallel-home'),
    },
  );
  child.stdin!.end();
  const proc = new ChildLines(child);
  let exitAt = 0;
  void proc.exited.then(() => (exitAt = Date.now()));
  const problems: string[] = [];
  const deadline = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
  try {
    if (during) await during(proc, t0);
    await proc.exited;
  } finally {
    clearTimeout(deadline);
  }
  const wallMs = exitAt - t0;
  const code = child.exitCode;
  let toolCpuS = NaN;
  try {
    toolCpuS = childTimes(times) + cpuSince(toolCpu0, namespaceCpu(lan, SUBMITTER));
  } catch (err) {
    problems.push(`no CPU times: ${(err as Error).message}`);
  }
  const workerCpuS = WORKER_HOSTS.reduce((s, i, k) => s + cpuSince(workerCpu0[k]!, namespaceCpu(lan, i)), 0);
  const log = joblogRows(joblog);
  if (code !== 0)
    problems.push(
      `exit ${code ?? child.signalCode}${wallMs >= RUN_TIMEOUT_MS ? ` (killed after ${RUN_TIMEOUT_MS / 1000} s)` : ''}: ${proc.stderr.join('').trim().slice(0, 300)}`,
    );
  if (!log.header) problems.push('the joblog has no header line');
  if (log.rows !== JOBS || log.seqs !== JOBS)
    problems.push(`the joblog has ${log.rows} rows holding ${log.seqs} distinct seqs of ${JOBS}`);
  return { wallMs, code, toolCpuS, workerCpuS, rows: log.rows, ok: problems.length === 0, problems, proc };
}

// ---------------------------------------------------------------------------------------------
// the workers

async function startWorkers(ctx: Ctx): Promise<ChildLines[]> {
  const workers = WORKER_HOSTS.map((i) => {
    const args = [
      BIN,
      'worker',
      '--allow-exec',
      '--slots',
      String(SLOTS_PER_WORKER),
      '--key-file',
      ctx.keyFile,
    ];
    args.push('--name', `w${i}`, '--interface', ctx.lan.host(i).address, '--port', String(PORT));
    args.push('--data-dir', path.join(ctx.root, 'data'), '--profile', PROFILE, '--log-format', 'json');
    // `ip netns exec` execs node, so the child's pid is the worker's.
    return new ChildLines(ctx.lan.spawn(i, process.execPath, args, { NO_COLOR: '1' }));
  });
  for (const [k, w] of workers.entries())
    await w.until(
      (l) => l.json().some((e) => e.event === 'up'),
      START_TIMEOUT_MS,
      `worker w${WORKER_HOSTS[k]} to start`,
    );
  return workers;
}

/**
 * Kills every process in host i's namespace at once, as a crash of that machine would, except
 * `spare` (the other tool's server, which a later kill round needs).
 */
function crashHost(lan: NetnsLan, i: number, spare: ReadonlySet<number>): void {
  for (const pid of namespaceCpu(lan, i).keys())
    if (!spare.has(pid))
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
}

interface KillReport {
  tool: Tool;
  result: RunResult;
  markers: number;
  /** Distinct jobs that ended well: --json records (peer), joblog rows with Exitval 0 (parallel). */
  done: number;
  /** Records (peer) or joblog rows (parallel) beyond the first for the same job. */
  duplicates: number;
  /** peer: records of an attempt >= 2; parallel: not known from its output. */
  retried: number | undefined;
  reassignDelayMs: number | undefined;
}

/** A joblog's rows as [seq, exitval] (parallel writes one as each job ends). */
function joblogEntries(file: string): Array<[number, number]> {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .slice(1)
    .flatMap((row) => {
      const f = row.split('\t');
      return f.length >= 9 ? [[Number(f[0]), Number(f[6])] as [number, number]] : [];
    });
}

/**
 * `sleep 0.05; touch M/{}`; the worker host KILLED_HOST crashes once half the jobs are reported
 * (peer: --json records; parallel: joblog rows, with --retries 2 so a job lost with its host can
 * run again elsewhere).
 */
async function killRound(
  ctx: Ctx,
  tool: 'peer' | 'parallel-ssh',
  spare: ReadonlySet<number>,
): Promise<KillReport> {
  const markers = path.join(ctx.root, `markers-${tool}`);
  fs.mkdirSync(markers);
  const tag = `kill-${tool}`;
  const joblog = path.join(ctx.root, `${tag}.joblog`);
  const records = (p: ChildLines) => p.json().filter((e) => e.type === 'job');
  const reported = (p: ChildLines) => (tool === 'peer' ? records(p).length : joblogEntries(joblog).length);
  let killAt = 0;
  const command = `sleep 0.05; touch ${markers}/{}`;
  const result = await oneRun(ctx, tool, command, tag, async (p, t0) => {
    await p.until(
      (l) => reported(l) >= JOBS / 2 || l.child.exitCode !== null,
      RUN_TIMEOUT_MS,
      'half the jobs',
    );
    killAt = Date.now();
    crashHost(ctx.lan, KILLED_HOST, spare);
    progress(`jobs: kill round, ${tool}: host ${KILLED_HOST} crashed ${killAt - t0} ms in`);
  });
  const present = fs
    .readdirSync(markers)
    .filter((n) => /^\d+$/.test(n) && Number(n) >= 1 && Number(n) <= JOBS);
  if (tool === 'parallel-ssh') {
    const rows = joblogEntries(joblog);
    return {
      tool,
      result,
      markers: present.length,
      done: new Set(rows.filter(([, exit]) => exit === 0).map(([seq]) => seq)).size,
      duplicates: rows.length - new Set(rows.map(([seq]) => seq)).size,
      retried: undefined,
      reassignDelayMs: undefined,
    };
  }
  const recs = records(result.proc);
  const perJob = new Map<number, number>();
  for (const r of recs) perJob.set(Number(r.job), (perJob.get(Number(r.job)) ?? 0) + 1);
  const retriedStarts = recs.filter((r) => Number(r.attempt) >= 2).map((r) => Number(r.start) * 1000);
  return {
    tool,
    result,
    markers: present.length,
    done: new Set(recs.filter((r) => r.exit === 0 && r.signal === 0).map((r) => Number(r.job))).size,
    duplicates: [...perJob.values()].reduce((n, k) => n + k - 1, 0),
    retried: retriedStarts.length,
    reassignDelayMs: retriedStarts.length ? Math.min(...retriedStarts) - killAt : undefined,
  };
}

// ---------------------------------------------------------------------------------------------

const secs = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : 'n/a');
const cpu = (s: number) => (Number.isFinite(s) ? `${s.toFixed(2)} s` : 'n/a');
const rate = (ms: number) => (Number.isFinite(ms) && ms > 0 ? `${((JOBS * 1000) / ms).toFixed(0)}` : 'n/a');
/** Time per job and slot beyond the job's own runtime: (wall - jobs x runtime / slots) / (jobs / slots). */
const overhead = (ms: number, w: Workload) => ((ms - (JOBS * w.runtimeS * 1000) / SLOTS) * SLOTS) / JOBS;
const median = (xs: number[]) => percentile(xs, 50);

async function run(): Promise<Section> {
  const cap = netnsCapability();
  if (!cap.ok) throw new Error(`jobs bench needs network namespaces: ${cap.why}`);
  const notes: string[] = [];
  const tools = chosenTools().filter((tool) => {
    if (tool === 'peer' && !peerCanRun()) {
      notes.push(
        'peer: **not measured**: this build has no `peer run` / `peer worker --allow-exec` yet; the bench runs it as soon as it has.',
      );
      return false;
    }
    return true;
  });
  const load0 = os.loadavg();
  const started = Date.now();
  // tmpfs: joblogs, markers and SQLite files off the shared machine's disk.
  const root = fs.mkdtempSync('/dev/shm/peer-bench-jobs-');
  const offRoot = onCleanup(() => fs.rmSync(root, { recursive: true, force: true }));
  const lan = new NetnsLan(1 + WORKER_HOSTS.length).up();
  const offLan = onCleanup(() => lan.down());
  let ssh: SshdSet | null = null;
  const offSsh = onCleanup(() => ssh?.stop());
  const results = new Map<string, RunResult[]>();
  const key = (tool: Tool, w: Workload) => `${tool}\t${w.name}`;
  const cold = new Map<string, RunResult>();
  const kills: KillReport[] = [];
  try {
    const seqFile = path.join(root, 'seq.txt');
    fs.writeFileSync(seqFile, Array.from({ length: JOBS }, (_, k) => `${k + 1}\n`).join(''));
    const keyFile = path.join(root, 'group.key');
    const ctx: Ctx = { lan, root, seqFile, keyFile, ssh: null };
    let workers: ChildLines[] = [];
    if (tools.includes('peer')) {
      execFileSync(process.execPath, [BIN, 'keygen', '--out', keyFile], { stdio: 'ignore' });
      workers = await startWorkers(ctx);
    }
    if (tools.includes('parallel-ssh')) {
      ssh = await SshdSet.start(lan, SUBMITTER, WORKER_HOSTS);
      ctx.ssh = ssh;
      // The cold round: no master connection yet, so the first jobs pay the ssh handshakes.
      for (const w of WORKLOADS) {
        ssh.closeMasters();
        const r = await oneRun(ctx, 'parallel-ssh', w.command, `cold-${w.name.replace(/\W/g, '')}`);
        cold.set(w.name, r);
        progress(
          `jobs: parallel-ssh cold, ${w.name}: ${secs(r.wallMs)}${r.ok ? '' : `; ${r.problems.join('; ')}`}`,
        );
      }
    }
    for (let k = 1; k <= ROUNDS; k++)
      for (const w of WORKLOADS)
        for (const tool of tools) {
          if (tool === 'parallel-ssh') await ssh!.warm();
          const r = await oneRun(ctx, tool, w.command, `${tool}-${w.name.replace(/\W/g, '')}-${k}`);
          results.set(key(tool, w), [...(results.get(key(tool, w)) ?? []), r]);
          progress(
            `jobs: ${tool}, ${w.name}, round ${k}: ${secs(r.wallMs)}, ${rate(r.wallMs)} jobs/s, tool CPU ${cpu(r.toolCpuS)}, worker hosts CPU ${cpu(r.workerCpuS)}` +
              (r.ok ? '' : `; ${r.problems.join('; ')}`),
          );
          for (const p of r.problems) notes.push(`${tool}, ${w.name}, round ${k}: ${p}.`);
        }
    // parallel's first: its crash spares the peer worker, which peer's round then loses too.
    const killed = workers[WORKER_HOSTS.indexOf(KILLED_HOST)]?.child.pid;
    for (const tool of ['parallel-ssh', 'peer'] as const) {
      if (!tools.includes(tool)) continue;
      if (tool === 'parallel-ssh') await ssh!.warm();
      const spare = new Set(tool === 'parallel-ssh' && killed !== undefined ? [killed] : []);
      const kill = await killRound(ctx, tool, spare);
      kills.push(kill);
      progress(
        `jobs: kill round, ${tool}: ${secs(kill.result.wallMs)}, exit ${kill.result.code}, ${kill.markers}/${JOBS} markers, ${kill.done} done, ${kill.duplicates} duplicates` +
          (kill.result.ok ? '' : `; ${kill.result.problems.join('; ')}`),
      );
      for (const p of kill.result.problems) notes.push(`kill round, ${tool}: ${p}.`);
    }
  } finally {
    ssh?.stop();
    offSsh();
    lan.down();
    offLan();
    fs.rmSync(root, { recursive: true, force: true });
    offRoot();
  }
  const rows: Table['rows'] = [];
  for (const w of WORKLOADS)
    for (const tool of tools) {
      const rs = results.get(key(tool, w)) ?? [];
      const ok = rs.filter((r) => r.ok);
      const walls = ok.map((r) => r.wallMs);
      rows.push([
        w.name,
        tool,
        `${ok.length} of ${rs.length}`,
        secs(median(walls)),
        rs.map((r) => (r.ok ? secs(r.wallMs) : 'failed')).join(', '),
        rate(median(walls)),
        walls.length ? `${overhead(median(walls), w).toFixed(1)} ms` : 'n/a',
        cpu(median(ok.map((r) => r.toolCpuS))),
        tool === 'parallel-local' ? 'n/a' : cpu(median(ok.map((r) => r.workerCpuS))),
        rs.map((r) => r.rows).join(', '),
      ]);
    }
  const tables: Table[] = [
    {
      caption: `${JOBS} jobs per run over ${WORKER_HOSTS.length} worker hosts x ${SLOTS_PER_WORKER} slots (parallel on one host: -j ${SLOTS}); ${ROUNDS} rounds, tools alternating. Wall: spawn to exit, median of the runs that exited 0 with a complete joblog.`,
      headers: [
        'workload',
        'tool',
        'complete runs',
        'wall p50',
        'each round',
        'jobs/s',
        'overhead per job and slot',
        'tool CPU (p50)',
        'worker hosts CPU (p50)',
        'joblog rows (each round)',
      ],
      rows,
    },
  ];
  if (cold.size)
    tables.push({
      caption:
        'parallel over ssh, cold: no master connection open when it starts (run once, before the rounds).',
      headers: ['workload', 'wall', 'jobs/s', 'warm p50', 'complete'],
      rows: WORKLOADS.map((w) => {
        const r = cold.get(w.name)!;
        const warm = (results.get(key('parallel-ssh', w)) ?? []).filter((x) => x.ok).map((x) => x.wallMs);
        return [
          w.name,
          secs(r.wallMs),
          rate(r.wallMs),
          secs(median(warm)),
          r.ok ? 'yes' : r.problems.join('; '),
        ];
      }),
    });
  if (kills.length) {
    const sleepP50 = (tool: Tool) =>
      median((results.get(key(tool, WORKLOADS[1])) ?? []).filter((r) => r.ok).map((r) => r.wallMs));
    tables.push({
      caption: `${JOBS} x \`sleep 0.05; touch M/{}\`; every process of worker host ${KILLED_HOST} killed (SIGKILL: the peer worker or the sshd, and the jobs) once ${JOBS / 2} jobs were reported (peer: --json records; parallel: joblog rows, run with --retries ${PARALLEL_KILL_RETRIES}).`,
      headers: [
        'tool',
        'exit',
        'wall',
        'extra time (vs its sleep 0.05 p50)',
        'markers present',
        'jobs done (exit 0)',
        'duplicate records',
        'joblog rows',
        'records with attempt >= 2',
        'kill to first attempt-2 start',
      ],
      rows: kills.map((k) => [
        k.tool,
        String(k.result.code),
        secs(k.result.wallMs),
        Number.isFinite(sleepP50(k.tool)) ? secs(k.result.wallMs - sleepP50(k.tool)) : 'n/a',
        `${k.markers} of ${JOBS}`,
        `${k.done} of ${JOBS}`,
        k.duplicates,
        k.result.rows,
        k.retried ?? 'n/a',
        k.reassignDelayMs === undefined ? 'n/a' : `${Math.round(k.reassignDelayMs)} ms`,
      ]),
    });
  }
  const load1 = os.loadavg();
  notes.push(
    `Whole module took ${((Date.now() - started) / 60_000).toFixed(1)} min. Load average (1/5/15 min) before: ${load0.map((l) => l.toFixed(2)).join('/')}, after: ${load1.map((l) => l.toFixed(2)).join('/')} on a 2-core machine shared with other work: the ${SLOTS} "remote" slots and the submitter share its 2 cores, so the figures compare tools, not hosts.`,
  );
  return {
    title: 'Jobs: peer run against GNU parallel (issue 21 targets)',
    summary: verdict(tools, results, key),
    tables,
    method: methodText(),
    notes,
  };
}

function verdict(
  tools: Tool[],
  results: Map<string, RunResult[]>,
  key: (tool: Tool, w: Workload) => string,
): string {
  const p50 = (tool: Tool, w: Workload) =>
    median((results.get(key(tool, w)) ?? []).filter((r) => r.ok).map((r) => r.wallMs));
  const target = 'Target: `peer run` faster than GNU parallel over ssh to the same 3 hosts.';
  if (!tools.includes('peer') || !tools.includes('parallel-ssh'))
    return `${target} Not judged this time: ${tools.includes('peer') ? 'parallel over ssh' : 'peer'} was not measured.`;
  const parts = WORKLOADS.map((w) => {
    const peer = p50('peer', w);
    const ssh = p50('parallel-ssh', w);
    if (!Number.isFinite(peer) || !Number.isFinite(ssh))
      return `${w.name}: not judged (a tool has no complete run)`;
    return `${w.name}: peer ${rate(peer)} jobs/s, parallel over ssh ${rate(ssh)} jobs/s (${(ssh / peer).toFixed(2)}x): ${peer < ssh ? 'met' : '**not met**'}`;
  });
  return `${target} ${parts.join('; ')}.`;
}

function methodText(): string {
  return [
    `\`npm run bench -- jobs\` (bench/jobs.ts). A LAN of ${1 + WORKER_HOSTS.length} network namespaces on one bridge (test/support/netns.ts), 10.77.x addresses that exist only inside the namespaces: no packet leaves the machine. Host 0 submits; hosts 1-3 are the workers. Joblogs, markers and data dirs on tmpfs.`,
    `**peer**: \`peer worker --allow-exec --slots ${SLOTS_PER_WORKER} --key-file K --profile ${PROFILE}\` on each worker host, started once and kept; \`peer run --key-file K --input seq.txt --joblog J --profile ${PROFILE} -- CMD\` on host 0 (keyed group: commands run only there).`,
    `**parallel over ssh** (Debian parallel): \`parallel --will-cite --ssh 'ssh -F D/ssh_config' -S ${SLOTS_PER_WORKER}/root@A1,${SLOTS_PER_WORKER}/root@A2,${SLOTS_PER_WORKER}/root@A3 --joblog J CMD :::: seq.txt\` on host 0, to an OpenSSH sshd in each worker namespace (test/support/sshd.ts: its own host key, listening on that namespace's address only, one ed25519 client key, no password; \`SetEnv SHLVL=1\` so the remote bash does not source root's ~/.bashrc, which here runs pyenv init: 150 ms a job that would be this machine's, not ssh's or parallel's). Connections are multiplexed by the client config (ControlMaster auto, ControlPersist 120 s) and each master is opened before every timed run, as parallel's docs advise for many fast remote jobs; parallel's own --controlmaster is not used because it ignores that config's ControlPath and opens its masters during the timed run. One cold run per workload (masters closed first) is shown apart.`,
    `**parallel on one host**: \`parallel --will-cite -j ${SLOTS} --joblog J CMD :::: seq.txt\` on host 0: the floor, no network.`,
    `Workloads: CMD = \`true {}\` and \`sleep 0.05; true {}\`, input \`seq 1 ${JOBS}\`, the same string for every tool. Wall = spawn of the tool to its exit (discovery of the workers included for peer, ssh session set-up included for parallel). Overhead per job and slot = (wall - jobs x runtime / ${SLOTS}) / (jobs / ${SLOTS}), runtime 0 or 50 ms. Tool CPU = user + system seconds of the tool and every process it waited for (bash \`times\` around it: parallel's ssh clients and perl included) plus what the other processes of host 0's namespace used meanwhile (ssh's master connections). Worker hosts CPU = the same over every process of the 3 worker namespaces (peer workers and the job processes they reaped; sshd, its sessions and the jobs they reaped), from /proc/<pid>/stat before and after the run; the other tool's idle servers are in it too (peer's workers keep heartbeating while parallel runs: tenths of a second per run). A run is complete when it exits 0 and its joblog has a header and ${JOBS} rows, each seq once.`,
    `Kill rounds: \`sleep 0.05; touch M/{}\`; peer with --json, parallel over ssh with --retries ${PARALLEL_KILL_RETRIES} (a job whose host failed runs again on another); when ${JOBS / 2} jobs were reported (peer's --json records, parallel's joblog rows), every process in worker host ${KILLED_HOST}'s namespace gets SIGKILL (the peer worker or the sshd with its sessions, and the jobs: a host crash; parallel's round runs first and spares the peer worker). Checked: exit 0, a marker file per seq, one record (peer) or joblog row (parallel) per job, duplicates counted, ${JOBS} joblog rows; extra time = its wall minus the median wall of the same tool's \`sleep 0.05\` runs; reassign delay (peer) = kill to the earliest start (worker clock, same machine) of an attempt >= 2, which is bounded below by the failure detector's dead-after time (${PROFILE} profile).`,
    `Rerun: \`npm run bench -- jobs\` (root, iproute2; parallel and openssh-server are installed by the bench). PEER_BENCH_JOBS_COUNT, PEER_BENCH_JOBS_ROUNDS and PEER_BENCH_JOBS_TOOLS (e.g. parallel-ssh,parallel-local) change the jobs per run, the rounds and the tools.`,
  ].join(' ');
}
