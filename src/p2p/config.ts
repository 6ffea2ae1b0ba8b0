/**
 * Defaults and timing profiles. Commands never hard-code numbers: they pick a profile and
 * override single fields from flags.
 *
 * `lan` (default): tuned for a wired LAN with up to 10 % packet loss.
 *   Crash detection: a peer that dies right after a heartbeat is declared dead after
 *   deadAfterMs (ticks come on the deadline, node.ts); one that dies right before its next
 *   heartbeat after deadAfterMs - heartbeatIntervalMs. So detection lies in [550, 1300] ms, under
 *   the 1.5 s target.
 *   Idle cost: a heartbeat every 750 ms, not 200 or 500: a peer's heartbeats and the others' it
 *   receives are most of what an idle peer does. At 200 ms five idle peers cost 2.5 times what
 *   five Serf agents spend idle, at 500 ms as much as they do, at 750 ms a third less than at
 *   500 (BENCHMARKS.md, membership). What a shorter interval bought, a loss made good quickly, the
 *   check stage buys instead: a member silent for checkAfterMs (a heartbeat 100 ms late) is pinged
 *   by unicast every pingIntervalMs, telling nobody, and its answer counts as a heartbeat.
 *   Suspicion: a heartbeat lost (10 % at 10 % loss) and the 6 pings of the 150 ms from the check
 *   to suspectAfterMs, or their answers (0.19^6): about 5 in 10^6 heartbeats.
 *   False death: a heartbeat lost and every one of the 18 pings (or its answer) sent over the
 *   450 ms from the check to the death (0.1 x 0.19^18, about 10^-14), and its refutation of the
 *   suspicion. The next heartbeat is due only after the death (1500 > 1300 ms), so one heartbeat
 *   lost is all it takes where the pings cannot reach a member (docs/membership.md).
 *   Traffic: one heartbeat of about 110 bytes every 750 ms, about 150 bytes/s per peer.
 * `local`: a little slower, for many peers on one loaded host (tests, the demo): CPU stalls on a
 *   2-core machine running a test suite can exceed 1 s, which the lan profile would call a death.
 */
import type { MembershipTimings } from './membership.js';
import type { TokenRingTimings } from './token-ring/index.js';
import type { ElectionTimings } from './election.js';
import type { ClockSyncTimings } from './clock-sync.js';

export const DEFAULT_GROUP = '239.255.77.77';
export const DEFAULT_PORT = 47777;
export const DEFAULT_TTL = 1;
/** Members tracked at once (alive, suspect, and recently dead or left). */
export const MEMBERS_MAX = 1024;

/**
 * Heartbeat regimes (membership.ts), so that the heartbeats a peer receives stay bounded whatever
 * the group's size. FAST: a heartbeat every heartbeatIntervalMs, and members whose heartbeats
 * reach us are watched by them (detection in [deadAfterMs - heartbeat, deadAfterMs]). SLOW: a
 * heartbeat every max(SLOW_HEARTBEAT_INTERVALS x heartbeatIntervalMs, SLOW_HEARTBEAT_PER_MEMBER_MS
 * x live members), and every member is watched by SWIM probes (swim.ts): on lan at 50 members a
 * peer receives about 33 heartbeats a second instead of 65, and at 1,000 about 50 instead of 1,332.
 * A peer enters SLOW above REGIME_SLOW_ABOVE_MEMBERS live members (itself included) and comes
 * back to FAST at REGIME_FAST_AT_MEMBERS or fewer: the gap keeps a group whose size hovers around
 * the threshold from switching at every join and death. In FAST members beat together on the wall
 * clock's grid (membership.ts heartbeatDue), so a peer takes the others' heartbeats in one wake;
 * in SLOW each beats at its own phase of the interval: one host's virtual network fans a heartbeat
 * out to every member, and 50 members beating at one instant made 2,450 frames at once, over the
 * kernel's default receive backlog of 1,000 (net.core.netdev_max_backlog).
 */
