/**
 * Anti-entropy, the initiator's side (A): pull with push-back. Every AE_INTERVAL_MS a holder that
 * sees another holder advertise a digest unlike its own runs one session against it:
 *   1. Estimate the difference with the digest tree (ReplicaSet.tree: 16^L buckets per level, each
 *      the XOR of the content hashes in it). A fetches B's level-1 bucket hashes (16 x 4 bytes); if
 *      most differ (TREE_SATURATION_FRACTION) it fetches the children of the differing buckets one
 *      level down, up to level 3 (4,096 buckets). d^ = -N ln(1 - x/N) for x differing of N.
 *   2. Find the difference exactly with an IBLT (iblt.ts) of m = 1.5 d^ + IBLT_CELLS_MIN cells over
 *      the content hashes of the lines (so two versions of one identity differ too): A fetches B's
 *      cells in chunks, subtracts its own and peels. A failed peel doubles m.
 *   3. A fetches the lines it lacks (`rp.get` by content hash -> `rp.ent`), then pushes the ones B
 *      lacks (`rp.put` -> `rp.got` once B wrote them), both windowed and resent like every
 *      request. Pushing after fetching skips a version of ours that lost to a fetched one.
 * At most SESSION_WINDOW_REQUESTS are outstanding (flow control); a request unanswered for
 * REQUEST_TIMEOUT_MS is sent again, and REQUEST_TRIES_MAX failures end the session (B gone).
 *
 * Large entries (large.ts). An entry too large for one datagram is pushed alone as a reliable
 * message; its request waits while reliable delivery carries it (it is repaired there, not resent
 * here) and for its `rp.got` after. B sends one we fetch the same way; each that arrives counts as
 * progress for its fetch, which a run of large entries would otherwise outlast.
 *
 * Hash collisions. Bucket hashes on the wire are one 32-bit lane of the 64-bit XOR; sessions
 * alternate lanes, so a collision that hides a difference in one session is seen by the next. A
 * session that decodes no difference while the digests differ (a 64-bit collision, or a bug)
 * emits `replica-conflict` rather than hide it.
 */
import type { ProtocolContext } from '../protocol.js';
import { DATAGRAM_PAYLOAD_BYTES_MAX, type PeerId } from '../wire.js';
import type { Origin } from '../kit/message.js';
import type { Address } from '../transport/transport.js';
import { liveHoldersIn, type Directory, type HolderView } from './directory.js';
import type { Entry } from './entry.js';
import { hash64 } from './hash.js';
import type { Holder } from './holder.js';
import { IBLT_CELLS_MAX, IBLT_CELL_BYTES, Iblt, ibltSize } from './iblt.js';
import { encodeLarge, LARGE_TOPIC, type LargeLane } from './large.js';
import { formatLine } from './line.js';
import {
  GET,
  GET_KEYS_PER_REQUEST_MAX,
  HASH_BYTES,
  IBLT_REQUEST,
  KEY_BYTES,
  PUT,
  TREE_REQUEST,
  packKeys,
  wireEntry,
} from './messages.js';
import { DIGEST_FANOUT, DIGEST_LEVELS } from './replica-set.js';
import {
  b64Bytes,
  envelopeOverhead,
  fitsOne,
  ibltCellsPerReply,
  takeEntries,
  treeParentsPerReply,
} from './sizing.js';

/** How often a holder looks for a holder with another digest and starts a session. */
export const AE_INTERVAL_MS = 400;
/** Anti-entropy period while a reconcile round is fresh (peer reconcile waits on it). */
export const AE_ROUND_INTERVAL_MS = 100;
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
export const REQUEST_TIMEOUT_MS = 250;
export const REQUEST_TRIES_MAX = 6;
export const SESSION_WINDOW_REQUESTS = 8;
/**
 * Past this fraction of differing buckets a level says too little about the size of the difference
 * (x/N = 0.8 means d is about 1.6 N), so the session looks one level deeper.
 */
export const TREE_SATURATION_FRACTION = 0.8;
/** The request number pushes are sized with (the widest an `rp.put` carries in practice). */
const PUSH_SIZING_REQUEST = 2 ** 31;

type ContentHash = [number, number];

