/** Helpers of the message tests: one envelope to encode bodies in, and old-vs-new check verdicts. */
import fc from 'fast-check';
import { expect } from 'vitest';
import { PROTOCOL_VERSION, type Check, type Envelope } from '../../src/p2p/wire.js';

/**
 * A message type's new check accepts and refuses exactly what its former one did: on every
 * sample, and on each sample with one key's value replaced by any JSON value (or the key removed),
 * and on any JSON value at all (fast-check, fixed seed so a failure replays).
 */
export function expectSameVerdicts(
  type: string,
  before: Check,
  after: Check,
  samples: readonly unknown[],
): void {
  for (const body of samples) expect([type, body, after(body)]).toEqual([type, body, before(body)]);
  const keys = [...new Set(samples.flatMap((b) => Object.keys(b as object))), 'x'];
  const mutated = fc
    .tuple(
      fc.constantFrom(...samples),
      fc.constantFrom(...keys),
      fc.option(fc.oneof(fc.jsonValue(), fc.maxSafeNat(), fc.integer(), fc.double())),
    )
    .map(([b, k, v]) => {
      const o: Record<string, unknown> = { ...(b as object) };
      if (v === null) delete o[k];
      else o[k] = v;
      return o;
    });
  fc.assert(
    fc.property(fc.oneof(mutated, fc.jsonValue()), (v) => after(v) === before(v)),
    { numRuns: 300, seed: 7 },
  );
}

/** An envelope around `b` as message type `t`, from `sender`; the other fields fixed. */
export const envelopeOf = (t: string, b: unknown, sender = '0123456789abcdef'): Envelope => ({
  v: PROTOCOL_VERSION,
  t,
  i: sender,
  n: 'alice',
  c: 2,
  s: 5,
  l: 40,
  b,
});
