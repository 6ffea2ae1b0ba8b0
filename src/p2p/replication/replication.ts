/**
 * Replication: appends acknowledged by every holder's disk, and anti-entropy that repairs the rest.
 * This class is the protocol the node runs; it holds one state machine per role and hands each
 * message to the role it is for.
 *
 * Roles. A holder keeps a replica (a ReplicaSink: a file in the CLI, memory in the simulation) and
 * advertises it in its membership tags (directory.ts). A one-shot appender or a reconcile
 * coordinator is an observer without a sink. Every peer runs
 *   - the appender (appender.ts): multicasts appends, retries them and counts acks;
 *   - the round coordinator (round-coordinator.ts), when a command starts a reconcile round;
 * and a holder also runs
 *   - the append holder (append-holder.ts): stores appends and acknowledges them;
 *   - the round holder (round-holder.ts): answers a round and rewrites its replica at its end;
 *   - the anti-entropy initiator and responder (anti-entropy-*.ts): one session at a time against
 *     a holder with another digest, and answers to the sessions others run against it.
 * Pure data: the entry model (entry.ts, line.ts, replica-set.ts), the IBLT (iblt.ts); the messages
 * are declared in messages.ts, what fits a datagram in sizing.ts.
 *
 * Every request is one datagram and every answer fits datagrams under DATAGRAM_PAYLOAD_BYTES_MAX,
 * but an entry too large for one: an append, a push or a fetched entry carrying one travels alone
 * as a reliable unicast message (large.ts), checked and handled as its datagram would be.
 * Bytes: O(1) when equal (digests ride on heartbeats); about 64 B x (differing level-1..3 buckets)
 * plus 14 B x 1.5 d for the IBLT plus the differing entries themselves (see docs/replication.md).
 *
 * Failure modes: loss, duplication and reordering are absorbed by idempotent appends, retries and
 * repeated sessions; a holder that crashed keeps its file and catches up through anti-entropy once
 * it is back; a partition heals the same way. Entries whose Lamport time or sequence is past its
 * bound (bounds.ts) are refused whole, whichever message carries them.
 */
import { DATAGRAM_PAYLOAD_BYTES_MAX, type PeerId } from '../wire.js';
import type { Protocol, ProtocolContext } from '../protocol.js';
import type { Body, Origin } from '../kit/message.js';
import type { Delivery } from '../reliable/index.js';
import { adoptable, loadable } from '../bounds.js';
import type { WriteFailureKind } from '../write-failure.js';
import { AntiEntropyInitiator, AE_INTERVAL_MS, AE_ROUND_INTERVAL_MS } from './anti-entropy-initiator.js';
import { AntiEntropyResponder } from './anti-entropy-responder.js';
import { AppendHolder } from './append-holder.js';
import { Appender, type AppendStatus } from './appender.js';
import { holdersIn, liveHoldersIn, type Directory, type HolderView } from './directory.js';
import { ENTRY_LAMPORT_AHEAD_MAX, type Entry } from './entry.js';
import { Holder } from './holder.js';
import { LargeOutbox, LARGE_TOPIC, decodeLarge, largeOrigin, type LargeLane } from './large.js';
import { APPEND, ENTRIES, MESSAGES, PUT, entryOf } from './messages.js';
import { OwnSequence } from './own-sequence.js';
import { RoundCoordinator, type RoundStatus } from './round-coordinator.js';
import { RoundHolder } from './round-holder.js';
import type { ReplicaSink } from './sink.js';

declare module '../protocol.js' {
  interface PeerEventMap {
    /** A holder wrote entries it did not have (from an append or a repair). */
    'replica-append': { entries: Entry[]; from: PeerId; via: 'append' | 'repair' | 'local' };
    /** A holder met another version of entries it held and took it (the preferred version). */
    'replica-replace': { entries: Entry[]; from: PeerId };
    'replica-ack': { id: string; holder: PeerId };
    /** A holder could not store an append of ours (its disk is full or failing); it may later. */
    'replica-refused': { id: string; holder: PeerId; reason: WriteFailureKind };
    'replica-sync': { peer: PeerId; fetched: number; pushed: number; ok: boolean; reason: string };
    'replica-rewrite': { round: number; sha256: string; entries: number };
    /** Digests differ but a session found no difference to move (see anti-entropy-initiator.ts). */
    'replica-conflict': { peer: PeerId };
  }
}

