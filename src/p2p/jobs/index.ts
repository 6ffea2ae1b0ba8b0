export * from './types.js';
export { Jobs, type JobsOptions } from './jobs.js';
export { commandFor, shellQuote, problemOf, inputProblem } from './command.js';
export { TAG_EXEC, TAG_HELD, TAG_SLOTS, advertOf, windowOf } from './adverts.js';
export * from './limits.js';
