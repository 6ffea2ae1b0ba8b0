/**
 * Checkpointing for every long-running command, called from startPeer: open the checkpoint
 * connection, recover (replaying what was received but not processed), plug in the state every
 * peer has (Lamport time, peers seen) and what the capabilities keep in their own tables (token
 * generation, detached runs, chat lines, replica log positions), checkpoint every CHECKPOINT_INTERVAL_MS,
 * and write a clean final checkpoint on a graceful stop.
 *
 * Capability state is read from the capabilities' own tables on this connection (read-only), so
 * no capability module had to change to appear in checkpoints and recovery lines. A capability
 * with more to say registers its own source on `RunningPeer.checkpoints`.
 */
import fs from 'node:fs';
import type Database from 'better-sqlite3';
import type { PeerNode } from '../p2p/node.js';
import type { ChatLine } from '../p2p/chat.js';
import {
  type ReplicaSink,
  ReplicaSet,
  entryProblem,
  parseReplica,
  serialize,
  type Entry,
} from '../p2p/replication/index.js';
import { keepAside, replicaPath, writeFileAtomic } from '../storage/replica.js';
import { ChatStore } from '../storage/chat.js';
import { openCheckpoints, type Checkpoints, type StoredMessage } from '../storage/checkpoint.js';
import { writeFailure, type StorageHealth } from '../storage/health.js';
import {
  CHECKPOINT_INTERVAL_MS,
  LAMPORT_CHECKPOINT_SLACK_TICKS,
  isLamportState,
  recover,
  type LamportState,
  type IntegrityLevel,
  type RecoveryReport,
  type ReplayHandler,
} from '../storage/recovery.js';

/** Inbox topic of chat lines (payload: a ChatLine as JSON). */
export const CHAT_INBOX_TOPIC = 'chat';

const chatStores = new WeakMap<Database.Database, ChatStore>();

/** Replays a chat line into chat's own table; already there means a duplicate, suppressed. */
const replayChat: ReplayHandler = (m: StoredMessage, db) => {
  const line = JSON.parse(m.payload) as ChatLine;
  return chatStore(db).save(line, m.receivedAt) ? 'done' : 'duplicate';
};

/**
 * The hook for chat: stores a received line in the inbox and in chat's table in ONE group-committed
 * transaction, so it is recorded and processed exactly once; resolves once durable with 'new', or
 * 'duplicate' for a line already received (nothing written). A command that acknowledges or
 * exits 0 after this resolves never reports a line a crash can take back.
 */
export function receiveChatLine(
  cp: Checkpoints,
  line: ChatLine,
  receivedAt = Date.now(),
): Promise<'new' | 'duplicate'> {
  const m = {
    id: line.id,
    topic: CHAT_INBOX_TOPIC,
    sender: line.from,
    lamport: line.lamport,
    payload: JSON.stringify(line),
  };
  return cp.submit((db) => {
    if (!cp.receiveNow(m, receivedAt)) return 'duplicate';
    cp.processNow(m.id, () => chatStore(db).save(line, receivedAt));
    return 'new';
  });
}

function chatStore(db: Database.Database): ChatStore {
  let store = chatStores.get(db);
  if (!store) chatStores.set(db, (store = new ChatStore(db)));
  return store;
}

/** What each topic's replay does when no command is there to do it (peer recover, a restart). */
export const REPLAY_HANDLERS: Record<string, ReplayHandler> = { [CHAT_INBOX_TOPIC]: replayChat };

/**
 * Sources every peer's checkpoint holds; each reads a capability table only if it exists. All but
 * the clock read only the database, so a periodic checkpoint runs them only after it changed; when
 * they run, their statements are prepared once (a table, once there, stays: a command creates its
 * tables when it opens them).
 */
