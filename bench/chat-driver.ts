/**
 * One peer for bench/chat.ts, run as its own process inside a network namespace:
 *   node --import tsx bench/chat-driver.ts '{"name":"p1","index":1,"interface":"10.77.3.2","port":47777,"guard":true}'
 *
 * It is the real stack of `peer chat` below the command: UdpTransport, the open-group rate guard
 * (securityLayers, exactly as startPeer wires it; `"guard": false` leaves it out), PeerNode with
 * the lan profile and membership, and ReliableDelivery sending each burst through the node's
 * soon() (the packing chat uses). Not the Chat module or SQLite: the bench needs rate control and per-message
 * timestamps, which the CLI does not offer.
 *
 * Control: one JSON command per stdin line, one JSON event per stdout line.
 *   {"cmd":"members"}                                → {"ev":"members","live":N}
 *   {"cmd":"reset","latencies":false,"mark":M}       → {"ev":"reset"}   (clears what was received; numbering restarts at 1;
 *                                                       latencies: keep each message's latency, true by default;
 *                                                       mark: report when the M-th message was delivered, as markedAt)
 *   {"cmd":"rate","perS":R,"ms":T,"size":B}          → {"ev":"sent","count":N,"ms":..}
 *   {"cmd":"blast","count":N,"size":B,"window":W}    → {"ev":"sent","count":N,"ms":..} (W chunks of 256 in flight)
 *   {"cmd":"report","latencies":false}               → {"ev":"report",...} (latencies: true by default)
 *
 * Payload and what a receiver does with it: bench/tally.ts (the Redis subscriber does the same).
 * CLOCK_MONOTONIC (process.hrtime) is one clock for every process on the machine,
 * namespaces included (no time namespace is used), so receive time minus send time is a valid
 * one-way latency.
 */
import { randomBytes } from 'node:crypto';
import readline from 'node:readline';
import { PeerNode } from '../src/p2p/node.js';
import { PROFILES } from '../src/p2p/config.js';
import { ReliableDelivery } from '../src/p2p/reliable/index.js';
import { realRuntime } from '../src/p2p/runtime.js';
import { UdpTransport } from '../src/p2p/transport/udp.js';
import { securityLayers } from '../src/cli/security.js';
import type { Transport } from '../src/p2p/transport/transport.js';
import { benchPayload, hr, Tally } from './tally.js';

const GROUP = '239.255.77.77';
const TOPIC = 'bench';
/** Blast flow control: one publish in this many asks for a settle callback ... */
const BLAST_CHUNK_MESSAGES = 256;
/** ... and by default at most this many chunks are unsettled at once (under the 8192-message repair buffer). */
const BLAST_CHUNKS_IN_FLIGHT_DEFAULT = 16;
/** Rate mode: how often the sender wakes to publish what is due. */
const RATE_WAKE_MS = 2;

interface Options {
  name: string;
  index: number;
  interface: string;
  port: number;
  guard: boolean;
}

const opts = JSON.parse(process.argv[2] ?? '{}') as Options;
const out = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);

const udp = new UdpTransport({ group: GROUP, port: opts.port, interface: opts.interface, ttl: 1 });
const layers = opts.guard ? securityLayers(udp, `${GROUP}:${opts.port}`, null, { notify: () => {} }) : null;
const transport: Transport = layers?.transport ?? udp;
const node = new PeerNode({
  id: randomBytes(8).toString('hex'),
  name: opts.name,
  incarnation: 1,
  profile: PROFILES.lan,
  transport,
  runtime: realRuntime,
});
const rd = node.install((ctx, n) => new ReliableDelivery(ctx, n.membership));

// ---- receiving -------------------------------------------------------------------------------

let tally = new Tally();
/** Whether to keep every message's latency (the rate phases); throughput runs only count. */
let keepLatencies = true;
let latenciesUs: number[] = [];
let lastAt = 0n;
let firstSentAt = 0;
let lostReported = 0;

rd.on(TOPIC, (d) => {
  const now = hr();
  const n = tally.add(d.payload);
  if (keepLatencies) latenciesUs.push((Number(now) - tally.sentAt) / 1000);
  // Numbering restarts at 1 on reset, so message 1 is the first each sender published.
  if (n === 1 && (firstSentAt === 0 || tally.sentAt < firstSentAt)) firstSentAt = tally.sentAt;
  lastAt = now;
});
rd.onLost((r) => (lostReported += r.count));

