/**
 * Election over real UDP on 127.0.0.1 with TTL 0 (nothing leaves the host): three built `peer up`
 * processes with priorities 1, 2, 3 agree on the highest; `kill -9` of it makes the survivors
 * elect the next. Then `peer peers --json` and `peer clock --json` see the result. Needs
 * `npm run build` first.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, runCli, startCli, tempDir, testPort, type Lines, loopbackFlags } from '../support/proc.js';
import { PROFILES } from '../../src/p2p/config.js';

const running: Lines[] = [];

beforeAll(() => {
  if (!fs.existsSync(path.join(ROOT, 'dist/commands/clock.js')))
    throw new Error('run `npm run build` before the loopback tests');
});

afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill('SIGKILL');
      await p.exited;
    }
  }
});

const net = (port: number, dataDir: string): string[] => loopbackFlags(port, dataDir);

function up(
  name: string,
  priority: number,
  port: number,
  dataDir: string,
  env: NodeJS.ProcessEnv = {},
): Lines {
  const p = startCli(
    ['up', ...net(port, dataDir), '--name', name, '--log-format', 'json', '--priority', String(priority)],
    env,
  );
  running.push(p);
  return p;
}

function idOf(p: Lines): string | undefined {
  return p.json().find((e) => e.event === 'up')?.id as string | undefined;
}

/** The coordinator this peer follows, from its last coordinator-changed line. */
function followed(p: Lines): { coordinator: string | null; term: number } | undefined {
  const changes = p.json().filter((e) => e.event === 'coordinator-changed');
  const last = changes[changes.length - 1];
  return last && { coordinator: last.coordinator as string | null, term: last.term as number };
}

async function allFollow(peers: Lines[], leader: string, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  for (const p of peers)
    await p.until(
      (l) => followed(l)?.coordinator === leader,
      Math.max(1, deadline - Date.now()),
      `coordinator ${leader}`,
    );
}

