/**
 * LAN tier: a full disk loses nothing acknowledged (docs/recovery.md, "When the disk fails"), with
 * the built CLI on separate hosts of a namespace LAN. Host 0 runs the `peer replicate` holder r1
 * and host 3 the `peer kv serve` holder k1, each on a real 2 MB tmpfs in a mount namespace of its
 * own (test/support/tmpfs.ts) that the test fills; host 1 runs the healthy holder r2; the writer on
 * host 2 appends (`peer replicate -`) and puts (`peer kv shell`) with `--acks all` until refused:
 *   - every write a holder acknowledged is in its replica file or kv_log (acked ⊆ stored);
 *   - the full holders stay up and each says ONE line that writes fail; the writer gets a one-line
 *     refusal that names the holder and the full disk, and exits 1;
 *   - the filler deleted, writes succeed again without a restart and each full holder says ONE line
 *     that writes work again, once they went a few seconds without a failure.
 * Every wait is on a condition with a deadline. No packet loss here: the disk is the fault.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lanTierDecision, NetnsLan } from '../support/netns.js';
import { BIN, Lines, alive, tempDir } from '../support/proc.js';
import {
  expectRecoveredOnce,
  expectUpAndSaidOnce,
  fill,
  onTmpfs,
  storedKvLog,
  storedReplica,
  unfill,
} from '../support/tmpfs.js';

const decision = lanTierDecision();
const PORT = 47777;
const FULL_HOST = 0;
const HEALTHY_HOST = 1;
const WRITER_HOST = 2;
const KV_HOST = 3;
/** The room left on a full holder's tmpfs: a batch or two of writes fills it. */
const ROOM_BYTES = 64 * 1024;
/** Writes per batch (one writer process), each with a text of this many bytes. */
const BATCH_LINES = 100;
const TEXT_BYTES = 500;
/** Batches before giving up on a refusal: the room is gone long before. */
const BATCHES_MAX = 10;
/** Process start-up on a loaded 2-core machine dominates these waits, not the protocol. */
const START_TIMEOUT_MS = 20_000;
const RUN_TIMEOUT_MS = 20_000;
/** How long a writer waits for the acks it asked for, per write. */
const ACK_TIMEOUT_MS = 3_000;

/** The lines a writer printed on stderr, less the open-group notice every command prints. */
const said = (stderr: string) => stderr.split('\n').filter((l) => l !== '' && !l.includes('--key-file'));

