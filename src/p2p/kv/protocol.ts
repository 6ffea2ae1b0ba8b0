/**
 * `peer kv`: a replicated key-value store built on the replication module.
 *
 * Writes. A put or delete is one replicated entry whose text encodes the operation
 * (ops.ts). It travels, is acknowledged durably per holder, and is repaired between
 * holders by the replication protocol itself (src/p2p/replication/), run here on its own
 * channel: the same Replication class, with its message types renamed `rp.*` -> `kvr.*` and its
 * membership tag `rp` -> `kv`, through a thin context and directory adapter. So a kv group and a
 * replica group share no entries, and one process may hold both; there is no second anti-entropy.
 * Each holder keeps the operation log and folds it into a table in its SQLite file, last writer
 * wins by (Lamport time, origin id, origin seq): every holder with the same log has the same
 * table, whatever order the operations arrived in.
 *
 * Reads. `kv.read {q, k}` is multicast; every holder answers `kv.val {q, w}` by unicast with its
 * winning version of the key (or null). The client resends by unicast every READ_RETRY_MS to live
 * holders that have not answered, and the command decides when enough answered (the --read
 * policy); the answer is the winning version among the answers. `kv.scan {q, a, n}` asks one
 * holder for the rows after key `a`; `kv.rows {q, r, m}` returns as many as fit one datagram (m:
 * more follow), and the client asks again after the last key (a new q per page, so a late
 * duplicate of an old page is never taken for the next one).
 *
 * Consistency. Holders converge: once they hold the same operations they hold the same table.
 * A write acknowledged by W holders and a read answered by R holders out of N intersect when
 * W + R > N (e.g. --acks majority with --read majority, or --acks all with any read), so the
 * read returns that write or a later one. Lamport times order a write after everything its
 * writer heard before it; a client listens to the holders' probe answers (which carry their
 * Lamport times) before writing, so a write made after another was acknowledged by a holder the
 * writer heard from wins over it. Concurrent writes are ordered arbitrarily but identically
 * everywhere.
 *
 * Large values. An operation, or an answer, too large for one datagram travels as a reliable
 * unicast message (../replication/large.ts): replication's on its channel's topic (`kvr.large`),
 * a holder's answers (`kv.val`, a page of one large row `kv.rows`) on KV_LARGE_TOPIC, through an
 * outbox that sends one copy however often the client asks again meanwhile.
 *
 * Failure modes. Loss, duplication and reordering: idempotent appends, retries and anti-entropy
 * (see ../replication/). A crashed holder keeps its SQLite log and catches up after a restart. A
 * read or scan whose holder does not answer is retried, then reported failed (SCAN_TRIES_MAX).
 */
import { DATAGRAM_PAYLOAD_BYTES_MAX, is, isPeerId, type Check, type Envelope, type PeerId } from '../wire.js';
import { f, message, messages, type Origin } from '../kit/message.js';
import type { MemberView, PeerEvent, Protocol, ProtocolContext } from '../protocol.js';
import type { Address } from '../transport/transport.js';
import type { Tags } from '../membership.js';
import {
  ENTRY_LAMPORT_AHEAD_MAX,
  LargeOutbox,
  REPLICA_TAG,
  Replication,
  decodeLarge,
  largeOrigin,
  encodeLarge,
  fitsDatagram,
  type Directory,
  type Entry,
  type LargeLane,
  type ReplicaSink,
} from '../replication/index.js';
import type { Delivery } from '../reliable/index.js';
import { adoptable } from '../bounds.js';
import type { WriteFailureKind } from '../write-failure.js';
import {
  KV_KEY_BYTES_MAX,
  KV_VALUE_BYTES_MAX,
  encodeOp,
  keyProblem,
  opProblem,
  valueProblem,
  wins,
  type KvOp,
  type KvVersion,
} from './ops.js';

