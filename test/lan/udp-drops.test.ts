/**
 * LAN tier: a send the kernel fails (ENOBUFS) is not reported to a UDP socket without IP_RECVERR,
 * which Node cannot set, so `peer up` reads its namespace's counters and says so
 * (src/cli/udp-drops.ts). Host 0's interface gets a queue that holds nothing (`pfifo limit 0`):
 * every datagram it sends is dropped in the kernel, as a full neighbour table or device queue
 * drops them. Host 1, on the same LAN, drops nothing and says nothing.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lanTierDecision, NetnsLan } from '../support/netns.js';
import { Lines, tempDir } from '../support/proc.js';
import { lanUp } from '../support/lan-peer.js';
import { UDP_DROPS_FIRST_CHECK_MS } from '../../src/cli/udp-drops.js';

const decision = lanTierDecision();
const PORT = 47777;

describe.runIf(decision.run)('peer up says when the kernel drops its datagrams', () => {
  let lan: NetnsLan;
  const peers: Lines[] = [];

  beforeAll(() => {
    lan = new NetnsLan(2).up();
  });
  afterAll(() => {
    for (const p of peers) p.child.kill('SIGKILL');
    lan?.down();
  });

  it('logs udp-drops with the count on the host whose sends fail, and nothing on the other', async () => {
    execFileSync('ip', [
      'netns',
      'exec',
      lan.host(0).ns,
      'tc',
      'qdisc',
      'add',
      'dev',
      'eth0',
      'root',
      'pfifo',
      'limit',
      '0',
    ]);
    const dir = tempDir('udp-drops');
    const [a, b] = [0, 1].map((i) => lanUp(lan, i, `h${i}`, { port: PORT, dataDir: dir }));
    peers.push(a!, b!);
    const notice = () => a!.json().find((e) => e.event === 'udp-drops');
    await a!.until(() => notice() !== undefined, UDP_DROPS_FIRST_CHECK_MS + 10_000, 'a udp-drops notice');
    expect(notice()).toMatchObject({ event: 'udp-drops', received: 0 });
    expect(notice()!.sent).toBeGreaterThan(0);
    // Host 1 dropped nothing: it says nothing once it has read its counters the first time.
    const up = b!.json().find((e) => e.event === 'up');
    expect(up).toBeDefined();
    const checked = Date.parse(up!.at as string) + UDP_DROPS_FIRST_CHECK_MS + 1_000;
    await new Promise((r) => setTimeout(r, Math.max(0, checked - Date.now())));
    expect(b!.json().filter((e) => e.event === 'udp-drops')).toEqual([]);
  }, 60_000);
});
