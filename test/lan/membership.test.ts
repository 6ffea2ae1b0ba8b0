/**
 * LAN tier: the real CLI in 4 network namespaces on a bridge. One peer is crashed with kill -9,
 * another is cut off at the switch and reconnected, all with nftables dropping 10 % of datagrams.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lanTierDecision, NetnsLan, nftAvailable } from '../support/netns.js';
import { loggedState, tempDir, type Lines } from '../support/proc.js';
import { lanUp } from '../support/lan-peer.js';
import { PROFILES } from '../../src/p2p/config.js';
import { HEALTH_SCORE_MAX } from '../../src/p2p/membership.js';
import { MULTICAST_LOOPBACK_GRACE_MS } from '../../src/p2p/node.js';

const decision = lanTierDecision();
const PORT = 47777;
/**
 * The cut-off peer hears everyone fall silent at once. On a machine loaded by other test files
 * its own ticks run late, which its local health counts against itself (docs/membership.md), so
 * it may take up to (1 + HEALTH_SCORE_MAX) x deadAfterMs to call the others dead: by design.
 */
const CUT_OFF_VIEW_MS = (1 + HEALTH_SCORE_MAX) * PROFILES.lan.membership.deadAfterMs + 5_000;

describe.runIf(decision.run)('membership on a namespace LAN', () => {
  let lan: NetnsLan;
  const peers: Lines[] = [];
  const names = ['ana', 'ben', 'cai', 'dia'];

  beforeAll(async () => {
    lan = new NetnsLan(4).up();
    if (process.env.PEER_REQUIRE_LAN === '1' && !nftAvailable())
      throw new Error('nft is required in CI for the loss scenario');
    if (nftAvailable()) lan.addLoss(10);
    const data = tempDir('lan');
    names.forEach((name, i) => peers.push(lanUp(lan, i, name, { port: PORT, dataDir: data })));
  });

  afterAll(() => lan?.down());

  it('every peer sees the three others join', async () => {
    for (const [i, p] of peers.entries()) {
      await p.until(
        (l) => names.every((n) => n === names[i] || loggedState(l, n) === 'alive'),
        30_000, // process start-up on a loaded 2-core machine, not the protocol
        `${names[i]} to see all join`,
      );
    }
  });

  it('a peer alone on its host turns multicast loopback off once started (stats on SIGUSR1)', async () => {
    const p = peers[0]!;
    const off = () =>
      p
        .json()
        .some(
          (e) => e.event === 'stats' && (e as { multicastLoopback?: boolean }).multicastLoopback === false,
        );
    const deadline = Date.now() + MULTICAST_LOOPBACK_GRACE_MS + 10_000;
    while (!off() && Date.now() < deadline) {
      p.child.kill('SIGUSR1');
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(off()).toBe(true);
  });

  it('a peer killed with kill -9 is seen dead by every survivor', async () => {
    peers[2]!.child.kill('SIGKILL'); // the `ip netns exec` wrapper execs node, so this is the peer
    for (const i of [0, 1, 3])
      await peers[i]!.until((l) => loggedState(l, 'cai') === 'dead', 5_000, `${names[i]} to see cai dead`);
  });

  it('a peer cut off at the switch sees the others dead, is seen dead, and rejoins when reconnected', async () => {
    lan.setCut(3, true);
    try {
      for (const i of [0, 1])
        await peers[i]!.until((l) => loggedState(l, 'dia') === 'dead', 5_000, `${names[i]} to see dia dead`);
      await peers[3]!.until(
        (l) => loggedState(l, 'ana') === 'dead' && loggedState(l, 'ben') === 'dead',
        CUT_OFF_VIEW_MS,
        'dia to see ana and ben dead',
      );
    } finally {
      // Reconnected whatever happened, so the next test starts from a whole LAN.
      lan.setCut(3, false);
    }
    for (const i of [0, 1])
      await peers[i]!.until((l) => loggedState(l, 'dia') === 'alive', 5_000, `${names[i]} to see dia back`);
    await peers[3]!.until(
      (l) => loggedState(l, 'ana') === 'alive' && loggedState(l, 'ben') === 'alive',
      5_000,
      'dia to see ana and ben back',
    );
  });

  it('a graceful stop is seen as a leave, not a death', async () => {
    peers[1]!.child.kill('SIGTERM');
    expect(await peers[1]!.exited).toBe(0);
    for (const i of [0, 3])
      await peers[i]!.until((l) => loggedState(l, 'ben') === 'left', 3_000, `${names[i]} to see ben leave`);
  });
});
