/**
 * Experiment preload for bench/security.ts (not what `peer` ships): gives every UDP socket the
 * process creates a larger kernel receive buffer, PEER_BENCH_RCVBUF_BYTES (the kernel caps it at
 * net.core.rmem_max). Used as `node --import ./bench/security-rcvbuf.mjs bin/run.js up ...` to see
 * whether members' heartbeats survive a flood when the socket can absorb scheduling gaps.
 */
import dgram from 'node:dgram';

const bytes = Number(process.env.PEER_BENCH_RCVBUF_BYTES);
if (Number.isInteger(bytes) && bytes > 0) {
  const createSocket = dgram.createSocket;
  dgram.createSocket = function (options, callback) {
    const o = typeof options === 'string' ? { type: options } : options;
    return createSocket.call(this, { ...o, recvBufferSize: bytes }, callback);
  };
}
