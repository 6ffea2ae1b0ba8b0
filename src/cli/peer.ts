/**
 * Starting a real peer for a command: settings from flags, identity from the data dir, a UDP
 * transport on the chosen interface, and a graceful stop on SIGINT/SIGTERM.
 */
import type { Membership } from '../p2p/membership.js';
import os from 'node:os';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { PeerNode } from '../p2p/node.js';
import { PROFILES, type ProfileName } from '../p2p/config.js';
import type { ReachMode } from '../p2p/reach.js';
import { UdpTransport } from '../p2p/transport/udp.js';
import { isPeerName } from '../p2p/wire.js';
import { PeerStore, StoreError } from '../storage/store.js';
import { DataDirLock } from '../storage/lock.js';
import { loadable } from '../p2p/bounds.js';
import type { Checkpoints } from '../storage/checkpoint.js';
import { StorageHealth } from '../storage/health.js';
import { recoveryLine, type RecoveryReport } from '../storage/recovery.js';
import { startCheckpointing, worthReporting, type Checkpointing } from './checkpointing.js';
import { Snapshot } from '../p2p/snapshot.js';
import type { ReliableDelivery } from '../p2p/reliable/index.js';
import {
  checkGroup,
  parseJoin,
  resolveInterface,
  resolveSeeds,
  UsageError,
  type JoinSeed,
} from './network.js';
import {
  guardFollowsMembers,
  keySettings,
  securityLayers,
  type KeySettings,
  type SecurityLayers,
} from './security.js';
import { runtimeFromEnv } from './coordination.js';
import { escapeForTerminal } from './sanitize.js';
import type { RememberedPeers } from '../p2p/join/remembered.js';

export interface NetworkFlagValues {
  name?: string;
  group: string;
  port: number;
  interface?: string;
  transport?: string;
  ttl: number;
  'data-dir': string;
  profile: string;
  'key-file'?: string;
  open?: boolean;
  join?: string[];
}

export interface NetworkSettings {
  name: string;
  group: string;
  port: number;
  interface: string;
  /** --transport (reach.ts); default auto. */
  transport?: ReachMode;
  ttl: number;
  dataDir: string;
  profile: ProfileName;
  /** The group keys from --key-file; null or absent: the group runs open. */
  keys?: KeySettings | null;
  /** --open: the group runs open on purpose, so the warning that it is open is not printed. */
  openOnPurpose?: boolean;
  /** --join: the seeds to join through (resolved by startPeer). */
  join?: JoinSeed[];
}

/** How often a peer that does not hold its host's door tries to claim it (udp.ts claimDoor). */
export const DOOR_RETRY_MS = 5000;
/** How often seed host names are looked up again (a seed moved to another address). */
export const SEED_RESOLVE_INTERVAL_MS = 60_000;

export function defaultName(): string {
  const host = os.hostname().split('.')[0] ?? '';
  return isPeerName(host) ? host : 'peer';
}

export function networkSettings(
  flags: NetworkFlagValues,
  name = flags.name ?? defaultName(),
): NetworkSettings {
  if (!isPeerName(name))
    throw new UsageError(
      `--name '${name}' is not a valid name: 1-64 printable characters, no slashes, no surrounding spaces`,
    );
  return {
    name,
    group: checkGroup(flags.group),
    port: flags.port,
    interface: resolveInterface(flags.interface),
    transport: (flags.transport ?? 'auto') as ReachMode,
    ttl: flags.ttl,
    dataDir: flags['data-dir'],
    profile: flags.profile as ProfileName,
    keys: keySettings(flags['key-file'], flags.open),
    openOnPurpose: flags.open ?? false,
    join: parseJoin(flags.join ?? [], flags.port),
  };
}

