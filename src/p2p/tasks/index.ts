/**
 * The tasks protocol (see tasks.ts for how it works): what commands, storage, tests and benches
 * use of it. The roles themselves (submitter, coordinator, worker, follower, lister) and the wire
 * messages stay inside the folder.
 */
export { Tasks, type TasksOptions } from './tasks.js';
export { MemoryTaskLog, MEMORY_LOG_TASKS_MAX } from './memory-log.js';
export { TAG_CAPACITY, TAG_LOAD } from './messages.js';
export { summarize } from './records.js';
export * from './types.js';
export * from './limits.js';
export * from '../jobs/ops.js';
