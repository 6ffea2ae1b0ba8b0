/**
 * Bench: user events and queries to 20 agents, against HashiCorp Serf in the same run.
 *
 * A LAN of network namespaces on a bridge (test/support/netns.ts), one agent per namespace:
 *  a. peer: 20 `peer up` agents, each with `--handler user:bench=...` (the handler writes the wall
 *     time it started, in ns, to a file named for the agent and the trial) and
 *     `--handler query:bench=echo ok`. From agent 1's namespace with the agents' data dir, as a
 *     user with a running agent does, `peer event bench tN` per trial (the command hands it to a
 *     running agent over its control socket: src/cli/agent-relay.ts): the latency is from the
 *     moment the bench starts the command to the start of the last of the 20 handlers. Then
 *     `peer query bench` per trial: from the start of the command to the 20th answer line it
 *     prints. Then both again from a 21st namespace with a data dir of its own: the one-shot path
 *     (a peer that joins the group for the command's run).
 *  b. Serf: the same 20 namespaces, one `serf agent -profile=lan` each, with the same handlers
 *     (`-event-handler`); `serf event -coalesce=false bench tN` and `serf query bench` through the
 *     RPC of agent 1, timed the same way (the 20th `Response from` line of `serf query`).
 * Both sides run one after the other (never at once: they would share the CPU).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { NetnsLan, netnsCapability } from '../test/support/netns.js';
import { BIN } from '../test/support/proc.js';
import { ChildLines, loggedState } from '../src/cli/child.js';
import {
  delay,
  envInt,
  ms,
  onCleanup,
  progress,
  summarize,
  TimedLines,
  waitFor,
  type BenchModule,
  type Section,
} from './lib.js';

const AGENTS = envInt('PEER_BENCH_EVENT_AGENTS', 20);
const TRIALS = envInt('PEER_BENCH_EVENT_TRIALS', 10);
const PORT = 47777;
const SERF_RPC = '127.0.0.1:7373';
const CONVERGE_TIMEOUT_MS = 120_000;
/** How long one event may take to reach every handler, or one query to collect every answer. */
const TRIAL_TIMEOUT_MS = 30_000;
/** A query's timeout: Serf's query waits all of it, ours ends at the last answer. */
const QUERY_TIMEOUT = '10s';
/**
 * Quiet time between "every agent sees the others" and the first trial, on both sides: agents
 * that just started are still electing, syncing clocks and compiling (peer's first events took up
 * to 9.6 s without it, Serf's first 0.9 s).
 */
const SETTLE_MS = 15_000;

export const bench: BenchModule = {
  name: 'events',
  anchors: [{ command: 'serf', debianPackage: 'serf' }],
  budgetMs: (4 * TRIALS * 30 + 2 * 120 + 120) * 1000 + 2 * SETTLE_MS,
  run,
};

const agentName = (prefix: string, i: number) => `${prefix}${i + 1}`;

/** The handler both sides run on the user event: its start time (ns) in `<out>/<name>.<payload>`. */
const recorder = (out: string, nameVar: string) => `read t; date +%s%N > ${out}/$${nameVar}.$t`;

/** The handler start times of trial `t`, in ms, once every agent wrote one; undefined before. */
function handlerStarts(out: string, prefix: string, t: string): number[] | undefined {
  const times: number[] = [];
  for (let i = 0; i < AGENTS; i++) {
    const f = path.join(out, `${agentName(prefix, i)}.${t}`);
    let text: string;
    try {
      text = fs.readFileSync(f, 'utf8').trim();
    } catch {
      return undefined;
    }
    if (text === '') return undefined;
    times.push(Number(BigInt(text) / 1_000_000n) + Number(BigInt(text) % 1_000_000n) / 1e6);
  }
  return times;
}

interface SideResult {
  event: number[];
  query: number[];
  failures: string[];
}

interface PeerResult extends SideResult {
  /** The same trials through the one-shot path (no agent in the command's data dir). */
  oneShot: SideResult;
}

