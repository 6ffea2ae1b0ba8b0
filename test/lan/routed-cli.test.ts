/**
 * LAN tier: the built CLI on two subnets joined by a router that forwards no multicast
 * (NetnsLan.routed). Four `peer up --join` (two per subnet) find each other across the router;
 * `peer doctor` tells each case apart (multicast works; the group is silent but a seed answers by
 * unicast; multicast dropped on this host); `peer event` and `peer query` from a host with no peer
 * reach every peer through a seed across the router; then, with nftables dropping 10 % of incoming UDP on
 * every host, a kill -9 is seen by every survivor on both sides, a host whose link goes down is
 * seen dead and then alive again on both sides, and `peer chat` delivers exactly once across the
 * router with multicast blocked at one subnet's switch. About 40 s on a busy 2-core machine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lanTierDecision, NetnsLan, nftAvailable } from '../support/netns.js';
import { BIN, loggedState, tempDir, type Lines } from '../support/proc.js';
import { lanCli, lanUp } from '../support/lan-peer.js';
import { PROFILES } from '../../src/p2p/config.js';
import { HEALTH_SCORE_MAX } from '../../src/p2p/membership.js';

const decision = lanTierDecision();
const PORT = 47784;
/** Start-up of node processes on a loaded 2-core machine, not the protocol. */
const START_MS = 30_000;
/** Detection is about 1.1 s; the rest is slack for a loaded machine. */
const DEAD_MS = 5_000;
/** A cut-off peer's own view: its health slows it down when everyone falls silent (membership.test.ts). */
const CUT_OFF_VIEW_MS = (1 + HEALTH_SCORE_MAX) * PROFILES.lan.membership.deadAfterMs + 5_000;
/**
 * Back from a cut, a host hears its subnet again, syncs with it and says hello to the members
 * beyond the router (join/index.ts followDeaths): a few round trips, not the next reconnect
 * (RECONNECT_INTERVAL_MS).
 */
const HEAL_MS = 5_000;
const DELIVER_MS = 15_000;
/** The node prints this on stderr once its sockets are open (open group, no key file). */
const STARTED = 'no --key-file';

interface Report {
  ok: boolean;
  checks: Array<{ id: string; status: string; detail: string; fix?: string }>;
  network: { case: string; joinLine: string | null } | null;
}

