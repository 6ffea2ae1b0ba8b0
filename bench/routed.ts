/**
 * A group across two subnets joined by a router that forwards no multicast (an office split in
 * VLANs), with the real CLI in network namespaces (test/support/netns.ts, NetnsLan.routed):
 * 20 `peer up --join <seed>` against 20 `serf agent -join <seed>`, in the same run.
 *
 *  a. convergence: the seed starts first; the other 19 start at once, each told only the seed's
 *     address; time until every process sees the 19 others alive.
 *  b. crash detection: kill -9 one process (rotating over both subnets, never the seed), time until
 *     each survivor logs it dead (peer: `dead`; Serf: `EventMemberFailed`), split into survivors on
 *     the victim's subnet and across the router; the victim restarts and rejoins before the next.
 *  c. peer again with multicast dropped at subnet B's switch (nftables, bridge family): its members
 *     hear each other by unicast only. Serf uses no multicast, so it runs once.
 *
 * Nothing leaves the namespaces: every address is a 10.77.x or 10.78.x that exists only inside them.
 * Parameters (environment): PEER_BENCH_ROUTED_TRIALS, PEER_BENCH_ROUTED_SERF_TRIALS,
 * PEER_BENCH_ROUTED_TOOLS (peer,serf by default: which to run).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChildLines } from '../src/cli/child.js';
import { NetnsLan, netnsCapability, nftAvailable } from '../test/support/netns.js';
import { BIN } from '../test/support/proc.js';
import {
  envInt,
  ms,
  onCleanup,
  progress,
  summarize,
  waitFor,
  TimedLines,
  type BenchModule,
  type Section,
  type Table,
} from './lib.js';

/** Hosts on subnet A and on subnet B; host 0 (on A) is the seed everyone is told. */
const SUBNETS = [10, 10];
const SIZE = SUBNETS[0]! + SUBNETS[1]!;
const PORT = 47777;
const SERF_RPC = '127.0.0.1:7373';
const TRIALS = envInt('PEER_BENCH_ROUTED_TRIALS', 10);
const SERF_TRIALS = envInt('PEER_BENCH_ROUTED_SERF_TRIALS', 6);
/** Startup of 20 processes on a loaded 2-core machine, then the join: generous. */
const CONVERGE_TIMEOUT_MS = 90_000;
const DETECT_TIMEOUT_MS = 15_000;
/** Serf's suspicion timeout alone is 4 x log10(20) x 1 s, after up to one probe round of 19 s. */
const SERF_DETECT_TIMEOUT_MS = 60_000;
const TARGET_DETECT_RATIO = 4;
const TOOLS = (process.env.PEER_BENCH_ROUTED_TOOLS ?? 'peer,serf').split(',');
/**
 * Each kill comes this long after all see all: 19 Node.js processes just started (or one just
 * restarted) keep the 2 cores busy compiling for a few seconds, and a survivor starved then waits
 * longer before it declares a death (local health): the first trials measured that, up to 3.8 s,
 * not the detector. Serf waits the same.
 */
const SETTLE_MS = 3_000;

export const bench: BenchModule = {
  name: 'routed',
  anchors: [
    { command: 'serf', debianPackage: 'serf' },
    { command: 'nft', debianPackage: 'nftables' },
  ],
  budgetMs: (2 * (TRIALS * 20 + 120) + SERF_TRIALS * 90 + 180) * 1000,
  run,
};

export const nameOf = (i: number) => `n${String(i).padStart(2, '0')}`;

/** What one output line of a member process says about another member, if anything. */
interface Seen {
  name: string;
  /** true: alive (joined, back, restarted); false: suspected, dead or left. */
  alive: boolean;
  /** When it declared the member dead or failed (ms since the epoch), if this line does. */
  deadAt?: number;
}

/**
 * One member process per host, its membership view kept up to date from its output as it comes
 * (20 processes x 19 names: rescanning every line at every poll would cost more than the peers).
 * Subclasses say how to start it and how to read one of its lines.
 */
export abstract class Member {
  private scanned = 0;
  private readonly view = new Set<string>();
  private readonly deaths: Array<{ line: number; name: string; at: number }> = [];
  constructor(
    protected readonly lan: NetnsLan,
    readonly index: number,
    protected readonly join: string | null,
  ) {}
  protected abstract spawn(): void;
  protected abstract lineCount(): number;
  protected abstract read(i: number): Seen | null;
  /** When its process said it was running (peer: the `up` line; Serf: "agent running"), if it has. */
  abstract readyAt(): number | undefined;
  abstract kill(): void;
  abstract exited(): Promise<unknown>;

