/**
 * `--metrics HOST:PORT` of the commands that run a peer until stopped (`peer up`, `peer token-ring`,
 * `peer replicate` as a holder, `peer kv serve`): the peer's counters in Prometheus text format
 * over HTTP (prom-client), for a Prometheus server to scrape. docs/metrics.md lists every metric
 * and which command has it.
 *
 * Pull, not push: every protocol module already counts what it does (node.stats, the transport
 * layers' stats, reliable delivery's stats, the election's term, the clock's status, the token
 * ring's stats). Collectors read those at scrape time, so a peer nobody scrapes does no work for
 * metrics beyond prom-client's process sampling. What no module keeps is counted here as it
 * happens, from the events the protocols already emit (a listener adds to a number): membership
 * events, token regenerations by reason, what a replica or kv holder wrote and what its
 * anti-entropy sessions moved; and checkpoint commit times (a histogram observation every
 * checkpoint interval). prom-client's default process metrics (CPU, memory, event-loop lag) come
 * with them; its event-loop delay monitor is a native timer, no JavaScript.
 *
 * A scrape reads counters and lists the members once: it runs on the event loop like a datagram
 * and takes about as long, so it never holds the protocols up. Nothing a remote peer sends becomes
 * a label (member names, addresses, keys and entry texts never do), so a peer cannot grow the output.
 */
import http from 'node:http';
import net from 'node:net';
import { Flags } from '@oclif/core';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PeerNode } from '../p2p/node.js';
import type { MemberState, PeerEvent, PeerEventOf } from '../p2p/protocol.js';
import type { ReliableDelivery } from '../p2p/reliable/index.js';
import type { TokenRing } from '../p2p/token-ring/index.js';
import type { Entry, Replication } from '../p2p/replication/index.js';
import { decodeOp, type KeyValue } from '../p2p/kv/index.js';
import type { GroupCommitStats } from '../storage/checkpoint.js';
import type { Coordination } from './coordination.js';
import type { Checkpointing } from './checkpointing.js';
import type { SecurityLayers } from './security.js';
import type { RunningPeer } from './peer.js';
import { UsageError } from './network.js';

/** Where `--metrics PORT` listens: this machine only. Metrics are not authenticated. */
export const METRICS_HOST_DEFAULT = '127.0.0.1';
/** The path a scrape asks for (Prometheus's default metrics_path). */
export const METRICS_PATH = '/metrics';
/** A client slower than this to send its request is cut off: it must not hold a socket. */
export const METRICS_REQUEST_TIMEOUT_MS = 5000;
/** Open connections at once; Prometheus uses one per target, so more is a misbehaving client. */
export const METRICS_CONNECTIONS_MAX = 16;
/**
 * Bucket bounds of the checkpoint commit histogram (seconds): a commit fsyncs the WAL, from
 * about 1 ms on an SSD to hundreds of ms on a busy disk; past 2.5 s the disk is the problem.
 */
export const CHECKPOINT_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

const MEMBER_STATES: readonly MemberState[] = ['alive', 'suspect', 'dead', 'left'];
type TokenRegeneratedReason = PeerEventOf<'token-regenerated'>['reason'];

export interface MetricsAddress {
  host: string;
  port: number;
}

/** `PORT` (on 127.0.0.1), `HOST:PORT` or `[IPV6]:PORT`; HOST an IP address or `localhost`. */
export function parseMetricsAddress(spec: string): MetricsAddress {
  const bad = (why: string) =>
    new UsageError(
      `--metrics '${spec}' ${why}; give PORT (127.0.0.1:PORT) or HOST:PORT, e.g. 127.0.0.1:9464`,
    );
  const m = /^(?:(?:\[([^\]]+)\]|([^:[\]]+)):)?([0-9]+)$/.exec(spec.trim());
  if (!m) throw bad('is not PORT or HOST:PORT');
  const host = m[1] ?? m[2] ?? METRICS_HOST_DEFAULT;
  const port = Number(m[3]);
  if (!Number.isSafeInteger(port) || port < 1 || port > 65535) throw bad('has no port in 1-65535');
  if (host !== 'localhost' && net.isIP(host) === 0) throw bad(`has '${host}', not an IP address`);
  if (m[1] !== undefined && net.isIP(host) !== 6) throw bad(`has '${host}' in brackets, not an IPv6 address`);
  return { host, port };
}

