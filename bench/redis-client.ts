/**
 * Redis pub/sub clients for bench/chat.ts, one process per client like the peer drivers:
 *   node --import tsx bench/redis-client.ts sub PORT CHANNEL SIZE COUNT [MARK]
 *   node --import tsx bench/redis-client.ts count PORT CHANNEL SIZE COUNT
 *   node --import tsx bench/redis-client.ts pub PORT CHANNEL SIZE COUNT
 *
 * sub: SUBSCRIBE with ioredis, prints {"ev":"ready"} on the confirmation, counts each message as
 *      the peer driver does (bench/tally.ts) and prints {"ev":"done",count,perSender,lastAt,markedAt,cpuUs}
 *      when COUNT arrived (lastAt: CLOCK_MONOTONIC ns, the clock every process shares; markedAt:
 *      the same when the MARK-th message arrived; cpuUs: its CPU time since the subscription was
 *      confirmed).
 * count: a raw socket that SUBSCRIBEs and counts message frames by their bytes (all the same
 *      length: fixed channel and payload size), parsing nothing; prints the same "ready" and
 *      "done" (without perSender).
 * pub: RESP over a raw TCP socket: PUBLISH COUNT messages of SIZE bytes (the driver's payloads:
 *      sender index 0, numbered from 1, stamped at creation), pipelined, at most PUB_IN_FLIGHT_MAX
 *      unanswered; prints {"ev":"sent",count,startAt,ms,receivers} (receivers: the last PUBLISH reply).
 */
import net from 'node:net';
import { Redis } from 'ioredis';
import { benchPayload, hr, Tally } from './tally.js';

/** Commands written per socket write. */
const PUB_BATCH_COMMANDS = 256;
/** Unanswered PUBLISH commands at most, so Redis's output buffers stay bounded. */
const PUB_IN_FLIGHT_MAX = 4096;

const [mode, portArg, channel = 'bench', sizeArg, countArg, markArg = '0'] = process.argv.slice(2);
const port = Number(portArg);
const size = Number(sizeArg);
const count = Number(countArg);
const out = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);
const bulk = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;

const fail = (err: Error) => {
  out({ ev: 'error', message: err.message });
  process.exit(1);
};
const rawSocket = () => {
  const sock = net.connect({ host: '127.0.0.1', port });
  sock.setNoDelay(true);
  sock.on('error', fail);
  return sock;
};

if (mode === 'sub') {
  // The subscriber is what a Node application would run: ioredis, the most used client, which
  // parses every push and hands each message to a listener as a string, as the peer does.
  const tally = new Tally(Number(markArg));
  const sub = new Redis({ host: '127.0.0.1', port, lazyConnect: true, enableOfflineQueue: false });
  let cpuAt = process.cpuUsage();
  sub.on('message', (_channel: string, message: string) => {
    tally.add(message);
    if (tally.deliveries < count) return;
    const cpu = process.cpuUsage(cpuAt);
    out({
      ev: 'done',
      count: tally.deliveries,
      perSender: tally.perSender(),
      lastAt: String(hr()),
      markedAt: String(tally.markedAt),
      cpuUs: cpu.user + cpu.system,
    });
    sub.disconnect();
    process.exit(0);
  });
  sub
    .connect()
    .then(() => sub.subscribe(channel))
    .then(() => {
      cpuAt = process.cpuUsage();
      out({ ev: 'ready' });
    })
    .catch((err: Error) => fail(err));
} else if (mode === 'count') {
  // No client: counts the bytes of fixed-size message frames and parses nothing. A ceiling for
  // Redis's delivery, not what an application receives.
  const sock = rawSocket();
  const confirm = Buffer.byteLength(`*3\r\n${bulk('subscribe')}${bulk(channel)}:1\r\n`);
  const frame = Buffer.byteLength(`*3\r\n${bulk('message')}${bulk(channel)}${bulk('x'.repeat(size))}`);
  let bytes = 0;
  let ready = false;
  let cpuAt = process.cpuUsage();
  sock.write(`*2\r\n${bulk('SUBSCRIBE')}${bulk(channel)}`);
  sock.on('data', (d: Buffer) => {
    bytes += d.length;
    if (!ready && bytes >= confirm) {
      ready = true;
      cpuAt = process.cpuUsage();
      out({ ev: 'ready' });
    }
    const got = Math.floor((bytes - confirm) / frame);
    if (ready && got >= count) {
      const cpu = process.cpuUsage(cpuAt);
      out({ ev: 'done', count: got, lastAt: String(hr()), cpuUs: cpu.user + cpu.system });
      sock.destroy();
      process.exit(0);
    }
  });
} else if (mode === 'pub') {
  // The publisher writes RESP itself, PUBLISH pipelined: the fastest a client can feed Redis.
  const sock = rawSocket();
  const head = `*3\r\n${bulk('PUBLISH')}${bulk(channel)}`;
  const command = (n: number) => `${head}${bulk(benchPayload(0, n, size))}`;
  let written = 0;
  let answered = 0;
  let lastReply = '';
  const startAt = hr();
  const t0 = performance.now();
  const pump = () => {
    while (written < count && written - answered < PUB_IN_FLIGHT_MAX) {
      const n = Math.min(PUB_BATCH_COMMANDS, count - written);
      let batch = '';
      for (let i = 1; i <= n; i++) batch += command(written + i);
      const ok = sock.write(batch);
      written += n;
      if (!ok) return sock.once('drain', pump);
    }
  };
  let tail = '';
  sock.on('data', (d: Buffer) => {
    const s = tail + d.toString('latin1');
    let nl = 0;
    let i = -1;
    while ((i = s.indexOf('\n', i + 1)) >= 0) nl++;
    answered += nl;
    const last = s.lastIndexOf('\n');
    const prev = s.lastIndexOf(':', last);
    if (prev >= 0) lastReply = s.slice(prev + 1, last - 1);
    tail = s.slice(last + 1);
    if (answered >= count) {
      out({
        ev: 'sent',
        count,
        startAt: String(startAt),
        ms: performance.now() - t0,
        receivers: Number(lastReply),
      });
      sock.destroy();
      process.exit(0);
    }
    pump();
  });
  sock.on('connect', pump);
} else {
  out({
    ev: 'error',
    message: `usage: redis-client.ts sub|count|pub PORT CHANNEL SIZE COUNT [MARK] (got ${mode})`,
  });
  process.exit(2);
}
