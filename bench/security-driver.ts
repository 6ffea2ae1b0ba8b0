/**
 * One process for bench/security.ts, run inside a network namespace:
 *   node --import tsx bench/security-driver.ts '{"mode":"sink","interface":"10.77.3.2","port":47777,"layer":"sealed","keyHex":"..."}'
 *
 * Modes (one JSON event per stdout line):
 *  - sink: the real stack below a command (UdpTransport, then securityLayers exactly as startPeer
 *    wires it: `sealed` = SecureTransport with the key, `open` = the open group's per-source rate
 *    guard; `raw` = neither, the bare UDP transport), a PeerNode with the lan profile, and a
 *    protocol that counts `sb.m` messages. Prints {"ev":"ready"}, then {"ev":"count","n":N} every
 *    COUNT_EVERY_MS; on the stdin line "stop" prints {"ev":"final",...} with its counters and exits.
 *  - source: the same stack; waits until it sees a live member, then broadcasts `sb.m` envelopes
 *    of `size` bytes as fast as the event loop goes (SOURCE_BATCH_MESSAGES per turn, then
 *    setImmediate so the socket's send callbacks run) for `seconds`; prints {"ev":"sent",...}.
 *  - flood: no key. Joins the group to capture sealed datagrams for `captureMs` (what any stranger
 *    on the LAN sees), builds a pool of forged and malformed datagrams from them, then sends them
 *    from FLOOD_SOCKETS sockets (distinct source ports) at `rate` datagrams/s for `seconds`,
 *    alternating between the group port (multicast: every member gets those) and the victim's
 *    unicast port. With `flooder` (bench/flood.c, compiled), the pool goes to a temporary file and
 *    that program sends it (sendmmsg, batches); without, this process does (one dgram send per
 *    datagram, much slower). Prints {"ev":"captured",...}, {"ev":"flooding"} and {"ev":"done",...}
 *    (the Node sender also {"ev":"tick",...} every second).
 */
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { randomBytes, randomInt } from 'node:crypto';
import readline from 'node:readline';
import { PeerNode } from '../src/p2p/node.js';
import { PROFILES } from '../src/p2p/config.js';
import { realRuntime } from '../src/p2p/runtime.js';
import { UdpTransport } from '../src/p2p/transport/udp.js';
import { parseAddress, type Transport } from '../src/p2p/transport/transport.js';
import { is, type Envelope } from '../src/p2p/wire.js';
import type { Protocol, ProtocolContext } from '../src/p2p/protocol.js';
import { guardFollowsMembers, securityLayers, securityReport } from '../src/cli/security.js';
import {
  HEADER_BYTES,
  SEALED_DATAGRAM_BYTES_MAX,
  SECURE_FORMAT_VERSION,
  SECURE_OVERHEAD_BYTES,
  TAG_BYTES,
} from '../src/p2p/transport/secure.js';
import { KEY_ID_BYTES } from '../src/p2p/transport/keyring.js';

const GROUP = '239.255.77.77';
const COUNT_EVERY_MS = 500;
/** Messages broadcast per event-loop turn by a source before yielding to the send callbacks. */
const SOURCE_BATCH_MESSAGES = 64;
const SOURCE_WAIT_MEMBER_MS = 20_000;
/** Forged datagrams prepared before the flood; picked in turn (cheap to send, varied enough). */
const FLOOD_POOL_DATAGRAMS = 8192;
const FLOOD_SOCKETS = 16;
/** Most datagrams sent in one event-loop turn, so the callbacks of earlier sends get to run. */
const FLOOD_TURN_DATAGRAMS_MAX = 2048;
const FLOOD_CAPTURED_MAX = 512;

type Layer = 'raw' | 'open' | 'sealed';
interface Options {
  mode: 'sink' | 'source' | 'flood';
  interface: string;
  port: number;
  layer?: Layer;
  keyHex?: string;
  seconds?: number;
  size?: number;
  rate?: number;
  captureMs?: number;
  victim?: string;
  /** flood: the compiled bench/flood.c; without it, the datagrams are sent by this process. */
  flooder?: string;
}

const execFileAsync = promisify(execFile);
const opts = JSON.parse(process.argv[2] ?? '{}') as Options;
const out = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);