describe.runIf(decision.run)('a full disk on a namespace LAN', () => {
  let lan: NetnsLan;
  let root: string;
  /** A holder on host i: on a tmpfs of its own when `full`, else on the host's /tmp. */
  const holder = (i: number, name: string, command: string[], full: boolean) => {
    const mount = path.join(root, name);
    const dir = path.join(mount, 'd');
    const extra = command[0] === 'replicate' ? ['--dir', dir] : [];
    const args = [BIN, ...command, ...net(i, name, dir), ...extra, '--log-format', 'json'];
    const run = full ? onTmpfs(mount, process.execPath, args) : { command: process.execPath, args };
    return { p: new Lines(lan.spawn(i, run.command, run.args, { NO_COLOR: '1' })), mount, dir };
  };
  // `local`: the slower failure detection, so that holders on a loaded machine stay alive to
  // each other while the disk fills (the disk, not the detector, is under test).
  const net = (i: number, name: string, dataDir: string) => [
    '--interface',
    lan.host(i).address,
    '--port',
    String(PORT),
    '--data-dir',
    dataDir,
    '--name',
    name,
    '--profile',
    'local',
  ];
  const writer = (args: string[], input = '') =>
    lan.run(
      WRITER_HOST,
      process.execPath,
      [BIN, ...args, ...net(WRITER_HOST, 'w', path.join(root, 'w')), '--acks', 'all'],
      { env: { NO_COLOR: '1' }, input, timeoutMs: RUN_TIMEOUT_MS },
    );
  const batch = (b: number, line: (b: number, i: number) => string) =>
    Array.from({ length: BATCH_LINES }, (_, i) => line(b, i)).join('\n');

  let r1: ReturnType<typeof holder>;
  let r2: ReturnType<typeof holder>;
  let k1: ReturnType<typeof holder>;

  beforeAll(async () => {
    lan = new NetnsLan(4).up();
    root = tempDir('lan-disk');
    r1 = holder(FULL_HOST, 'r1', ['replicate'], true);
    r2 = holder(HEALTHY_HOST, 'r2', ['replicate'], false);
    k1 = holder(KV_HOST, 'k1', ['kv', 'serve'], true);
    const joined = (name: string) => (l: Lines) =>
      l.json().some((e) => e.event === 'join' && e.name === name);
    await Promise.all([
      r1.p.until(joined('r2'), START_TIMEOUT_MS, 'r1 to see r2 join'),
      r2.p.until(joined('r1'), START_TIMEOUT_MS, 'r2 to see r1 join'),
      k1.p.until((l) => l.json().some((e) => e.event === 'up'), START_TIMEOUT_MS, 'k1 up'),
    ]);
  }, START_TIMEOUT_MS + 10_000);

  afterAll(() => lan?.down());

  it('holders acknowledge only what they stored, stay up, say so once, and resume when space returns', async () => {
    fill(r1.p, r1.mount, ROOM_BYTES);
    fill(k1.p, k1.mount, ROOM_BYTES);

    // Append until r1 refuses; every entry a holder acknowledged must be in its file.
    const ackedBy = new Map<string, string[]>([
      ['r1', []],
      ['r2', []],
    ]);
    let refused: Awaited<ReturnType<typeof writer>> | undefined;
    for (let b = 0; b < BATCHES_MAX && !refused; b++) {
      const r = await writer(
        ['replicate', '-', '--timeout', String(ACK_TIMEOUT_MS), '--json'],
        batch(b, (b, i) => `b${b} i${i} ${'x'.repeat(TEXT_BYTES)}`),
      );
      expect(r.stdout, `replicate exited ${r.code}: ${r.stderr}`).toMatch(/^\{/);
      const out = JSON.parse(r.stdout) as { entries: Array<{ id: string; confirmed: string[] }> };
      for (const e of out.entries) for (const h of e.confirmed) ackedBy.get(h)?.push(e.id);
      if (r.code !== 0) refused = r;
    }
    // Up through the full disk, their files then readable through their pids.
    for (const h of [r1, r2, k1]) expect(alive(h.p), h.p.stderr.join('')).toBe(true);
    for (const [name, h] of [
      ['r1', r1],
      ['r2', r2],
    ] as const) {
      const file = storedReplica(h.p, path.join(h.dir, `${name}.txt`));
      expect(
        ackedBy.get(name)!.filter((id) => !file.ids.has(id)),
        `${name} acknowledged entries its file lacks`,
      ).toEqual([]);
      expect(file.rejected).toEqual([]);
    }
    expect(refused, 'the writer was never refused').toBeDefined();
    expect(refused!.code, refused!.stderr).toBe(1);
    expect(said(refused!.stderr)).toHaveLength(1);
    expect(said(refused!.stderr)[0]).toMatch(
      /^peer: .*could not be stored by r1 \(disk full\) \(--acks all\); free space there/,
    );
    // r1 acknowledged some before its disk ran out, and r2 at least those. (Not "more": the writer
    // exits as soon as r1's refusal makes --acks all impossible, often before r2's acks of that
    // batch arrive.)
    expect(ackedBy.get('r1')!.length).toBeGreaterThan(0);
    expect(ackedBy.get('r2')!.length).toBeGreaterThanOrEqual(ackedBy.get('r1')!.length);

    // kv: put through the shell until k1 refuses; every write it confirmed is in its kv_log.
    const okIds: string[] = [];
    let kvRefused: Awaited<ReturnType<typeof writer>> | undefined;
    for (let b = 0; b < BATCHES_MAX && !kvRefused; b++) {
      const r = await writer(
        ['kv', 'shell', '--timeout', String(ACK_TIMEOUT_MS)],
        `${batch(b, (b, i) => `POST k${b}_${i} ${'v'.repeat(TEXT_BYTES)}`)}\nexit\n`,
      );
      for (const m of r.stdout.matchAll(/^OK ([0-9a-f]{16}:\d+) /gm)) okIds.push(m[1]!);
      if (r.code !== 0) kvRefused = r;
    }
    expect(kvRefused, 'the kv writer was never refused').toBeDefined();
    expect(kvRefused!.code, kvRefused!.stderr).toBe(1);
    expect(kvRefused!.stderr).toMatch(/could not be stored by k1 \(disk full\)/);
    expect(okIds.length).toBeGreaterThan(0);
    const logged = storedKvLog(k1.p, path.join(k1.dir, 'k1.db'), root);
    expect(
      okIds.filter((id) => !logged.has(id)),
      'k1 confirmed writes its kv_log lacks',
    ).toEqual([]);

    // Still up (their checkpoint timers ran on the full disk meanwhile), one line each.
    expectUpAndSaidOnce([r1.p, k1.p], [r2.p]);

    // Space returns: writes succeed without a restart, and each full holder says so once.
    unfill(r1.p, r1.mount);
    unfill(k1.p, k1.mount);
    const after = await writer(['replicate', 'after the disk was freed', '--json']);
    expect(after.code, after.stderr).toBe(0);
    expect((JSON.parse(after.stdout) as { confirmed: string[] }).confirmed).toEqual(['r1', 'r2']);
    const put = await writer(['kv', 'put', 'after', 'freed']);
    expect(put.code, put.stderr).toBe(0);
    await expectRecoveredOnce([r1.p, k1.p], RUN_TIMEOUT_MS);
  }, 90_000);
});
