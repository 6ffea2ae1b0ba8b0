/**
 * What file transfer needs from reliable delivery (ReliableDelivery is one): whole messages of any
 * size, multicast with acks or unicast with a result, and how many bytes wait to go on the wire,
 * so a sender reads the next chunk only when there is room (flow control counts bytes).
 */
import type { PeerId } from '../wire.js';
import type { MemberView } from '../protocol.js';

/** A whole message as a topic handler receives it. */
export interface FileDelivery {
  from: PeerId;
  fromName: string;
  /** This peer for a unicast message, null for a multicast one. */
  to: PeerId | null;
  /** The payload's bytes. */
  data: Buffer;
}

/** Who acked a multicast message, and who was expected but left, died, or refused it. */
export interface Settled {
  acked: PeerId[];
  gone: PeerId[];
  refused: Array<{ peer: PeerId; reason: string }>;
}

export type Sent = { ok: true } | { ok: false; reason: string };

export interface FileChannel {
  publish(topic: string, payload: string | Uint8Array, onSettled?: (s: Settled) => void): unknown;
  sendTo(to: PeerId, topic: string, payload: string | Uint8Array, done?: (r: Sent) => void): unknown;
  /** A handler that returns a promise defers the message's ack until it resolves (durable). */
  on(topic: string, handler: (d: FileDelivery) => unknown): unknown;
  /** Bytes published or sent but not yet on the wire. */
  queuedBytes(): number;
}

/** What file transfer reads of membership: whether a peer is still live, and its name. */
export interface MemberLookup {
  get(id: PeerId): MemberView | undefined;
}