/** Message types of the replication channel kv runs on: `kvr.app`, `kvr.ack`, ... */
export const KV_CHANNEL_PREFIX = 'kvr.';
/** Membership tag a kv holder advertises its log digest in ("<digest>:<count>"). */
export const KV_TAG = 'kv';
export const READ_RETRY_MS = 200;
export const SCAN_RETRY_MS = 250;
/** Unanswered sends of one scan page before the scan is reported failed. */
export const SCAN_TRIES_MAX = 8;
/** Reads and scans a client tracks at once; beyond it the oldest are dropped (never unbounded). */
export const KV_TRACKED_MAX = 4096;
/** Largest holder count an answer may report (membership never tracks more members). */
export const HOLDERS_COUNT_MAX = 4096;
/** Rows a scan returns at most per call (a dump pages through the table). */
export const KV_SCAN_ROWS_MAX = 64;
/** Topic of a holder's answers too large for one datagram (a large value). */
export const KV_LARGE_TOPIC = 'kv.large';

/** A version on the wire: [key, value or null (tombstone), lamport, origin, seq]. */
type WireRow = [string, string | null, number, string, number];

const isRow = (v: unknown): v is WireRow =>
  Array.isArray(v) &&
  v.length === 5 &&
  is.str(KV_KEY_BYTES_MAX, 1)(v[0]) &&
  (v[1] === null || is.str(KV_VALUE_BYTES_MAX)(v[1])) &&
  is.uint()(v[2]) &&
  isPeerId(v[3]) &&
  is.uint()(v[4]) &&
  v[4] >= 1;
/** A read's or a scan page's number, so an answer finds what it answers. */
const query = () => f.uint().wire('q');
const key = () => f.str(KV_KEY_BYTES_MAX, 1);

/** A client asks every holder for a key's winning version. */
export const READ = message('kv.read', { query: query(), key: key().wire('k') });
/** A holder's answer: its version of the key (null: never written) and how many holders it knows. */
export const VALUE = message('kv.val', {
  query: query(),
  version: f.nullable(f.guard(isRow)).wire('w'),
  holders: f.uint(HOLDERS_COUNT_MAX).wire('n'),
});
/** A client asks one holder for up to `pageRows` rows after the key `after` (null: from the start). */
export const SCAN = message('kv.scan', {
  query: query(),
  after: f.nullable(key()).wire('a'),
  pageRows: f.int(1, KV_SCAN_ROWS_MAX).wire('n'),
});
/** A page of rows in key order; `more`: the holder has rows after the last. */
export const ROWS = message('kv.rows', {
  query: query(),
  rows: f.array(f.guard(isRow), KV_SCAN_ROWS_MAX).wire('r'),
  more: f.bool().wire('m'),
});
/** kv's own messages; replication's, on the kv channel, are added to them in KeyValue. */
export const KV_MESSAGES = messages(READ, VALUE, SCAN, ROWS);

declare module '../protocol.js' {
  interface PeerEventMap {
    /** A kv holder stored operations it did not have (from a write, a repair, or itself). */
    'kv-apply': { entries: Entry[]; from: PeerId; via: 'append' | 'repair' | 'local' };
    'kv-ack': { id: string; holder: PeerId };
    /** A holder could not store a write of ours (its disk is full or failing). */
    'kv-refused': { id: string; holder: PeerId; reason: WriteFailureKind };
    'kv-sync': { peer: PeerId; fetched: number; pushed: number; ok: boolean; reason: string };
    /** Digests differ but a session found no difference (a hash collision; see replication.ts). */
    'kv-conflict': { peer: PeerId };
    /** A read got an answer (q), or a scan a page (q of the scan's first page). */
    'kv-answer': { q: number };
  }
}

/**
 * What a kv holder offers the protocol: the replica of the op log (a ReplicaSink) and reads of the
 * table it folds into (ops.ts); SQLite in the CLI (storage/kv.ts).
 */
export interface KvHolderStore extends ReplicaSink {
  get(key: string): KvVersion | undefined;
  /** Rows in key order after `after` (null: from the start), tombstones included. */
  scan(after: string | null, limit: number): KvVersion[];
}

export interface KeyValueOptions {
  /** Present for a holder. */
  store?: KvHolderStore;
  /** Bytes an encoded envelope adds around its body, for this peer's name (envelopeOverhead). */
  envelopeBytes: number;
  /** Reliable delivery, for operations and answers too large for one datagram (large values). */
  large?: LargeLane;
}