export function registerStandardSources(cp: Checkpoints, lamport: () => number, clean: () => boolean): void {
  const db = cp.db;
  const statements = new Map<string, Database.Statement>();
  const prepared = (sql: string) => {
    let st = statements.get(sql);
    if (!st) statements.set(sql, (st = db.prepare(sql)));
    return st;
  };
  const tables = new Set<string>();
  const hasTable = (table: string) => {
    if (tables.has(table)) return true;
    const there =
      prepared("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined;
    if (there) tables.add(table);
    return there;
  };
  const count = (sql: string) => (prepared(sql).get() as { n: number | null }).n ?? 0;
  cp.register('lamport', {
    capture: (): LamportState => ({ time: lamport(), clean: clean() }),
    // The clock ticks at every message, so it alone never asks for a checkpoint until it ran
    // LAMPORT_CHECKPOINT_SLACK_TICKS past the saved time: a restart after a crash adds
    // LAMPORT_RESTART_MARGIN_TICKS to it, still above anything stamped (recovery.ts).
    serves: (saved, now) =>
      isLamportState(saved) &&
      isLamportState(now) &&
      saved.clean === now.clean &&
      now.time >= saved.time &&
      now.time - saved.time < LAMPORT_CHECKPOINT_SLACK_TICKS,
  });
  cp.register('peers', {
    fromDatabase: true,
    capture: () => ({ seen: hasTable('peers') ? count('SELECT count(*) AS n FROM peers') : 0 }),
    describe: (s) => {
      const n = (s as { seen: number }).seen;
      return n > 0 ? `${n} peer${n === 1 ? '' : 's'} seen` : null;
    },
  });
  cp.register('token', {
    fromDatabase: true,
    capture: () => {
      if (!hasTable('token_ring_state')) return null;
      const row = prepared('SELECT state FROM token_ring_state WHERE k = 1').get() as
        { state: string } | undefined;
      try {
        const d = row ? (JSON.parse(row.state) as { gen?: unknown; epoch?: unknown }) : null;
        return d && Number.isSafeInteger(d.gen) ? { gen: d.gen, epoch: d.epoch } : null;
      } catch {
        return null;
      }
    },
    describe: (s) => (s && typeof s === 'object' ? `token generation ${(s as { gen: number }).gen}` : null),
  });
  cp.register('runs', {
    fromDatabase: true,
    capture: () =>
      hasTable('runs')
        ? {
            total: count('SELECT count(*) AS n FROM runs'),
            open: count("SELECT count(*) AS n FROM runs WHERE state = 'open'"),
          }
        : null,
    describe: (s) => {
      const t = s as { total: number; open: number } | null;
      return t && t.total > 0 ? `${t.total} detached runs (${t.open} open)` : null;
    },
  });
  cp.register('chat', {
    fromDatabase: true,
    capture: () =>
      hasTable('chat_messages')
        ? {
            lines: count('SELECT count(*) AS n FROM chat_messages'),
            lamport: count('SELECT MAX(lamport) AS n FROM chat_messages'),
          }
        : null,
    describe: (s) => {
      const c = s as { lines: number } | null;
      return c && c.lines > 0 ? `${c.lines.toLocaleString('en-US')} chat lines` : null;
    },
  });
  cp.register('replicas', {
    fromDatabase: true,
    capture: () =>
      Object.fromEntries(
        (
          prepared(
            'SELECT replica, count(*) AS n FROM replica_log GROUP BY replica ORDER BY replica',
          ).all() as Array<{
            replica: string;
            n: number;
          }>
        ).map((r) => [r.replica, r.n]),
      ),
    describe: (s) => {
      const entries = Object.entries((s ?? {}) as Record<string, number>);
      return entries.length === 0
        ? null
        : entries.map(([name, n]) => `replica ${name} at ${n.toLocaleString('en-US')} entries`).join(', ');
    },
  });
}

export interface Checkpointing {
  cp: Checkpoints;
  report: RecoveryReport;
  /**
   * Starts periodic checkpoints of a running node. `check` runs first at each (the WAL check,
   * cli/peer.ts): one timer wakes an idle peer once a second for both. It may close() this.
   */
  attach(node: PeerNode, check?: () => void): void;
  /**
   * Calls `listener` with how long each periodic checkpoint that committed took (ms: flushing the
   * queued writes, capturing every source, the fsynced commit); returns how to stop listening.
   */
  onCommitted(listener: (ms: number) => void): () => void;
  /** Final checkpoint (clean on a graceful stop) and close. Safe to call twice. */
  close(clean: boolean): void;
}

/**
 * Opens and recovers; the node is attached once it exists (its Lamport start comes from here).
 * Checkpoints are background writes: one that fails (a full disk) goes to `health`, never up the
 * stack, and the next one is tried on time, so checkpoints resume by themselves when space returns.
 * The same timer ticks `health`, which says when writes work again once its quiet period passed.
 */
export function startCheckpointing(
  dataDir: string,
  name: string,
  health: StorageHealth,
  integrity: IntegrityLevel = 'quick',
): Checkpointing {
  const cp = openCheckpoints(dataDir, name, { integrity });
  let node: PeerNode | null = null;
  let clean = false;
  let timer: NodeJS.Timeout | null = null;
  let listeners: Array<(ms: number) => void> = [];
  registerStandardSources(
    cp,
    () => node?.lamport ?? 0,
    () => clean,
  );
  let report: RecoveryReport;
  try {
    report = { ...recover(cp, { integrity: 'none', handlers: REPLAY_HANDLERS }), integrity };
  } catch (err) {
    cp.close();
    throw err;
  }
  return {
    cp,
    report,
    attach(n, check) {
      node = n;
      // Lamport time is the first thing a restart needs: write it at once, then periodically,
      // when something changed since the last checkpoint (one that failed changed nothing).
      const checkpoint = (ifChanged: boolean) => {
        const start = performance.now();
        let seq: number | null = null;
        if (health.attempt(cp.file, 'background', () => (seq = cp.checkpoint(Date.now(), { ifChanged }))))
          return;
        if (seq === null) return;
        const ms = performance.now() - start;
        for (const l of listeners) l(ms);
      };
      checkpoint(false);
      // On whole seconds of the wall clock, where a heartbeat is due too (membership.ts keeps
      // them to the wall clock's grid): both run in one wake of the process instead of two.
      const arm = () => {
        timer = setTimeout(
          () => {
            check?.();
            if (!timer) return; // the check closed us
            checkpoint(true);
            health.tick();
            arm();
          },
          CHECKPOINT_INTERVAL_MS - (Date.now() % CHECKPOINT_INTERVAL_MS),
        );
        timer.unref();
      };
      arm();
    },
    onCommitted(listener) {
      listeners.push(listener);
      return () => {
        listeners = listeners.filter((l) => l !== listener);
      };
    },
    close(isClean) {
      if (timer) clearTimeout(timer);
      timer = null;
      if (!cp.db.open) return;
      clean = isClean;
      // A final checkpoint that cannot be written leaves the last one: recovery starts from it.
      if (node) health.attempt(cp.file, 'background', () => cp.checkpoint());
      cp.close();
    },
  };
}

/** Whether the report describes a previous life worth a line (not a first start). */
export function worthReporting(r: RecoveryReport): boolean {
  return r.checkpointSeq !== null || r.unprocessedBefore > 0 || r.checkpointsDamaged > 0;
}

// ---- replica files from the log ----------------------------------------------------------------

export interface ReplicaRebuild {
  replica: string;
  file: string;
  logged: number;
  /** Entries in the file before (good lines), and lines that did not parse. */
  before: number;
  damagedLines: number;
  /** Entries of the log the file lacked, written back. */
  restored: number;
  rewritten: boolean;
}

/**
 * Rebuilds each logged replica's file under `dir` when it is behind the log or damaged: the
 * file's good entries plus the logged ones, in canonical order, written atomically. Damaged
 * lines are kept aside in `<name>.rejected` first, as replica.ts does.
 */
export function rebuildReplicas(cp: Checkpoints, dir: string): ReplicaRebuild[] {
  const names = (
    cp.db.prepare('SELECT DISTINCT replica FROM replica_log ORDER BY replica').all() as Array<{
      replica: string;
    }>
  ).map((r) => r.replica);
  const out: ReplicaRebuild[] = [];
  for (const replica of names) {
    const file = replicaPath(dir, replica);
    const { entries: logged } = cp.replicaEntries(replica);
    let set = new ReplicaSet();
    let damagedLines = 0;
    if (fs.existsSync(file)) {
      const parsed = parseReplica(fs.readFileSync(file));
      set = parsed.set;
      damagedLines = parsed.rejected.length;
      if (damagedLines > 0) keepAside(file, parsed.rejected);
    }
    const before = set.size;
    let restored = 0;
    for (const e of logged as Entry[]) {
      if (entryProblem(e)) continue;
      if (set.resolve(e) === 'added') restored++;
    }
    const rewritten = restored > 0 || damagedLines > 0;
    if (rewritten) {
      fs.mkdirSync(dir, { recursive: true });
      writeFileAtomic(file, serialize(set.canonical()));
    }
    out.push({ replica, file, logged: logged.length, before, damagedLines, restored, rewritten });
  }
  return out;
}

// ---- replica holders: the replica log ----------------------------------------------------------

/** Entries per replica-log write when a holder logs the entries its file already had. */
export const REPLICA_LOG_CHUNK_ENTRIES = 10_000;

/**
 * A replica sink that also logs every entry it adds to the checkpoint store's replica log. The
 * file's own fsync is what an ack waits for; a log write that fails goes to `health` (the file
 * still holds the entry, and a later log write of the file's entries is not needed for acks).
 */
export function loggedSink(
  sink: ReplicaSink,
  replica: string,
  cp: () => Checkpoints | null,
  health: StorageHealth,
): ReplicaSink {
  return {
    get set() {
      return sink.set;
    },
    apply(entries) {
      const r = sink.apply(entries);
      const c = cp();
      const changed = [...r.added, ...r.replaced];
      if (c && changed.length > 0)
        c.logReplica(replica, changed).then(
          () => health.succeeded(c.file, 'background'),
          (err: unknown) => health.failed(writeFailure(c.file, err), 'background'),
        );
      return r;
    },
    flush: () => sink.flush(),
    rewriteCanonical: () => sink.rewriteCanonical(),
  };
}

/**
 * Logs what the file held before the log existed, in chunks so the event loop stays free. A chunk
 * that cannot be written goes to `health` and ends the copy (the next start tries again).
 */
export async function logExisting(
  cp: Checkpoints | null,
  replica: string,
  entries: readonly Entry[],
  health: StorageHealth,
): Promise<void> {
  if (!cp || cp.replicaLogged(replica) >= entries.length) return;
  const copy = entries.slice();
  try {
    for (let i = 0; i < copy.length && cp.db.open; i += REPLICA_LOG_CHUNK_ENTRIES)
      await cp.logReplica(replica, copy.slice(i, i + REPLICA_LOG_CHUNK_ENTRIES));
  } catch (err) {
    health.failed(writeFailure(cp.file, err), 'background');
  }
}