  start(): void {
    this.spawn();
    this.scanned = 0;
    this.view.clear();
  }
  private scan(): void {
    for (const n = this.lineCount(); this.scanned < n; this.scanned++) {
      const seen = this.read(this.scanned);
      if (!seen) continue;
      if (seen.alive) this.view.add(seen.name);
      else this.view.delete(seen.name);
      if (seen.deadAt !== undefined)
        this.deaths.push({ line: this.scanned, name: seen.name, at: seen.deadAt });
    }
  }
  /** Its current view: the names it holds alive. */
  alive(): Set<string> {
    this.scan();
    return this.view;
  }
  /** When it first logged `name` dead after line mark `from` (ms since the epoch). */
  deadAt(name: string, from: number): number | undefined {
    this.scan();
    return this.deaths.find((d) => d.name === name && d.line >= from)?.at;
  }
  mark(): number {
    this.scan();
    return this.scanned;
  }
}

export class PeerMember extends Member {
  private lines!: ChildLines;
  constructor(
    lan: NetnsLan,
    index: number,
    private readonly dataDir: string,
    join: string | null,
  ) {
    super(lan, index, join);
  }
  protected spawn(): void {
    const args = [BIN, 'up', '--name', nameOf(this.index), '--interface', this.lan.host(this.index).address];
    args.push('--port', String(PORT), '--data-dir', this.dataDir, '--profile', 'lan', '--log-format', 'json');
    if (this.join) args.push('--join', this.join);
    this.lines = new ChildLines(this.lan.spawn(this.index, process.execPath, args, { NO_COLOR: '1' }));
  }
  protected lineCount(): number {
    return this.lines.json().length;
  }
  protected read(i: number): Seen | null {
    const e = this.lines.json()[i]!;
    const name = e.name as string | undefined;
    if (!name) return null;
    if (e.event === 'join' || e.event === 'alive' || e.event === 'restart') return { name, alive: true };
    if (e.event === 'suspect' || e.event === 'left') return { name, alive: false };
    if (e.event === 'dead') return { name, alive: false, deadAt: Date.parse(e.at as string) };
    return null;
  }
  readyAt(): number | undefined {
    const up = this.lines.json().find((e) => e.event === 'up');
    return up ? Date.parse(up.at as string) : undefined;
  }
  kill(): void {
    this.lines.child.kill('SIGKILL');
  }
  exited(): Promise<unknown> {
    return this.lines.exited;
  }
}

class SerfMember extends Member {
  private lines!: TimedLines;
  protected spawn(): void {
    const args = ['agent', '-profile=lan', `-bind=${this.lan.host(this.index).address}`];
    args.push(`-node=${nameOf(this.index)}`, `-rpc-addr=${SERF_RPC}`, '-log-level=info');
    if (this.join) args.push(`-join=${this.join}`);
    this.lines = new TimedLines(this.lan.spawn(this.index, 'serf', args));
  }
  protected lineCount(): number {
    return this.lines.lines.length;
  }
  protected read(i: number): Seen | null {
    const l = this.lines.lines[i]!;
    const m = /serf: EventMember(\w+): (\S+)/.exec(l.text);
    if (!m) return null;
    // Stamped when the line reached the bench: can only add a little to Serf's time.
    return { name: m[2]!, alive: m[1] === 'Join', ...(m[1] === 'Failed' ? { deadAt: l.at } : {}) };
  }
  readyAt(): number | undefined {
    return this.lines.find('Serf agent running', 0)?.at;
  }
  kill(): void {
    this.lines.child.kill('SIGKILL');
  }
  exited(): Promise<unknown> {
    return this.lines.exited;
  }
}

export function allSeeAll(members: Member[]): boolean {
  return members.every((m) => {
    const view = m.alive();
    return members.every((o) => o === m || view.has(nameOf(o.index)));
  });
}

interface Result {
  /** From the last of the 19 processes ready to every process seeing all others alive. */
  convergeMs: number;
  /** From spawning the 19 to the last of them ready. */
  startMs: number;
  /** Detection times by survivors on the victim's subnet, and across the router. */
  same: number[];
  across: number[];
  missed: number;
}

