/**
 * Log lines the monitor derives from what it sees, for events an observer's node does not emit
 * itself: a new coordinator (from the election's tags) and replicas converging or diverging
 * (from the replication tags). Pure: fed the member list at each refresh.
 */
import { coordinatorFromTags, TAG_TERM } from '../../p2p/election.js';
import type { MemberView } from '../../p2p/protocol.js';
import type { LogLine, TokenInfo } from './model.js';
import { converged, holders } from './tabs/replicas.js';

export class DerivedEvents {
  private coordinator: string | null = null;
  private converged: boolean | null = null;
  private tokenEpoch = 0;

  /** The lines for what changed since the last call. */
  update(members: MemberView[], atWall: number, token: TokenInfo | null = null): LogLine[] {
    const out: LogLine[] = [];
    // A new epoch is a regenerated token: the old one was lost, or the ring was reconfigured.
    if (token && token.epoch > this.tokenEpoch) {
      const name = members.find((m) => m.id === token.holder)?.name;
      out.push({
        atWall,
        kind: 'token',
        text: `token epoch ${token.epoch} (generation ${token.generation})${name ? ` held by ${name}` : ''}`,
        tone: this.tokenEpoch === 0 ? 'good' : 'warn',
      });
      this.tokenEpoch = token.epoch;
    }
    const c = coordinatorFromTags(members);
    if (c !== this.coordinator) {
      const m = members.find((x) => x.id === c);
      out.push(
        c && m
          ? {
              atWall,
              kind: 'elected',
              text: `${m.name} (${c.slice(0, 8)}) is the coordinator, term ${String(m.tags[TAG_TERM])}`,
              tone: 'accent',
            }
          : { atWall, kind: 'elected', text: 'no coordinator: the last one is gone', tone: 'warn' },
      );
      this.coordinator = c;
    }
    const hs = holders(members);
    const conv = converged(hs);
    if (conv !== this.converged && conv !== null) {
      const n = hs.filter((h) => h.state === 'alive' || h.state === 'suspect').length;
      out.push(
        conv
          ? {
              atWall,
              kind: 'repaired',
              text: `replicas converged: ${n} live holder(s) hold one digest`,
              tone: 'good',
            }
          : {
              atWall,
              kind: 'diverged',
              text: `replicas differ among ${n} live holders (repair running)`,
              tone: 'warn',
            },
      );
    }
    if (conv !== null) this.converged = conv;
    return out;
  }
}
