/**
 * The built-in ops every worker runs (sum, fibonacci and sort, plus primes as a CPU-heavy one):
 * `peer task`, and the jobs of `kind: 'op'` (src/cli/run/ops.ts runs them in worker threads). Pure functions with validation: the submitter validates before anything goes on
 * the wire (so bad input gets a clear error at the command line), and the worker validates again
 * before it runs anything (a datagram may come from a buggy or hostile peer), so no input can
 * crash a worker or make it run for hours.
 *
 * Every argument is a number; every result is a string (fibonacci's BigInt does not fit a JSON
 * number). Sizes are bounded so that a task and its result each fit in one datagram: the JSON of
 * the arguments is at most TASK_ARGS_JSON_CHARS_MAX characters, and each result is at most
 * TASK_RESULT_CHARS_MAX characters (sort's result is its arguments reordered; fibonacci(2000) has
 * 418 digits).
 */

export const TASK_OPS = ['sum', 'fibonacci', 'sort', 'primes'] as const;
export type TaskOp = (typeof TASK_OPS)[number];

/** Most arguments a task may carry. */
export const TASK_ARGS_MAX = 64;
/** Longest JSON encoding of a task's arguments, in characters: keeps a task in one datagram. */
export const TASK_ARGS_JSON_CHARS_MAX = 480;
/** Longest result string; sort's result is as long as its arguments' JSON. */
export const TASK_RESULT_CHARS_MAX = 480;
/** Longest error message carried on the wire. */
export const TASK_ERROR_CHARS_MAX = 200;
/** Largest n for fibonacci: F(2000) has 418 decimal digits, under TASK_RESULT_CHARS_MAX. */
export const FIBONACCI_N_MAX = 2000;
/** Largest n for primes (count of primes below n): about 2 s of one core with a segmented sieve. */
export const PRIMES_N_MAX = 200_000_000;
/** Sieve segment size for primes, in bytes: bounds a worker thread's memory whatever n is. */
export const PRIMES_SEGMENT_BYTES = 1 << 16;

export type TaskOutcome = { ok: true; value: string } | { ok: false; error: string };
export type Validation = { ok: true; op: TaskOp; args: number[] } | { ok: false; error: string };

export function isTaskOp(op: unknown): op is TaskOp {
  return typeof op === 'string' && (TASK_OPS as readonly string[]).includes(op);
}

/** Usage of each operation, for error messages and help. */
export const TASK_USAGE: Record<TaskOp, string> = {
  sum: 'sum N... (1 to 64 finite numbers)',
  fibonacci: `fibonacci N (an integer from 0 to ${FIBONACCI_N_MAX})`,
  sort: 'sort N... (1 to 64 finite numbers, sorted ascending)',
  primes: `primes N (an integer from 0 to ${PRIMES_N_MAX}; counts the primes below N)`,
};

/** Checks an operation and its arguments; the error says what was wrong and what is accepted. */
export function validateTask(op: unknown, args: unknown): Validation {
  if (!isTaskOp(op))
    return {
      ok: false,
      error: `unknown operation '${clip(String(op), 32)}'; use one of: ${TASK_OPS.join(', ')}`,
    };
  if (!Array.isArray(args)) return { ok: false, error: `${op}: arguments must be a list of numbers` };
  const nums: number[] = [];
  for (const [i, a] of args.entries()) {
    if (typeof a !== 'number' || !Number.isFinite(a))
      return {
        ok: false,
        error: `${op}: argument ${i + 1} (${clip(String(a), 32)}) is not a finite number; usage: ${TASK_USAGE[op]}`,
      };
    nums.push(a);
  }
  if (nums.length > TASK_ARGS_MAX)
    return { ok: false, error: `${op}: ${nums.length} arguments, over the limit of ${TASK_ARGS_MAX}` };
  const chars = JSON.stringify(nums).length;
  if (chars > TASK_ARGS_JSON_CHARS_MAX)
    return {
      ok: false,
      error: `${op}: arguments take ${chars} characters, over the limit of ${TASK_ARGS_JSON_CHARS_MAX} (a task must fit in one datagram)`,
    };
  switch (op) {
    case 'sum':
    case 'sort':
      if (nums.length === 0) return { ok: false, error: `${op}: no numbers given; usage: ${TASK_USAGE[op]}` };
      return { ok: true, op, args: nums };
    case 'fibonacci':
      return single(op, nums, FIBONACCI_N_MAX);
    case 'primes':
      return single(op, nums, PRIMES_N_MAX);
  }
}

