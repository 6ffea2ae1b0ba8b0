/**
 * The token ring (see token-ring.ts for how it works): what commands, storage, tests and benches
 * use of it. The roles and the wire messages stay inside the folder.
 */
export { TokenRing, type TokenRingOptions, type TokenRingStatus } from './token-ring.js';
export type { TokenExitReason } from './lease.js';
export { EPOCH_STEP_MAX, RING_CONFIG_MAX } from './messages.js';
export type { TokenRingDurable } from './ring-state.js';
export { RING_TAG } from './ring-view.js';
export type { TokenRingTimings } from './timings.js';
