import fs from 'node:fs';
import path from 'node:path';
import type { ChildLines } from '../../cli/child.js';
import { seconds, type DemoContext, type DemoScene } from '../context.js';

const messages = (p: ChildLines) => p.json().filter((e) => e.event === 'message');

async function untilFile(file: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${file}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const chatScene: DemoScene = {
  title: 'Chat',
  about:
    'Acknowledged group and direct messages, history for a late joiner, and a clear failure for a name nobody has.',
  async run(ctx: DemoContext) {
    ctx.step('ana and ben listen: peer chat --listen --json');
    const listeners = new Map<string, ChildLines>(
      ['ana', 'ben'].map((n) => [n, ctx.start(['chat', '--name', n, '--listen', '--json', ...ctx.network])]),
    );
    for (const n of listeners.keys()) await untilFile(path.join(ctx.dataDir, `${n}.db`), 15_000);

    ctx.step('cai sends to everyone: peer chat --send "hello, group"');
    const sentAt = Date.now();
    const hello = await ctx.run(['chat', '--name', 'cai', '--send', 'hello, group', ...ctx.network]);
    if (hello.code !== 0)
      throw new Error(`peer chat --send exited ${hello.code}: ${hello.lines.stderr.join('')}`);
    ctx.ok(`acknowledged by every member; --send exited 0 after ${seconds(Date.now() - sentAt)}`);
    for (const [n, p] of listeners)
      await p.until((l) => messages(l).some((m) => m.text === 'hello, group'), 5_000, `${n} to print it`);
    const line = messages(listeners.get('ana')!).find((m) => m.text === 'hello, group')!;
    ctx.note(JSON.stringify(line));

    ctx.step('cai whispers to ben only: --send "just for ben" --to ben');
    const dm = await ctx.run([
      'chat',
      '--name',
      'cai',
      '--send',
      'just for ben',
      '--to',
      'ben',
      ...ctx.network,
    ]);
    if (dm.code !== 0) throw new Error(`direct message exited ${dm.code}: ${dm.lines.stderr.join('')}`);
    await listeners
      .get('ben')!
      .until((l) => messages(l).some((m) => m.text === 'just for ben' && m.to === 'ben'), 5_000, 'ben');
    if (messages(listeners.get('ana')!).some((m) => m.text === 'just for ben'))
      throw new Error('ana printed a direct message meant for ben');
    ctx.ok('ben got it, acknowledged; ana never saw it');

    ctx.step('dia joins late and asks a member for recent history');
    const dia = ctx.start(['chat', '--name', 'dia', '--listen', '--json', ...ctx.network]);
    await dia.until(
      (l) => messages(l).some((m) => m.text === 'hello, group' && m.history === true),
      10_000,
      'dia to receive history',
    );
    ctx.ok(
      `dia received ${messages(dia).filter((m) => m.history).length} line(s) of history, marked as such`,
    );

    ctx.step('cai writes to a name nobody has: --send "anyone?" --to ghost');
    const ghost = await ctx.run([
      'chat',
      '--name',
      'cai',
      '--send',
      'anyone?',
      '--to',
      'ghost',
      ...ctx.network,
    ]);
    if (ghost.code !== 1) throw new Error(`expected exit 1 for a missing name, got ${ghost.code}`);
    ctx.ok(`exit 1: ${ghost.lines.stderr.join('').trim().split('\n').at(-1)}`);

    for (const p of [...listeners.values(), dia]) p.child.kill('SIGTERM');
    await Promise.all([...listeners.values(), dia].map((p) => p.exited));
    const hist = await ctx.run(['chat', '--name', 'ana', '--history', '5', ...ctx.network]);
    ctx.ok(
      `ana's stored history, read without joining (peer chat --history 5): ${hist.lines.lines.length} line(s)`,
    );
    for (const l of hist.lines.lines) ctx.note(l);
  },
};
