/**
 * Scale (issue 22): many peers in the simulator, in virtual time, and many `peer up` on one host.
 *
 *  a. simulator, multicast and unicast-only groups of 50, 200 and 1,000 peers (SimCluster, the lan
 *     profile, 1 % loss while they meet):
 *     - converge: a seed holding its door, then every other peer started at once; multicast peers
 *       find each other by multicast, unicast-only ones only through the seed (`--join`'s path:
 *       sync, pages, hellos); virtual time until every peer sees every other alive;
 *     - traffic: datagrams and bytes each peer sends per virtual second, once converged;
 *     - false deaths over a soak at 10 % loss (virtual);
 *     - crash detection: a few peers crashed one after another, each survivor's `dead` minus the
 *       crash time, p50 and p99;
 *     - virtual seconds per wall second of the soak: how fast the simulator runs that group.
 *  b. LAN: 5, 20 and 50 `peer up` on one bridge (one network namespace each, test/support/netns.ts,
 *     found by multicast): convergence after the last is ready, per-peer CPU and bytes/s idle, a
 *     soak counting false deaths, then as many `peer chat` (one sends a line, every other must show
 *     it exactly once).
 *
 * Cost of the simulator half (the shared 2-core machine, this one process): 1,000 multicast peers
 * run at about 2.7 wall s per virtual s at 1 % loss once converged and during the soak at 10 %;
 * 1,000 unicast-only ones take about 4 wall min to meet through the seed and 2.4 wall s per
 * virtual s in the soak. 1,000 peers in one mode take about 40 min, most of it the soak and the
 * 200 virtual s traffic window; the two modes can run as two processes (PEER_BENCH_SCALE_SIM_MODES).
 *
 * Parameters (environment): PEER_BENCH_SCALE_SIM_SIZES (50,200,1000), PEER_BENCH_SCALE_SIM_SOAK_S
 * (600 virtual s), PEER_BENCH_SCALE_SIM_CRASHES (5), PEER_BENCH_SCALE_LAN_SIZES (5,20,50),
 * PEER_BENCH_SCALE_LAN_SOAK_S (300), PEER_BENCH_SCALE_IDLE_S (30), PEER_BENCH_SCALE_PARTS
 * (sim,lan: which halves to run), PEER_BENCH_SCALE_SIM_MODES (multicast,unicast).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ChildLines } from '../src/cli/child.js';
import { PROFILES } from '../src/p2p/config.js';
import { reachRefreshMs } from '../src/p2p/reach.js';
import { SIM_DOOR_PORT } from '../src/p2p/transport/sim.js';
import { parseAddress, type TransportMode } from '../src/p2p/transport/transport.js';
import { NetnsLan, netnsCapability } from '../test/support/netns.js';
import { BIN } from '../test/support/proc.js';
import { SimCluster, type SimPeer } from '../test/support/cluster.js';
import { idle, idleRow, type IdleSample } from './membership.js';
import { allSeeAll, nameOf, PeerMember } from './routed.js';
import {
  delay,
  envInt,
  ms,
  onCleanup,
  progress,
  summarize,
  waitFor,
  type BenchModule,
  type Section,
  type Table,
} from './lib.js';

const sizes = (name: string, fallback: number[]): number[] => {
  const raw = process.env[name];
  if (!raw) return fallback;
  const list = raw.split(',').map(Number);
  if (list.some((n) => !Number.isInteger(n) || n < 2))
    throw new Error(`${name} must be a comma-separated list of group sizes of 2 or more, got "${raw}"`);
  return list;
};

const SIM_SIZES = sizes('PEER_BENCH_SCALE_SIM_SIZES', [50, 200, 1000]);
const SIM_SOAK_S = envInt('PEER_BENCH_SCALE_SIM_SOAK_S', 600);
const SIM_CRASHES = envInt('PEER_BENCH_SCALE_SIM_CRASHES', 5);
const LAN_SIZES = sizes('PEER_BENCH_SCALE_LAN_SIZES', [5, 20, 50]);
const LAN_SOAK_S = envInt('PEER_BENCH_SCALE_LAN_SOAK_S', 300);
const IDLE_S = envInt('PEER_BENCH_SCALE_IDLE_S', 30);
const PARTS = (process.env.PEER_BENCH_SCALE_PARTS ?? 'sim,lan').split(',');
/** The simulator's transport modes, each at every size (one can be rerun alone). */
const SIM_MODES = (process.env.PEER_BENCH_SCALE_SIM_MODES ?? 'multicast,unicast').split(',').map((m) => {
  if (m !== 'multicast' && m !== 'unicast')
    throw new Error(`PEER_BENCH_SCALE_SIM_MODES must list multicast and/or unicast, got "${m}"`);
  return m;
});

