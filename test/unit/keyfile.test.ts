import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatKey, newKey, parseKeys } from '../../src/cli/keyfile.js';
import { UsageError } from '../../src/cli/network.js';
import { KEYS_MAX } from '../../src/p2p/transport/keyring.js';

describe('key files', () => {
  it('reads base64 and hex keys in order, first = sending; skips comments, blanks, CRLF, duplicates', () => {
    const a = newKey();
    const b = newKey();
    const text = `# group key\r\n\r\n  ${formatKey(a)}  # in use\r\n${b.toString('hex').toUpperCase()}\n${formatKey(a)}\n`;
    const keys = parseKeys(text, 'k');
    expect(keys.map((k) => k.toString('hex'))).toEqual([a.toString('hex'), b.toString('hex')]);
  });

  it('refuses with the file and line: empty, wrong length, malformed, too many keys', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /^k holds no key; create one with: peer keygen --out k$/],
      ['# only\n\n', /holds no key/],
      [`${'a'.repeat(63)}\n`, /^k line 1: not a 256-bit key \(63 hex digits, a key has 64\)/],
      [`${formatKey(newKey())}\n${Buffer.alloc(31).toString('base64')}\n`, /^k line 2: .*31 bytes of base64/],
      ['\n\nnot a key at all\n', /^k line 3: .*neither base64 nor hex/],
      [Array.from({ length: KEYS_MAX + 1 }, () => formatKey(newKey())).join('\n'), /lists 9 keys; at most 8/],
    ];
    for (const [text, expected] of cases) {
      let err: unknown;
      try {
        parseKeys(text, 'k');
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(text)).toBeInstanceOf(UsageError);
      expect((err as Error).message).toMatch(expected);
      expect((err as Error).message).not.toContain('\n');
    }
  });

  it('fuzz: any text either parses to 1..8 keys of 32 bytes or fails with one UsageError line', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => {
        try {
          const keys = parseKeys(text, 'k');
          expect(keys.length).toBeGreaterThan(0);
          expect(keys.length).toBeLessThanOrEqual(KEYS_MAX);
          for (const k of keys) expect(k.length).toBe(32);
        } catch (e) {
          expect(e).toBeInstanceOf(UsageError);
          expect((e as Error).message).not.toContain('\n');
        }
      }),
      { numRuns: 2000 },
    );
  });
});
