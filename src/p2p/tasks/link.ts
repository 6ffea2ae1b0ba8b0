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
import { toWire, type TaskMessage } from './messages.js';
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

export class Link {
  readonly me: Sender;
  private readonly inbox: TaskMessage[] = [];

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly membership: Membership,
    readonly view: CoordinatorView,
  ) {
    this.me = { id: ctx.self.id, name: ctx.self.name, address: '' };
  }

  /** Unicast, or a local delivery when the recipient is this peer. */
  post(to: Peer, m: TaskMessage): void {
    if (to.id === this.me.id) this.inbox.push(m);
    else {
      const { type, body } = toWire(m);
      this.ctx.send(to.address, type, body);
    }
  }

  broadcast(m: TaskMessage): void {
    const { type, body } = toWire(m);
    this.ctx.broadcast(type, body);
  }

  /** The next message this peer posted to itself, if any. */
  takeLocal(): TaskMessage | undefined {
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