function single(op: TaskOp, nums: number[], max: number): Validation {
  if (nums.length !== 1)
    return {
      ok: false,
      error: `${op}: takes exactly one argument, got ${nums.length}; usage: ${TASK_USAGE[op]}`,
    };
  const n = nums[0]!;
  if (!Number.isInteger(n) || n < 0 || n > max)
    return { ok: false, error: `${op}: ${n} is out of range; usage: ${TASK_USAGE[op]}` };
  return { ok: true, op, args: nums };
}

/**
 * Parses command-line words into numbers; an error names the word. Accepts what Number() accepts
 * for decimal input, but refuses empty words, hex and Infinity, which are surprising in a sum.
 */
export function parseTaskArgs(
  op: string,
  words: string[],
): { ok: true; args: number[] } | { ok: false; error: string } {
  const args: number[] = [];
  for (const w of words) {
    const n = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(w.trim()) ? Number(w) : NaN;
    if (!Number.isFinite(n))
      return {
        ok: false,
        error: `${clip(op, 32)}: '${clip(w, 32)}' is not a number${isTaskOp(op) ? `; usage: ${TASK_USAGE[op]}` : ''}`,
      };
    args.push(n);
  }
  return { ok: true, args };
}

/** Validates, then runs. Never throws: any failure is an outcome with a message. */
export function runTask(op: unknown, args: unknown): TaskOutcome {
  const v = validateTask(op, args);
  if (!v.ok) return { ok: false, error: v.error };
  try {
    const value = compute(v.op, v.args);
    if (value.length > TASK_RESULT_CHARS_MAX)
      return { ok: false, error: `${v.op}: result of ${value.length} characters is over the limit` };
    return { ok: true, value };
  } catch (err) {
    return { ok: false, error: clip(`${v.op}: ${(err as Error).message}`, TASK_ERROR_CHARS_MAX) };
  }
}

function compute(op: TaskOp, args: number[]): string {
  switch (op) {
    case 'sum': {
      const s = args.reduce((a, b) => a + b, 0);
      if (!Number.isFinite(s)) throw new Error('the sum overflows a 64-bit float');
      return String(s);
    }
    case 'fibonacci':
      return fibonacci(args[0]!).toString();
    case 'sort':
      return JSON.stringify([...args].sort((a, b) => a - b));
    case 'primes':
      return String(countPrimesBelow(args[0]!));
  }
}

export function fibonacci(n: number): bigint {
  let a = 0n;
  let b = 1n;
  for (let i = 0; i < n; i++) [a, b] = [b, a + b];
  return a;
}

/** Count of primes p < n, by a segmented sieve of Eratosthenes: O(n log log n) time, O(sqrt n) memory. */
export function countPrimesBelow(n: number): number {
  if (n <= 2) return 0;
  const root = Math.floor(Math.sqrt(n - 1));
  const small = new Uint8Array(root + 1);
  const basePrimes: number[] = [];
  for (let i = 2; i <= root; i++) {
    if (small[i]) continue;
    basePrimes.push(i);
    for (let j = i * i; j <= root; j += i) small[j] = 1;
  }
  let count = 0;
  const seg = new Uint8Array(PRIMES_SEGMENT_BYTES);
  for (let low = 2; low < n; low += PRIMES_SEGMENT_BYTES) {
    const high = Math.min(low + PRIMES_SEGMENT_BYTES, n); // [low, high)
    seg.fill(0);
    for (const p of basePrimes) {
      if (p * p >= high) break;
      let start = Math.max(p * p, Math.ceil(low / p) * p);
      for (; start < high; start += p) seg[start - low] = 1;
    }
    for (let i = 0; i < high - low; i++) if (!seg[i]) count++;
  }
  return count;
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 3)}...`;
}
