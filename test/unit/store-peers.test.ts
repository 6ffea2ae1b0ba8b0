/**
 * Remembered peers in the database (store.ts `peers`): a cap that churn cannot use to push out
 * live or long-lived peers, expiry after REMEMBERED_PEER_TTL_MS, one transaction per batch, and
 * the newest rows first as candidates.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  PeerStore,
  REMEMBERED_PEER_TTL_MS,
  REMEMBERED_PEERS_MAX,
  REMEMBERED_PROTECT_ALIVE_MS,
} from '../../src/storage/store.js';
import type { MemberView } from '../../src/p2p/protocol.js';

const dirs: string[] = [];
function open(): PeerStore {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-peers-'));
  dirs.push(d);
  const s = PeerStore.open(d, 'alice');
  s.startIdentity();
  return s;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const T0 = 1_700_000_000_000;
const member = (i: number): MemberView => ({
  id: i.toString(16).padStart(16, '0'),
  name: `p${i}`,
  address: `10.0.${i >> 8}.${i & 255}:7000`,
  state: 'alive',
  incarnation: 1,
  lastSeenMs: 0,
  duplicateName: false,
  tags: {},
});
const ids = (s: PeerStore) => new Set(s.peers().map((r) => r.id));

describe('remembered peers (store.ts)', () => {
  it(`keeps at most ${REMEMBERED_PEERS_MAX} rows; churned members go first, never live or long-lived ones`, () => {
    const s = open();
    // 20 members met long ago that stayed 20 minutes, then left; 10 still connected.
    const longLived = Array.from({ length: 20 }, (_, i) => member(i));
    s.rememberPeers(
      longLived.map((m) => ({ member: m, connected: true })),
      T0,
    );
    s.rememberPeers(
      longLived.map((m) => ({ member: m, connected: false })),
      T0 + 2 * REMEMBERED_PROTECT_ALIVE_MS,
    );
    const live = Array.from({ length: 10 }, (_, i) => member(100 + i));
    s.rememberPeers(
      live.map((m) => ({ member: m, connected: true })),
      T0,
    );
    // Then a forger's churn: 1,000 members that join and die a second later, newest last.
    for (let i = 0; i < 1000; i++) {
      const m = member(1000 + i);
      const at = T0 + 3 * REMEMBERED_PROTECT_ALIVE_MS + i * 1000;
      s.rememberPeers([{ member: m, connected: true }], at);
      s.rememberPeers([{ member: m, connected: false }], at + 1000);
    }
    const kept = ids(s);
    expect(kept.size).toBe(REMEMBERED_PEERS_MAX);
    for (const m of [...longLived, ...live]) expect(kept.has(m.id)).toBe(true);
    // Of the churn, the most recent ones stay.
    expect(kept.has(member(1999).id)).toBe(true);
    expect(kept.has(member(1000).id)).toBe(false);
    s.close();
  });

  it('forgets rows not seen for 72 hours, and gives the newest addresses first', () => {
    const s = open();
    s.rememberPeers([{ member: member(1), connected: false }], T0);
    s.rememberPeers([{ member: member(2), connected: false }], T0 + 1000);
    s.rememberPeers([{ member: member(3), connected: true }], T0 + 2000);
    expect(s.peerAddresses(2)).toEqual([member(3).address, member(2).address]);
    expect(s.forgetExpiredPeers(T0 + REMEMBERED_PEER_TTL_MS + 500)).toBe(1);
    expect(ids(s)).toEqual(new Set([member(2).id, member(3).id]));
    s.close();
  });

  it('forgets a member that left (a one-shot command leaves after every run)', () => {
    const s = open();
    s.rememberPeers(
      [
        { member: member(1), connected: true },
        { member: member(2), connected: true },
      ],
      T0,
    );
    s.rememberPeers([{ member: { ...member(1), state: 'left' }, connected: false }], T0 + 1000);
    expect(ids(s)).toEqual(new Set([member(2).id]));
    s.close();
  });

  it('writes a batch in one transaction: all of it or none', () => {
    const s = open();
    const bad = { ...member(2), address: null as unknown as string }; // NOT NULL fails mid-batch
    expect(() =>
      s.rememberPeers(
        [
          { member: member(1), connected: true },
          { member: bad, connected: true },
        ],
        T0,
      ),
    ).toThrow();
    expect(s.peers()).toEqual([]);
    s.close();
  });
});
