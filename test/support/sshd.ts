/**
 * An OpenSSH server in some hosts of a NetnsLan, for comparing `peer run` with GNU parallel's
 * `--sshlogin` (bench/jobs.ts) and for testing that comparison (test/lan/sshd.test.ts).
 *
 * Safe by construction: everything lives in one directory of its own (0700), under /run because
 * sshd's StrictModes refuses an authorized_keys file below a world-writable directory such as
 * /tmp. Each server has its own host key, config and pid file, listens only on its namespace's
 * LAN address (which exists nowhere else), accepts only the one client key made here (no
 * password, no PAM), and runs in the foreground as a child we own. The client side is one
 * ssh_config of our own, passed with `ssh -F`, so neither the root namespace's sshd nor ~/.ssh is
 * read or written: known_hosts is written here from the servers' host keys and checked strictly.
 * Connections are multiplexed (ControlMaster/ControlPersist): warm() opens each master once, as
 * GNU parallel's docs advise for many short remote jobs.
 *
 * Clients must run inside a LAN namespace (host 0 in the bench): the 10.77.x addresses exist only
 * there. Masters (ControlPersist) run in that namespace too, so NetnsLan.down() kills any that
 * stop() could not close.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { NetnsLan } from './netns.js';

/** sshd re-executes itself and refuses to start from a relative path. */
export const SSHD = '/usr/sbin/sshd';
/** Where the servers' directory is made: root-owned and not group/world-writable (StrictModes). */
const SSH_BASE_DIR = '/run';
/** The privilege-separation directory every OpenSSH sshd needs (Debian's service creates it too). */
const SSHD_PRIVSEP_DIR = '/run/sshd';
/** Start-up of sshd on a loaded 2-core machine: key load and bind, well under a second when idle. */
const SSHD_READY_MS = 10_000;
/** How often readiness (the pid file, written once the socket is bound) is looked at. */
const SSHD_READY_POLL_MS = 20;
/**
 * Sessions on one multiplexed connection and unauthenticated connections at once: parallel runs
 * one ssh per job slot plus its own probes; OpenSSH's defaults (10, 10:30:100) drop some of them.
 */
const SSHD_MAX_SESSIONS = 64;
const SSHD_MAX_STARTUPS = '64:30:128';
/** How long an idle master connection stays open after its last client (ControlPersist), s. */
const CONTROL_PERSIST_S = 120;
/** One `ssh ... true` (warming a master, or the test's check) from start to exit. */
const SSH_COMMAND_MS = 15_000;

export function sshdAvailable(): boolean {
  return fs.existsSync(SSHD) && hasCommand('ssh') && hasCommand('ssh-keygen');
}

