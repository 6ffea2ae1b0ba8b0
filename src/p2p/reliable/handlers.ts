/**
 * The callers' side of a receiver: topic handlers that get each delivered message, and handlers of
 * lost-message reports. A handler's result decides when the message is acked (durable.ts).
 */
import type { PeerId } from '../wire.js';
import type { ProtocolContext } from '../protocol.js';
import type { Delivery, DeliveryHandler, LostReason, LostReport } from './delivery.js';
import { errorText, isThenable } from './durable.js';
import type { ReliableStats } from './shared.js';

export class Handlers {
  private readonly byTopic = new Map<string, DeliveryHandler[]>();
  private readonly lost: Array<(r: LostReport) => void> = [];

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly stats: ReliableStats,
  ) {}

  on(topic: string, handler: DeliveryHandler): () => void {
    const list = this.byTopic.get(topic) ?? [];
    list.push(handler);
    this.byTopic.set(topic, list);
    return () =>
      this.byTopic.set(
        topic,
        (this.byTopic.get(topic) ?? []).filter((h) => h !== handler),
      );
  }

  onLost(handler: (r: LostReport) => void): () => void {
    this.lost.push(handler);
    return () => {
      const i = this.lost.indexOf(handler);
      if (i >= 0) this.lost.splice(i, 1);
    };
  }

  /** Runs the topic's handlers; returns the promises of those that defer the ack, if any. */
  dispatch(d: Delivery): Array<PromiseLike<unknown>> | null {
    this.stats.delivered++;
    let writes: Array<PromiseLike<unknown>> | null = null;
    const handlers = this.byTopic.get(d.topic);
    if (!handlers) return null;
    for (const h of handlers) {
      try {
        const r = h(d);
        if (isThenable(r)) (writes ??= []).push(r);
      } catch (err) {
        // A caller's bug must not stall the stream; tests assert this stays zero.
        this.stats.handlerErrors++;
        this.stats.lastHandlerError = errorText(err);
      }
    }
    return writes;
  }

  reportLost(
    from: PeerId,
    fromName: string,
    epoch: number,
    firstSeq: number,
    lastSeq: number,
    reason: LostReason,
    unicast: boolean,
    count = lastSeq - firstSeq + 1,
  ): void {
    const r: LostReport = { from, fromName, epoch, firstSeq, lastSeq, count, reason, unicast };
    this.stats.lost += count;
    for (const h of this.lost) h(r);
    this.ctx.emit({ kind: 'lost', ...r });
  }
}