async function measure(
  tool: string,
  lan: NetnsLan,
  make: (i: number, join: string | null) => Member,
  trials: number,
  detectTimeoutMs: number,
): Promise<Result> {
  const seed = `${lan.host(0).address}:${tool === 'serf' ? 7946 : PORT}`;
  const members = Array.from({ length: SIZE }, (_, i) => make(i, i === 0 ? null : seed));
  const first = members[0]!;
  first.start();
  await waitFor(() => first.readyAt() !== undefined, CONVERGE_TIMEOUT_MS, `${tool} seed to start`);
  const startedAt = Date.now();
  for (const m of members.slice(1)) m.start();
  await waitFor(() => allSeeAll(members), CONVERGE_TIMEOUT_MS, `${tool}: all ${SIZE} to see each other`, 100);
  // From the last process ready: what the protocol takes, not how long 19 processes take to start.
  const lastReady = Math.max(...members.map((m) => m.readyAt()!));
  const convergeMs = Date.now() - lastReady;
  const startMs = lastReady - startedAt;
  progress(
    `${tool}: ${SIZE} converged ${convergeMs} ms after the last was ready (all ready in ${startMs} ms)`,
  );

  const r: Result = { convergeMs, startMs, same: [], across: [], missed: 0 };
  for (let t = 0; t < trials; t++) {
    // Alternate subnets, never the seed: 1, 11, 2, 12, ...
    const v = t % 2 === 0 ? 1 + ((t / 2) % (SUBNETS[0]! - 1)) : SUBNETS[0]! + (((t - 1) / 2) % SUBNETS[1]!);
    const victim = members[v]!;
    const survivors = members.filter((m) => m !== victim);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const marks = survivors.map((m) => m.mark());
    const killAt = Date.now();
    victim.kill();
    const name = nameOf(v);
    const seen = () => survivors.map((m, i) => m.deadAt(name, marks[i]!));
    try {
      await waitFor(
        () => seen().every((x) => x !== undefined),
        detectTimeoutMs,
        `${tool} survivors to see ${name} dead`,
        50,
      );
    } catch {
      /* counted below as missed */
    }
    const times: number[] = [];
    seen().forEach((at, i) => {
      if (at === undefined) return void r.missed++;
      const sameSubnet = lan.host(survivors[i]!.index).subnet === lan.host(v).subnet;
      (sameSubnet ? r.same : r.across).push(at - killAt);
      times.push(at - killAt);
    });
    const s = summarize(times);
    progress(`${tool} ${t + 1}/${trials}: killed ${name}, dead after p50 ${ms(s.p50)}, max ${ms(s.max)}`);
    await victim.exited();
    victim.start();
    await waitFor(() => allSeeAll(members), CONVERGE_TIMEOUT_MS, `${tool} ${name} to rejoin`, 100);
  }
  return r;
}

