/**
 * LAN tier: `peer replicate` and `peer reconcile` as real processes in 5 network namespaces on a
 * bridge, nftables dropping 10 % of incoming UDP on every host. Hosts 0-2 run the holders h1-h3;
 * appends come from hosts 3 and 4 (one-shot and `peer replicate -`) and from the holders' own
 * hosts. h3's host is cut off at the switch while appends go on on both sides of the cut, then
 * reconnected; `peer reconcile` must leave byte-identical files holding every acknowledged entry
 * exactly once. Every wait is on a condition with a deadline.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lanTierDecision, NetnsLan, nftAvailable } from '../support/netns.js';
import { BIN, Lines, tempDir } from '../support/proc.js';
import { compareEntries, entryId, parseLine, type Entry } from '../../src/p2p/replication/index.js';

const decision = lanTierDecision();
const PORT = 47777;
const HOLDERS = ['h1', 'h2', 'h3'];
/** Process start-up on a loaded 2-core machine dominates these waits, not the protocol. */
const START_TIMEOUT_MS = 30_000;
const ONE_SHOT_TIMEOUT_MS = 25_000;
const CATCH_UP_TIMEOUT_MS = 20_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Appended {
  ok: boolean;
  id: string;
  seq: number;
  confirmed: string[];
}

function readReplica(file: string): Entry[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const p = parseLine(l);
      if (!p.ok) throw new Error(`${file}: ${p.reason}: ${l}`);
      return p.entry;
    });
}

