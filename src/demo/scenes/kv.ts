import type { ChildLines } from '../../cli/child.js';
import { seconds, type DemoContext, type DemoScene } from '../context.js';

const HOLDERS = ['k1', 'k2', 'k3'];

function fail(what: string): never {
  throw new Error(`kv scene: ${what}`);
}

export const kvScene: DemoScene = {
  title: 'Key-value store',
  about:
    'A replicated key-value store with no server: three holders, PUT/GET/DELETE from one-shot clients, a holder killed and caught up, and a load test with concurrent clients checking every holder.',
  async run(ctx: DemoContext) {
    const holder = (name: string) =>
      ctx.start(['kv', 'serve', '--name', name, '--log-format', 'json', ...ctx.network]);
    ctx.step(`starting holders ${HOLDERS.join(', ')}: peer kv serve`);
    const holders = new Map<string, ChildLines>(HOLDERS.map((n) => [n, holder(n)]));
    for (const [n, h] of holders)
      await h.until(
        (l) => l.json().filter((e) => e.event === 'join').length >= 2,
        15_000,
        `${n} to see the others`,
      );
    ctx.ok('three holders see each other');

    const kv = async (args: string[], timeoutMs = 20_000) => {
      const r = await ctx.run(['kv', ...args, ...ctx.network], timeoutMs);
      return { code: r.code, out: r.lines.lines.join('\n') };
    };
    const put = await kv(['put', 'minha_chave', 'meu valor', '--acks', 'all']);
    if (put.code !== 0) fail('put was not confirmed by all');
    ctx.ok(`kv put minha_chave "meu valor" --acks all: ${put.out}`);
    const get = await kv(['get', 'minha_chave']);
    if (get.code !== 0 || get.out !== 'meu valor') fail(`get returned '${get.out}'`);
    ctx.ok(`kv get minha_chave: ${get.out} (newest of a majority's answers)`);

    ctx.step('kill -9 k3, then change the key and delete another with --acks majority');
    holders.get('k3')!.child.kill('SIGKILL');
    await holders.get('k3')!.exited;
    await kv(['put', 'outra', 'x', '--acks', 'majority']);
    const upd = await kv(['put', 'minha_chave', 'novo valor', '--acks', 'majority']);
    const del = await kv(['delete', 'outra', '--acks', 'majority']);
    if (upd.code !== 0 || del.code !== 0) fail('a majority write failed with two of three holders up');
    ctx.ok('two holders confirmed each write');

    ctx.step('restart k3: it keeps its SQLite log and fetches what it missed (anti-entropy)');
    const back = holder('k3');
    holders.set('k3', back);
    const restarted = Date.now();
    await back.until(
      (l) =>
        l
          .json()
          .filter((e) => e.event === 'repair')
          .reduce((n, e) => n + (e.count as number), 0) >= 3,
      15_000,
      'k3 to repair',
    );
    const dump = await kv(['dump', '--from', 'k3', '--json']);
    const entries = (JSON.parse(dump.out || '{}') as { entries?: Record<string, string> }).entries ?? {};
    if (entries.minha_chave !== 'novo valor' || 'outra' in entries)
      fail(`k3 holds ${JSON.stringify(entries)}`);
    ctx.ok(
      `k3 caught up ${seconds(Date.now() - restarted)} after restarting: minha_chave = "novo valor", outra deleted`,
    );

    ctx.step(
      'the load and consistency test: peer kv bench --clients 4 --ops 50 (conflicting writes on 8 keys)',
    );
    const bench = await kv(['bench', '--clients', '4', '--ops', '50', '--keys', '8', '--json'], 60_000);
    const r = JSON.parse(bench.out || '{}') as {
      ok?: boolean;
      opsPerSec?: number;
      latency?: { all: { p50Ms: number; p99Ms: number } };
      problems?: string[];
    };
    if (bench.code !== 0 || !r.ok) fail(`bench check failed: ${(r.problems ?? []).join('; ')}`);
    ctx.ok(
      `SUCCESS: all three holders hold the last-writer-wins state; ${r.opsPerSec} ops/s, p50 ${r.latency!.all.p50Ms.toFixed(1)} ms, p99 ${r.latency!.all.p99Ms.toFixed(1)} ms`,
    );
    for (const h of holders.values()) h.child.kill('SIGTERM');
    await Promise.all([...holders.values()].map((h) => h.exited));
  },
};
