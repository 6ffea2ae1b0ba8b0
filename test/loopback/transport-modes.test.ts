/**
 * `--transport unicast` on real sockets (the built CLI on loopback): the peer opens no group socket
 * and sends not one multicast datagram, while a peer in the default mode next to it multicasts as
 * always. (Two unicast peers meeting each other needs `--join`, tested with it.)
 */
import dgram from 'node:dgram';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loopbackFlags, startCli, tempDir, testPort, type Lines } from '../support/proc.js';
import { DEFAULT_GROUP } from '../../src/p2p/config.js';

const running: Lines[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await p.exited;
  }
});

function up(dir: string, port: number, name: string, extra: string[]): Lines {
  const p = startCli(['up', '--name', name, ...loopbackFlags(port, path.join(dir, name), 'local'), ...extra]);
  running.push(p);
  return p;
}

/** The unicast port a `peer up` announced in its first line ("... up at 127.0.0.1:PORT in ..."). */
async function portOf(p: Lines): Promise<number> {
  let port = 0;
  await p.until(
    (l) => {
      const m = l.lines.map((x) => / up at 127\.0\.0\.1:(\d+) in /.exec(x)).find((x) => x);
      if (m) port = Number(m[1]);
      return port > 0;
    },
    15_000,
    'the peer to say where it is up',
  );
  return port;
}

describe('--transport on loopback (CLI)', () => {
  it('a unicast peer sends no multicast; a default peer beside it does', async () => {
    const dir = tempDir('transport-modes');
    const port = testPort();
    const bySource = new Map<number, number>();
    const listen = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((resolve) => listen.bind(port, DEFAULT_GROUP, () => resolve()));
    listen.addMembership(DEFAULT_GROUP, '127.0.0.1');
    listen.on('message', (_m, r) => bySource.set(r.port, (bySource.get(r.port) ?? 0) + 1));
    try {
      const uni = up(dir, port, 'uni', ['--transport', 'unicast']);
      const uniPort = await portOf(uni);
      // Started after the unicast peer, so by the time it has multicast a dozen heartbeats the
      // unicast one has run longer than that.
      const multi = up(dir, port, 'multi', []);
      const multiPort = await portOf(multi);
      await multi.until(
        () => (bySource.get(multiPort) ?? 0) >= 12,
        15_000,
        '12 multicasts from the default peer',
      );
      expect(bySource.get(uniPort) ?? 0).toBe(0);
      expect([...bySource.keys()]).toEqual([multiPort]);
    } finally {
      listen.close();
    }
  });
});
