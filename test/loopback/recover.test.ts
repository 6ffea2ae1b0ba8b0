/**
 * Recovery with real processes on loopback: a `peer up` killed with SIGKILL is restarted with the
 * same name and data dir and prints what it recovered (its Lamport time restarts above the
 * checkpointed one); `peer recover --rejoin` brings a crashed peer back into the group; `peer
 * snapshot` gathers a complete snapshot of the live peers.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  loggedState,
  runCli,
  startCli,
  tempDir,
  testPort,
  type Lines,
  loopbackFlags,
} from '../support/proc.js';

describe('recovery on loopback', () => {
  const procs: Lines[] = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) p.child.kill('SIGKILL');
  });

  it('kill -9, automatic recovery on restart, recover --rejoin, and a complete snapshot', async () => {
    const dir = tempDir('recover-lo');
    const net = loopbackFlags(testPort(), dir);
    const up = (name: string) => {
      const p = startCli(['up', '--name', name, '--log-format', 'json', ...net]);
      procs.push(p);
      return p;
    };
    const ana = up('ana');
    let ben = up('ben');
    await ana.until((l) => loggedState(l, 'ben') === 'alive', 20_000, 'ana to see ben');
    // Let ben checkpoint (every second) before it dies.
    await new Promise((r) => setTimeout(r, 1500));
    ben.child.kill('SIGKILL');
    await ben.exited;
    await ana.until((l) => loggedState(l, 'ben') === 'dead', 10_000, 'ana to see ben dead');

    ben = up('ben');
    await ben.until(
      (l) => l.stderr.join('').includes('recovered after a crash:'),
      20_000,
      'ben to say what it recovered',
    );
    expect(ben.stderr.join('')).toMatch(
      /peer: recovered after a crash: message clock moved ahead from [\d,]+ to [\d,]+ \(past any time stamped before the crash\), 0 unprocessed messages replayed, 1 peer seen/,
    );
    await ana.until((l) => loggedState(l, 'ben') === 'alive', 10_000, 'ana to see ben back');

    const snap = await runCli(['snapshot', '--json', '--wait', '5000', ...net], { timeoutMs: 30_000 });
    expect(snap.code).toBe(0);
    const g = JSON.parse(snap.stdout) as {
      complete: boolean;
      peers: Array<{ name: string; lamport: number }>;
    };
    expect(g.complete).toBe(true);
    expect(g.peers.map((p) => p.name)).toEqual(['ana', 'ben']);
    // ben restarted above its checkpointed time plus the crash margin, and ana merged it.
    expect(g.peers.every((p) => p.lamport > 100_000)).toBe(true);

    ben.child.kill('SIGKILL');
    await ben.exited;
    await ana.until(
      (l) => l.json().filter((e) => e.name === 'ben' && e.event === 'dead').length === 2,
      10_000,
      'ana to see ben dead again',
    );
    const rejoin = startCli(['recover', '--name', 'ben', '--rejoin', ...net]);
    procs.push(rejoin);
    await rejoin.until(
      (l) => l.lines.some((x) => x.startsWith('rejoined the group')),
      20_000,
      'recover --rejoin to rejoin',
    );
    expect(rejoin.lines.join('\n')).toMatch(/integrity ok/);
    await ana.until((l) => loggedState(l, 'ben') === 'alive', 10_000, 'ana to see ben rejoin');
    rejoin.child.kill('SIGTERM');
    expect(await rejoin.exited).toBe(0);
    await ana.until((l) => loggedState(l, 'ben') === 'left', 10_000, 'ana to see ben leave');

    // After a clean exit a restart says so, not that it recovered from a crash.
    ben = up('ben');
    await ben.until((l) => l.stderr.join('').includes('after a'), 20_000, 'ben to say how it resumed');
    expect(ben.stderr.join('')).toMatch(/peer: resumed after a clean exit: message clock at [\d,]+, /);
    expect(ben.stderr.join('')).not.toMatch(/crash/);
  }, 120_000);
});