describe.runIf(decision.run)('replication on a namespace LAN', () => {
  let lan: NetnsLan;
  let root: string;
  const holders: Lines[] = [];
  const acked = new Map<string, string>(); // id -> text
  const fileOf = (h: string) => path.join(root, h, `${h}.txt`);
  const net = (i: number, name: string) => [
    '--interface',
    lan.host(i).address,
    '--port',
    String(PORT),
    '--data-dir',
    path.join(root, 'data', name),
    '--name',
    name,
  ];

  /** Runs `peer ...` to completion inside host i's namespace. */
  const run = (i: number, args: string[], input = ''): Promise<Run> =>
    lan.run(i, process.execPath, [BIN, ...args], {
      env: { NO_COLOR: '1' },
      input,
      timeoutMs: ONE_SHOT_TIMEOUT_MS,
    });

  /** A one-shot append from host i that must succeed; records the acknowledged entry. */
  const append = async (i: number, name: string, text: string, acks: string): Promise<Appended> => {
    const r = await run(i, [
      'replicate',
      text,
      ...net(i, name),
      '--acks',
      acks,
      '--timeout',
      '8000',
      '--json',
    ]);
    expect(r.code, `${name}: ${r.stderr}`).toBe(0);
    const out = JSON.parse(r.stdout) as Appended;
    expect(out.ok).toBe(true);
    acked.set(out.id, text);
    return out;
  };

  const waitUntil = async (cond: () => boolean, timeoutMs: number, what: string) => {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  beforeAll(async () => {
    lan = new NetnsLan(5).up();
    if (process.env.PEER_REQUIRE_LAN === '1' && !nftAvailable())
      throw new Error('nft is required in CI for the loss scenario');
    if (nftAvailable()) lan.addLoss(10);
    root = tempDir('lan-replication');
    HOLDERS.forEach((h, i) => {
      const child = lan.spawn(
        i,
        process.execPath,
        [BIN, 'replicate', ...net(i, h), '--dir', path.join(root, h), '--log-format', 'json'],
        { NO_COLOR: '1' },
      );
      holders.push(new Lines(child));
    });
    await Promise.all(
      holders.map((p, i) =>
        p.until(
          (l) => l.json().filter((e) => e.event === 'join').length >= 2,
          START_TIMEOUT_MS,
          `${HOLDERS[i]} to see the two other holders join`,
        ),
      ),
    );
  }, START_TIMEOUT_MS + 10_000);

  afterAll(() => lan?.down());

  it('appends from several hosts, a holder cut off and healed, reconcile: identical files', async () => {
    // 1. All connected: appends from hosts 3 and 4 at once, and a batch on stdin, --acks all.
    const [batch, ...first] = await Promise.all([
      run(3, ['replicate', '-', ...net(3, 'b3'), '--acks', 'all', '--json'], 'b1\nb2\nb3\nb4\n'),
      append(3, 'a3', 'from host 3, tab\there', 'all'),
      append(4, 'a4', 'from host 4 "quoted" ünïcødé', 'all'),
      append(0, 'a0', 'from the host of h1', 'all'),
    ]);
    for (const r of first) expect(r.confirmed).toEqual(HOLDERS);
    expect(batch.code, batch.stderr).toBe(0);
    const batchOut = JSON.parse(batch.stdout) as { ok: boolean; entries: Appended[] };
    expect(batchOut.ok).toBe(true);
    for (const e of batchOut.entries) acked.set(e.id, `b${e.seq}`); // results come in ack order
    // Acknowledged by all means on every disk already.
    for (const h of HOLDERS)
      expect(new Set(readReplica(fileOf(h)).map(entryId))).toEqual(new Set(acked.keys()));

    // 2. h3's host is cut off at the switch. The connected side appends with a majority (h3 is
    // still known, so `all` cannot be met) and `--acks 2`; h3's side appends too (below).
    lan.setCut(2, true);
    const [batch2, ...connected] = await Promise.all([
      run(4, ['replicate', '-', ...net(4, 'b4'), '--acks', '2', '--json'], 'd1\nd2\nd3\n'),
      append(3, 'c3', 'during the cut, host 3', 'majority'),
      append(4, 'c4', 'during the cut, host 4', 'majority'),
      append(1, 'c1', 'during the cut, host of h2', 'majority'),
    ]);
    for (const r of connected) expect(r.confirmed).not.toContain('h3');
    expect(batch2.code, batch2.stderr).toBe(0);
    const batch2Out = JSON.parse(batch2.stdout) as { ok: boolean; entries: Appended[] };
    expect(batch2Out.ok).toBe(true);
    for (const e of batch2Out.entries) acked.set(e.id, `d${e.seq}`);
    // A host whose link is down cannot start a peer on it (its address is not usable), so the
    // cut-off side appends through the running holder: a line on h3's stdin, written to its file
    // before it is multicast (and lost at the cut).
    const h3 = holders[2]!;
    h3.child.stdin!.write('on the cut-off side\n');
    await h3.until((l) => l.json().some((e) => e.event === 'appended'), 10_000, 'h3 to append its line');
    const isolated = { id: String(h3.json().find((e) => e.event === 'appended')!.id) };
    acked.set(isolated.id, 'on the cut-off side');

    // Really partitioned: h3 lacks what the connected side wrote, h1 and h2 lack h3's entry.
    const onH3 = new Set(readReplica(fileOf('h3')).map(entryId));
    for (const r of connected) expect(onH3.has(r.id)).toBe(false);
    expect(onH3.has(isolated.id)).toBe(true);
    for (const h of ['h1', 'h2']) expect(readReplica(fileOf(h)).map(entryId)).not.toContain(isolated.id);

    // 3. Healed: anti-entropy repairs both sides (wait on the files, not on a clock).
    lan.setCut(2, false);
    const all = [...acked.keys()];
    await waitUntil(
      () =>
        HOLDERS.every((h) => {
          const have = new Set(readReplica(fileOf(h)).map(entryId));
          return all.every((id) => have.has(id));
        }),
      CATCH_UP_TIMEOUT_MS,
      'every holder to hold every acknowledged entry after the heal',
    );

    // 4. peer reconcile from host 4: every holder rewrites the same bytes.
    const rec = await run(4, ['reconcile', ...net(4, 'rec'), '--json', '--timeout', '15000']);
    expect(rec.code, rec.stderr).toBe(0);
    const result = JSON.parse(rec.stdout) as {
      ok: boolean;
      replicas: Array<{ replica: string; after: number; sha256: string }>;
    };
    expect(result.ok).toBe(true);
    expect(result.replicas.map((r) => r.replica)).toEqual(HOLDERS);
    expect(result.replicas.every((r) => r.after === acked.size)).toBe(true);
    expect(new Set(result.replicas.map((r) => r.sha256)).size).toBe(1);

    const bytes = HOLDERS.map((h) => fs.readFileSync(fileOf(h)));
    expect(bytes[1]!.equals(bytes[0]!) && bytes[2]!.equals(bytes[0]!)).toBe(true);
    const entries = readReplica(fileOf('h1'));
    // Every acknowledged entry exactly once, with its text, and nothing else.
    expect(entries.map(entryId).sort()).toEqual([...acked.keys()].sort());
    for (const e of entries) expect(e.text).toBe(acked.get(entryId(e)));
    expect(entries).toEqual([...entries].sort(compareEntries));
  }, 90_000);
});