const SIM_SEED = 1;
/** Loss while the simulated group meets and is measured idle; the soak's loss is the issue's 10 %. */
const SIM_LOSS = 0.01;
const SIM_SOAK_LOSS = 0.1;
const SIM_DELAY_MAX_MS = 2;
/** Virtual time allowed to converge (the join's seed re-sync is 30 s), and the check's step. */
const SIM_CONVERGE_WITHIN_MS = 90_000;
const SIM_CONVERGE_STEP_MS = 100;
/**
 * After convergence: the last syncs end, then traffic is counted over at least this much virtual
 * time, and over at least one refresh period of reach's statements (simTrafficMs).
 */
const SIM_SETTLE_MS = 5_000;
const SIM_TRAFFIC_MS = 10_000;
const SIM_DETECT_WITHIN_MS = 10_000;
const SIM_SOAK_STEP_MS = 30_000;

const PORT = 47777;
/** Starting n node processes on a shared 2-core machine, then meeting: generous. */
const LAN_CONVERGE_TIMEOUT_MS = 60_000;
const LAN_CONVERGE_PER_PEER_MS = 3_000;
const LAN_SOAK_CHECK_MS = 5_000;
/** `peer chat` prints this on stderr once its sockets are open (open group). */
const CHAT_STARTED = 'no --key-file';
const CHAT_START_TIMEOUT_MS = 120_000;
const CHAT_SEND_WAIT_MS = 15_000;
const CHAT_DELIVER_MS = 20_000;

export const bench: BenchModule = {
  name: 'scale',
  budgetMs:
    ((PARTS.includes('sim') ? SIM_SIZES.reduce((a, n) => a + n * (SIM_SOAK_S / 60 + 2), 0) : 0) +
      (PARTS.includes('lan') ? LAN_SIZES.reduce((a, n) => a + LAN_SOAK_S + IDLE_S + 120 + n * 8, 0) : 0) +
      300) *
    1000,
  run,
};

// ---------------------------------------------------------------------------------------------
// a. the simulator

interface SimResult {
  n: number;
  mode: TransportMode;
  /** Virtual ms from the start of all peers to every peer seeing every other alive; null: not within the limit. */
  convergeMs: number | null;
  datagramsPerS: number;
  bytesPerS: number;
  /** The most any one peer sent per virtual second. */
  datagramsPerSMax: number;
  falseDeaths: number;
  detect: number[];
  missed: number;
  /** Virtual seconds per wall second over the soak. */
  speed: number;
  wallS: number;
}

const doorOf = (p: SimPeer) => `${parseAddress(p.address).host}:${SIM_DOOR_PORT}`;

/**
 * The traffic window for n peers: a unicast-only peer restates its reach to each member once per
 * reachRefreshMs(n - 1), and the whole group met within the convergence time, so the restatements
 * come in one burst a period later (200 s at 1,000). A shorter window misses that burst, and with
 * it about half of what such a peer sends.
 */
function simTrafficMs(n: number): number {
  return Math.max(SIM_TRAFFIC_MS, reachRefreshMs(n - 1));
}

