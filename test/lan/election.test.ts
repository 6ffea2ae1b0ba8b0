/**
 * LAN tier: the election with the real CLI, one `peer up --priority N` per network namespace on a
 * bridge, nftables dropping 10 % of incoming UDP on every host. The coordinator is killed with
 * kill -9 and the survivors elect the next; the new coordinator is then cut off at the switch,
 * so each side has a coordinator of its own; reconnected, exactly one is left.
 *
 * Every step waits for a condition with a deadline (no fixed sleeps); the deadlines add up to
 * well under 90 s, most of it Node starting four processes on a loaded 2-core machine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lanTierDecision, NetnsLan, nftAvailable } from '../support/netns.js';
import { BIN, Lines, loggedState, tempDir } from '../support/proc.js';
import { PROFILES } from '../../src/p2p/config.js';

const decision = lanTierDecision();
const PORT = 47777;
const LOSS_PERCENT = 10;
/** Node start-up of four processes on a loaded 2-core host dominates this, not the protocol. */
const START_TIMEOUT_MS = 30_000;
/** Failure detection (deadAfterMs) plus the election plus slack for loss and scheduling. */
const FAILOVER_TIMEOUT_MS = PROFILES.lan.membership.deadAfterMs + 4_000;
/** After a heal: heartbeats resume, claims in the tags meet, the higher peer takes a new term. */
const HEAL_TIMEOUT_MS = 8_000;
/** How often a joint condition over several peers is re-checked. */
const POLL_MS = 50;

/**
 * The coordinator a `peer up --log-format json` process last logged, and its term: from
 * `coordinator-changed`, or `elected` (a coordinator that wins again in a higher term logs only
 * `elected`, since whom it follows did not change).
 */
function followed(p: Lines): { coordinator: string | null; term: number } | undefined {
  let last: { coordinator: string | null; term: number } | undefined;
  for (const e of p.json()) {
    if (e.event === 'coordinator-changed')
      last = { coordinator: e.coordinator as string | null, term: e.term as number };
    else if (e.event === 'elected') last = { coordinator: idOf(p) ?? null, term: e.term as number };
  }
  return last;
}

function idOf(p: Lines): string | undefined {
  return p.json().find((e) => e.event === 'up')?.id as string | undefined;
}

describe.runIf(decision.run)('election on a namespace LAN', () => {
  let lan: NetnsLan;
  const peers: Lines[] = [];
  const names = ['el1', 'el2', 'el3', 'el4'];
  const ids: string[] = [];

  /**
   * Every peer in `group` (indices) follows the peer at index `leader`, all in the same term: a
   * joint condition, re-checked as output arrives (each peer alone may pass through a
   * transitional state while the others are elsewhere).
   */
  async function allFollow(group: number[], leader: number, timeoutMs: number): Promise<void> {
    const agreed = () => {
      const f = group.map((i) => followed(peers[i]!));
      return f.every((x) => x?.coordinator === ids[leader]) && new Set(f.map((x) => x!.term)).size === 1;
    };
    const deadline = Date.now() + timeoutMs;
    while (!agreed()) {
      if (Date.now() > deadline) {
        const now = group.map((i) => `${names[i]}: ${JSON.stringify(followed(peers[i]!))}`).join('; ');
        throw new Error(`timed out after ${timeoutMs} ms waiting for all to follow ${names[leader]}: ${now}`);
      }
      // Re-check the condition every POLL_MS until the deadline: a condition wait, not a sleep.
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  beforeAll(async () => {
    lan = new NetnsLan(4).up();
    if (process.env.PEER_REQUIRE_LAN === '1' && !nftAvailable())
      throw new Error('nft is required in CI for the loss scenario');
    if (nftAvailable()) lan.addLoss(LOSS_PERCENT);
    const data = tempDir('lan-election');
    names.forEach((name, i) => {
      const args = [BIN, 'up', '--name', name, '--interface', lan.host(i).address, '--port', String(PORT)];
      args.push('--data-dir', data, '--log-format', 'json', '--priority', String(i + 1));
      // `ip netns exec` execs node, so the child's pid is the peer's pid (kill -9 hits the peer).
      peers.push(new Lines(lan.spawn(i, process.execPath, args, { NO_COLOR: '1' })));
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (const [i, p] of peers.entries()) {
      await p.until((l) => idOf(l) !== undefined, Math.max(1, deadline - Date.now()), `${names[i]} up`);
      ids[i] = idOf(p)!;
    }
  }, START_TIMEOUT_MS + 10_000);

  afterAll(() => lan?.down());

  it(
    'all four agree on the highest priority',
    async () => {
      await allFollow([0, 1, 2, 3], 3, START_TIMEOUT_MS);
      // Its elected line follows its coordinator-changed line: it may not have been read yet.
      await peers[3]!.until((l) => l.json().some((e) => e.event === 'elected'), 2_000, 'its elected line');
      const terms = peers.map((p) => followed(p)!.term);
      expect(new Set(terms).size).toBe(1);
    },
    START_TIMEOUT_MS + 5_000,
  );

  it(
    'kill -9 of the coordinator: the survivors agree on the next, with a higher term',
    async () => {
      const termBefore = followed(peers[0]!)!.term;
      peers[3]!.child.kill('SIGKILL');
      await peers[3]!.exited;
      await allFollow([0, 1, 2], 2, FAILOVER_TIMEOUT_MS);
      expect(followed(peers[0]!)!.term).toBeGreaterThan(termBefore);
      await peers[2]!.until((l) => l.json().some((e) => e.event === 'elected'), 2_000, 'its elected line');
      // The old coordinator is then seen dead by every survivor (a peer may follow the new claim
      // before its own detector has gone from suspect to dead: the claim's term is higher).
      for (const i of [0, 1, 2])
        await peers[i]!.until(
          (l) => loggedState(l, 'el4') === 'dead',
          FAILOVER_TIMEOUT_MS,
          `${names[i]} to see el4 dead`,
        );
    },
    FAILOVER_TIMEOUT_MS + 5_000,
  );

  it(
    'the new coordinator cut off at the switch: each side has one coordinator',
    async () => {
      lan.setCut(2, true);
      // el3 alone keeps leading itself; el1 and el2 see it dead and elect el2.
      await allFollow([0, 1], 1, FAILOVER_TIMEOUT_MS);
      await peers[2]!.until(
        (l) => loggedState(l, 'el1') === 'dead' && loggedState(l, 'el2') === 'dead',
        FAILOVER_TIMEOUT_MS,
        'el3 to see el1 and el2 dead',
      );
      expect(followed(peers[2]!)!.coordinator).toBe(ids[2]);
      await peers[1]!.until((l) => l.json().some((e) => e.event === 'elected'), 2_000, 'its elected line');
    },
    2 * FAILOVER_TIMEOUT_MS + 5_000,
  );

  it(
    'healed: exactly one coordinator again, the higher-ranked el3, in a new term',
    async () => {
      const sideTerm = Math.max(followed(peers[1]!)!.term, followed(peers[2]!)!.term);
      lan.setCut(2, false);
      await allFollow([0, 1, 2], 2, HEAL_TIMEOUT_MS);
      expect(followed(peers[0]!)!.term).toBeGreaterThan(sideTerm);
      // el2 stepped down: the last change it logged names el3, and it still runs.
      expect(peers[1]!.child.exitCode).toBeNull();
      expect(followed(peers[1]!)!.coordinator).toBe(ids[2]);
    },
    HEAL_TIMEOUT_MS + 5_000,
  );
});
