/**
 * The journal of user events an agent acknowledged: storage behind this interface
 * (src/storage/event-journal.ts on the peer's SQLite file; a memory one in the simulation tier).
 *
 * An agent acks a user event only once it is in the journal: a crash after the ack and before the
 * handlers ran leaves it there, and the restarted agent runs it then. A write that fails (a full
 * disk) is never acked, so the sender counts that agent as not having the event. An event leaves
 * the journal once its handlers ended (`done`): a crash while a handler runs lets it run once more
 * after the restart, never lose it.
 */
import type { WriteFailure } from '../write-failure.js';
import { loadable } from '../bounds.js';
import { EVENT_PAYLOAD_BYTES_MAX } from './limits.js';

/** A user event as the journal keeps it. */
export interface JournaledEvent {
  /** The reliable message's key (messageKey): one row per message. */
  key: string;
  name: string;
  payload: Buffer;
  lamport: number;
  fromName: string;
  coalesce: boolean;
}

export interface EventJournal {
  /** Makes `e` durable: null once it is, else the failure (then nothing was stored). */
  append(e: JournaledEvent): WriteFailure | null;
  /** Forgets the event `key`: its handlers ended. A failure is reported by the store, not thrown. */
  done(key: string): void;
  /** Events appended and not done, oldest first, at most `max`; rows that fail their checks are skipped. */
  pending(max: number): JournaledEvent[];
}

/** Characters of a journal key (a reliable message key: sender id, epoch, sequence). */
export const JOURNAL_KEY_CHARS_MAX = 128;
/** Characters of a sender's name as read back (membership's names are shorter). */
const FROM_NAME_CHARS_MAX = 64;

/**
 * Whether a row read back is an event this journal could have written: what it holds came from the
 * network, and the file may be damaged. `isName` is the event-name rule (events.ts).
 */
export function isJournaledEvent(e: JournaledEvent, isName: (v: unknown) => boolean): boolean {
  return (
    typeof e.key === 'string' &&
    e.key.length > 0 &&
    e.key.length <= JOURNAL_KEY_CHARS_MAX &&
    isName(e.name) &&
    Buffer.isBuffer(e.payload) &&
    e.payload.length <= EVENT_PAYLOAD_BYTES_MAX &&
    loadable(e.lamport) &&
    typeof e.fromName === 'string' &&
    e.fromName.length <= FROM_NAME_CHARS_MAX
  );
}
