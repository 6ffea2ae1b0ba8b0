/** Tags, member events, user events and queries (events.ts has the algorithm): what the rest of the code uses. */
export * from './limits.js';
export * from './tags.js';
export * from './events.js';
export * from './journal.js';