/** What a session asks the responder, before it is numbered and sent. */
type Request =
  | { type: 'rp.tq'; level: number; parents: number[] }
  | { type: 'rp.iq'; cells: number; first: number; count: number }
  /** `keys`: the content hashes still missing (a resend asks only for those). */
  | { type: 'rp.get'; keys: ContentHash[] }
  /** `large`: one entry too large for a datagram, sent as a reliable message. */
  | { type: 'rp.put'; entries: Entry[]; large?: true };

/** `carrying`: a large push that reliable delivery is still carrying (not timed out meanwhile). */
type Pending = Request & { sentAt: number; tries: number; carrying?: boolean };

interface Session {
  /** Names the session to the responder (its IBLT cache). */
  id: number;
  peer: PeerId;
  /** Body bytes the responder can put in one reply: its envelope, with its name, takes the rest. */
  replyBodyBytes: number;
  address: Address;
  lane: 0 | 1;
  phase: 'tree' | 'iblt' | 'fetch' | 'push';
  /** Content hashes only this side has, pushed once the fetches are done. */
  ours: ContentHash[];
  level: number;
  queue: Request[];
  outstanding: Map<number, Pending>;
  /** Buckets of `level` whose hashes differ. */
  differing: number[];
  /** Cells of the IBLT being fetched, and the responder's table as it arrives. */
  cells: number;
  remote: Iblt | null;
  fetched: number;
  pushed: number;
}