/**
 * The protocols a command runs, for their collectors: each is read only where it is installed
 * (`peer up` runs coordination and the group's reliable stream; `peer token-ring` the ring;
 * `peer replicate` and `peer kv serve` a holder and reliable delivery for large entries).
 */
export interface MeteredModules {
  reliable?: ReliableDelivery;
  coordination?: Coordination;
  tokenRing?: TokenRing;
  /** A replica holder: its protocol and the entries it holds. */
  replica?: { replication: Replication; set: { readonly size: number } };
  /** A kv holder: the protocol and its operation log. */
  kv?: { kv: KeyValue; set: { readonly size: number } };
}

/** What a running peer counts, as collectors read. */
export interface MeteredPeer extends MeteredModules {
  node: PeerNode;
  security: SecurityLayers;
  /** The UDP socket's send and socket errors; null where there is none (simulation). */
  udpErrors: { send: number; socket: number } | null;
  /** Group commit of the checkpoint store; null for a peer that keeps nothing. */
  commits: GroupCommitStats | null;
  onCheckpointCommitted: Checkpointing['onCommitted'] | null;
}

/** What a command runs, for its collectors. */
export function meteredPeer(peer: RunningPeer<unknown>, modules: MeteredModules): MeteredPeer {
  return {
    node: peer.node,
    security: peer.security,
    udpErrors: peer.transport.errors,
    commits: peer.checkpoints?.stats ?? null,
    onCheckpointCommitted: peer.onCheckpointCommitted,
    ...modules,
  };
}

/** The --metrics flag of every command that runs a peer until stopped. */
export const metricsFlag = {
  metrics: Flags.string({
    summary:
      'Serve Prometheus metrics at http://HOST:PORT/metrics (PORT alone: 127.0.0.1:PORT); not authenticated.',
    helpValue: '[HOST:]PORT',
    description: 'Metrics, their meaning and a prometheus.yml example: docs/metrics.md.',
    env: 'PEER_METRICS',
  }),
};

/**
 * The --metrics server when the flag is given, else null. It listens before the peer starts, so a
 * port in use or a bad address stops the command before it joins the group.
 */
export async function listenMetrics(spec: string | undefined): Promise<MetricsServer | null> {
  return spec === undefined ? null : MetricsServer.listen(parseMetricsAddress(spec));
}

/**
 * What `startPeer(...).then(...)` takes to meter the peer it starts: once it runs, its collectors
 * (the node's, and `modules` from what was installed) are registered, before any datagram is
 * handled (startPeer's last await is the node's start); if it fails to start, the server closes.
 */
export function metering<I>(
  metrics: MetricsServer | null,
  modules: (installed: I) => MeteredModules,
): [(peer: RunningPeer<I>) => RunningPeer<I>, (err: unknown) => Promise<never>] {
  return [
    (peer) => {
      metrics?.watch(meteredPeer(peer, modules(peer.installed)));
      return peer;
    },
    async (err) => {
      await metrics?.close();
      throw err;
    },
  ];
}

/**
 * Registers the peer's collectors on `registry`; returns how to stop counting events (the
 * collectors stay, reading the stopped peer's final counts).
 */
