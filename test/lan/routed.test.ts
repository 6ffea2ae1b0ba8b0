/**
 * LAN tier for the routed namespace LAN (test/support/netns.ts) that the tests of groups spanning
 * subnets stand on: two subnets behind a router forward unicast both ways and no multicast; a
 * multicast block at a subnet's switch or in its hosts stops multicast there and nothing else.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lanTierDecision, NetnsLan } from '../support/netns.js';
import { Lines, ROOT } from '../support/proc.js';

const decision = lanTierDecision();
const PORT = 47783;
const FIXTURE = path.join(ROOT, 'test/fixtures/udp-peer.ts');
const START_MS = 20_000;

describe.runIf(decision.run)('a routed namespace LAN: two subnets and a router', () => {
  let lan: NetnsLan;
  const procs: Lines[] = [];
  // Hosts 0 and 1 on subnet 0; hosts 2 and 3 on subnet 1.
  const peers: Lines[] = [];
  const texts = (l: Lines, via: string) =>
    l
      .json()
      .filter((e) => e.ev === 'got' && e.via === via)
      .map((e) => e.text as string);
  const address = (l: Lines) => l.json().find((e) => e.ev === 'ready')!.address as string;
  /** Sends `cmd` from `from` every 100 ms until `to` got `text` by `via`, or 5 s pass. */
  const until = async (from: Lines, cmd: string, to: Lines, text: string, via: string) => {
    const deadline = Date.now() + 5000;
    while (!texts(to, via).includes(text) && Date.now() < deadline) {
      from.child.stdin!.write(`${cmd}\n`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return texts(to, via).includes(text);
  };

  beforeAll(async () => {
    lan = NetnsLan.routed([2, 2]).up();
    for (let i = 0; i < 4; i++) {
      const l = new Lines(
        lan.spawn(i, process.execPath, ['--import', 'tsx', FIXTURE, lan.host(i).address, String(PORT)]),
      );
      procs.push(l);
      await l.until((x) => x.json().some((e) => e.ev === 'ready'), START_MS, 'udp-peer ready');
      peers.push(l);
    }
  }, 4 * START_MS);
  afterAll(() => {
    for (const p of procs) p.child.stdin?.end();
    lan?.down();
  });

  it('puts the subnets on their own networks', () => {
    expect(lan.hosts.map((h) => h.subnet)).toEqual([0, 0, 1, 1]);
    expect(lan.host(2).address.startsWith(lan.network(1).slice(0, -5))).toBe(true);
  });

  it('forwards unicast across the router both ways; multicast stays in its subnet', async () => {
    const [a, b, c, d] = peers as [Lines, Lines, Lines, Lines];
    expect(await until(a, 'broadcast m0', b, 'm0', 'group')).toBe(true);
    expect(await until(a, `send ${address(c)} u-ac`, c, 'u-ac', 'unicast')).toBe(true);
    expect(await until(d, `send ${address(a)} u-da`, a, 'u-da', 'unicast')).toBe(true);
    expect(await until(c, 'broadcast m1', d, 'm1', 'group')).toBe(true);
    // Every multicast that reached its own subnet had long had time to cross, had it crossed.
    expect(texts(c, 'group')).not.toContain('m0');
    expect(texts(a, 'group')).not.toContain('m1');
  });

  it.each(['switch', 'hosts'] as const)(
    'a multicast block (%s) on subnet 1 stops multicast there, not unicast',
    async (where) => {
      const [a, b, c, d] = peers as [Lines, Lines, Lines, Lines];
      lan.blockMulticast(1, where);
      try {
        expect(await until(c, `send ${address(d)} u-${where}`, d, `u-${where}`, 'unicast')).toBe(true);
        expect(await until(a, `broadcast m-${where}`, b, `m-${where}`, 'group')).toBe(true);
        c.child.stdin!.write(`broadcast blocked-${where}\n`);
        await new Promise((r) => setTimeout(r, 500));
        expect(texts(d, 'group')).not.toContain(`blocked-${where}`);
      } finally {
        lan.unblockMulticast();
      }
      expect(await until(c, `broadcast back-${where}`, d, `back-${where}`, 'group')).toBe(true);
    },
  );
});
