/**
 * The token ring (see token-ring.ts for how it works): what commands, storage, tests and benches
 * use of it. The roles and the wire messages stay inside the folder.
 */
export {
  DURABLE_RETRY_MS,
  EPOCH_STEP_MAX,
  GEN_STEP_MAX,
  LEAVE_PASS_COPIES,
  RING_CONFIG_MAX,
  RING_TAG,
  TokenRing,
  type TokenExitReason,
  type TokenRingDurable,
  type TokenRingOptions,
  type TokenRingStatus,
  type TokenRingTimings,
} from './token-ring.js';
