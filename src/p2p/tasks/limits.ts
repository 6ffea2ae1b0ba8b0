/**
 * The timings and bounds of the tasks protocol, in one place so a reader sees every limit and why.
 * Timings are independent of the profile: they only bound how fast losses are repaired.
 */

/** Re-send of a task not yet accepted. */
export const SUBMIT_RETRY_MS = 250;
/**
 * First re-send of an accepted task (a poll); each later one waits twice as long, up to
 * RESULT_POLL_MS_MAX. Results are pushed twice (unicast and multicast), so a poll is a rare repair,
 * and a batch of thousands of queued tasks must not flood the coordinator with polls.
 */
export const RESULT_POLL_MS = 3000;
export const RESULT_POLL_MS_MAX = 30_000;
/** Re-send of an assignment not yet acknowledged by its worker. */
export const ASSIGN_RETRY_MS = 300;
/** Sends of one assignment before the task goes to another worker. */
export const ASSIGN_SENDS_MAX = 6;
/** Re-send of a result not yet acknowledged by the coordinator. */
export const RESULT_RETRY_MS = 300;
/** How often a worker tells the coordinator which tasks it holds. */
export const WORKER_STATUS_INTERVAL_MS = 1000;
/** Statuses in a row that omit an acknowledged task before it is reassigned. */
export const STATUS_MISSES_MAX = 2;
/** Least time between two load-tag updates (each one sends a heartbeat at once). */
export const LOAD_TAGS_INTERVAL_MS = 200;
/** A new coordinator waits this long for workers' statuses before it dispatches. */
export const TAKEOVER_DISPATCH_DELAY_MS = 300;
/** Re-send of a list request without an answer. */
export const LIST_RETRY_MS = 300;
/** List requests without an answer before the listing fails. */
export const LIST_SENDS_MAX = 10;

export const TASK_ID_HEX_CHARS = 16;
/** Outstanding tasks of one submitter. */
export const SUBMITTER_TASKS_MAX = 10_000;
/** Outstanding (not done) tasks at the coordinator; beyond it, submissions are rejected for now. */
export const COORDINATOR_TASKS_MAX = 10_000;
/** Results the coordinator keeps in memory to answer repeats (the log answers older ones). */
export const DONE_REMEMBERED_MAX = 10_000;
/** Threads one worker may advertise. */
export const WORKER_CONCURRENCY_MAX = 16;
/** Tasks a worker holds per thread (running plus waiting): keeps its threads busy between round trips. */
export const WORKER_BACKLOG_PER_THREAD = 2;
/** Datagrams one role sends in one tick for retries and polls: bounds bursts. */
export const SENDS_PER_TICK_MAX = 64;
/** Local messages handled in one drain (a peer that is its own coordinator and worker). */
export const INBOX_DRAIN_MAX = 10_000;
/** Tasks one `task list` may fetch. */
export const LIST_LIMIT_MAX = 200;
/** Items of one list page, and the page's byte budget (under DATAGRAM_PAYLOAD_BYTES_MAX). */
export const LIST_PAGE_ITEMS_MAX = 16;
export const LIST_PAGE_BYTES_MAX = 850;
/** Result or error characters shown per listed task. */
export const LIST_TEXT_CHARS_MAX = 40;
export const WHY_CHARS_MAX = 200;
/** Longest operation name and peer name a task message carries. */
export const OP_CHARS_MAX = 16;
export const NAME_CHARS_MAX = 64;
