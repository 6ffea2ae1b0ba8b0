/**
 * A simulated disk for the simulation tier, as TigerBeetle's VOPR simulates storage: the in-memory
 * stores (MemoryReplica, a KvStore's beforeCommit) ask it what each write does, and it answers from
 * a seeded random source, so a failing seed replays exactly. Faults:
 *   - full: the disk has `free` bytes left; a write needing more stores what fits and fails ENOSPC;
 *   - EIO: a write fails with probability `eio`, having stored nothing;
 *   - torn: a write stores a random prefix and fails with probability `torn`, as a write cut off by
 *     a crash or a failing device leaves part of a record: reading it back must notice.
 * clear() ends every fault, as freeing space or replacing a device would.
 */

/** An error shaped like Node's and SQLite's (a `code`), so the stores classify it as the real one. */
export class SimDiskError extends Error {
  override name = 'SimDiskError';
  constructor(readonly code: 'ENOSPC' | 'EIO') {
    super(`simulated ${code}`);
  }
}

export interface WriteOutcome {
  /** Bytes of the write that reached the disk (all of them when `error` is null). */
  stored: number;
  error: SimDiskError | null;
}

export class SimDisk {
  /** Bytes written so far. */
  used = 0;
  /** Writes that failed, by code. */
  readonly failures = { ENOSPC: 0, EIO: 0, torn: 0 };
  private capacity = Infinity;
  private eio = 0;
  private torn = 0;

  constructor(private readonly random: () => number) {}

  /** Leaves `freeBytes` free: later writes that need more fail with ENOSPC. */
  fill(freeBytes = 0): void {
    this.capacity = this.used + freeBytes;
  }

  /** Fails writes with EIO and tears them, each with its own probability per write. */
  flaky(eio: number, torn: number): void {
    this.eio = eio;
    this.torn = torn;
  }

  /** Ends every fault: space returns, the device answers again. */
  clear(): void {
    this.capacity = Infinity;
    this.eio = 0;
    this.torn = 0;
  }

  get faulty(): boolean {
    return this.capacity !== Infinity || this.eio > 0 || this.torn > 0;
  }

  /** What a write of `bytes` does. */
  write(bytes: number): WriteOutcome {
    if (this.eio > 0 && this.random() < this.eio) {
      this.failures.EIO++;
      return { stored: 0, error: new SimDiskError('EIO') };
    }
    if (this.torn > 0 && this.random() < this.torn) {
      this.failures.torn++;
      const stored = Math.floor(this.random() * bytes);
      this.used += stored;
      return { stored, error: new SimDiskError('EIO') };
    }
    const room = Math.max(0, this.capacity - this.used);
    if (bytes > room) {
      this.failures.ENOSPC++;
      this.used += room;
      return { stored: room, error: new SimDiskError('ENOSPC') };
    }
    this.used += bytes;
    return { stored: bytes, error: null };
  }

  /** Gives back bytes (a torn tail cut off, a file rewritten smaller). */
  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
}