describe('election over loopback (built CLI)', () => {
  it('three peers agree on the highest priority; after kill -9 the survivors elect the next', async () => {
    const port = testPort();
    const dataDir = tempDir('election');
    const peers = [up('e1', 1, port, dataDir), up('e2', 2, port, dataDir), up('e3', 3, port, dataDir)];
    const [e1, e2, e3] = peers as [Lines, Lines, Lines];
    for (const p of peers) await p.until((l) => idOf(l) !== undefined, 15_000, "the 'up' line");
    const top = idOf(e3)!;
    await allFollow(peers, top, 10_000);
    // Its 'elected' line follows its coordinator-changed line, written one after the other: the
    // second may not have been read yet when the first was.
    await e3.until((l) => l.json().some((e) => e.event === 'elected'), 2_000, "e3's elected line");
    const termBefore = followed(e1)!.term;

    const killedAt = Date.now();
    e3.child.kill('SIGKILL');
    await e3.exited;
    const next = idOf(e2)!;
    // Failure detection (deadAfterMs) plus the election; generous for a loaded 2-core host.
    await allFollow([e1, e2], next, PROFILES.lan.membership.deadAfterMs + 4_000);
    const tookMs = Date.now() - killedAt;
    expect(followed(e1)!.term).toBeGreaterThan(termBefore);
    expect(followed(e2)!.term).toBe(followed(e1)!.term);
    await e2.until(
      (l) => l.json().some((e) => e.event === 'elected' && Date.parse(e.at as string) >= killedAt),
      2_000,
      "e2's elected line",
    );
    // After the kill e1 never led: e2 outranks it and was alive throughout. (Before, e1 may lead
    // for a moment if its process started well before the others: bully elects whoever is there.)
    expect(e1.json().some((e) => e.event === 'elected' && Date.parse(e.at as string) >= killedAt)).toBe(
      false,
    );
    expect(tookMs).toBeGreaterThan(0);

    // The tags tell an observer who leads and how the live peers rank.
    const peersOut = await runCli(['peers', ...net(port, dataDir), '--json', '--wait', '700']);
    expect(peersOut.code).toBe(0);
    const list = JSON.parse(peersOut.stdout) as Array<{
      id: string;
      state: string;
      coordinator: boolean;
      rank: number | null;
    }>;
    const live = list.filter((m) => m.state === 'alive' || m.state === 'suspect');
    expect(live.map((m) => m.id).sort()).toEqual([idOf(e1)!, next].sort());
    expect(live.find((m) => m.id === next)).toMatchObject({ coordinator: true, rank: 1 });
    expect(live.find((m) => m.id === idOf(e1))).toMatchObject({ coordinator: false, rank: 2 });

    // peer clock: asks the new coordinator for a round and lists every clock.
    const clockOut = await runCli(['clock', ...net(port, dataDir), '--json', '--wait', '5000']);
    expect(clockOut.code, clockOut.stderr).toBe(0);
    const clocks = JSON.parse(clockOut.stdout) as Array<{
      id: string;
      self: boolean;
      coordinator: boolean;
      lastSync: string | null;
      accuracyMs: number | null;
      lamport: number;
    }>;
    const members = clocks.filter((c) => !c.self);
    expect(members.map((c) => c.id).sort()).toEqual([idOf(e1)!, next].sort());
    expect(members.find((c) => c.coordinator)?.id).toBe(next);
    for (const c of clocks) {
      expect(c.lastSync, `${clockOut.stdout}\n${clockOut.stderr}`).not.toBeNull();
      expect(c.lamport).toBeGreaterThan(0);
      // One host, one clock: only scheduling jitter separates them.
      expect(c.accuracyMs!).toBeLessThan(50);
    }
  }, 60_000);

  it('PEER_FAKE_CLOCK skews three peers by up to +-1 s; one round brings their group clocks together', async () => {
    const port = testPort();
    const dataDir = tempDir('clock');
    const fake = { c1: [900, 100], c2: [-1000, -100], c3: [250, 40] } as const;
    const peers = Object.entries(fake).map(([name, [offsetMs, ppm]], i) =>
      up(name, i, port, dataDir, { PEER_FAKE_CLOCK: `${offsetMs},${ppm}` }),
    );
    for (const p of peers) await p.until((l) => idOf(l) !== undefined, 15_000, "the 'up' line");
    await allFollow(peers, idOf(peers[2]!)!, 10_000);
    // A round that saw all three: the coordinator logs it.
    await peers[2]!.until(
      (l) => l.json().some((e) => e.event === 'clock-round' && (e.peers as number) >= 3),
      15_000,
      'a clock round over three peers',
    );
    const out = await runCli(['clock', ...net(port, dataDir), '--json', '--wait', '5000']);
    expect(out.code, out.stderr).toBe(0);
    const rows = JSON.parse(out.stdout) as Array<{ name: string; self: boolean; targetOffsetMs: number }>;
    // Each peer's group clock is its (fake) wall clock plus its offset; the system clock is the
    // same for all, so fake offset + target offset must agree across peers.
    const group = rows
      .filter((r) => !r.self)
      .map((r) => fake[r.name as keyof typeof fake][0] + r.targetOffsetMs);
    expect(group).toHaveLength(3);
    // Loopback on a loaded 2-core host: event-loop delays, not the network, bound the error.
    expect(Math.max(...group) - Math.min(...group)).toBeLessThan(10);
  }, 60_000);

  it('refuses a bad --priority and a bad PEER_FAKE_CLOCK with one line', async () => {
    const port = testPort();
    const dataDir = tempDir('election-bad');
    const r1 = await runCli(['up', ...net(port, dataDir), '--name', 'x', '--priority', '-3']);
    expect(r1.code).toBe(2);
    expect(r1.stderr).toMatch(/priority/);
    const r2 = await runCli(['clock', ...net(port, dataDir), '--wait', '200'], {
      env: { PEER_FAKE_CLOCK: 'soon' },
    });
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/PEER_FAKE_CLOCK='soon' must be "offsetMs,driftPpm"/);
    expect(r2.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});
