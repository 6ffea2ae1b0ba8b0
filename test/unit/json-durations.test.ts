/**
 * Durations printed by --json and by JSON logs are rounded to JSON_MS_DECIMALS (a microsecond):
 * `kv put --json` printed "ms": 4.802677000000017.
 */
import { describe, expect, it } from 'vitest';
import { eventJson, jsonMs } from '../../src/cli/output.js';
import type { MemberView } from '../../src/p2p/protocol.js';

const member: MemberView = {
  id: '0123456789abcdef',
  name: 'h1',
  address: '127.0.0.1:4000',
  state: 'dead',
  incarnation: 1,
  lastSeenMs: 0,
  duplicateName: false,
  tags: {},
};

describe('durations in JSON', () => {
  it('are rounded to a microsecond', () => {
    expect(JSON.stringify({ ms: jsonMs(4.802677000000017) })).toBe('{"ms":4.803}');
    expect(jsonMs(12)).toBe(12);
    expect(jsonMs(0.0004)).toBe(0);
  });

  it('in a JSON log line too, where every ...Ms field is one', () => {
    const line = eventJson({ kind: 'dead', member, silentMs: 1234.5678901 }, 0);
    expect(line).toMatchObject({ event: 'dead', name: 'h1', silentMs: 1234.568 });
  });
});
