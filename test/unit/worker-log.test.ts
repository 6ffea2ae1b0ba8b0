/**
 * peer worker's log lines of the jobs it runs: the submitter's name came from the network, so it
 * is shown escaped, once (a name escaped twice shows a doubled backslash and reads as another
 * name); no raw control or format character reaches the terminal.
 */
import { stripVTControlCharacters } from 'node:util';
import { describe, expect, it } from 'vitest';
import { describeJobEvent } from '../../src/commands/worker.js';
import type { PeerEvent } from '../../src/p2p/protocol.js';

const key = { run: '0123456789abcdef', job: 7, attempt: 1 };
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

const startedBy = (submitterName: string): string => {
  const line = describeJobEvent({ kind: 'job-started', ...key, submitterName } as PeerEvent);
  const plain = stripVTControlCharacters(line!);
  expect(plain).not.toMatch(RAW);
  return plain;
};

describe('peer worker job log', () => {
  it('names the submitter escaped once: a line separator in a name (refused on the wire, but escaping must not depend on it) shows as \\u2028', () => {
    expect(startedBy('w\u2028x')).toBe('start   job 01234567/7 for w\\u2028x');
    expect(startedBy('A\x1b]0;pwned\x07B')).toBe('start   job 01234567/7 for A\\x1b]0;pwned\\x07B');
    expect(startedBy('bob')).toBe('start   job 01234567/7 for bob');
  });
});
