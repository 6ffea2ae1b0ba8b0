/**
 * The counters `peer stats` and `peer up` (SIGUSR1) print: refusals for a counter past its bound
 * or an impostor's envelope are shown by name, as the decoder's drops are.
 */
import { describe, expect, it } from 'vitest';
import { describeReport, type SecurityReport } from '../../src/cli/security.js';
import { NO_DROPS } from '../support/cluster.js';

const report = (refused: Record<string, number>): SecurityReport => ({
  encrypted: false,
  keyIds: [],
  guard: { admitted: 10, rateLimited: 0, sourcesEvicted: 0, sourcesTracked: 2 },
  secure: null,
  decode: { ...NO_DROPS },
  refused,
  datagramsIn: 10,
  datagramsOut: 5,
  health: { score: 0, heartbeatLoss: null },
  multicastLoopback: false,
});

describe('security report', () => {
  it('names every refused counter with its count, and says none when there were none', () => {
    const lines = describeReport(report({ lamport: 3, impostor: 2, term: 0 })).split('\n');
    expect(lines).toContain(
      'refused for a counter past its bound or a member spoken for from elsewhere: lamport 3, impostor 2',
    );
    expect(describeReport(report({}))).toContain('a member spoken for from elsewhere: none');
  });
});
