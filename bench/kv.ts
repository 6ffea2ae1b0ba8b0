/**
 * Key-value targets of issue 11, with the real CLI in network namespaces on a bridge
 * (test/support/netns.ts), one process per namespace, lan profile. Nothing leaves the namespaces:
 * every process binds a 10.77.x address that exists only inside its namespace.
 *
 *   hosts 0-2: `peer kv serve --name h1|h2|h3 --log-format json`, each its own SQLite file
 *   host 3:    `peer kv bench --clients 8 --ops N --mix 50:40:10 --keys 16 --acks majority
 *              --read majority --json` (8 client peers in one process), run to completion
 *
 *  a. no faults: throughput and latency percentiles from the bench's JSON, and its check.
 *  b. the same holders, 10 % random loss of incoming UDP on every host (nftables), FAULT_RUNS
 *     runs; in each one holder (h2, then h3, then h1) gets kill -9 KILL_AFTER_MS after the run's
 *     first write reached another holder, then is restarted with the same --name and --data-dir
 *     RESTART_AFTER_MS later. The bench's own check (every live holder's
 *     dump against last-writer-wins over every write made, after every holder converged) must
 *     say SUCCESS; the holders' logs give when the restarted holder was back and what it repaired.
 *  c. after the last run the holders stop (SIGTERM) and this process reads their SQLite files
 *     directly: the three kv tables and operation logs must be identical.
 *  d. (issue 20) between a and b, no faults: one client puts MIB_PUTS values of 1 MiB with
 *     `--acks all` (--mix 0:100:0 --value-bytes 1048576): a large put's latency to all 3 holders,
 *     from the same bench JSON, and its check (every holder's dump holds the 1 MiB values).
 *
 * Parameters (environment): PEER_BENCH_KV_CLIENTS, PEER_BENCH_KV_OPS (per client),
 * PEER_BENCH_KV_FAULT_RUNS, PEER_BENCH_KV_MIB_PUTS.
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import os from 'node:os';
import path from 'node:path';
import { ChildLines } from '../src/cli/child.js';
import { READ_RETRY_MS } from '../src/p2p/kv/index.js';
import { APPEND_RETRY_MS } from '../src/p2p/replication/index.js';
import { NetnsLan, netnsCapability, nftAvailable } from '../test/support/netns.js';
import { delay, envInt, onCleanup, progress, type BenchModule, type Section, type Table } from './lib.js';
import { BIN } from '../test/support/proc.js';

const PORT = 47811;
const PROFILE = 'lan';
const HOLDERS = ['h1', 'h2', 'h3'];
/** Index into HOLDERS of the holder killed in the first loss run. */
const VICTIM = 1;
const BENCH_HOST = 3;

const CLIENTS = envInt('PEER_BENCH_KV_CLIENTS', 8);
const OPS = envInt('PEER_BENCH_KV_OPS', 300);
/** Loss runs with a kill and restart, each killing the next holder (h2, h3, h1, h2, ...): 6 = each twice. */
const FAULT_RUNS = envInt('PEER_BENCH_KV_FAULT_RUNS', 6);
/** Puts of run d, each a 1 MiB value acknowledged by all 3 holders (enough for a p99 of 30). */
const MIB_PUTS = envInt('PEER_BENCH_KV_MIB_PUTS', 30);
const MIB = 1024 * 1024;
/** Keys of run d: few, so each holder's final dump (the bench's check) stays a few MiB. */
const MIB_KEYS = 4;
/** Operations per client of the unreported warm-up run. */
const WARMUP_OPS = 50;
const MIX = '50:40:10';
const KEYS = 16;
const LOSS_PERCENT = 10;
/** The deliberate fault schedule of run b, from the run's first write seen at h1. */
const KILL_AFTER_MS = 3_000;
const RESTART_AFTER_MS = 3_000;
/** Node start-up of several processes on a loaded 2-core machine, and the holders meeting. */
const START_TIMEOUT_MS = 60_000;
/** One `peer kv bench` run, start-up and settle included (its own --settle is 30 s). */
const RUN_TIMEOUT_MS = 110_000;
/** How long run b waits for the run's first write before giving up on the fault schedule. */
const FIRST_WRITE_TIMEOUT_MS = 30_000;
/** One `peer kv dump` when a failed check is re-checked. */
const RECHECK_TIMEOUT_MS = 20_000;

