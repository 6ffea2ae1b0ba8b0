import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  FIBONACCI_N_MAX,
  PRIMES_N_MAX,
  TASK_ARGS_JSON_CHARS_MAX,
  TASK_ARGS_MAX,
  TASK_RESULT_CHARS_MAX,
  countPrimesBelow,
  fibonacci,
  parseTaskArgs,
  runTask,
  validateTask,
} from '../src/p2p/jobs/ops.js';

const value = (op: string, args: unknown) => {
  const r = runTask(op, args);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};
const error = (op: unknown, args: unknown) => {
  const r = runTask(op, args);
  if (r.ok) throw new Error(`expected an error, got ${r.value}`);
  return r.error;
};

describe('task operations', () => {
  it('sum adds numbers, floats included', () => {
    expect(value('sum', [1, 2, 3])).toBe('6');
    expect(value('sum', [-1.5, 0.25])).toBe('-1.25');
    expect(error('sum', [Number.MAX_VALUE, Number.MAX_VALUE])).toMatch(/overflows/);
  });

  it('fibonacci is exact as a BigInt string', () => {
    expect(value('fibonacci', [0])).toBe('0');
    expect(value('fibonacci', [1])).toBe('1');
    expect(value('fibonacci', [10])).toBe('55');
    expect(value('fibonacci', [100])).toBe('354224848179261915075');
    // F(n+1)^2 - F(n)F(n+2) = (-1)^n (Cassini) checks big values without a table.
    const n = FIBONACCI_N_MAX - 2;
    const [a, b, c] = [fibonacci(n), fibonacci(n + 1), fibonacci(n + 2)];
    expect(b * b - a * c).toBe(n % 2 === 0 ? 1n : -1n);
    expect(value('fibonacci', [FIBONACCI_N_MAX]).length).toBeLessThanOrEqual(TASK_RESULT_CHARS_MAX);
  });

  it('sort orders numerically (not as strings)', () => {
    expect(value('sort', [10, 9, 1, -2, 1.5])).toBe('[-2,1,1.5,9,10]');
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -1e6, max: 1e6 }), { minLength: 1, maxLength: 40 }), (xs) => {
        const out = JSON.parse(value('sort', xs)) as number[];
        expect(out).toEqual([...xs].sort((x, y) => x - y));
      }),
    );
  });

  it('primes counts the primes below n (segmented sieve vs. trial division)', () => {
    expect(value('primes', [0])).toBe('0');
    expect(value('primes', [2])).toBe('0');
    expect(value('primes', [3])).toBe('1');
    expect(value('primes', [100])).toBe('25');
    expect(value('primes', [1_000_000])).toBe('78498');
    // Across segment boundaries (65536 bytes per segment).
    const naive = (n: number) => {
      let c = 0;
      for (let k = 2; k < n; k++) {
        let p = true;
        for (let d = 2; d * d <= k; d++)
          if (k % d === 0) {
            p = false;
            break;
          }
        if (p) c++;
      }
      return c;
    };
    for (const n of [65_535, 65_536, 65_537, 131_073]) expect(countPrimesBelow(n)).toBe(naive(n));
  });

  it('refuses unknown operations, wrong arguments and absurd sizes with a clear message', () => {
    expect(error('pow', [1])).toMatch(/unknown operation 'pow'; use one of: sum, fibonacci, sort, primes/);
    expect(error(42, [1])).toMatch(/unknown operation/);
    expect(error('sum', [])).toMatch(/no numbers given/);
    expect(error('sum', 'x')).toMatch(/must be a list/);
    expect(error('sum', [1, 'a'])).toMatch(/argument 2 \(a\) is not a finite number/);
    expect(error('sum', [1, NaN])).toMatch(/not a finite number/);
    expect(error('sum', [Infinity])).toMatch(/not a finite number/);
    expect(
      error(
        'sum',
        Array.from({ length: TASK_ARGS_MAX + 1 }, () => 1),
      ),
    ).toMatch(/over the limit of 64/);
    const long = Array.from({ length: 40 }, (_, i) => 1e15 + i); // 40 x 17 chars > 480
    expect(JSON.stringify(long).length).toBeGreaterThan(TASK_ARGS_JSON_CHARS_MAX);
    expect(error('sort', long)).toMatch(/characters, over the limit/);
    expect(error('fibonacci', [])).toMatch(/exactly one argument/);
    expect(error('fibonacci', [1, 2])).toMatch(/exactly one argument/);
    expect(error('fibonacci', [2.5])).toMatch(/out of range/);
    expect(error('fibonacci', [-1])).toMatch(/out of range/);
    expect(error('fibonacci', [FIBONACCI_N_MAX + 1])).toMatch(/out of range/);
    expect(error('primes', [PRIMES_N_MAX + 1])).toMatch(/out of range/);
    expect(validateTask('primes', [PRIMES_N_MAX]).ok).toBe(true);
  });

  it('never throws whatever it is given', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.constantFrom('sum', 'fibonacci', 'sort', 'primes'), fc.string()),
        fc.anything(),
        (op, args) => {
          const r = runTask(op, args);
          expect(typeof r.ok).toBe('boolean');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('parses command-line words strictly', () => {
    expect(parseTaskArgs('sum', ['1', '-2.5', '3e2', '.5'])).toEqual({ ok: true, args: [1, -2.5, 300, 0.5] });
    for (const bad of ['', 'abc', '0x10', 'Infinity', '1,5', 'NaN'])
      expect(parseTaskArgs('sum', ['1', bad])).toMatchObject({
        ok: false,
        error: expect.stringMatching(/is not a number/),
      });
  });
});
