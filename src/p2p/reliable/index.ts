/**
 * Reliable delivery (see reliable-delivery.ts for the algorithm and a map of this folder): what
 * the rest of the code uses.
 */
export * from './limits.js';
export {
  messageKey,
  type AckStatus,
  type Delivery,
  type DeliveryHandler,
  type LostReason,
  type LostReport,
  type MembershipView,
  type MessageId,
  type ReliableOptions,
  type SendResult,
} from './delivery.js';
export { ReliableDelivery } from './reliable-delivery.js';