export function registerPeerMetrics(registry: Registry, p: MeteredPeer): () => void {
  const def = new Definer(registry);
  const { node } = p;
  const stops: Array<() => void> = [];

  def.gaugeBy('peer_members', 'Members this peer knows, by state (itself not included).', 'state', () => {
    const n = Object.fromEntries(MEMBER_STATES.map((s) => [s, 0])) as Record<MemberState, number>;
    for (const m of node.membership.list()) n[m.state]++;
    return n;
  });
  def.gauge(
    'peer_health_score',
    "This peer's local health score (0 healthy); timeouts stretch by 1 + score.",
    () => node.membership.health.score,
  );
  def.gauge(
    'peer_incarnation',
    "This peer's incarnation: it grows at every start and refutation.",
    () => node.incarnation,
  );

  const events = { join: 0, suspect: 0, refute: 0, dead: 0, left: 0, restart: 0 };
  stops.push(
    node.on((e) => {
      if (e.kind in events) events[e.kind as keyof typeof events]++;
    }),
  );
  def.counter(
    'peer_member_joins_total',
    'Members heard for the first time (or again once forgotten, a minute after death).',
    () => events.join,
  );
  def.counter(
    'peer_member_restarts_total',
    'Members heard again with a higher incarnation after a restart.',
    () => events.restart,
  );
  def.counter(
    'peer_suspicions_total',
    'Members this peer began to suspect (silent past the suspicion timeout).',
    () => events.suspect,
  );
  def.counter(
    'peer_refutations_total',
    'Suspicions of this peer that it refuted by raising its incarnation.',
    () => events.refute,
  );
  def.counter('peer_deaths_total', 'Members this peer declared dead.', () => events.dead);
  def.counter('peer_leaves_total', 'Members that left gracefully.', () => events.left);

  def.counter(
    'peer_datagrams_received_total',
    'Datagrams that reached the node (after the rate guard and decryption).',
    () => node.stats.datagramsIn,
  );
  def.counter('peer_datagrams_sent_total', 'Datagrams this peer sent.', () => node.stats.datagramsOut);
  def.counter(
    'peer_received_bytes_total',
    'Bytes of the datagrams that reached the node.',
    () => node.stats.bytesIn,
  );
  def.counter(
    'peer_sent_bytes_total',
    'Bytes of the datagrams this peer sent (before encryption).',
    () => node.stats.bytesOut,
  );
  def.counterBy(
    'peer_datagrams_dropped_total',
    'Datagrams the node dropped, by reason (did not decode, another version, our own id).',
    'reason',
    () => ({
      ...node.stats.dropped,
      'own-id': node.stats.ownId,
    }),
  );
  def.counterBy(
    'peer_messages_refused_total',
    'Messages refused because a counter or claim in them was out of bounds, by counter.',
    'counter',
    () => node.stats.refused,
  );
  def.counter(
    'peer_handler_errors_total',
    'Valid messages a protocol failed to handle (a bug: should stay 0).',
    () => node.stats.handlerErrors,
  );

  const guard = () =>
    p.security.secure ? p.security.secure.stats.unverifiedSources : p.security.guard!.stats;
  def.counter(
    'peer_rate_guard_dropped_total',
    'Datagrams the per-source rate guard dropped (open group: any source; keyed: senders not yet authenticated).',
    () => guard().rateLimited,
  );
  def.gauge('peer_rate_guard_sources', 'Sources the rate guard tracks now.', () => guard().sourcesTracked);
  def.counterBy(
    'peer_seal_dropped_total',
    'Keyed group: datagrams the encryption layer dropped, by reason.',
    'reason',
    () => p.security.secure?.stats.dropped ?? {},
  );
  def.counterBy(
    'peer_udp_errors_total',
    'UDP socket errors, by kind (send: a datagram not sent).',
    'kind',
    (): Record<string, number> => {
      const e = p.udpErrors;
      return e ? { send: e.send, socket: e.socket } : {};
    },
  );

  const commits = p.commits;
  if (commits) {
    def.counter(
      'peer_store_commits_total',
      'Group commits (fsynced transactions) of the checkpoint store.',
      () => commits.commits,
    );
    def.counter('peer_store_commit_ops_total', 'Writes those commits carried.', () => commits.ops);
    def.counter(
      'peer_store_commit_failures_total',
      'Writes that failed (a full disk, an I/O error).',
      () => commits.failed,
    );
  }
  if (p.onCheckpointCommitted) {
    const h = new Histogram({
      name: 'peer_checkpoint_commit_seconds',
      help: 'Time to commit one periodic checkpoint (flush queued writes, capture, fsynced commit).',
      buckets: CHECKPOINT_SECONDS_BUCKETS,
      registers: [registry],
    });
    stops.push(p.onCheckpointCommitted((ms) => h.observe(ms / 1000)));
  }
  if (p.reliable) reliableMetrics(def, p.reliable);
  if (p.coordination) coordinationMetrics(def, node, p.coordination);
  if (p.tokenRing) stops.push(tokenRingMetrics(def, node, p.tokenRing));
  if (p.replica) {
    const { replication, set } = p.replica;
    stops.push(holderMetrics(def, node, REPLICA_HOLDER, set, () => replication.rejected, replicaEvent));
  }
  if (p.kv) stops.push(kvMetrics(def, node, p.kv.kv, p.kv.set));
  return () => {
    for (const stop of stops) stop();
  };
}

