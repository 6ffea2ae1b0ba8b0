/**
 * Anti-entropy, the responder's side (B). B answers the initiator's requests from its replica and
 * keeps no session state beyond a short cache of the IBLTs it built (one per session it serves, so
 * the chunks of one table come from one snapshot): bucket hashes of the digest tree (`rp.tq`), IBLT
 * cells (`rp.iq`), the entries some content hashes name (`rp.get`), and it stores what the
 * initiator pushes (`rp.put`), confirming with `rp.got` only once the entries are durable. An
 * entry too large for one `rp.ent` datagram goes alone as a reliable message (large.ts), through
 * the outbox that bounds what is in flight; a fetch resent meanwhile does not send it twice.
 */
import type { ProtocolContext } from '../protocol.js';
import type { Body, Origin } from '../kit/message.js';
import type { Entry } from './entry.js';
import type { Holder } from './holder.js';
import { Iblt } from './iblt.js';
import { encodeLarge, type LargeOutbox } from './large.js';
import {
  ENTRIES,
  GET,
  HASH_BYTES,
  IBLT_REPLY,
  IBLT_REQUEST,
  PUT_STORED,
  TREE_REPLY,
  TREE_REQUEST,
  unpackKeys,
  wireEntry,
} from './messages.js';
import { DIGEST_FANOUT } from './replica-set.js';
import { fitsOne, ibltCellsPerReply, takeEntries, treeParentsPerReply } from './sizing.js';

/** IBLTs a responder keeps built (one per session it serves), and their total cells (16 B each). */
export const IBLT_CACHE_MAX = 16;
export const IBLT_CACHE_CELLS_MAX = 1 << 22;
export const IBLT_CACHE_MS = 10_000;

export class AntiEntropyResponder {
  private readonly ibltCache = new Map<string, { iblt: Iblt; at: number }>();

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly holder: Holder,
    /** Body bytes of our replies: our envelope, with our name, takes the rest of a datagram. */
    private readonly bodyBytesMax: number,
    private readonly reject: () => void,
    /** Where entries too large for a datagram go; null: they are not sent (never, in the CLI). */
    private readonly large: LargeOutbox | null,
  ) {}

  onTreeRequest(from: Origin, req: Body<typeof TREE_REQUEST>): void {
    const level = this.holder.set.tree[req.level]!;
    const parentsMax = DIGEST_FANOUT ** (req.level - 1);
    // More parents than our answer holds: no initiator of ours asks that (it sizes by our name).
    if (
      req.parents.length > treeParentsPerReply(this.bodyBytesMax) ||
      req.parents.some((p) => p >= parentsMax)
    )
      return this.reject();
    const hashes = Buffer.alloc(req.parents.length * DIGEST_FANOUT * HASH_BYTES);
    req.parents.forEach((parent, i) => {
      for (let c = 0; c < DIGEST_FANOUT; c++)
        hashes.writeUInt32LE(
          level[2 * (parent * DIGEST_FANOUT + c) + req.lane]!,
          (i * DIGEST_FANOUT + c) * HASH_BYTES,
        );
    });
    this.ctx.send(
      from.address,
      ...TREE_REPLY.out({ request: req.request, hashes: hashes.toString('base64') }),
    );
  }

  onIbltRequest(from: Origin, req: Body<typeof IBLT_REQUEST>): void {
    if (req.first + req.count > req.cells || req.count > ibltCellsPerReply(this.bodyBytesMax))
      return this.reject();
    const key = `${from.id}:${req.session}:${req.cells}`;
    let cached = this.ibltCache.get(key);
    if (!cached) {
      let cells = req.cells;
      for (const v of this.ibltCache.values()) cells += v.iblt.m;
      while (
        this.ibltCache.size > 0 &&
        (this.ibltCache.size >= IBLT_CACHE_MAX || cells > IBLT_CACHE_CELLS_MAX)
      ) {
        const [oldest, v] = this.ibltCache.entries().next().value!;
        cells -= v.iblt.m;
        this.ibltCache.delete(oldest);
      }
      cached = { iblt: Iblt.build(req.cells, this.holder.set), at: this.ctx.now() };
      this.ibltCache.set(key, cached);
    }
    const cells = cached.iblt.writeCells(req.first, req.count).toString('base64');
    this.ctx.send(from.address, ...IBLT_REPLY.out({ request: req.request, cells }));
  }

  onGet(from: Origin, req: Body<typeof GET>): void {
    const keys = unpackKeys(req.keys);
    if (!keys) return this.reject();
    const found: Entry[] = [];
    for (const [k1, k2] of keys) {
      const e = this.holder.set.byContentHash(k1, k2);
      if (!e) continue;
      if (fitsOne(e, req.request, this.bodyBytesMax)) found.push(e);
      else
        this.large?.offer(from.id, `${k1}:${k2}`, () =>
          encodeLarge(ENTRIES.type, ENTRIES.toWire({ request: req.request, entries: [wireEntry(e)] })),
        );
    }
    while (found.length > 0) {
      const entries = takeEntries(found, req.request, this.bodyBytesMax);
      this.ctx.send(from.address, ...ENTRIES.out({ request: req.request, entries: entries.map(wireEntry) }));
    }
  }

  /** Entries pushed by a session's initiator: written (durably), then acknowledged. */
  onPut(from: Origin, request: number, entries: Entry[]): void {
    // Entries not stored are not confirmed: the initiator sends them again, or a later session does.
    if (!this.holder.storeRepair(entries, from.id).failed)
      this.ctx.send(from.address, ...PUT_STORED.out({ request }));
  }

  /** Forgets the IBLTs built IBLT_CACHE_MS ago or more; returns when the next one is due. */
  expire(now: number): number {
    let next = Infinity;
    for (const [k, v] of this.ibltCache)
      if (now - v.at >= IBLT_CACHE_MS) this.ibltCache.delete(k);
      else next = Math.min(next, v.at + IBLT_CACHE_MS);
    return next;
  }
}