export interface ReplicationOptions {
  /** Present for a holder. */
  sink?: ReplicaSink;
  /** Bytes an encoded envelope adds around its body, for this peer's name (see envelopeOverhead). */
  envelopeBytes: number;
  /** The holder never starts sessions (it still answers them); the pair harness uses it. */
  passive?: boolean;
  /**
   * Reliable delivery, for entries too large for one datagram (large.ts). Without it such entries
   * are neither appended nor moved by anti-entropy.
   */
  large?: LargeLane;
}

/** The messages that carry entries, the only ones that can be too large for a datagram. */
const LARGE_TYPES = [APPEND.type, PUT.type, ENTRIES.type];

/** The roles only a holder runs. */
interface HolderRoles {
  holder: Holder;
  appends: AppendHolder;
  rounds: RoundHolder;
  initiator: AntiEntropyInitiator;
  responder: AntiEntropyResponder;
}

export class Replication implements Protocol {
  readonly messages = MESSAGES.checks;
  /** Each message to the role it is for; a holder's roles see only what a holder is sent. */
  readonly onMessage = MESSAGES.dispatch({
    'rp.app': (b, from) => this.onAppend(b, from),
    'rp.ack': (b, from) => this.appender.onAck(from, b),
    'rp.nak': (b, from) => this.appender.onRefusal(from, b),
    'rp.tq': (b, from) => this.served(from)?.responder.onTreeRequest(from, b),
    'rp.iq': (b, from) => this.served(from)?.responder.onIbltRequest(from, b),
    'rp.get': (b, from) => this.served(from)?.responder.onGet(from, b),
    'rp.put': (b, from) => this.onPut(b, from),
    'rp.tr': (b, from) => this.holding?.initiator.onReply(from, b.request, Buffer.from(b.hashes, 'base64')),
    'rp.ir': (b, from) => this.holding?.initiator.onReply(from, b.request, Buffer.from(b.cells, 'base64')),
    'rp.got': (b, from) => this.holding?.initiator.onReply(from, b.request, Buffer.alloc(0)),
    'rp.ent': (b, from) => this.onEntries(b, from, false),
    'rp.rnd': (b, from) => this.holding?.rounds.onPoll(from.address, b),
    'rp.fin': (b, from) => this.holding?.rounds.onFinish(from.address, b),
    'rp.st': (b, from) => this.coordinator.onStatus(from, b),
  });
  private readonly appender: Appender;
  private readonly coordinator: RoundCoordinator;
  private readonly holding: HolderRoles | null;
  private readonly outbox: LargeOutbox | null;
  private rejectedCount = 0;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly dir: Directory,
    private readonly opts: ReplicationOptions,
  ) {
    const reject = () => void this.rejectedCount++;
    const bodyBytesMax = DATAGRAM_PAYLOAD_BYTES_MAX - opts.envelopeBytes;
    const ownSeqs = new OwnSequence(ctx.self.id);
    const holder = opts.sink ? new Holder(ctx, dir, opts.sink, ownSeqs, reject) : null;
    const large = opts.large ?? null;
    const outbox = (this.outbox = large && new LargeOutbox(large, LARGE_TOPIC));
    this.holding = holder && {
      holder,
      appends: new AppendHolder(ctx, dir, holder, reject),
      rounds: new RoundHolder(ctx, dir, holder),
      initiator: new AntiEntropyInitiator(ctx, dir, holder, bodyBytesMax, reject, large),
      responder: new AntiEntropyResponder(ctx, holder, bodyBytesMax, reject, outbox),
    };
    this.appender = new Appender(ctx, dir, ownSeqs, holder, reject, bodyBytesMax, outbox);
    large?.on(LARGE_TOPIC, (d) => this.onLarge(d));
    this.coordinator = new RoundCoordinator(ctx, dir);
  }

  /** Datagrams dropped because their content was invalid past the schema (bad entry). */
  get rejected(): number {
    return this.rejectedCount;
  }

  /** Whether an anti-entropy session of ours is running. */
  get syncing(): boolean {
    return this.holding?.initiator.syncing ?? false;
  }

  /** Holders this peer knows of (any state but left), with their advertised digest. */
  holders(): HolderView[] {
    return holdersIn(this.dir);
  }

  liveHolders(): HolderView[] {
    return liveHoldersIn(this.dir);
  }

  /** See Appender.append. */
  append(text: string): Entry {
    const entry = this.appender.append(text);
    this.ctx.wakeAt(this.ctx.now());
    return entry;
  }

  /** See Appender.status. */
  appendStatus(id: string): AppendStatus | undefined {
    return this.appender.status(id);
  }

  /** Stops tracking (and retrying) an append once the caller is done with it. */
  settle(id: string): void {
    this.appender.settle(id);
  }

  /** Starts (or restarts) a reconcile round as coordinator; returns its id. */
  startRound(): number {
    const id = this.coordinator.start();
    this.ctx.wakeAt(this.ctx.now());
    return id;
  }

  /** The round's reports, and whether every live holder rewrote the same content. */
  roundStatus(): RoundStatus {
    return this.coordinator.status();
  }

  private onAppend(b: Body<typeof APPEND>, from: Origin): void {
    const entry = entryOf(b.entry);
    if (this.entriesBounded([entry])) this.holding?.appends.onAppend(from, entry);
  }

  private onPut(b: Body<typeof PUT>, from: Origin): void {
    const entries = b.entries.map(entryOf);
    if (this.entriesBounded(entries)) this.served(from)?.responder.onPut(from, b.request, entries);
  }

  private onEntries(b: Body<typeof ENTRIES>, from: Origin, large: boolean): void {
    const entries = b.entries.map(entryOf);
    const h = this.holding;
    if (!this.entriesBounded(entries) || !h) return;
    // Stored even outside a fetch of ours: what a holder sends us is a repair all the same.
    const { stored } = h.holder.storeRepair(entries, from.id);
    h.initiator.onFetched(from, b.request, stored, large);
  }

  /**
   * A large message (large.ts): checked as its datagram would be, then handled by the same role.
   * Only a live member can have sent it (reliable delivery reassembles nothing else; a small one,
   * which it does not reassemble, is held to the same rule); answers go to the address membership
   * has for it.
   */
  private onLarge(d: Delivery): void {
    const m = decodeLarge(d.payload, MESSAGES.checks, LARGE_TYPES);
    const from = largeOrigin(d, this.dir.list());
    if (!m || !from) return void this.rejectedCount++;
    const env = { t: m.type, b: m.body };
    const append = APPEND.of(env);
    if (append) return this.onAppend(append, from);
    const put = PUT.of(env);
    if (put) return this.onPut(put, from);
    const entries = ENTRIES.of(env);
    if (entries) this.onEntries(entries, from, true);
  }

  /**
   * A session request came from `from`: a holder notes that it is being served (its initiator then
   * leaves that peer alone for a while) and returns its roles; a peer that holds nothing ignores it.
   */
  private served(from: Origin): HolderRoles | null {
    const h = this.holding;
    h?.initiator.served(from.id, this.ctx.now());
    return h;
  }

  /**
   * Whether the entries a message carries are bounded (bounds.ts): Lamport times by
   * ENTRY_LAMPORT_AHEAD_MAX, and seqs below COUNTER_MAX, so that an origin tricked into learning its
   * own seq back (OwnSequence.learn) can still count. If not, the message is refused and counted.
   */
  private entriesBounded(entries: readonly Entry[]): boolean {
    for (const { seq, lamport } of entries) {
      if (!adoptable(this.ctx.lamport(), lamport, ENTRY_LAMPORT_AHEAD_MAX)) {
        this.ctx.refuse('lamport');
        return false;
      }
      if (!loadable(seq)) {
        this.ctx.refuse('sequence');
        return false;
      }
    }
    return true;
  }

  /**
   * Runs every role's timers; returns the earliest time one needs a tick again, or nothing (the
   * node's cadence) while a session runs or large messages wait for room. An idle holder wakes for
   * none of them: what gives a role work (a message, a member's tags, a call of ours) ticks us.
   */
  tick(now: number): number | void {
    const h = this.holding;
    let at = Infinity;
    let cadence = false;
    if (h) {
      at = Math.min(h.holder.tick(now), h.responder.expire(now));
      const interval = h.rounds.boosted(now) ? AE_ROUND_INTERVAL_MS : AE_INTERVAL_MS;
      const next = h.initiator.tick(now, interval, this.opts.passive ?? false);
      if (next === undefined) cadence = true;
      else at = Math.min(at, next);
    }
    at = Math.min(at, this.appender.retry(now), this.coordinator.poll(now));
    this.outbox?.pump();
    if (cadence || !(this.outbox?.idle ?? true)) return;
    return at;
  }
}
