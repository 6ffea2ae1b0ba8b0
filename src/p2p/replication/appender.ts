/**
 * Appends, the appender's side. The appender multicasts `rp.app` with the entry (origin id, origin
 * sequence, Lamport time, text). A holder that appends writes it to its own replica first. An
 * observer (a one-shot `peer replicate`) unicasts the entry again every APPEND_RETRY_MS to every
 * holder that has not acknowledged; the command decides when enough acks arrived (acksSatisfied).
 * "All" means every holder the group knows of: a one-shot appender only hears live holders answer
 * its probe, so each ack also lists the holders its sender knows (alive, suspect or dead, not
 * left); a crashed holder thus keeps `--acks all` from succeeding until the others forget it
 * (membership's deadRetentionMs) or it comes back.
 *
 * An entry too large for one datagram (large.ts) is sent to each live holder as a reliable unicast
 * message instead of multicast, and retried the same way, one copy in flight per holder.
 */
import type { ProtocolContext } from '../protocol.js';
import type { PeerId } from '../wire.js';
import type { Body, Origin } from '../kit/message.js';
import { nameOrUnheard } from '../names.js';
import { WriteFailedError, type WriteFailureKind } from '../write-failure.js';
import { holdersIn, liveHoldersIn, type Directory } from './directory.js';
import { entryId, entryProblem, type Entry } from './entry.js';
import type { Holder } from './holder.js';
import { encodeLarge, fitsDatagram, type LargeOutbox } from './large.js';
import { ACK, APPEND, REFUSAL, wireEntry } from './messages.js';
import type { OwnSequence } from './own-sequence.js';

export const APPEND_RETRY_MS = 200;

interface AppendTrack {
  entry: Entry;
  acked: Set<PeerId>;
  /** Holders that said they could not store it (until they ack a retry). */
  refused: Map<PeerId, WriteFailureKind>;
  /** Holders some acker knows of, beyond those this peer heard itself. */
  known: Set<PeerId>;
  /** The names the ackers and refusers gave in their envelopes (they may leave the directory). */
  names: Map<PeerId, string>;
  lastSend: number;
  /** Too large for one datagram: sent to each holder as a reliable message. */
  large: boolean;
}

export interface AppendStatus {
  acked: PeerId[];
  /** The ackers by the names their acks carried, sorted. */
  confirmed: string[];
  known: number;
  missing: Array<{ id: PeerId; name: string }>;
  refused: Array<{ id: PeerId; name: string; reason: WriteFailureKind }>;
}

