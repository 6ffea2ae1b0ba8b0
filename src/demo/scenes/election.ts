import type { ChildLines } from '../../cli/child.js';
import { seconds, type DemoContext, type DemoScene } from '../context.js';

/** name -> [priority, fake clock offset ms, fake drift ppm]: clocks up to 1.5 s apart. */
const PEERS: Record<string, [number, number, number]> = {
  ana: [1, -600, 50],
  ben: [2, 350, -80],
  cai: [3, 900, 100],
};
const NAMES = Object.keys(PEERS);

/** Whom a `peer up --log-format json` process follows: its last coordinator-changed or elected line. */
function followed(p: ChildLines): { coordinator: string | null; term: number } | undefined {
  let last: { coordinator: string | null; term: number } | undefined;
  const self = p.json().find((e) => e.event === 'up')?.id as string | undefined;
  for (const e of p.json()) {
    if (e.event === 'coordinator-changed')
      last = { coordinator: e.coordinator as string | null, term: e.term as number };
    else if (e.event === 'elected') last = { coordinator: self ?? null, term: e.term as number };
  }
  return last;
}

const idOf = (p: ChildLines) => p.json().find((e) => e.event === 'up')?.id as string | undefined;

/**
 * Starts `peer up` with a fake wall clock (PEER_FAKE_CLOCK, the test hook): the context passes
 * this process's environment to the child at spawn, synchronously, so it is set just for that call.
 */
function startSkewed(ctx: DemoContext, name: string): ChildLines {
  const [priority, offsetMs, driftPpm] = PEERS[name]!;
  const before = process.env.PEER_FAKE_CLOCK;
  process.env.PEER_FAKE_CLOCK = `${offsetMs},${driftPpm}`;
  try {
    return ctx.start([
      'up',
      '--name',
      name,
      '--priority',
      String(priority),
      '--log-format',
      'json',
      ...ctx.network,
    ]);
  } finally {
    if (before === undefined) delete process.env.PEER_FAKE_CLOCK;
    else process.env.PEER_FAKE_CLOCK = before;
  }
}

async function allFollow(
  peers: ChildLines[],
  leader: ChildLines,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const p of peers)
    await p.until((l) => followed(l)?.coordinator === idOf(leader), Math.max(1, deadline - Date.now()), what);
}

export const electionScene: DemoScene = {
  title: 'Election and clocks',
  about:
    'The highest-priority peer coordinates and syncs the group clock; kill it and the next one takes over.',
  async run(ctx: DemoContext) {
    ctx.step(
      `starting ${NAMES.map((n) => `${n} (priority ${PEERS[n]![0]}, clock ${PEERS[n]![1] > 0 ? '+' : ''}${PEERS[n]![1]} ms)`).join(', ')}`,
    );
    ctx.note('each clock is skewed with PEER_FAKE_CLOCK; the system clock is untouched');
    const peers = new Map<string, ChildLines>(NAMES.map((n) => [n, startSkewed(ctx, n)]));
    const [ana, ben, cai] = NAMES.map((n) => peers.get(n)!) as [ChildLines, ChildLines, ChildLines];
    for (const [n, p] of peers) await p.until((l) => idOf(l) !== undefined, 15_000, `${n} to start`);
    await allFollow([ana, ben, cai], cai, 15_000, 'everyone to follow cai');
    ctx.ok(`everyone follows cai, the highest priority: term ${followed(cai)!.term}`);

    // A Berkeley round over all three, then every clock as `peer clock --json` reports it.
    await cai.until(
      (l) => l.json().some((e) => e.event === 'clock-round' && (e.peers as number) >= NAMES.length),
      15_000,
      'a clock round over all three',
    );
    const out = await ctx.run(['clock', '--json', '--wait', '5000', ...ctx.network]);
    if (out.code !== 0) throw new Error(`peer clock exited ${out.code}: ${out.lines.stderr.join('')}`);
    const rows = JSON.parse(out.lines.lines.join('\n')) as Array<{
      name: string;
      self: boolean;
      coordinator: boolean;
      targetOffsetMs: number;
    }>;
    // Group time minus true time = fake offset + target offset: the same for all once synced.
    const members = rows.filter((r) => !r.self && r.name in PEERS);
    const group = members.map((r) => PEERS[r.name]![1] + r.targetOffsetMs);
    for (const r of members)
      ctx.note(
        `${r.name}${r.coordinator ? ' (coordinator)' : ''}: wall clock ${PEERS[r.name]![1]} ms off, corrected by ${r.targetOffsetMs.toFixed(1)} ms`,
      );
    ctx.ok(
      `peer clock: clocks that were 1.5 s apart now agree within ${(Math.max(...group) - Math.min(...group)).toFixed(2)} ms`,
    );

    ctx.step('kill -9 cai, the coordinator');
    const killedAt = Date.now();
    const termBefore = followed(ana)!.term;
    cai.child.kill('SIGKILL');
    await allFollow([ana, ben], ben, 10_000, 'ana and ben to follow ben');
    const took = Math.max(
      ...[ana, ben].map((p) => {
        const e = p
          .json()
          .filter((x) => x.event === 'coordinator-changed' || x.event === 'elected')
          .pop()!;
        return Date.parse(e.at as string) - killedAt;
      }),
    );
    ctx.ok(
      `ben (priority 2) took over ${seconds(took)} after the kill: about 1 s to call cai dead, then one claim; term ${termBefore} -> ${followed(ben)!.term}`,
    );

    for (const p of [ana, ben]) p.child.kill('SIGTERM');
    await Promise.all([ana.exited, ben.exited, cai.exited]);
  },
};
