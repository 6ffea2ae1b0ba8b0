/**
 * Bounds on the counters a peer adopts from others: Lamport time, incarnation, election term,
 * clock-sync epoch, token generation, sequence numbers, join points.
 *
 * Any datagram can carry any safe integer. A counter adopted without a bound lets one forged or
 * corrupt datagram do lasting harm: ours jumps to near 2^53, where +1 is no longer exact, every
 * decoder refuses what we send next, and the value is saved and spread again after a restart. So
 * every adopted counter obeys two rules, checked with `adoptable()`:
 *  - a step: a value more than the counter's stated step ahead of ours is refused (dropped and
 *    counted in the node's `refused` stats), never adopted, not even in part;
 *  - headroom: a value within COUNTER_HEADROOM of Number.MAX_SAFE_INTEGER is refused whatever the
 *    step, so a counter we adopted can always go on counting by itself.
 * Values loaded from disk are checked the same way (`loadable()`): a saved value past the headroom
 * is damage, not state.
 */

/** Room always left above an adopted counter: 2^40 more steps before the safe-integer end. */
export const COUNTER_HEADROOM = 2 ** 40;
/** The largest value any counter may be adopted at or loaded with. */
export const COUNTER_MAX = Number.MAX_SAFE_INTEGER - COUNTER_HEADROOM;

/** Whether `theirs` may move our counter `ours`: within `step` ahead of it and below COUNTER_MAX. */
export function adoptable(ours: number, theirs: number, step: number): boolean {
  return Number.isSafeInteger(theirs) && theirs >= 0 && theirs <= COUNTER_MAX && theirs - ours <= step;
}

/** Whether a counter read from storage is a value we could have written ourselves. */
export function loadable(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= COUNTER_MAX;
}

/**
 * At most `perSecond` datagrams of one kind in each second (a window that starts at the first one
 * after the last window ended): what strangers' datagrams, under fresh ids or from spoofed
 * addresses, may draw from us, so that we reflect no flood at the addresses they name.
 */
export class SecondBudget {
  private since = -Infinity;
  private spent = 0;

  constructor(private readonly perSecond: number) {}

  /** Whether one more fits the second at `now`; takes it if so. */
  take(now: number): boolean {
    if (now - this.since >= 1000) {
      this.since = now;
      this.spent = 0;
    }
    if (this.spent >= this.perSecond) return false;
    this.spent++;
    return true;
  }
}
