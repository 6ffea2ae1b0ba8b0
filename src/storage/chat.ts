/**
 * Chat's tables on the peer's SQLite file (`chat_messages`, `chat_lost`): every line this peer saw, sent
 * or received, live or as history, and every gap reported lost. The peers seen are in store.ts.
 *
 * Lines are keyed by their reliable message id, so a line that arrives twice (live and again as
 * history) is stored once. A line is saved with its inbox row in one group commit at
 * synchronous=FULL on the checkpoint connection (receiveChatLine, src/cli/checkpointing.ts) before
 * it is acknowledged; lost reports use the store's connection (synchronous=NORMAL: they survive
 * kill -9, not a power cut in the same instant).
 *
 * Lines read back are validated like datagrams (isChatLine: the wire's limits), because what they
 * hold came from the network and the file may be damaged: a bad row is skipped and counted in
 * `rejectedLastRead`, never shown, served to a newcomer, or used to set the Lamport clock.
 */
import type Database from 'better-sqlite3';
import { isChatLine, type ChatLine } from '../p2p/chat.js';
import { COUNTER_MAX } from '../p2p/bounds.js';
import type { LostReport } from '../p2p/reliable/index.js';
import type { PeerStore } from './store.js';

export interface LostRow extends LostReport {
  at: number;
}

interface LineRow {
  id: string;
  sender_id: string;
  sender_name: string;
  recipient_id: string | null;
  recipient_name: string | null;
  text: string;
  lamport: number;
  sent_at: number;
  history: number;
}

export class ChatStore {
  private readonly insertLine: Database.Statement;
  private readonly insertLost: Database.Statement;
  /** Rows the last recent() skipped because they failed validation. */
  rejectedLastRead = 0;

  constructor(private readonly db: Database.Database) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS chat_messages (
        id TEXT PRIMARY KEY,
        sender_id TEXT NOT NULL,
        sender_name TEXT NOT NULL,
        recipient_id TEXT,
        recipient_name TEXT,
        text TEXT NOT NULL,
        lamport INTEGER NOT NULL,
        sent_at INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        history INTEGER NOT NULL DEFAULT 0
      ) STRICT;
      CREATE INDEX IF NOT EXISTS chat_messages_lamport ON chat_messages (lamport, sender_id);
      CREATE TABLE IF NOT EXISTS chat_lost (
        sender_id TEXT NOT NULL,
        sender_name TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        count INTEGER NOT NULL,
        reason TEXT NOT NULL,
        unicast INTEGER NOT NULL,
        at INTEGER NOT NULL
      ) STRICT;
    `);
    this.insertLine = db.prepare(
      `INSERT OR IGNORE INTO chat_messages (id, sender_id, sender_name, recipient_id, recipient_name, text, lamport, sent_at, received_at, history)
       VALUES (@id, @from, @fromName, @to, @toName, @text, @lamport, @at, @receivedAt, @history)`,
    );
    this.insertLost = db.prepare(
      `INSERT INTO chat_lost (sender_id, sender_name, epoch, first_seq, last_seq, count, reason, unicast, at)
       VALUES (@from, @fromName, @epoch, @firstSeq, @lastSeq, @count, @reason, @unicast, @at)`,
    );
  }

  static on(store: PeerStore): ChatStore {
    return new ChatStore(store.db);
  }

  /** Stores a line once; false when it was already there. */
  save(line: ChatLine, receivedAt: number): boolean {
    const r = this.insertLine.run({
      ...line,
      receivedAt: Math.round(receivedAt),
      history: line.history ? 1 : 0,
    });
    return r.changes > 0;
  }

  saveLost(r: LostReport, at: number): void {
    this.insertLost.run({ ...r, unicast: r.unicast ? 1 : 0, at: Math.round(at) });
  }

  /** The last n lines in Lamport order (ties by sender id), minus rows that fail validation. */
  recent(n: number): ChatLine[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM (SELECT id, sender_id, sender_name, recipient_id, recipient_name, text, lamport, sent_at, history
           FROM chat_messages ORDER BY lamport DESC, sender_id DESC, id DESC LIMIT ?)
         ORDER BY lamport, sender_id, id`,
      )
      .all(n) as LineRow[];
    const lines: ChatLine[] = [];
    this.rejectedLastRead = 0;
    for (const r of rows) {
      const line: ChatLine = {
        id: r.id,
        from: r.sender_id,
        fromName: r.sender_name,
        to: r.recipient_id,
        toName: r.recipient_name,
        text: r.text,
        lamport: r.lamport,
        at: r.sent_at,
        history: r.history === 1,
      };
      if ((r.history === 0 || r.history === 1) && isChatLine(line)) lines.push(line);
      else this.rejectedLastRead++;
    }
    return lines;
  }

  lost(): LostRow[] {
    const rows = this.db.prepare('SELECT * FROM chat_lost ORDER BY at').all() as Array<{
      sender_id: string;
      sender_name: string;
      epoch: number;
      first_seq: number;
      last_seq: number;
      count: number;
      reason: string;
      unicast: number;
      at: number;
    }>;
    return rows.map((r) => ({
      from: r.sender_id,
      fromName: r.sender_name,
      epoch: r.epoch,
      firstSeq: r.first_seq,
      lastSeq: r.last_seq,
      count: r.count,
      reason: r.reason as LostReport['reason'],
      unicast: r.unicast === 1,
      at: r.at,
    }));
  }

  /**
   * The highest Lamport time stored, so a restarted peer stamps its next line above it. A row
   * past COUNTER_MAX (bounds.ts) is damage or a forgery that got stored: it must not set our clock.
   */
  maxLamport(): number {
    const row = this.db
      .prepare('SELECT MAX(lamport) AS m FROM chat_messages WHERE lamport BETWEEN 0 AND ?')
      .get(COUNTER_MAX) as { m: number | null };
    return row.m ?? 0;
  }
}
