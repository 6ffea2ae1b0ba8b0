/**
 * Anti-entropy, the responder's side (B). B answers the initiator's requests from its replica and
 * keeps no session state beyond a short cache of the IBLTs it built (one per session it serves, so
 * the chunks of one table come from one snapshot): bucket hashes of the digest tree (`rp.tq`), IBLT
 * cells (`rp.iq`), the entries some content hashes name (`rp.get`), and it stores what the
 * initiator pushes (`rp.put`), confirming with `rp.got` only once the entries are durable.
 */
import type { ProtocolContext } from '../protocol.js';
import type { Envelope } from '../wire.js';
import type { Address } from '../transport/transport.js';
import type { Entry } from './entry.js';
import type { Holder } from './holder.js';
import { Iblt } from './iblt.js';
import { HASH_BYTES, send, unpackKeys, type Bodies } from './messages.js';
import { DIGEST_FANOUT } from './replica-set.js';
import { ibltCellsPerReply, takeEntries, treeParentsPerReply } from './sizing.js';

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
  ) {}

  onTreeRequest(from: Address, req: Bodies['rp.tq']): void {
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
    send(this.ctx, from, 'rp.tr', { request: req.request, hashes });
  }

  onIbltRequest(env: Envelope, from: Address, req: Bodies['rp.iq']): void {
    if (req.first + req.count > req.cells || req.count > ibltCellsPerReply(this.bodyBytesMax))
      return this.reject();
    const key = `${env.i}:${req.session}:${req.cells}`;
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
    send(this.ctx, from, 'rp.ir', {
      request: req.request,
      cells: cached.iblt.writeCells(req.first, req.count),
    });
  }

  onGet(from: Address, req: Bodies['rp.get']): void {
    const keys = unpackKeys(req.keys);
    if (!keys) return this.reject();
    const found: Entry[] = [];
    for (const [k1, k2] of keys) {
      const e = this.holder.set.byContentHash(k1, k2);
      if (e) found.push(e);
    }
    while (found.length > 0) {
      const entries = takeEntries(found, req.request, this.bodyBytesMax);
      send(this.ctx, from, 'rp.ent', { request: req.request, entries });
    }
  }

  /** Entries pushed by a session's initiator: written (durably), then acknowledged. */
  onPut(env: Envelope, from: Address, put: Bodies['rp.put']): void {
    // Entries not stored are not confirmed: the initiator sends them again, or a later session does.
    if (!this.holder.storeRepair(put.entries, env.i).failed)
      send(this.ctx, from, 'rp.got', { request: put.request });
  }

  expire(now: number): void {
    for (const [k, v] of this.ibltCache) if (now - v.at > IBLT_CACHE_MS) this.ibltCache.delete(k);
  }
}
