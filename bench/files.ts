/**
 * File distribution targets of issue 20: one file of random bytes (256 MiB) from one sender to 4
 * receivers on a namespace LAN, with no loss and with 10 % loss, side by side with uftp and
 * udpcast, the two Debian tools built for exactly this job.
 *
 * The LAN: 5 network namespaces, each with a veth leg on one bridge (test/support/netns.ts), MTU
 * 1500 like a real Ethernet LAN, 10.77.x addresses that exist only inside the namespaces: no packet
 * leaves the machine. Host 0 sends; hosts 1-4 receive. Loss: nftables on each receiver's input
 * drops 10 % of incoming UDP at random (nothing else runs in a receiver's namespace, so that is
 * the tool's traffic: data, repairs, control), counted so the bench reports the loss applied.
 *
 * Per tool and run: the receivers are started and ready, then the sender; time from the sender's
 * start until the last receiver holds the whole file under its final name (each tool's own signal,
 * below); bytes the sender's veth transmitted (tx_bytes, before/after) over the file size; each
 * receiver's peak RSS (VmHWM from /proc/<pid>/status, polled while it runs). Then the bench
 * computes every receiver's file's SHA-256 against the source's: a run counts only if all 4 match.
 *
 * Parameters (environment): PEER_BENCH_FILE_MIB (file size), PEER_BENCH_FILE_RUNS (runs per tool
 * and loss), PEER_BENCH_FILE_TOOLS (a comma list of peer, uftp, udpcast).
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NetnsLan, netnsCapability, nftAvailable } from '../test/support/netns.js';
import { BIN } from '../test/support/proc.js';
import { FRAME_BYTES_MAX } from '../src/p2p/wire.js';
import { framedRoom } from '../src/p2p/reliable/fragments.js';
import { UDP_RECEIVE_BUFFER_BYTES } from '../src/p2p/transport/udp.js';
import {
  delay,
  envInt,
  nsProcTable,
  onCleanup,
  percentile,
  progress,
  TimedLines,
  waitFor,
  type BenchModule,
  type Section,
  type Table,
} from './lib.js';

const MIB = 2 ** 20;
const FILE_MIB = envInt('PEER_BENCH_FILE_MIB', 256);
const RUNS = envInt('PEER_BENCH_FILE_RUNS', 3);
/** Where peer's processes write CPU profiles (node --cpu-prof), when set: for finding where time goes. */
const CPU_PROF_DIR = process.env.PEER_BENCH_FILE_CPU_PROF;
const TOOLS = ['peer', 'uftp', 'udpcast'] as const;
type Tool = (typeof TOOLS)[number];
const RECEIVERS = 4;
const SENDER_HOST = 0;
/** Hosts 1..RECEIVERS receive; loss is applied there only (the sender's feedback arrives whole). */
const RECEIVER_HOSTS = Array.from({ length: RECEIVERS }, (_, k) => k + 1);
const LOSS_PERCENT = 10;
/** Every host's leg in NetnsLan is named eth0 inside its namespace (udpcast wants a name). */
const DEV = 'eth0';
/** A plain Ethernet LAN's MTU; the bench checks the veths have it. */
const LAN_MTU_BYTES = 1500;
/** Start-up of the receivers (node processes on a loaded 2-core machine for peer). */
const READY_TIMEOUT_MS = 30_000;
/**
 * One run's deadline, scaled to the file: 120 s for 256 MiB is 17 Mbit/s, far below what any of
 * the three reaches here; a run past it is reported as not finished, and that tool's later runs
 * under the same loss are skipped so a slow tool cannot eat the module's budget.
 */
const RUN_TIMEOUT_MS = Math.max(30_000, Math.round((120_000 * FILE_MIB) / 256));
/**
 * A run is stalled, and ended at once, when the sender's link sent less than STALL_BYTES over
 * the last STALL_WINDOW_MS while its sender still runs: a transfer moving data sends megabytes a
 * second, a stuck one only its retries. Not a timeout: the tool's later runs still run.
 */
const STALL_WINDOW_MS = 15_000;
const STALL_BYTES = MIB;
/** How often the sender's link counter is sampled for the stall check. */
const STALL_SAMPLE_MS = 1_000;
/** How often the receivers' VmHWM is read and their output files looked at. */
const POLL_MS = 10;
/** Linux's USER_HZ, the unit of /proc/<pid>/stat's CPU times (`getconf CLK_TCK`). */
const CLOCK_TICKS_PER_S = 100;
/**
 * How long after the sender's exit the bench still waits for receivers: each tool's sender exits
 * once its receivers are done (or dropped), so a receiver still not done by then never will be.
 */
const AFTER_SENDER_MS = 5_000;
/** Chunk of the random source file written at a time. */
const WRITE_CHUNK_BYTES = 16 * MIB;
const SOURCE_NAME = 'bench-file.bin';
const PEER_SENDER_NAME = 'sender';
/**
 * uftp block size: its man page asks for 100-200 bytes under the path MTU; 1400 + its headers
 * stays under 1500 (no IP fragments) with the least header overhead per byte.
 */
