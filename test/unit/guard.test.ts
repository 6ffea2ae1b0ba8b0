import { describe, expect, it } from 'vitest';
import { RateGuard } from '../../src/p2p/transport/guard.js';

describe('RateGuard', () => {
  it('evicts the least recently heard source, whether or not the one heard last came again', () => {
    // One token each and no refill: a bucket that is kept stays empty, a new one is full.
    const guard = new RateGuard({ now: () => 0, ratePerS: 0, memberRatePerS: 0, burst: 1, sourcesMax: 2 });
    expect(guard.admit('a')).toBe(true);
    expect(guard.admit('b')).toBe(true);
    expect(guard.admit('b')).toBe(false); // b again, heard last already
    expect(guard.admit('a')).toBe(false); // a is now the one heard last: b is the oldest
    expect(guard.admit('c')).toBe(true); // evicts b
    expect(guard.stats.sourcesEvicted).toBe(1);
    expect(guard.admit('a')).toBe(false); // a's empty bucket was kept
    expect(guard.admit('a')).toBe(false);
    expect(guard.admit('b')).toBe(true); // b's bucket is new (full): it evicts c, the oldest now
    expect(guard.admit('c')).toBe(true); // so c's is new too, evicting a
    expect(guard.admit('a')).toBe(true);
    expect(guard.stats.sourcesEvicted).toBe(4);
  });

  it('refills a source by the time since it was last heard', () => {
    let now = 0;
    const guard = new RateGuard({ now: () => now, ratePerS: 1000, memberRatePerS: 1000, burst: 2 });
    expect([guard.admit('a'), guard.admit('a'), guard.admit('a')]).toEqual([true, true, false]);
    now = 1; // one token back
    expect([guard.admit('a'), guard.admit('a')]).toEqual([true, false]);
    expect(guard.stats.rateLimited).toBe(2);
  });
});