class Sink implements Protocol {
  readonly messages = { 'sb.m': is.str(1200) };
  received = 0;
  onMessage(): void {
    this.received++;
  }
  tick(): void {}
}

function stack(layer: Layer) {
  const udp = new UdpTransport({ group: GROUP, port: opts.port, interface: opts.interface, ttl: 1 });
  const keys =
    layer === 'sealed' ? { file: '(bench)', keys: [Buffer.from(opts.keyHex!, 'hex')], warning: null } : null;
  const layers =
    layer === 'raw' ? null : securityLayers(udp, `${GROUP}:${opts.port}`, keys, { notify: () => {} });
  const transport: Transport = layers?.transport ?? udp;
  const node = new PeerNode({
    id: randomBytes(8).toString('hex'),
    name: opts.mode,
    incarnation: 1,
    profile: PROFILES.lan,
    transport,
    runtime: realRuntime,
  });
  // As startPeer does: a live member's address refills the open group's guard at the member rate.
  if (layers?.guard) guardFollowsMembers(layers.guard.guard, node);
  const sink = node.install(() => new Sink());
  return { udp, layers, node, sink };
}

/** A body string that makes the encoded envelope `size` bytes long. */
function bodyFor(ctx: ProtocolContext, size: number): string {
  const env: Envelope = { v: 1, t: 'sb.m', i: ctx.self.id, n: ctx.self.name, c: 1, s: 1e6, l: 1e6, b: '' };
  return 'x'.repeat(Math.max(1, size - Buffer.byteLength(JSON.stringify(env))));
}

async function sink(): Promise<void> {
  const { layers, node, sink } = stack(opts.layer!);
  await node.start();
  out({ ev: 'ready', address: node.address });
  const t0 = performance.now();
  const timer = setInterval(
    () => out({ ev: 'count', n: sink.received, t: performance.now() - t0 }),
    COUNT_EVERY_MS,
  );
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (line.trim() !== 'stop') continue;
    clearInterval(timer);
    const report = layers ? securityReport(layers, node) : null;
    out({ ev: 'final', n: sink.received, report, datagramsIn: node.stats.datagramsIn });
    await node.crash();
    process.exit(0);
  }
}