async function simRun(n: number, mode: TransportMode): Promise<SimResult> {
  const wallStart = Date.now();
  const deaths: Array<{ id: string; at: number }> = [];
  const c: SimCluster = new SimCluster(
    SIM_SEED,
    { loss: SIM_LOSS, delayMaxMs: SIM_DELAY_MAX_MS },
    PROFILES.lan,
    (node) => node.on((e) => e.kind === 'dead' && deaths.push({ id: e.member.id, at: c.rt.now() })),
  );
  const seed = await c.add('s0', {}, { mode }, { door: true });
  // Unicast-only peers have nothing but the seed; multicast peers find each other as `peer up` does.
  const join = mode === 'unicast' ? { seeds: [doorOf(seed)], hello: false } : {};
  for (let i = 1; i < n; i++) await c.add(`s${i}`, {}, { mode }, join);
  const label = `sim ${n} ${mode}`;

  const start = c.rt.now();
  let convergeMs: number | null = null;
  while (c.rt.now() - start < SIM_CONVERGE_WITHIN_MS) {
    c.rt.runFor(SIM_CONVERGE_STEP_MS);
    if (c.converged()) {
      convergeMs = c.rt.now() - start;
      break;
    }
  }
  progress(
    `${label}: converged ${convergeMs === null ? 'not within the limit' : `in ${ms(convergeMs)} virtual`}`,
  );

  c.rt.runFor(SIM_SETTLE_MS);
  const trafficMs = simTrafficMs(n);
  const sentBefore = c.peers.map((p) => ({ d: p.node.stats.datagramsOut, b: p.node.stats.bytesOut }));
  c.rt.runFor(trafficMs);
  const perS = c.peers.map((p, i) => ({
    d: (p.node.stats.datagramsOut - sentBefore[i]!.d) / (trafficMs / 1000),
    b: (p.node.stats.bytesOut - sentBefore[i]!.b) / (trafficMs / 1000),
  }));
  const mean = (f: (x: { d: number; b: number }) => number) => perS.reduce((a, x) => a + f(x), 0) / n;
  progress(`${label}: ${mean((x) => x.d).toFixed(1)} datagrams/s per peer; soaking ${SIM_SOAK_S} virtual s`);

  c.net.faults = { ...c.net.faults, loss: SIM_SOAK_LOSS };
  const soakFrom = deaths.length;
  const soakWall = Date.now();
  for (let done = 0; done < SIM_SOAK_S * 1000; done += SIM_SOAK_STEP_MS) {
    c.rt.runFor(Math.min(SIM_SOAK_STEP_MS, SIM_SOAK_S * 1000 - done));
    progress(
      `${label}: soak ${Math.min(SIM_SOAK_S, (done + SIM_SOAK_STEP_MS) / 1000)} virtual s, ${deaths.length - soakFrom} false deaths`,
    );
  }
  const speed = SIM_SOAK_S / ((Date.now() - soakWall) / 1000);
  const falseDeaths = deaths.length - soakFrom;
  c.net.faults = { ...c.net.faults, loss: SIM_LOSS };

  // Crashes one after another, never the seed: every survivor's `dead`, timed in virtual ms.
  const detect: number[] = [];
  let missed = 0;
  for (let k = 1; k <= Math.min(SIM_CRASHES, n - 2); k++) {
    const victim = c.peers[Math.round((k * (n - 1)) / (SIM_CRASHES + 1))]!;
    const survivors = c.live().filter((p) => p !== victim);
    const from = deaths.length;
    const at = c.rt.now();
    await c.crash(victim);
    const seen = () => deaths.slice(from).filter((d) => d.id === victim.node.id);
    c.rt.runUntilTrue(() => seen().length >= survivors.length, SIM_DETECT_WITHIN_MS);
    const times = seen().map((d) => d.at - at);
    detect.push(...times);
    missed += survivors.length - times.length;
  }
  const d = summarize(detect);
  progress(`${label}: crash detection p50 ${ms(d.p50)} p99 ${ms(d.p99)} (${missed} missed)`);
  if (c.handlerErrors().length > 0) throw new Error(`${label}: handler errors: ${c.handlerErrors()[0]}`);
  return {
    n,
    mode,
    convergeMs,
    datagramsPerS: mean((x) => x.d),
    bytesPerS: mean((x) => x.b),
    datagramsPerSMax: Math.max(...perS.map((x) => x.d)),
    falseDeaths,
    detect,
    missed,
    speed,
    wallS: (Date.now() - wallStart) / 1000,
  };
}

