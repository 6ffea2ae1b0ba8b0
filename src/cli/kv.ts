/**
 * The client side of `peer kv`: one peer running the KeyValue protocol, with promise
 * APIs for writes (until --acks holders confirmed), reads (until --read holders answered) and
 * dumps, woken by the protocol's events rather than by polling, so latencies are measured well.
 * It listens as an observer, or joins for its run (`transient`) when it may send or receive a value
 * too large for one datagram: reliable delivery carries those only between members.
 */
import { Flags } from '@oclif/core';
import { KeyValue, encodeOp, type KvHolderStore, type KvOp, type KvVersion } from '../p2p/kv/index.js';
import { ReliableDelivery } from '../p2p/reliable/index.js';
import { nameOrUnheard } from '../p2p/names.js';
import {
  acksSatisfied,
  appendFits,
  LARGE_MESSAGE_BYTES_MAX,
  envelopeOverhead,
  parseAckPolicy,
  type AckPolicy,
  entryId,
} from '../p2p/replication/index.js';
import type { PeerNode } from '../p2p/node.js';
import type { KvStore } from '../storage/kv.js';
import type { StorageHealth } from '../storage/health.js';
import { GroupError } from './base.js';
import { UsageError } from './network.js';
import { jsonMs } from './output.js';
import { startPeer, type NetworkSettings, type RunningPeer } from './peer.js';
import { HOLDER_DISCOVERY_MS, refusals, refusedTooMany } from './replica.js';

/** A waiter also re-checks this often (a holder dying changes what "all" means without an event). */
export const KV_RECHECK_MS = 50;
/** `kv get` of a key that does not exist: an answer, not a failure (1 and 2 keep base.ts's meaning). */
export const EXIT_NOT_FOUND = 3;

export const writeFlags = {
  acks: Flags.string({
    summary: 'Holders that must confirm the write durably: all, majority, or a number.',
    default: 'all',
  }),
  timeout: Flags.integer({
    summary: 'How long to wait for the holders, in ms.',
    default: 5_000,
    min: 1,
    max: 3_600_000,
  }),
};

export const readFlags = {
  read: Flags.string({
    summary: 'Holders that must answer a read: all, majority, or a number (the newest answer wins).',
    default: 'majority',
  }),
  timeout: writeFlags.timeout,
};

export function policyFlag(name: string, value: string): AckPolicy {
  const p = parseAckPolicy(value);
  if (!p) throw new UsageError(`--${name} ${value} is not valid; use all, majority or a number >= 1`);
  return p;
}

/** A holder's store as the protocol sees it, with every write's outcome reported to `health`. */
export function reportingStore(store: KvStore, file: string, health: StorageHealth): KvHolderStore {
  return {
    set: store.set,
    apply: (entries) => {
      const r = store.apply(entries);
      // Only a commit that was tried says something about the disk.
      if (r.failure || r.added.length > 0 || r.replaced.length > 0)
        health.record(file, 'kv', r.failure ?? null);
      return r;
    },
    flush: () => store.flush(),
    rewriteCanonical: () => store.rewriteCanonical(),
    get: (key) => store.get(key),
    scan: (after, limit) => store.scan(after, limit),
  };
}

/** Whether `op` fits one datagram from a client named `name`: if not, the client must join. */
export function opFitsDatagram(op: KvOp, name: string): boolean {
  return appendFits(encodeOp(op), envelopeOverhead(name));
}

export interface WriteResult {
  ok: boolean;
  op: 'put' | 'delete';
  key: string;
  id: string;
  lamport: number;
  acks: string;
  confirmed: string[];
  missing: string[];
  /** Holders that could not store it, with why: "h1 (disk full)". */
  refused: string[];
  ms: number;
}

export interface ReadResult {
  ok: boolean;
  key: string;
  found: boolean;
  value: string | null;
  /** The winning version among the answers (a tombstone for a deleted key). */
  version: KvVersion | null;
  answered: string[];
  known: number;
  ms: number;
}

interface Waiter {
  check: () => boolean;
  done: () => void;
}

/**
 * What `peer kv` installs: reliable delivery for what does not fit a datagram, and the kv protocol
 * over it; `peer kv serve` passes its `store`, a one-shot client none.
 */
export function installKeyValue(
  node: PeerNode,
  store?: KvHolderStore,
): { kv: KeyValue; large: ReliableDelivery } {
  const large = node.install(
    (ctx, n) => new ReliableDelivery(ctx, n.membership, { messageBytesMax: LARGE_MESSAGE_BYTES_MAX }),
  );
  const kv = node.install(
    (ctx, n) => new KeyValue(ctx, n.membership, { store, envelopeBytes: envelopeOverhead(node.name), large }),
  );
  return { kv, large };
}

export class KvClient {
  /** Every holder a write's acknowledgements named (acked or known to an acker), by id. */
  readonly namedHolders = new Map<string, string>();
  private readonly waiters = new Set<Waiter>();

  /** The protocol the client's peer installed (peer.installed). */
  readonly kv: KeyValue;