export class AntiEntropyInitiator {
  private session: Session | null = null;
  private sessions = 0;
  private lastRequest = 0;
  private lastStart = -Infinity;
  /** When each holder was first seen advertising a digest unlike ours (for AE_DEFER_MS). */
  private readonly differSince = new Map<PeerId, number>();
  /** When each holder last sent this one a session request (see AE_SERVED_QUIET_MS). */
  private readonly servedAt = new Map<PeerId, number>();

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly dir: Directory,
    private readonly holder: Holder,
    /** Body bytes of our requests: our envelope, with our name, takes the rest of a datagram. */
    private readonly bodyBytesMax: number,
    private readonly reject: () => void,
    /** Where entries too large for a datagram go; null: they are not pushed (never, in the CLI). */
    private readonly large: LargeLane | null,
  ) {}

  get syncing(): boolean {
    return this.session !== null;
  }

  /** A holder sent us a session request: it is running a session against us. */
  served(peer: PeerId, now: number): void {
    this.servedAt.set(peer, now);
  }

  /**
   * Starts a session when one is due (every `intervalMs` while a holder advertises another digest);
   * `passive` holders never start one. Returns when it next needs a tick: undefined while a session
   * runs (its requests time out at the node's cadence), Infinity while every digest is ours (a
   * digest changes with the tags, or with our replica, and either ticks us).
   */
  tick(now: number, intervalMs: number, passive: boolean): number | undefined {
    if (!this.session && !passive && now - this.lastStart >= intervalMs) {
      this.lastStart = now;
      this.maybeStart();
    }
    if (this.session) {
      this.drive(now);
      if (this.session) return undefined;
    }
    return passive || this.differing().length === 0 ? Infinity : this.lastStart + intervalMs;
  }

  /** The live holders that advertise a digest other than ours. */
  private differing(): HolderView[] {
    const own = this.holder.set.digest();
    return liveHoldersIn(this.dir).filter((h) => h.state === 'alive' && h.digest !== own);
  }

  private maybeStart(): void {
    const now = this.ctx.now();
    const differing = this.differing();
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
    this.start(h.id, h.address, h.name);
  }

  private start(peer: PeerId, address: Address, peerName: string): void {
    const s: Session = {
      id: 1 + Math.floor(this.ctx.random() * 2 ** 31),
      peer,
      replyBodyBytes: DATAGRAM_PAYLOAD_BYTES_MAX - envelopeOverhead(peerName),
      address,
      lane: this.sessions++ % 2 === 0 ? 0 : 1,
      phase: 'tree',
      level: 1,
      queue: [],
      outstanding: new Map(),
      differing: [],
      ours: [],
      cells: 0,
      remote: null,
      fetched: 0,
      pushed: 0,
    };
    this.session = s;
    this.queueTreeLevel(s, [0]);
    this.drive(this.ctx.now());
  }

  private queueTreeLevel(s: Session, parents: number[]): void {
    const perMsg = treeParentsPerReply(s.replyBodyBytes);
    s.differing = [];
    for (let i = 0; i < parents.length; i += perMsg)
      s.queue.push({ type: 'rp.tq', level: s.level, parents: parents.slice(i, i + perMsg) });
  }

  private queueIblt(s: Session, cells: number): void {
    s.phase = 'iblt';
    s.cells = cells;
    s.remote = new Iblt(cells);
    const perMsg = ibltCellsPerReply(s.replyBodyBytes);
    for (let first = 0; first < cells; first += perMsg)
      s.queue.push({ type: 'rp.iq', cells, first, count: Math.min(perMsg, cells - first) });
  }

  private drive(now: number): void {
    const s = this.session!;
    for (const [request, p] of s.outstanding) {
      if (p.carrying || now - p.sentAt < REQUEST_TIMEOUT_MS) continue;
      if (p.tries >= REQUEST_TRIES_MAX)
        return this.end(false, `no answer from the holder after ${p.tries} tries`);
      if (p.type === 'rp.get') {
        // What arrived meanwhile (a large entry of an earlier fetch, an append) is not asked again.
        p.keys = p.keys.filter(([k1, k2]) => !this.holder.set.byContentHash(k1, k2));
        if (p.keys.length === 0) {
          s.outstanding.delete(request);
          continue;
        }
      }
      p.tries++;
      p.sentAt = now;
      this.sendRequest(s, request, p);
    }
    while (s.outstanding.size < SESSION_WINDOW_REQUESTS && s.queue.length > 0) {
      const next = s.queue.shift()!;
      const request = ++this.lastRequest;
      s.outstanding.set(request, { ...next, sentAt: now, tries: 1 });
      this.sendRequest(s, request, next);
    }
    if (s.outstanding.size === 0 && s.queue.length === 0) this.advance(s);
  }

  private sendRequest(s: Session, request: number, r: Request): void {
    if (r.type === 'rp.put' && r.large) return this.pushLarge(s, request, r.entries[0]!);
    this.ctx.send(s.address, ...this.requestMessage(s, request, r));
  }

  /** Pushes one large entry; its request times out only once reliable delivery is done with it. */
  private pushLarge(s: Session, request: number, entry: Entry): void {
    const p = s.outstanding.get(request)!;
    p.carrying = true;
    const payload = encodeLarge(PUT.type, PUT.toWire({ request, entries: [wireEntry(entry)] }));
    this.large!.sendTo(s.peer, LARGE_TOPIC, payload, (r) => {
      if (this.session !== s || s.outstanding.get(request) !== p) return;
      p.carrying = false;
      // Carried: wait REQUEST_TIMEOUT_MS for its `rp.got`. Not carried: send it again at once.
      p.sentAt = r.ok ? this.ctx.now() : -Infinity;
      this.drive(this.ctx.now());
    });
  }

  private requestMessage(s: Session, request: number, r: Request): [string, Record<string, unknown>] {
    switch (r.type) {
      case 'rp.tq':
        return TREE_REQUEST.out({ request, lane: s.lane, level: r.level, parents: r.parents });
      case 'rp.iq':
        return IBLT_REQUEST.out({ request, session: s.id, cells: r.cells, first: r.first, count: r.count });
      case 'rp.get':
        return GET.out({ request, keys: packKeys(r.keys) });
      case 'rp.put':
        return PUT.out({ request, entries: r.entries.map(wireEntry) });
    }
  }

  private advance(s: Session): void {
    if (s.phase === 'tree') {
      const n = DIGEST_FANOUT ** s.level;
      const x = s.differing.length;
      if (x === 0) return this.end(true, 'equal');
      if (x > TREE_SATURATION_FRACTION * n && s.level < DIGEST_LEVELS) {
        const parents = s.differing;
        s.level++;
        this.queueTreeLevel(s, parents);
        return this.drive(this.ctx.now());
      }
      const d = -n * Math.log(1 - Math.min(x, n - 0.5) / n);
      this.queueIblt(s, ibltSize(d));
      return this.drive(this.ctx.now());
    }
    if (s.phase === 'iblt') {
      const own = Iblt.build(s.cells, this.holder.set);
      const diff = own.subtract(s.remote!).decode();
      if (!diff) {
        if (s.cells * 2 > IBLT_CELLS_MAX) return this.end(false, 'difference too large to decode');
        this.queueIblt(s, s.cells * 2);
        return this.drive(this.ctx.now());
      }
      s.phase = 'fetch';
      s.remote = null;
      s.ours = diff.ours;
      const set = this.holder.set;
      const missing = diff.theirs.filter(([k1, k2]) => !set.byContentHash(k1, k2));
      const perMsg = Math.min(GET_KEYS_PER_REQUEST_MAX, Math.floor(b64Bytes(this.bodyBytesMax) / KEY_BYTES));
      for (let i = 0; i < missing.length; i += perMsg)
        s.queue.push({ type: 'rp.get', keys: missing.slice(i, i + perMsg) });
      if (diff.ours.length === 0 && diff.theirs.length === 0)
        this.ctx.emit({ kind: 'replica-conflict', peer: s.peer });
      return this.drive(this.ctx.now());
    }
    if (s.phase === 'fetch') {
      // Pushed after fetching: a version of ours that lost a conflict to a fetched one is gone
      // from the set, so only versions the other side lacks and should keep are sent.
      s.phase = 'push';
      const set = this.holder.set;
      const push: Entry[] = [];
      for (const [k1, k2] of s.ours) {
        const e = set.byContentHash(k1, k2);
        if (!e) continue;
        if (fitsOne(e, PUSH_SIZING_REQUEST, this.bodyBytesMax)) push.push(e);
        else if (this.large) s.queue.push({ type: 'rp.put', entries: [e], large: true });
      }
      // Pushes are requests too (rp.put -> rp.got): windowed and resent, so none is lost silently.
      while (push.length > 0)
        s.queue.push({ type: 'rp.put', entries: takeEntries(push, PUSH_SIZING_REQUEST, this.bodyBytesMax) });
      if (s.queue.length > 0) return this.drive(this.ctx.now());
    }
    this.end(true, 'repaired');
  }

  private end(ok: boolean, reason: string): void {
    const s = this.session!;
    this.session = null;
    this.ctx.emit({ kind: 'replica-sync', peer: s.peer, fetched: s.fetched, pushed: s.pushed, ok, reason });
  }

  /**
   * An answer to a tree, IBLT or push request (`rp.tr`, `rp.ir`, `rp.got`), with the bytes it
   * carries (none for `rp.got`); an answer that does not fit its request is rejected.
   */
  onReply(from: Origin, request: number, bytes: Buffer): void {
    const s = this.session;
    const p = s?.outstanding.get(request);
    if (!s || !p || from.id !== s.peer) return;
    if (p.type === 'rp.tq') {
      if (bytes.length !== p.parents.length * DIGEST_FANOUT * HASH_BYTES) return this.reject();
      const own = this.holder.set.tree[s.level]!;
      p.parents.forEach((parent, i) => {
        for (let c = 0; c < DIGEST_FANOUT; c++) {
          const bucket = parent * DIGEST_FANOUT + c;
          const theirs = bytes.readUInt32LE((i * DIGEST_FANOUT + c) * HASH_BYTES);
          if (own[2 * bucket + s.lane] !== theirs) s.differing.push(bucket);
        }
      });
    } else if (p.type === 'rp.put') {
      s.pushed += p.entries.length;
    } else if (p.type === 'rp.iq') {
      if (bytes.length !== p.count * IBLT_CELL_BYTES || p.cells !== s.cells) return this.reject();
      s.remote!.readCells(bytes, p.first, p.count);
    } else return;
    s.outstanding.delete(request);
    this.drive(this.ctx.now());
  }

  /**
   * Entries an `rp.ent` brought (the holder stored `stored` of them already): they settle the keys
   * of our fetch they answer; the fetch is done once none is missing.
   */
  onFetched(from: Origin, request: number, stored: Entry[], large = false): void {
    const s = this.session;
    const p = s && request !== 0 && from.id === s.peer ? s.outstanding.get(request) : undefined;
    if (!s || p?.type !== 'rp.get') return;
    s.fetched += stored.length;
    // A version received settles its key even if ours won the conflict and stays.
    const got = new Set(stored.map((e) => hash64(formatLine(e), 1).join(':')));
    p.keys = p.keys.filter(([k1, k2]) => !got.has(`${k1}:${k2}`) && !this.holder.set.byContentHash(k1, k2));
    if (large && stored.length > 0) {
      // The responder is sending: give the rest of this fetch its full time again.
      p.sentAt = this.ctx.now();
      p.tries = 1;
    }
    if (p.keys.length === 0) {
      s.outstanding.delete(request);
      this.drive(this.ctx.now());
    }
  }
}
