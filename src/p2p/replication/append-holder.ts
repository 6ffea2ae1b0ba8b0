/**
 * Appends, the holder's side: a holder appends an entry durably (fsync) unless it already holds
 * that identity, then unicasts `rp.ack` to the sender, so a retried or duplicated append is
 * acknowledged again but written once. A write that failed is not acknowledged: the sender hears
 * why (`rp.nak`), and its retry is written again.
 */
import type { ProtocolContext } from '../protocol.js';
import type { Origin } from '../kit/message.js';
import { holdersIn, type Directory } from './directory.js';
import { entryProblem, type Entry } from './entry.js';
import type { Holder } from './holder.js';
import { ACK, ACK_HOLDERS_MAX, REFUSAL } from './messages.js';

export class AppendHolder {
  constructor(
    private readonly ctx: ProtocolContext,
    private readonly dir: Directory,
    private readonly holder: Holder,
    private readonly reject: () => void,
  ) {}

  onAppend(from: Origin, entry: Entry): void {
    if (entryProblem(entry)) return this.reject();
    const { failure } = this.holder.store([entry], from.id, 'append');
    const id = { origin: entry.origin, seq: entry.seq };
    if (failure) return void this.ctx.send(from.address, ...REFUSAL.out({ ...id, reason: failure.kind }));
    const holders = holdersIn(this.dir)
      .map((h) => h.id)
      .slice(0, ACK_HOLDERS_MAX);
    this.ctx.send(from.address, ...ACK.out({ ...id, holders }));
  }
}
