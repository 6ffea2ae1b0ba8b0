/**
 * The notice that a group runs open (no key file): said once per process however many peers the
 * process starts (kv bench starts one per client), and not at all when the user said the group is
 * open on purpose (--open, PEER_OPEN). A key file and --open together are a contradiction.
 */
import { describe, expect, it } from 'vitest';
import { keySettings, securityLayers } from '../../src/cli/security.js';
import { UsageError } from '../../src/cli/network.js';
import type { Transport } from '../../src/p2p/transport/transport.js';

const udp = (): Transport => ({
  address: '127.0.0.1:1',
  mode: 'multicast',
  start: async () => {},
  broadcast: () => {},
  send: () => {},
  close: async () => {},
});

describe('open-group notice', () => {
  it('is not said with --open, then said once for all the peers of a process', () => {
    const said: string[] = [];
    const notify = (line: string) => said.push(line);
    securityLayers(udp(), 'g:1', null, { notify, openOnPurpose: true }).announce();
    expect(said).toEqual([]);
    for (let i = 0; i < 5; i++) securityLayers(udp(), 'g:1', null, { notify }).announce();
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(
      /^no --key-file: traffic on g:1 is neither encrypted nor authenticated \(if intended, pass --open\)$/,
    );
  });

  it('--open with a key file is refused in one line', () => {
    expect(() => keySettings('group.key', true)).toThrow(UsageError);
    expect(() => keySettings('group.key', true)).toThrow(/^--open \(or PEER_OPEN\) .* pass one of them$/);
    expect(keySettings('', true)).toBeNull();
    expect(keySettings(undefined, true)).toBeNull();
  });
});
