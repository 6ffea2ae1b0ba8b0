/**
 * A minimal Redis pub/sub client for bench/chat.ts, speaking RESP over a raw TCP socket (no npm
 * dependency), one process per client like the peer drivers:
 *   node --import tsx bench/redis-client.ts sub PORT CHANNEL SIZE COUNT
 *   node --import tsx bench/redis-client.ts pub PORT CHANNEL SIZE COUNT
 *
 * sub: SUBSCRIBE, prints {"ev":"ready"} on the confirmation, counts message frames (all the same
 *      length, since channel and payload size are fixed) and prints {"ev":"done",count,lastAt,cpuUs}
 *      when COUNT arrived (lastAt: CLOCK_MONOTONIC ns, the clock every process shares; cpuUs: its
 *      CPU time since the subscription was confirmed).
 * pub: PUBLISH COUNT messages of SIZE bytes, pipelined, at most PUB_IN_FLIGHT_MAX unanswered;
 *      prints {"ev":"sent",count,startAt,ms,receivers} (receivers: the last PUBLISH reply).
 */
import net from 'node:net';

/** Commands written per socket write. */
const PUB_BATCH_COMMANDS = 256;
/** Unanswered PUBLISH commands at most, so Redis's output buffers stay bounded. */
const PUB_IN_FLIGHT_MAX = 4096;

const [mode, portArg, channel = 'bench', sizeArg, countArg] = process.argv.slice(2);
const port = Number(portArg);
const size = Number(sizeArg);
const count = Number(countArg);
const out = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);
const hr = () => process.hrtime.bigint();
const bulk = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;

const sock = net.connect({ host: '127.0.0.1', port });
sock.setNoDelay(true);
sock.on('error', (err) => {
  out({ ev: 'error', message: err.message });
  process.exit(1);
});

if (mode === 'sub') {
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
      out({
        ev: 'done',
        count: got,
        lastAt: String(hr()),
        extraBytes: bytes - confirm - got * frame,
        cpuUs: cpu.user + cpu.system,
      });
      sock.destroy();
      process.exit(0);
    }
  });
} else if (mode === 'pub') {
  const body = 'x'.repeat(size);
  const cmd = `*3\r\n${bulk('PUBLISH')}${bulk(channel)}${bulk(body)}`;
  const batch = cmd.repeat(PUB_BATCH_COMMANDS);
  let written = 0;
  let answered = 0;
  let lastReply = '';
  const startAt = hr();
  const t0 = performance.now();
  const pump = () => {
    while (written < count && written - answered < PUB_IN_FLIGHT_MAX) {
      const n = Math.min(PUB_BATCH_COMMANDS, count - written);
      const ok = sock.write(n === PUB_BATCH_COMMANDS ? batch : cmd.repeat(n));
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
  out({ ev: 'error', message: `usage: redis-client.ts sub|pub PORT CHANNEL SIZE COUNT (got ${mode})` });
  process.exit(2);
}