async function run(): Promise<Section> {
  const cap = netnsCapability();
  if (!cap.ok) throw new Error(`routed bench needs network namespaces: ${cap.why}`);
  if (!nftAvailable()) throw new Error('routed bench needs nftables (apt-get install -y nftables)');
  const loadBefore = os.loadavg();
  const started = Date.now();
  const lanOf = () => {
    const lan = NetnsLan.routed(SUBNETS).up();
    onCleanup(() => lan.down());
    return lan;
  };
  const peerRun = async (blockB: boolean) => {
    const lan = lanOf();
    if (blockB) lan.blockMulticast(1, 'switch');
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-bench-routed-'));
    onCleanup(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    const label = blockB ? 'peer (multicast dropped on B)' : 'peer';
    progress(`${label}: ${SIZE} peers on two subnets, ${TRIALS} crash trials`);
    const r = await measure(
      label,
      lan,
      (i, join) => new PeerMember(lan, i, dataDir, join),
      TRIALS,
      DETECT_TIMEOUT_MS,
    );
    lan.down();
    return r;
  };
  const peer = TOOLS.includes('peer') ? await peerRun(false) : undefined;
  const peerBlocked = TOOLS.includes('peer') ? await peerRun(true) : undefined;

  let serf: Result | undefined;
  let serfWhy = TOOLS.includes('serf') ? '' : 'not asked for (PEER_BENCH_ROUTED_TOOLS)';
  if (!serfWhy) {
    try {
      execFileSync('serf', ['version'], { stdio: 'ignore' });
      const lan = lanOf();
      progress(`serf: ${SIZE} agents on two subnets, ${SERF_TRIALS} crash trials`);
      serf = await measure(
        'serf',
        lan,
        (i, join) => new SerfMember(lan, i, join),
        SERF_TRIALS,
        SERF_DETECT_TIMEOUT_MS,
      );
      lan.down();
    } catch (err) {
      serfWhy = (err as Error).message;
      progress(`serf: not measured: ${serfWhy}`);
    }
  }
  const loadAfter = os.loadavg();
  const minutes = (Date.now() - started) / 60_000;
  return section({ peer, peerBlocked, serf, serfWhy, loadBefore, loadAfter, minutes });
}

function section(r: {
  peer: Result | undefined;
  peerBlocked: Result | undefined;
  serf: Result | undefined;
  serfWhy: string;
  loadBefore: number[];
  loadAfter: number[];
  minutes: number;
}): Section {
  const all = (x: Result) => summarize([...x.same, ...x.across]);
  const row = (label: string, x: Result) => {
    const [a, same, across] = [all(x), summarize(x.same), summarize(x.across)];
    return [label, ms(x.startMs), ms(x.convergeMs), a.n, x.missed, ms(a.p50), ms(a.p99)].concat(
      [same.p50, same.p99, across.p50, across.p99].map(ms),
    );
  };
  const runs: Array<[string, Result | undefined]> = [
    ['peer --join', r.peer],
    ['peer --join, multicast dropped on B', r.peerBlocked],
    ['serf -join (lan profile)', r.serf],
  ];
  const table: Table = {
    headers: [
      '20 members on 2 subnets',
      'start of 19',
      'converge after',
      'observations',
      'missed',
      'detect p50',
      'p99',
    ].concat(['same subnet p50', 'p99', 'across p50', 'p99']),
    rows: runs.filter((x): x is [string, Result] => x[1] !== undefined).map(([label, x]) => row(label, x)),
  };
  let verdict = `Serf: not measured (${r.serfWhy}).`;
  if (r.peer && r.peerBlocked && r.serf) {
    const ratio = all(r.serf).p50 / all(r.peer).p50;
    const slowest = Math.max(r.peer.convergeMs, r.peerBlocked.convergeMs);
    verdict =
      `Detection: peer ${ms(all(r.peer).p50)} at the median against Serf's ${ms(all(r.serf).p50)}: ` +
      `${ratio.toFixed(1)}x faster (target ${TARGET_DETECT_RATIO}x: ${ratio >= TARGET_DETECT_RATIO ? 'met' : 'not met'}). ` +
      `Convergence: peer ${ms(r.peer.convergeMs)} (${ms(r.peerBlocked.convergeMs)} with multicast dropped on B) ` +
      `against Serf's ${ms(r.serf.convergeMs)} (target no slower: ${slowest <= r.serf.convergeMs ? 'met' : 'not met'}).`;
  } else if (!r.peer) verdict = 'peer: not measured (not asked for, PEER_BENCH_ROUTED_TOOLS).';
  return {
    title: 'A group across a router: --join against Serf',
    summary: verdict,
    tables: [table],
    method:
      `\`npm run bench -- routed\` (bench/routed.ts). NetnsLan.routed([10, 10]) (test/support/netns.ts): two bridges, subnets 10.77.N.0/24 and 10.78.N.0/24, ` +
      `a router namespace with ip_forward on and no multicast routing; one process per host namespace. **peer**: \`peer up --profile lan --log-format json --join SEED:${PORT}\` ` +
      `on 19 hosts, SEED the address of host 0 (subnet A), whose process starts first (until ready); the 19 others start at once. **Serf** (Debian serf): ` +
      `\`serf agent -profile=lan -bind ADDR -join SEED\` the same way. Start of 19 = spawning the 19 to the last of them ready (peer: its \`up\` line; Serf: "Serf agent running"). ` +
      `Converge after = from that moment until every process has logged the 19 others alive (peer: join/alive lines; Serf: EventMemberJoin), ` +
      `polled every 100 ms. Crash: SIGKILL to one process (alternating subnets, never the seed), each survivor's first dead line ` +
      `(peer: \`dead\`, its own timestamp; Serf: EventMemberFailed, stamped when it reached the bench) minus the kill time; the victim restarts with the same ` +
      `name and the next trial waits until all see all, then ${SETTLE_MS / 1000} s more (processes just started keep the 2 cores busy). "Multicast dropped on B": an nftables bridge rule drops every multicast frame at subnet B's switch, ` +
      `so B's members hear each other only by unicast. Load average before ${r.loadBefore.map((x) => x.toFixed(2)).join(' ')}, ` +
      `after ${r.loadAfter.map((x) => x.toFixed(2)).join(' ')}; ${r.minutes.toFixed(1)} min.`,
  };
}
