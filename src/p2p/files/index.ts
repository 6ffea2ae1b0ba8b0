/** File transfer as the rest of the code uses it: the facade, its storage interfaces, its limits. */
export * from './channel.js';
export * from './chunks.js';
export * from './files.js';
export * from './limits.js';
export {
  FILE_CONTROL_TOPIC,
  FILE_TOPIC,
  fileNameProblem,
  isOffer,
  isTransferId,
  type TransferId,
} from './messages.js';
export type { IncomingEvent } from './receiver.js';
export type { FileSender, ReceiverOutcome, ReceiverStatus, SendProgress, TransferResult } from './sender.js';
export * from './store.js';