// ---------------------------------------------------------------------------------------------
// b. n `peer up` on one bridge

interface LanResult {
  n: number;
  /** From spawning all to the last ready, and from then until every peer logged every other alive. */
  startMs: number;
  convergeMs: number;
  idle: IdleSample[];
  falseDeaths: number;
  /** Checks during the soak at which every peer held every other alive, of how many. */
  completeChecks: number;
  checks: number;
  chatReached: number;
  chatTwice: number;
  chatExit: number | null;
  chatMs: number;
}

/** The one process of host i (`ip netns exec` execs node: the peer's own pid). */
function pidIn(lan: NetnsLan, i: number): number {
  const out = execFileSync('ip', ['netns', 'pids', lan.host(i).ns], { encoding: 'utf8' });
  return Number(out.split('\n').find(Boolean));
}

async function lanRun(n: number): Promise<LanResult> {
  const lan = new NetnsLan(n).up();
  onCleanup(() => lan.down());
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-bench-scale-'));
  onCleanup(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const peers = Array.from({ length: n }, (_, i) => new PeerMember(lan, i, dataDir, null));
  const spawnedAt = Date.now();
  for (const p of peers) p.start();
  await waitFor(
    () => allSeeAll(peers),
    LAN_CONVERGE_TIMEOUT_MS + n * LAN_CONVERGE_PER_PEER_MS,
    `${n} peers to see each other`,
    200,
  );
  const lastReady = Math.max(...peers.map((p) => p.readyAt()!));
  const convergeMs = Date.now() - lastReady;
  const startMs = lastReady - spawnedAt;
  progress(`lan ${n}: converged ${ms(convergeMs)} after the last was ready; idle ${IDLE_S} s`);
  const samples = await idle(
    lan,
    peers.map((_, i) => pidIn(lan, i)),
    IDLE_S,
  );

  progress(`lan ${n}: soak ${LAN_SOAK_S} s`);
  const marks = peers.map((p) => p.mark());
  let checks = 0;
  let complete = 0;
  for (const end = Date.now() + LAN_SOAK_S * 1000; Date.now() < end;) {
    await delay(Math.min(LAN_SOAK_CHECK_MS, end - Date.now()));
    checks++;
    if (allSeeAll(peers)) complete++;
  }
  let falseDeaths = 0;
  for (const [i, p] of peers.entries())
    for (const q of peers) if (q !== p && p.deadAt(nameOf(q.index), marks[i]!) !== undefined) falseDeaths++;
  for (const p of peers) p.kill();
  await Promise.all(peers.map((p) => p.exited()));

  const chat = await chatAmong(lan, n, dataDir);
  lan.down();
  return { n, startMs, convergeMs, idle: samples, falseDeaths, completeChecks: complete, checks, ...chat };
}

/** `peer chat --listen` on hosts 1..n-1, then one `--send` from host 0: who shows the line, and how often. */
async function chatAmong(
  lan: NetnsLan,
  n: number,
  dataDir: string,
): Promise<Pick<LanResult, 'chatReached' | 'chatTwice' | 'chatExit' | 'chatMs'>> {
  const args = (i: number, extra: string[]) =>
    [
      BIN,
      'chat',
      '--name',
      `c${i}`,
      ...extra,
      '--interface',
      lan.host(i).address,
      '--port',
      String(PORT),
    ].concat(['--data-dir', dataDir, '--profile', 'lan']);
  const listeners = Array.from(
    { length: n - 1 },
    (_, k) =>
      new ChildLines(
        lan.spawn(k + 1, process.execPath, args(k + 1, ['--listen', '--json']), { NO_COLOR: '1' }),
      ),
  );
  await waitFor(
    () => listeners.every((l) => l.stderr.join('').includes(CHAT_STARTED)),
    CHAT_START_TIMEOUT_MS,
    `${n - 1} chat listeners to start`,
    200,
  );
  const text = `hello from c0 to ${n - 1} listeners`;
  const shown = (l: ChildLines) => l.json().filter((e) => e.event === 'message' && e.text === text).length;
  const sentAt = Date.now();
  const send = await lan.run(
    0,
    process.execPath,
    args(0, ['--send', text, '--json', '--wait', String(CHAT_SEND_WAIT_MS)]),
    {
      env: { NO_COLOR: '1' },
      timeoutMs: CHAT_START_TIMEOUT_MS,
    },
  );
  try {
    await waitFor(
      () => listeners.every((l) => shown(l) >= 1),
      CHAT_DELIVER_MS,
      'every listener to show the line',
      100,
    );
  } catch {
    /* counted below */
  }
  const chatMs = Date.now() - sentAt;
  const counts = listeners.map(shown);
  for (const l of listeners) l.child.kill('SIGKILL');
  progress(
    `lan ${n}: chat line shown by ${counts.filter((k) => k >= 1).length} of ${n - 1}, sender exit ${send.code}`,
  );
  return {
    chatReached: counts.filter((k) => k >= 1).length,
    chatTwice: counts.filter((k) => k > 1).length,
    chatExit: send.code,
    chatMs,
  };
}

// ---------------------------------------------------------------------------------------------

async function run(): Promise<Section> {
  const started = Date.now();
  const loadBefore = os.loadavg();
  const sim: SimResult[] = [];
  if (PARTS.includes('sim'))
    for (const n of SIM_SIZES)
      for (const mode of SIM_MODES) {
        progress(`sim: ${n} peers, ${mode}`);
        sim.push(await simRun(n, mode));
      }
  const lan: LanResult[] = [];
  if (PARTS.includes('lan')) {
    const cap = netnsCapability();
    if (!cap.ok) throw new Error(`scale bench needs network namespaces for its LAN half: ${cap.why}`);
    for (const n of LAN_SIZES) {
      progress(`lan: ${n} peer up`);
      lan.push(await lanRun(n));
    }
  }
  return section(sim, lan, loadBefore, os.loadavg(), (Date.now() - started) / 60_000);
}

function section(
  sim: SimResult[],
  lan: LanResult[],
  loadBefore: number[],
  loadAfter: number[],
  minutes: number,
): Section {
  const tables: Table[] = [];
  if (sim.length)
    tables.push({
      caption: `**Simulator** (virtual time, lan profile): converge from one seed at ${SIM_LOSS * 100} % loss, traffic once converged, false deaths over ${SIM_SOAK_S} virtual s at ${SIM_SOAK_LOSS * 100} % loss, crash detection over ${SIM_CRASHES} crashes.`,
      headers: [
        'peers',
        'mode',
        'converge',
        'datagrams/s per peer (max)',
        'bytes/s per peer',
        'false deaths',
        'detect p50',
        'p99',
        'observations (missed)',
        'virtual s per wall s',
        'wall',
      ],
      rows: sim.map((r) => {
        const d = summarize(r.detect);
        return [
          r.n,
          r.mode,
          r.convergeMs === null ? `not within ${SIM_CONVERGE_WITHIN_MS / 1000} s` : ms(r.convergeMs),
          `${r.datagramsPerS.toFixed(1)} (${r.datagramsPerSMax.toFixed(1)})`,
          Math.round(r.bytesPerS),
          r.falseDeaths,
          ms(d.p50),
          ms(d.p99),
          `${d.n} (${r.missed})`,
          r.speed.toFixed(2),
          `${Math.round(r.wallS)} s`,
        ];
      }),
    });
  if (lan.length)
    tables.push({
      caption: `**LAN**: n \`peer up\` on one bridge, one namespace each, found by multicast; idle over ${IDLE_S} s (mean per process), soak ${LAN_SOAK_S} s, then one chat line among n \`peer chat\`.`,
      headers: [
        'peers',
        'start of all',
        'converge after',
        'CPU per peer',
        'tx',
        'rx',
        'packets/s out',
        'wakes/s',
        'false deaths',
        'views complete',
        'chat line shown by',
        'sender exit',
      ],
      rows: lan.map((r) => {
        const [, cpu, tx, rx, pps, wakes] = idleRow(String(r.n), r.idle);
        return [
          r.n,
          ms(r.startMs),
          ms(r.convergeMs),
          cpu!,
          tx!,
          rx!,
          pps!,
          wakes!,
          r.falseDeaths,
          `${r.completeChecks} of ${r.checks} checks`,
          `${r.chatReached} of ${r.n - 1}${r.chatTwice ? ` (${r.chatTwice} twice)` : ''} in ${ms(r.chatMs)}`,
          r.chatExit ?? 'killed',
        ];
      }),
    });
  const verdicts: string[] = [];
  for (const mode of ['multicast', 'unicast'] as const) {
    const rows = sim.filter((r) => r.mode === mode);
    if (rows.length > 1)
      verdicts.push(
        `Simulator, ${mode}: datagrams/s per peer ${rows.map((r) => `${r.datagramsPerS.toFixed(1)} at ${r.n}`).join(', ')}` +
          (mode === 'unicast' ? ' (goal: independent of N).' : '.') +
          ` False deaths at ${SIM_SOAK_LOSS * 100} % loss: ${rows.map((r) => `${r.falseDeaths} at ${r.n}`).join(', ')} (goal 0).`,
      );
  }
  for (const r of lan)
    verdicts.push(
      `LAN, ${r.n} peers: ${r.falseDeaths} false deaths in ${LAN_SOAK_S} s, chat line shown by ${r.chatReached} of ${r.n - 1}, ${idleRow('', r.idle)[1]} CPU per peer.`,
    );
  return {
    title: 'Scale: 1,000 peers in the simulator, 50 on one host',
    summary: verdicts.map((v) => `- ${v}`).join('\n'),
    tables,
    method:
      `\`npm run bench -- scale\` (bench/scale.ts). **Simulator**: SimCluster (test/support/cluster.ts), seed ${SIM_SEED}, links with ${SIM_LOSS * 100} % loss and 0.1-${SIM_DELAY_MAX_MS} ms delay. ` +
      `A seed holding its door, then every other peer at the same virtual instant: multicast peers find each other by multicast (as \`peer up\`), unicast-only ones are given only the seed (\`--join\`'s sync, pages and hellos). ` +
      `Converge = virtual time until every peer holds every other alive (and, unicast-only, in its fan-out), checked every ${SIM_CONVERGE_STEP_MS} ms. ` +
      `Traffic = datagrams and bytes each peer sent (node stats, every unicast copy counted) over ${SIM_TRAFFIC_MS / 1000} virtual s or one period of reach's restatements if longer (${SIM_SIZES.map((n) => `${simTrafficMs(n) / 1000} s at ${n}`).join(', ')}), ${SIM_SETTLE_MS / 1000} s after convergence. ` +
      `Soak = every link at ${SIM_SOAK_LOSS * 100} % loss for ${SIM_SOAK_S} virtual s, counting \`dead\` events (nobody crashes). Crash = one peer at a time stops without a word; each survivor's \`dead\` minus the crash, in virtual ms. ` +
      `Virtual s per wall s is the soak's (the simulator and every peer run in this one process). **LAN**: NetnsLan(n) (test/support/netns.ts), \`peer up --profile lan --log-format json\` per namespace, no --join; ` +
      `converge = from the last \`up\` line until every peer logged every other alive; idle CPU (/proc/<pid>/stat), link bytes and packets (ip -s link), context switches; ` +
      `soak = every ${LAN_SOAK_CHECK_MS / 1000} s every view is checked, and \`dead\` lines counted; then the peers are killed and n-1 \`peer chat --listen --json\` start, and one \`peer chat --send\` from host 0. ` +
      `Load average before ${loadBefore.map((x) => x.toFixed(2)).join(' ')}, after ${loadAfter.map((x) => x.toFixed(2)).join(' ')}; ${minutes.toFixed(1)} min.`,
  };
}
