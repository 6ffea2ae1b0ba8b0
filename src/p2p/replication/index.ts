/** Replication, as the rest of the code uses it: the protocol, its replica model and its bounds. */
export { Replication } from './replication.js';
export { REPLICA_TAG, type Directory } from './directory.js';
export type { ApplyResult, ReplicaSink } from './sink.js';
export { acksSatisfied, parseAckPolicy, type AckPolicy } from './acks.js';
export { APPEND_RETRY_MS } from './appender.js';
export { ACK_HOLDERS_MAX } from './messages.js';
export { appendFits, envelopeOverhead } from './sizing.js';
export {
  LARGE_MESSAGE_BYTES_MAX,
  LARGE_QUEUED_BYTES_MAX,
  LARGE_TOPIC,
  LargeOutbox,
  decodeLarge,
  largeOrigin,
  encodeLarge,
  fitsDatagram,
  type LargeLane,
} from './large.js';
export { IBLT_CELLS_MAX, IBLT_CELLS_MIN, Iblt } from './iblt.js';
export {
  ENTRY_LAMPORT_AHEAD_MAX,
  ENTRY_TEXT_BYTES_MAX,
  compareEntries,
  entryId,
  entryProblem,
  isEntryText,
  preferred,
  type Entry,
} from './entry.js';
export { contentDigest, formatLine, parseLine, serialize } from './line.js';
export { hash64 } from './hash.js';
export { DIGEST_FANOUT, DIGEST_LEVELS, ReplicaSet } from './replica-set.js';
export { parseReplica, type Rejection } from './parse-replica.js';
