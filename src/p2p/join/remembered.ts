/**
 * Remembered peers: the members this peer met, kept across restarts (the CLI keeps them in the
 * `peers` table of its database, storage/store.ts), so a peer started without a seed, or whose
 * seeds are gone, can still find its group again. p2p declares what it needs; storage implements it.
 */
import type { MemberView } from '../protocol.js';
import type { Address } from '../transport/transport.js';

export interface RememberedPeers {
  /**
   * Remembers what members did, in one batch: seen now (`connected`: it joined, came back,
   * restarted) or dead. A member that left (its state `left`) is forgotten: it said goodbye (a
   * one-shot command's peer leaves after every run), and trying it again would only cost
   * datagrams. Only members taken on their own word reach here. Never throws: a failed write is
   * the implementation's to report.
   */
  remember(changes: ReadonlyArray<{ member: MemberView; connected: boolean }>, wallMs: number): void;
  /** The addresses of up to `limit` remembered members, the most recently seen first. */
  candidates(limit: number): Address[];
}

/** Rows kept in memory, for simulated peers (a crash in the simulation keeps them, as a disk would). */
export class MemoryRememberedPeers implements RememberedPeers {
  readonly rows = new Map<string, { address: Address; lastSeen: number; connected: boolean }>();

  remember(changes: ReadonlyArray<{ member: MemberView; connected: boolean }>, wallMs: number): void {
    for (const { member, connected } of changes) {
      this.rows.delete(member.id); // re-inserted last: the map stays in last-seen order
      if (member.state !== 'left')
        this.rows.set(member.id, { address: member.address, lastSeen: wallMs, connected });
    }
  }

  candidates(limit: number): Address[] {
    return [...this.rows.values()]
      .reverse()
      .slice(0, limit)
      .map((r) => r.address);
  }
}
