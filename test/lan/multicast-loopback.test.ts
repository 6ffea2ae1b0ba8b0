/**
 * LAN tier for UdpTransport.setMulticastLoopback on a real interface (a veth on a bridge; on the
 * loopback interface the setting changes nothing, every multicast comes back in through lo).
 * Two processes on host 1, one on host 2: with loopback off, host 1's other process no longer
 * hears the sender's multicasts while host 2 still does; with it on, both do.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lanTierDecision, NetnsLan } from '../support/netns.js';
import { Lines, ROOT } from '../support/proc.js';

const decision = lanTierDecision();
const PORT = 47781;
const FIXTURE = path.join(ROOT, 'test/fixtures/udp-peer.ts');
const START_MS = 20_000;

describe.runIf(decision.run)('multicast loopback on a namespace LAN', () => {
  let lan: NetnsLan;
  const procs: Lines[] = [];
  const start = async (host: number): Promise<Lines> => {
    const l = new Lines(
      lan.spawn(host, process.execPath, ['--import', 'tsx', FIXTURE, lan.host(host).address, String(PORT)]),
    );
    procs.push(l);
    await l.until((x) => x.json().some((e) => e.ev === 'ready'), START_MS, 'udp-peer ready');
    return l;
  };
  const got = (l: Lines) =>
    l
      .json()
      .filter((e) => e.ev === 'got')
      .map((e) => e.text);

  beforeAll(() => {
    lan = new NetnsLan(2).up();
  });
  afterAll(() => {
    for (const p of procs) p.child.stdin?.end();
    lan?.down();
  });

  it('off: the other host hears our multicasts, a process on our host does not; on: both do', async () => {
    const sender = await start(0);
    const neighbour = await start(0);
    const remote = await start(1);
    // Broadcast until `l` hears one: a new veth may drop the very first datagrams.
    const reach = async (text: string, l: Lines) => {
      const deadline = Date.now() + 10_000;
      while (!got(l).includes(text) && Date.now() < deadline) {
        sender.child.stdin!.write(`broadcast ${text}\n`);
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(got(l), `${text} reached`).toContain(text);
    };

    sender.child.stdin!.write('loopback off\n');
    await reach('while-off', remote);
    // A looped-back copy would have arrived long before the remote's copy crossed the bridge.
    await new Promise((r) => setTimeout(r, 200));
    expect(got(neighbour)).toEqual([]);

    sender.child.stdin!.write('loopback on\n');
    await reach('while-on', neighbour);
    await reach('while-on', remote);
    expect(new Set(got(neighbour))).toEqual(new Set(['while-on']));
    expect(got(sender)).toEqual([]);
  });
});