function reliableMetrics(def: Definer, reliable: ReliableDelivery): void {
  const r = reliable.stats;
  def.counter(
    'peer_reliable_published_total',
    'Messages published on the reliable stream.',
    () => r.published,
  );
  def.counter(
    'peer_reliable_delivered_total',
    'Reliable messages delivered to this peer, in order.',
    () => r.delivered,
  );
  def.counter(
    'peer_reliable_duplicates_total',
    'Reliable messages received again and ignored.',
    () => r.duplicates,
  );
  def.counter(
    'peer_reliable_nacks_sent_total',
    'NACKs this peer sent for gaps in others’ streams.',
    () => r.nacksSent,
  );
  def.counter(
    'peer_reliable_repairs_sent_total',
    'Repairs this peer sent in answer to NACKs.',
    () => r.repairsSent,
  );
  def.counter(
    'peer_reliable_repairs_rate_limited_total',
    'Repairs not sent because of the repair rate limit.',
    () => r.repairsRateLimited,
  );
  def.counter(
    'peer_reliable_lost_total',
    'Reliable messages lost for good (a gap no longer repairable).',
    () => r.lost,
  );
}

function coordinationMetrics(def: Definer, node: PeerNode, { election, clock }: Coordination): void {
  def.gauge('peer_election_term', 'The election term this peer is in.', () => election.term());
  def.gaugeBy(
    'peer_coordinator',
    'Who coordinates the group, as this peer sees it: 1 on the role that holds.',
    'role',
    () => {
      const c = election.coordinator();
      const role = c === null ? 'none' : c === node.id ? 'self' : 'other';
      return {
        self: Number(role === 'self'),
        other: Number(role === 'other'),
        none: Number(role === 'none'),
      };
    },
  );
  def.counter(
    'peer_clock_rounds_total',
    'Berkeley clock-sync rounds this peer led as coordinator.',
    () => clock.rounds,
  );
  def.gauge(
    'peer_clock_offset_seconds',
    "This peer's group clock minus its system clock.",
    () => clock.status().offsetMs / 1000,
  );
}

/** `peer token-ring`: the ring's own counters (TokenRing.stats) and where the token is. */
function tokenRingMetrics(def: Definer, node: PeerNode, tr: TokenRing): () => void {
  const s = tr.stats;
  def.counter(
    'peer_token_passes_total',
    'Token passes of this peer that its successor acknowledged.',
    () => s.passes,
  );
  def.counter(
    'peer_token_skips_total',
    'Successors this peer skipped because they did not acknowledge the token.',
    () => s.skips,
  );
  def.counter(
    'peer_token_stale_total',
    'Stale tokens this peer discarded (a newer one exists).',
    () => s.stale,
  );
  // Counted by why from the event the ring emits where it counts stats.regenerations.
  const regenerations: Record<TokenRegeneratedReason, number> = { first: 0, lost: 0, reconfigure: 0 };
  const stop = node.on((e) => {
    if (e.kind === 'token-regenerated') regenerations[e.reason]++;
  });
  def.counterBy(
    'peer_token_regenerations_total',
    'Tokens this peer made, by why: first (the ring had none), lost (its holder went silent), reconfigure (the ring changed).',
    'reason',
    () => regenerations,
  );
  def.counter(
    'peer_token_lease_rounds_total',
    'Lease rounds this peer ran as holder (a majority grants the critical section).',
    () => s.leaseRounds,
  );
  def.counter('peer_token_critical_sections_total', 'Critical sections this peer entered.', () => s.critical);
  def.counter(
    'peer_token_unstored_turns_total',
    'Turns this peer gave up because the fencing token could not be stored (a failing disk).',
    () => s.unstoredTurns,
  );
  def.gauge(
    'peer_token_generation',
    'Generation of the newest token this peer has seen (the fencing token).',
    () => tr.status().generation,
  );
  def.gauge('peer_token_epoch', 'Epoch of the newest token this peer has seen.', () => tr.status().epoch);
  def.gauge(
    'peer_token_ring_members',
    'Peers in the ring as this peer sees it (the peers that run peer token-ring).',
    () => tr.status().ring.length,
  );
  def.gauge('peer_token_holding', '1 while this peer holds the token.', () => Number(tr.status().holding));
  def.gauge('peer_token_in_critical_section', '1 while this peer is in the critical section.', () =>
    Number(tr.inCriticalSection),
  );
  return stop;
}