describe.runIf(decision.run)('the CLI across a router: peer up --join, peer doctor, peer chat', () => {
  let lan: NetnsLan;
  let data: string;
  // Subnet 0: hosts 0-2; subnet 1: hosts 3-5. Hosts 2 and 5 run no peer up: doctor and chat use them.
  const names = ['ana', 'ben', 'cai', 'dia'];
  const hostOf = [0, 1, 3, 4];
  const peers: Lines[] = [];
  const door = (i: number) => `${lan.host(i).address}:${PORT}`;

  const doctor = async (i: number, args: string[]) => {
    const r = await lan.run(
      i,
      process.execPath,
      [BIN, 'doctor', '--json', '--interface', lan.host(i).address, '--port', String(PORT)].concat([
        '--data-dir',
        tempDir('lan-doctor'),
        ...args,
      ]),
      { env: { NO_COLOR: '1' }, timeoutMs: 30_000 },
    );
    return { code: r.code, report: JSON.parse(r.stdout) as Report };
  };
  const check = (r: Report, id: string) => r.checks.find((c) => c.id === id)!;

  beforeAll(async () => {
    lan = NetnsLan.routed([3, 3]).up();
    data = tempDir('lan-routed');
    names.forEach((name, k) =>
      // Every peer joins through a peer of the other subnet (ana through cai, the rest through ana).
      peers.push(
        lanUp(lan, hostOf[k]!, name, { port: PORT, dataDir: data, args: ['--join', door(k === 0 ? 3 : 0)] }),
      ),
    );
  }, 60_000);

  afterAll(() => lan?.down());

  it(
    'every peer sees the three others, across the router too',
    async () => {
      for (const [k, p] of peers.entries())
        await p.until(
          (l) => names.every((n) => n === names[k] || loggedState(l, n) === 'alive'),
          START_MS,
          `${names[k]} to see all join`,
        );
    },
    4 * START_MS,
  );

  it('peer event and peer query from a host with no peer, joining through a seed across the router: every peer up acknowledges and answers', async () => {
    // Host 5 hears cai and dia by multicast; ana and ben only through the seed's member list.
    const ask = async (command: string[]) => {
      const r = await lan.run(
        5,
        process.execPath,
        [
          BIN,
          ...command,
          '--json',
          '--timeout',
          '10s',
          '--interface',
          lan.host(5).address,
          '--port',
          String(PORT),
        ].concat(['--data-dir', tempDir('lan-routed-ask'), '--join', door(0), '--profile', 'lan']),
        { env: { NO_COLOR: '1' }, timeoutMs: 30_000 },
      );
      expect(r.code, `peer ${command.join(' ')}: ${r.stderr}`).toBe(0);
      return JSON.parse(r.stdout) as { acked?: string[]; answers?: Array<{ from: string }> };
    };
    const sent = await ask(['event', 'deploy', 'v1']);
    expect(sent.acked!.sort()).toEqual([...names].sort());
    const asked = await ask(['query', 'version']);
    expect(asked.answers!.map((a) => a.from).sort()).toEqual([...names].sort());
  }, 60_000);

  it('peer doctor: multicast works on a subnet; with a seed across the router, it says to keep --join', async () => {
    const [same, across] = await Promise.all([doctor(2, []), doctor(5, ['--join', door(0)])]);
    expect(same.code).toBe(0);
    expect(same.report.network).toEqual({ case: 'multicast', joinLine: null });
    expect(check(same.report, 'network').status).toBe('pass');
    expect(across.code).toBe(0);
    // It hears cai and dia on its subnet's group; ana and ben answer only by unicast.
    expect(across.report.network).toEqual({ case: 'multicast', joinLine: `peer up --join ${door(0)}` });
    expect(check(across.report, 'network')).toMatchObject({
      status: 'warn',
      detail: expect.stringMatching(/2 member\(s\) listed by .* answer only by unicast/),
    });
    expect(check(across.report, 'seeds')).toMatchObject({
      status: 'pass',
      detail: expect.stringMatching(/answered \(4 member/),
    });
  }, 60_000);

  it('peer doctor: with multicast dropped at its switch, the group is silent but the seed answers', async () => {
    lan.blockMulticast(1, 'switch');
    try {
      const { code, report } = await doctor(5, ['--join', door(0)]);
      expect(code).toBe(0);
      expect(report.network).toEqual({ case: 'unicast-seeds', joinLine: `peer up --join ${door(0)}` });
      expect(check(report, 'network').fix).toBe(
        `peer up --join ${door(0)}   (or: export PEER_JOIN=${door(0)})`,
      );
    } finally {
      lan.unblockMulticast();
    }
  }, 60_000);

  it('peer doctor: with multicast dropped on its own host, it fails and says to go unicast', async () => {
    lan.blockMulticast(1, 'hosts', [5]);
    try {
      const { code, report } = await doctor(5, ['--join', door(0)]);
      expect(code).toBe(1);
      expect(check(report, 'round-trip').status).toBe('fail');
      expect(report.network).toEqual({
        case: 'multicast-blocked',
        joinLine: `peer up --transport unicast --join ${door(0)}`,
      });
    } finally {
      lan.unblockMulticast();
    }
  }, 60_000);

  it('peer doctor: one datagram of its round trip lost is not multicast blocked', async () => {
    // Only its own looped-back multicast comes from its address to the group (no peer runs there).
    lan.dropFirst(5, [
      'ip',
      'saddr',
      lan.host(5).address,
      'ip',
      'daddr',
      '239.255.77.77',
      'udp',
      'dport',
      String(PORT),
    ]);
    const { code, report } = await doctor(5, ['--join', door(0)]);
    expect(check(report, 'round-trip').status).toBe('pass');
    expect(code).toBe(0);
    expect(report.network?.case).toBe('multicast');
  }, 60_000);

  it('under 10 % loss, a peer killed with kill -9 is seen dead by every survivor on both sides', async () => {
    if (process.env.PEER_REQUIRE_LAN === '1' && !nftAvailable())
      throw new Error('nft is required in CI for the loss scenario');
    if (nftAvailable()) lan.addLoss(10);
    try {
      peers[3]!.child.kill('SIGKILL'); // dia, subnet 1
      for (const k of [0, 1, 2])
        await peers[k]!.until(
          (l) => loggedState(l, 'dia') === 'dead',
          DEAD_MS,
          `${names[k]} to see dia dead`,
        );
    } finally {
      // The cut below is on clean links: left at 10 % loss, a survivor with one other member to go
      // by sometimes took the cut for its own loss (local health) and waited up to 9x longer.
      if (nftAvailable()) lan.clearLoss();
    }
  }, 30_000);

  it('a host whose link goes down (ip link set eth0 down) is seen dead on both sides, and alive again once it is up', async () => {
    const cut = 1; // ben, host 1, subnet 0
    lan.setLinkDown(hostOf[cut]!, true);
    try {
      for (const k of [0, 2])
        await peers[k]!.until(
          (l) => loggedState(l, 'ben') === 'dead',
          DEAD_MS,
          `${names[k]} to see ben dead`,
        );
      await peers[cut]!.until(
        (l) => loggedState(l, 'ana') === 'dead' && loggedState(l, 'cai') === 'dead',
        CUT_OFF_VIEW_MS,
        'ben to see ana and cai dead',
      );
    } finally {
      lan.setLinkDown(hostOf[cut]!, false);
    }
    const healed = Date.now();
    for (const k of [0, 2])
      await peers[k]!.until((l) => loggedState(l, 'ben') === 'alive', HEAL_MS, `${names[k]} to see ben back`);
    await peers[cut]!.until(
      (l) => loggedState(l, 'ana') === 'alive' && loggedState(l, 'cai') === 'alive',
      HEAL_MS,
      'ben to see ana and cai back',
    );
    console.log(`routed LAN: every view whole ${Date.now() - healed} ms after the link came back`);
  }, 120_000);

  it('peer chat across the router, multicast blocked at one switch, 10 % loss: every message exactly once', async () => {
    if (process.env.PEER_REQUIRE_LAN === '1' && !nftAvailable())
      throw new Error('nft is required in CI for the loss scenario');
    if (nftAvailable()) lan.addLoss(10);
    lan.blockMulticast(1, 'switch');
    const chat = (i: number, args: string[]) =>
      lanCli(lan, i, ['chat', ...args], {
        port: PORT,
        dataDir: data,
        args: ['--join', door(0), '--profile', 'lan'],
      });
    const receivers = [
      chat(2, ['--name', 'rua', '--listen', '--json']),
      chat(5, ['--name', 'rub', '--listen', '--json']),
    ];
    try {
      for (const r of receivers)
        await r.until((l) => l.stderr.join('').includes(STARTED), START_MS, 'a receiver to start');
      // The seed knows both receivers, so a sender that joins through it learns both.
      await peers[0]!.until(
        (l) => loggedState(l, 'rua') === 'alive' && loggedState(l, 'rub') === 'alive',
        START_MS,
        'ana to see both receivers',
      );
      const sent: string[] = [];
      const send = async (i: number, name: string, k: number) => {
        const text = `${name} across ${k}`;
        sent.push(text);
        const s = chat(i, ['--name', name, '--send', text, '--json', '--wait', '10000']);
        expect(await s.exited, `${name} --send '${text}': ${s.stderr.join('')}`).toBe(0);
      };
      for (let k = 1; k <= 2; k++) await Promise.all([send(0, 'sia', k), send(3, 'sib', k)]);
      const texts = (l: Lines) =>
        l
          .json()
          .filter((e) => e.event === 'message')
          .map((e) => e.text as string);
      for (const r of receivers) {
        await r.until((l) => sent.every((t) => texts(l).includes(t)), DELIVER_MS, 'every message');
        for (const t of sent)
          expect(
            texts(r).filter((x) => x === t),
            t,
          ).toHaveLength(1);
        expect(r.json().filter((e) => e.event === 'lost')).toEqual([]);
      }
    } finally {
      lan.unblockMulticast();
      for (const r of receivers) r.child.kill('SIGTERM');
    }
  }, 120_000);
});