const UFTP_BLOCK_BYTES = 1400;
/** Socket buffer asked by uftp/uftpd (-B): this machine's net.core.rmem_max caps larger values. */
const UFTP_SOCKET_BUFFER_BYTES = 4 * MIB;
/** uftp's initial group round-trip time (-r), in seconds: a LAN's is well under a millisecond. */
const UFTP_INIT_GRTT_S = 0.05;
/** udpcast re-sends its HELLO this often (ms) so a receiver whose connect reply was lost rejoins. */
const UDPCAST_REHELLO_MS = 100;

export const bench: BenchModule = {
  name: 'files',
  anchors: [
    { command: 'uftp', debianPackage: 'uftp' },
    { command: 'udp-sender', debianPackage: 'udpcast' },
    { command: 'nft', debianPackage: 'nftables' },
  ],
  budgetMs: 900_000,
  run,
};

function chosenTools(): Tool[] {
  const raw = process.env.PEER_BENCH_FILE_TOOLS;
  if (raw === undefined || raw === '') return [...TOOLS];
  const asked = raw.split(',').map((t) => t.trim());
  const bad = asked.filter((t) => !(TOOLS as readonly string[]).includes(t));
  if (bad.length)
    throw new Error(
      `PEER_BENCH_FILE_TOOLS: unknown ${bad.join(', ')}; use a comma list of ${TOOLS.join(', ')}`,
    );
  return TOOLS.filter((t) => asked.includes(t));
}

// ---------------------------------------------------------------------------------------------
// measuring

/** The file's SHA-256, hex, streamed (never the whole file in memory). */
async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 * MIB }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function writeRandomFile(file: string, bytes: number): void {
  const fd = fs.openSync(file, 'w');
  try {
    for (let done = 0; done < bytes; done += WRITE_CHUNK_BYTES)
      fs.writeSync(fd, randomBytes(Math.min(WRITE_CHUNK_BYTES, bytes - done)));
  } finally {
    fs.closeSync(fd);
  }
}

/** A counter of the sender's veth, from inside its namespace (ip netns exec mounts its /sys). */
function linkStat(lan: NetnsLan, i: number, stat: 'tx_bytes' | 'rx_bytes' | 'mtu'): number {
  const file = stat === 'mtu' ? `/sys/class/net/${DEV}/mtu` : `/sys/class/net/${DEV}/statistics/${stat}`;
  return Number(execFileSync('ip', ['netns', 'exec', lan.host(i).ns, 'cat', file], { encoding: 'utf8' }));
}

/**
 * CPU seconds (user + system, /proc/<pid>/stat) a process has used, or undefined once it is gone:
 * what a transfer costs each process, which the shared machine's load disturbs far less than time.
 */
function cpuSeconds(pid: number): number | undefined {
  try {
    // Fields after the command's closing parenthesis (it may hold spaces): utime is the 12th, stime the 13th.
    const after = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(after[11]) + Number(after[12])) / CLOCK_TICKS_PER_S;
  } catch {
    return undefined;
  }
}

