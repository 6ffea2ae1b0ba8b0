/**
 * LAN tier for the ssh side of bench/jobs.ts (test/support/sshd.ts): an sshd in two namespaces of
 * a NetnsLan, reached from a third with our own ssh_config; GNU parallel's --sshlogin over both.
 * Also that the servers are as closed as the support file says: listening on their namespace's
 * address only, the client key only, and nothing written to ~/.ssh or ~/.parallel.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lanTierDecision, NetnsLan } from '../support/netns.js';
import { SshdSet, sshdAvailable } from '../support/sshd.js';

const decision = lanTierDecision();
const tools = sshdAvailable() && fs.existsSync('/usr/bin/parallel');
if (decision.run && !tools && process.env.PEER_REQUIRE_LAN === '1')
  throw new Error(
    'openssh-server and parallel are required in CI (apt-get install -y openssh-server parallel)',
  );
const CLIENT = 0;
const SERVERS = [1, 2];
const JOBS = 40;
const PARALLEL_MS = 60_000;

describe.runIf(decision.run && tools)('sshd in LAN namespaces, and GNU parallel over it', () => {
  let lan: NetnsLan;
  let ssh: SshdSet;
  const home = os.homedir();
  const before = {
    ssh: fs.existsSync(path.join(home, '.ssh')),
    parallel: fs.existsSync(path.join(home, '.parallel')),
  };

  beforeAll(async () => {
    lan = new NetnsLan(3).up();
    ssh = await SshdSet.start(lan, CLIENT, SERVERS);
  });

  afterAll(() => {
    ssh?.stop();
    lan?.down();
  });

  it('ssh -F config root@ADDR runs in that namespace, over a multiplexed connection', async () => {
    for (const h of ssh.hosts) {
      const r = await ssh.ssh(h.address, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']);
      expect([r.code, r.stderr]).toEqual([0, '']);
      expect(r.stdout).toContain(`inet ${h.address}/24`);
      // ControlMaster auto: the first connection left a master behind, the next one uses it.
      const check = await lan.run(CLIENT, 'ssh', ['-F', ssh.config, '-O', 'check', `root@${h.address}`], {
        timeoutMs: 10_000,
      });
      expect(check.code, check.stderr).toBe(0);
    }
  });

  it('each server listens on its own address only and takes no other key and no password', async () => {
    for (const h of ssh.hosts) {
      const listening = execFileSync('ip', ['netns', 'exec', lan.host(h.index).ns, 'ss', '-Hltn'], {
        encoding: 'utf8',
      })
        .trim()
        .split('\n')
        .map((l) => l.trim().split(/\s+/)[3]);
      expect(listening).toEqual([`${h.address}:22`]);
      // A config like ours with another key and no shared connection: a fresh authentication.
      const other = path.join(ssh.dir, 'other');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
      const otherConfig = path.join(ssh.dir, 'other_config');
      fs.writeFileSync(
        otherConfig,
        fs
          .readFileSync(ssh.config, 'utf8')
          .replace(/IdentityFile .*/, `IdentityFile ${other}`)
          .replace(/ControlMaster .*/, 'ControlMaster no')
          .replace(/ControlPath .*/, 'ControlPath none'),
      );
      const attempt = (extra: string[]) =>
        lan.run(CLIENT, 'ssh', ['-F', otherConfig, ...extra, `root@${h.address}`, 'true'], {
          env: { SSH_AUTH_SOCK: '' },
          timeoutMs: 10_000,
        });
      const wrongKey = await attempt([]);
      expect(wrongKey.code).toBe(255);
      expect(wrongKey.stderr).toMatch(/Permission denied \(publickey\)/);
      const password = await attempt(['-o', 'PreferredAuthentications=password,keyboard-interactive']);
      expect(password.code).toBe(255);
      expect(password.stderr).toMatch(/Permission denied \(publickey\)/);
      fs.rmSync(otherConfig);
      fs.rmSync(other);
      fs.rmSync(`${other}.pub`);
    }
  });

  it('GNU parallel --sshlogin runs every job once over both servers, its joblog complete', async () => {
    await ssh.warm();
    const joblog = path.join(ssh.dir, 'joblog');
    const input = Array.from({ length: JOBS }, (_, k) => String(k + 1)).join('\n') + '\n';
    const logins = ssh.logins().map((l) => `2/${l}`);
    const r = await lan.run(
      CLIENT,
      'parallel',
      [
        '--will-cite',
        '--ssh',
        ssh.sshCommand(),
        '-S',
        logins.join(','),
        '--joblog',
        joblog,
        'echo {} $(hostname -I)',
      ],
      { env: { PARALLEL_HOME: path.join(ssh.dir, 'parallel') }, input, timeoutMs: PARALLEL_MS },
    );
    expect([r.code, r.stderr]).toEqual([0, '']);
    const lines = r.stdout.trim().split('\n');
    expect(lines.map((l) => Number(l.split(' ')[0])).sort((a, b) => a - b)).toEqual(
      Array.from({ length: JOBS }, (_, k) => k + 1),
    );
    // hostname -I in the job names the namespace it ran in: both servers took jobs.
    const ranOn = new Set(lines.map((l) => l.split(' ')[1]));
    expect([...ranOn].sort()).toEqual(ssh.hosts.map((h) => h.address).sort());
    const rows = fs.readFileSync(joblog, 'utf8').trim().split('\n');
    expect(rows[0]).toBe('Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand');
    expect(rows).toHaveLength(JOBS + 1);
    for (const row of rows.slice(1))
      expect(row).toMatch(
        /^\d+\troot@10\.77\.\d+\.\d+\t\d+\.\d{3}\t *\d+\.\d{3}\t0\t\d+\t0\t0\techo \d+ \$\(hostname -I\)$/,
      );
  });

  it('left ~/.ssh and ~/.parallel as they were', () => {
    expect(fs.existsSync(path.join(home, '.ssh'))).toBe(before.ssh);
    expect(fs.existsSync(path.join(home, '.parallel'))).toBe(before.parallel);
  });
});
