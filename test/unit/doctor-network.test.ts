/**
 * The doctor's network verdict (src/cli/doctor/network.ts) from what its observer found: each
 * case of the table in docs/monitor-doctor.md, with the `--join` line built from the seeds that
 * answered, as the user gave them. The LAN tier (test/lan/routed-cli.test.ts) checks the same
 * cases on real subnets.
 */
import { describe, expect, it } from 'vitest';
import { checkNetwork } from '../../src/cli/doctor/network.js';
import type { DoctorSeed, Observation } from '../../src/cli/doctor/probe.js';
import type { MemberView } from '../../src/p2p/protocol.js';

const member = (id: string): MemberView => ({
  id,
  name: `n${id.slice(-1)}`,
  address: `10.77.1.${Number.parseInt(id.slice(-1), 16) + 2}:5000`,
  state: 'alive',
  incarnation: 1,
  lastSeenMs: 0,
  duplicateName: false,
  tags: {},
});
const A = member('000000000000000a');
const B = member('000000000000000b');
const C = member('000000000000000c');

function observed(heard: MemberView[], seeds: Record<string, string[]> = {}): Observation {
  return {
    waitMs: 2000,
    live: heard,
    heardOnGroup: heard,
    seeds: new Map(Object.entries(seeds).map(([a, ids]) => [a, { total: ids.length, listed: new Set(ids) }])),
    otherKey: 0,
    clear: 0,
    version: 0,
  };
}
const seed: DoctorSeed = { given: 'seed.lan:47777', address: '10.77.1.2:47777' };
const base = { group: '239.255.77.77', port: 47777, address: '10.78.1.3', roundTripOk: true };

describe('peer doctor: the network verdict', () => {
  it('multicast works, nothing given: PASS, no line', () => {
    const r = checkNetwork({ ...base, observed: observed([A, B]), seeds: [] });
    expect(r.verdict).toEqual({ case: 'multicast', joinLine: null });
    expect(r.check.status).toBe('pass');
  });

  it('multicast works but the seed lists members not heard on the group: WARN, keep --join', () => {
    const r = checkNetwork({
      ...base,
      observed: observed([A], { [seed.address!]: [A.id, B.id, C.id] }),
      seeds: [seed],
    });
    expect(r.verdict).toEqual({ case: 'multicast', joinLine: 'peer up --join seed.lan:47777' });
    expect(r.check.status).toBe('warn');
    expect(r.check.detail).toMatch(/2 member\(s\) listed by seed.lan:47777 answer only by unicast/);
  });

  it('multicast works and the seeds list only members heard: PASS', () => {
    const r = checkNetwork({
      ...base,
      observed: observed([A, B], { [seed.address!]: [A.id, B.id] }),
      seeds: [seed],
    });
    expect(r.verdict.case).toBe('multicast');
    expect(r.check.status).toBe('pass');
  });

  it('the group is silent but a seed answered: WARN with the exact lines to use', () => {
    const silent: DoctorSeed = { given: '10.77.1.9:47777', address: '10.77.1.9:47777' };
    const r = checkNetwork({
      ...base,
      observed: observed([], { [seed.address!]: [A.id, B.id] }),
      seeds: [seed, silent],
    });
    expect(r.verdict).toEqual({ case: 'unicast-seeds', joinLine: 'peer up --join seed.lan:47777' });
    expect(r.check.status).toBe('warn');
    expect(r.check.fix).toBe('peer up --join seed.lan:47777   (or: export PEER_JOIN=seed.lan:47777)');
  });

  it('our own multicast does not come back: FAIL, unicast with the seed that answered', () => {
    const r = checkNetwork({
      ...base,
      roundTripOk: false,
      observed: observed([], { [seed.address!]: [A.id] }),
      seeds: [seed],
    });
    expect(r.verdict).toEqual({
      case: 'multicast-blocked',
      joinLine: 'peer up --transport unicast --join seed.lan:47777',
    });
    expect(r.check.status).toBe('fail');
    expect(r.check.fix).toMatch(/^allow UDP to 239.255.77.77:47777 in/);
  });

  it('nothing answers: WARN alone without seeds, FAIL with seeds that stay silent', () => {
    const alone = checkNetwork({ ...base, observed: observed([]), seeds: [] });
    expect([alone.verdict.case, alone.check.status]).toEqual(['alone', 'warn']);
    expect(alone.check.fix).toMatch(/--join HOST/);
    const silent = checkNetwork({ ...base, observed: observed([]), seeds: [seed] });
    expect([silent.verdict, silent.check.status]).toEqual([{ case: 'alone', joinLine: null }, 'fail']);
  });
});
