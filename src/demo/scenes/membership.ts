import { loggedAt, loggedState, type ChildLines } from '../../cli/child.js';
import { seconds, type DemoContext, type DemoScene } from '../context.js';

const NAMES = ['ana', 'ben', 'cai', 'dia'];

export const membershipScene: DemoScene = {
  title: 'Membership',
  about: 'Peers find each other by multicast, a crash is detected by heartbeats, a leave is announced.',
  async run(ctx: DemoContext) {
    ctx.step(`starting ${NAMES.join(', ')} as separate processes: peer up --log-format json`);
    const started = Date.now();
    const peers = new Map<string, ChildLines>(
      NAMES.map((n) => [n, ctx.start(['up', '--name', n, '--log-format', 'json', ...ctx.network])]),
    );
    const others = (n: string) => NAMES.filter((x) => x !== n);
    for (const [n, p] of peers)
      await p.until(
        (l) => others(n).every((o) => loggedState(l, o) === 'alive'),
        15_000,
        `${n} to see everyone`,
      );
    ctx.ok(
      `all ${NAMES.length} peers see each other, ${seconds(Date.now() - started)} after launch (most of it is Node starting)`,
    );

    ctx.step('kill -9 cai: no goodbye, the others must notice the silence');
    const crashedAt = Date.now();
    peers.get('cai')!.child.kill('SIGKILL');
    const survivors = ['ana', 'ben', 'dia'];
    for (const n of survivors)
      await peers.get(n)!.until((l) => loggedState(l, 'cai') === 'dead', 5_000, `${n} to see cai dead`);
    const detect = survivors.map(
      (n) => `${n} ${seconds(loggedAt(peers.get(n)!, 'cai', 'dead')! - crashedAt)}`,
    );
    ctx.ok(`cai marked dead by every survivor: ${detect.join(', ')}`);

    ctx.step('SIGTERM dia: a graceful stop multicasts a leave');
    const leftAt = Date.now();
    peers.get('dia')!.child.kill('SIGTERM');
    for (const n of ['ana', 'ben'])
      await peers.get(n)!.until((l) => loggedState(l, 'dia') === 'left', 3_000, `${n} to see dia leave`);
    const seen = ['ana', 'ben'].map(
      (n) => `${n} ${seconds(Math.max(0, loggedAt(peers.get(n)!, 'dia', 'left')! - leftAt))}`,
    );
    ctx.ok(`dia's leave seen at once: ${seen.join(', ')}`);

    const list = await ctx.run(['peers', '--json', '--wait', '300', ...ctx.network]);
    const members = JSON.parse(list.lines.lines.join('\n')) as Array<{ name: string; state: string }>;
    ctx.ok(`peer peers now lists: ${members.map((m) => `${m.name} (${m.state})`).join(', ')}`);
    for (const n of ['ana', 'ben']) peers.get(n)!.child.kill('SIGTERM');
    await Promise.all(['ana', 'ben'].map((n) => peers.get(n)!.exited));
  },
};
