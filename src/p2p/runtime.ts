/**
 * Time, timers and randomness, injected so the same node runs in real time (here) or in virtual
 * time over the simulated network (transport/sim.ts). Protocol modules never see timers: the node
 * calls their tick(now) from the runtime's interval.
 */
export type Cancel = () => void;

export interface Runtime {
  /** Monotonic milliseconds: for timeouts and durations. */
  now(): number;
  /** Wall-clock milliseconds since the epoch, as this machine believes them: for display. */
  wall(): number;
  random(): number;
  every(ms: number, fn: () => void): Cancel;
  after(ms: number, fn: () => void): Cancel;
}

/** Date.now() counts whole milliseconds: the true time lies in [Date.now(), Date.now() + this). */
export const DATE_NOW_RESOLUTION_MS = 1;
/** Calibration waits at most this long for Date.now() to tick (a frozen clock must not hang us). */
const WALL_CALIBRATION_SPIN_MS_MAX = 5;
/** A reading this far below Date.now() is a step of the system clock (re-calibrate), not jitter. */
const WALL_STEP_MS_MIN = 0.1;

/**
 * A wall clock with sub-millisecond resolution. Date.now() is truncated to the millisecond, which
 * alone would cap clock sync at about a millisecond of error (each Cristian reading is off by up
 * to 1 ms); the monotonic clock (performance.now(), slewed by NTP like the system clock) has
 * microseconds but no epoch. So: anchor the monotonic clock to the instant Date.now() ticks (a
 * spin of at most 1 ms, once), and at every reading keep the result inside the millisecond that
 * Date.now() reports, re-anchoring when it leaves it: a step of the system clock is followed at
 * the next reading, and between steps readings have the monotonic clock's resolution.
 */
export function fineWallClock(
  coarse: () => number = () => Date.now(),
  mono: () => number = () => performance.now(),
): () => number {
  let anchor: number | null = null;
  // Every anchor is taken as Date.now() minus a monotonic reading made AFTER it: the true time
  // then is at least that millisecond, so a reading is never ahead of the true time, however long
  // the thread stops between the two reads (a loaded machine). Read the other way round, a stop
  // put the result ahead by the stop's length, past the millisecond Date.now() reports.
  const calibrate = (): number => {
    const w0 = coarse();
    const giveUp = mono() + WALL_CALIBRATION_SPIN_MS_MAX;
    for (;;) {
      const w = coarse();
      const m = mono();
      if (w !== w0 || m >= giveUp) return w - m;
    }
  };
  return () => {
    anchor ??= calibrate();
    let m = mono();
    const w = coarse();
    const fine = anchor + m;
    // Below the reported millisecond by more than a reading's own jitter: the clock stepped forward.
    if (fine < w - WALL_STEP_MS_MIN) anchor = calibrate();
    else if (fine < w) anchor = w - mono();
    // At or past its end: the clock stepped back.
    else if (fine >= w + DATE_NOW_RESOLUTION_MS) anchor = calibrate();
    else return fine;
    m = mono(); // calibration spun: read again
    return anchor + m;
  };
}

export const realRuntime: Runtime = {
  now: () => performance.now(),
  wall: fineWallClock(),
  random: () => Math.random(),
  every(ms, fn) {
    const h = setInterval(fn, ms);
    return () => clearInterval(h);
  },
  after(ms, fn) {
    // "As soon as possible" (the node's soon(), a chat publish) must not wait for a timer: Node
    // clamps setTimeout(0) to 1 ms, which would add a millisecond to every message sent on its own.
    if (ms <= 0) {
      const h = setImmediate(fn);
      return () => clearImmediate(h);
    }
    const h = setTimeout(fn, ms);
    return () => clearTimeout(h);
  },
};

/** A fake wall clock for tests and benches: a fixed offset plus a drift against the real one. */
export interface FakeClock {
  offsetMs: number;
  driftPpm: number;
}

/** Bounds on PEER_FAKE_CLOCK: a day of offset, 10 % of drift. */
export const FAKE_CLOCK_OFFSET_MS_MAX = 86_400_000;
export const FAKE_CLOCK_DRIFT_PPM_MAX = 100_000;

/** Parses "offsetMs,driftPpm" (PEER_FAKE_CLOCK, e.g. "-850,75"); throws a RangeError that says what to pass. */
export function parseFakeClock(spec: string): FakeClock {
  const parts = spec.split(',').map((s) => s.trim());
  const [offsetMs, driftPpm] = parts.map(Number);
  if (
    parts.length !== 2 ||
    parts.some((p) => p === '') ||
    !Number.isFinite(offsetMs) ||
    !Number.isFinite(driftPpm) ||
    Math.abs(offsetMs!) > FAKE_CLOCK_OFFSET_MS_MAX ||
    Math.abs(driftPpm!) > FAKE_CLOCK_DRIFT_PPM_MAX
  )
    throw new RangeError(
      `PEER_FAKE_CLOCK='${spec}' must be "offsetMs,driftPpm" with |offsetMs| <= ${FAKE_CLOCK_OFFSET_MS_MAX} and |driftPpm| <= ${FAKE_CLOCK_DRIFT_PPM_MAX}, e.g. "-850,75"`,
    );
  return { offsetMs: offsetMs!, driftPpm: driftPpm! };
}

/**
 * The same runtime with its wall clock offset by `offsetMs` and running `driftPpm` parts per
 * million fast (negative: slow) from now on. Only wall() changes: timeouts still use now().
 */
export function withFakeClock(base: Runtime, fake: FakeClock): Runtime {
  const start = base.now();
  return {
    now: () => base.now(),
    wall: () => base.wall() + fake.offsetMs + ((base.now() - start) * fake.driftPpm) / 1e6,
    random: () => base.random(),
    every: (ms, fn) => base.every(ms, fn),
    after: (ms, fn) => base.after(ms, fn),
  };
}

/** 16 hex digits from a random source: an id for a transfer or a run (seeded in the simulation). */
export function randomHexId(random: () => number): string {
  let s = '';
  for (let i = 0; i < 4; i++)
    s += Math.floor(random() * 0x10000)
      .toString(16)
      .padStart(4, '0');
  return s;
}
