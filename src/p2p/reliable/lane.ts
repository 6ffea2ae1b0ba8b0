/**
 * One lane of reliable delivery: a multicast sender and receiver and a unicast sender and
 * receiver over the same kind of streams, and the routing of the lane's message types to them.
 * Two lanes run side by side (reliable-delivery.ts): the small lane for messages that fit one
 * datagram, the bulk lane for fragments of larger ones.
 */
import type { Envelope } from '../wire.js';
import type { Address } from '../transport/transport.js';
import { originOf, type LaneWire } from './messages.js';
import type { MulticastReceiver } from './receiver.js';
import type { MulticastSender } from './sender.js';
import type { Sequenced } from './sink.js';
import type { UnicastReceiver, UnicastSender } from './unicast.js';

export class Lane<M extends Sequenced> {
  constructor(
    readonly wire: LaneWire,
    readonly sender: MulticastSender,
    readonly receiver: MulticastReceiver<M>,
    readonly unicastOut: UnicastSender,
    readonly unicastIn: UnicastReceiver<M>,
    /** The messages of a data envelope, as its attachment decoder parsed them. */
    private readonly messagesOf: (env: Envelope) => M[],
  ) {}

  /** Handles `env` if it is of this lane; returns whether it was. */
  onMessage(env: Envelope, from: Address): boolean {
    const { wire } = this;
    const origin = originOf(env, from);
    const data = wire.DATA.of(env);
    if (data) return (this.receiver.onData(data, origin, this.messagesOf(env)), true);
    const unicast = wire.UNICAST.of(env);
    if (unicast) return (this.unicastIn.onMessage(unicast, origin, this.messagesOf(env)), true);
    const announce = wire.ANNOUNCE.of(env);
    if (announce) return (this.receiver.onAnnounce(announce, origin), true);
    const gone = wire.GONE.of(env);
    if (gone) return (this.receiver.onGone(gone, origin), true);
    const nack = wire.NACK.of(env);
    if (nack) return (this.sender.onNack(nack, from), true);
    const ack = wire.ACK.of(env);
    if (ack) return (this.sender.onAck(origin.id, ack, from), true);
    const unicastAck = wire.UNICAST_ACK.of(env);
    if (unicastAck) return (this.unicastOut.onAck(unicastAck, origin), true);
    return false;
  }

  tick(now: number): void {
    this.sender.tick(now);
    this.unicastOut.tick(now);
    this.receiver.tick(now);
    this.unicastIn.tick();
  }

  /** When this lane next needs a tick, if nothing is under way (null: at the fixed cadence). */
  quietUntil(): number | null {
    if (!this.unicastOut.quiet() || !this.unicastIn.quiet()) return null;
    const sender = this.sender.quietUntil();
    const receiver = this.receiver.quietUntil();
    return sender === null || receiver === null ? null : Math.min(sender, receiver);
  }
}