export const REGIME_SLOW_ABOVE_MEMBERS = 36;
export const REGIME_FAST_AT_MEMBERS = 28;
/** The shortest SLOW heartbeat interval, in FAST intervals (1.5 s on lan). */
export const SLOW_HEARTBEAT_INTERVALS = 2;
/** Per live member, what the SLOW interval grows by: about 50 heartbeats a second reach a peer. */
export const SLOW_HEARTBEAT_PER_MEMBER_MS = 20;
/**
 * Members our heartbeats also go to by unicast (those our multicast does not reach, reach.ts)
 * while we are in FAST: at most this many x 1.33 unicast heartbeats a second on lan. Past it,
 * those members watch us by SWIM probes, which cost the same whatever the group's size.
 */
export const HEARTBEAT_FANOUT_MAX = 16;

export interface Profile {
  name: ProfileName;
  /**
   * The tick cadence of a protocol whose tick returns no deadline (one with work under way, or
   * with no deadlines of its own); the others tick on their deadlines (node.ts).
   */
  tickMs: number;
  membership: MembershipTimings;
  /**
   * Token ring (token-ring/). Loss timeout = lossBaseMs + ring size x lossPerPeerMs, and
   * lossBaseMs >= leaseMs + leaseGuardMs so a claimer's own lease acks have expired when it claims.
   * lan: a new token about 0.9 s after the holder's crash with 5 peers (target 1.5 s).
   */
  tokenRing: TokenRingTimings;
  /** Bully election (election.ts): a few hundred ms, as Raft advises for election timeouts. */
  election: ElectionTimings;
  /** Berkeley clock sync (clock-sync.ts). */
  clock: ClockSyncTimings;
}

export type ProfileName = 'lan' | 'local';

export const PROFILES: Record<ProfileName, Profile> = {
  lan: {
    name: 'lan',
    tickMs: 25,
    membership: {
      heartbeatIntervalMs: 750,
      checkAfterMs: 850,
      suspectAfterMs: 1000,
      deadAfterMs: 1300,
      pingIntervalMs: 25,
      deadRetentionMs: 60_000,
    },
    tokenRing: {
      passRetryMs: 40,
      passAttempts: 4,
      idleHoldMs: 0,
      leaseMs: 400,
      leaseRenewMs: 100,
      leaseGuardMs: 100,
      leaseWaitMs: 600,
      beatIntervalMs: 100,
      lossBaseMs: 600,
      lossPerPeerMs: 50,
      claimTimeoutMs: 150,
    },
    election: {
      startupListenMs: 150,
      answerTimeoutMs: 150,
      electRetryMs: 50,
      claimTimeoutMs: 400,
    },
    clock: {
      roundIntervalMs: 5_000,
      roundIntervalMaxMs: 40_000,
      messagesPerRound: 10,
      roundGapMinMs: 250,
      collectMs: 100,
      rttMaxMs: 50,
      slewRate: 0.5,
    },
  },
  local: {
    name: 'local',
    tickMs: 25,
    membership: {
      heartbeatIntervalMs: 250,
      checkAfterMs: 1500,
      suspectAfterMs: 1500,
      deadAfterMs: 2500,
      pingIntervalMs: 250,
      deadRetentionMs: 60_000,
    },
    tokenRing: {
      passRetryMs: 80,
      passAttempts: 4,
      idleHoldMs: 0,
      leaseMs: 800,
      leaseRenewMs: 200,
      leaseGuardMs: 200,
      leaseWaitMs: 1200,
      beatIntervalMs: 200,
      lossBaseMs: 1500,
      lossPerPeerMs: 100,
      claimTimeoutMs: 300,
    },
    election: {
      startupListenMs: 300,
      answerTimeoutMs: 300,
      electRetryMs: 100,
      claimTimeoutMs: 800,
    },
    clock: {
      roundIntervalMs: 5_000,
      roundIntervalMaxMs: 40_000,
      messagesPerRound: 10,
      roundGapMinMs: 250,
      collectMs: 200,
      rttMaxMs: 100,
      slewRate: 0.5,
    },
  },
};