/** What a holder's collectors need from one of its events: entries it wrote, or a sync session. */
type HolderEvent =
  | { entries: readonly Entry[]; via: 'append' | 'repair' | 'local' }
  | { fetched: number; pushed: number; ok: boolean }
  | null;

/**
 * A replica holder's event as holderMetrics counts it. A replacement (another version of an entry
 * held, the preferred one taken) counts as a repair, as kv counts it (KeyValue.relay).
 */
function replicaEvent(e: PeerEvent): HolderEvent {
  switch (e.kind) {
    case 'replica-append':
      return { entries: e.entries, via: e.via };
    case 'replica-replace':
      return { entries: e.entries, via: 'repair' };
    case 'replica-sync':
      return e;
    default:
      return null;
  }
}

/** The names a holder's metrics take: `peer replicate`'s, or `peer kv serve`'s. */
interface HolderKind {
  prefix: string;
  /** What its entries are, for the help text. */
  entries: string;
}
const REPLICA_HOLDER: HolderKind = { prefix: 'peer_replica', entries: 'replica entries' };
const KV_HOLDER: HolderKind = { prefix: 'peer_kv', entries: 'kv operations (puts and deletes)' };

/**
 * A replica holder (the replication protocol, also under `peer kv serve`): what it keeps, what it
 * wrote and how each entry came, and what its anti-entropy sessions moved. The protocol counts none
 * of this itself but says all of it in its events, which are counted here as they happen; the
 * entries held are read from the replica's set when scraped.
 */
function holderMetrics(
  def: Definer,
  node: PeerNode,
  kind: HolderKind,
  set: { readonly size: number },
  rejected: () => number,
  read: (e: PeerEvent) => HolderEvent,
  onWritten: (entries: readonly Entry[]) => void = () => {},
): () => void {
  const { prefix, entries } = kind;
  const written = { append: 0, repair: 0, local: 0 };
  const bytes = { append: 0, repair: 0, local: 0 };
  const sessions = { ok: 0, failed: 0 };
  const moved = { fetched: 0, pushed: 0 };
  const stop = node.on((e) => {
    const h = read(e);
    if (h === null) return;
    if ('entries' in h) {
      written[h.via] += h.entries.length;
      for (const x of h.entries) bytes[h.via] += Buffer.byteLength(x.text);
      onWritten(h.entries);
      return;
    }
    sessions[h.ok ? 'ok' : 'failed']++;
    moved.fetched += h.fetched;
    moved.pushed += h.pushed;
  });
  def.gauge(`${prefix}_entries`, `The ${entries} this holder keeps.`, () => set.size);
  def.counterBy(
    `${prefix}_written_entries_total`,
    `The ${entries} this holder wrote, by how they came: append (a writer's), repair (anti-entropy), local (this peer's own).`,
    'via',
    () => written,
  );
  def.counterBy(
    `${prefix}_written_bytes_total`,
    `Bytes of the ${entries} this holder wrote (their text), by how they came; repair is what anti-entropy brought.`,
    'via',
    () => bytes,
  );
  def.counterBy(
    `${prefix}_sync_sessions_total`,
    'Anti-entropy sessions this holder ran against another holder, by result.',
    'result',
    () => sessions,
  );
  def.counterBy(
    `${prefix}_sync_entries_total`,
    `The ${entries} this holder's anti-entropy sessions moved, by direction (fetched here, pushed to the other).`,
    'direction',
    () => moved,
  );
  def.counter(
    `${prefix}_rejected_total`,
    'Messages dropped because their content was invalid past the schema (a bad entry).',
    rejected,
  );
  return stop;
}

