import { describe, expect, it } from 'vitest';
import { DISCOVERY_PROBES_AT_MS, discoveryProbes } from '../../src/cli/peer.js';

describe('discovery probes (peer chat --send, peer event, peer query)', () => {
  it('probes again once at each of its times, however often the loop polls', () => {
    let probes = 0;
    const at = discoveryProbes({ probe: () => probes++ });
    const seen: number[] = [];
    for (let ms = 0; ms <= 2_000; ms += 10) {
      const before = probes;
      at(ms);
      if (probes > before) seen.push(ms);
    }
    expect(seen).toEqual(DISCOVERY_PROBES_AT_MS);
    expect(probes).toBe(DISCOVERY_PROBES_AT_MS.length);
  });

  it('a loop that stalls past several times probes once for them all', () => {
    let probes = 0;
    const at = discoveryProbes({ probe: () => probes++ });
    at(5_000);
    at(6_000);
    expect(probes).toBe(1);
  });
});
