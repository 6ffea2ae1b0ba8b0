/**
 * Replication: appends acknowledged by every holder's disk, and anti-entropy that repairs the rest.
 *
 * Roles. A holder keeps a replica (a ReplicaSink: a file in the CLI, memory in the simulation) and
 * advertises it in its membership tags as `rp = "<digest>:<count>"`, so every peer learns who holds
 * a replica and what it holds from heartbeats it hears anyway. A one-shot appender or a reconcile
 * coordinator is an observer without a sink.
 *
 * Appends. The appender multicasts `rp.app` with the entry (origin id, origin sequence, Lamport
 * time, text). A holder appends it durably (fsync) unless it already holds that identity, then
 * unicasts `rp.ack` to the sender, so a retried or duplicated append is acknowledged again but
 * written once. The appender unicasts the entry again every APPEND_RETRY_MS to every holder that
 * has not acknowledged; the command decides when enough acks arrived (acksSatisfied). "All" means
 * every holder the group knows of: a one-shot appender only hears live holders answer its probe,
 * so each ack also lists the holders its sender knows (alive, suspect or dead, not left); a
 * crashed holder thus keeps `--acks all` from succeeding until the others forget it
 * (membership's deadRetentionMs) or it comes back.
 *
 * Anti-entropy (pull with push-back). Every AE_INTERVAL_MS a holder that sees another holder
 * advertise a digest unlike its own runs one session against it (A = initiator, B = responder;
 * B keeps no session state beyond a short cache of the IBLT it built):
 *   1. Estimate the difference with the digest tree (ReplicaSet.tree: 16^L buckets per level, each
 *      the XOR of the content hashes in it). A fetches B's level-1 bucket hashes (16 x 4 bytes); if
 *      most differ (TREE_SATURATION_FRACTION) it fetches the children of the differing buckets one
 *      level down, up to level 3 (4,096 buckets). d^ = -N ln(1 - x/N) for x differing of N.
 *   2. Find the difference exactly with an invertible Bloom lookup table (Eppstein et al., "What's
 *      the difference?", SIGCOMM 2011) of m = 1.5 d^ + IBLT_CELLS_MIN cells over the content
 *      hashes of the lines (so two versions of one identity differ too): A fetches B's cells in
 *      chunks, subtracts its own and peels. A failed peel doubles m.
 *   3. A fetches the lines it lacks (`rp.get` by content hash -> `rp.ent`), then pushes the ones B
 *      lacks (`rp.put` -> `rp.got` once B wrote them), both windowed and resent like every
 *      request. Pushing after fetching skips a version of ours that lost to a fetched one.
 * Every request is one datagram and every answer fits datagrams under DATAGRAM_PAYLOAD_BYTES_MAX;
 * at most SESSION_WINDOW_REQUESTS are outstanding (flow control); a request unanswered for
 * REQUEST_TIMEOUT_MS is sent again, and REQUEST_TRIES_MAX failures end the session (B gone).
 * Bytes: O(1) when equal (digests ride on heartbeats); about 64 B x (differing level-1..3 buckets)
 * plus 14 B x 1.5 d for the IBLT plus the differing entries themselves (see docs/replication.md).
 *
 * Hash collisions. Bucket hashes on the wire are one 32-bit lane of the 64-bit XOR; sessions
 * alternate lanes, so a collision that hides a difference in one session is seen by the next. IBLT
 * keys are 64-bit content hashes; a pure cell is recognised by a separate 32-bit check hash.
 *
 * Conflicts. Entries are immutable, so two versions of one identity come only from a hand-edited
 * file (or a reused origin id). Every holder keeps the preferred version (later Lamport time, then
 * greater text: storage/replica.ts preferred()), whatever order it meets them in, so they still
 * converge; a replacement is in memory at once and written by one atomic rewrite once
 * replacements stop arriving (FLUSH_QUIET_MS). A crash before that leaves the old version in the
 * file, and anti-entropy replaces it again.
 *
 * Online reconcile. A coordinator polls holders with `rp.rnd`; each answers `rp.st` (count at the
 * round's start, count and digest now) and, while a round is fresh, runs anti-entropy more often.
 * When every live holder reports one digest the coordinator sends `rp.fin`; a holder whose digest
 * is still that one rewrites its replica in canonical order and answers with the file's SHA-256.
 *
 * Failure modes: loss, duplication and reordering are absorbed by idempotent appends, retries and
 * repeated sessions; a holder that crashed keeps its file and catches up through anti-entropy once
 * it is back; a partition heals the same way. A session that decodes no difference while the
 * digests differ (a 64-bit collision, or a bug) emits `replica-conflict` rather than hide it.
 */
import {
  DATAGRAM_PAYLOAD_BYTES_MAX,
  Codec,
  PROTOCOL_VERSION,
  is,
  isPeerId,
  type Check,
  type Envelope,
  type PeerId,
} from '../wire.js';
import type { MemberView, Protocol, ProtocolContext } from '../protocol.js';
import { adoptable, loadable } from '../bounds.js';
import { nameOrUnheard } from '../names.js';
import type { Address } from '../transport/transport.js';
import type { Tags } from '../membership.js';
import {
  DIGEST_FANOUT,
  DIGEST_LEVELS,
  ENTRY_TEXT_JSON_BYTES_MAX,
  ReplicaSet,
  contentDigest,
  hash64,
  entryId,
  entryProblem,
  formatLine,
  parseLine,
  parseReplica,
  serialize,
  type ApplyResult,
  type Entry,
} from '../../storage/replica.js';
import { WriteFailedError, type WriteFailureKind } from '../write-failure.js';
import type { SimDisk } from '../../../test/support/sim-disk.js';

/** Membership tag a holder advertises: "<digest>:<count>". */
export const REPLICA_TAG = 'rp';
/** How often a holder looks for a holder with another digest and starts a session. */
export const AE_INTERVAL_MS = 400;
/** Replacements (conflict winners) are written once none arrived for this long... */
export const FLUSH_QUIET_MS = 500;
/** ...or at the latest this long after the first one. */
export const FLUSH_DELAY_MAX_MS = 10_000;
/** How long the holder with the larger id waits before it starts a session itself. */
export const AE_DEFER_MS = 2_000;
/**
 * A holder does not start a session against a holder that sent it a session request this recently:
 * that one is running a session against it already, which repairs both sides. Without this, a
 * session longer than AE_DEFER_MS (a large replica on a slow or busy host) ran twice at once and
 * moved the difference twice. A stalled initiator gives up after REQUEST_TRIES_MAX tries of
 * REQUEST_TIMEOUT_MS each, so this is about that long.
 */
export const AE_SERVED_QUIET_MS = 1_500;
/** Anti-entropy period while a reconcile round is fresh (peer reconcile waits on it). */
export const AE_ROUND_INTERVAL_MS = 100;
/** How long after the last `rp.rnd` a holder keeps the faster period. */
export const ROUND_BOOST_MS = 5_000;
/** Least time between two digest tag updates (each sends a heartbeat at once). */
export const DIGEST_TAG_INTERVAL_MS = 100;
export const REQUEST_TIMEOUT_MS = 250;
export const REQUEST_TRIES_MAX = 6;
export const SESSION_WINDOW_REQUESTS = 8;
export const GET_KEYS_PER_REQUEST_MAX = 48;
export const APPEND_RETRY_MS = 200;
/** Holder ids an ack lists (the holders its sender knows), so an appender learns of dead ones. */
export const ACK_HOLDERS_MAX = 24;
/** How often a reconcile coordinator polls every holder. */
export const ROUND_POLL_MS = 150;
/**
 * Past this fraction of differing buckets a level says too little about the size of the difference
 * (x/N = 0.8 means d is about 1.6 N), so the session looks one level deeper.
 */