  private constructor(readonly peer: RunningPeer<KeyValue>) {
    this.kv = peer.installed;
    peer.node.on((e) => {
      if (e.kind === 'kv-ack' || e.kind === 'kv-answer' || e.kind === 'kv-refused') this.wake();
    });
  }

  /**
   * Starts an observer (a member for its run if `transient`: see the header) and waits until at
   * least one kv holder answered its probe (and a moment more, so `all` counts every holder).
   * Their answers carry their Lamport times, so a write made now is ordered after every write
   * those holders had acknowledged.
   */
  static async start(settings: NetworkSettings, timeoutMs: number, transient: boolean): Promise<KvClient> {
    const peer = await startPeer(settings, {
      observer: !transient,
      transient,
      install: (node) => installKeyValue(node).kv,
    });
    const client = new KvClient(peer);
    const { kv } = client;
    const started = Date.now();
    await client.until(
      () => kv.liveHolders().length > 0 && Date.now() - started >= HOLDER_DISCOVERY_MS,
      timeoutMs,
    );
    if (kv.liveHolders().length === 0) {
      await client.stop();
      throw new GroupError(
        `no kv holder answered within ${timeoutMs} ms; start one with 'peer kv serve', and check --interface, --group and --port`,
      );
    }
    return client;
  }

  nameOf(id: string): string {
    return nameOrUnheard(this.kv.holders().find((h) => h.id === id)?.name, id);
  }

  /**
   * Writes and waits until `policy` holders confirmed or `timeoutMs` passed. With `keep`, a write
   * that timed out stays tracked (and retried) until settle(): the bench waits for it at the end.
   */
  async write(
    op: KvOp,
    policy: AckPolicy,
    acks: string,
    timeoutMs: number,
    keep = false,
  ): Promise<WriteResult> {
    const started = performance.now();
    const entry = this.kv.write(op);
    const id = entryId(entry);
    const satisfied = () => {
      const st = this.kv.writeStatus(id)!;
      return acksSatisfied(policy, st.acked.length, st.known);
    };
    // Holders that said they cannot store it (a full disk) end the wait early when too many did.
    await this.until(() => satisfied() || refusedTooMany(policy, this.kv.writeStatus(id)!), timeoutMs);
    const ok = satisfied();
    const ms = jsonMs(performance.now() - started);
    const st = this.kv.writeStatus(id)!;
    for (const a of st.acked) this.namedHolders.set(a, this.nameOf(a));
    for (const m of st.missing) this.namedHolders.set(m.id, m.name);
    if (ok || !keep) this.kv.settle(id);
    return {
      ok,
      op: op.kind,
      key: op.key,
      id,
      lamport: entry.lamport,
      acks,
      confirmed: st.confirmed,
      missing: st.missing.map((m) => m.name).sort(),
      refused: ok ? [] : refusals(st.refused),
      ms,
    };
  }

  async read(key: string, policy: AckPolicy, timeoutMs: number): Promise<ReadResult> {
    const started = performance.now();
    const q = this.kv.read(key);
    const ok = await this.until(() => {
      const st = this.kv.readStatus(q)!;
      return acksSatisfied(policy, st.answers.size, st.known);
    }, timeoutMs);
    const st = this.kv.readStatus(q)!;
    this.kv.endRead(q);
    const v = st.latest;
    return {
      ok,
      key,
      found: v !== null && v.value !== null,
      value: v?.value ?? null,
      version: v,
      answered: [...st.answers.keys()].map((x) => this.nameOf(x)).sort(),
      known: st.known,
      ms: jsonMs(performance.now() - started),
    };
  }

  /** Every row of one holder's table, tombstones included. */
  async dump(holder: { id: string; address: string }, timeoutMs: number): Promise<KvVersion[]> {
    const h = this.kv.scan(holder);
    const ok = await this.until(() => h.done, timeoutMs);
    this.kv.endScan(h);
    if (!ok || h.failed)
      throw new GroupError(
        `the dump from ${this.nameOf(holder.id)} did not finish (${h.failed || `timed out after ${timeoutMs} ms`}); try another holder with --from`,
      );
    return h.rows;
  }

  /**
   * Resolves true once `cond` holds (checked on every kv event and every KV_RECHECK_MS while it
   * waits: a client waiting for nothing, `peer kv shell` at its prompt, sets no timer).
   */
  until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
    if (cond()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const end = (ok: boolean) => {
        clearTimeout(timer);
        clearInterval(sweep);
        this.waiters.delete(w);
        resolve(ok);
      };
      const w: Waiter = { check: cond, done: () => end(true) };
      const timer = setTimeout(() => end(cond()), timeoutMs);
      const sweep = setInterval(() => {
        if (cond()) end(true);
      }, KV_RECHECK_MS);
      this.waiters.add(w);
    });
  }

  async stop(): Promise<void> {
    await this.peer.stop();
  }

  private wake(): void {
    for (const w of [...this.waiters]) if (w.check()) w.done();
  }
}
