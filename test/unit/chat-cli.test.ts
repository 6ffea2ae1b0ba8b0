import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../src/commands/chat.js';

describe('peer chat --every', () => {
  it('parses ms, s, m, h and bare seconds', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('2s')).toBe(2000);
    expect(parseDuration('1.5m')).toBe(90_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('3')).toBe(3000);
    expect(parseDuration('10ms')).toBe(10);
  });

  it('refuses what it cannot mean, with the accepted forms in the message', () => {
    for (const bad of ['', 'fast', '2 weeks', '-1s', '1e3'])
      expect(() => parseDuration(bad)).toThrow(/use e\.g\. 500ms, 2s, 1m or 1h/);
  });

  it('refuses a duration out of range, naming the range', () => {
    for (const bad of ['9ms', '25h'])
      expect(() => parseDuration(bad)).toThrow(/out of range: give one between 10ms and 24h$/);
  });
});
