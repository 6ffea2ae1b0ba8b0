/**
 * What reliable delivery hands to its callers, and the one message object it carries from the
 * wire to the handlers: message ids, deliveries, lost-message reports, ack statuses, and the
 * narrow view of membership the roles read.
 */
import type { PeerId } from '../wire.js';
import type { MemberView } from '../protocol.js';
import type { RefusalReason } from './fragments.js';

export interface MessageId {
  origin: PeerId;
  epoch: number;
  seq: number;
  /** Set for unicast messages: their sequence is per destination. */
  to?: PeerId;
  /** Set for messages of the bulk lane: its streams are numbered apart from the small lane's. */
  bulk?: true;
}

/**
 * A message id as one string: `origin/epoch/seq` or `origin/epoch/to/seq`, the sequence written
 * `b<seq>` in the bulk lane (its sequence 1 is not the small lane's: de-duplication by key must
 * tell them apart).
 */
export function messageKey(id: MessageId): string {
  const seq = id.bulk ? `b${id.seq}` : String(id.seq);
  return id.to ? `${id.origin}/${id.epoch}/${id.to}/${seq}` : `${id.origin}/${id.epoch}/${seq}`;
}

export interface Delivery {
  id: MessageId;
  /** messageKey(id). */
  key: string;
  from: PeerId;
  fromName: string;
  /** This peer for a unicast message, null for a multicast one. */
  to: PeerId | null;
  topic: string;
  /** The message as text: its bytes decoded as UTF-8. */
  payload: string;
  /** The message's bytes (a text message's UTF-8). */
  data: Buffer;
  /** Lamport time the sender stamped at publish. */
  lamport: number;
}

/**
 * A topic handler. Returning a promise (any thenable) defers the message's ack until it resolves
 * (the handler's durable write committed); any other result is ignored and the message is acked at
 * delivery. See "Acks after durability" above.
 */
export type DeliveryHandler = (d: Delivery) => unknown;

export type LostReason = 'evicted' | 'sender-gone' | 'sender-restarted' | 'timeout' | 'abandoned';

export interface LostReport {
  from: PeerId;
  fromName: string;
  epoch: number;
  /** First and last sequence of the run of lost messages (inclusive). */
  firstSeq: number;
  lastSeq: number;
  count: number;
  reason: LostReason;
  unicast: boolean;
}

export interface AckStatus {
  id: MessageId;
  /** Every member required to ack has acked. */
  complete: boolean;
  acked: PeerId[];
  /** Required members that died, left, restarted, or started listening after the message. */
  gone: PeerId[];
  /** Still live, not acked yet (only when the status is read before it settles). */
  pending: PeerId[];
  /** Required members that refused the message for their bounds (fragments.ts): they acked without holding it. */
  refused: Array<{ peer: PeerId; reason: RefusalReason }>;
}

/** Why sendTo() failed: the peer is gone, it never acked, our queue was full, or it refused the message. */
export type SendFailure = 'gone' | 'timeout' | 'busy' | RefusalReason;

export type SendResult = { ok: true; id: MessageId } | { ok: false; id: MessageId; reason: SendFailure };

declare module '../protocol.js' {
  interface PeerEventMap {
    lost: LostReport;
  }
}

export interface ReliableOptions {
  /** Which live members are expected to run this module and ack (default: every live member). */
  audience?: (m: MemberView) => boolean;
  /** This receiver refuses larger messages (default RELIABLE_MESSAGE_BYTES_MAX); their senders are told. */
  messageBytesMax?: number;
}

/** What the module needs from membership (kept narrow so tests can fake it). */
export interface MembershipView {
  live(): MemberView[];
  get(id: PeerId): MemberView | undefined;
  /** Grows when live() changes (membership.ts); without it, receivers are tracked by ticks only. */
  readonly version?: number;
  /** When an observer last probed (membership.ts): it overhears our stream, untracked. */
  readonly observerProbedAt?: number;
}

/**
 * One message as decoded from a datagram (held while out of order) and then handed to the
 * handlers: the same object, so a delivery allocates nothing beyond what decoding did. The
 * stream's fields are filled in at delivery. Unicast senders keep their pending messages as
 * StreamMessages too (the multicast send buffer keeps bytes).
 */
export class StreamMessage implements Delivery {
  from: PeerId = '';
  fromName = '';
  to: PeerId | null = null;
  epoch = 0;

  constructor(
    readonly seq: number,
    readonly topic: string,
    readonly payload: string,
    readonly lamport: number,
    /** The payload's UTF-8 bytes. */
    readonly bytes: number,
  ) {}

  /** Built only if a handler reads it. */
  get data(): Buffer {
    return Buffer.from(this.payload, 'utf8');
  }

  get id(): MessageId {
    return this.to === null
      ? { origin: this.from, epoch: this.epoch, seq: this.seq }
      : { origin: this.from, epoch: this.epoch, seq: this.seq, to: this.to };
  }

  /** Built only if a handler reads it (most never do). */
  get key(): string {
    return messageKey(this.id);
  }
}

/** Alive or suspect: a member we still send to and wait for. */
export function isLive(m: MemberView): boolean {
  return m.state === 'alive' || m.state === 'suspect';
}
