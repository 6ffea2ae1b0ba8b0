/**
 * The built CLI over real UDP on 127.0.0.1 with TTL 0 (nothing leaves the host): a `--listen
 * --json` receiver and `--send` senders as separate processes. Needs `npm run build` first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/run.js');

interface Proc {
  child: ChildProcess;
  out: string;
  err: string;
  exit: Promise<number | null>;
}

const running: Proc[] = [];

/** Runs `peer chat`; with `input`, that is piped to its stdin (then closed). */
function run(args: string[], port: number, dataDir: string, input?: string): Proc {
  const child = spawn(
    process.execPath,
    [
      BIN,
      'chat',
      ...args,
      '--interface',
      '127.0.0.1',
      '--ttl',
      '0',
      '--port',
      String(port),
      '--data-dir',
      dataDir,
    ],
    {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1', PEER_INTERFACE: '127.0.0.1' },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    },
  );
  if (input !== undefined) child.stdin!.end(input);
  const p: Proc = {
    child,
    out: '',
    err: '',
    exit: new Promise((resolve) => child.on('exit', (code) => resolve(code))),
  };
  child.stdout!.on('data', (d: Buffer) => (p.out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (p.err += d.toString()));
  running.push(p);
  return p;
}

async function until(cond: () => boolean, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

/** A listener is up once its database exists and the node is started (it announces itself then). */
async function startListener(
  name: string,
  port: number,
  dataDir: string,
  json = true,
  extra: string[] = [],
): Promise<Proc> {
  const p = run(['--listen', ...(json ? ['--json'] : []), '--name', name, ...extra], port, dataDir);
  expect(await until(() => fs.existsSync(path.join(dataDir, `${name}.db`)), 10_000)).toBe(true);
  return p;
}

function setup() {
  const port = 48000 + Math.floor(Math.random() * 1000);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-chat-'));
  return { port, dataDir };
}

beforeAll(() => {
  if (!fs.existsSync(path.join(ROOT, 'dist/commands/chat.js')))
    throw new Error('dist/commands/chat.js is missing: run npm run build first');
});

afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill('SIGTERM');
      await p.exit;
    }
  }
});

describe('peer chat on loopback', () => {
  it('a --send message reaches a --listen --json receiver and --send exits 0', async () => {
    const { port, dataDir } = setup();
    const bob = await startListener('bob', port, dataDir);
    const alice = run(['--name', 'alice', '--send', 'hello from alice'], port, dataDir);
    expect(await alice.exit).toBe(0);
    expect(await until(() => bob.out.includes('hello from alice'), 5_000)).toBe(true);
    const line = JSON.parse(bob.out.split('\n').find((l) => l.includes('hello from alice'))!);
    expect(line).toMatchObject({ event: 'message', from: 'alice', to: null, text: 'hello from alice' });
    expect(typeof line.lamport).toBe('number');
    expect(line.id).toMatch(/^[0-9a-f]{16}\/\d+\/\d+$/);
    expect(Number.isNaN(Date.parse(line.at))).toBe(false);

    // A direct message to the listener by name, acknowledged.
    const dm = run(['--name', 'alice', '--send', 'just for bob', '--to', 'bob'], port, dataDir);
    expect(await dm.exit).toBe(0);
    expect(await until(() => bob.out.includes('just for bob'), 5_000)).toBe(true);
    const dmLine = JSON.parse(bob.out.split('\n').find((l) => l.includes('just for bob'))!);
    expect(dmLine).toMatchObject({ from: 'alice', to: 'bob', text: 'just for bob' });

    // Stop the listener gracefully; its stored history has both lines, without joining.
    bob.child.kill('SIGINT');
    expect(await bob.exit).toBe(0);
    const hist = run(['--name', 'bob', '--history', '10', '--json'], port, dataDir);
    expect(await hist.exit).toBe(0);
    const texts = hist.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).text);
    expect(texts).toEqual(['hello from alice', 'just for bob']);
  });

  it("for people, a member's last line shows before it left, though lines are held for ordering", async () => {
    const { port, dataDir } = setup();
    const bob = await startListener('bob', port, dataDir, false);
    // A bot is a chat member: it is announced, and its lines come faster than the display's hold.
    const alice = run(['--name', 'alice', '--bot', '--every', '50ms'], port, dataDir);
    const said = () => bob.out.match(/alice: alice bot message \d+$/gm) ?? [];
    expect(await until(() => said().length >= 3, 10_000)).toBe(true);
    // It leaves right after its last line, well within the display's hold (CHAT_DISPLAY_HOLD_MS).
    alice.child.kill('SIGTERM');
    expect(await alice.exit).toBe(0);
    expect(await until(() => /alice left$/m.test(bob.out), 5_000)).toBe(true);
    const events = bob.out
      .split('\n')
      .map((l) => /alice (joined|left)$/.exec(l)?.[1] ?? (/alice: alice bot/.test(l) ? 'line' : null))
      .filter((e) => e !== null);
    expect(events[0]).toBe('joined');
    expect(events.at(-1)).toBe('left');
    expect(events.filter((e) => e !== 'line')).toEqual(['joined', 'left']);
    // A one-shot --send is not in the chat: its line shows under its name, no join or leave.
    const carol = run(['--name', 'carol', '--send', 'drive-by'], port, dataDir);
    expect(await carol.exit).toBe(0);
    expect(await until(() => /^[\d:.]+ carol: drive-by$/m.test(bob.out), 5_000)).toBe(true);
    expect(bob.out).not.toMatch(/carol (joined|left)/);
  });

  it('lines piped in one burst show in order on every listener, each with its own rising Lamport time', async () => {
    const { port, dataDir } = setup();
    const bob = await startListener('bob', port, dataDir, false, ['--show-lamport']);
    const carol = await startListener('carol', port, dataDir);
    const texts = Array.from({ length: 50 }, (_, i) => `line${i + 1}`);
    const alice = run(['--name', 'alice'], port, dataDir, texts.join('\n') + '\n');
    expect(await alice.exit).toBe(0);
    const shown = () => [...bob.out.matchAll(/L(\d+) alice: (line\d+)$/gm)];
    const json = () =>
      carol.out
        .split('\n')
        .filter((l) => l.includes('"line'))
        .map((l) => JSON.parse(l) as { text: string; lamport: number });
    expect(await until(() => shown().length === 50 && json().length === 50, 5_000)).toBe(true);
    // For people: in the order sent, with rising times.
    expect(shown().map((m) => m[2])).toEqual(texts);
    const times = shown().map((m) => Number(m[1]));
    expect(times.every((t, i) => i === 0 || t > times[i - 1]!)).toBe(true);
    // For scripts (printed as they arrive): the same times, one per line.
    const byText = new Map(json().map((l) => [l.text, l.lamport]));
    expect(texts.map((t) => byText.get(t))).toEqual(times);
  });

  it('--send --to a name nobody has fails with a clear message and exit 1', async () => {
    const { port, dataDir } = setup();
    await startListener('bob', port, dataDir);
    const alice = run(['--name', 'alice', '--send', 'anyone?', '--to', 'ghost'], port, dataDir);
    expect(await alice.exit).toBe(1);
    expect(alice.err).toContain("no chat member named 'ghost' is online (online: bob); nothing was sent");
  });
});