export const bench: BenchModule = { name: 'kv', budgetMs: 420_000, run };

type Ev = Record<string, unknown>;

interface LatencyRow {
  count: number;
  ok: number;
  failed: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** The fields of `peer kv bench --json` (src/commands/kv/bench.ts BenchResult) used here. */
interface BenchJson {
  ok: boolean;
  elapsedMs: number;
  opsPerSec: number;
  latency: Record<'get' | 'put' | 'delete' | 'all', LatencyRow>;
  writes: number;
  unconfirmed: string[];
  convergedMs: number | null;
  holders: Array<{ name: string; ok: boolean; keys: number; differences: string[] }>;
  problems: string[];
}

interface RunOutcome {
  label: string;
  result: BenchJson;
  exitCode: number | null;
  wallMs: number;
  loadBefore: string;
  loadAfter: string;
  /** For a failed check: what the holders named in it hold once the bench exited. */
  recheck?: string;
}

const loadavg = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join('/');

class Holder {
  lines!: ChildLines;
  constructor(
    private readonly lan: NetnsLan,
    readonly index: number,
    readonly dataDir: string,
  ) {
    this.start();
  }
  get name(): string {
    return HOLDERS[this.index]!;
  }
  start(): void {
    const args = [BIN, 'kv', 'serve', '--name', this.name, '--interface', this.lan.host(this.index).address];
    args.push(
      '--port',
      String(PORT),
      '--profile',
      PROFILE,
      '--data-dir',
      this.dataDir,
      '--log-format',
      'json',
    );
    // `ip netns exec` execs node, so killing the child kills the holder itself.
    this.lines = new ChildLines(this.lan.spawn(this.index, process.execPath, args, { NO_COLOR: '1' }));
  }
  events(): Ev[] {
    return this.lines.json();
  }
  /** Up, and has logged `join` for every other holder (in this incarnation). */
  ready(): boolean {
    const ev = this.events();
    if (!ev.some((e) => e.event === 'up')) return false;
    const joined = new Set(ev.filter((e) => e.event === 'join').map((e) => e.name));
    return HOLDERS.every((n) => n === this.name || joined.has(n));
  }
}

/** What a run changes of the default workload (runs a and b use it unchanged). */
interface Workload {
  clients: number;
  ops: number;
  mix: string;
  keys: number;
  acks: string;
  read: string;
  valueBytes?: number;
}

const DEFAULT_WORKLOAD: Workload = {
  clients: CLIENTS,
  ops: OPS,
  mix: MIX,
  keys: KEYS,
  acks: 'majority',
  read: 'majority',
};

/** Runs `peer kv bench` in the bench host; resolves with its parsed JSON and exit code. */
function runBench(
  lan: NetnsLan,
  name: string,
  w: Partial<Workload> = {},
): Promise<{ json: BenchJson; code: number | null; ms: number }> {
  const { clients, ops, mix, keys, acks, read, valueBytes } = { ...DEFAULT_WORKLOAD, ...w };
  const args = [BIN, 'kv', 'bench', '--name', name, '--interface', lan.host(BENCH_HOST).address];
  args.push('--port', String(PORT), '--profile', PROFILE, '--clients', String(clients), '--ops', String(ops));
  args.push('--mix', mix, '--keys', String(keys), '--acks', acks, '--read', read, '--json');
  if (valueBytes !== undefined) args.push('--value-bytes', String(valueBytes));
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = lan.spawn(BENCH_HOST, process.execPath, args, { NO_COLOR: '1' });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`peer kv bench overran ${RUN_TIMEOUT_MS} ms: ${stderr.slice(-500)}`));
    }, RUN_TIMEOUT_MS);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      try {
        resolve({ json: JSON.parse(stdout.slice(stdout.indexOf('{'))) as BenchJson, code, ms });
      } catch {
        reject(
          new Error(
            `peer kv bench (exit ${code}) printed no JSON: ${stdout.slice(-300)} ${stderr.slice(-500)}`,
          ),
        );
      }
    });
  });
}

