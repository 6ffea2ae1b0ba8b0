/**
 * This peer's next origin sequence number. A holder whose file lost entries it created (deleted by
 * hand) learns its own sequence numbers back from the others, so it does not reuse them.
 */
import type { PeerId } from '../wire.js';
import type { Entry } from './entry.js';

export class OwnSequence {
  private next = 1;

  constructor(private readonly self: PeerId) {}

  take(): number {
    return this.next++;
  }

  learn(entries: readonly Entry[]): void {
    for (const e of entries) if (e.origin === this.self && e.seq >= this.next) this.next = e.seq + 1;
  }
}
