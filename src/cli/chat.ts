/**
 * The peer under `peer chat`: reliable delivery to the chat members and the chat protocol on a
 * full peer, every line stored durably before it is acknowledged, history from the peer's SQLite
 * file, presence, and the waits the command's modes share (finding the members, a line's
 * acknowledgements). The command parses flags and prints; this is the wiring below it.
 */
import fs from 'node:fs';
import {
  CHAT_DISPLAY_PENDING_MAX,
  CHAT_HISTORY_KEEP_MAX,
  CHAT_TAG,
  CHAT_TOPIC,
  Chat,
  LamportOrderer,
  type ChatLine,
  type Presence,
} from '../p2p/chat.js';
import { ReliableDelivery, type AckStatus, type LostReport } from '../p2p/reliable/index.js';
import {
  Files,
  type FileSender,
  type IncomingEvent,
  type OutgoingFile,
  type TransferResult,
} from '../p2p/files/index.js';
import type { MemberView } from '../p2p/protocol.js';
import { ChatStore } from '../storage/chat.js';
import type { Checkpoints } from '../storage/checkpoint.js';
import { writeFailure } from '../storage/health.js';
import { PeerStore, databasePath } from '../storage/store.js';
import { receiveChatLine } from './checkpointing.js';
import { incomingFiles } from './files.js';
import { UsageError } from './network.js';
import { discoverSettled, startPeer, stderrHealth, type NetworkSettings, type RunningPeer } from './peer.js';

/** How long --send and piped input look for chat members before sending. */
export const CHAT_DISCOVERY_MS = 2000;
/**
 * Discovery ends early once the member list has not changed for this long: 2 heartbeats of the
 * lan profile, and our probes are sent again meanwhile (discoverSettled), so a reader is missed
 * only if they and its heartbeats are all lost. With 300 ms (1-2 heartbeats of 200 ms) and one
 * probe, the LAN test at 10 % loss
 * caught a --send that missed a reader, exited 0, and the reader, having lost the one datagram,
 * joined the stream past it (a sender treats a member it meets after publishing as not needing
 * what came before): a silent loss.
 */
export const CHAT_DISCOVERY_SETTLE_MS = 1000;
/**
 * A file to the group settles sooner: a member found after the offer is offered the file then and
 * gets what it missed on request (files.ts, SendOptions.audience), so a late answer costs that
 * member a moment, never the file. Long enough for the answers to our probe, a few ms on a LAN.
 */
export const FILE_DISCOVERY_SETTLE_MS = 200;
/** History lines a newcomer asks for. */
export const CHAT_JOIN_HISTORY_LINES = 20;

/** What `peer chat` installs on its peer. */
interface ChatModules {
  chat: Chat;
  reliable: ReliableDelivery;
  store: ChatStore;
  files: Files;
}

/** The lines a feed shows (see ChatSession.feed). */
export interface LineFeed {
  /** Shows every held line now. */
  flush(): void;
  /** Flushes and stops. */
  stop(): void;
}

export interface JoinOptions {
  /** History lines to ask a member already there for (0: none). */
  historyWanted: number;
  /** False: a one-shot sender, which other senders must not wait for (see ChatOptions). */
  reader: boolean;
  /** Messages from a sender that can no longer be repaired (stored before this is called). */
  onLost: (r: LostReport) => void;
  /** Files this peer accepts, and where they go; absent: it accepts none (a one-shot sender). */
  files?: {
    /** Default: `<data-dir>/files`. */
    downloadDir?: string;
    /** Default: any size the disk has room for. */
    maxFileBytes?: number;
    onIncoming: (e: IncomingEvent) => void;
  };
}

/** Lines stored on disk, read without joining the group (--history). */
export interface StoredLines {
  lines: ChatLine[];
  /** This peer's id, so lines addressed to it read "you". */
  me: string | undefined;
  /** Stored lines that failed validation (damaged or forged), skipped. */
  rejected: number;
}