const f1 = (v: number) => v.toFixed(1);
const atOf = (e: Ev) => Date.parse(e.at as string);

function latencyRows(o: RunOutcome): Table['rows'] {
  return (['all', 'get', 'put', 'delete'] as const).map((k) => {
    const l = o.result.latency[k];
    return [o.label, k, l.count, l.failed, f1(l.p50Ms), f1(l.p90Ms), f1(l.p99Ms), f1(l.maxMs)];
  });
}

function checkText(r: BenchJson): string {
  if (r.ok) return `SUCCESS (${r.holders.map((h) => h.name).join(', ')})`;
  const first = r.problems.slice(0, 3).join('; ');
  return `FAILURE: ${r.problems.length} problem(s): ${first}${r.problems.length > 3 ? '; ...' : ''}`;
}

/** Runs a short `peer` command in the bench host; resolves with its stdout (throws on a non-zero exit). */
function runPeer(lan: NetnsLan, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = lan.spawn(BENCH_HOST, process.execPath, [BIN, ...args], { NO_COLOR: '1' });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), RECHECK_TIMEOUT_MS);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`peer ${args.slice(0, 2).join(' ')} exit ${code}: ${stderr.trim().slice(-300)}`));
    });
  });
}

/** `h1: KEY: expected "v" (lamport N, origin:seq), holds ...` from the bench's problems. */
const PROBLEM_RE = /^(\S+): (\S+): expected .*\(lamport (\d+), [0-9a-f]+:(\d+)\), holds /;

/**
 * For a failed check: dumps each holder named in a difference again (`peer kv dump --json
 * --tombstones --from NAME`) once the bench has exited, and says whether it now holds the version
 * the check expected. Tells a late check (the holder caught up) from a lost or wrong write.
 */
async function recheck(lan: NetnsLan, r: BenchJson, exitedAt: number): Promise<string> {
  const wanted = new Map<string, Array<{ key: string; lamport: number; seq: number }>>();
  for (const p of r.problems) {
    const m = PROBLEM_RE.exec(p);
    if (!m) continue;
    const list = wanted.get(m[1]!) ?? [];
    list.push({ key: m[2]!, lamport: Number(m[3]), seq: Number(m[4]) });
    wanted.set(m[1]!, list);
  }
  if (wanted.size === 0) return 'no difference in a form this bench can re-check';
  const parts: string[] = [];
  for (const [holder, keys] of wanted) {
    const args = ['kv', 'dump', '--json', '--tombstones', '--from', holder];
    args.push('--interface', lan.host(BENCH_HOST).address, '--port', String(PORT), '--profile', PROFILE);
    let rows: Array<{ key: string; lamport: number; seq: number }>;
    try {
      rows = (JSON.parse(await runPeer(lan, args)) as { rows: typeof rows }).rows;
    } catch (err) {
      parts.push(`${holder}: dump failed (${(err as Error).message})`);
      continue;
    }
    const at = ((Date.now() - exitedAt) / 1000).toFixed(1);
    for (const k of keys) {
      const got = rows.find((x) => x.key === k.key);
      const same = got && got.lamport === k.lamport && got.seq === k.seq;
      parts.push(
        `${holder} ${k.key}: ${same ? 'now holds the expected version' : `still holds lamport ${got?.lamport ?? 'nothing'}`} (dump ${at} s after the bench exited)`,
      );
    }
  }
  return parts.join('; ');
}

interface FaultRun {
  outcome: RunOutcome;
  victim: string;
  /** Times from the run's first write seen by the observing holder, ms. */
  killMs: number;
  restartMs: number;
  upMs: number;
  joinedMs: number;
  firstRepair: { ms: number; count: number } | null;
  lastWriteMs: number;
  repaired: number;
  repairs: number;
  /** The restart happened before the run's last write (so the fault hit the run itself). */
  inRun: boolean;
}

