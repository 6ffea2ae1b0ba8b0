/**
 * The real runtime's wall clock: sub-millisecond resolution from the monotonic clock, kept within
 * the millisecond Date.now() reports (so clock sync is not capped by Date.now()'s truncation),
 * and following steps of the system clock.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fineWallClock, realRuntime } from '../../src/p2p/runtime.js';

/** A monotonic clock that advances a little at every read, and a system clock truncated to the ms. */
function fakeClocks(epochOffsetMs: number) {
  const c = { t: 5_000.123, offset: epochOffsetMs, step: 0.0007 };
  return {
    c,
    mono: () => (c.t += c.step),
    coarse: () => Math.floor(c.t + c.offset),
    truth: () => c.t + c.offset,
  };
}

describe('fineWallClock', () => {
  it('reads the true time to within microseconds, not to the millisecond', () => {
    const f = fakeClocks(1_700_000_000_000.25 + 0.2);
    const wall = fineWallClock(f.coarse, f.mono);
    for (let i = 0; i < 200; i++) {
      f.c.t += 0.37; // between readings
      const w = wall();
      expect(Math.abs(w - f.truth())).toBeLessThan(0.01);
      expect(w - Math.floor(w)).not.toBe(0);
    }
  });

  it('follows a step of the system clock forward and backward at the next reading', () => {
    const f = fakeClocks(1_700_000_000_000.25);
    const wall = fineWallClock(f.coarse, f.mono);
    wall();
    f.c.offset += 5_000.3;
    expect(Math.abs(wall() - f.truth())).toBeLessThan(0.01);
    f.c.offset -= 60_000.9;
    expect(Math.abs(wall() - f.truth())).toBeLessThan(0.01);
  });

  it('is never ahead of the true time, nor behind the millisecond reported before it, when a reading is preempted between its two clocks', () => {
    const f = fakeClocks(1_700_000_000_000.25);
    let seed = 7;
    const rand = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    // A loaded machine: the thread stops for up to 3 ms between reading one clock and the other.
    const coarse = () => {
      if (rand() < 0.3) f.c.t += rand() * 3;
      return f.coarse();
    };
    const wall = fineWallClock(coarse, f.mono);
    for (let i = 0; i < 2000; i++) {
      f.c.t += rand();
      if (i % 250 === 0) f.c.offset += (rand() - 0.5) * 100; // and the system clock steps now and then
      const before = f.coarse();
      const w = wall();
      expect(w, `reading ${i}`).toBeLessThanOrEqual(f.truth());
      expect(w, `reading ${i}`).toBeGreaterThanOrEqual(before);
    }
  });

  it('does not hang on a system clock that never ticks', () => {
    let t = 0;
    const wall = fineWallClock(
      () => 42,
      () => (t += 0.01),
    );
    expect(Math.abs(wall() - 42)).toBeLessThan(1);
  });

  it('realRuntime.wall stays within the millisecond Date.now() reports', () => {
    for (let i = 0; i < 1000; i++) {
      const before = Date.now();
      const w = realRuntime.wall();
      const after = Date.now();
      expect(w).toBeGreaterThanOrEqual(before);
      expect(w).toBeLessThan(after + 1);
    }
  });
});

describe('realRuntime.after', () => {
  it('runs a zero delay at once, not after a timer (setTimeout(0) waits at least 1 ms)', async () => {
    const order: string[] = [];
    // In an I/O callback an immediate always runs before any timer, so the order is fixed.
    await new Promise<void>((done) =>
      fs.stat('.', () => {
        setTimeout(() => {
          order.push('timer');
          done();
        }, 0);
        realRuntime.after(0, () => order.push('after(0)'));
      }),
    );
    expect(order).toEqual(['after(0)', 'timer']);
  });
});
