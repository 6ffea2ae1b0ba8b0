/**
 * What every role uses to talk: this peer as a sender, the coordinator as a target, and delivery
 * that goes through the network or, when the recipient is this peer, through a local inbox (a peer
 * may be its own coordinator, worker and submitter at once). The inbox is drained by the protocol
 * after each event, never inside a handler, so a role never re-enters itself.
 */
import type { PeerId } from '../wire.js';
import type { ProtocolContext } from '../protocol.js';
import type { Membership } from '../membership.js';
import type { Address } from '../transport/transport.js';
import { toWire, type TaskBodies, type TaskType } from './messages.js';
import type { CoordinatorView } from './types.js';

/** Where a message goes; address '' is this peer itself (local delivery). */
export interface Peer {
  id: PeerId;
  address: Address;
}

/** Who sent a message, with the name its envelope gave. */
export interface Sender extends Peer {
  name: string;
}

/** A message this peer posted to itself, waiting in the local inbox. */
export interface Posted<T extends TaskType = TaskType> {
  type: T;
  body: TaskBodies[T];
}

export class Link {
  readonly me: Sender;
  private readonly inbox: Posted[] = [];

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly membership: Membership,
    readonly view: CoordinatorView,
  ) {
    this.me = { id: ctx.self.id, name: ctx.self.name, address: '' };
  }

  /** Unicast, or a local delivery when the recipient is this peer. */
  post<T extends TaskType>(to: Peer, type: T, body: TaskBodies[T]): void {
    if (to.id === this.me.id) this.inbox.push({ type, body });
    else this.ctx.send(to.address, type, toWire(type, body));
  }

  broadcast<T extends TaskType>(type: T, body: TaskBodies[T]): void {
    this.ctx.broadcast(type, toWire(type, body));
  }

  /** The next message this peer posted to itself, if any. */
  takeLocal(): Posted | undefined {
    return this.inbox.shift();
  }

  /** The current coordinator and where to reach it, or null when there is none (or it is unknown). */
  coordinator(): Peer | null {
    const id = this.view.coordinator();
    if (!id) return null;
    if (id === this.me.id) return this.me;
    const m = this.membership.get(id);
    if (!m || m.state === 'dead' || m.state === 'left') return null;
    return { id, address: m.address };
  }
}