/** `peer kv serve`: the holder's log as holderMetrics reads it, and the operations and reads it served. */
function kvMetrics(def: Definer, node: PeerNode, kv: KeyValue, set: { readonly size: number }): () => void {
  const ops = { put: 0, delete: 0 };
  const stop = holderMetrics(
    def,
    node,
    KV_HOLDER,
    set,
    () => kv.replication.rejected + kv.rejected,
    (e) => (e.kind === 'kv-apply' ? { entries: e.entries, via: e.via } : e.kind === 'kv-sync' ? e : null),
    (entries) => {
      for (const x of entries) {
        const op = decodeOp(x.text);
        if (op) ops[op.kind]++;
      }
    },
  );
  def.counterBy(
    'peer_kv_operations_total',
    'Operations this holder wrote, by kind (put, delete), however they came.',
    'op',
    () => ops,
  );
  def.counterBy(
    'peer_kv_requests_served_total',
    'Requests this holder answered, by kind: read (one key), scan (one page of a dump).',
    'kind',
    () => kv.served,
  );
  return stop;
}

/** Metrics whose values are read when scraped. */
class Definer {
  constructor(private readonly registry: Registry) {}

  counter(name: string, help: string, read: () => number): void {
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }

  counterBy(name: string, help: string, label: string, read: () => Readonly<Record<string, number>>): void {
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [k, v] of Object.entries(read())) this.inc({ [label]: k }, v);
      },
    });
  }

  gauge(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }

  gaugeBy(name: string, help: string, label: string, read: () => Readonly<Record<string, number>>): void {
    new Gauge({
      name,
      help,
      labelNames: [label],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [k, v] of Object.entries(read())) this.set({ [label]: k }, v);
      },
    });
  }
}

/** The HTTP endpoint: GET /metrics answers the registry's text; anything else is 404. */
export class MetricsServer {
  readonly registry = new Registry();
  private stopCounting: (() => void) | null = null;

  private constructor(
    private readonly server: http.Server,
    readonly url: string,
  ) {}

  /** Listens before the peer starts, so a port in use stops the command before it joins. */
  static async listen(address: MetricsAddress): Promise<MetricsServer> {
    const server = http.createServer();
    server.requestTimeout = METRICS_REQUEST_TIMEOUT_MS;
    server.headersTimeout = METRICS_REQUEST_TIMEOUT_MS;
    server.maxConnections = METRICS_CONNECTIONS_MAX;
    const where = address.host.includes(':')
      ? `[${address.host}]:${address.port}`
      : `${address.host}:${address.port}`;
    await new Promise<void>((resolve, reject) => {
      const failed = (err: NodeJS.ErrnoException) => reject(listenError(err, address, where));
      server.once('error', failed);
      server.listen(address.port, address.host, () => {
        server.off('error', failed);
        resolve();
      });
    });
    // Once listening, a failed accept (out of file descriptors) loses a scrape, never the peer.
    server.on('error', () => {});
    const metrics = new MetricsServer(server, `http://${where}${METRICS_PATH}`);
    server.on('request', (req, res) => metrics.answer(req, res));
    return metrics;
  }

  /** Starts collecting the peer's metrics and the process's (prom-client's defaults). */
  watch(peer: MeteredPeer): void {
    collectDefaultMetrics({ register: this.registry });
    this.stopCounting = registerPeerMetrics(this.registry, peer);
  }

  async close(): Promise<void> {
    this.stopCounting?.();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' || path !== METRICS_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`GET ${METRICS_PATH}\n`);
      return;
    }
    this.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
    );
  }
}

/** One line for a --metrics address we cannot listen on (exit 2: the user's to change). */
function listenError(err: NodeJS.ErrnoException, address: MetricsAddress, where: string): UsageError {
  const why =
    err.code === 'EADDRINUSE'
      ? `port ${address.port} is in use on ${address.host}: choose another port`
      : err.code === 'EADDRNOTAVAIL'
        ? `${address.host} is not an address of this machine: give one of its addresses`
        : err.code === 'EACCES'
          ? `port ${address.port} needs privileges: choose a port above 1023`
          : `cannot listen (${err.code ?? err.message}): choose another address`;
  return new UsageError(`--metrics ${where}: ${why}`);
}
