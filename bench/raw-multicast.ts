/**
 * A control for bench/chat.ts: the same traffic on the same namespaces with no protocol at all,
 * only Node's dgram. What it measures is what any implementation in Node on this machine can hope
 * for, so the peer rows can be read against it.
 *
 *   node --import tsx bench/raw-multicast.ts '{"index":1,"interface":"10.77.3.2","port":47778,"send":null}'
 *
 * Every process joins the group and counts the datagrams of the others. Multicast loopback is off,
 * as a peer alone on its host turns it off (src/p2p/node.ts). It prints {"ev":"ready"} once
 * bound; a "go" line on stdin zeroes its counters and starts its sending, after which it prints
 * {"ev":"sent",...}; when stdin closes it prints {"ev":"report",...} and exits. Sending, by
 * `send.mode`:
 *   blast: `count` datagrams of `size` bytes, BLAST_BURST per event-loop turn, no flow control
 *          (receivers lose what they cannot take: their rate is the most they can take);
 *   rate:  `perS` datagrams/s for `ms`, waking every RATE_WAKE_MS as chat-driver.ts does, each
 *          carrying `<index> <number> <CLOCK_MONOTONIC ns> <padding>` for one-way latency.
 */
import dgram from 'node:dgram';
import readline from 'node:readline';

const GROUP = '239.255.77.77';
/** Datagrams handed to the kernel per event-loop turn in blast mode. */
const BLAST_BURST = 16;
const RATE_WAKE_MS = 2;
const RECEIVE_BUFFER_BYTES = 2 * 1024 * 1024;

interface Options {
  index: number;
  interface: string;
  port: number;
  send:
    | { mode: 'blast'; count: number; size: number }
    | { mode: 'rate'; perS: number; ms: number; size: number }
    | null;
}

const opts = JSON.parse(process.argv[2] ?? '{}') as Options;
const out = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);
const hr = () => process.hrtime.bigint();

let received = 0;
let firstAt = 0n;
let lastAt = 0n;
const latenciesUs: number[] = [];
let cpuAt = process.cpuUsage();

const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true, recvBufferSize: RECEIVE_BUFFER_BYTES });
const tx = dgram.createSocket({ type: 'udp4' });
sock.on('message', (msg) => {
  const now = hr();
  if (received++ === 0) firstAt = now;
  lastAt = now;
  if (msg[0] !== 0x78) {
    // `<index> <number> <ns> ...`: the third field is the send time.
    const s = msg.toString('latin1', 0, 64);
    const a = s.indexOf(' ');
    const b = s.indexOf(' ', a + 1);
    const c = s.indexOf(' ', b + 1);
    if (c > 0) latenciesUs.push(Number(now - BigInt(s.slice(b + 1, c))) / 1000);
  }
});

await new Promise<void>((resolve) => sock.bind(opts.port, GROUP, () => resolve()));
sock.addMembership(GROUP, opts.interface);
await new Promise<void>((resolve) => tx.bind(0, opts.interface, () => resolve()));
tx.setMulticastInterface(opts.interface);
tx.setMulticastTTL(1);
// Each process is alone on its host here: no loopback copy, as a peer turns it off with no neighbour.
tx.setMulticastLoopback(false);
out({ ev: 'ready' });

async function send(): Promise<void> {
  const s = opts.send;
  if (!s) return;
  const t0 = performance.now();
  const startAt = hr();
  let sent = 0;
  if (s.mode === 'blast') {
    const data = Buffer.alloc(s.size, 0x78);
    while (sent < s.count) {
      for (let i = 0; i < BLAST_BURST && sent < s.count; i++, sent++) tx.send(data, opts.port, GROUP);
      await new Promise((r) => setImmediate(r));
    }
  } else {
    for (;;) {
      const elapsed = performance.now() - t0;
      const due = Math.floor((Math.min(elapsed, s.ms) * s.perS) / 1000);
      while (sent < due) {
        const head = `${opts.index} ${++sent} ${hr()} `;
        tx.send(head.padEnd(s.size, 'x'), opts.port, GROUP);
      }
      if (elapsed >= s.ms) break;
      await new Promise((r) => setTimeout(r, RATE_WAKE_MS));
    }
  }
  const cpu = process.cpuUsage(cpuAt);
  out({
    ev: 'sent',
    count: sent,
    ms: performance.now() - t0,
    startAt: String(startAt),
    cpuUs: cpu.user + cpu.system,
  });
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim() !== 'go') return;
  received = 0;
  firstAt = lastAt = 0n;
  latenciesUs.length = 0;
  cpuAt = process.cpuUsage();
  void send();
});
rl.on('close', () => {
  const cpu = process.cpuUsage(cpuAt);
  out({
    ev: 'report',
    received,
    firstAt: String(firstAt),
    lastAt: String(lastAt),
    latenciesUs,
    cpuUs: cpu.user + cpu.system,
  });
  sock.close();
  tx.close();
  // stdout must drain before the exit (a pipe write may still be pending).
  process.stdout.write('', () => process.exit(0));
});