export const TREE_SATURATION_FRACTION = 0.8;
export const IBLT_HASHES = 3;
export const IBLT_CELLS_MIN = 24;
export const IBLT_CELLS_MAX = 1 << 21;
/** Bytes of one IBLT cell on the wire: count mod 2^16, two key lanes, check hash. */
export const IBLT_CELL_BYTES = 14;
/** IBLT cells one `rp.iq` may ask for (fewer when the responder's answer would not fit a datagram). */
export const IBLT_CELLS_PER_REQUEST_MAX = 256;
/** IBLTs a responder keeps built (one per session it serves), and their total cells (16 B each). */
export const IBLT_CACHE_MAX = 16;
export const IBLT_CACHE_CELLS_MAX = 1 << 22;
export const IBLT_CACHE_MS = 10_000;
/** Rounds a holder remembers (entries before, rewrite result). */
export const ROUNDS_REMEMBERED_MAX = 16;

/**
 * How far an entry's Lamport time may be ahead of our clock when it arrives: not at all. An entry
 * is never newer than the clock of the peer that sends it (an appender stamps it with the time of
 * its send, a holder's clock is above every entry it holds, even after a restart), and ours has
 * merged that clock before we see the entry. A later one is forged: it would win every
 * last-writer-wins comparison (kv) for good, and a holder's clock restarts above its entries.
 */
export const ENTRY_LAMPORT_AHEAD_MAX = 0;

const HASH_BYTES = 4;
const KEY_BYTES = 8;
const DIGEST_TAG_RE = /^[0-9a-f]{16}:[0-9]{1,16}$/;
const B64_CHARS_MAX = DATAGRAM_PAYLOAD_BYTES_MAX;

/** An entry on the wire: [origin, seq, lamport, text]. */
type WireEntry = [string, number, number, string];

const wireEntry: Check = (v) =>
  Array.isArray(v) &&
  v.length === 4 &&
  isPeerId(v[0]) &&
  is.uint()(v[1]) &&
  (v[1] as number) >= 1 &&
  is.uint()(v[2]) &&
  is.str(ENTRY_TEXT_JSON_BYTES_MAX)(v[3]);
const Q = is.uint();
const B64 = is.str(B64_CHARS_MAX);

const MESSAGES = {
  'rp.app': is.object({ e: wireEntry }),
  'rp.ack': is.object({ o: is.peerId(), s: is.uint(), k: is.array(is.peerId(), ACK_HOLDERS_MAX) }),
  /** A holder could not store an append (r: why, as a word: remote text never reaches a terminal). */
  'rp.nak': is.object({ o: is.peerId(), s: is.uint(), r: is.literal('full', 'io', 'other') }),
  'rp.tq': is.object({
    q: Q,
    ln: is.literal(0, 1),
    lv: is.int(1, DIGEST_LEVELS),
    p: is.array(is.uint(), 64),
  }),
  'rp.tr': is.object({ q: Q, h: B64 }),
  'rp.iq': is.object({
    q: Q,
    z: Q,
    m: is.int(IBLT_CELLS_MIN, IBLT_CELLS_MAX),
    f: Q,
    n: is.int(1, IBLT_CELLS_PER_REQUEST_MAX),
  }),
  'rp.ir': is.object({ q: Q, c: B64 }),
  'rp.get': is.object({ q: Q, k: B64 }),
  'rp.ent': is.object({ q: Q, e: is.array(wireEntry, 64) }),
  'rp.put': is.object({ q: Q, e: is.array(wireEntry, 64) }),
  'rp.got': is.object({ q: Q }),
  'rp.rnd': is.object({ r: Q }),
  'rp.st': is.object({
    r: Q,
    n: Q,
    h: is.str(16, 16),
    b: Q,
    d: is.str(64),
    k: is.array(is.peerId(), ACK_HOLDERS_MAX),
  }),
  'rp.fin': is.object({ r: Q, h: is.str(16, 16) }),
} satisfies Record<string, Check>;

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
    /** Digests differ but a session found no difference to move (see the header). */
    'replica-conflict': { peer: PeerId };
  }
}

/** Where a holder keeps its entries. */
export interface ReplicaSink {
  readonly set: ReplicaSet;
  /**
   * Adds new identities, durably before it returns; replaces a held version that loses a conflict
   * (preferred()) in memory, written by the next flush(). A write that failed comes back as
   * `failure` and leaves `set` as it was: what is not durable is never held (nor acknowledged,
   * nor in the digest anti-entropy compares).
   */
  apply(entries: readonly Entry[]): ApplyResult;
  /** Writes pending replacements (an atomic rewrite of a file); false when that failed. */
  flush(): boolean;
  /** Rewrites the replica in canonical order; the SHA-256 (hex) of its content, null on failure. */
  rewriteCanonical(): string | null;
}

/** The part of Membership replication uses (the pair harness fakes it). */
export interface Directory {
  list(): MemberView[];
  readonly ownTags: Tags;
  setTags(tags: Tags): void;
}

export type AckPolicy = { kind: 'all' } | { kind: 'majority' } | { kind: 'count'; n: number };

export function parseAckPolicy(s: string): AckPolicy | null {
  if (s === 'all' || s === 'majority') return { kind: s };
  if (/^[1-9][0-9]{0,5}$/.test(s)) return { kind: 'count', n: Number(s) };
  return null;
}

/** Whether `acked` holders satisfy the policy, given every holder known (acked or not). */
export function acksSatisfied(policy: AckPolicy, acked: number, holders: number): boolean {
  if (acked === 0) return false;
  switch (policy.kind) {
    case 'all':
      return acked >= holders;
    case 'majority':
      return acked * 2 > holders;
    case 'count':
      return acked >= policy.n;
  }
}

export interface HolderReport {
  id: PeerId;
  name: string;
  /** Entries when the round reached this holder. */
  before: number;
  entries: number;
  digest: string;
  /** SHA-256 of the rewritten file, '' until the holder rewrote it for this round. */
  sha256: string;
}

export interface ReplicationOptions {
  /** Present for a holder. */
  sink?: ReplicaSink;
  /** Bytes an encoded envelope adds around its body, for this peer's name (see envelopeOverhead). */
  envelopeBytes: number;
  /** The holder never starts sessions (it still answers them); the pair harness uses it. */
  passive?: boolean;
}

/** Bytes an envelope from `name` adds around its body, with every number at its widest. */
export function envelopeOverhead(name: string): number {
  const env = {
    v: PROTOCOL_VERSION,
    t: 'x'.repeat(16),
    i: '0'.repeat(16),
    n: name,
    c: 2 ** 53,
    s: 2 ** 53,
    l: 2 ** 53,
    b: 0,
  };
  return Buffer.byteLength(JSON.stringify(env)) - 1;
}

interface Pending {
  type: string;
  body: Record<string, unknown>;
  sentAt: number;
  tries: number;
  /** rp.tq: parents asked; rp.iq: first cell; rp.get: keys still missing. */
  parents?: number[];
  from?: number;
  /** rp.put: entries it carries. */
  count?: number;
  keys?: Array<[number, number]>;
}

interface Session {
  z: number;
  peer: PeerId;
  /** Body bytes the responder can put in one reply: its envelope, with its name, takes the rest. */
  replyBodyBytes: number;
  address: Address;
  lane: 0 | 1;
  phase: 'tree' | 'iblt' | 'fetch' | 'push';
  /** Content hashes only this side has, pushed once the fetches are done. */
  ours: Array<[number, number]>;
  level: number;
  queue: Array<Omit<Pending, 'sentAt' | 'tries'>>;
  outstanding: Map<number, Pending>;
  differing: number[];
  m: number;
  remote: Iblt | null;
  fetched: number;
  pushed: number;
}