/** The last `n` lines stored in the database of peer `name`; a UsageError when it has none. */
export function storedLines(dataDir: string, name: string, n: number): StoredLines {
  const file = databasePath(dataDir, name);
  if (!fs.existsSync(file))
    throw new UsageError(
      `no database for peer '${name}' in ${dataDir}: run peer chat --name ${name} first, or pass --data-dir`,
    );
  const store = PeerStore.open(dataDir, name);
  try {
    const chat = ChatStore.on(store);
    const lines = chat.recent(n);
    return { lines, me: store.getMeta('peer_id'), rejected: chat.rejectedLastRead };
  } finally {
    store.close();
  }
}

export class ChatSession {
  readonly chat: Chat;
  private readonly reliable: ReliableDelivery;
  private readonly store: ChatStore;
  private readonly files: Files;

  private constructor(readonly peer: RunningPeer<ChatModules>) {
    ({ chat: this.chat, reliable: this.reliable, store: this.store, files: this.files } = peer.installed);
  }

  /** Starts a full peer in the chat (its lines stored in the peer's SQLite file). */
  static async join(settings: NetworkSettings, opts: JoinOptions): Promise<ChatSession> {
    // Lines can arrive while startPeer is still starting the node: their writes wait for the store.
    let storeReady: (cp: Checkpoints) => void = () => {};
    const checkpoints = new Promise<Checkpoints>((resolve) => (storeReady = resolve));
    // A full disk fails every line: one line says so, one when lines are stored again.
    const health = stderrHealth();
    // Before the peer starts: a name that cannot be a folder is a usage error, not a half-started peer.
    const incoming = opts.files;
    const downloads =
      incoming && incomingFiles(settings.dataDir, incoming.downloadDir, settings.name, health);
    const peer = await startPeer(settings, {
      health,
      open: (pstore) => ChatStore.on(pstore!),
      lamport: (store) => store.maxLamport(),
      install: (node, pstore, store): ChatModules => {
        const reliable = node.install(
          (ctx, n) =>
            new ReliableDelivery(ctx, n.membership, {
              audience: (m) => m.tags[CHAT_TAG] === true,
            }),
        );
        const chat = node.install(
          (ctx, n) =>
            new Chat(ctx, n.membership, reliable, {
              history: store.recent(CHAT_HISTORY_KEEP_MAX),
              historyWanted: opts.historyWanted,
              reader: opts.reader,
            }),
        );
        // Inbox row, chat line and processed flag in one group commit (synchronous=FULL). The
        // promise holds the line's ack to its sender until that commit (p2p/reliable/durable.ts), so a line
        // acknowledged (a --send exiting 0) survives kill -9 and a power cut here.
        chat.onLine((l) =>
          checkpoints.then((cp) =>
            receiveChatLine(cp, l).then(
              (r) => {
                health.succeeded(cp.file, 'chat');
                return r;
              },
              (err: unknown) => {
                health.failed(writeFailure(cp.file, err), 'chat');
                throw err; // keeps the line unacknowledged
              },
            ),
          ),
        );
        const files = node.install(
          (ctx, n) =>
            new Files(ctx, reliable, n.membership, {
              incoming: downloads,
              maxFileBytes: incoming?.maxFileBytes,
            }),
        );
        if (incoming) files.onIncoming(incoming.onIncoming);
        chat.onLost((r) => {
          health.attempt(pstore!.file, 'chat', () => store.saveLost(r, Date.now()));
          opts.onLost(r);
        });
        return { chat, reliable, store, files };
      },
      // Chat lines are the messages a snapshot records in flight on each channel.
      snapshotChannels: ({ reliable }) => ({ reliable, topics: [CHAT_TOPIC] }),
    });
    if (!peer.checkpoints) throw new Error('chat runs a full peer: it has a checkpoint store');
    storeReady(peer.checkpoints);
    return new ChatSession(peer);
  }

  get me(): string {
    return this.peer.node.id;
  }

  /** Stored lines that failed validation in the last read of history (never shown or served). */
  get rejected(): number {
    return this.store.rejectedLastRead;
  }

  /** The last `n` stored lines. */
  history(n: number): ChatLine[] {
    return this.store.recent(n);
  }

