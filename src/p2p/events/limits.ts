/**
 * The limits of tags, user events and queries. Each bounds what one member can make every other
 * hold or run: a name goes into a handler's environment, a payload onto its stdin, an answer into
 * the asker's memory.
 */

/**
 * Tags a user sets on a peer (`peer up --tag`, `peer tags set`). They ride in the heartbeat next
 * to the protocols' own tags (up to 12 today: chat, ring, rp, kv, prio, coord, term, clk, js, jl,
 * ex, ev), and a heartbeat holds TAGS_KEYS_MAX (membership.ts) keys in all: 4 always fit.
 */
export const USER_TAGS_MAX = 4;
/** A user tag's key, in characters (its wire key has USER_TAG_PREFIX in front: 22 of membership's 24). */
export const USER_TAG_KEY_CHARS_MAX = 20;
/** A user tag's value, in characters (membership's TAG_VALUE_CHARS_MAX). */
export const USER_TAG_VALUE_CHARS_MAX = 64;

/** An event or query name, in characters: it goes into PEER_USER_EVENT / PEER_QUERY_NAME and handler filters. */
export const EVENT_NAME_CHARS_MAX = 64;
/**
 * A user event's or a query's payload, in bytes. Serf's limit is 512 bytes by default (9 KiB at
 * most); 8 KiB carries a small config or a list of hosts, and every member holds it while its
 * handler waits in the queue.
 */
export const EVENT_PAYLOAD_BYTES_MAX = 8 * 1024;
/** A query answer (a handler's stdout), in bytes; more is cut there and marked truncated. */
export const QUERY_ANSWER_BYTES_MAX = 4 * 1024;
/** A query's id, in characters (16 hex digits from the asker's random source). */
export const QUERY_ID_CHARS = 16;
/** The longest a query may wait for its answers, in ms. */
export const QUERY_TIMEOUT_MS_MAX = 5 * 60_000;
/** Queries one asker waits on at once; each holds up to one answer per member. */
export const QUERIES_OPEN_MAX = 16;
/** Members a query expects answers from at most (and so answers it holds). */
export const QUERY_MEMBERS_MAX = 1024;

/**
 * Serf's user-event coalescing: a coalesced event is held until no other of its kind came for
 * EVENTS_QUIESCENT_MS, or EVENTS_COALESCE_MS after the first, then only the latest of each name
 * runs (Serf's agent defaults, 3 s and 1 s).
 */
export const EVENTS_COALESCE_MS = 3000;
export const EVENTS_QUIESCENT_MS = 1000;
/** Names held for coalescing at once; the next new name flushes what is held first. */
export const EVENTS_COALESCE_NAMES_MAX = 256;

/**
 * User events an agent holds acknowledged and not yet handled (its journal, journal.ts): room for
 * a full handler queue (1000 events, src/cli/handlers.ts) and every coalesced name held. Past it
 * an event is not acknowledged: its sender counts this agent as not having it.
 */
export const EVENTS_JOURNAL_EVENTS_MAX = 2048;
