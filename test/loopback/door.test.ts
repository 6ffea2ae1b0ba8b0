/**
 * The door (udp.ts claimDoor): one well-known unicast port per host, held by one process.
 * Transport level: the first claim wins, the second gets EADDRINUSE and says false, and claims it
 * once the holder is gone; a datagram to the door reaches the holder only, never a group socket.
 * Then the built CLI: `peer peers --join` in another multicast group (so only unicast can reach
 * the peers) lists the members through the door, and after the holder is killed the other peer
 * takes the door over within DOOR_RETRY_MS; a peer restarted without `--join` finds the group
 * through the peers its database remembers. Runs inside a private network namespace (CI's way).
 */
import dgram from 'node:dgram';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { UdpTransport } from '../../src/p2p/transport/udp.js';
import type { Address, Via } from '../../src/p2p/transport/transport.js';
import { DOOR_RETRY_MS } from '../../src/cli/peer.js';
import { runCli, startCli, tempDir, testPort, loopbackFlags, type Lines } from '../support/proc.js';

const GROUP = '239.255.77.77';
const OTHER_GROUP = '239.255.77.78';

async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

const transports: UdpTransport[] = [];
const running: Lines[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  for (const p of running.splice(0)) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
});

async function transport(port: number, received: Array<{ from: Address; via: Via; text: string }>) {
  const t = new UdpTransport({ group: GROUP, port, interface: '127.0.0.1', ttl: 0 });
  await t.start((data, from, via) => received.push({ from, via, text: Buffer.from(data).toString() }));
  transports.push(t);
  return t;
}

function sendTo(port: number, text: string): Promise<void> {
  const s = dgram.createSocket('udp4');
  return new Promise((resolve) =>
    s.send(text, port, '127.0.0.1', () => {
      s.close();
      resolve();
    }),
  );
}

describe('the door over UDP on loopback', () => {
  it('is held by the first claimer, refused to the second (EADDRINUSE), and taken over once freed', async () => {
    const port = testPort();
    const gotA: Array<{ from: Address; via: Via; text: string }> = [];
    const gotB: typeof gotA = [];
    const a = await transport(port, gotA);
    const b = await transport(port, gotB);
    expect(await a.claimDoor()).toBe(true);
    expect(await a.claimDoor()).toBe(true); // held: claiming again changes nothing
    expect(await b.claimDoor()).toBe(false);
    expect(b.errors.socket).toBe(0); // EADDRINUSE is the expected answer, not a socket error
    await sendTo(port, 'knock');
    expect(await until(() => gotA.some((d) => d.text === 'knock'), 2000)).toBe(true);
    expect(gotA.find((d) => d.text === 'knock')!.via).toBe('unicast');
    // The group sockets (bound to the group address, same port) never see it.
    await new Promise((r) => setTimeout(r, 100));
    expect(gotB.some((d) => d.text === 'knock')).toBe(false);

    await a.close();
    transports.splice(transports.indexOf(a), 1);
    expect(await b.claimDoor()).toBe(true);
    await sendTo(port, 'again');
    expect(await until(() => gotB.some((d) => d.text === 'again'), 2000)).toBe(true);
  });

  it('peer peers --join lists members through the door; another peer takes the door after the holder dies', async () => {
    const port = testPort();
    const root = tempDir('door');
    const net = loopbackFlags(port, path.join(root, 'data'), 'local');
    const up = (name: string) => {
      const p = startCli(['up', ...net, '--name', name, '--log-format', 'json', '--open']);
      running.push(p);
      return p;
    };
    // In another multicast group on the same port: only the door can introduce it to the peers.
    const peers = async () => {
      const r = await runCli([
        'peers',
        ...net,
        '--group',
        OTHER_GROUP,
        '--join',
        `127.0.0.1:${port}`,
        '--wait',
        '1500',
        '--json',
        '--open',
      ]);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as Array<{ name: string; state: string }>)
        .filter((m) => m.state === 'alive')
        .map((m) => m.name);
    };
    const first = up('first');
    // Listed through the door: the first peer holds it.
    expect(await until(async () => (await peers()).includes('first'), 20_000)).toBe(true);
    const second = up('second');
    for (const p of [first, second])
      await p.until((l) => l.json().some((e) => e.event === 'join'), 30_000, 'the other peer to join');
    expect((await peers()).sort()).toEqual(['first', 'second']);

    first.child.kill('SIGKILL');
    await first.exited;
    running.splice(running.indexOf(first), 1);
    // Within one retry (plus slack for a loaded machine) the second peer holds the door.
    expect(await until(async () => (await peers()).includes('second'), DOOR_RETRY_MS + 10_000)).toBe(true);
  });

  it('a peer restarted without --join finds the group again through the peers it remembers', async () => {
    const port = testPort();
    const root = tempDir('remembered');
    const net = loopbackFlags(port, path.join(root, 'data'), 'local');
    const up = (name: string, extra: string[]) => {
      const p = startCli(['up', ...net, '--name', name, '--log-format', 'json', '--open', ...extra]);
      running.push(p);
      return p;
    };
    const joined = (p: Lines, name: string) =>
      p.until((l) => l.json().some((e) => e.event === 'join' && e.name === name), 30_000, `${name} to join`);
    // Two multicast groups on one port: only --join (the door of the host) brings them together.
    const a = up('a', []);
    // Up: a holds the door of this host (b, on the same host, must not take it first).
    await a.until((l) => l.json().some((e) => e.event === 'up'), 20_000, 'a to start');
    const b = up('b', ['--group', OTHER_GROUP, '--join', `127.0.0.1:${port}`]);
    await joined(b, 'a');
    await joined(a, 'b');
    b.child.kill('SIGTERM');
    await b.exited;
    running.splice(running.indexOf(b), 1);
    const again = up('b', ['--group', OTHER_GROUP]);
    await joined(again, 'a');
  }, 90_000);
});
