/**
 * The token ring's messages, declared with the message kit (src/p2p/token-ring/messages.ts), must put on the
 * wire the very bytes the hand-written bodies did: each case is a body as the old code built it
 * (short names, in its order: a pass was the token `{ e, g, br, cfg }` spread, then `to`, `ti`) and
 * the same message by the names the protocol now uses.
 */
import { envelopeOf } from '../support/messages.js';
import { describe, expect, it } from 'vitest';
import { Codec, type Envelope } from '../../src/p2p/wire.js';
import type { Message } from '../../src/p2p/kit/message.js';
import {
  BEAT,
  CLAIM,
  CONF,
  LEASE,
  LEASE_ACK,
  LEASE_NAK,
  PASS,
  PASS_ACK,
} from '../../src/p2p/token-ring/messages.js';

const envelope = (t: string, b: unknown): Envelope => envelopeOf(t, b);

const A = '0123456789abcdef';
const B = 'fedcba9876543210';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const bodies: Array<[Message<string, any>, Record<string, unknown>, Record<string, unknown>]> = [
  [
    PASS,
    { e: 3, g: 41, br: 4_000_000_000, cfg: [A, B], to: B, ti: 2 },
    { epoch: 3, gen: 41, branch: 4_000_000_000, cfg: [A, B], to: B, toIncarnation: 2 },
  ],
  [PASS_ACK, { e: 3, g: 41 }, { epoch: 3, gen: 41 }],
  [BEAT, { e: 3, g: 41, cfg: [A] }, { epoch: 3, gen: 41, cfg: [A] }],
  [LEASE, { e: 3, g: 41, br: 7, r: 12 }, { epoch: 3, gen: 41, branch: 7, round: 12 }],
  [LEASE_ACK, { e: 3, g: 41, r: 12 }, { epoch: 3, gen: 41, round: 12 }],
  [LEASE_NAK, { e: 4, g: 2 }, { epoch: 4, gen: 2 }],
  [
    CLAIM,
    { e: 5, b: 4, te: 4, tg: 9, tb: 77 },
    { epoch: 5, base: 4, tokenEpoch: 4, tokenGen: 9, tokenBranch: 77 },
  ],
  [
    CLAIM,
    { e: 1, b: 0, te: 0, tg: 0, tb: 0 },
    { epoch: 1, base: 0, tokenEpoch: 0, tokenGen: 0, tokenBranch: 0 },
  ],
  [
    CONF,
    { e: 5, ok: true, p: 5, ke: 4, kc: [A, B], g: 40 },
    { epoch: 5, ok: true, promised: 5, knownEpoch: 4, knownCfg: [A, B], maxGen: 40 },
  ],
];

const cases = bodies.map(([m, wire, domain]) => ({ type: m.type, m, wire, domain }));

describe('token ring messages on the wire', () => {
  it.each(cases)(
    '$type: the domain body encodes to the very bytes the old wire body did',
    ({ m, wire, domain }) => {
      const codec = new Codec({ [m.type]: m.check });
      const before = codec.encode(envelope(m.type, wire));
      const after = codec.encode(envelope(...m.out(domain)));
      expect(after.equals(before)).toBe(true);
    },
  );

  it.each(cases)(
    '$type: an old wire body passes the check and reads by domain names',
    ({ m, wire, domain }) => {
      expect(m.check(wire)).toBe(true);
      expect(m.of(envelope(m.type, wire))).toEqual(domain);
    },
  );
});