/** A started peer, with `installed`: what the command's `install` hook returned. */
export interface RunningPeer<Installed = void> {
  node: PeerNode;
  /** The protocol modules the command installed (StartOptions.install's result). */
  installed: Installed;
  /** Null for an observer, which keeps nothing. */
  store: PeerStore | null;
  transport: UdpTransport;
  /** Rate guard and (with a key) encryption between the UDP transport and the node. */
  security: SecurityLayers;
  settings: NetworkSettings;
  /** Durable, group-committed writes (issue 8); null for an observer. */
  checkpoints: Checkpoints | null;
  /** Listens to each periodic checkpoint's commit time (checkpointing.ts); null for an observer. */
  onCheckpointCommitted: Checkpointing['onCommitted'] | null;
  /** What was recovered from the data dir at start; null for an observer. */
  recovered: RecoveryReport | null;
  /** Where failed writes are reported (one line when they start failing, one when they recover). */
  health: StorageHealth;
  /** Graceful stop (leave) unless `crash`; closes the store. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * What a command runs on its peer. `open` opens the command's own tables before the node exists;
 * `install` receives what `open` returned and returns the protocol modules it installed, which the
 * running peer hands back as `installed`, typed.
 */
export interface StartOptions<Installed = void, Opened = void> {
  observer?: boolean;
  /**
   * Joins as a member for the command's run but keeps nothing, as an observer keeps nothing (no
   * data-dir lock, no database): a one-shot client that sends or receives messages too large for
   * a datagram, which reliable delivery takes only from members and sends only to members.
   */
  transient?: boolean;
  /** Where failed writes are reported; by default a StorageHealth that writes to stderr. */
  health?: StorageHealth;
  /** Opens what the command keeps in the peer's database (null for an observer), before the node. */
  open?: (store: PeerStore | null) => Opened;
  /** Installs protocol modules before the node starts; the running peer's `installed` is its result. */
  install?: (node: PeerNode, store: PeerStore | null, opened: Opened) => Installed;
  /**
   * Lamport time to start from (e.g. the highest a capability stored in what `open` opened), so
   * order survives a restart.
   */
  lamport?: (opened: Opened) => number;
  /** Where the recovery line goes (default: stderr, only when there was something to recover). */
  onRecovered?: (report: RecoveryReport, line: string) => void;
  /**
   * The reliable stream whose topics form this peer's snapshot channels (called after install).
   * Without it snapshot markers go as plain datagrams and channels record no messages.
   */
  snapshotChannels?: (installed: Installed) => { reliable: ReliableDelivery; topics: string[] };
}

export async function startPeer<Installed = void, Opened = void>(
  settings: NetworkSettings,
  opts: StartOptions<Installed, Opened> = {},
): Promise<RunningPeer<Installed>> {
  const runtime = runtimeFromEnv(); // PEER_FAKE_CLOCK: checked before anything is opened
  const seeds = await resolveSeeds(settings.join ?? [], true);
  const health = opts.health ?? stderrHealth();
  // One process per name and data dir, taken before the database is opened (storage/lock.ts).
  const keeps = !opts.observer && !opts.transient;
  const lock = keeps ? DataDirLock.acquire(settings.dataDir, settings.name) : null;
  let store: PeerStore | null = null;
  let identity: { id: string; incarnation: number };
  let checkpointing: ReturnType<typeof startCheckpointing> | null = null;
  let opened: Opened;
  let lamport: number;
  try {
    store = keeps ? PeerStore.open(settings.dataDir, settings.name) : null;
    identity = store ? store.startIdentity() : { id: randomBytes(8).toString('hex'), incarnation: 1 };
    checkpointing = store ? startCheckpointing(settings.dataDir, settings.name, health) : null;
    // Without an `open` hook Opened is void: nothing was opened.
    opened = opts.open ? opts.open(store) : (undefined as Opened);
    lamport = Math.max(opts.lamport?.(opened) ?? 0, checkpointing?.report.lamportStart ?? 0);
    // A saved time we could not have counted to (bounds.ts) is damage, never a time to adopt.
    if (!loadable(lamport))
      throw new StoreError(
        `${store?.file ?? settings.dataDir} is damaged: its saved Lamport time ${lamport} is past what a peer can count from; restore a backup, or move it aside to start this peer afresh under a new id`,
      );
  } catch (err) {
    checkpointing?.close(false);
    store?.close();
    lock?.release();
    throw err;
  }
  const transport = new UdpTransport({
    group: settings.group,
    port: settings.port,
    interface: settings.interface,
    ttl: settings.ttl,
    mode: settings.transport === 'unicast' ? 'unicast' : 'multicast',
  });
  const security = securityLayers(transport, `${settings.group}:${settings.port}`, settings.keys ?? null, {
    openOnPurpose: settings.openOnPurpose,
  });
  const node = new PeerNode({
    id: identity.id,
    name: settings.name,
    incarnation: identity.incarnation,
    lamport,
    profile: PROFILES[settings.profile],
    transport: security.transport,
    runtime,
    observer: opts.observer ?? false,
    reach: settings.transport ?? 'auto',
    persistIncarnation: (n) => {
      if (store) health.attempt(store.file, 'background', () => store.saveIncarnation(n));
    },
    remembered: store ? rememberedPeers(store, health) : null,
  });
  node.join.setSeeds(seeds);
  if (security.guard) guardFollowsMembers(security.guard.guard, node);
  // Without an `install` hook Installed is void: nothing was installed.
  const installed = opts.install ? opts.install(node, store, opened) : (undefined as Installed);
  // Every long-running peer answers snapshot markers (peer snapshot), recording its checkpoint state.
  if (checkpointing) {
    const cp = checkpointing.cp;
    const channels = opts.snapshotChannels?.(installed) ?? null;
    node.install(
      (ctx, n) =>
        new Snapshot(ctx, n.membership, {
          record: () => ({ ...cp.capture(), lamport: ctx.lamport() }),
          reliable: channels?.reliable ?? null,
          topics: channels?.topics ?? [],
        }),
    );
  }
  try {
    await node.start();
  } catch (err) {
    checkpointing?.close(true);
    store?.close();
    lock?.release();
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(
      `cannot open the group ${settings.group}:${settings.port} on ${settings.interface} (${code ?? (err as Error).message}); check --interface, --group and --port`,
    );
  }
  security.announce();
  const alone = unicastAloneLine(settings, seeds.length, keeps, store);
  if (alone) process.stderr.write(`peer: ${alone}\n`);
  if (checkpointing) {
    // A store is open whenever checkpointing is (both belong to a peer that keeps a data dir).
    checkpointing.attach(node, store ? walChecker(store, checkpointing) : undefined);
    const r = checkpointing.report;
    if (opts.onRecovered) opts.onRecovered(r, recoveryLine(r));
    // The line quotes what the database held: escaped.
    else if (worthReporting(r)) process.stderr.write(`peer: ${escapeForTerminal(recoveryLine(r))}\n`);
  }
  // Observers and transient peers come and go: the door is for peers that stay.
  const door = keeps ? holdDoor(transport) : null;
  const resolving = reresolveSeeds(node, settings.join ?? []);
  let stopped: Promise<void> | null = null;
  return {
    node,
    installed,
    store,
    transport,
    security,
    settings,
    checkpoints: checkpointing?.cp ?? null,
    onCheckpointCommitted: checkpointing?.onCommitted ?? null,
    recovered: checkpointing?.report ?? null,
    health,
    stop: () =>
      (stopped ??= (async () => {
        if (door) clearInterval(door);
        if (resolving) clearInterval(resolving);
        await node.stop();
        checkpointing?.close(true);
        store?.close();
        lock?.release();
      })()),
  };
}

/**
 * --transport unicast never multicasts: with no seed and nobody remembered, nothing finds the
 * group, and a peer that keeps running is found only by peers given its door (the group port on
 * its interface). Null when that is not the case.
 */
function unicastAloneLine(
  settings: NetworkSettings,
  seeds: number,
  keeps: boolean,
  store: PeerStore | null,
): string | null {
  if (settings.transport !== 'unicast' || seeds > 0) return null;
  let remembered = 0;
  try {
    remembered = store?.peerAddresses(1).length ?? 0;
  } catch {
    // As the join's candidates(): an unreadable table remembers nobody.
  }
  if (remembered > 0) return null;
  return keeps
    ? `--transport unicast without --join: this peer finds no one by itself; start the others with --join ${settings.interface}:${settings.port}, or pass --join HOST of a member`
    : '--transport unicast without --join: nothing answers a peer that does not multicast; pass --join HOST of a member';
}

/**
 * Claims this host's door now, and every DOOR_RETRY_MS while another process holds it (it may
 * exit). The timer stops once the door is ours, and does not keep the process alive.
 */
function holdDoor(transport: UdpTransport): NodeJS.Timeout {
  const claim = () =>
    void transport.claimDoor().then((held) => {
      if (held) clearInterval(timer);
    });
  const timer = setInterval(claim, DOOR_RETRY_MS);
  timer.unref();
  claim();
  return timer;
}

/** Looks seed host names up again every SEED_RESOLVE_INTERVAL_MS; null when every seed is an address. */
function reresolveSeeds(node: PeerNode, join: readonly JoinSeed[]): NodeJS.Timeout | null {
  if (join.every((s) => net.isIPv4(s.host))) return null;
  const timer = setInterval(() => {
    void resolveSeeds(join, false).then((seeds) => {
      if (seeds.length > 0) node.join.setSeeds(seeds);
    });
  }, SEED_RESOLVE_INTERVAL_MS);
  timer.unref();
  return timer;
}

/**
 * The peers this one met, in its database. They are a record, not a promise: a write that fails is
 * reported, never thrown, and a read that fails gives no candidates.
 */
function rememberedPeers(store: PeerStore, health: StorageHealth): RememberedPeers {
  health.attempt(store.file, 'background', () => store.forgetExpiredPeers(Date.now()));
  return {
    remember: (changes, wallMs) =>
      health.attempt(store.file, 'background', () => store.rememberPeers(changes, wallMs)),
    candidates: (limit) => {
      try {
        return store.peerAddresses(limit);
      } catch {
        return [];
      }
    },
  };
}

/**
 * The check the checkpoint timer runs first, every CHECKPOINT_INTERVAL_MS (a timer of its own
 * woke an idle peer 4 times a second for it): that the WAL is still there. When it was deleted or
 * replaced, the queued writes and a last checkpoint go into the WAL SQLite still holds open,
 * everything in it is copied into the main file, every later write is refused, and one line says
 * so. Closing the checkpoints stops the timer, so this runs once. The peer keeps running (it still
 * answers the group) until it is restarted.
 */
function walChecker(store: PeerStore, checkpointing: Checkpointing): () => void {
  return () => {
    const problem = store.walProblem();
    if (!problem) return;
    try {
      checkpointing.close(false);
    } catch {
      // What was committed is in the WAL; the copy below saves it.
    }
    const saved = store.saveAndRefuseWrites();
    process.stderr.write(
      `peer: storage: ${problem}; ${saved}; refusing new writes: stop this peer and start it again\n`,
    );
  };
}

/**
 * A StorageHealth whose lines go to stderr, as `peer: storage: ...`. Its quiet period is measured
 * on the monotonic clock: a wall clock set back must not hold a recovery line, nor one set forward
 * announce it early. The checkpoint timer (checkpointing.ts) ticks it.
 */
export function stderrHealth(): StorageHealth {
  return new StorageHealth(
    (line) => process.stderr.write(`peer: ${line}\n`),
    () => performance.now(),
  );
}

/**
 * Resolves on the first SIGINT or SIGTERM (the graceful ways to stop a peer). Asked for early:
 * a long-running command asks for it before it starts its peer, not once it has said it runs: a
 * signal that came between its "running" line and the listener found Node's default and killed the
 * process mid-way, without its leave (a test saw it 0.8 ms after the line on a busy machine). A
 * signal during the start is then taken once the start is done. After the first, a second one
 * kills: the way to force a stop that hangs.
 */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(sig);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

/** When a command looking for the group before it acts probes again, in ms from the start. */
export const DISCOVERY_PROBES_AT_MS = [250, 500, 750];
/** How often a discovery loop looks at the list it waits on. */
const DISCOVERY_POLL_MS = 10;

/** What a command looking for the group waits for (discoverSettled). */
export interface DiscoveryWait<T> {
  /** The list being waited on, read again at each poll (chat members, event agents). */
  list: () => T[];
  /** Discovery ends once the list is not empty and has not changed for this long, in ms. */
  settleMs: number;
  /** ...or after this long in any case, in ms. */
  maxMs: number;
  /** ...or at once when this holds of the list (the member a --to names is known). */
  found?: (list: T[]) => boolean;
  /**
   * While this holds, the list is not taken as settled (maxMs still ends the wait): members the
   * seeds named are still being greeted (join/ greeting()).
   */
  busy?: () => boolean;
}

/**
 * Waits on a list of the group's members until it settles, probing again at each of
 * DISCOVERY_PROBES_AT_MS meanwhile. Members answer a probe at once, and their heartbeats come
 * every 750 ms on lan, 1 or 2 of them (2 a third of the time) within a settle time of 1 s: a
 * member is then missed only if the round trips of all four probes fail and those heartbeats are
 * lost (0.19^4 x 0.07, about 9 in 100,000 at 10 % loss, computed for independent loss), where
 * one probe missed about 2 in 1,000. Beyond a router
 * (--join) the probes reach nobody, and members are met by hellos to the addresses the seeds
 * named: the wait goes on while those are still being sent (`busy`).
 */
export async function discoverSettled<T extends { id: string }>(
  membership: Pick<Membership, 'probe'>,
  wait: DiscoveryWait<T>,
  now: () => number = Date.now,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<T[]> {
  const start = now();
  let probed = 0;
  let last = '';
  let changedAt = start;
  for (;;) {
    const elapsed = now() - start;
    let due = false;
    while (probed < DISCOVERY_PROBES_AT_MS.length && elapsed >= DISCOVERY_PROBES_AT_MS[probed]!) {
      probed++;
      due = true;
    }
    // A loop that stalled past several times sends one: they would all arrive together.
    if (due) membership.probe();
    const list = wait.list();
    const key = list.map((m) => m.id).join(',');
    const at = now();
    if (key !== last) {
      last = key;
      changedAt = at;
    }
    if (wait.found?.(list)) return list;
    if (list.length > 0 && at - changedAt >= wait.settleMs && !wait.busy?.()) return list;
    if (at - start >= wait.maxMs) return list;
    await sleep(DISCOVERY_POLL_MS);
  }
}