export interface ReadStatus {
  key: string;
  /** Holders that answered, and what each holds (null: never written). */
  answers: Map<PeerId, KvVersion | null>;
  /** Holders the group knows of (any state but left), the denominator of a read policy. */
  known: number;
  /** The winning version among the answers (null: none of them holds the key). */
  latest: KvVersion | null;
}

/** A scan of one holder's table, page by page; read its fields as it progresses. */
export interface ScanHandle {
  readonly id: number;
  readonly holder: PeerId;
  rows: KvVersion[];
  done: boolean;
  failed: string;
}

interface ReadTrack {
  key: string;
  answers: Map<PeerId, KvVersion | null>;
  /** The most holders any answerer knows of (a holder dead before this client started counts). */
  knownByAnswerers: number;
  lastSend: number;
}

interface ScanTrack {
  handle: ScanHandle;
  address: Address;
  after: string | null;
  pageRows: number;
  q: number;
  lastSend: number;
  tries: number;
}

export class KeyValue implements Protocol {
  readonly messages: Record<string, Check>;
  /** The replication protocol on the kv channel (appends, acks, anti-entropy). */
  readonly replication: Replication;
  /** Datagrams whose content was invalid past the schema. */
  rejected = 0;
  /** Requests a holder answered, by kind (for `peer kv serve --metrics`). */
  readonly served = { read: 0, scan: 0 };
  private readonly store: KvHolderStore | null;
  private readonly bodyBytesMax: number;
  private readonly outbox: LargeOutbox | null;
  private q = 0;
  private readonly reads = new Map<number, ReadTrack>();
  private readonly scans = new Map<number, ScanTrack>();

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly dir: Directory,
    opts: KeyValueOptions,
  ) {
    this.store = opts.store ?? null;
    this.bodyBytesMax = DATAGRAM_PAYLOAD_BYTES_MAX - opts.envelopeBytes;
    this.outbox = opts.large ? new LargeOutbox(opts.large, KV_LARGE_TOPIC) : null;
    opts.large?.on(KV_LARGE_TOPIC, (d) => this.onLarge(d));
    this.replication = new Replication(
      channelContext(ctx, (e) => this.relay(e)),
      channelDirectory(dir),
      {
        sink: this.store ?? undefined,
        envelopeBytes: opts.envelopeBytes,
        large: opts.large && channelLane(opts.large),
      },
    );
    const renamed: Record<string, Check> = {};
    for (const [t, check] of Object.entries(this.replication.messages)) renamed[toChannel(t)] = check;
    this.messages = { ...renamed, ...KV_MESSAGES.checks };
  }

  get isHolder(): boolean {
    return this.store !== null;
  }

  /** Holders this peer knows of (any state but left), with their advertised log digest. */
  holders(): Array<MemberView & { digest: string; count: number }> {
    return this.replication.holders();
  }

  liveHolders(): Array<MemberView & { digest: string; count: number }> {
    return this.replication.liveHolders();
  }

  // ---- writes ------------------------------------------------------------------------------

  /** Writes an operation; throws RangeError (with a one-line reason) on a bad key or value. */
  write(op: KvOp): Entry {
    const problem = opProblem(op);
    if (problem) throw new RangeError(problem);
    return this.replication.append(encodeOp(op));
  }

  writeStatus(id: string): ReturnType<Replication['appendStatus']> {
    return this.replication.appendStatus(id);
  }

  /** Stops retrying a write (the caller has what it needs). */
  settle(id: string): void {
    this.replication.settle(id);
  }

  // ---- reads -------------------------------------------------------------------------------

  /** Asks every holder for `key`; returns the read's id for readStatus. */
  read(key: string): number {
    const problem = keyProblem(key);
    if (problem) throw new RangeError(problem);
    const q = this.nextQ();
    this.bound(this.reads);
    this.reads.set(q, { key, answers: new Map(), knownByAnswerers: 0, lastSend: this.ctx.now() });
    this.ctx.broadcast(...READ.out({ query: q, key }));
    this.ctx.wakeAt(this.ctx.now());
    return q;
  }

  readStatus(q: number): ReadStatus | undefined {
    const t = this.reads.get(q);
    if (!t) return undefined;
    let latest: KvVersion | null = null;
    for (const v of t.answers.values()) if (v && (!latest || wins(v, latest))) latest = v;
    const known = Math.max(
      new Set([...this.holders().map((h) => h.id), ...t.answers.keys()]).size,
      t.knownByAnswerers,
    );
    return { key: t.key, answers: new Map(t.answers), known, latest };
  }

  endRead(q: number): void {
    this.reads.delete(q);
  }

  /** Pages through one holder's table (tombstones included), up to `pageRows` rows a page. */
  scan(holder: { id: PeerId; address: Address }, pageRows = KV_SCAN_ROWS_MAX): ScanHandle {
    const q = this.nextQ();
    const handle: ScanHandle = { id: q, holder: holder.id, rows: [], done: false, failed: '' };
    this.bound(this.scans);
    const t: ScanTrack = {
      handle,
      address: holder.address,
      after: null,
      pageRows: Math.max(1, Math.min(KV_SCAN_ROWS_MAX, Math.floor(pageRows))),
      q,
      lastSend: this.ctx.now(),
      tries: 1,
    };
    this.scans.set(q, t);
    this.sendScan(t);
    this.ctx.wakeAt(this.ctx.now());
    return handle;
  }

  endScan(h: ScanHandle): void {
    for (const [q, t] of this.scans) if (t.handle === h) this.scans.delete(q);
  }

  // ---- dispatch ----------------------------------------------------------------------------

  onMessage(env: Envelope, from: Address): void {
    if (env.t.startsWith(KV_CHANNEL_PREFIX))
      return this.replication.onMessage({ ...env, t: fromChannel(env.t) }, from);
    this.onOwn(env, from);
  }

  private readonly onOwn = KV_MESSAGES.dispatch({
    'kv.read': (b, from) => this.onRead(from, b.query, b.key),
    'kv.val': (b, from) => this.onValue(from, b.query, b.version, b.holders),
    'kv.scan': (b, from) => this.onScan(from, b.query, b.after, b.pageRows),
    'kv.rows': (b, from) => this.onRows(from, b.query, b.rows, b.more),
  });

  /** Replication's timers and our retries; see Replication.tick for what it returns. */
  tick(now: number): number | void {
    const replication = this.replication.tick(now);
    this.outbox?.pump();
    let at = this.retryReads(now);
    for (const t of [...this.scans.values()]) {
      if (t.handle.done) continue;
      if (now - t.lastSend >= SCAN_RETRY_MS) {
        if (t.tries >= SCAN_TRIES_MAX) {
          t.handle.failed = `no answer from the holder after ${t.tries} tries`;
          t.handle.done = true;
          this.scans.delete(t.q);
          this.ctx.emit({ kind: 'kv-answer', q: t.handle.id });
          continue;
        }
        t.tries++;
        this.sendScan(t);
      }
      at = Math.min(at, t.lastSend + SCAN_RETRY_MS);
    }
    if (replication === undefined || !(this.outbox?.idle ?? true)) return;
    return Math.min(at, replication);
  }

  // ---- holder side -------------------------------------------------------------------------

  private onRead(from: Origin, q: number, key: string): void {
    if (!this.store) return;
    if (keyProblem(key)) return void this.rejected++;
    this.served.read++;
    const v = this.store.get(key);
    // Itself included: the holders it knows (any state but left), like an ack's list.
    const holders = Math.min(HOLDERS_COUNT_MAX, this.holders().length + 1);
    this.answer(from, q, VALUE.type, VALUE.toWire({ query: q, version: v ? toRow(v) : null, holders }));
  }

  /** Sends an answer in a datagram, or, too large for one, as a reliable message (see the header). */
  private answer(to: Origin, q: number, type: string, body: Record<string, unknown>): void {
    if (fitsDatagram(body, this.bodyBytesMax)) this.ctx.send(to.address, type, body);
    else this.outbox?.offer(to.id, `${q}`, () => encodeLarge(type, body));
  }

  /**
   * A holder's answer too large for a datagram: checked as its datagram would be, taken only from
   * a live member (reliable delivery reassembles nothing else) and handled the same way.
   */
  private onLarge(d: Delivery): void {
    const m = decodeLarge(d.payload, KV_MESSAGES.checks, [VALUE.type, ROWS.type]);
    const from = largeOrigin(d, this.dir.list());
    if (!m || !from) return void this.rejected++;
    const env = { t: m.type, b: m.body };
    const value = VALUE.of(env);
    if (value) return this.onValue(from, value.query, value.version, value.holders);
    const rows = ROWS.of(env);
    if (rows) this.onRows(from, rows.query, rows.rows, rows.more);
  }

  private onScan(from: Origin, q: number, after: string | null, pageRows: number): void {
    if (!this.store) return;
    this.served.scan++;
    const rows = this.store.scan(after, pageRows);
    // A page carries at least one row (one too large for a datagram goes alone, as a reliable
    // message); `m` says whether the holder has more after the last.
    let bytes = Buffer.byteLength(JSON.stringify(ROWS.toWire({ query: q, rows: [], more: false })));
    const out: WireRow[] = [];
    for (const v of rows) {
      const w = toRow(v);
      const size = Buffer.byteLength(JSON.stringify(w)) + 1;
      if (out.length > 0 && bytes + size > this.bodyBytesMax) break;
      bytes += size;
      out.push(w);
    }
    const more = out.length < rows.length || rows.length === pageRows;
    this.answer(from, q, ROWS.type, ROWS.toWire({ query: q, rows: out, more }));
  }

  // ---- client side -------------------------------------------------------------------------

  private onValue(from: Origin, q: number, version: WireRow | null, holders: number): void {
    const t = this.reads.get(q);
    if (!t || (version && version[0] !== t.key)) return;
    // Answers count towards a read policy and the winning version: only from holders we know of.
    if (!this.holders().some((h) => h.id === from.id)) return void this.rejected++;
    if (version && !this.versionBounded(version)) return;
    t.answers.set(from.id, version ? fromRow(version) : null);
    t.knownByAnswerers = Math.max(t.knownByAnswerers, holders);
    this.ctx.emit({ kind: 'kv-answer', q });
  }

  private onRows(from: Origin, q: number, page: WireRow[], more: boolean): void {
    const t = this.scans.get(q);
    if (!t || from.id !== t.handle.holder || !page.every((w) => this.versionBounded(w))) return;
    const rows = page.map(fromRow);
    // Rows come in key order (SQLite's: UTF-8 bytes) after `after`; anything else is a confused
    // or hostile holder, and taking it could page forever.
    let prev = t.after;
    for (const r of rows) {
      if (prev !== null && Buffer.compare(Buffer.from(r.key), Buffer.from(prev)) <= 0)
        return void this.rejected++;
      prev = r.key;
    }
    t.handle.rows.push(...rows);
    this.scans.delete(q);
    if (more && rows.length > 0) {
      t.after = rows[rows.length - 1]!.key;
      t.q = this.nextQ();
      t.tries = 1;
      this.scans.set(t.q, t);
      this.sendScan(t);
    } else t.handle.done = true;
    this.ctx.emit({ kind: 'kv-answer', q: t.handle.id });
  }

  /**
   * A version a holder answers with is one of its entries, so it is bounded like one
   * (ENTRY_LAMPORT_AHEAD_MAX): later than our clock, which merged the holder's, it is forged and
   * would win over every real version. Refused and counted otherwise. Its value is held to
   * KV_VALUE_BYTES_MAX in bytes (the schema counts characters, up to 3 bytes each in UTF-8).
   */
  private versionBounded(w: WireRow): boolean {
    if (w[1] !== null && valueProblem(w[1])) {
      this.rejected++;
      return false;
    }
    if (adoptable(this.ctx.lamport(), w[2], ENTRY_LAMPORT_AHEAD_MAX)) return true;
    this.ctx.refuse('lamport');
    return false;
  }

  private sendScan(t: ScanTrack): void {
    t.lastSend = this.ctx.now();
    this.ctx.send(t.address, ...SCAN.out({ query: t.q, after: t.after, pageRows: t.pageRows }));
  }

  /** Asks again the holders that have not answered a read; returns when the next one is due. */
  private retryReads(now: number): number {
    if (this.reads.size === 0) return Infinity;
    const live = this.liveHolders();
    let next = Infinity;
    for (const [q, t] of this.reads) {
      if (now - t.lastSend >= READ_RETRY_MS) {
        t.lastSend = now;
        for (const h of live)
          if (!t.answers.has(h.id)) this.ctx.send(h.address, ...READ.out({ query: q, key: t.key }));
      }
      next = Math.min(next, t.lastSend + READ_RETRY_MS);
    }
    return next;
  }

  private nextQ(): number {
    this.q = (this.q + 1) % Number.MAX_SAFE_INTEGER;
    return this.q;
  }

  private bound<V>(m: Map<number, V>): void {
    while (m.size >= KV_TRACKED_MAX) m.delete(m.keys().next().value!);
  }

  /** Replication's events, renamed for kv (a process may also run `peer replicate`). */
  private relay(e: PeerEvent): void {
    switch (e.kind) {
      case 'replica-append':
        return this.ctx.emit({ kind: 'kv-apply', entries: e.entries, from: e.from, via: e.via });
      case 'replica-replace':
        return this.ctx.emit({ kind: 'kv-apply', entries: e.entries, from: e.from, via: 'repair' });
      case 'replica-ack':
        return this.ctx.emit({ kind: 'kv-ack', id: e.id, holder: e.holder });
      case 'replica-refused':
        return this.ctx.emit({ kind: 'kv-refused', id: e.id, holder: e.holder, reason: e.reason });
      case 'replica-sync':
        return this.ctx.emit({ ...e, kind: 'kv-sync' });
      case 'replica-conflict':
        return this.ctx.emit({ kind: 'kv-conflict', peer: e.peer });
      case 'replica-rewrite':
        return; // kv holders are not rewritten (no file order); no coordinator asks them.
      default:
        return this.ctx.emit(e);
    }
  }
}

