import fs from 'node:fs';
import type { ChildLines } from '../../cli/child.js';
import { seconds, type DemoContext, type DemoScene } from '../context.js';

const HOLDERS = ['r1', 'r2', 'r3'];

function fail(what: string): never {
  throw new Error(`replication scene: ${what}`);
}

export const replicationScene: DemoScene = {
  title: 'Replication',
  about:
    'Three replica files, one per holder process: appends acknowledged after fsync, a crashed holder repaired, files reconciled byte for byte.',
  async run(ctx: DemoContext) {
    const holder = (name: string) =>
      ctx.start([
        'replicate',
        '--name',
        name,
        '--dir',
        ctx.replicasDir,
        '--log-format',
        'json',
        ...ctx.network,
      ]);
    ctx.step(`starting holders ${HOLDERS.join(', ')}: peer replicate --dir ${ctx.replicasDir}`);
    const holders = new Map<string, ChildLines>(HOLDERS.map((n) => [n, holder(n)]));
    for (const [n, h] of holders)
      await h.until(
        (l) => l.json().filter((e) => e.event === 'join').length >= 2,
        15_000,
        `${n} to see the others`,
      );
    ctx.ok('three holders see each other');

    const append = async (text: string, acks: string, timeoutMs = 5_000) => {
      const started = Date.now();
      const r = await ctx.run([
        'replicate',
        text,
        '--acks',
        acks,
        '--timeout',
        String(timeoutMs),
        '--json',
        ...ctx.network,
      ]);
      const out = JSON.parse(r.lines.lines.join('\n') || '{}') as {
        id?: string;
        confirmed?: string[];
        missing?: string[];
      };
      return { code: r.code, ms: Date.now() - started, ...out };
    };
    for (const text of ['Oi', 'Teste', 'Persistência']) {
      const r = await append(text, 'all');
      if (r.code !== 0) fail(`append '${text}' was not confirmed by all`);
      ctx.ok(
        `'${text}' is ${r.id}, fsynced by ${r.confirmed!.join(', ')} (${seconds(r.ms)}, mostly Node starting)`,
      );
    }

    ctx.step('kill -9 r3, then append with --acks all (fails, naming r3) and --acks majority (succeeds)');
    holders.get('r3')!.child.kill('SIGKILL');
    await holders.get('r3')!.exited;
    const refused = await append('while r3 is down', 'all', 1_000);
    if (refused.code !== 1) fail('--acks all succeeded with a holder down');
    ctx.ok(
      `--acks all: exit 1, no confirmation from ${refused.missing!.join(', ')} (r3's id: this appender never heard it)`,
    );
    const maj = await append('majority is enough', 'majority');
    if (maj.code !== 0) fail('--acks majority failed with two of three holders up');
    ctx.ok(`--acks majority: ${maj.id} confirmed by ${maj.confirmed!.join(', ')}`);

    ctx.step('restart r3: it keeps its file and fetches what it missed (anti-entropy)');
    const back = holder('r3');
    holders.set('r3', back);
    const restarted = Date.now();
    await back.until(
      (l) =>
        l
          .json()
          .filter((e) => e.event === 'repair')
          .reduce((n, e) => n + (e.count as number), 0) >= 2,
      15_000,
      'r3 to repair',
    );
    ctx.ok(`r3 repaired the 2 entries it missed, ${seconds(Date.now() - restarted)} after restarting`);

    ctx.step('peer reconcile: same digest everywhere, then every file rewritten in canonical order');
    const rec = await ctx.run(['reconcile', '--json', '--timeout', '15000', ...ctx.network], 30_000);
    if (rec.code !== 0) fail('peer reconcile did not converge');
    const table = JSON.parse(rec.lines.lines.join('\n')) as {
      replicas: Array<{ replica: string; before: number; after: number; sha256: string }>;
    };
    for (const r of table.replicas)
      ctx.note(`${r.replica}: ${r.before} -> ${r.after} entries, sha256 ${r.sha256.slice(0, 16)}`);
    const files = HOLDERS.map((n) => fs.readFileSync(ctx.replicaFile(n), 'utf8'));
    if (new Set(files).size !== 1) fail('the replica files differ after reconcile');
    ctx.ok(`the three files are byte-identical (${files[0]!.split('\n').length - 1} lines, no duplicates)`);
    for (const h of holders.values()) h.child.kill('SIGTERM');
    await Promise.all([...holders.values()].map((h) => h.exited));
  },
};