/** Peak resident set size in KiB (VmHWM), or undefined once the process is gone. */
function vmHwmKiB(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * UDP datagrams the kernel dropped on hosts 1..4 because a socket's receive buffer was full
 * (RcvbufErrors in /proc/net/snmp, per namespace): loss that no nftables rule made.
 */
function receiverBufferDrops(lan: NetnsLan): number {
  let sum = 0;
  for (let i = 1; i <= RECEIVERS; i++)
    sum += nsProcTable(lan.host(i).ns, '/proc/net/snmp', 'Udp:').RcvbufErrors ?? NaN;
  return sum;
}

/** Multicast IP packets a host sent and received (IpExt OutMcastPkts/InMcastPkts, /proc/net/netstat). */
function mcastPackets(lan: NetnsLan, i: number): { out: number; in: number } {
  const t = nsProcTable(lan.host(i).ns, '/proc/net/netstat', 'IpExt:');
  return { out: t.OutMcastPkts ?? NaN, in: t.InMcastPkts ?? NaN };
}

/**
 * Of the multicast packets the sender sent during a run, the share each receiver's IP layer never
 * saw: lost between the two namespaces, inside the machine (the bridge's flooding runs in the
 * kernel's per-CPU receive backlog, which drops what overflows it without a counter). A receiver
 * also hears the other receivers' multicast (heartbeats), subtracted. Counted before any
 * nftables input rule, so the 10 % loss runs' own drops are not in it.
 */
function bridgeLoss(
  before: Array<{ out: number; in: number }>,
  after: Array<{ out: number; in: number }>,
): number[] {
  const d = after.map((a, i) => ({ out: a.out - before[i]!.out, in: a.in - before[i]!.in }));
  const sent = d[SENDER_HOST]!.out;
  return RECEIVER_HOSTS.map((k) => {
    const others = RECEIVER_HOSTS.filter((j) => j !== k).reduce((sum, j) => sum + d[j]!.out, 0);
    return sent > 0 ? Math.max(0, sent - (d[k]!.in - others)) / sent : 0;
  });
}

// ---------------------------------------------------------------------------------------------
// the three tools

interface Receiver {
  proc: TimedLines;
  /** Where the whole file ends up, once known (peer says it in its JSON line). */
  file: () => string | undefined;
  /** When this process first saw the receiver hold the whole file (Date.now()), if it does yet. */
  doneAt: () => number | undefined;
}

interface ToolRun {
  /** Starts the receiver on host i (1..4), writing under dir. */
  receiver(lan: NetnsLan, i: number, dir: string): Receiver;
  /** Whether the receiver is ready for the sender to start. */
  ready(r: Receiver): boolean;
  sender(lan: NetnsLan, source: string, dataDir: string): ChildProcess;
  /** The tool's own repair figures from the sender's output, for the table. */
  repairs(sender: TimedLines): string;
}

/** uftp's client id of a host: its IPv4 address as 8 hex digits (uftpd's default -U). */
function uftpId(address: string): string {
  return `0x${address
    .split('.')
    .map((o) => Number(o).toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase()}`;
}

const uftp: ToolRun = {
  receiver(lan, i, dir) {
    // -d: foreground, log to stderr; -t: receive into a temp file renamed once the file is whole,
    // so the final name appearing is the completion signal; -q: no reverse DNS of the server.
    const args = ['-d', '-I', DEV, '-D', dir, '-t', '-q', '-B', String(UFTP_SOCKET_BUFFER_BYTES)];
    const proc = new TimedLines(lan.spawn(i, 'uftpd', args));
    const file = path.join(dir, SOURCE_NAME);
    let doneAt: number | undefined;
    return {
      proc,
      file: () => file,
      doneAt: () => (doneAt ??= fs.existsSync(file) ? Date.now() : undefined),
    };
  },
  // uftpd logs its key once it is set up; the server's announcements repeat until all 4 register.
  ready: (r) => r.proc.find('Loaded', 0) !== undefined,
  sender(lan, source) {
    const ids = Array.from({ length: RECEIVERS }, (_, k) => uftpId(lan.host(k + 1).address));
    const args = [
      '-I',
      DEV,
      '-R',
      '-1',
      '-b',
      String(UFTP_BLOCK_BYTES),
      '-B',
      String(UFTP_SOCKET_BUFFER_BYTES),
    ];
    args.push('-r', String(UFTP_INIT_GRTT_S), '-H', ids.join(','), source);
    return lan.spawn(SENDER_HOST, 'uftp', args);
  },
  repairs(sender) {
    const passes = sender.lines.filter((l) => /Starting pass \d+/.test(l.text)).length;
    return `${passes} ${passes === 1 ? 'pass' : 'passes'}`;
  },
};

const udpcast: ToolRun = {
  receiver(lan, i, dir) {
    const file = path.join(dir, SOURCE_NAME);
    const proc = new TimedLines(
      lan.spawn(i, 'udp-receiver', ['--nokbd', '--interface', DEV, '--file', file]),
    );
    let doneAt: number | undefined;
    return {
      proc,
      file: () => file,
      // It writes the file in order (it can write to a pipe), so full length means whole; its
      // "Transfer complete." line comes only after its exit wait (500 ms, for a lost last ack).
      // A receiver the sender dropped exits short: done too, and the hash fails it.
      doneAt: () =>
        (doneAt ??=
          proc.child.exitCode !== null || (fs.existsSync(file) && fs.statSync(file).size === FILE_MIB * MIB)
            ? Date.now()
            : undefined),
    };
  },
  ready: (r) => r.proc.find('UDP receiver for', 0) !== undefined,
  sender(lan, source) {
    const args = ['--nokbd', '--min-receivers', String(RECEIVERS), '--interface', DEV, '--full-duplex'];
    args.push('--rexmit-hello-interval', String(UDPCAST_REHELLO_MS), '--file', source);
    return lan.spawn(SENDER_HOST, 'udp-sender', args);
  },
  repairs(sender) {
    // Progress lines end with "re-xmits=0001663 (  3.6%)"; the last one is the total.
    const all = sender.lines.flatMap((l) => [...l.text.matchAll(/re-xmits=0*(\d+) \(\s*([\d.]+)%\)/g)]);
    const last = all.at(-1);
    return last ? `${last[1]} blocks re-sent (${last[2]} %)` : 'n/a';
  },
};

/** The peer CLI's common flags on host i of the bench LAN. */
function peerArgs(lan: NetnsLan, i: number, name: string, dataDir: string): string[] {
  return ['--name', name, '--interface', lan.host(i).address, '--ttl', '1', '--data-dir', dataDir];
}

const peer: ToolRun = {
  receiver(lan, i, dir) {
    const args = ['chat', '--listen', '--json', '--download-dir', dir];
    args.push(...peerArgs(lan, i, `r${i}`, path.join(dir, '..', `data-r${i}`)));
    const proc = new TimedLines(spawnPeer(lan, i, args));
    const line = () => {
      const l = proc.find('"type":"file"', 0);
      return l ? { at: l.at, path: (JSON.parse(l.text) as { path?: unknown }).path } : undefined;
    };
    return {
      proc,
      file: () => {
        const p = line()?.path;
        return typeof p === 'string' ? p : undefined;
      },
      doneAt: () => line()?.at,
    };
  },
  // The open-group warning is printed once the peer's sockets are open.
  ready: (r) => r.proc.find('no --key-file', 0) !== undefined,
  sender(lan, source, dataDir) {
    const args = ['chat', '--send-file', source, ...peerArgs(lan, SENDER_HOST, PEER_SENDER_NAME, dataDir)];
    return spawnPeer(lan, SENDER_HOST, args);
  },
  repairs: () => 'n/a',
};

/**
 * Starts the peer CLI on host i: BIN itself, as a user's `peer` runs it (its first line gives node
 * its options), or with PEER_BENCH_FILE_CPU_PROF=DIR under node's --cpu-prof, each process
 * writing its profile into DIR when it exits (NODE_OPTIONS cannot carry --cpu-prof).
 */
function spawnPeer(lan: NetnsLan, i: number, args: string[]): ChildProcess {
  const env = { NO_COLOR: '1' };
  if (!CPU_PROF_DIR) return lan.spawn(i, BIN, args, env);
  const nodeOptions = /^#!.*node (.*)$/m.exec(fs.readFileSync(BIN, 'utf8'))?.[1]?.split(' ') ?? [];
  const prof = ['--cpu-prof', '--cpu-prof-dir', CPU_PROF_DIR];
  return lan.spawn(i, process.execPath, [...nodeOptions, ...prof, BIN, ...args], env);
}

const RUNNERS: Record<Tool, ToolRun> = { peer, uftp, udpcast };

/** Whether this build of peer has file transfer (`peer chat --send-file`). */
function peerCanSendFiles(): boolean {
  const help = execFileSync(process.execPath, [BIN, 'chat', '--help'], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
  return help.includes('--send-file');
}

// ---------------------------------------------------------------------------------------------
// one run

interface RunResult {
  /** Whether the run hit RUN_TIMEOUT_MS still moving data (a stall is not a timeout). */
  timedOut: boolean;
  /** Sender start to the last receiver done, ms; undefined if not all were in time. */
  ms?: number;
  senderExitMs?: number;
  senderCode: number | null;
  /** Receivers whose file's SHA-256 matched the source's. */
  verified: number;
  txRatio: number;
  rxRatio: number;
  /** Datagrams the receivers' kernels dropped for a full socket buffer during the run. */
  bufferDrops: number;
  /** Per receiver, the share of the sender's multicast packets it never got (bridgeLoss). */
  bridgeLoss: number[];
  /** Each receiver's peak RSS, KiB. */
  rssKiB: number[];
  /** CPU seconds of the sender, then of each receiver (the last poll's: within POLL_MS of its exit). */
  cpuS: number[];
  repairs: string;
  problems: string[];
}

async function oneRun(
  lan: NetnsLan,
  tool: Tool,
  source: string,
  sourceSha: string,
  root: string,
  tag: string,
): Promise<RunResult> {
  const t = RUNNERS[tool];
  const dir = path.join(root, tag);
  const receivers: Receiver[] = [];
  const hwm: number[] = new Array<number>(RECEIVERS).fill(0);
  const cpu: number[] = new Array<number>(RECEIVERS + 1).fill(0);
  let polling = true;
  let sender: TimedLines | undefined;
  try {
    for (let i = 1; i <= RECEIVERS; i++) {
      const d = path.join(dir, `r${i}`);
      fs.mkdirSync(d, { recursive: true });
      receivers.push(t.receiver(lan, i, d));
    }
    const sampleRss = () =>
      receivers.forEach((r, k) => {
        const kib = r.proc.child.pid !== undefined ? vmHwmKiB(r.proc.child.pid) : undefined;
        if (kib !== undefined) hwm[k] = Math.max(hwm[k]!, kib);
      });
    const sampleCpu = () =>
      [sender, ...receivers.map((r) => r.proc)].forEach((p, k) => {
        const s = p?.child.pid !== undefined ? cpuSeconds(p.child.pid) : undefined;
        if (s !== undefined) cpu[k] = Math.max(cpu[k]!, s);
      });
    const poller = (async () => {
      while (polling) {
        sampleRss();
        sampleCpu();
        for (const r of receivers) r.doneAt();
        await delay(POLL_MS);
      }
    })();
    await waitFor(() => receivers.every((r) => t.ready(r)), READY_TIMEOUT_MS, `${tool} receivers to start`);
    const tx0 = linkStat(lan, SENDER_HOST, 'tx_bytes');
    const rx0 = linkStat(lan, SENDER_HOST, 'rx_bytes');
    const drops0 = receiverBufferDrops(lan);
    const mcast0 = lan.hosts.map((_, i) => mcastPackets(lan, i));
    const t0 = Date.now();
    sender = new TimedLines(t.sender(lan, source, path.join(dir, 'data-sender')));
    let senderExitAt: number | undefined;
    let senderCode: number | null = null;
    void sender.exited.then((code) => {
      senderExitAt = Date.now();
      senderCode = code;
    });
    const problems: string[] = [];
    const finished = () =>
      senderExitAt !== undefined &&
      (receivers.every((r) => r.doneAt() !== undefined) || Date.now() - senderExitAt > AFTER_SENDER_MS);
    const sent: Array<{ at: number; tx: number }> = [{ at: t0, tx: tx0 }];
    let timedOut = false;
    for (;;) {
      if (finished()) break;
      const now = Date.now();
      if (now - t0 > RUN_TIMEOUT_MS) {
        timedOut = true;
        problems.push(`not finished after ${RUN_TIMEOUT_MS / 1000} s`);
        break;
      }
      if (now - sent.at(-1)!.at >= STALL_SAMPLE_MS)
        sent.push({ at: now, tx: linkStat(lan, SENDER_HOST, 'tx_bytes') });
      const back = sent.findLast((x) => now - x.at >= STALL_WINDOW_MS);
      if (senderExitAt === undefined && back && sent.at(-1)!.tx - back.tx < STALL_BYTES) {
        // Its last line says where it waits (e.g. udp-sender's connected receivers, uftp's pass).
        const last =
          sender.lines
            .findLast((l) => l.text.trim() !== '')
            ?.text.split('\r')
            .at(-1)
            ?.trim() ?? '';
        problems.push(
          `stalled: the sender sent under ${STALL_BYTES / MIB} MiB in ${STALL_WINDOW_MS / 1000} s; its last line: "${last.slice(0, 160)}"`,
        );
        break;
      }
      await delay(POLL_MS);
    }
    const tx = linkStat(lan, SENDER_HOST, 'tx_bytes') - tx0;
    const rx = linkStat(lan, SENDER_HOST, 'rx_bytes') - rx0;
    const bufferDrops = receiverBufferDrops(lan) - drops0;
    const lostInBridge = bridgeLoss(
      mcast0,
      lan.hosts.map((_, i) => mcastPackets(lan, i)),
    );
    sampleRss();
    sampleCpu();
    polling = false;
    await poller;
    const dones = receivers.map((r) => r.doneAt());
    const allDone = dones.every((d) => d !== undefined);
    if (senderExitAt !== undefined)
      dones.forEach((d, k) => {
        if (d === undefined)
          problems.push(`receiver ${k + 1} was not done ${AFTER_SENDER_MS} ms after the sender`);
      });
    if (senderCode !== 0 && senderExitAt !== undefined) problems.push(`the sender exited with ${senderCode}`);
    let verified = 0;
    for (const [k, r] of receivers.entries()) {
      const file = r.file();
      if (!file || !fs.existsSync(file)) {
        problems.push(`receiver ${k + 1} has no file`);
        continue;
      }
      const sha = await sha256Of(file);
      if (sha === sourceSha) verified++;
      else
        problems.push(`receiver ${k + 1}'s file differs from the source (${fs.statSync(file).size} bytes)`);
    }
    return {
      timedOut,
      ms: allDone ? Math.max(...(dones as number[])) - t0 : undefined,
      senderExitMs: senderExitAt !== undefined ? senderExitAt - t0 : undefined,
      senderCode,
      verified,
      txRatio: tx / (FILE_MIB * MIB),
      rxRatio: rx / (FILE_MIB * MIB),
      bufferDrops,
      bridgeLoss: lostInBridge,
      rssKiB: hwm,
      cpuS: cpu,
      repairs: t.repairs(sender),
      problems,
    };
  } finally {
    polling = false;
    const procs = [...receivers.map((r) => r.proc), ...(sender ? [sender] : [])];
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGTERM');
    await Promise.race([Promise.all(procs.map((p) => p.exited)), delay(5_000)]);
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;
const pct = (share: number) => `${(100 * share).toFixed(1)} %`;
const secs = (ms: number | undefined) => (ms === undefined ? 'n/a' : `${(ms / 1000).toFixed(2)} s`);

/** The bare Node.js floor's group and port (not the peer's: nothing else listens there). */
const FLOOR_GROUP = '239.255.77.79';
const FLOOR_PORT = 47779;
/** Sends per event-loop turn of the floor's sender: the others' datagrams get read in between. */
const FLOOR_SENDS_PER_TURN = 64;

/**
 * What Node.js itself costs, whatever the protocol: one process multicasting the file's frames
 * (as many datagrams as peer sends, of the largest frame's size) with node:dgram as fast as it
 * can, to 4 processes that only count them; no repair, no ack, no disk, no hash. Returns the
 * sender's time from start to its last send, and the fewest datagrams one receiver got.
 */
async function nodeFloor(lan: NetnsLan, frames: number): Promise<{ ms: number; leastReceived: number }> {
  const receiver = `const s = require('node:dgram').createSocket({ type: 'udp4', reuseAddr: true, recvBufferSize: ${UDP_RECEIVE_BUFFER_BYTES} });
let n = 0;
s.on('message', () => n++);
s.bind(${FLOOR_PORT}, '${FLOOR_GROUP}', () => { s.addMembership('${FLOOR_GROUP}', process.argv[1]); console.log('ready'); });
process.on('SIGTERM', () => { console.log('got ' + n); process.exit(0); });`;
  const sender = `const s = require('node:dgram').createSocket('udp4');
const b = Buffer.alloc(${FRAME_BYTES_MAX}, 7);
s.bind(0, process.argv[1], () => {
  s.setMulticastInterface(process.argv[1]);
  s.setMulticastLoopback(false);
  let i = 0;
  const t0 = performance.now();
  const turn = () => {
    for (let k = 0; k < ${FLOOR_SENDS_PER_TURN} && i < ${frames}; k++, i++) s.send(b, ${FLOOR_PORT}, '${FLOOR_GROUP}');
    if (i < ${frames}) return setImmediate(turn);
    setImmediate(() => { console.log('ms ' + (performance.now() - t0)); s.close(); });
  };
  turn();
});`;
  const rs = Array.from({ length: RECEIVERS }, (_, k) => {
    const i = k + 1;
    return new TimedLines(lan.spawn(i, process.execPath, ['-e', receiver, lan.host(i).address]));
  });
  await waitFor(() => rs.every((r) => r.find('ready', 0)), READY_TIMEOUT_MS, 'the bare Node.js receivers');
  const s = new TimedLines(
    lan.spawn(SENDER_HOST, process.execPath, ['-e', sender, lan.host(SENDER_HOST).address]),
  );
  await waitFor(() => s.find('ms ', 0) !== undefined, RUN_TIMEOUT_MS, 'the bare Node.js sender');
  // Whatever is still in flight lands; then each receiver says how many it got.
  await delay(AFTER_FLOOR_SEND_MS);
  for (const r of rs) r.child.kill('SIGTERM');
  await waitFor(() => rs.every((r) => r.find('got ', 0)), READY_TIMEOUT_MS, "the receivers' counts");
  const got = rs.map((r) => Number(/^got (\d+)$/.exec(r.find('got ', 0)!.text)?.[1] ?? 0));
  return {
    ms: Number(/^ms ([\d.]+)$/.exec(s.find('ms ', 0)!.text)?.[1] ?? NaN),
    leastReceived: Math.min(...got),
  };
}

/** After the floor's sender is done, how long its receivers may still be reading. */
const AFTER_FLOOR_SEND_MS = 500;

async function run(): Promise<Section> {
  const cap = netnsCapability();
  if (!cap.ok) throw new Error(`files bench needs network namespaces: ${cap.why}`);
  if (!nftAvailable()) throw new Error('files bench needs nftables (apt-get install -y nftables)');
  const tools = chosenTools();
  const notes: string[] = [];
  const measured = tools.filter((tool) => {
    if (tool === 'peer' && !peerCanSendFiles()) {
      notes.push(
        'peer: **not measured**: this build of `peer chat` has no `--send-file` yet; the bench runs it as soon as it has.',
      );
      return false;
    }
    return true;
  });
  const load0 = os.loadavg();
  const started = Date.now();
  // tmpfs: the shared machine's disk would add other people's I/O to every figure.
  const root = fs.mkdtempSync('/dev/shm/peer-bench-files-');
  const offRoot = onCleanup(() => fs.rmSync(root, { recursive: true, force: true }));
  const lan = new NetnsLan(RECEIVERS + 1).up();
  const offLan = onCleanup(() => lan.down());
  const rows: Table['rows'] = [];
  let measuredLoss = 'n/a';
  try {
    const mtus = lan.hosts.map((_, i) => linkStat(lan, i, 'mtu'));
    if (mtus.some((m) => m !== LAN_MTU_BYTES))
      throw new Error(`veth MTUs are ${mtus.join('/')}, not ${LAN_MTU_BYTES}`);
    const source = path.join(root, SOURCE_NAME);
    progress(`files: writing ${FILE_MIB} MiB of random bytes to ${source}`);
    writeRandomFile(source, FILE_MIB * MIB);
    const sourceSha = await sha256Of(source);
    for (const loss of [0, LOSS_PERCENT]) {
      if (loss > 0) lan.addLoss(loss, { hosts: RECEIVER_HOSTS });
      const results = new Map<Tool, RunResult[]>(measured.map((tool) => [tool, []]));
      const slow = new Set<Tool>();
      // Tools interleaved run by run, so a noisy minute on the machine does not land on one tool.
      for (let k = 1; k <= RUNS; k++)
        for (const tool of measured) {
          if (slow.has(tool)) continue;
          const r = await oneRun(lan, tool, source, sourceSha, root, `${tool}-${loss}-${k}`);
          results.get(tool)!.push(r);
          if (r.timedOut) slow.add(tool);
          progress(
            `files: ${tool}, ${loss} % loss, run ${k}: ${secs(r.ms)}, ${r.verified}/${RECEIVERS} verified, ` +
              `tx ${r.txRatio.toFixed(3)}x, ${r.bufferDrops} socket-buffer drops, lost in the bridge ${r.bridgeLoss.map(pct).join('/')}, RSS ${r.rssKiB.map(mib).join('/')}, CPU s (sender/receivers) ${r.cpuS.map((c) => c.toFixed(2)).join('/')}, ${r.repairs}` +
              (r.problems.length ? `; ${r.problems.join('; ')}` : ''),
          );
          for (const p of r.problems) notes.push(`${tool}, ${loss} % loss, run ${k}: ${p}.`);
        }
      if (loss > 0) {
        const c = lan.lossCounts(RECEIVER_HOSTS);
        measuredLoss = `${((100 * c.dropped) / c.seen).toFixed(1)} % of ${c.seen.toLocaleString('en')} UDP datagrams`;
        lan.clearLoss();
      }
      for (const [tool, rs] of results) rows.push(row(tool, loss, rs));
    }
    // As many datagrams as peer's frames carry the file in (a new peer's stream: epoch 1).
    const frames = Math.ceil((FILE_MIB * MIB) / framedRoom(1));
    const floors: Array<{ ms: number; leastReceived: number }> = [];
    for (let k = 1; k <= RUNS; k++) {
      const f = await nodeFloor(lan, frames);
      floors.push(f);
      progress(
        `files: bare Node.js floor, run ${k}: ${secs(f.ms)}, ${f.leastReceived} of ${frames} datagrams at the worst receiver`,
      );
    }
    const floorMs = floors.map((f) => f.ms).sort((a, b) => a - b)[Math.floor(floors.length / 2)]!;
    notes.push(
      `**The floor of any Node.js implementation here.** One process sending the ${frames.toLocaleString('en')} datagrams of ${FRAME_BYTES_MAX} bytes that peer sends for this file (node:dgram, ${FLOOR_SENDS_PER_TURN} sends per event-loop turn, no repair, no ack, no disk, no hash) to ${RECEIVERS} processes that only count them, without loss: ${secs(floorMs)} from its first send to its last (median of ${RUNS}: ${floors.map((f) => secs(f.ms)).join(', ')}), the worst receiver getting ${floors.map((f) => `${((100 * f.leastReceived) / frames).toFixed(1)} %`).join(', ')} of them. On this 2-core machine every datagram's copy through the bridge to 4 receivers is paid on its cores (the sender's send calls do the bridge's forwarding), so this is what a Node.js sender and receivers cost before any work of their own.`,
    );
  } finally {
    lan.down();
    offLan();
    fs.rmSync(root, { recursive: true, force: true });
    offRoot();
  }
  const load1 = os.loadavg();
  notes.push(
    `Measured loss at the receivers during the ${LOSS_PERCENT} % runs: ${measuredLoss} dropped.`,
    `Whole module took ${((Date.now() - started) / 60_000).toFixed(1)} min. Load average (1/5/15 min) before: ${load0.map((l) => l.toFixed(2)).join('/')}, after: ${load1.map((l) => l.toFixed(2)).join('/')} on a 2-core machine shared with other work.`,
  );
  return {
    title: 'Files: one file to 4 receivers (issue 20 targets)',
    summary: `One ${FILE_MIB} MiB file to ${RECEIVERS} receivers; targets: peer no slower than uftp, at no loss at most 1.05x the file's bytes on the sender's link, receiver peak RSS under 128 MiB.`,
    tables: [
      {
        caption: `${FILE_MIB} MiB of random bytes from 1 sender to ${RECEIVERS} receivers, namespace LAN (veth + bridge, MTU ${LAN_MTU_BYTES}), ${RUNS} runs per tool and loss, tools interleaved. Time: sender start → last receiver holds the whole file (median, min-max); a run counts as verified when all ${RECEIVERS} files' SHA-256 match the source.`,
        headers: [
          'tool',
          'loss',
          'runs with all verified',
          'time p50',
          'min-max',
          'sender exit p50',
          'sender link tx / file',
          'sender link rx / file',
          "datagrams dropped in the receivers' full socket buffers (per run)",
          "sender's multicast lost inside the machine before a receiver's IP layer (fewest-most of 4, per run)",
          'receiver peak RSS (max of 4 receivers, per run)',
          'repairs (tool-reported, per run)',
        ],
        rows,
      },
    ],
    method: methodText(),
    notes,
  };
}

function row(tool: Tool, loss: number, rs: RunResult[]): Table['rows'][number] {
  // Times only of runs in which every receiver got the file: a failed run is counted, not timed.
  const ok = rs.filter((r) => r.verified === RECEIVERS);
  const times = ok.flatMap((r) => (r.ms === undefined ? [] : [r.ms]));
  const exits = ok.flatMap((r) => (r.senderExitMs === undefined ? [] : [r.senderExitMs]));
  const ratio = (xs: number[]) =>
    `${percentile(xs, 50).toFixed(3)}x (${Math.min(...xs).toFixed(3)}-${Math.max(...xs).toFixed(3)})`;
  return [
    tool,
    `${loss} %`,
    `${ok.length} of ${rs.length}`,
    times.length ? secs(percentile(times, 50)) : 'n/a',
    times.length ? `${secs(Math.min(...times))}-${secs(Math.max(...times))}` : 'n/a',
    exits.length ? secs(percentile(exits, 50)) : 'n/a',
    ratio(rs.map((r) => r.txRatio)),
    ratio(rs.map((r) => r.rxRatio)),
    rs.map((r) => r.bufferDrops.toLocaleString('en')).join(', '),
    rs.map((r) => `${pct(Math.min(...r.bridgeLoss))}-${pct(Math.max(...r.bridgeLoss))}`).join(', '),
    rs.map((r) => mib(Math.max(...r.rssKiB))).join(', '),
    rs.map((r) => r.repairs).join('; '),
  ];
}

function methodText(): string {
  return [
    `\`npm run bench -- files\` (bench/files.ts). A LAN of ${RECEIVERS + 1} network namespaces, each with a veth leg on one bridge (test/support/netns.ts; multicast snooping off, so the bridge floods group traffic like a plain switch), MTU ${LAN_MTU_BYTES} as on Ethernet (checked), 10.77.x addresses with a broadcast address, existing only inside the namespaces: no packet leaves the machine. Host 0 sends, hosts 1-${RECEIVERS} receive.`,
    `The file: ${FILE_MIB} MiB from crypto.randomBytes, on tmpfs (/dev/shm), and the receivers write to tmpfs too, so the shared machine's disk is not part of any figure (fsync is free there).`,
    `Each run starts the ${RECEIVERS} receivers, waits until each says it is ready, reads the sender veth's tx_bytes and rx_bytes (/sys/class/net/${DEV}/statistics inside its namespace: link-level bytes, Ethernet, IP and UDP headers included), starts the sender, and waits until the sender has exited and every receiver holds the whole file: **uftp**, the file under its final name (uftpd -t receives into a temp file and renames it once whole; polled every ${POLL_MS} ms); **udpcast**, the receiver's file at full length (udp-receiver writes in order, as it can write to a pipe; polled every ${POLL_MS} ms; its "Transfer complete." line comes only after a 500 ms exit wait), or the receiver's exit if it ends short (dropped by the sender); **peer**, the receiver's \`{"type":"file",...}\` line (it verifies the SHA-256 itself before the file appears). Time = the last receiver's moment minus the sender's start, so it includes the tools' session set-up (uftp's announce/register, udpcast's HELLO/connect, peer's discovery). A receiver still not done ${AFTER_SENDER_MS / 1000} s after the sender exited fails the run; so does a stall (the sender still running but its link sending under ${STALL_BYTES / MIB} MiB in ${STALL_WINDOW_MS / 1000} s), which ends the run there, and a run still going after ${RUN_TIMEOUT_MS / 1000} s (the tool's later runs at that loss are then skipped, to keep the module's time bounded). Then the bench hashes each receiver's file (SHA-256, not timed) against the source: a receiver whose file differs or is missing fails the run, whatever the tool said. Times and the sender's exit are the median over the runs in which all ${RECEIVERS} receivers got the file; failed runs are counted, and listed in the notes.`,
    `Socket-buffer drops: the receivers' namespaces' RcvbufErrors (/proc/net/snmp) over the run, datagrams the kernel dropped because a receiving socket's buffer was full: on this shared 2-core machine a receiver that is not scheduled for a few tens of milliseconds overflows even a 4 MiB buffer at LAN speed, so the tools repair loss at "no loss" too.`,
    `Lost inside the machine: per receiver, the sender's multicast packets (IpExt OutMcastPkts in /proc/net/netstat of its namespace) that the receiver's IP layer never counted (InMcastPkts, less the other receivers' own multicast), over the run: the bridge floods each datagram through the kernel's per-CPU receive backlog (net.core.netdev_max_backlog packets), whose overflow no counter shows; counted before the loss runs' nftables rule.`,
    `Peak RSS: VmHWM from /proc/<pid>/status of each receiver process, polled every ${POLL_MS} ms while it runs (ip netns exec execs the tool, so the pid is the tool's; VmHWM is the kernel's own high-water mark, so polling misses nothing before the last read).`,
    `Loss: nftables on each receiver's input hook, \`meta l4proto udp numgen random mod 100 < ${LOSS_PERCENT} counter drop\`, with a counter on all UDP so the loss applied is reported; the sender's own input is not filtered (its feedback from the receivers arrives whole, as each receiver's loss is on the path to it).`,
    `**uftp** (Debian uftp 4.10.2): \`uftpd -d -I ${DEV} -D DIR -t -q -B ${UFTP_SOCKET_BUFFER_BYTES}\` on each receiver; \`uftp -I ${DEV} -R -1 -b ${UFTP_BLOCK_BYTES} -B ${UFTP_SOCKET_BUFFER_BYTES} -r ${UFTP_INIT_GRTT_S} -H ID1,ID2,ID3,ID4 FILE\` on the sender. Why: -R -1 (as fast as the interface allows) is what uftp's man page recommends when the path to every client is as fast as the sender's own interface, true on one bridge; -C tfmcc (congestion control) was tried and was several times slower here (it paces from loss, and ramps up from a low rate); -b ${UFTP_BLOCK_BYTES} follows the man page (100-200 bytes under the path MTU) without IP fragments; -H names the 4 receivers (closed group: the transfer starts as soon as all 4 registered, instead of announcing for the whole robustness window, several seconds); -r ${UFTP_INIT_GRTT_S} starts from a LAN-like round-trip time instead of 0.5 s; -B asks for this machine's largest socket buffer (net.core.rmem_max) so a burst at interface speed is not dropped in the receiver's socket; -t makes completion visible; -q skips a reverse DNS lookup. No encryption (-Y none, the default), as peer's open group.`,
    `**udpcast** (Debian udpcast 20120424): \`udp-receiver --nokbd --interface ${DEV} --file FILE\` on each receiver; \`udp-sender --nokbd --min-receivers ${RECEIVERS} --interface ${DEV} --full-duplex --rexmit-hello-interval ${UDPCAST_REHELLO_MS} --file FILE\` on the sender. Why: --full-duplex is the man page's advice for a switched LAN; --rexmit-hello-interval, its advice where loss is high enough that sender and receivers may not find each other (a lost connect reply otherwise leaves a receiver out). The loss options were tried on 64 MiB at 10 % loss: --fec 8x16/128 (with or without --max-bitrate 500m) took about twice as long with no fewer retransmissions, --max-bitrate 500m alone was slower too, and --retries-until-drop 1000 still saw a receiver dropped in some runs and one run stalled; so they are left at their defaults (no FEC, no rate cap). The default block size (1456 bytes, its maximum) fits the MTU.`,
    `**peer**: run as \`bin/run.js\` itself, as an installed \`peer\` runs (its first line gives node --max-semi-space-size=8): \`peer chat --listen --json --download-dir DIR --name rN --interface ADDR --ttl 1\` on each receiver, \`peer chat --send-file FILE --name ${PEER_SENDER_NAME} --interface ADDR --ttl 1\` on the sender, open group, lan profile; the sender must exit 0 (every receiver holds the verified file). Rerun: \`npm run bench -- files\` (root, iproute2, nftables; uftp and udpcast are installed by the bench); PEER_BENCH_FILE_MIB, PEER_BENCH_FILE_RUNS and PEER_BENCH_FILE_TOOLS (e.g. uftp,udpcast) change the size, the runs and the tools.`,
  ].join(' ');
}
