/**
 * Token: the ring order (the live members that run peer token-ring, by id, as every peer orders
 * it), who holds the token, its epoch and generation (the fencing number), and how fast it moves,
 * all from the `tok.pass` and `tok.beat` multicasts every peer sees (p2p/token-ring/), read by a
 * watch-only instance.
 */
import { cell, stateTone, UNKNOWN, type MonitorInput, type Tab, type TabView } from '../model.js';

export const tokenTab: Tab = {
  id: 'token',
  title: 'Token',
  view(input: MonitorInput): TabView {
    const t = input.token;
    if (t === null) return { kind: 'unavailable', reason: 'the token ring is not available in this build' };
    const byId = new Map(input.members.map((m) => [m.id, m]));
    const holderName = t.holder ? (byId.get(t.holder)?.name ?? t.holder.slice(0, 8)) : null;
    const rate =
      t.passesPerSecond === null
        ? UNKNOWN
        : `${t.passesPerSecond.toFixed(1)} passes/s` +
          (t.ring.length > 0 ? ` (${(t.passesPerSecond / t.ring.length).toFixed(2)} rotations/s)` : '');
    return {
      kind: 'content',
      summary:
        t.generation === 0 && t.epoch === 0
          ? [cell('no token seen yet (no peer runs peer token-ring, or the ring is starting)', 'dim')]
          : [
              cell('holder '),
              cell(holderName ?? 'unknown', holderName ? 'accent' : 'warn'),
              cell(`   epoch ${t.epoch}   generation ${t.generation}   ${rate}`),
            ],
      headers: ['#', 'NAME', 'ID', 'STATE', 'TOKEN'],
      rows: t.ring.map((id, i) => {
        const m = byId.get(id);
        return [
          cell(String(i + 1)),
          cell(m?.name ?? UNKNOWN),
          cell(id.slice(0, 8), 'dim'),
          cell(m?.state ?? UNKNOWN, m ? stateTone(m.state) : 'dim'),
          cell(id === t.holder ? `holds gen ${t.generation}` : '', 'accent'),
        ];
      }),
      empty: 'the ring is empty: no peer runs peer token-ring',
    };
  },
};
