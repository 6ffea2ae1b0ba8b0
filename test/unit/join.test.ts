/**
 * `--join` parsing (cli/network.ts) and the page codec's bounds (p2p/join/messages.ts): a page of
 * SYNC_PAGE_ENTRIES_MAX hints fits one datagram whatever the sender's name, a padded request is
 * at least half a page, and a hints attachment out of shape is refused, never half-read.
 */
import { describe, expect, it } from 'vitest';
import { parseJoin, UsageError } from '../../src/cli/network.js';
import { JOIN_SEEDS_MAX } from '../../src/p2p/join/index.js';
import {
  HINT_BYTES,
  PAGE,
  SYNC,
  SYNC_PAGE_ENTRIES_MAX,
  SYNC_REQUEST_BYTES_MIN,
  decodeHints,
  encodeHints,
  paddingFor,
  type Hint,
} from '../../src/p2p/join/messages.js';
import { Codec, DATAGRAM_PAYLOAD_BYTES_MAX, NAME_CHARS_MAX, PROTOCOL_VERSION } from '../../src/p2p/wire.js';
import { COUNTER_MAX } from '../../src/p2p/bounds.js';

const hint = (i: number): Hint => ({
  id: i.toString(16).padStart(16, 'a'),
  address: `192.168.${i >> 8}.${i & 255}:${40000 + i}`,
});

describe('parseJoin', () => {
  it('takes HOST and HOST:PORT, repeated or comma-separated, the port defaulting to --port', () => {
    expect(parseJoin(['10.0.0.1', 'seed.lan:5000,10.0.0.2:47778', ' 10.0.0.1 '], 47777)).toEqual([
      { host: '10.0.0.1', port: 47777 },
      { host: 'seed.lan', port: 5000 },
      { host: '10.0.0.2', port: 47778 },
    ]);
    expect(parseJoin([], 47777)).toEqual([]);
  });

  it('takes PEER_JOIN as oclif hands it over: one comma-separated string', () => {
    expect(parseJoin('10.0.0.1:1,seed.lan', 47777)).toEqual([
      { host: '10.0.0.1', port: 1 },
      { host: 'seed.lan', port: 47777 },
    ]);
  });

  it.each([
    ['10.0.0.1:0', /port must be a number from 1 to 65535/],
    ['10.0.0.1:65536', /port must be a number from 1 to 65535/],
    ['10.0.0.1:abc', /port must be a number from 1 to 65535/],
    ['10.0.0.1:', /port must be a number from 1 to 65535/],
    ['[::1]:47777', /IPv6 is not supported/],
    ['fe80::1', /IPv6 is not supported/],
    ['bad_name!', /neither an IPv4 address nor a host name/],
    ['-lead.example', /neither an IPv4 address nor a host name/],
  ])('refuses %s with one line that says what to give', (value, why) => {
    expect(() => parseJoin([value], 47777)).toThrow(UsageError);
    expect(() => parseJoin([value], 47777)).toThrow(why);
    try {
      parseJoin([value], 47777);
    } catch (err) {
      expect((err as Error).message).not.toContain('\n');
      expect((err as Error).message).toMatch(/^--join /);
    }
  });

  it(`takes at most ${JOIN_SEEDS_MAX} seeds`, () => {
    const many = Array.from({ length: JOIN_SEEDS_MAX + 1 }, (_, i) => `10.0.0.${i + 1}`);
    expect(parseJoin(many.slice(0, JOIN_SEEDS_MAX), 1)).toHaveLength(JOIN_SEEDS_MAX);
    expect(() => parseJoin(many, 1)).toThrow(`give at most ${JOIN_SEEDS_MAX}`);
  });
});

describe('the page codec', () => {
  it('round-trips up to SYNC_PAGE_ENTRIES_MAX IPv4 hints and leaves out the others', () => {
    const hints = Array.from({ length: SYNC_PAGE_ENTRIES_MAX }, (_, i) => hint(i));
    expect(decodeHints(encodeHints(hints))).toEqual(hints);
    const more = [...hints, hint(99)];
    expect(encodeHints(more).length).toBe(SYNC_PAGE_ENTRIES_MAX * HINT_BYTES);
    expect(decodeHints(encodeHints([{ id: 'a'.repeat(16), address: 'host.lan:1' }, hint(1)]))).toEqual([
      hint(1),
    ]);
  });

  it('refuses an attachment of the wrong length, too many hints, or port 0', () => {
    const one = encodeHints([hint(1)]);
    expect(decodeHints(one.subarray(0, HINT_BYTES - 1))).toBeUndefined();
    expect(decodeHints(Buffer.concat([one, Buffer.alloc(1)]))).toBeUndefined();
    expect(decodeHints(Buffer.alloc((SYNC_PAGE_ENTRIES_MAX + 1) * HINT_BYTES, 1))).toBeUndefined();
    const zeroPort = Buffer.from(one);
    zeroPort.writeUInt16BE(0, HINT_BYTES - 2);
    expect(decodeHints(zeroPort)).toBeUndefined();
  });

  it('a full page from the longest name and widest counters fits one datagram; a padded request is over half of that', () => {
    const codec = new Codec(
      { [PAGE.type]: PAGE.check, [SYNC.type]: SYNC.check },
      { [PAGE.type]: decodeHints },
    );
    const env = (t: string, b: unknown) => ({
      v: PROTOCOL_VERSION,
      t,
      i: 'f'.repeat(16),
      n: 'n'.repeat(NAME_CHARS_MAX),
      c: COUNTER_MAX,
      s: COUNTER_MAX,
      l: COUNTER_MAX,
      b,
    });
    const hints = Array.from({ length: SYNC_PAGE_ENTRIES_MAX }, (_, i) => hint(i));
    const page = codec.encode(
      env(PAGE.type, PAGE.toWire({ nonce: 2 ** 32 - 1, total: 2048, next: 'f'.repeat(16) })),
      encodeHints(hints),
    );
    expect(page.length).toBeLessThanOrEqual(DATAGRAM_PAYLOAD_BYTES_MAX);
    // The smallest request that gets an answer: no tags, the shortest name, small counters.
    const body = SYNC.toWire({ cursor: '', nonce: 0, observer: 1 });
    const request = codec.encode({
      ...env(SYNC.type, { ...body, p: paddingFor(body) }),
      n: 'x',
      c: 1,
      s: 1,
      l: 1,
    });
    expect(request.length).toBeGreaterThanOrEqual(SYNC_REQUEST_BYTES_MIN);
    expect(DATAGRAM_PAYLOAD_BYTES_MAX / request.length).toBeLessThanOrEqual(2);
  });
});
