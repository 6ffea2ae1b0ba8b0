/**
 * peer doctor, run as the built CLI on loopback (--interface 127.0.0.1 --ttl 0, a port of its
 * own): every check passes on a healthy host, and each problem a user meets turns into a FAIL line
 * for the right check, with a fix, and exit code 1.
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, startCli, tempDir, testPort, type Lines, loopbackFlags } from '../support/proc.js';

interface Check {
  id: string;
  status: 'pass' | 'warn' | 'fail' | 'skip';
  detail: string;
  fix?: string;
}
interface Report {
  ok: boolean;
  checks: Check[];
}

const loopback = (port = testPort(), dataDir = tempDir('doc')) => [
  ...loopbackFlags(port, dataDir),
  '--wait',
  '300',
];

async function doctor(args: string[]): Promise<{ code: number | null; report: Report; stderr: string }> {
  const r = await runCli(['doctor', '--json', ...args]);
  return { code: r.code, report: JSON.parse(r.stdout) as Report, stderr: r.stderr };
}

const check = (r: Report, id: string) => {
  const c = r.checks.find((x) => x.id === id);
  if (!c) throw new Error(`no check ${id} in ${JSON.stringify(r.checks.map((x) => x.id))}`);
  return c;
};

const running: Lines[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
});

describe('peer doctor', () => {
  it('passes every network check on loopback and exits 0', async () => {
    const { code, report } = await doctor(loopback());
    expect(code).toBe(0);
    expect(report.ok).toBe(true);
    for (const id of ['interfaces', 'interface', 'group', 'ttl', 'port', 'join', 'round-trip', 'data-dir'])
      expect(check(report, id).status, id).toBe('pass');
    expect(check(report, 'round-trip').detail).toMatch(/came back/);
    expect(report.checks.some((c) => c.status === 'fail')).toBe(false);
  });

  it('--open: the peers check runs without the open-group warning', async () => {
    const [open, plain] = await Promise.all([
      runCli(['doctor', '--json', '--open', ...loopback()], { env: { PEER_KEY_FILE: '' } }),
      runCli(['doctor', '--json', ...loopback()], { env: { PEER_KEY_FILE: '' } }),
    ]);
    expect(open.code, open.stderr).toBe(0);
    expect(open.stderr).not.toMatch(/no --key-file/);
    expect(plain.stderr).toMatch(/no --key-file/);
  });

  it('prints one PASS/WARN/FAIL/SKIP line per check, with the fix, in text mode', async () => {
    const r = await runCli(['doctor', ...loopback(testPort(), path.join(tempDir('doc'), 'x-file'))]);
    expect(r.code).toBe(0); // a data dir that does not exist yet is fine: a peer creates it
    expect(r.stdout).toMatch(/^PASS {2}loopback round trip: /m);
    expect(r.stdout).toMatch(/^SKIP {2}key file: none given/m);
    expect(r.stdout).toMatch(/no check failed/);
  });

  it('fails the interface check for an address this machine does not have, and skips what needs it', async () => {
    const args = loopback();
    args[1] = '10.254.254.254';
    const { code, report } = await doctor(args);
    expect(code).toBe(1);
    const c = check(report, 'interface');
    expect(c.status).toBe('fail');
    expect(c.detail).toMatch(/not an address of this machine/);
    expect(c.fix).toMatch(/127\.0\.0\.1 \(lo\)/);
    expect(check(report, 'join').status).toBe('skip');
    expect(check(report, 'peers').status).toBe('skip');
  });

  it('fails the data dir check for a data dir it cannot write', async () => {
    const file = path.join(tempDir('doc'), 'plain-file');
    fs.writeFileSync(file, '');
    const { code, report } = await doctor(loopback(testPort(), file));
    expect(code).toBe(1);
    expect(check(report, 'data-dir')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/not a directory/),
    });
  });

  it('fails the key file check for a bad key file, and for a missing one', async () => {
    const dir = tempDir('doc');
    const bad = path.join(dir, 'bad.key');
    fs.writeFileSync(bad, 'c2hvcnQ=\n', { mode: 0o600 });
    const r1 = await doctor([...loopback(testPort(), dir), '--key-file', bad]);
    expect(r1.code).toBe(1);
    expect(check(r1.report, 'key-file')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/not a 256-bit key/),
    });
    expect(check(r1.report, 'peers').status).toBe('skip');
    const r2 = await doctor([...loopback(testPort(), dir), '--key-file', path.join(dir, 'nope.key')]);
    expect(r2.code).toBe(1);
    expect(check(r2.report, 'key-file')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/cannot read/),
    });
  });

  it('passes a key file written by peer keygen', async () => {
    const dir = tempDir('doc');
    const key = path.join(dir, 'group.key');
    expect((await runCli(['keygen', '--out', key])).code).toBe(0);
    const { code, report } = await doctor([...loopback(testPort(), dir), '--key-file', key]);
    expect(code).toBe(0);
    expect(check(report, 'key-file')).toMatchObject({
      status: 'pass',
      detail: expect.stringMatching(/1 key\(s\)/),
    });
  });

  it('fails the database check for a corrupt database file and leaves its bytes untouched', async () => {
    const dir = tempDir('doc');
    const file = path.join(dir, 'zed.db');
    const garbage = Buffer.from('not a database, but somebody may need these bytes '.repeat(100));
    fs.writeFileSync(file, garbage);
    const { code, report } = await doctor([...loopback(testPort(), dir), '--name', 'zed']);
    expect(code).toBe(1);
    const c = check(report, 'database');
    expect(c.status).toBe('fail');
    expect(c.detail).toMatch(/zed\.db is not a healthy SQLite database/);
    expect(c.fix).toMatch(/left untouched/);
    expect(fs.readFileSync(file).equals(garbage)).toBe(true);
    expect(fs.readdirSync(dir)).toEqual(['zed.db']); // no -wal, -shm or probe file left behind
  });

  it('fails the database check for an empty database, which a peer would refuse, and leaves it', async () => {
    const dir = tempDir('doc');
    fs.writeFileSync(path.join(dir, 'zed.db'), '');
    const { code, report } = await doctor([...loopback(testPort(), dir), '--name', 'zed']);
    expect(code).toBe(1);
    expect(check(report, 'database')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/zed\.db is empty \(0 bytes\)/),
      fix: expect.stringMatching(/left untouched/),
    });
    expect(fs.readdirSync(dir)).toEqual(['zed.db']);
    expect(fs.statSync(path.join(dir, 'zed.db')).size).toBe(0);
  });

  it('fails the port check when another program holds the group port', async () => {
    const port = testPort();
    const squatter = dgram.createSocket({ type: 'udp4' }); // no SO_REUSEADDR: not a peer
    await new Promise<void>((resolve) => squatter.bind(port, '0.0.0.0', resolve));
    try {
      const { code, report } = await doctor(loopback(port));
      expect(code).toBe(1);
      expect(check(report, 'port')).toMatchObject({
        status: 'fail',
        detail: expect.stringMatching(/held by another program/),
        fix: expect.stringMatching(/ss -ulpn/),
      });
    } finally {
      squatter.close();
    }
  });

  /** `peer up --name NAME` on loopback, stopped after the test; resolves once it says it is up. */
  async function peerUp(name: string, port: number, dir: string): Promise<void> {
    const peer = startCli([
      'up',
      '--name',
      name,
      '--log-format',
      'json',
      ...loopback(port, dir).slice(0, -2),
    ]);
    running.push(peer);
    await peer.until((l) => l.json().some((e) => e.event === 'up'), 10_000, `${name} up`);
  }

  it('sees a running peer answer the probe, and its healthy database', async () => {
    const port = testPort();
    const dir = tempDir('doc');
    await peerUp('alice', port, dir);
    const { code, report } = await doctor([...loopback(port, dir).slice(0, -2), '--wait', '1500']);
    expect(code).toBe(0);
    expect(check(report, 'port').detail).toMatch(/shared with other peers/);
    expect(check(report, 'peers')).toMatchObject({ status: 'pass', detail: expect.stringMatching(/alice/) });
    expect(check(report, 'database')).toMatchObject({
      status: 'pass',
      detail: expect.stringMatching(/alice\.db: integrity_check ok/),
    });
  });

  it('asks the PEER_JOIN seeds by unicast: one answers, one is silent; a bad --join is bad input', async () => {
    const port = testPort();
    const dir = tempDir('doc');
    await peerUp('alice', port, dir);
    // alice's host answers on the group port (its door); nothing listens on the other.
    const silent = `127.0.0.1:${port === 65535 ? port - 1 : port + 1}`;
    const r = await runCli(
      ['doctor', '--json', ...loopback(port, tempDir('doc')).slice(0, -2), '--wait', '1500'],
      {
        env: { PEER_JOIN: `127.0.0.1,${silent}` },
      },
    );
    const report = JSON.parse(r.stdout) as Report & { network: { case: string; joinLine: string | null } };
    expect(r.code).toBe(0);
    expect(check(report, 'seeds')).toMatchObject({
      status: 'warn',
      detail: `127.0.0.1:${port} answered (1 member(s)); ${silent} did not answer (waited 1500 ms)`,
    });
    expect(report.network).toEqual({ case: 'multicast', joinLine: null });
    const bad = await runCli(['doctor', '--join', 'not a host', ...loopback()]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--join not a host: .* use HOST or HOST:PORT/);
  });
});