function toChannel(type: string): string {
  return KV_CHANNEL_PREFIX + type.slice(type.indexOf('.') + 1);
}

function fromChannel(type: string): string {
  return 'rp.' + type.slice(KV_CHANNEL_PREFIX.length);
}

/** The node's context with replication's message types moved to the kv channel. */
function channelContext(ctx: ProtocolContext, emit: (e: PeerEvent) => void): ProtocolContext {
  return {
    self: ctx.self,
    now: () => ctx.now(),
    wall: () => ctx.wall(),
    random: () => ctx.random(),
    lamport: () => ctx.lamport(),
    stamp: () => ctx.stamp(),
    broadcast: (type, body) => ctx.broadcast(toChannel(type), body),
    send: (to, type, body) => ctx.send(to, toChannel(type), body),
    sendFrame: (to, kind, ...parts) => ctx.sendFrame(to, kind, ...parts),
    emit,
    refuse: (counter) => ctx.refuse(counter),
    soon: (fn) => ctx.soon(fn),
    bodyBytesMax: (type) => ctx.bodyBytesMax(toChannel(type)),
    wakeAt: (at) => ctx.wakeAt(at),
  };
}

/** Reliable delivery with replication's topic moved to the kv channel (`kvr.large`). */
function channelLane(lane: LargeLane): LargeLane {
  return {
    sendTo: (to, topic, payload, done) => lane.sendTo(to, toChannel(topic), payload, done),
    on: (topic, handler) => lane.on(toChannel(topic), handler),
    queuedBytes: () => lane.queuedBytes(),
  };
}

/**
 * Membership as replication sees it on the kv channel: a member's `kv` tag shown as `rp`, and
 * replication's `rp` tag written as ours `kv`, leaving every other tag (a real `rp` included) alone.
 */
function channelDirectory(dir: Directory): Directory {
  return {
    list: () =>
      dir.list().map((m): MemberView => {
        const kv = m.tags[KV_TAG];
        const tags: Tags = kv === undefined ? {} : { [REPLICA_TAG]: kv };
        return { ...m, tags };
      }),
    get ownTags(): Tags {
      return {};
    },
    setTags: (t: Tags) => {
      const v = t[REPLICA_TAG];
      if (v !== undefined) dir.setTags({ ...dir.ownTags, [KV_TAG]: v });
    },
  };
}

function toRow(v: KvVersion): WireRow {
  return [v.key, v.value, v.lamport, v.origin, v.seq];
}

function fromRow(w: WireRow): KvVersion {
  return { key: w[0], value: w[1], lamport: w[2], origin: w[3], seq: w[4] };
}
