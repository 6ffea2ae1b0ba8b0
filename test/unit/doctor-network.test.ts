/**
 * The doctor's network verdict (src/cli/doctor/network.ts) from what its observer found: each
 * case of the table in docs/monitor-doctor.md, with the `--join` line built from the seeds that
 * answered, as the user gave them. The LAN tier (test/lan/routed-cli.test.ts) checks the same
 * cases on real subnets.
 */
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { checkNetwork, rememberedSeeds } from '../../src/cli/doctor/network.js';
import { checkSeedsAnswer, type DoctorSeed, type Observation } from '../../src/cli/doctor/probe.js';
import { PeerStore, databasePath } from '../../src/storage/store.js';
import { REJOIN_CANDIDATES_MAX } from '../../src/p2p/join/index.js';
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

  it('--transport unicast: PASS with the unicast line when a seed answered, FAIL without seeds or answers', () => {
    const u = { ...base, roundTripOk: false, unicastOnly: true };
    const ok = checkNetwork({
      ...u,
      observed: observed([], { [seed.address!]: [A.id, B.id] }),
      seeds: [seed],
    });
    expect(ok.verdict).toEqual({
      case: 'unicast-only',
      joinLine: 'peer up --transport unicast --join seed.lan:47777',
    });
    expect(ok.check.status).toBe('pass');
    expect(ok.check.detail).toMatch(/seed.lan:47777 answered \(2 member\(s\)\)/);
    const none = checkNetwork({ ...u, observed: null, seeds: [] });
    expect([none.verdict.case, none.check.status]).toEqual(['alone', 'fail']);
    expect(none.check.fix).toMatch(/--join HOST/);
    const silent = checkNetwork({ ...u, observed: observed([]), seeds: [seed] });
    expect([silent.verdict.case, silent.check.status]).toEqual(['alone', 'fail']);
  });

  it('peers the data dir remembers stand in for seeds: their answer gives the case, their silence only a warning', () => {
    const r1: DoctorSeed = { given: '10.77.1.2:40001', address: '10.77.1.2:40001', remembered: true };
    const r2: DoctorSeed = { given: '10.77.1.3:40002', address: '10.77.1.3:40002', remembered: true };
    const found = checkNetwork({
      ...base,
      observed: observed([], { [r1.address!]: [A.id, B.id] }),
      seeds: [r1, r2],
    });
    expect(found.verdict).toEqual({ case: 'unicast-seeds', joinLine: 'peer up --join 10.77.1.2:40001' });
    expect(found.check.detail).toMatch(/remembered peer\(s\) 10.77.1.2:40001 answered by unicast/);
    expect(found.check.fix).toMatch(/^peer up tries the peers it remembers/);
    const gone = checkNetwork({ ...base, observed: observed([]), seeds: [r1, r2] });
    expect([gone.verdict.case, gone.check.status]).toEqual(['alone', 'warn']);

    const o = observed([], { [r1.address!]: [A.id] });
    const seedsCheck = checkSeedsAnswer(o, [r1, r2], { port: 47777 });
    expect([seedsCheck.title, seedsCheck.status]).toEqual(['remembered peers answer', 'pass']);
    const silentCheck = checkSeedsAnswer(observed([]), [r1, r2], { port: 47777 });
    expect(silentCheck.status).toBe('warn');
    expect(silentCheck.detail).toMatch(/they may have stopped or moved since/);
  });

  it("reads the data dir's remembered peers read-only, newest first, IPv4:PORT only, at most what peer up tries", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-doctor-remembered-'));
    try {
      const store = PeerStore.open(dir, 'a');
      const file = databasePath(dir, 'a');
      const hostile = ['not-an-address', '[::1]:5', '10.0.0.1:99999', '10.0.0.1:x'];
      const rows = [
        ...hostile.map((address, i) => ({ address, seen: 1_000 + i })),
        ...Array.from({ length: REJOIN_CANDIDATES_MAX + 4 }, (_, i) => ({
          address: `10.0.0.${i + 1}:4000`,
          seen: 2_000 + i,
        })),
      ];
      rows.forEach(({ address, seen }, i) =>
        store.rememberPeers(
          [
            {
              member: { ...A, id: i.toString(16).padStart(16, '0'), name: `m${i}`, address },
              connected: true,
            },
          ],
          seen,
        ),
      );
      store.close();
      const before = fs.readFileSync(file);
      const seeds = rememberedSeeds(dir, undefined);
      expect(seeds.length).toBe(REJOIN_CANDIDATES_MAX);
      expect(seeds[0]).toEqual({
        given: `10.0.0.${REJOIN_CANDIDATES_MAX + 4}:4000`,
        address: `10.0.0.${REJOIN_CANDIDATES_MAX + 4}:4000`,
        remembered: true,
      });
      expect(seeds.every((s) => /^10\.0\.0\.\d+:4000$/.test(s.given))).toBe(true);
      expect(fs.readFileSync(file).equals(before)).toBe(true);
      // A database without the peers table (another program's) gives none, and no error.
      new Database(databasePath(dir, 'b')).close();
      expect(rememberedSeeds(dir, 'b')).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