interface RoundMemory {
  before: number;
  /** The SHA-256 of this round's rewrite, and the digest of the content it wrote. */
  sha256: string;
  digest: string;
}

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
}

interface RoundTrack {
  r: number;
  reports: Map<PeerId, HolderReport>;
  /** Live holders the reporting holders see: the round waits for them too. */
  heard: Set<PeerId>;
  lastPoll: number;
  target: string;
}

export class Replication implements Protocol {
  readonly messages = MESSAGES;
  /** Datagrams dropped because their content was invalid past the schema (bad entry). */
  rejected = 0;
  private readonly sink: ReplicaSink | null;
  private readonly bodyBytesMax: number;
  private nextSeq = 1;
  private q = 0;
  private session: Session | null = null;
  private sessions = 0;
  private lastAe = -Infinity;
  private lastReplace = -Infinity;
  private flushPendingSince: number | null = null;
  /** When each holder was first seen advertising a digest unlike ours (for AE_DEFER_MS). */
  private readonly differSince = new Map<PeerId, number>();
  /** When each holder last sent this one a session request (see AE_SERVED_QUIET_MS). */
  private readonly servedAt = new Map<PeerId, number>();
  private boostUntil = -Infinity;
  private lastTag = -Infinity;
  private tagged = '';
  private readonly rounds = new Map<number, RoundMemory>();
  private readonly ibltCache = new Map<string, { iblt: Iblt; at: number }>();
  private readonly appends = new Map<string, AppendTrack>();
  private round: RoundTrack | null = null;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly dir: Directory,
    private readonly opts: ReplicationOptions,
  ) {
    this.sink = opts.sink ?? null;
    this.bodyBytesMax = DATAGRAM_PAYLOAD_BYTES_MAX - opts.envelopeBytes;
    if (this.sink) {
      for (const e of this.sink.set.entries)
        if (e.origin === ctx.self.id && e.seq >= this.nextSeq) this.nextSeq = e.seq + 1;
    }
  }

  get isHolder(): boolean {
    return this.sink !== null;
  }

  /** This holder's digest tag value, "<digest>:<count>". */
  get digestTag(): string {
    return this.sink ? `${this.sink.set.digest()}:${this.sink.set.size}` : '';
  }

  get syncing(): boolean {
    return this.session !== null;
  }

  /** Holders this peer knows of (any state but left), with their advertised digest. */
  holders(): Array<MemberView & { digest: string; count: number }> {
    const out: Array<MemberView & { digest: string; count: number }> = [];
    for (const m of this.dir.list()) {
      const tag = m.tags[REPLICA_TAG];
      if (m.state === 'left' || typeof tag !== 'string' || !DIGEST_TAG_RE.test(tag)) continue;
      const [digest, count] = tag.split(':') as [string, string];
      out.push({ ...m, digest, count: Number(count) });
    }
    return out;
  }

  liveHolders(): Array<MemberView & { digest: string; count: number }> {
    return this.holders().filter((h) => h.state === 'alive' || h.state === 'suspect');
  }

  /**
   * Appends a text. A holder writes it to its own replica first and multicasts it (a failed write
   * throws WriteFailedError and sends nothing); an observer multicasts it and retries to every
   * holder until acknowledged (see appendStatus).
   */
  append(text: string): Entry {
    const entry: Entry = {
      origin: this.ctx.self.id,
      seq: this.nextSeq++,
      lamport: this.ctx.stamp(),
      text,
    };
    const problem = entryProblem(entry);
    if (problem) throw new RangeError(`cannot append: ${problem}`);
    if (this.sink) {
      const { added, failure } = this.sink.apply([entry]);
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
      });
    }
    this.ctx.broadcast('rp.app', { e: toWire(entry) });
    return entry;
  }

  /**
   * Acks an observer's append has collected, the holders known that have not acked, and those of
   * them that said they cannot store it now (a full or failing disk).
   */
  appendStatus(id: string):
    | {
        acked: PeerId[];
        /** The ackers by the names their acks carried, sorted. */
        confirmed: string[];
        known: number;
        missing: Array<{ id: PeerId; name: string }>;
        refused: Array<{ id: PeerId; name: string; reason: WriteFailureKind }>;
      }
    | undefined {
    const t = this.appends.get(id);
    if (!t) return undefined;
    const names = new Map<PeerId, string>();
    const left = new Set<PeerId>();
    for (const m of this.dir.list()) {
      names.set(m.id, m.name);
      if (m.state === 'left') left.add(m.id);
    }
    const all = new Set([...this.holders().map((h) => h.id), ...t.known, ...t.acked]);
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

  /** Starts (or restarts) a reconcile round as coordinator; returns its id. */
  startRound(): number {
    const r = 1 + Math.floor(this.ctx.random() * 2 ** 31);
    this.round = { r, reports: new Map(), heard: new Set(), lastPoll: -Infinity, target: '' };
    return r;
  }

  /** The round's reports, and whether every live holder rewrote the same content. */
  roundStatus(): { holders: HolderReport[]; waiting: string[]; agreed: boolean; done: boolean } {
    const round = this.round;
    const holders = this.participants().map(
      (h) =>
        round?.reports.get(h.id) ?? {
          id: h.id,
          name: h.name,
          before: h.count,
          entries: h.count,
          digest: h.digest,
          sha256: '',
        },
    );
    const reported = holders.every((h) => round?.reports.has(h.id));
    const digests = new Set(holders.map((h) => h.digest));
    const agreed = holders.length > 0 && reported && digests.size === 1;
    const shas = new Set(holders.map((h) => h.sha256));
    const done = agreed && shas.size === 1 && !shas.has('');
    const waiting = holders
      .filter((h) => !h.sha256 || (round?.target && h.digest !== round.target))
      .map((h) => h.name);
    return { holders, waiting, agreed, done };
  }

  /**
   * Who takes part in the round: the live holders this peer hears, the holders that reported in
   * this round (unless they left), and the live holders any reporting holder hears (a holder slow
   * to answer our probe is not left out) unless this peer saw them die or leave.
   */
  private participants(): Array<{
    id: PeerId;
    name: string;
    address: Address | null;
    count: number;
    digest: string;
  }> {
    const out = new Map<
      PeerId,
      { id: PeerId; name: string; address: Address | null; count: number; digest: string }
    >();
    for (const h of this.liveHolders())
      out.set(h.id, { id: h.id, name: h.name, address: h.address, count: h.count, digest: h.digest });
    if (!this.round) return [...out.values()];
    const members = this.dir.list();
    const states = new Map(members.map((m) => [m.id, m.state]));
    const addresses = new Map(members.map((m) => [m.id, m.address]));
    const names = new Map(members.map((m) => [m.id, m.name]));
    // A holder that reported in this round stays in it unless it left: a holder busy rewriting a
    // large file can miss heartbeats long enough to look dead, and a crashed one must show up as
    // not converged rather than vanish from the table.
    for (const r of this.round.reports.values()) {
      if (out.has(r.id) || states.get(r.id) === 'left') continue;
      const address = addresses.get(r.id) ?? null;
      out.set(r.id, { id: r.id, name: r.name, address, count: r.entries, digest: r.digest });
    }
    for (const x of this.round.heard) {
      const st = states.get(x);
      if (out.has(x) || x === this.ctx.self.id || st === 'dead' || st === 'left') continue;
      const name = nameOrUnheard(names.get(x), x);
      out.set(x, { id: x, name, address: addresses.get(x) ?? null, count: 0, digest: '' });
    }
    return [...out.values()];
  }

  onMessage(env: Envelope, from: Address): void {
    const b = env.b as Record<string, unknown>;
    if (!this.entriesBounded(env.t, b)) return;
    if (env.t === 'rp.tq' || env.t === 'rp.iq' || env.t === 'rp.get' || env.t === 'rp.put')
      this.servedAt.set(env.i, this.ctx.now());
    switch (env.t) {
      case 'rp.app':
        return this.onAppend(env, from, fromWire(b.e as WireEntry));
      case 'rp.ack':
        return this.onAck(env, b as { o: string; s: number; k: PeerId[] });
      case 'rp.nak':
        return this.onNak(env, b as { o: string; s: number; r: WriteFailureKind });
      case 'rp.tq':
        return this.onTreeRequest(from, b as { q: number; ln: 0 | 1; lv: number; p: number[] });
      case 'rp.iq':
        return this.onIbltRequest(env, from, b as { q: number; z: number; m: number; f: number; n: number });
      case 'rp.get':
        return this.onGet(from, b as { q: number; k: string });
      case 'rp.tr':
      case 'rp.ir':
      case 'rp.got':
        return this.onSessionReply(env, b as { q: number; h?: string; c?: string });
      case 'rp.put':
        return this.onPut(env, from, b as { q: number; e: WireEntry[] });
      case 'rp.ent':
        return this.onEntries(env, b as { q: number; e: WireEntry[] });
      case 'rp.rnd':
        return this.onRound(from, b as { r: number });
      case 'rp.fin':
        return this.onFinish(from, b as { r: number; h: string });
      case 'rp.st':
        return this.onStatus(
          env,
          b as { r: number; n: number; h: string; b: number; d: string; k: PeerId[] },
        );
    }
  }

  /**
   * Whether the entries a message carries are bounded (bounds.ts): Lamport times by
   * ENTRY_LAMPORT_AHEAD_MAX, and seqs below COUNTER_MAX, so that an origin tricked into learning its
   * own seq back (learnOwnSeqs) can still count. If not, the message is refused and counted.
   */
  private entriesBounded(type: string, b: Record<string, unknown>): boolean {
    const entries =
      type === 'rp.app'
        ? [b.e as WireEntry]
        : type === 'rp.put' || type === 'rp.ent'
          ? (b.e as WireEntry[])
          : [];
    for (const [, seq, lamport] of entries) {
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

  tick(now: number): void {
    if (this.sink) {
      this.maybeFlush(now);
      this.advertise(now);
      this.expireCache(now);
      const every = now < this.boostUntil ? AE_ROUND_INTERVAL_MS : AE_INTERVAL_MS;
      if (!this.session && !this.opts.passive && now - this.lastAe >= every) {
        this.lastAe = now;
        this.maybeStartSession();
      }
    }
    if (this.session) this.driveSession(now);
    this.retryAppends(now);
    this.pollRound(now);
  }

  // ---- appends -------------------------------------------------------------------------------

  private onAppend(env: Envelope, from: Address, entry: Entry): void {
    if (!this.sink) return;
    if (entryProblem(entry)) {
      this.rejected++;
      return;
    }
    this.learnOwnSeqs([entry]);
    const { added, replaced, failure } = this.sink.apply([entry]);
    // Not stored, so not acknowledged: the appender hears why, and its retry is written again.
    if (failure)
      return void this.ctx.send(from, 'rp.nak', { o: entry.origin, s: entry.seq, r: failure.kind });
    if (added.length) this.ctx.emit({ kind: 'replica-append', entries: added, from: env.i, via: 'append' });
    if (replaced.length) this.noteReplaced(env, replaced);
    const k = this.holders()
      .map((h) => h.id)
      .slice(0, ACK_HOLDERS_MAX);
    this.ctx.send(from, 'rp.ack', { o: entry.origin, s: entry.seq, k });
  }

  private onAck(env: Envelope, b: { o: string; s: number; k: PeerId[] }): void {
    const t = this.appends.get(`${b.o}:${b.s}`);
    if (!t) return;
    // An ack says "durable on my disk": only a holder we know of can say it, or an id anyone makes
    // up would count towards --acks for a write nobody stored.
    if (!this.holders().some((h) => h.id === env.i)) return void this.rejected++;
    for (const x of b.k) if (x !== this.ctx.self.id) t.known.add(x);
    if (t.acked.has(env.i)) return;
    t.acked.add(env.i);
    t.names.set(env.i, env.n);
    t.refused.delete(env.i);
    this.ctx.emit({ kind: 'replica-ack', id: entryId(t.entry), holder: env.i });
  }

  private onNak(env: Envelope, b: { o: string; s: number; r: WriteFailureKind }): void {
    const t = this.appends.get(`${b.o}:${b.s}`);
    if (!t || t.acked.has(env.i) || t.refused.get(env.i) === b.r) return;
    t.refused.set(env.i, b.r);
    t.names.set(env.i, env.n);
    this.ctx.emit({ kind: 'replica-refused', id: entryId(t.entry), holder: env.i, reason: b.r });
  }

  private retryAppends(now: number): void {
    if (this.appends.size === 0) return;
    const holders = this.liveHolders();
    for (const t of this.appends.values()) {
      if (now - t.lastSend < APPEND_RETRY_MS) continue;
      t.lastSend = now;
      for (const h of holders)
        if (!t.acked.has(h.id)) this.ctx.send(h.address, 'rp.app', { e: toWire(t.entry) });
    }
  }

  // ---- reconcile rounds ----------------------------------------------------------------------

  private onRound(from: Address, b: { r: number }): void {
    if (!this.sink) return;
    this.boostUntil = this.ctx.now() + ROUND_BOOST_MS;
    const mem = this.remember(b.r);
    this.sendStatus(from, b.r, mem);
  }

  private onFinish(from: Address, b: { r: number; h: string }): void {
    if (!this.sink) return;
    const mem = this.remember(b.r);
    // Rewrite once per round, or again if entries arrived after the rewrite.
    if (!this.rewriteCurrent(mem) && this.sink.set.digest() === b.h) {
      // A failed rewrite leaves the old file; the round sees no SHA from us and asks again.
      const sha = this.sink.rewriteCanonical();
      if (sha !== null) {
        mem.sha256 = sha;
        mem.digest = this.sink.set.digest();
        this.ctx.emit({ kind: 'replica-rewrite', round: b.r, sha256: sha, entries: this.sink.set.size });
      }
    }
    this.sendStatus(from, b.r, mem);
  }

  private remember(r: number): RoundMemory {
    let mem = this.rounds.get(r);
    if (!mem) {
      mem = { before: this.sink!.set.size, sha256: '', digest: '' };
      this.rounds.set(r, mem);
      if (this.rounds.size > ROUNDS_REMEMBERED_MAX) this.rounds.delete(this.rounds.keys().next().value!);
    }
    return mem;
  }

  /**
   * Whether the round's rewrite is still the file: canonical, and no entry arrived since. (An entry
   * appended after it can leave the file canonical, a rewritten empty file then one line, while the
   * SHA-256 the round saw is of the old content: every holder then reported another SHA for good.)
   */
  private rewriteCurrent(mem: RoundMemory): boolean {
    const set = this.sink!.set;
    return mem.sha256 !== '' && set.isCanonical() && set.digest() === mem.digest;
  }

  private sendStatus(to: Address, r: number, mem: RoundMemory): void {
    const set = this.sink!.set;
    const sha = this.rewriteCurrent(mem) ? mem.sha256 : '';
    const k = this.liveHolders()
      .map((h) => h.id)
      .slice(0, ACK_HOLDERS_MAX);
    this.ctx.send(to, 'rp.st', { r, n: set.size, h: set.digest(), b: mem.before, d: sha, k });
  }

  private onStatus(
    env: Envelope,
    b: { r: number; n: number; h: string; b: number; d: string; k: PeerId[] },
  ): void {
    const round = this.round;
    if (!round || b.r !== round.r) return;
    for (const x of b.k) round.heard.add(x);
    const prev = round.reports.get(env.i);
    round.reports.set(env.i, {
      id: env.i,
      name: env.n,
      before: prev?.before ?? b.b,
      entries: b.n,
      digest: b.h,
      sha256: b.d,
    });
  }

  private pollRound(now: number): void {
    const round = this.round;
    if (!round || now - round.lastPoll < ROUND_POLL_MS) return;
    round.lastPoll = now;
    const st = this.roundStatus();
    round.target = st.agreed ? st.holders[0]!.digest : '';
    for (const h of this.participants()) {
      if (h.address === null) continue;
      const rep = round.reports.get(h.id);
      if (st.agreed && !rep?.sha256) this.ctx.send(h.address, 'rp.fin', { r: round.r, h: round.target });
      else this.ctx.send(h.address, 'rp.rnd', { r: round.r });
    }
  }

  // ---- tags ----------------------------------------------------------------------------------

  private advertise(now: number): void {
    const tag = this.digestTag;
    if (tag === this.tagged || now - this.lastTag < DIGEST_TAG_INTERVAL_MS) return;
    this.lastTag = now;
    this.tagged = tag;
    this.dir.setTags({ ...this.dir.ownTags, [REPLICA_TAG]: tag });
  }

  // ---- anti-entropy: initiator ---------------------------------------------------------------

  private maybeStartSession(): void {
    const own = this.sink!.set.digest();
    const now = this.ctx.now();
    const differing = this.liveHolders().filter((h) => h.state === 'alive' && h.digest !== own);
    for (const id of this.differSince.keys())
      if (!differing.some((h) => h.id === id)) this.differSince.delete(id);
    for (const [id, at] of this.servedAt) if (now - at >= AE_SERVED_QUIET_MS) this.servedAt.delete(id);
    for (const h of differing) if (!this.differSince.has(h.id)) this.differSince.set(h.id, now);
    // Of two holders that differ, the one with the smaller id starts; the other waits AE_DEFER_MS,
    // so the pair does not run two sessions (and move the difference twice) at once.
    const others = differing.filter(
      (h) =>
        !this.servedAt.has(h.id) &&
        (this.ctx.self.id < h.id || now - this.differSince.get(h.id)! >= AE_DEFER_MS),
    );
    if (others.length === 0) return;
    const h = others[Math.floor(this.ctx.random() * others.length)]!;
    this.startSession(h.id, h.address, h.name);
  }

  /** Starts a session against one holder (exposed for the pair harness and tests). */
  startSession(peer: PeerId, address: Address, peerName: string): void {
    const s: Session = {
      z: 1 + Math.floor(this.ctx.random() * 2 ** 31),
      peer,
      replyBodyBytes: DATAGRAM_PAYLOAD_BYTES_MAX - envelopeOverhead(peerName),
      address,
      lane: (this.sessions++ % 2) as 0 | 1,
      phase: 'tree',
      level: 1,
      queue: [],
      outstanding: new Map(),
      differing: [],
      ours: [],
      m: 0,
      remote: null,
      fetched: 0,
      pushed: 0,
    };
    this.session = s;
    this.queueTreeLevel(s, [0]);
    this.driveSession(this.ctx.now());
  }

  private queueTreeLevel(s: Session, parents: number[]): void {
    const perMsg = treeParentsPerReply(s.replyBodyBytes);
    s.differing = [];
    for (let i = 0; i < parents.length; i += perMsg) {
      const p = parents.slice(i, i + perMsg);
      s.queue.push({ type: 'rp.tq', body: { ln: s.lane, lv: s.level, p }, parents: p });
    }
  }

  private queueIblt(s: Session, m: number): void {
    s.phase = 'iblt';
    s.m = m;
    s.remote = new Iblt(m);
    const perMsg = ibltCellsPerReply(s.replyBodyBytes);
    for (let f = 0; f < m; f += perMsg) {
      const n = Math.min(perMsg, m - f);
      s.queue.push({ type: 'rp.iq', body: { z: s.z, m, f, n }, from: f });
    }
  }

  private driveSession(now: number): void {
    const s = this.session!;
    for (const [q, p] of s.outstanding) {
      if (now - p.sentAt < REQUEST_TIMEOUT_MS) continue;
      if (p.tries >= REQUEST_TRIES_MAX)
        return this.endSession(false, `no answer from the holder after ${p.tries} tries`);
      p.tries++;
      p.sentAt = now;
      if (p.keys) p.body.k = packKeys(p.keys);
      this.ctx.send(s.address, p.type, { q, ...p.body });
    }
    while (s.outstanding.size < SESSION_WINDOW_REQUESTS && s.queue.length > 0) {
      const next = s.queue.shift()!;
      const q = ++this.q;
      s.outstanding.set(q, { ...next, sentAt: now, tries: 1 });
      this.ctx.send(s.address, next.type, { q, ...next.body });
    }
    if (s.outstanding.size === 0 && s.queue.length === 0) this.advance(s);
  }

  private advance(s: Session): void {
    if (s.phase === 'tree') {
      const n = DIGEST_FANOUT ** s.level;
      const x = s.differing.length;
      if (x === 0) return this.endSession(true, 'equal');
      if (x > TREE_SATURATION_FRACTION * n && s.level < DIGEST_LEVELS) {
        const parents = s.differing;
        s.level++;
        this.queueTreeLevel(s, parents);
        return this.driveSession(this.ctx.now());
      }
      const d = -n * Math.log(1 - Math.min(x, n - 0.5) / n);
      this.queueIblt(s, ibltSize(d));
      return this.driveSession(this.ctx.now());
    }
    if (s.phase === 'iblt') {
      const own = Iblt.build(s.m, this.sink!.set);
      const diff = own.subtract(s.remote!).decode();
      if (!diff) {
        if (s.m * 2 > IBLT_CELLS_MAX) return this.endSession(false, 'difference too large to decode');
        this.queueIblt(s, s.m * 2);
        return this.driveSession(this.ctx.now());
      }
      s.phase = 'fetch';
      s.remote = null;
      s.ours = diff.ours;
      const set = this.sink!.set;
      const missing = diff.theirs.filter(([k1, k2]) => !set.byContentHash(k1, k2));
      const perMsg = Math.min(
        GET_KEYS_PER_REQUEST_MAX,
        Math.floor(b64Bytes(this.bodyBytesMax, 40) / KEY_BYTES),
      );
      for (let i = 0; i < missing.length; i += perMsg) {
        const keys = missing.slice(i, i + perMsg);
        s.queue.push({ type: 'rp.get', body: { k: packKeys(keys) }, keys });
      }
      if (diff.ours.length === 0 && diff.theirs.length === 0)
        this.ctx.emit({ kind: 'replica-conflict', peer: s.peer });
      return this.driveSession(this.ctx.now());
    }
    if (s.phase === 'fetch') {
      // Pushed after fetching: a version of ours that lost a conflict to a fetched one is gone
      // from the set, so only versions the other side lacks and should keep are sent.
      s.phase = 'push';
      const set = this.sink!.set;
      const push: Entry[] = [];
      for (const [k1, k2] of s.ours) {
        const e = set.byContentHash(k1, k2);
        if (e) push.push(e);
      }
      // Pushes are requests too (rp.put -> rp.got): windowed and resent, so none is lost silently.
      while (push.length > 0) {
        const batch = this.packEntries(push, 2 ** 31);
        s.queue.push({ type: 'rp.put', body: { e: batch.map(toWire) }, count: batch.length });
      }
      if (s.queue.length > 0) return this.driveSession(this.ctx.now());
    }
    this.endSession(true, 'repaired');
  }

  private endSession(ok: boolean, reason: string): void {
    const s = this.session!;
    this.session = null;
    this.ctx.emit({ kind: 'replica-sync', peer: s.peer, fetched: s.fetched, pushed: s.pushed, ok, reason });
  }

  private onSessionReply(env: Envelope, b: { q: number; h?: string; c?: string }): void {
    const s = this.session;
    const p = s?.outstanding.get(b.q);
    if (!s || !p || env.i !== s.peer) return;
    const bytes = Buffer.from(b.h ?? b.c ?? '', 'base64');
    if (p.type === 'rp.tq') {
      const parents = p.parents!;
      if (bytes.length !== parents.length * DIGEST_FANOUT * HASH_BYTES) return void this.rejected++;
      const own = this.sink!.set.tree[s.level]!;
      parents.forEach((parent, i) => {
        for (let c = 0; c < DIGEST_FANOUT; c++) {
          const bucket = parent * DIGEST_FANOUT + c;
          const theirs = bytes.readUInt32LE((i * DIGEST_FANOUT + c) * HASH_BYTES);
          if (own[2 * bucket + s.lane] !== theirs) s.differing.push(bucket);
        }
      });
    } else if (p.type === 'rp.put') {
      s.pushed += p.count ?? 0;
    } else if (p.type === 'rp.iq') {
      const n = (p.body.n as number) ?? 0;
      if (bytes.length !== n * IBLT_CELL_BYTES || (p.body.m as number) !== s.m) return void this.rejected++;
      s.remote!.readCells(bytes, p.from!, n);
    } else return;
    s.outstanding.delete(b.q);
    this.driveSession(this.ctx.now());
  }

  /** Entries pushed by a session's initiator: written (durably), then acknowledged. */
  private onPut(env: Envelope, from: Address, b: { q: number; e: WireEntry[] }): void {
    if (!this.sink) return;
    // Entries not stored are not confirmed: the initiator sends them again, or a later session does.
    if (this.applyRepair(env, b.e).stored) this.ctx.send(from, 'rp.got', { q: b.q });
  }

  /** Stores repaired entries; `stored` is false when the write failed (nothing was stored). */
  private applyRepair(env: Envelope, wire: WireEntry[]): { entries: Entry[]; stored: boolean } {
    const entries = wire.map(fromWire).filter((e) => {
      if (entryProblem(e) === null) return true;
      this.rejected++;
      return false;
    });
    this.learnOwnSeqs(entries);
    const { added, replaced, failure } = this.sink!.apply(entries);
    if (added.length) this.ctx.emit({ kind: 'replica-append', entries: added, from: env.i, via: 'repair' });
    if (replaced.length) this.noteReplaced(env, replaced);
    return { entries, stored: !failure };
  }

  /**
   * A holder whose file lost entries it created (deleted by hand) learns its own sequence numbers
   * back from the others, so it does not reuse them for new entries.
   */
  private learnOwnSeqs(entries: Entry[]): void {
    for (const e of entries)
      if (e.origin === this.ctx.self.id && e.seq >= this.nextSeq) this.nextSeq = e.seq + 1;
  }

  private noteReplaced(env: Envelope, replaced: Entry[]): void {
    const now = this.ctx.now();
    this.lastReplace = now;
    if (this.flushPendingSince === null) this.flushPendingSince = now;
    this.ctx.emit({ kind: 'replica-replace', entries: replaced, from: env.i });
  }

  /** Rewrites the file once replacements stop arriving (or at least every FLUSH_DELAY_MAX_MS). */
  private maybeFlush(now: number): void {
    const since = this.flushPendingSince;
    if (since === null) return;
    if (now - this.lastReplace < FLUSH_QUIET_MS && now - since < FLUSH_DELAY_MAX_MS) return;
    this.flushPendingSince = null;
    // A failed rewrite keeps the replacements pending: try again after another quiet period.
    if (!this.sink!.flush()) this.lastReplace = this.flushPendingSince = now;
  }

  private onEntries(env: Envelope, b: { q: number; e: WireEntry[] }): void {
    if (!this.sink) return;
    const { entries, stored } = this.applyRepair(env, b.e);
    // Entries we could not store leave their keys missing: the request is sent again.
    const received = stored ? entries : [];
    const s = this.session;
    const p = s && b.q !== 0 && env.i === s.peer ? s.outstanding.get(b.q) : undefined;
    if (!s || !p?.keys) return;
    s.fetched += received.length;
    // A version received settles its key even if ours won the conflict and stays.
    const got = new Set(received.map((e) => hash64(formatLine(e), 1).join(':')));
    p.keys = p.keys.filter(([k1, k2]) => !got.has(`${k1}:${k2}`) && !this.sink!.set.byContentHash(k1, k2));
    if (p.keys.length === 0) {
      s.outstanding.delete(b.q);
      this.driveSession(this.ctx.now());
    }
  }

  // ---- anti-entropy: responder ---------------------------------------------------------------

  private onTreeRequest(from: Address, b: { q: number; ln: 0 | 1; lv: number; p: number[] }): void {
    if (!this.sink) return;
    const level = this.sink.set.tree[b.lv]!;
    const parentsMax = DIGEST_FANOUT ** (b.lv - 1);
    // More parents than our answer holds: no initiator of ours asks that (it sizes by our name).
    if (b.p.length > treeParentsPerReply(this.bodyBytesMax) || b.p.some((p) => p >= parentsMax))
      return void this.rejected++;
    const out = Buffer.alloc(b.p.length * DIGEST_FANOUT * HASH_BYTES);
    b.p.forEach((parent, i) => {
      for (let c = 0; c < DIGEST_FANOUT; c++)
        out.writeUInt32LE(
          level[2 * (parent * DIGEST_FANOUT + c) + b.ln]!,
          (i * DIGEST_FANOUT + c) * HASH_BYTES,
        );
    });
    this.ctx.send(from, 'rp.tr', { q: b.q, h: out.toString('base64') });
  }

  private onIbltRequest(
    env: Envelope,
    from: Address,
    b: { q: number; z: number; m: number; f: number; n: number },
  ): void {
    if (!this.sink || b.f + b.n > b.m || b.n > ibltCellsPerReply(this.bodyBytesMax))
      return void this.rejected++;
    const key = `${env.i}:${b.z}:${b.m}`;
    let cached = this.ibltCache.get(key);
    if (!cached) {
      let cells = b.m;
      for (const v of this.ibltCache.values()) cells += v.iblt.m;
      while (
        this.ibltCache.size > 0 &&
        (this.ibltCache.size >= IBLT_CACHE_MAX || cells > IBLT_CACHE_CELLS_MAX)
      ) {
        const [oldest, v] = this.ibltCache.entries().next().value!;
        cells -= v.iblt.m;
        this.ibltCache.delete(oldest);
      }
      cached = { iblt: Iblt.build(b.m, this.sink.set), at: this.ctx.now() };
      this.ibltCache.set(key, cached);
    }
    this.ctx.send(from, 'rp.ir', { q: b.q, c: cached.iblt.writeCells(b.f, b.n).toString('base64') });
  }

  private onGet(from: Address, b: { q: number; k: string }): void {
    if (!this.sink) return;
    const keys = unpackKeys(b.k);
    if (!keys) return void this.rejected++;
    const found: Entry[] = [];
    for (const [k1, k2] of keys) {
      const e = this.sink.set.byContentHash(k1, k2);
      if (e) found.push(e);
    }
    while (found.length > 0) {
      const batch = this.packEntries(found, b.q);
      this.ctx.send(from, 'rp.ent', { q: b.q, e: batch.map(toWire) });
    }
  }

  private expireCache(now: number): void {
    for (const [k, v] of this.ibltCache) if (now - v.at > IBLT_CACHE_MS) this.ibltCache.delete(k);
  }

  // ---- sizing --------------------------------------------------------------------------------

  /** Takes from the front of `queue` as many entries as fit one `rp.ent` body. */
  private packEntries(queue: Entry[], q: number): Entry[] {
    let bytes = Buffer.byteLength(JSON.stringify({ q, e: [] }));
    let n = 0;
    while (n < queue.length && n < 64) {
      const size = Buffer.byteLength(JSON.stringify(toWire(queue[n]!))) + 1;
      if (n > 0 && bytes + size > this.bodyBytesMax) break;
      bytes += size;
      n++;
    }
    return queue.splice(0, n);
  }
}

/** Raw bytes that fit, base64-encoded, in a body of `bodyBytes` with `fixed` other bytes. */
function b64Bytes(bodyBytes: number, fixed: number): number {
  return Math.floor((bodyBytes - fixed) / 4) * 3;
}

/**
 * Parents whose bucket hashes fit one `rp.tr`, and IBLT cells one `rp.ir`, from a responder whose
 * reply bodies may be `bodyBytes` long: the initiator asks for no more, the responder takes no more.
 */
function treeParentsPerReply(bodyBytes: number): number {
  return Math.max(1, Math.floor(b64Bytes(bodyBytes, 40) / (DIGEST_FANOUT * HASH_BYTES)));
}

function ibltCellsPerReply(bodyBytes: number): number {
  return Math.min(IBLT_CELLS_PER_REQUEST_MAX, Math.floor(b64Bytes(bodyBytes, 40) / IBLT_CELL_BYTES));
}

function ibltSize(d: number): number {
  const m = Math.ceil(1.5 * d) + IBLT_CELLS_MIN;
  return Math.min(IBLT_CELLS_MAX, Math.ceil(m / IBLT_HASHES) * IBLT_HASHES);
}

function toWire(e: Entry): WireEntry {
  return [e.origin, e.seq, e.lamport, e.text];
}

function fromWire(w: WireEntry): Entry {
  return { origin: w[0], seq: w[1], lamport: w[2], text: w[3] };
}

function packKeys(keys: Array<[number, number]>): string {
  const b = Buffer.alloc(keys.length * KEY_BYTES);
  keys.forEach(([k1, k2], i) => {
    b.writeUInt32LE(k1, i * KEY_BYTES);
    b.writeUInt32LE(k2, i * KEY_BYTES + 4);
  });
  return b.toString('base64');
}

function unpackKeys(s: string): Array<[number, number]> | null {
  const b = Buffer.from(s, 'base64');
  if (b.length % KEY_BYTES !== 0 || b.length / KEY_BYTES > GET_KEYS_PER_REQUEST_MAX) return null;
  const out: Array<[number, number]> = [];
  for (let i = 0; i < b.length; i += KEY_BYTES) out.push([b.readUInt32LE(i), b.readUInt32LE(i + 4)]);
  return out;
}

function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

function keyCheck(k1: number, k2: number): number {
  return mix32(k1 ^ mix32(k2 ^ 0x5bd1e995));
}

/**
 * An invertible Bloom lookup table over 64-bit keys, partitioned into IBLT_HASHES sub-tables so a
 * key never lands twice in one cell. Counts travel mod 2^16: a difference of two tables only needs
 * small counts, and the wrap cancels in the subtraction.
 */
export class Iblt {
  readonly count: Int32Array;
  readonly k1: Uint32Array;
  readonly k2: Uint32Array;
  readonly chk: Uint32Array;
  private readonly sub: number;

  constructor(readonly m: number) {
    this.count = new Int32Array(m);
    this.k1 = new Uint32Array(m);
    this.k2 = new Uint32Array(m);
    this.chk = new Uint32Array(m);
    this.sub = Math.floor(m / IBLT_HASHES);
  }

  static build(m: number, set: ReplicaSet): Iblt {
    const t = new Iblt(m);
    for (let i = 0; i < set.size; i++) {
      const [k1, k2] = set.contentHashAt(i);
      t.toggle(k1, k2, 1);
    }
    return t;
  }

  toggle(k1: number, k2: number, sign: number): void {
    const c = keyCheck(k1, k2);
    for (let j = 0; j < IBLT_HASHES; j++) {
      const i = j * this.sub + (mix32(k1 ^ Math.imul(j + 1, 0x9e3779b9) ^ k2) % this.sub);
      this.count[i]! += sign;
      this.k1[i] = (this.k1[i]! ^ k1) >>> 0;
      this.k2[i] = (this.k2[i]! ^ k2) >>> 0;
      this.chk[i] = (this.chk[i]! ^ c) >>> 0;
    }
  }

  writeCells(from: number, n: number): Buffer {
    const b = Buffer.alloc(n * IBLT_CELL_BYTES);
    for (let i = 0; i < n; i++) {
      const o = i * IBLT_CELL_BYTES;
      b.writeUInt16LE(this.count[from + i]! & 0xffff, o);
      b.writeUInt32LE(this.k1[from + i]!, o + 2);
      b.writeUInt32LE(this.k2[from + i]!, o + 6);
      b.writeUInt32LE(this.chk[from + i]!, o + 10);
    }
    return b;
  }

  readCells(b: Buffer, from: number, n: number): void {
    for (let i = 0; i < n; i++) {
      const o = i * IBLT_CELL_BYTES;
      this.count[from + i] = b.readUInt16LE(o);
      this.k1[from + i] = b.readUInt32LE(o + 2);
      this.k2[from + i] = b.readUInt32LE(o + 6);
      this.chk[from + i] = b.readUInt32LE(o + 10);
    }
  }

  /** this - other, counts reduced to int16 (the difference is small; the wrap cancels). */
  subtract(other: Iblt): Iblt {
    const d = new Iblt(this.m);
    for (let i = 0; i < this.m; i++) {
      d.count[i] = (((this.count[i]! - other.count[i]!) << 16) >> 16) | 0;
      d.k1[i] = (this.k1[i]! ^ other.k1[i]!) >>> 0;
      d.k2[i] = (this.k2[i]! ^ other.k2[i]!) >>> 0;
      d.chk[i] = (this.chk[i]! ^ other.chk[i]!) >>> 0;
    }
    return d;
  }

  /** Peels a difference table: keys only this side has (+1) and only the other side has (-1). */
  decode(): { ours: Array<[number, number]>; theirs: Array<[number, number]> } | null {
    const ours: Array<[number, number]> = [];
    const theirs: Array<[number, number]> = [];
    const pure = (i: number) =>
      (this.count[i] === 1 || this.count[i] === -1) && this.chk[i] === keyCheck(this.k1[i]!, this.k2[i]!);
    const stack: number[] = [];
    for (let i = 0; i < this.m; i++) if (pure(i)) stack.push(i);
    let guard = 0;
    while (stack.length > 0) {
      const i = stack.pop()!;
      if (!pure(i)) continue;
      if (++guard > this.m * 4) return null;
      const k1 = this.k1[i]!;
      const k2 = this.k2[i]!;
      const sign = this.count[i]!;
      (sign === 1 ? ours : theirs).push([k1, k2]);
      this.toggle(k1, k2, -sign);
      for (let j = 0; j < IBLT_HASHES; j++) {
        const c = j * this.sub + (mix32(k1 ^ Math.imul(j + 1, 0x9e3779b9) ^ k2) % this.sub);
        if (pure(c)) stack.push(c);
      }
    }
    for (let i = 0; i < this.m; i++)
      if (this.count[i] !== 0 || this.k1[i] !== 0 || this.k2[i] !== 0 || this.chk[i] !== 0) return null;
    return { ours, theirs };
  }
}

/**
 * A replica held in memory: the simulation's model of a file (its content survives a crash). With
 * a SimDisk it meets the disk's faults and handles them as ReplicaFile does: the set changes only
 * after an append was stored whole; a failed append may leave a torn tail, cut off before the next
 * append; a restart (reopen) reads the content back with the file's own parser, which rejects a
 * torn line (a line parses only when whole: it ends with the closing quote of its JSON text).
 */
export class MemoryReplica implements ReplicaSink {
  readonly set: ReplicaSet;
  /** The "file": one formatted line per entry, in file order (what survives a crash). */
  lines: string[];
  /** Part of a failed append after the last whole line (a torn write), until it is cut off. */
  tail = '';
  /** Lines a reopen rejected (torn or damaged), as ReplicaFile.open keeps them aside. */
  rejected = 0;
  private dirty = false;

  constructor(
    lines: string[] = [],
    private readonly disk: SimDisk | null = null,
  ) {
    this.set = new ReplicaSet();
    for (const line of lines) {
      const p = parseLine(line);
      if (!p.ok) throw new Error(`bad line in memory replica: ${p.reason}`);
      this.set.resolve(p.entry);
    }
    this.lines = this.set.entries.map(formatLine);
  }

  /** The file's content: whole lines, then any torn tail. */
  content(): string {
    return (this.lines.length > 0 ? this.lines.join('\n') + '\n' : '') + this.tail;
  }

  /** A restart: the content read back, torn or damaged lines rejected (counted in `rejected`). */
  static reopen(content: string, disk: SimDisk | null = null): MemoryReplica {
    const { set, rejected } = parseReplica(content);
    const r = new MemoryReplica(set.entries.map(formatLine), disk);
    r.rejected = rejected.length;
    return r;
  }

  apply(entries: readonly Entry[]): ApplyResult {
    const { added, replaced } = this.set.plan(entries);
    if (added.length > 0) {
      if (this.tail) {
        this.disk?.release(this.tail.length);
        this.tail = '';
      }
      const data = serialize(added);
      const w = this.disk?.write(data.length) ?? { stored: data.length, error: null };
      if (w.error) {
        this.tail = data.slice(0, w.stored);
        return {
          added: [],
          replaced: [],
          failure: { kind: w.error.code === 'ENOSPC' ? 'full' : 'io', file: 'memory', code: w.error.code },
        };
      }
      for (const e of added) this.lines.push(formatLine(e));
    }
    for (const e of [...added, ...replaced]) this.set.resolve(e);
    if (replaced.length > 0) this.dirty = true;
    return { added, replaced };
  }

  append(entries: readonly Entry[]): Entry[] {
    return this.apply(entries).added;
  }

  flush(): boolean {
    if (!this.dirty) return true;
    this.lines = this.set.entries.map(formatLine);
    this.tail = '';
    this.dirty = false;
    return true;
  }

  rewriteCanonical(): string {
    this.set.sortCanonical();
    this.lines = this.set.entries.map(formatLine);
    this.tail = '';
    this.dirty = false;
    return contentDigest(this.set.entries);
  }
}

export interface PairResult {
  converged: boolean;
  /** Encoded envelope bytes both ways, every rp.* datagram counted. */
  bytes: number;
  datagrams: number;
  bytesByType: Record<string, number>;
  fetched: number;
  pushed: number;
  sessions: number;
  virtualMs: number;
}

/**
 * Reconciles two in-memory replicas with the real protocol over a lossless in-memory link and
 * counts the bytes: for benchmarks (bytes exchanged against the bytes of the differing lines).
 * `a` initiates sessions until both digests agree; both sets are modified in place.
 */
export function reconcilePair(
  a: ReplicaSet,
  b: ReplicaSet,
  opts: { virtualMsMax?: number; tickMs?: number } = {},
): PairResult {
  const tickMs = opts.tickMs ?? 25;
  const res: PairResult = {
    converged: false,
    bytes: 0,
    datagrams: 0,
    bytesByType: {},
    fetched: 0,
    pushed: 0,
    sessions: 0,
    virtualMs: 0,
  };
  let now = 0;
  const queue: Array<{ to: number; env: Envelope; from: Address }> = [];
  const ids = ['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb'];
  const addrs = ['a:1', 'b:1'];
  const codec = new Codec(MESSAGES);
  const sets = [a, b];
  const protos: Replication[] = [];
  const tags: Tags[] = [{}, {}];
  const seqs = [0, 0];
  // Each side's Lamport clock starts above every entry it holds and merges what it receives, as
  // a node's does (see ENTRY_LAMPORT_AHEAD_MAX).
  const clocks = sets.map((s) => s.entries.reduce((m, e) => Math.max(m, e.lamport), 0));
  for (let i = 0; i < 2; i++) {
    const other = 1 - i;
    const transmit = (to: number, type: string, body: unknown) => {
      const env: Envelope = {
        v: PROTOCOL_VERSION,
        t: type,
        i: ids[i]!,
        n: `h${i}`,
        c: 1,
        s: ++seqs[i]!,
        l: ++clocks[i]!,
        b: body,
      };
      const data = codec.encode(env);
      res.bytes += data.length;
      res.datagrams++;
      res.bytesByType[type] = (res.bytesByType[type] ?? 0) + data.length;
      const decoded = codec.decode(data);
      if (!decoded.ok) throw new Error(`pair harness: ${type} failed to decode (${decoded.reason})`);
      queue.push({ to, env: decoded.env, from: addrs[i]! });
      return clocks[i]!;
    };
    const ctx: ProtocolContext = {
      self: { id: ids[i]!, name: `h${i}`, incarnation: 1 },
      now: () => now,
      wall: () => now,
      random: seededUnit(i + 1),
      lamport: () => clocks[i]!,
      stamp: () => ++clocks[i]!,
      broadcast: (type, body) => transmit(other, type, body),
      send: (_to, type, body) => transmit(other, type, body),
      refuse: () => {},
      emit: (e) => {
        if (e.kind === 'replica-sync' && i === 0) {
          res.sessions++;
          res.fetched += e.fetched;
          res.pushed += e.pushed;
        }
      },
    };
    const dir: Directory = {
      list: () => [
        {
          id: ids[other]!,
          name: `h${other}`,
          address: addrs[other]!,
          state: 'alive',
          incarnation: 1,
          lastSeenMs: 0,
          duplicateName: false,
          tags: { [REPLICA_TAG]: `${sets[other]!.digest()}:${sets[other]!.size}` },
        },
      ],
      get ownTags() {
        return tags[i]!;
      },
      setTags: (t) => (tags[i] = t),
    };
    const sink: ReplicaSink = {
      set: sets[i]!,
      apply: (es) => {
        const r = sets[i]!.plan(es);
        for (const e of [...r.added, ...r.replaced]) sets[i]!.resolve(e);
        return r;
      },
      flush: () => true,
      rewriteCanonical: () => contentDigest(sets[i]!.canonical()),
    };
    protos.push(
      new Replication(ctx, dir, { sink, envelopeBytes: envelopeOverhead(`h${i}`), passive: i === 1 }),
    );
  }
  const limit = opts.virtualMsMax ?? 600_000;
  while (now <= limit) {
    for (const p of protos) p.tick(now);
    while (queue.length > 0) {
      const { to, env, from } = queue.shift()!;
      clocks[to] = Math.max(clocks[to]!, env.l) + 1;
      protos[to]!.onMessage(env, from);
    }
    if (a.digest() === b.digest() && a.size === b.size && !protos[0]!.syncing) {
      res.converged = true;
      break;
    }
    now += tickMs;
  }
  res.virtualMs = now;
  return res;
}

function seededUnit(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    return mix32(s) / 4294967296;
  };
}
