import { loggedState, type ChildLines } from '../../cli/child.js';
import { seconds, type DemoContext, type DemoScene } from '../context.js';

export const recoverScene: DemoScene = {
  title: 'Crash and recover',
  about:
    'A peer killed with kill -9 keeps only its SQLite file: peer recover checks and restores it, a restart says what it recovered, and a Chandy–Lamport snapshot sees the group whole again.',
  async run(ctx: DemoContext) {
    ctx.step(
      'starting eva and fox: peer up --log-format json (each checkpoints to its SQLite file every second)',
    );
    const up = (n: string) => ctx.start(['up', '--name', n, '--log-format', 'json', ...ctx.network]);
    const peers = new Map<string, ChildLines>([
      ['eva', up('eva')],
      ['fox', up('fox')],
    ]);
    await peers.get('eva')!.until((l) => loggedState(l, 'fox') === 'alive', 15_000, 'eva to see fox');
    await peers.get('fox')!.until((l) => loggedState(l, 'eva') === 'alive', 15_000, 'fox to see eva');
    ctx.ok('eva and fox see each other');

    const snap = async (label: string) => {
      const r = await ctx.run(['snapshot', '--json', '--wait', '4000', ...ctx.network]);
      const g = JSON.parse(r.lines.lines.join('\n')) as {
        peers: Array<{ name: string; lamport: number; complete: boolean }>;
        complete: boolean;
        inFlight: number;
      };
      ctx.ok(
        `${label}: ${g.peers.map((p) => `${p.name} at Lamport ${p.lamport}`).join(', ')}; ${g.inFlight} in flight, ${g.complete ? 'consistent and complete' : 'incomplete'}`,
      );
    };
    ctx.step('peer snapshot: markers go round, each peer records its state and its incoming channels');
    await snap('snapshot');

    ctx.step('kill -9 fox (after its next checkpoint): no goodbye, no flush, only the file remains');
    await new Promise((r) => setTimeout(r, 1200));
    const killedAt = Date.now();
    peers.get('fox')!.child.kill('SIGKILL');
    await peers.get('fox')!.exited;
    await peers.get('eva')!.until((l) => loggedState(l, 'fox') === 'dead', 5_000, 'eva to see fox dead');
    ctx.ok(`eva marked fox dead ${seconds(Date.now() - killedAt)} after the kill`);

    ctx.step(
      'peer recover --name fox: integrity check, checksums, newest good checkpoint, replay of unprocessed messages',
    );
    const rec = await ctx.run(['recover', '--name', 'fox', '--json', ...ctx.network]);
    const r = JSON.parse(rec.lines.lines.join('\n')) as {
      checkpoint: { seq: number; damagedSkipped: number };
      lamport: number;
      lamportStart: number;
      replayed: number;
      duplicatesSuppressed: number;
      ms: number;
    };
    ctx.ok(
      `integrity ok; checkpoint ${r.checkpoint.seq} restored (${r.checkpoint.damagedSkipped} damaged skipped); Lamport ${r.lamport}, restarts at ${r.lamportStart}; ${r.replayed} replayed, ${r.duplicatesSuppressed} duplicates suppressed; ${r.ms} ms`,
    );
    ctx.note(
      'the restart margin puts the clock above anything fox may have stamped after its last checkpoint',
    );

    ctx.step('restarting fox with the same --name and data dir: it recovers by itself and says so');
    const fox = up('fox');
    peers.set('fox', fox);
    await fox.until(
      (l) => l.stderr.join('').includes('recovered after a crash:'),
      15_000,
      'fox to print its recovery line',
    );
    const line = fox.stderr
      .join('')
      .split('\n')
      .find((x) => x.includes('recovered after a crash:'))!;
    ctx.ok(line.replace(/^peer: /, 'fox: '));
    await peers.get('eva')!.until((l) => loggedState(l, 'fox') === 'alive', 10_000, 'eva to see fox back');
    ctx.ok('eva sees fox alive again, with a higher incarnation');

    await snap('snapshot after recovery');
    for (const p of peers.values()) p.child.kill('SIGTERM');
    await Promise.all([...peers.values()].map((p) => p.exited));
  },
};