  /**
   * Waits until the chat members are known (or `toName` is), at most CHAT_DISCOVERY_MS: until
   * the list has not changed for `settleMs`.
   */
  async discover(toName: string | undefined, settleMs = CHAT_DISCOVERY_SETTLE_MS): Promise<MemberView[]> {
    return discoverSettled(this.peer.node.membership, {
      list: () => this.chat.members(),
      settleMs,
      maxMs: CHAT_DISCOVERY_MS,
      found: toName === undefined ? undefined : (ms) => ms.some((m) => m.name === toName),
      busy: () => this.peer.node.join.greeting(),
    });
  }

  /** Says `text` (shown through `shown` at once) and resolves once it is settled or `waitMs` passed. */
  sayAndWait(text: string, waitMs: number, shown: (line: ChatLine) => void): Promise<AckStatus> {
    return new Promise((resolve) => {
      // The settle callback never runs inside say(): it comes from a later ack or tick.
      const t: { timer?: NodeJS.Timeout } = {};
      const line = this.chat.say(text, (s) => {
        clearTimeout(t.timer);
        resolve(s);
      });
      shown(line);
      const id = line.messageId;
      t.timer = setTimeout(() => {
        const s = this.reliable.ackStatus(id);
        resolve(s ?? { id, complete: false, acked: [], gone: [], pending: [], refused: [] });
      }, waitMs);
    });
  }

  /**
   * Offers `file` to `targets` (the chat members, or the one --to target by unicast) and sends it;
   * `done` resolves once every receiver holds it verified, refused, failed, or is gone.
   */
  sendFile(
    file: OutgoingFile,
    targets: MemberView[],
    unicast: boolean,
  ): { sender: FileSender; done: Promise<TransferResult> } {
    let sender!: FileSender;
    const done = new Promise<TransferResult>((resolve) => {
      sender = this.files.send(file, {
        targets,
        unicast,
        // A group send goes to whoever is in the chat while it runs, not only who answered first.
        audience: unicast ? undefined : () => this.chat.members(),
        onEnd: resolve,
      });
    });
    return { sender, done };
  }

  /** The members that did not acknowledge every line, each with why: "bob (no ack)". */
  unacknowledged(statuses: AckStatus[]): string[] {
    const missing = new Map<string, string>();
    const name = (id: string) => this.peer.node.membership.get(id)?.name ?? id.slice(0, 8);
    for (const s of statuses) {
      for (const p of s.pending) missing.set(p, `${name(p)} (no ack)`);
      for (const p of s.gone) missing.set(p, `${name(p)} (gone)`);
      for (const r of s.refused) missing.set(r.peer, `${name(r.peer)} (refused: ${r.reason})`);
    }
    return [...missing.values()];
  }

  /**
   * Shows every new line: at once (`ordered` false: scripts sort by the lamport field
   * themselves), or held briefly and sorted by Lamport time for people.
   */
  feed(ordered: boolean, show: (line: ChatLine) => void): LineFeed {
    if (!ordered) {
      this.chat.onLine((l) => show(l));
      return { flush: () => {}, stop: () => {} };
    }
    const orderer = new LamportOrderer();
    // A timer only while lines are held, for the oldest one's release: a reader idle in a chat
    // does not wake 50 times a second to find nothing held.
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const schedule = () => {
      clearTimeout(timer);
      timer = undefined;
      const at = orderer.nextDueAt();
      if (at !== null)
        timer = setTimeout(() => drain(performance.now()), Math.max(0, at - performance.now()));
    };
    const drain = (now: number) => {
      orderer.drain(now).forEach(show);
      schedule();
    };
    this.chat.onLine((l) => {
      if (stopped) return;
      orderer.push(l, performance.now());
      if (timer === undefined || orderer.size > CHAT_DISPLAY_PENDING_MAX) schedule();
    });
    return {
      flush: () => drain(Infinity),
      stop: () => {
        stopped = true;
        drain(Infinity);
        clearTimeout(timer);
      },
    };
  }

  /** Chat members joining and leaving (never a `peer up` or a one-shot sender: chat.ts). */
  onPresence(feed: LineFeed, show: (p: Presence) => void): void {
    this.chat.onPresence((p) => {
      // Whatever a member said arrived before it left, and may still be held for ordering: show
      // it first, so its last words never show below "left".
      if (p.kind !== 'joined') feed.flush();
      show(p);
    });
  }

  stop(): Promise<void> {
    return this.peer.stop();
  }
}
