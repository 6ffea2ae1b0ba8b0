/**
 * Acks after durability: a receiver acks a message only once the handlers that had to make it
 * durable say it is.
 *
 * A topic handler that must make a message durable before the sender may count it as received
 * returns a promise (e.g. of its group-committed write). The message is then acked (multicast
 * `rm.ack`, unicast `rm.ua`) only once every promise returned for it has resolved; being
 * cumulative, the ack also waits for every earlier message of the stream. Resolution only marks
 * the ack due; the next tick sends it through the context. A promise that rejects withholds the
 * ack of that message and of everything after it in its stream for good (counted in
 * `stats.writesFailed`): the sender sees the receiver as pending, then gone, never as having acked
 * what it may not hold. A handler that returns nothing is acked at delivery.
 */
import type { ReliableStats } from './shared.js';

/** One stream's delivered messages whose handlers' writes have not committed yet. */
export class PendingWrites {
  /** In increasing order: messages are delivered in sequence order. */
  private readonly seqs = new Set<number>();

  constructor(
    private readonly stats: ReliableStats,
    /** Marks the stream's ack due (the next tick sends it). */
    private readonly onDurable: () => void,
  ) {}

  /**
   * Keeps `seq` out of the stream's acks until every write resolved, then marks the ack due.
   * A rejected write leaves `seq` pending for good: nothing from it on is ever acked.
   */
  hold(seq: number, writes: Array<PromiseLike<unknown>>): void {
    this.seqs.add(seq);
    Promise.all(writes).then(
      () => {
        this.seqs.delete(seq);
        this.onDurable();
      },
      (err: unknown) => {
        this.stats.writesFailed++;
        this.stats.lastHandlerError = errorText(err);
      },
    );
  }

  /** Delivered messages whose writes are not durable yet. */
  get pending(): number {
    return this.seqs.size;
  }

  /** Highest sequence the stream may ack, `next` being its next to deliver: up to the first write not yet durable. */
  ackable(next: number): number {
    for (const seq of this.seqs) return seq - 1; // the first is the lowest
    return next - 1;
  }
}

export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && 'then' in v && typeof v.then === 'function';
}

/** What a thrown or rejected value says: its stack when it has one. */
export function errorText(err: unknown): string {
  const stack = typeof err === 'object' && err !== null && 'stack' in err ? err.stack : undefined;
  return typeof stack === 'string' ? stack : String(err);
}