async function source(): Promise<void> {
  const { udp, node } = stack(opts.layer!);
  await node.start();
  const waitStart = performance.now();
  while (node.membership.live().filter((m) => m.id !== node.id).length === 0) {
    if (performance.now() - waitStart > SOURCE_WAIT_MEMBER_MS) {
      out({ ev: 'error', error: 'no member seen' });
      process.exit(1);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  out({ ev: 'go' });
  const body = bodyFor(node.context, opts.size!);
  const endAt = performance.now() + opts.seconds! * 1000;
  let sent = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await new Promise<void>((resolve) => {
    const turn = () => {
      for (let i = 0; i < SOURCE_BATCH_MESSAGES; i++) node.context.broadcast('sb.m', body);
      sent += SOURCE_BATCH_MESSAGES;
      if (performance.now() < endAt) setImmediate(turn);
      else resolve();
    };
    turn();
  });
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await node.stop();
  out({
    ev: 'sent',
    n: sent,
    ms,
    cpuMs: (cpu.user + cpu.system) / 1000,
    sendErrors: udp.errors.send,
    lastError: udp.errors.lastError,
  });
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// flood

const FLOOD_KINDS = [
  'random', // random bytes, random length: mostly `format`, some `key`/`plaintext`/`short`/`oversize`
  'short', // version byte + a few bytes
  'oversize', // a valid-looking header, more than SEALED_DATAGRAM_BYTES_MAX bytes
  'plaintext', // a JSON envelope, as a keyless peer would send: must never reach the decoder
  'wrongKey', // version 1, a key id nobody holds
  'forgedNew', // the group's real key id, a fresh random nonce prefix, random ciphertext and tag
  'forgedMember', // a member's captured nonce prefix, a counter ahead of it, random ciphertext and tag
  'replay', // a captured sealed datagram, verbatim
] as const;
type FloodKind = (typeof FLOOD_KINDS)[number];

function forge(kind: FloodKind, captured: Buffer[]): Buffer {
  const pick = () => captured[randomInt(captured.length)]!;
  const header = (keyId: Buffer, prefixAndCounter: Buffer, len: number) => {
    const b = randomBytes(len);
    b[0] = SECURE_FORMAT_VERSION;
    keyId.copy(b, 1);
    prefixAndCounter.copy(b, 1 + KEY_ID_BYTES);
    return b;
  };
  const bodyLen = () => HEADER_BYTES + randomInt(1, 400) + TAG_BYTES;
  switch (kind) {
    case 'random':
      return randomBytes(randomInt(1, 1400));
    case 'short': {
      const b = randomBytes(randomInt(1, SECURE_OVERHEAD_BYTES + 1));
      b[0] = SECURE_FORMAT_VERSION;
      return b;
    }
    case 'oversize':
      return header(
        pick().subarray(1, 1 + KEY_ID_BYTES),
        randomBytes(12),
        // Past the limit by up to a few hundred bytes (the limit itself is near a datagram's size).
        randomInt(SEALED_DATAGRAM_BYTES_MAX + 1, SEALED_DATAGRAM_BYTES_MAX + 400),
      );
    case 'plaintext':
      return Buffer.from(
        JSON.stringify({
          v: 1,
          t: 'hb',
          i: randomBytes(8).toString('hex'),
          n: 'mallory',
          c: 1,
          s: 1,
          l: 1,
          b: {},
        }),
      );
    case 'wrongKey':
      return header(randomBytes(KEY_ID_BYTES), randomBytes(12), bodyLen());
    case 'forgedNew':
      return header(pick().subarray(1, 1 + KEY_ID_BYTES), randomBytes(12), bodyLen());
    case 'forgedMember': {
      const c = pick();
      const nonce = Buffer.from(c.subarray(1 + KEY_ID_BYTES, HEADER_BYTES));
      // Ahead of anything the member will send during the bench, so the window says 'new'.
      nonce.writeUInt32BE((nonce.readUInt32BE(8) + randomInt(100_000, 10_000_000)) >>> 0, 8);
      return header(c.subarray(1, 1 + KEY_ID_BYTES), nonce, bodyLen());
    }
    case 'replay':
      return pick();
  }
}

interface FloodDone {
  sent: number;
  toGroup: number;
  ms: number;
  cpuMs: number;
  userMs: number;
  sysMs: number;
  errors: number;
  lastError: string;
  perKind: Record<string, number>;
}

/** Destination of the pool's datagram i: every kind reaches both, alternating by round of kinds. */
const toVictim = (i: number) => Math.floor(i / FLOOD_KINDS.length) % 2 === 1;

async function flood(): Promise<void> {
  const group = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  const captured: Buffer[] = [];
  group.on('message', (m: Buffer) => {
    if (captured.length < FLOOD_CAPTURED_MAX && m[0] === SECURE_FORMAT_VERSION) captured.push(m);
  });
  await new Promise<void>((resolve) => group.bind({ port: opts.port, address: GROUP }, () => resolve()));
  group.addMembership(GROUP, opts.interface);
  await new Promise((r) => setTimeout(r, opts.captureMs ?? 2000));
  group.close();
  if (captured.length === 0) {
    out({ ev: 'error', error: 'captured nothing on the group' });
    process.exit(1);
  }
  // Datagram i is of kind i % FLOOD_KINDS.length (the pool's length is a multiple of 16).
  const pool = Array.from({ length: FLOOD_POOL_DATAGRAMS }, (_, i) =>
    forge(FLOOD_KINDS[i % FLOOD_KINDS.length]!, captured),
  );
  const prefixes = new Set(captured.map((c) => c.toString('hex', 1 + KEY_ID_BYTES, 1 + KEY_ID_BYTES + 8)));
  out({ ev: 'captured', datagrams: captured.length, senders: prefixes.size });
  const done = opts.flooder ? await floodWithC(pool, opts.flooder) : await floodWithNode(pool);
  out({ ev: 'done', ...done });
  process.exit(0);
}

/**
 * Hands the pool to bench/flood.c (compiled by bench/security.ts to `flooder`): records of
 * [destination byte][kind byte][4-byte big-endian length][datagram] in a temporary file.
 */
async function floodWithC(pool: Buffer[], flooder: string): Promise<FloodDone> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-flood-pool-'));
  const file = path.join(dir, 'pool');
  fs.writeFileSync(
    file,
    Buffer.concat(
      pool.flatMap((d, i) => {
        const head = Buffer.alloc(6);
        head[0] = toVictim(i) ? 1 : 0;
        head[1] = i % FLOOD_KINDS.length;
        head.writeUInt32BE(d.length, 2);
        return [head, d];
      }),
    ),
  );
  const args = [file, opts.interface, String(FLOOD_SOCKETS), `${GROUP}:${opts.port}`, opts.victim!];
  args.push(String(opts.rate), String(opts.seconds));
  out({ ev: 'flooding' });
  try {
    const { stdout } = await execFileAsync(flooder, args);
    const r = JSON.parse(stdout) as Omit<FloodDone, 'perKind'> & { perKind: number[] };
    return { ...r, perKind: Object.fromEntries(FLOOD_KINDS.map((k, i) => [k, r.perKind[i] ?? 0])) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Sends the pool from FLOOD_SOCKETS dgram sockets, paced by the event loop (the fallback). */
async function floodWithNode(pool: Buffer[]): Promise<FloodDone> {
  const sockets: dgram.Socket[] = [];
  let errors = 0;
  let lastError = '';
  for (let i = 0; i < FLOOD_SOCKETS; i++) {
    const s = dgram.createSocket({ type: 'udp4' });
    s.on('error', (e) => {
      errors++;
      lastError = e.message;
    });
    await new Promise<void>((resolve) => s.bind({ port: 0, address: opts.interface }, () => resolve()));
    s.setMulticastInterface(opts.interface);
    s.setMulticastTTL(1);
    s.setMulticastLoopback(false);
    sockets.push(s);
  }
  const victim = parseAddress(opts.victim!);
  const rate = opts.rate!;
  const onSent = (err: Error | null) => {
    if (err) {
      errors++;
      lastError = err.message;
    }
  };
  const perKind: Record<string, number> = Object.fromEntries(FLOOD_KINDS.map((k) => [k, 0]));
  let sent = 0;
  let toGroup = 0;
  const t0 = performance.now();
  const endAt = t0 + opts.seconds! * 1000;
  let nextTick = t0 + 1000;
  const cpu0 = process.cpuUsage();
  out({ ev: 'flooding' });
  await new Promise<void>((resolve) => {
    const turn = () => {
      const now = performance.now();
      const due = Math.min(FLOOD_TURN_DATAGRAMS_MAX, Math.floor(((now - t0) * rate) / 1000) - sent);
      for (let k = 0; k < due; k++, sent++) {
        const i = sent % FLOOD_POOL_DATAGRAMS;
        perKind[FLOOD_KINDS[i % FLOOD_KINDS.length]!]!++;
        // The socket changes every two rounds of kinds, so every kind reaches both destinations
        // from every source port.
        const s = sockets[Math.floor(sent / FLOOD_KINDS.length / 2) % FLOOD_SOCKETS]!;
        if (toVictim(i)) s.send(pool[i]!, victim.port, victim.host, onSent);
        else {
          toGroup++;
          s.send(pool[i]!, opts.port, GROUP, onSent);
        }
      }
      if (now >= nextTick) {
        out({ ev: 'tick', sent, t: now - t0 });
        nextTick += 1000;
      }
      if (now < endAt) setImmediate(turn);
      else resolve();
    };
    turn();
  });
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  // Let the last callbacks run before counting errors.
  await new Promise((r) => setTimeout(r, 200));
  for (const s of sockets) s.close();
  const [userMs, sysMs] = [cpu.user / 1000, cpu.system / 1000];
  return { sent, toGroup, ms, cpuMs: userMs + sysMs, userMs, sysMs, errors, lastError, perKind };
}

const run = { sink, source, flood }[opts.mode];
if (!run) {
  out({ ev: 'error', error: `unknown mode ${String(opts.mode)}` });
  process.exit(2);
}
run().catch((err: unknown) => {
  out({ ev: 'error', error: (err as Error).stack ?? String(err) });
  process.exit(1);
});
