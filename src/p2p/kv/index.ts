/** `peer kv` as the rest of the code uses it: the protocol, and the operations it replicates. */
export * from './ops.js';
export * from './protocol.js';