/** Runs one trial command and times it to the last handler start. */
async function eventTrial(
  lan: NetnsLan,
  host: number,
  cmd: string,
  args: string[],
  out: string,
  prefix: string,
  t: string,
): Promise<number> {
  const start = Date.now();
  const run = lan.run(host, cmd, args, { timeoutMs: TRIAL_TIMEOUT_MS, env: { NO_COLOR: '1' } });
  let starts: number[] | undefined;
  await waitFor(
    () => (starts = handlerStarts(out, prefix, t)) !== undefined,
    TRIAL_TIMEOUT_MS,
    `every ${prefix} handler of ${t}`,
  );
  const r = await run;
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return Math.max(...starts!) - start;
}

/** Runs a query command and times it to its `answers`-th answer line (`match`). */
async function queryTrial(
  lan: NetnsLan,
  host: number,
  cmd: string,
  args: string[],
  match: RegExp,
): Promise<number> {
  const start = Date.now();
  const lines = new TimedLines(lan.spawn(host, cmd, args, { NO_COLOR: '1' }));
  await waitFor(
    () => lines.lines.filter((l) => match.test(l.text)).length >= AGENTS,
    TRIAL_TIMEOUT_MS,
    `${AGENTS} answers`,
  );
  const at = lines.lines.filter((l) => match.test(l.text))[AGENTS - 1]!.at;
  await lines.exited;
  return at - start;
}

