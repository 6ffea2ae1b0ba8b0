/**
 * Messages too large for one datagram: an entry of up to ENTRY_TEXT_BYTES_MAX (an append, a push
 * or a fetched entry of anti-entropy), or a kv answer carrying a large value. They travel as
 * reliable unicast messages (reliable delivery's bulk lane: fragments, repaired by NACKs,
 * reassembled, delivered whole or reported lost whole), on one topic per protocol, each carrying
 * one message as `[type, body]`: the type and the body exactly as a datagram would carry them,
 * checked by the same declaration (messages.ts) and handled by the same role. So a small entry
 * still travels as it always did, in one datagram, and only what does not fit takes this way.
 *
 * Reliable delivery reassembles only what members send (a stranger could make it hold bytes), and
 * sends only to members: a one-shot client that writes or reads large values joins the group for
 * the time of the command rather than listening as an observer.
 *
 * Memory. The sender of many large messages (a responder asked for hundreds of 1 MiB entries, a
 * holder answering reads) hands the next one to reliable delivery only while less than
 * LARGE_QUEUED_BYTES_MAX waits for its windows, keeping the rest as references to entries it holds
 * anyway (LargeOutbox): what is in flight is bounded, however much was asked for.
 */
import type { PeerId } from '../wire.js';
import type { Check } from '../wire.js';
import type { Delivery, MessageId, SendResult } from '../reliable/index.js';
import { isLive } from '../reliable/delivery.js';
import type { Origin } from '../kit/message.js';
import type { MemberView } from '../protocol.js';
import { ENTRY_TEXT_BYTES_MAX } from './entry.js';

/** Replication's topic for them (kv's channel renames it, as it renames every replication type). */
export const LARGE_TOPIC = 'rp.large';
/**
 * A LargeOutbox hands reliable delivery its next message only while fewer bytes than this wait to
 * go on the wire: four 1 MiB entries, enough to keep the windows full on a LAN.
 */
export const LARGE_QUEUED_BYTES_MAX = 4 * 1024 * 1024;
/**
 * The largest message replication or kv sends this way: an entry of ENTRY_TEXT_BYTES_MAX whose
 * every byte is escaped in JSON (\u00XX, 6 bytes), and the message around it. A process that runs
 * only replication or kv refuses larger reliable messages (ReliableOptions.messageBytesMax), so
 * others' large traffic on the group (a file shared in chat) cannot make it hold more.
 */
export const LARGE_MESSAGE_BYTES_MAX = 6 * ENTRY_TEXT_BYTES_MAX + 1024;
/** Messages a LargeOutbox keeps waiting; beyond it an offer is dropped (its asker asks again). */
export const LARGE_OUTBOX_MAX = 4096;

/** What replication and kv need of reliable delivery (ReliableDelivery; a fake in tests). */
export interface LargeLane {
  sendTo(to: PeerId, topic: string, payload: string, done?: (r: SendResult) => void): MessageId;
  on(topic: string, handler: (d: Delivery) => unknown): () => void;
  queuedBytes(): number;
}

/** Whether a body (as on the wire) fits one datagram whose body may take `bodyBytesMax` bytes. */
export function fitsDatagram(wireBody: Record<string, unknown>, bodyBytesMax: number): boolean {
  return Buffer.byteLength(JSON.stringify(wireBody)) <= bodyBytesMax;
}

export function encodeLarge(type: string, wireBody: Record<string, unknown>): string {
  return JSON.stringify([type, wireBody]);
}

/**
 * The message a large payload carries, when it is one of `types` and its body passes that type's
 * check (the one the codec runs on a datagram's body); null otherwise (hostile until checked).
 */
export function decodeLarge(
  payload: string,
  checks: Readonly<Record<string, Check>>,
  types: readonly string[],
): { type: string; body: Record<string, unknown> } | null {
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return null;
  }
  if (!Array.isArray(v) || v.length !== 2) return null;
  const [type, body] = v as [unknown, unknown];
  if (typeof type !== 'string' || !types.includes(type)) return null;
  const check = checks[type];
  if (!check?.(body)) return null;
  return { type, body: body as Record<string, unknown> };
}

/**
 * Who sent a large message, as a datagram's handler would see it: only a live member (reliable
 * delivery reassembles nothing else; a small one is held to the same rule), at the address
 * membership has for it, and only to us (unicast); null otherwise.
 */
export function largeOrigin(d: Delivery, members: readonly MemberView[]): Origin | null {
  const member = members.find((x) => x.id === d.from && isLive(x));
  if (!member || d.to === null) return null;
  return {
    id: d.from,
    name: d.fromName,
    incarnation: member.incarnation,
    lamport: d.lamport,
    address: member.address,
  };
}

interface Job {
  to: PeerId;
  key: string;
  payload: () => string;
}

/**
 * Large messages waiting to be handed to reliable delivery (see Memory above). An offer of a
 * message already waiting or in flight to the same peer (a request resent while its answer is on
 * its way) is ignored: one copy travels.
 */
export class LargeOutbox {
  private readonly queue: Job[] = [];
  /** `to/key` of the messages waiting or in flight. */
  private readonly pending = new Set<string>();

  constructor(
    private readonly lane: LargeLane,
    private readonly topic: string,
  ) {}

  /** Queues a message for `to`; `payload` is built only when it is sent. */
  offer(to: PeerId, key: string, payload: () => string): void {
    const id = `${to}/${key}`;
    if (this.pending.has(id) || this.queue.length >= LARGE_OUTBOX_MAX) return;
    this.pending.add(id);
    this.queue.push({ to, key: id, payload });
    this.pump();
  }

  /** Whether no message waits for room (those in flight are reliable delivery's). */
  get idle(): boolean {
    return this.queue.length === 0;
  }

  /** Whether a message to `to` under `key` is waiting or in flight. */
  has(to: PeerId, key: string): boolean {
    return this.pending.has(`${to}/${key}`);
  }

  /** Sends what the queued-bytes bound allows; called on offers, completions and ticks. */
  pump(): void {
    while (this.queue.length > 0 && this.lane.queuedBytes() < LARGE_QUEUED_BYTES_MAX) {
      const job = this.queue.shift()!;
      this.lane.sendTo(job.to, this.topic, job.payload(), () => {
        this.pending.delete(job.key);
        this.pump();
      });
    }
  }
}
