/** The token ring's timings: every role reads them; the profiles (config.ts) give their values. */
export interface TokenRingTimings {
  /** An unacknowledged pass is resent after this long: a few LAN round trips. */
  passRetryMs: number;
  /** Sends to one successor before it is skipped for the next in the live ring. */
  passAttempts: number;
  /** How long a holder that does not want the CS keeps the token: sets the idle rotation rate. */
  idleHoldMs: number;
  /** A majority-acked lease lets the holder act for this long after it asked. */
  leaseMs: number;
  /** A holder in the CS asks again this often (several tries per lease at 10 % loss). */
  leaseRenewMs: number;
  /** Ackers wait leaseMs + this before backing an unrelated holder: tick granularity and clock rate error. */
  leaseGuardMs: number;
  /**
   * A holder that wants the CS but gets no majority this long passes the token on (and asks again
   * next time). Must exceed leaseMs + leaseGuardMs: after a skip, the others back the new branch
   * only once their last ack has expired, and a holder that gave up sooner would lose its visit.
   */
  leaseWaitMs: number;
  /** A holder that keeps the token (alone, in a long CS) multicasts a beat this often. */
  beatIntervalMs: number;
  /** Token loss timeout = lossBaseMs + ring size x lossPerPeerMs of silence. */
  lossBaseMs: number;
  lossPerPeerMs: number;
  /** A claim without a majority of confirms by then is abandoned; also the spacing of claimer ranks. */
  claimTimeoutMs: number;
}