async function peerSide(lan: NetnsLan): Promise<PeerResult> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-bench-ev-'));
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-bench-evd-'));
  onCleanup(() => {
    fs.rmSync(out, { recursive: true, force: true });
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  const net = (i: number) => ['--interface', lan.host(i).address, '--port', String(PORT), '--open'];
  const agents: ChildLines[] = [];
  for (let i = 0; i < AGENTS; i++) {
    const args = [
      BIN,
      'up',
      '--name',
      agentName('a', i),
      ...net(i),
      '--data-dir',
      dataDir,
      '--log-format',
      'json',
    ];
    args.push(
      '--handler',
      `user:bench=${recorder(out, 'PEER_SELF_NAME')}`,
      '--handler',
      'query:bench=echo ok',
    );
    agents.push(new ChildLines(lan.spawn(i, process.execPath, args, { NO_COLOR: '1', PEER_KEY_FILE: '' })));
  }
  const names = agents.map((_, i) => agentName('a', i));
  await waitFor(
    () => agents.every((a, i) => names.every((n, j) => i === j || loggedState(a, n) === 'alive')),
    CONVERGE_TIMEOUT_MS,
    'every peer agent to see the others',
    200,
  );
  progress(`peer: ${AGENTS} agents up; quiet for ${SETTLE_MS} ms`);
  await delay(SETTLE_MS);
  const alone = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-bench-evo-'));
  onCleanup(() => fs.rmSync(alone, { recursive: true, force: true }));
  // Through agent 1's control socket (same namespace, same data dir); then one-shot.
  const relayed = await peerTrials(lan, 0, dataDir, net, out, 'relayed', 0);
  const oneShot = await peerTrials(lan, AGENTS, alone, net, out, 'one-shot', TRIALS);
  const r: PeerResult = { ...relayed, oneShot };
  for (const a of agents) a.child.kill('SIGTERM');
  await Promise.all(agents.map((a) => a.exited));
  return r;
}

/** TRIALS events then TRIALS queries from namespace `host` with data dir `dataDir`; trial names from `first`. */
async function peerTrials(
  lan: NetnsLan,
  host: number,
  dataDir: string,
  net: (i: number) => string[],
  out: string,
  label: string,
  first: number,
): Promise<SideResult> {
  const client = (...args: string[]) => [BIN, ...args, ...net(host), '--data-dir', dataDir];
  const r: SideResult = { event: [], query: [], failures: [] };
  for (let t = first; t < first + TRIALS; t++) {
    try {
      const d = await eventTrial(
        lan,
        host,
        process.execPath,
        client('event', 'bench', `t${t}`),
        out,
        'a',
        `t${t}`,
      );
      r.event.push(d);
      progress(
        `peer event (${label}) ${t - first + 1}/${TRIALS}: last handler started after ${Math.round(d)} ms`,
      );
    } catch (err) {
      r.failures.push(`event (${label}) t${t}: ${(err as Error).message}`);
    }
  }
  for (let t = 0; t < TRIALS; t++) {
    try {
      const d = await queryTrial(
        lan,
        host,
        process.execPath,
        client('query', 'bench', '--timeout', QUERY_TIMEOUT),
        /^a\d+: ok$/,
      );
      r.query.push(d);
      progress(`peer query (${label}) ${t + 1}/${TRIALS}: ${AGENTS} answers after ${Math.round(d)} ms`);
    } catch (err) {
      r.failures.push(`query (${label}) ${t}: ${(err as Error).message}`);
    }
  }
  return r;
}

async function serfSide(lan: NetnsLan): Promise<SideResult> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-bench-evs-'));
  onCleanup(() => fs.rmSync(out, { recursive: true, force: true }));
  const agents: TimedLines[] = [];
  const start = (i: number) => {
    const args = ['agent', '-profile=lan', `-bind=${lan.host(i).address}`, `-node=${agentName('s', i)}`];
    args.push(`-rpc-addr=${SERF_RPC}`, '-log-level=info');
    args.push(
      `-event-handler=user:bench=${recorder(out, 'SERF_SELF_NAME')}`,
      '-event-handler=query:bench=echo ok',
    );
    if (i > 0) args.push(`-join=${lan.host(0).address}`);
    agents.push(new TimedLines(lan.spawn(i, 'serf', args)));
  };
  start(0);
  await waitFor(() => !!agents[0]!.find('Serf agent running', 0), CONVERGE_TIMEOUT_MS, 'serf s1 to start');
  for (let i = 1; i < AGENTS; i++) start(i);
  const alive = () =>
    execFileSync(
      'ip',
      ['netns', 'exec', lan.host(0).ns, 'serf', 'members', `-rpc-addr=${SERF_RPC}`, '-status=alive'],
      {
        encoding: 'utf8',
      },
    )
      .trim()
      .split('\n').length;
  await waitFor(() => alive() === AGENTS, CONVERGE_TIMEOUT_MS, 'every serf agent to join', 500);
  progress(`serf: ${AGENTS} agents up; quiet for ${SETTLE_MS} ms`);
  await delay(SETTLE_MS);
  const r: SideResult = { event: [], query: [], failures: [] };
  const rpc = `-rpc-addr=${SERF_RPC}`;
  for (let t = 0; t < TRIALS; t++) {
    try {
      const d = await eventTrial(
        lan,
        0,
        'serf',
        ['event', rpc, '-coalesce=false', 'bench', `t${t}`],
        out,
        's',
        `t${t}`,
      );
      r.event.push(d);
      progress(`serf event ${t + 1}/${TRIALS}: last handler started after ${Math.round(d)} ms`);
    } catch (err) {
      r.failures.push(`event t${t}: ${(err as Error).message}`);
    }
  }
  for (let t = 0; t < TRIALS; t++) {
    try {
      const d = await queryTrial(
        lan,
        0,
        'serf',
        ['query', rpc, `-timeout=${QUERY_TIMEOUT}`, 'bench'],
        /Response from 's\d+': ok/,
      );
      r.query.push(d);
      progress(`serf query ${t + 1}/${TRIALS}: ${AGENTS} answers after ${Math.round(d)} ms`);
    } catch (err) {
      r.failures.push(`query ${t}: ${(err as Error).message}`);
    }
  }
  for (const a of agents) a.child.kill('SIGTERM');
  await Promise.all(agents.map((a) => a.exited));
  return r;
}

async function run(): Promise<Section> {
  const cap = netnsCapability();
  if (!cap.ok) throw new Error(`needs network namespaces: ${cap.why}`);
  const lan = new NetnsLan(AGENTS + 1).up();
  onCleanup(() => lan.down());
  try {
    progress(`peer: ${AGENTS} agents, ${TRIALS} events and ${TRIALS} queries`);
    const peer = await peerSide(lan);
    let serf: SideResult | undefined;
    let serfWhy = '';
    try {
      execFileSync('serf', ['version'], { stdio: 'ignore' });
      serf = await serfSide(lan);
    } catch (err) {
      serfWhy = (err as Error).message;
      progress(`serf: not measured: ${serfWhy}`);
    }
    return section(peer, serf, serfWhy);
  } finally {
    lan.down();
  }
}

