/**
 * Replicas: every holder advertises `rp = "<digest>:<count>"` in its heartbeat tags
 * (p2p/replication/holder.ts), so the monitor sees what each holds without asking. Converged: every live
 * holder advertises the same digest.
 */
import type { MemberView } from '../../../p2p/protocol.js';
import { REPLICA_TAG } from '../../../p2p/replication/index.js';
import { cell, stateTone, type MonitorInput, type Tab, type TabView } from '../model.js';

const DIGEST_TAG_RE = /^([0-9a-f]{16}):([0-9]{1,16})$/;

export interface Holder {
  name: string;
  id: string;
  state: string;
  digest: string;
  count: number;
}

export function holders(members: readonly MemberView[]): Holder[] {
  const out: Holder[] = [];
  for (const m of members) {
    const tag = m.tags[REPLICA_TAG];
    const match = typeof tag === 'string' ? DIGEST_TAG_RE.exec(tag) : null;
    if (!match || m.state === 'left') continue;
    out.push({ name: m.name, id: m.id, state: m.state, digest: match[1]!, count: Number(match[2]) });
  }
  return out;
}

/** True when every live holder advertises one digest; null when there is no live holder. */
export function converged(hs: readonly Holder[]): boolean | null {
  const live = hs.filter((h) => h.state === 'alive' || h.state === 'suspect');
  if (live.length === 0) return null;
  return new Set(live.map((h) => h.digest)).size === 1;
}

export const replicasTab: Tab = {
  id: 'replicas',
  title: 'Replicas',
  view(input: MonitorInput): TabView {
    const hs = holders(input.members);
    const ok = converged(hs);
    const live = hs.filter((h) => h.state === 'alive' || h.state === 'suspect');
    const digests = new Set(live.map((h) => h.digest));
    // The digest most live holders agree on: the others are the ones still catching up.
    const counts = new Map<string, number>();
    for (const h of live) counts.set(h.digest, (counts.get(h.digest) ?? 0) + 1);
    const majority = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
    return {
      kind: 'content',
      summary:
        ok === null
          ? [cell('no live replica holder', 'dim')]
          : ok
            ? [cell(`converged: ${live.length} live holder(s), digest ${[...digests][0]}`, 'good')]
            : [
                cell(
                  `not converged: ${digests.size} different digests among ${live.length} live holders`,
                  'warn',
                ),
              ],
      headers: ['HOLDER', 'ID', 'STATE', 'ENTRIES', 'DIGEST', ''],
      rows: hs.map((h) => [
        cell(h.name),
        cell(h.id.slice(0, 8), 'dim'),
        cell(h.state, stateTone(h.state as 'alive')),
        cell(String(h.count)),
        cell(h.digest, h.digest === majority ? undefined : 'warn'),
        cell(ok === false && h.digest !== majority ? 'behind or diverged' : '', 'warn'),
      ]),
      empty:
        'no peer holds a replica (to hold one: peer replicate, with no message; see peer replicate --help)',
    };
  },
};