export class Appender {
  private readonly appends = new Map<string, AppendTrack>();

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly dir: Directory,
    private readonly ownSeqs: OwnSequence,
    private readonly holder: Holder | null,
    private readonly reject: () => void,
    /** Body bytes of our datagrams (our envelope, with our name, takes the rest). */
    private readonly bodyBytesMax: number,
    /** Where entries too large for a datagram go; null: this peer cannot send them. */
    private readonly large: LargeOutbox | null,
  ) {}

  /**
   * Appends a text. A holder writes it to its own replica first and multicasts it (a failed write
   * throws WriteFailedError and sends nothing); an observer multicasts it and retries to every
   * holder until acknowledged (see status).
   */
  append(text: string): Entry {
    const entry: Entry = {
      origin: this.ctx.self.id,
      seq: this.ownSeqs.take(),
      lamport: this.ctx.stamp(),
      text,
    };
    const problem = entryProblem(entry);
    if (problem) throw new RangeError(`cannot append: ${problem}`);
    const body = APPEND.toWire({ entry: wireEntry(entry) });
    const large = !fitsDatagram(body, this.bodyBytesMax);
    if (large && !this.large)
      throw new RangeError(
        'cannot append: the entry does not fit one datagram and this peer sends no large messages',
      );
    if (this.holder) {
      const { added, failure } = this.holder.sink.apply([entry]);
      if (failure) throw new WriteFailedError(failure);
      if (added.length)
        this.ctx.emit({ kind: 'replica-append', entries: added, from: this.ctx.self.id, via: 'local' });
    } else {
      this.appends.set(entryId(entry), {
        entry,
        acked: new Set(),
        refused: new Map(),
        known: new Set(),
        names: new Map(),
        lastSend: this.ctx.now(),
        large,
      });
    }
    if (!large) this.ctx.broadcast(APPEND.type, body);
    else for (const h of liveHoldersIn(this.dir)) this.sendLarge(h.id, entry);
    return entry;
  }

  private sendLarge(to: PeerId, entry: Entry): void {
    this.large!.offer(to, entryId(entry), () =>
      encodeLarge(APPEND.type, APPEND.toWire({ entry: wireEntry(entry) })),
    );
  }

  /**
   * Acks an observer's append has collected, the holders known that have not acked, and those of
   * them that said they cannot store it now (a full or failing disk).
   */
  status(id: string): AppendStatus | undefined {
    const t = this.appends.get(id);
    if (!t) return undefined;
    const names = new Map<PeerId, string>();
    const left = new Set<PeerId>();
    for (const m of this.dir.list()) {
      names.set(m.id, m.name);
      if (m.state === 'left') left.add(m.id);
    }
    const all = new Set([...holdersIn(this.dir).map((h) => h.id), ...t.known, ...t.acked]);
    for (const x of left) if (!t.acked.has(x)) all.delete(x);
    const nameOf = (x: PeerId) => nameOrUnheard(t.names.get(x) ?? names.get(x), x);
    const missing = [...all].filter((x) => !t.acked.has(x)).map((x) => ({ id: x, name: nameOf(x) }));
    const refused = [...t.refused].map(([x, reason]) => ({ id: x, name: nameOf(x), reason }));
    const confirmed = [...t.acked].map(nameOf).sort();
    return { acked: [...t.acked], confirmed, known: all.size, missing, refused };
  }

  /** Stops tracking (and retrying) an append once the caller is done with it. */
  settle(id: string): void {
    this.appends.delete(id);
  }

  onAck(from: Origin, ack: Body<typeof ACK>): void {
    const t = this.appends.get(entryId(ack));
    if (!t) return;
    // An ack says "durable on my disk": only a holder we know of can say it, or an id anyone makes
    // up would count towards --acks for a write nobody stored.
    if (!holdersIn(this.dir).some((h) => h.id === from.id)) return this.reject();
    for (const x of ack.holders) if (x !== this.ctx.self.id) t.known.add(x);
    if (t.acked.has(from.id)) return;
    t.acked.add(from.id);
    t.names.set(from.id, from.name);
    t.refused.delete(from.id);
    this.ctx.emit({ kind: 'replica-ack', id: entryId(t.entry), holder: from.id });
  }

  onRefusal(from: Origin, nak: Body<typeof REFUSAL>): void {
    const t = this.appends.get(entryId(nak));
    if (!t || t.acked.has(from.id) || t.refused.get(from.id) === nak.reason) return;
    t.refused.set(from.id, nak.reason);
    t.names.set(from.id, from.name);
    this.ctx.emit({ kind: 'replica-refused', id: entryId(t.entry), holder: from.id, reason: nak.reason });
  }

  /** Sends the appends due again; returns when the next one is due (Infinity: none tracked). */
  retry(now: number): number {
    if (this.appends.size === 0) return Infinity;
    const holders = liveHoldersIn(this.dir);
    let next = Infinity;
    for (const t of this.appends.values()) {
      if (now - t.lastSend >= APPEND_RETRY_MS) {
        t.lastSend = now;
        for (const h of holders) {
          if (t.acked.has(h.id)) continue;
          if (t.large) this.sendLarge(h.id, t.entry);
          else this.ctx.send(h.address, ...APPEND.out({ entry: wireEntry(t.entry) }));
        }
      }
      next = Math.min(next, t.lastSend + APPEND_RETRY_MS);
    }
    return next;
  }
}
