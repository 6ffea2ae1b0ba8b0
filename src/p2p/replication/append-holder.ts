/**
 * Appends, the holder's side: a holder appends an entry durably (fsync) unless it already holds
 * that identity, then unicasts `rp.ack` to the sender, so a retried or duplicated append is
 * acknowledged again but written once. A write that failed is not acknowledged: the sender hears
 * why (`rp.nak`), and its retry is written again.
 */
import type { ProtocolContext } from '../protocol.js';
import type { Envelope } from '../wire.js';
import type { Address } from '../transport/transport.js';
import { holdersIn, type Directory } from './directory.js';
import { entryProblem } from './entry.js';
import type { Holder } from './holder.js';
import { ACK_HOLDERS_MAX, send, type Bodies } from './messages.js';

export class AppendHolder {
  constructor(
    private readonly ctx: ProtocolContext,
    private readonly dir: Directory,
    private readonly holder: Holder,
    private readonly reject: () => void,
  ) {}

  onAppend(env: Envelope, from: Address, { entry }: Bodies['rp.app']): void {
    if (entryProblem(entry)) return this.reject();
    const { failure } = this.holder.store([entry], env.i, 'append');
    const id = { origin: entry.origin, seq: entry.seq };
    if (failure) return send(this.ctx, from, 'rp.nak', { ...id, reason: failure.kind });
    const holders = holdersIn(this.dir)
      .map((h) => h.id)
      .slice(0, ACK_HOLDERS_MAX);
    send(this.ctx, from, 'rp.ack', { ...id, holders });
  }
}
