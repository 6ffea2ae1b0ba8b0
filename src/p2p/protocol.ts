/**
 * The contract between the node and the protocol modules. A protocol is a state machine: the node
 * feeds it decoded envelopes and periodic ticks; it answers through the context. It opens no
 * socket, reads no clock of its own and starts no timer, so it runs unchanged over UDP and over
 * the simulated network.
 */
import type { AttachmentDecoder, Check, Envelope, PeerId } from './wire.js';
import type { Address } from './transport/transport.js';

export interface Self {
  readonly id: PeerId;
  readonly name: string;
  /** Grows at every start and at every refuted suspicion. */
  readonly incarnation: number;
}

export interface ProtocolContext {
  readonly self: Self;
  /** Monotonic milliseconds. */
  now(): number;
  /** Wall-clock milliseconds (display only; never for timeouts). */
  wall(): number;
  random(): number;
  /** The current Lamport time (read-only; the node ticks it on every send). */
  lamport(): number;
  /**
   * Ticks the Lamport clock for one message of ours and returns its time. A protocol that carries
   * several messages in one datagram (reliable delivery packs a burst) stamps each with its own
   * time when it is created, never guesses `lamport() + 1`: the envelope's time is one per datagram.
   */
  stamp(): number;
  /** Multicasts a message to the group; returns its Lamport time. See wire.ts for attachments. */
  broadcast(type: string, body: unknown, attachment?: Uint8Array): number;
  /** Unicasts a message to one address; returns its Lamport time. */
  send(to: Address, type: string, body: unknown, attachment?: Uint8Array): number;
  /**
   * Sends a frame (wire.ts: bulk data without an envelope) of a kind this protocol owns, to an
   * address or (null) the group: the header, then `parts` one after the other.
   */
  sendFrame(to: Address | null, kind: number, ...parts: Uint8Array[]): void;
  emit(event: PeerEvent): void;
  /**
   * Counts a message dropped because a counter in it would move ours past its bound (bounds.ts),
   * under the counter's name ('lamport', 'incarnation', 'term'...).
   */
  refuse(counter: string): void;
  /**
   * Runs `fn` once the current message or tick has been handled (or, called from outside both,
   * on the runtime's next turn): a protocol batches what one burst of calls produces without a
   * timer of its own. Dropped if the node stops first: a stopped peer sends nothing.
   */
  soon(fn: () => void): void;
  /**
   * Bytes a JSON body of message type `type` may take so that our envelope fits one datagram
   * (wire.ts: the envelope with our name and every number at its widest). Computed once per type.
   * A type with an attachment shares the same room with it (one more byte marks where it starts).
   */
  bodyBytesMax(type: string): number;
  /**
   * Asks for a tick at `at` (monotonic ms) at the latest: for a handler that creates a deadline
   * (an election started by a message, a round asked for), or that changed state another protocol
   * reads in its tick. The node keeps one timer at the earliest time asked (node.ts).
   */
  wakeAt(at: number): void;
  /**
   * Whether our group sends reach member `id` now, by multicast or by the unicast fan-out: a
   * member known only by unicast gets none until its address answered a nonce of ours (reach.ts).
   * A protocol that waits on a member's answer to a group send (the election) asks first. Absent
   * (a test's context): every member is reached.
   */
  groupReaches?(id: PeerId): boolean;
}

/**
 * A protocol module. Its messages are best declared with the kit (kit/message.ts: `messages` and
 * `onMessage` then come from one declaration per type, with typed bodies); a hand-written
 * `messages` record with an `onMessage` that switches on `env.t` is the same shape to the node.
 */
export interface Protocol {
  /** Message types this module owns, with the schema of each body. */
  readonly messages: Record<string, Check>;
  /** Types among `messages` that carry a binary attachment, with its decoder (wire.ts). */
  readonly attachments?: Record<string, AttachmentDecoder>;
  onMessage(env: Envelope, from: Address): void;
  /**
   * Frame kinds this module owns (wire.ts), each with its handler: `sender` is a live member and
   * `from` its address (the node checked both); `body` is what follows the header, unchecked.
   */
  readonly frames?: Record<number, (sender: PeerId, body: Buffer, from: Address) => void>;
  /**
   * Does what is due at `now`, and returns when it next needs a tick: an absolute time on the
   * `now()` clock (Infinity: only a message or a wakeAt() makes work for it). Returning nothing
   * asks for the profile's fixed cadence (`tickMs`), for modules with no deadlines of their own.
   * Ticks may come earlier than asked (another module's deadline), never much later.
   */
  tick(now: number): number | void;
  /** Called once before the node stops gracefully, while sending still works. */
  leave?(): void;
}

export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';

export interface MemberView {
  id: PeerId;
  name: string;
  address: Address;
  state: MemberState;
  incarnation: number;
  /** Milliseconds since we last heard from it. */
  lastSeenMs: number;
  /** Another live member has the same name. */
  duplicateName: boolean;
  tags: Record<string, string | number | boolean>;
}

/** What moved the local health score (membership.ts). */
export type HealthCause = 'heartbeat-loss' | 'stall' | 'recovering' | 'probe';

/**
 * Typed events a node emits, by kind. Each protocol module adds its own kinds by declaration
 * merging in its own file, so no module edits another:
 *   declare module './protocol.js' { interface PeerEventMap { elected: { term: number } } }
 */
export interface PeerEventMap {
  join: { member: MemberView };
  suspect: { member: MemberView; by: 'timeout' };
  alive: { member: MemberView; refuted: boolean };
  dead: { member: MemberView; silentMs: number };
  left: { member: MemberView };
  restart: { member: MemberView; previousIncarnation: number };
  /** `byName`: the suspecter's name, from its envelope (logs name peers, not ids). */
  refute: { incarnation: number; by: PeerId; byName: string };
  /** Our own health score changed (membership.ts, Lifeguard): timeouts are x(1 + score). */
  health: {
    score: number;
    previous: number;
    cause: HealthCause;
    /** Heartbeat loss measured over the members (0..1), null with fewer than 2 to measure. */
    heartbeatLoss: number | null;
    /** With cause 'stall': how late our tick was. */
    stalledMs?: number;
  };
  'duplicate-name': { name: string; ids: PeerId[] };
  'version-mismatch': { from: Address; version: number };
}

export type PeerEvent = { [K in keyof PeerEventMap]: { kind: K } & PeerEventMap[K] }[keyof PeerEventMap];
export type PeerEventOf<K extends keyof PeerEventMap> = { kind: K } & PeerEventMap[K];