function section(peer: PeerResult, serf: SideResult | undefined, serfWhy: string): Section {
  const row = (what: string, v: number[]) => {
    const s = summarize(v);
    return [what, s.n, ms(s.p50), ms(s.p99), ms(s.max)];
  };
  const pe = summarize(peer.event);
  const pq = summarize(peer.query);
  const se = serf ? summarize(serf.event) : undefined;
  const sq = serf ? summarize(serf.query) : undefined;
  const po = summarize(peer.oneShot.event);
  const pqo = summarize(peer.oneShot.query);
  const failures = [
    ...peer.failures.map((f) => `peer ${f}`),
    ...peer.oneShot.failures.map((f) => `peer ${f}`),
    ...(serf?.failures ?? []).map((f) => `serf ${f}`),
  ];
  return {
    title: `User events and queries: ${AGENTS} agents`,
    summary: [
      `- A user event from one peer to the handlers of ${AGENTS} peers: p50 ${ms(pe.p50)}, p99 ${ms(pe.p99)} from starting \`peer event\` (handed to a running agent) to the last handler's start (one-shot, no agent in its data dir: p50 ${ms(po.p50)})${se ? `; Serf (\`serf event\`) p50 ${ms(se.p50)}, p99 ${ms(se.p99)}` : ''}.`,
      `- A query answered by ${AGENTS} peers: p50 ${ms(pq.p50)}, p99 ${ms(pq.p99)} from starting \`peer query\` (handed to a running agent) to its ${AGENTS}th answer (one-shot: p50 ${ms(pqo.p50)})${sq ? `; Serf (\`serf query\`) p50 ${ms(sq.p50)}, p99 ${ms(sq.p99)}` : ''}.`,
      serf ? '' : `- Serf: not measured (${serfWhy}).`,
      failures.length ? `- Failed trials: ${failures.length} (listed below).` : '- No trial failed.',
    ]
      .filter(Boolean)
      .join('\n'),
    tables: [
      {
        caption: `From starting the command to the last of ${AGENTS} handlers started (user event), or to the ${AGENTS}th answer printed (query).`,
        headers: ['what', 'trials', 'p50', 'p99', 'max'],
        rows: [
          row('peer event (to a running agent)', peer.event),
          row('peer event (one-shot)', peer.oneShot.event),
          ...(serf ? [row('serf event -coalesce=false', serf.event)] : []),
          row('peer query (to a running agent)', peer.query),
          row('peer query (one-shot)', peer.oneShot.query),
          ...(serf ? [row('serf query', serf.query)] : []),
        ],
      },
    ],
    method: [
      `${AGENTS} namespaces on one bridge (test/support/netns.ts), one agent each: \`peer up --profile lan --open\` with \`--handler user:bench=...\` and \`--handler query:bench='echo ok'\`,`,
      `then (after they stopped) \`serf agent -profile=lan\` with the same handlers as \`-event-handler\`. The user-event handler reads the payload (the trial's name) and writes \`date +%s%N\` to a file named for the agent and the trial;`,
      `the latency is the latest of those times minus the moment the bench started the command. \`peer event\` and \`peer query\` run first from agent 1's namespace with the agents' data dir (they hand the message to a running agent over its control socket, as a user with a \`peer up\` running does), then from a 21st namespace with a data dir of its own (one-shot: a member for their run);`,
      `\`serf event\` and \`serf query\` talk to agent 1 over its RPC port (Serf's way: a running agent sends). A query's time is when the bench read the ${AGENTS}th answer line. ${TRIALS} trials each, one at a time, after ${SETTLE_MS / 1000} s of quiet once the agents all see each other.`,
    ].join(' '),
    notes: [
      'Handed to a running agent, `peer event` and `peer query` are a process start and one request over a unix socket; the agent sends at once, as `serf event` and `serf query` hand the message to a running Serf agent. One-shot, they start a peer, join the group for their run, look for the agents (they wait until the list of agents has not changed for 1 s: AGENT_DISCOVERY_SETTLE_MS), send, and leave: most of their time is that start-up and that second.',
      ...failures,
    ],
  };
}