// ---- sending ---------------------------------------------------------------------------------

let seq = 0;
const payload = (size: number) => benchPayload(opts.index, ++seq, size);

async function rate(perS: number, ms: number, size: number): Promise<number> {
  const start = performance.now();
  let sent = 0;
  for (;;) {
    const elapsed = performance.now() - start;
    const due = Math.min(Math.floor((elapsed * perS) / 1000), Math.floor((ms * perS) / 1000));
    while (sent < due) {
      rd.publish(TOPIC, payload(size));
      sent++;
    }
    if (elapsed >= ms) return sent;
    await new Promise((r) => setTimeout(r, RATE_WAKE_MS));
  }
}

async function blast(count: number, size: number, window: number): Promise<number> {
  let sent = 0;
  let inFlight = 0;
  let wake: (() => void) | null = null;
  const settled = () => {
    inFlight--;
    wake?.();
  };
  while (sent < count) {
    if (inFlight >= window) {
      await new Promise<void>((r) => (wake = r));
      wake = null;
      continue;
    }
    const n = Math.min(BLAST_CHUNK_MESSAGES, count - sent);
    for (let i = 1; i <= n; i++) rd.publish(TOPIC, payload(size), i === n ? settled : undefined);
    inFlight++;
    sent += n;
    // Let the event loop send the datagrams and read acks before the next chunk.
    await new Promise((r) => setImmediate(r));
  }
  while (inFlight > 0) {
    await new Promise<void>((r) => (wake = r));
    wake = null;
  }
  return sent;
}

// ---- control ---------------------------------------------------------------------------------

let cpuAt = process.cpuUsage();
let cpuWallAt = performance.now();

function report(withLatencies: boolean): Record<string, unknown> {
  const cpu = process.cpuUsage(cpuAt);
  return {
    ev: 'report',
    perSender: tally.perSender(),
    latenciesUs: withLatencies ? latenciesUs : [],
    deliveries: tally.deliveries,
    lastAt: String(lastAt),
    markedAt: String(tally.markedAt),
    firstSentAt: String(firstSentAt),
    lostReported,
    cpuPercent: ((cpu.user + cpu.system) / 1000 / (performance.now() - cpuWallAt)) * 100,
    cpuUs: cpu.user + cpu.system,
    reliable: { ...rd.stats, lastHandlerError: undefined },
    node: { ...node.stats, lastHandlerError: undefined },
    guard: layers?.guard?.stats ?? null,
    udpErrors: udp.errors,
  };
}

await node.start();
out({ ev: 'ready', id: node.id, address: node.address });

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let c: {
    cmd: string;
    perS?: number;
    ms?: number;
    size?: number;
    count?: number;
    latencies?: boolean;
    mark?: number;
    window?: number;
  };
  try {
    c = JSON.parse(line);
  } catch {
    out({ ev: 'error', message: `not JSON: ${line}` });
    return;
  }
  switch (c.cmd) {
    case 'members':
      return out({ ev: 'members', live: node.membership.live().length });
    case 'reset':
      tally = new Tally(c.mark ?? 0);
      keepLatencies = c.latencies !== false;
      latenciesUs = [];
      lastAt = 0n;
      firstSentAt = 0;
      lostReported = 0;
      seq = 0;
      cpuAt = process.cpuUsage();
      cpuWallAt = performance.now();
      return out({ ev: 'reset' });
    case 'rate': {
      const t0 = performance.now();
      void rate(c.perS!, c.ms!, c.size!).then((count) =>
        out({ ev: 'sent', count, ms: performance.now() - t0 }),
      );
      return;
    }
    case 'blast': {
      const t0 = performance.now();
      void blast(c.count!, c.size!, c.window ?? BLAST_CHUNKS_IN_FLIGHT_DEFAULT).then((count) =>
        out({ ev: 'sent', count, ms: performance.now() - t0 }),
      );
      return;
    }
    case 'report':
      return out(report(c.latencies !== false));
    default:
      out({ ev: 'error', message: `unknown command ${c.cmd}` });
  }
});
rl.on('close', () => {
  void node.stop().then(() => process.exit(0));
});