function hasCommand(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface SshHost {
  /** The NetnsLan host index. */
  index: number;
  address: string;
  child: ChildProcess;
}

export class SshdSet {
  /** The client config: `ssh -F <config> root@ADDR`, `parallel --ssh 'ssh -F <config>'`. */
  readonly config: string;
  private stopped = false;

  private constructor(
    private readonly lan: NetnsLan,
    /** The LAN host the clients (ssh, parallel) run in. */
    readonly client: number,
    readonly dir: string,
    readonly hosts: SshHost[],
  ) {
    this.config = path.join(dir, 'ssh_config');
  }

  /**
   * Starts one sshd in each of `hosts` (NetnsLan indexes) and writes the client side for clients
   * in host `client`; resolves once every server has bound its address. On any failure
   * everything started is stopped.
   */
  static async start(lan: NetnsLan, client: number, hosts: number[]): Promise<SshdSet> {
    if (!sshdAvailable()) throw new Error('sshd is not installed (apt-get install -y openssh-server)');
    const dir = fs.mkdtempSync(path.join(SSH_BASE_DIR, 'peer-ssh-'));
    fs.chmodSync(dir, 0o700);
    const started: SshHost[] = [];
    const set = new SshdSet(lan, client, dir, started);
    try {
      fs.mkdirSync(SSHD_PRIVSEP_DIR, { recursive: true, mode: 0o755 });
      const id = path.join(dir, 'id');
      keygen(id, 'peer-bench-client');
      const clientKey = fs.readFileSync(`${id}.pub`, 'utf8').trim();
      const known: string[] = [];
      for (const i of hosts) {
        const { address } = lan.host(i);
        const hdir = path.join(dir, `h${i}`);
        fs.mkdirSync(hdir, { mode: 0o700 });
        const hostKey = path.join(hdir, 'hostkey');
        keygen(hostKey, `peer-bench-host-${i}`);
        // The key type and key, without the comment.
        known.push(
          `${address} ${fs.readFileSync(`${hostKey}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ')}`,
        );
        const authorized = path.join(hdir, 'authorized_keys');
        // from=: only the namespace LAN may use the key, whatever else could reach this server.
        fs.writeFileSync(authorized, `from="10.77.*" ${clientKey}\n`, { mode: 0o600 });
        const cfg = path.join(hdir, 'sshd_config');
        fs.writeFileSync(cfg, sshdConfig(address, hdir, hostKey, authorized), { mode: 0o600 });
        execFileSync(SSHD, ['-t', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
        // -D: stays in the foreground, a child we own and kill; -e: errors on its stderr.
        const child = lan.spawn(i, SSHD, ['-D', '-e', '-f', cfg]);
        let stderr = '';
        child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        started.push({ index: i, address, child });
        await untilFile(path.join(hdir, 'sshd.pid'), child, () => stderr);
      }
      fs.writeFileSync(path.join(dir, 'known_hosts'), `${known.join('\n')}\n`, { mode: 0o600 });
      fs.writeFileSync(set.config, clientConfig(dir), { mode: 0o600 });
      return set;
    } catch (err) {
      set.stop();
      throw err;
    }
  }

  /** `root@ADDR` of each server, in the order given to start(). */
  logins(): string[] {
    return this.hosts.map((h) => `root@${h.address}`);
  }

  /** The ssh command line GNU parallel should use (`--ssh`). */
  sshCommand(): string {
    return `ssh -F ${this.config}`;
  }

  /** Runs `ssh -F config root@ADDR -- args` from the client host; resolves with its exit and output. */
  ssh(address: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return this.lan.run(this.client, 'ssh', ['-F', this.config, `root@${address}`, '--', ...args], {
      timeoutMs: SSH_COMMAND_MS,
    });
  }

  /** Opens every server's master connection from the client host (so the timed runs reuse it). */
  async warm(): Promise<void> {
    for (const h of this.hosts) {
      const r = await this.ssh(h.address, ['true']);
      if (r.code !== 0) throw new Error(`ssh to ${h.address} failed (exit ${r.code}): ${r.stderr.trim()}`);
    }
  }

  /** Closes the client host's master connections (the next ssh pays a full handshake). */
  closeMasters(): void {
    for (const h of this.hosts)
      try {
        execFileSync(
          'ip',
          [
            'netns',
            'exec',
            this.lan.host(this.client).ns,
            'ssh',
            '-F',
            this.config,
            '-O',
            'exit',
            `root@${h.address}`,
          ],
          { stdio: 'ignore', timeout: SSH_COMMAND_MS },
        );
      } catch {
        // No master for this host: nothing to close.
      }
  }

  /** Kills one server (its sessions too, as a host crash would), leaving the others. */
  kill(index: number): void {
    const h = this.hosts.find((x) => x.index === index);
    if (!h) throw new Error(`no sshd on host ${index}`);
    h.child.kill('SIGKILL');
  }

  /** Closes the masters, kills every server, removes the directory. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (fs.existsSync(this.config)) this.closeMasters();
    for (const h of this.hosts) h.child.kill('SIGKILL');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function keygen(file: string, comment: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

function sshdConfig(address: string, hdir: string, hostKey: string, authorized: string): string {
  return [
    `ListenAddress ${address}`,
    'Port 22',
    `HostKey ${hostKey}`,
    `PidFile ${path.join(hdir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${authorized}`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'AllowUsers root',
    'X11Forwarding no',
    'AllowTcpForwarding no',
    'PrintMotd no',
    // bash sources ~/.bashrc when started by sshd at shell level 1 (Debian builds it so); a
    // user's rc file (pyenv init on this machine: 150 ms) would be timed as ssh's cost per job.
    'SetEnv SHLVL=1',
    `MaxSessions ${SSHD_MAX_SESSIONS}`,
    `MaxStartups ${SSHD_MAX_STARTUPS}`,
    'LogLevel ERROR',
    '',
  ].join('\n');
}

function clientConfig(dir: string): string {
  return [
    'Host 10.77.*',
    '  User root',
    `  IdentityFile ${path.join(dir, 'id')}`,
    '  IdentitiesOnly yes',
    `  UserKnownHostsFile ${path.join(dir, 'known_hosts')}`,
    '  GlobalKnownHostsFile /dev/null',
    '  StrictHostKeyChecking yes',
    '  BatchMode yes',
    '  ControlMaster auto',
    // %C: a hash of the connection, short enough for a socket path (108 bytes).
    `  ControlPath ${path.join(dir, 'cm-%C')}`,
    `  ControlPersist ${CONTROL_PERSIST_S}`,
    '  LogLevel ERROR',
    '',
  ].join('\n');
}

/** Resolves once `file` exists; rejects if the child exits first or after SSHD_READY_MS. */
async function untilFile(file: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + SSHD_READY_MS;
  while (!fs.existsSync(file)) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`sshd exited (${child.exitCode ?? child.signalCode}): ${stderr().trim()}`);
    if (Date.now() > deadline)
      throw new Error(`sshd did not start in ${SSHD_READY_MS} ms: ${stderr().trim()}`);
    await new Promise((resolve) => setTimeout(resolve, SSHD_READY_POLL_MS));
  }
}