/** A run key's write applied at a holder (every run names its keys `bench-<run>-k<i>`). */
const isRunWrite = (e: Ev) => e.event === 'apply' && typeof e.key === 'string' && e.key.startsWith('bench-');

/**
 * One bench run during which holders[v] gets kill -9 KILL_AFTER_MS after holders[o] logged the
 * run's first write, and is started again RESTART_AFTER_MS later with the same name and data dir.
 */
async function faultRun(
  lan: NetnsLan,
  holders: Holder[],
  v: number,
  o: number,
  t: number,
): Promise<FaultRun> {
  const victim = holders[v]!;
  const observer = holders[o]!;
  const mark = observer.events().length;
  const loadBefore = loadavg();
  const pending = runBench(lan, `bench-b${t + 1}`);
  let benchDone = false;
  void pending.then(
    () => (benchDone = true),
    () => (benchDone = true),
  );
  await observer.lines.until(
    () => benchDone || observer.events().slice(mark).some(isRunWrite),
    FIRST_WRITE_TIMEOUT_MS,
    'the loss run to write',
  );
  const firstWrite = observer.events().slice(mark).find(isRunWrite);
  const zero = firstWrite ? atOf(firstWrite) : Date.now();
  await delay(Math.max(0, zero + KILL_AFTER_MS - Date.now()));
  const killAt = Date.now();
  victim.lines.child.kill('SIGKILL');
  await victim.lines.exited;
  progress(
    `kv: loss run ${t + 1}: ${victim.name} killed (kill -9) ${killAt - zero} ms after the first write`,
  );
  await delay(RESTART_AFTER_MS);
  const restartAt = Date.now();
  victim.start();
  const b = await pending;
  const exitedAt = Date.now();
  const outcome: RunOutcome = {
    label: `b${t + 1}. ${LOSS_PERCENT} % loss, ${victim.name} kill -9 + restart`,
    result: b.json,
    exitCode: b.code,
    wallMs: b.ms,
    loadBefore,
    loadAfter: loadavg(),
  };
  if (!b.json.ok) outcome.recheck = await recheck(lan, b.json, exitedAt);
  progress(
    `kv: loss run ${t + 1}: ${b.json.opsPerSec} ops/s, ${b.json.ok ? 'SUCCESS' : 'FAILURE'} (exit ${b.code})`,
  );
  // What the restarted holder logged (its ChildLines are new since the restart).
  const vev = victim.events();
  const upEv = vev.find((e) => e.event === 'up');
  const joins = vev.filter((e) => e.event === 'join' && HOLDERS.includes(e.name as string));
  const repairs = vev.filter((e) => e.event === 'repair');
  const writes = observer.events().slice(mark).filter(isRunWrite);
  const lastWriteAt = writes.length ? atOf(writes[writes.length - 1]!) : NaN;
  return {
    outcome,
    victim: victim.name,
    killMs: killAt - zero,
    restartMs: restartAt - zero,
    upMs: upEv ? atOf(upEv) - zero : NaN,
    joinedMs: joins.length >= 2 ? atOf(joins[1]!) - zero : NaN,
    firstRepair: repairs[0] ? { ms: atOf(repairs[0]) - zero, count: Number(repairs[0].count ?? 0) } : null,
    lastWriteMs: lastWriteAt - zero,
    repaired: repairs.reduce((n, e) => n + Number(e.count ?? 0), 0),
    repairs: repairs.length,
    inRun: restartAt < lastWriteAt,
  };
}

/** One holder's kv table and operation log, as canonical text, read straight from its file. */
function readHolderFile(file: string): {
  table: string;
  log: string;
  rows: number;
  live: number;
  logRows: number;
} {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT key, value, lamport, origin, seq FROM kv ORDER BY key').all();
    const log = db.prepare('SELECT origin, seq, lamport, text FROM kv_log ORDER BY origin, seq').all();
    return {
      table: JSON.stringify(rows),
      log: JSON.stringify(log),
      rows: rows.length,
      live: (rows as Array<{ value: string | null }>).filter((r) => r.value !== null).length,
      logRows: log.length,
    };
  } finally {
    db.close();
  }
}

