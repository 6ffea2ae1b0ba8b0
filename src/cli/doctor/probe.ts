/**
 * Does anybody answer? A peer in observer mode (as `peer peers` runs) probes the group; members
 * answer at once by unicast. Also reports what explains silence: datagrams sealed with another
 * key or sent in the clear, and peers speaking another protocol version.
 */
import { startPeer, type NetworkSettings } from '../peer.js';
import type { CheckResult } from './checks.js';

/** Default wait for answers: a probe is answered in a round trip, heartbeats come every 200-250 ms. */
export const PROBE_WAIT_MS = 2000;

export async function checkPeersAnswer(
  settings: NetworkSettings,
  waitMs = PROBE_WAIT_MS,
): Promise<CheckResult> {
  const title = 'peers answer';
  const peer = await startPeer(settings, { observer: true });
  try {
    await new Promise((r) => setTimeout(r, waitMs));
    const live = peer.node.membership.live();
    const dropped = peer.security.secure?.stats.dropped;
    const otherKey = (dropped?.key ?? 0) + (dropped?.auth ?? 0);
    const clear = dropped?.plaintext ?? 0;
    const version = peer.node.stats.dropped.version;
    if (live.length > 0) {
      const names = live.map((m) => `${m.name} (${m.address})`).join(', ');
      return {
        id: 'peers',
        title,
        status: 'pass',
        detail: `${live.length} answered within ${waitMs} ms: ${names}`,
      };
    }
    if (otherKey > 0)
      return {
        id: 'peers',
        title,
        status: 'fail',
        detail: `${otherKey} datagram(s) arrived sealed with a key not in ${settings.keys?.file}`,
        fix: 'give every peer the same key file (or add their key to yours: rotation, docs/security.md)',
      };
    if (clear > 0)
      return {
        id: 'peers',
        title,
        status: 'fail',
        detail: `${clear} unencrypted datagram(s) arrived: those peers run without --key-file`,
        fix: 'give every peer the same --key-file, or run this one without it',
      };
    if (version > 0)
      return {
        id: 'peers',
        title,
        status: 'fail',
        detail: `${version} datagram(s) from peers speaking another protocol version`,
        fix: 'run the same peer version on every machine',
      };
    return {
      id: 'peers',
      title,
      status: 'warn',
      detail: `no peer answered within ${waitMs} ms on ${settings.group}:${settings.port} via ${settings.interface}`,
      fix: 'if peers should be running: same --group/--port/--interface subnet on all, UDP port open in their firewalls, and on managed switches IGMP snooping needs a querier; or start one: peer up',
    };
  } finally {
    await peer.stop();
  }
}
