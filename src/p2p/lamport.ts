/**
 * Lamport logical clock (Lamport 1978), as seed 003 describes it: tick before every send, and on
 * receive take the maximum of the local and the received time, plus one. Every envelope carries
 * the sender's time, so every message is ordered consistently with causality.
 */
export class LamportClock {
  private t: number;

  constructor(start = 0) {
    if (!Number.isSafeInteger(start) || start < 0)
      throw new Error(`Lamport time must be a safe uint, got ${start}`);
    this.t = start;
  }

  get time(): number {
    return this.t;
  }

  /** Advances for a local event or a send; returns the time to stamp on it. */
  tick(): number {
    this.t = Math.min(this.t + 1, Number.MAX_SAFE_INTEGER);
    return this.t;
  }

  /** Merges a received time; the decoder has already bounded it to a safe integer. */
  merge(received: number): number {
    this.t = Math.min(Math.max(this.t, received) + 1, Number.MAX_SAFE_INTEGER);
    return this.t;
  }
}