async function run(): Promise<Section> {
  const cap = netnsCapability();
  if (!cap.ok) throw new Error(`the kv bench needs network namespaces: ${cap.why}`);
  if (!nftAvailable()) throw new Error('the kv bench needs nftables (nft) for the loss run');
  const t0 = Date.now();
  const loadStart = loadavg();
  const lan = new NetnsLan(4).up();
  const undoLan = onCleanup(() => lan.down());
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-bench-kv-'));
  const undoDir = onCleanup(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  try {
    const holders = HOLDERS.map((_, i) => new Holder(lan, i, dataDir));
    for (const h of holders)
      await h.lines.until(() => h.ready(), START_TIMEOUT_MS, `${h.name} to be up and see the other holders`);
    progress(`kv: holders up and joined after ${Date.now() - t0} ms`);

    // Warm-up, not reported: the holders are long-lived, and their first operations run cold
    // code (JIT, SQLite page cache), which would count against run a only.
    const warm = await runBench(lan, 'bench-warm', { ops: WARMUP_OPS });
    progress(`kv: warm-up: ${warm.json.opsPerSec} ops/s, ${warm.json.ok ? 'SUCCESS' : 'FAILURE'}`);

    // a. no faults
    const loadBefore = loadavg();
    const a = await runBench(lan, 'bench-a');
    const runA: RunOutcome = {
      label: 'a. no faults',
      result: a.json,
      exitCode: a.code,
      wallMs: a.ms,
      loadBefore,
      loadAfter: loadavg(),
    };
    if (!a.json.ok) runA.recheck = await recheck(lan, a.json, Date.now());
    progress(`kv: run a: ${a.json.opsPerSec} ops/s, ${a.json.ok ? 'SUCCESS' : 'FAILURE'} (exit ${a.code})`);

    // d. 1 MiB values, --acks all, one client: a large put's latency (issue 20)
    const loadBeforeD = loadavg();
    const mib = await runBench(lan, 'bench-mib', {
      clients: 1,
      ops: MIB_PUTS,
      mix: '0:100:0',
      keys: MIB_KEYS,
      acks: 'all',
      read: 'all',
      valueBytes: MIB,
    });
    const runD: RunOutcome = {
      label: `d. 1 MiB values, --acks all`,
      result: mib.json,
      exitCode: mib.code,
      wallMs: mib.ms,
      loadBefore: loadBeforeD,
      loadAfter: loadavg(),
    };
    progress(
      `kv: run d: 1 MiB puts p50 ${f1(mib.json.latency.put.p50Ms)} ms, p99 ${f1(mib.json.latency.put.p99Ms)} ms, ${mib.json.ok ? 'SUCCESS' : 'FAILURE'} (exit ${mib.code})`,
    );

    // b. 10 % loss everywhere, then one holder killed and restarted per run, in turn
    lan.addLoss(LOSS_PERCENT);
    const faults: FaultRun[] = [];
    for (let t = 0; t < FAULT_RUNS; t++) {
      const v = (VICTIM + t) % holders.length;
      faults.push(await faultRun(lan, holders, v, (v + 1) % holders.length, t));
    }

    // Independent of the bench's check: stop the holders and compare their SQLite files.
    await Promise.all(
      holders.map((h) => {
        h.lines.child.kill('SIGTERM');
        return h.lines.exited;
      }),
    );
    const files = holders.map((h) => readHolderFile(path.join(dataDir, `${h.name}.db`)));
    const sameTables = files.every((x) => x.table === files[0]!.table);
    const sameLogs = files.every((x) => x.log === files[0]!.log);
    const s = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : 'n/a');

    const runs = [runA, ...faults.map((x) => x.outcome)];
    const mibPut = runD.result.latency.put;
    const mibTable: Table = {
      caption: `**1 MiB values** (issue 20): one client, ${MIB_PUTS} puts of 1,048,576-byte values on ${MIB_KEYS} keys, \`--acks all\` (all ${HOLDERS.length} holders confirmed each durably), no faults, one put at a time. Each travels to each holder as a reliable unicast message (fragments), not in one datagram.`,
      headers: ['puts', 'failed', 'p50', 'p90', 'p99', 'max', 'check', 'exit'],
      rows: [
        [
          mibPut.count,
          mibPut.failed,
          `${f1(mibPut.p50Ms)} ms`,
          `${f1(mibPut.p90Ms)} ms`,
          `${f1(mibPut.p99Ms)} ms`,
          `${f1(mibPut.maxMs)} ms`,
          checkText(runD.result),
          String(runD.exitCode),
        ],
      ],
    };
    const summaryTable: Table = {
      caption: `**Runs**: ${HOLDERS.length} holders, ${CLIENTS} clients × ${OPS} operations (get:put:delete ${MIX}) on ${KEYS} keys, \`--acks majority --read majority\`. Ops/s = all operations / the time from the first to the last operation (start-up and the final check excluded). Converged = from the last operation until every holder advertised the same log.`,
      headers: [
        'run',
        'ops/s',
        'operations',
        'failed ops',
        'p50 all',
        'p99 all',
        'writes',
        'unconfirmed writes',
        'converged after',
        'check',
        'exit',
        'process wall time',
        'load avg before / after',
      ],
      rows: runs.map((o) => [
        o.label,
        o.result.opsPerSec,
        o.result.latency.all.count,
        o.result.latency.all.failed,
        `${f1(o.result.latency.all.p50Ms)} ms`,
        `${f1(o.result.latency.all.p99Ms)} ms`,
        o.result.writes,
        o.result.unconfirmed.length,
        o.result.convergedMs === null ? 'did not converge' : s(o.result.convergedMs),
        checkText(o.result),
        String(o.exitCode),
        s(o.wallMs),
        `${o.loadBefore} / ${o.loadAfter}`,
      ]),
    };
    const latTable: Table = {
      caption:
        "**Latency per operation** (ms; a write: until a majority of holders confirmed it durably; a read: until a majority answered). 'failed' = timed out after 5 s.",
      headers: ['run', 'op', 'count', 'failed', 'p50', 'p90', 'p99', 'max'],
      rows: runs.flatMap(latencyRows),
    };
    const faultTable: Table = {
      caption: `**Fault timelines of the loss runs** (wall-clock times from the holders' JSON logs and this process; 0 = the run's first write logged by a holder that stays up).`,
      headers: ['event', ...faults.map((x) => x.outcome.label.split('.')[0]!)],
      rows: [
        ['holder killed', ...faults.map((x) => x.victim)],
        ['kill -9', ...faults.map((x) => s(x.killMs))],
        ['restarted (same --name, --data-dir)', ...faults.map((x) => s(x.restartMs))],
        ['restarted holder logged up', ...faults.map((x) => s(x.upMs))],
        ['... logged join of both other holders', ...faults.map((x) => s(x.joinedMs))],
        [
          '... first repair (operations)',
          ...faults.map((x) => (x.firstRepair ? `${s(x.firstRepair.ms)} (${x.firstRepair.count})` : 'none')),
        ],
        ['last write of the run at the observing holder', ...faults.map((x) => s(x.lastWriteMs))],
        [
          'operations repaired after the restart',
          ...faults.map((x) => `${x.repaired} in ${x.repairs} repair(s)`),
        ],
      ],
    };
    const fileTable: Table = {
      caption:
        '**SQLite files after the last run** (holders stopped with SIGTERM, each file opened read-only by this process; every run of this module included).',
      headers: ['holder', 'kv rows', 'live keys', 'kv_log rows', 'same table as h1', 'same log as h1'],
      rows: holders.map((h, i) => [
        h.name,
        files[i]!.rows,
        files[i]!.live,
        files[i]!.logRows,
        files[i]!.table === files[0]!.table ? 'yes' : '**no**',
        files[i]!.log === files[0]!.log ? 'yes' : '**no**',
      ]),
    };

    const verdict = (o: RunOutcome) =>
      o.result.ok ? '**SUCCESS**' : `**FAILURE** (${o.result.problems.length} problem(s))`;
    const faultOk = faults.every((x) => x.outcome.result.ok);
    const notInRun = faults.filter((x) => !x.inRun).map((x) => x.victim);
    const worst = (f: (o: RunOutcome) => number) => Math.max(...faults.map((x) => f(x.outcome)));
    const summary = [
      `- 3 holders, ${CLIENTS} clients, no faults: **${runA.result.opsPerSec} ops/s**, p99 ${f1(runA.result.latency.all.p99Ms)} ms (p50 ${f1(runA.result.latency.all.p50Ms)} ms); check ${verdict(runA)}. No numeric target in the issue.`,
      `- Consistency with ${LOSS_PERCENT} % loss on every host and a holder killed (kill -9) and restarted during the run: ${faults.length} run(s), each killing the next holder in turn: check ${faults.map((x) => `${x.victim} ${verdict(x.outcome)}`).join(', ')}: target ${faultOk ? '**met**' : '**not met**'}. ${faults.map((x) => `${x.outcome.result.opsPerSec}`).join(', ')} ops/s; p99 up to ${f1(worst((o) => o.result.latency.all.p99Ms))} ms; ${faults.reduce((n, x) => n + x.outcome.result.latency.all.failed, 0)} operation(s) timed out in all; holders converged at most ${s(worst((o) => o.result.convergedMs ?? Infinity))} after the last operation. ${notInRun.length === 0 ? "Every kill and restart fell inside its run's operations." : `**The restart of ${notInRun.join(', ')} did not fall inside the run's operations** (the run was too short), so that fault was only partly exercised.`}`,
      `- A 1 MiB kv put with \`--acks all\` to 3 holders (issue 20): p50 **${f1(mibPut.p50Ms)} ms**, p99 **${f1(mibPut.p99Ms)} ms** over ${mibPut.count} puts (${mibPut.failed} failed); check ${verdict(runD)}. No numeric target in the issue.`,
      `- After all runs the three SQLite files hold ${sameTables ? 'the same' : '**different**'} kv table and ${sameLogs ? 'the same' : '**different**'} operation log (${files[0]!.rows} rows, ${files[0]!.logRows} operations).`,
      ...runs
        .filter((o) => o.recheck !== undefined)
        .map(
          (o) =>
            `- ${o.label.split('.')[0]} failed its check (the bench judged the holders converged ${o.result.convergedMs === null ? 'never' : s(o.result.convergedMs)} after its last operation, from the log digests they advertise); the holders it named, dumped again after the bench exited: ${o.recheck}.`,
        ),
    ];
    const problems = runs
      .filter((o) => !o.result.ok)
      .map(
        (o) =>
          `Run ${o.label}: the check's problems (${o.result.problems.length}): ${o.result.problems.slice(0, 10).join('; ')}. Re-checked after the run: ${o.recheck ?? 'not re-checked'}.`,
      );
    return {
      title: 'Key-value store (issue 11 targets)',
      summary: summary.join('\n'),
      tables: [summaryTable, latTable, mibTable, faultTable, fileTable],
      method: `Four network namespaces on a bridge (test/support/netns.ts), lan profile. Hosts 1-3: \`peer kv serve --name hN --interface 10.77.x.y --port ${PORT} --profile lan --data-dir <tmp> --log-format json\` (one SQLite file each, synchronous=FULL); the bench starts a run once every holder logged \`up\` and a \`join\` for both others. Host 4: \`peer kv bench --clients ${CLIENTS} --ops ${OPS} --mix ${MIX} --keys ${KEYS} --acks majority --read majority --json\` run to completion; every number in the first two tables is from its JSON (opsPerSec, latency.*, convergedMs, ok, problems). Its check: after the last operation it waits (up to 30 s) until every write was confirmed and every holder the group knows is alive with the same log digest, then dumps each live holder and compares it with last-writer-wins (Lamport time, writer id) over every write it made. Before run a, an unreported warm-up run (${WARMUP_OPS} operations per client) so the long-lived holders do not run cold code during run a only. Run a: no faults. Run d, right after a, no faults: \`peer kv bench --clients 1 --ops ${MIB_PUTS} --mix 0:100:0 --keys ${MIB_KEYS} --value-bytes 1048576 --acks all --read all --json\` (its latency.put; its check dumps the 1 MiB values from every holder). Runs b1-b${FAULT_RUNS}: the same holders (the bench's keys are named after each run, so runs do not interfere), nftables on every host dropping ${LOSS_PERCENT} % of incoming UDP at random (\`meta l4proto udp numgen random mod 100 < ${LOSS_PERCENT} drop\`: data, acks, repairs and heartbeats alike); in each run one holder (h2, h3, h1, in turn) gets kill -9 ${KILL_AFTER_MS / 1000} s after the next holder logged the run's first write and is started again ${RESTART_AFTER_MS / 1000} s later with the same --name and --data-dir (the only fixed waits in the module). Finally the holders get SIGTERM and their SQLite files (kv and kv_log tables) are read directly and compared. Rerun: \`npm run bench -- kv\` (root, iproute2, nftables; \`npm run build\` first, the processes run bin/run.js from dist/); PEER_BENCH_KV_CLIENTS, PEER_BENCH_KV_OPS, PEER_BENCH_KV_FAULT_RUNS and PEER_BENCH_KV_MIB_PUTS change the clients, the operations per client, the number of loss runs and the 1 MiB puts of run d.`,
      notes: [
        `Whole module took ${((Date.now() - t0) / 60000).toFixed(1)} min. Load average (1/5/15 min) at the start: ${loadStart}, at the end: ${loadavg()}, on a 2-core machine shared with other work: 3 holders and the 8 client peers (one process) share those 2 cores with it, so latencies include scheduling delay.`,
        'Each client waits for its operation before the next (closed loop), so ops/s is bounded by latency × clients, not by a server queue.',
        "Since issue 20 the bench's clients join the group for their run instead of listening as observers: the final check dumps whole tables, and run d's 1 MiB rows reach only members (reliable delivery carries large messages only between members). The loss runs' process wall time includes dumping those four 1 MiB values from each holder.",
        `Under loss, an operation whose datagram, ack or answer was dropped waits for the client's resend (APPEND_RETRY_MS = ${APPEND_RETRY_MS} ms for writes, READ_RETRY_MS = ${READ_RETRY_MS} ms for reads): the p90 and p99 of the loss runs sit on those steps (one and two resends).`,
        "Caveat on the check itself: `peer kv bench` judges the holders converged when the log digests they advertise on heartbeats (membership tag, as the observing client last heard it) are all equal, with no guarantee those digests are newer than the last writes; with loss they can be stale. While this module was being written, 2 of 15 loss runs (in earlier runs of it, same day, same settings) failed the check with 'converged after 0.00 s' and a holder one write behind on one key; in the one this module re-checked, that holder held the expected version 1.6 s after the bench exited, and the SQLite files were identical at the end. So a FAILURE whose 'converged after' is 0.00 s is most likely that race in the check, not a lost write; the re-check line above tells which, when a run fails.",
        'The check compares final states only: it does not check what each read returned (for instance that a read saw every write acknowledged before it started), so read anomalies, if any, are not measured here.',
        "The loss runs' p50 is below run a's. A likely reason, not verified: the load is a closed loop on 2 busy cores, and clients parked on a 200 ms resend leave the CPU to the others, whose operations then run with less queueing; ops/s stays in the same range.",
        ...problems,
      ],
    };
  } finally {
    lan.down();
    undoLan();
    fs.rmSync(dataDir, { recursive: true, force: true });
    undoDir();
  }
}
