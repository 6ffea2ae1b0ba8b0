import { describe, expect, it } from 'vitest';
import { DISCOVERY_PROBES_AT_MS, discoverSettled, type DiscoveryWait } from '../../src/cli/peer.js';

interface Member {
  id: string;
}

/**
 * Runs discoverSettled on a virtual clock: `members(ms)` is the list at each moment, and every
 * sleep moves the clock by what was asked, or by `stallMs` when set (a loop held up elsewhere).
 * Resolves to what it returned, when, and when it probed.
 */
async function discover(
  members: (ms: number) => Member[],
  wait: Omit<DiscoveryWait<Member>, 'list'>,
  stallMs?: number,
): Promise<{ list: Member[]; at: number; probes: number[] }> {
  let clock = 0;
  const probes: number[] = [];
  const list = await discoverSettled(
    { probe: () => probes.push(clock) },
    { ...wait, list: () => members(clock) },
    () => clock,
    async (ms) => {
      clock += stallMs ?? ms;
    },
  );
  return { list, at: clock, probes };
}

const a = { id: 'a' };
const b = { id: 'b' };

describe('discovery (peer chat --send, peer event, peer query)', () => {
  it('probes again once at each of its times, however often it polls', async () => {
    const r = await discover(() => [], { settleMs: 1_000, maxMs: 2_000 });
    expect(r.probes).toEqual(DISCOVERY_PROBES_AT_MS);
    expect(r.list).toEqual([]);
    expect(r.at).toBe(2_000);
  });

  it('a loop that stalls past several times probes once for them all', async () => {
    const r = await discover(() => [], { settleMs: 1_000, maxMs: 5_000 }, 1_000);
    expect(r.probes).toEqual([1_000]);
  });

  it('ends once the list has not changed for the settle time, counted from its last change', async () => {
    const r = await discover((ms) => (ms < 300 ? [a] : [a, b]), { settleMs: 1_000, maxMs: 2_000 });
    expect(r.list).toEqual([a, b]);
    expect(r.at).toBe(1_300);
  });

  it('an empty list never settles: it waits the whole time', async () => {
    const r = await discover(() => [], { settleMs: 100, maxMs: 700 });
    expect(r.at).toBe(700);
  });

  it('does not settle while busy (members still being greeted), and ends at the longest wait all the same', async () => {
    const settled = await discover(() => [a], { settleMs: 100, maxMs: 2_000, busy: () => false });
    expect(settled.at).toBe(100);
    let clock = 0;
    const busyUntil = await discoverSettled(
      { probe: () => {} },
      { list: () => [a], settleMs: 100, maxMs: 2_000, busy: () => clock < 600 },
      () => clock,
      async (ms) => {
        clock += ms;
      },
    );
    expect(busyUntil).toEqual([a]);
    expect(clock).toBe(600);
    const always = await discover(() => [a], { settleMs: 100, maxMs: 2_000, busy: () => true });
    expect(always.at).toBe(2_000);
  });

  it('ends at once when what it looks for is found', async () => {
    const r = await discover((ms) => (ms < 400 ? [a] : [a, b]), {
      settleMs: 1_000,
      maxMs: 2_000,
      found: (l) => l.some((m) => m.id === 'b'),
    });
    expect(r.list).toEqual([a, b]);
    expect(r.at).toBe(400);
  });
});
