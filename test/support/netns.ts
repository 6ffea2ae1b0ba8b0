/**
 * A LAN of network namespaces on this machine, for tests and benches of the real CLI.
 *
 * One namespace holds a bridge (the switch, multicast snooping off so the bridge floods group
 * traffic like a plain switch); each host namespace has a veth leg on it with a 10.77.N.x address
 * that exists only inside that namespace. `NetnsLan.routed([a, b])` builds two such subnets
 * (10.77.N.x and 10.78.N.x, a bridge each) joined by a router namespace that forwards unicast
 * and, with no multicast routing, no multicast: an office split in VLANs. Nothing is created in the namespace we run in, so no
 * packet can reach a real interface. Faults are real: `ip link set down` on a host's leg cuts it
 * off; nftables drops a share of incoming packets at random; kill -9 crashes a process.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';

export function netnsCapability(): { ok: true } | { ok: false; why: string } {
  if (process.getuid?.() !== 0) return { ok: false, why: 'not root' };
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return { ok: false, why: 'iproute2 (ip) is not installed' };
  }
  const probe = `pcap${randomBytes(3).toString('hex')}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'ignore' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
  } catch {
    return { ok: false, why: 'cannot create network namespaces (ip netns add failed)' };
  }
  return { ok: true };
}

export function nftAvailable(): boolean {
  try {
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether LAN-tier tests must run: CI sets PEER_REQUIRE_LAN=1, which turns a missing capability
 * into a failure instead of a skip.
 */
export function lanTierDecision(): { run: true } | { run: false; why: string } {
  const cap = netnsCapability();
  if (cap.ok) return { run: true };
  if (process.env.PEER_REQUIRE_LAN === '1')
    throw new Error(`LAN tests are required (PEER_REQUIRE_LAN=1) but ${cap.why}`);
  return { run: false, why: cap.why };
}

const sh = (args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** Neighbour (ARP) entries a host needs besides one per other host: its gateway, multicast groups. */
const NEIGHBOURS_PER_HOST_EXTRA = 4;
const NEIGH_GC = '/proc/sys/net/ipv4/neigh/default/gc_thresh';

/**
 * Makes the kernel's neighbour table large enough for a LAN of `hosts` namespaces; returns what
 * puts it back. The table (its gc_thresh3, 1,024 entries by default) is shared by every namespace
 * of the machine, and each host of a LAN whose members all talk by unicast needs an entry per
 * other host: 50 hosts need about 2,500, and past the limit the kernel fails every send to a host
 * without one with ENOBUFS ("neighbor table overflow" in dmesg), which UDP senders are not told
 * (src/cli/udp-drops.ts). Hosts running many containers raise it the same way. Where the setting
 * cannot be read or written (a namespace without it), nothing changes.
 */
function roomForNeighbours(hosts: number): () => void {
  const need = 2 * hosts * (hosts + NEIGHBOURS_PER_HOST_EXTRA);
  try {
    const before = [2, 3].map((k) => fs.readFileSync(`${NEIGH_GC}${k}`, 'utf8').trim());
    if (Number(before[1]) >= need) return () => {};
    fs.writeFileSync(`${NEIGH_GC}3`, String(need));
    fs.writeFileSync(`${NEIGH_GC}2`, String(need / 2));
    return () => {
      try {
        fs.writeFileSync(`${NEIGH_GC}2`, before[0]!);
        fs.writeFileSync(`${NEIGH_GC}3`, before[1]!);
      } catch {
        /* left larger: harmless */
      }
    };
  } catch {
    return () => {};
  }
}

export interface LanHost {
  index: number;
  ns: string;
  /** The host's address on the LAN: pass it as --interface. */
  address: string;
  /** The host's leg as seen from the switch: set it down to cut the host off. */
  switchLeg: string;
  /** Which subnet it is on (0 on a single LAN; routed() numbers them from 0). */
  subnet: number;
}

/** The nftables table of addLoss's rules in each host. */
const LOSS_TABLE = 'peerloss';
/** The nftables table of dropFirst's rules. */
const ONCE_TABLE = 'peeronce';
/** The nftables table of blockMulticast's rules (in the switch namespace or in hosts). */
const MULTICAST_TABLE = 'peermc';

export class NetnsLan {
  readonly hosts: LanHost[] = [];
  private readonly prefix: string;
  private readonly switchNs: string;
  private readonly children = new Set<ChildProcess>();
  private readonly subnet: number;
  /** Hosts per subnet; more than one subnet means a router namespace joins them. */
  private readonly layout: number[];
  private readonly routerNs: string;
  private restoreNeighbours: () => void = () => {};

  constructor(readonly size: number) {
    // Short: interface names are limited to 15 characters.
    this.prefix = `p${randomBytes(3).toString('hex')}`;
    this.switchNs = `${this.prefix}-sw`;
    this.routerNs = `${this.prefix}-rt`;
    this.subnet = 1 + (randomBytes(1)[0]! % 250);
    this.layout = [size];
  }

  /**
   * Subnets of `sizes[k]` hosts each, joined by a router (forwarding on, no multicast routing);
   * hosts are numbered across them in order. Call up() as for one LAN.
   */
  static routed(sizes: number[]): NetnsLan {
    const lan = new NetnsLan(sizes.reduce((a, b) => a + b, 0));
    lan.layout.splice(0, 1, ...sizes);
    return lan;
  }

  /** The network of subnet k, e.g. 10.78.34.0/24. */
  network(k: number): string {
    return `10.${77 + k}.${this.subnet}.0/24`;
  }

  up(): this {
    try {
      this.restoreNeighbours = roomForNeighbours(this.size);
      sh(['netns', 'add', this.switchNs]);
      sh(['-n', this.switchNs, 'link', 'set', 'lo', 'up']);
      const routed = this.layout.length > 1;
      if (routed) {
        sh(['netns', 'add', this.routerNs]);
        sh(['-n', this.routerNs, 'link', 'set', 'lo', 'up']);
        execFileSync('ip', ['netns', 'exec', this.routerNs, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      }
      let i = 0;
      this.layout.forEach((count, k) => {
        const bridge = `br${k}`;
        const gateway = `10.${77 + k}.${this.subnet}.1`;
        sh(['-n', this.switchNs, 'link', 'add', bridge, 'type', 'bridge', 'mcast_snooping', '0']);
        sh(['-n', this.switchNs, 'link', 'set', bridge, 'up']);
        if (routed) this.plug(this.routerNs, `eth${k}`, `${this.prefix}r${k}`, `${gateway}/24`, bridge);
        for (let j = 1; j <= count; j++) {
          i++;
          const ns = `${this.prefix}-h${i}`;
          const leg = `${this.prefix}s${i}`;
          const address = `10.${77 + k}.${this.subnet}.${j + 1}`;
          sh(['netns', 'add', ns]);
          sh(['-n', ns, 'link', 'set', 'lo', 'up']);
          this.plug(ns, 'eth0', leg, `${address}/24`, bridge);
          if (routed) sh(['-n', ns, 'route', 'add', 'default', 'via', gateway]);
          this.hosts.push({ index: i, ns, address, switchLeg: leg, subnet: k });
        }
      });
    } catch (err) {
      this.down();
      throw err;
    }
    return this;
  }

  /** A veth from namespace `ns` (named `dev` there, `leg` on the switch) into `bridge`. */
  private plug(ns: string, dev: string, leg: string, cidr: string, bridge: string): void {
    // Create the pair inside the namespace, then move the switch end into the switch.
    sh(['-n', ns, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', leg]);
    sh(['-n', ns, 'link', 'set', leg, 'netns', this.switchNs]);
    // With its broadcast address, as DHCP gives a real LAN's interface (udpcast finds peers by it).
    sh(['-n', ns, 'addr', 'add', cidr, 'brd', '+', 'dev', dev]);
    sh(['-n', ns, 'link', 'set', dev, 'up']);
    sh(['-n', this.switchNs, 'link', 'set', leg, 'master', bridge]);
    sh(['-n', this.switchNs, 'link', 'set', leg, 'up']);
  }

  /**
   * Drops multicast on subnet k: at its switch (`switch`: the bridge forwards no multicast frame,
   * as an access point or a switch that filters it), or in each of its hosts (`hosts`: an input
   * rule drops every datagram to 224.0.0.0/4, the host's own looped-back copies included; only in
   * `only`, host indexes of that subnet, when given). Unicast is untouched. unblockMulticast lifts it.
   */
  blockMulticast(k: number, where: 'switch' | 'hosts', only?: number[]): void {
    if (where === 'switch') {
      const nft = (...a: string[]) =>
        execFileSync('ip', ['netns', 'exec', this.switchNs, 'nft', ...a], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
      nft('add', 'table', 'bridge', MULTICAST_TABLE);
      nft(
        'add',
        'chain',
        'bridge',
        MULTICAST_TABLE,
        'mc',
        '{ type filter hook forward priority 0; policy accept; }',
      );
      nft(
        'add',
        'rule',
        'bridge',
        MULTICAST_TABLE,
        'mc',
        // By the subnet's switch legs (this kernel's nft has no bridge-name match).
        'iifname',
        `{ ${this.hosts
          .filter((h) => h.subnet === k)
          .map((h) => `"${h.switchLeg}"`)
          .join(', ')} }`,
        'meta',
        'pkttype',
        'multicast',
        'counter',
        'drop',
      );
      return;
    }
    for (const h of this.hosts.filter((x) => x.subnet === k)) {
      const i = this.hosts.indexOf(h);
      if (only && !only.includes(i)) continue;
      this.nft(i, 'add', 'table', 'inet', MULTICAST_TABLE);
      this.nft(
        i,
        'add',
        'chain',
        'inet',
        MULTICAST_TABLE,
        'in',
        '{ type filter hook input priority 0; policy accept; }',
      );
      this.nft(
        i,
        'add',
        'rule',
        'inet',
        MULTICAST_TABLE,
        'in',
        'ip',
        'daddr',
        '224.0.0.0/4',
        'counter',
        'drop',
      );
    }
  }

  /** Lifts every blockMulticast rule. */
  unblockMulticast(): void {
    const tries: Array<[string, string]> = [
      [this.switchNs, 'bridge'],
      ...this.hosts.map((h): [string, string] => [h.ns, 'inet']),
    ];
    for (const [ns, family] of tries) {
      try {
        execFileSync('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', family, MULTICAST_TABLE], {
          stdio: 'ignore',
        });
      } catch {
        // No such table there: nothing to lift.
      }
    }
  }

  host(i: number): LanHost {
    const h = this.hosts[i];
    if (!h) throw new Error(`no host ${i}`);
    return h;
  }

  /** Starts a process inside host i's namespace; it is killed by down(). */
  spawn(i: number, command: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.host(i).ns, command, ...args], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /**
   * Runs a process inside host i's namespace to completion (stdin is `input`) and returns its exit
   * code and output; kills it and rejects once it overruns `timeoutMs`.
   */
  run(
    i: number,
    command: string,
    args: string[],
    opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs: number },
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = this.spawn(i, command, args, opts.env);
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(
          new Error(`${command} ${args.join(' ')} on host ${i} overran ${opts.timeoutMs} ms: ${stderr}`),
        );
      }, opts.timeoutMs);
      // 'close', not 'exit': the output pipes are drained by then.
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
      child.stdin!.end(opts.input ?? '');
    });
  }

  /** Cuts host i off the LAN (or reconnects it), at the switch, like pulling its cable. */
  setCut(i: number, cut: boolean): void {
    sh(['-n', this.switchNs, 'link', 'set', this.host(i).switchLeg, cut ? 'down' : 'up']);
  }

  /**
   * Sets host i's own interface down (or up again), inside its namespace: `ip link set eth0
   * down`, as a user or a suspend does. Its routes go with the link; bringing it up puts the
   * default route back (as DHCP would) on a routed LAN.
   */
  setLinkDown(i: number, down: boolean): void {
    const h = this.host(i);
    sh(['-n', h.ns, 'link', 'set', 'eth0', down ? 'down' : 'up']);
    if (!down && this.layout.length > 1)
      sh(['-n', h.ns, 'route', 'replace', 'default', 'via', `10.${77 + h.subnet}.${this.subnet}.1`]);
  }

  /**
   * Drops `percent` % of the UDP datagrams coming in to `hosts` (every host by default; to `port`
   * only, if given) at random: nftables `numgen random mod 100 < percent`, an independent draw per
   * packet. Both what reaches the rule and what it drops are counted (lossCounts), so a test or a
   * bench can report the loss it really applied.
   */
  addLoss(percent: number, opts: { hosts?: number[]; port?: number } = {}): void {
    const udp = opts.port === undefined ? ['meta', 'l4proto', 'udp'] : ['udp', 'dport', String(opts.port)];
    for (const i of opts.hosts ?? this.hosts.map((_, k) => k)) {
      const nft = (...a: string[]) => this.nft(i, ...a);
      nft('add', 'table', 'inet', LOSS_TABLE);
      nft('add', 'chain', 'inet', LOSS_TABLE, 'in', '{ type filter hook input priority 0; policy accept; }');
      nft('add', 'rule', 'inet', LOSS_TABLE, 'in', ...udp, 'counter');
      nft(
        'add',
        'rule',
        'inet',
        LOSS_TABLE,
        'in',
        ...udp,
        'numgen',
        'random',
        'mod',
        '100',
        '<',
        String(percent),
        'counter',
        'drop',
      );
    }
  }

  /** UDP datagrams that reached the loss rules of addLoss on `hosts`, and those they dropped. */
  lossCounts(hosts = this.hosts.map((_, k) => k)): { seen: number; dropped: number } {
    const got = { seen: 0, dropped: 0 };
    for (const i of hosts) {
      const out = execFileSync(
        'ip',
        ['netns', 'exec', this.host(i).ns, 'nft', '-j', 'list', 'table', 'inet', LOSS_TABLE],
        {
          encoding: 'utf8',
        },
      );
      for (const item of (JSON.parse(out) as { nftables: Array<Record<string, unknown>> }).nftables) {
        const rule = item.rule as { expr: Array<Record<string, unknown>> } | undefined;
        const counter = rule?.expr.find((e) => 'counter' in e)?.counter as { packets: number } | undefined;
        if (!rule || !counter) continue;
        if (rule.expr.some((e) => 'drop' in e)) got.dropped += counter.packets;
        else got.seen += counter.packets;
      }
    }
    return got;
  }

  /**
   * Drops the first incoming packet on host i that matches the nft expression `match` (nft
   * `limit rate 1/hour burst 1 packets`: only the first one fits), and lets every later one
   * through: a lost datagram, exactly once, where a test needs one.
   */
  dropFirst(i: number, match: string[]): void {
    this.nft(i, 'add', 'table', 'inet', ONCE_TABLE);
    this.nft(
      i,
      'add',
      'chain',
      'inet',
      ONCE_TABLE,
      'in',
      '{ type filter hook input priority 0; policy accept; }',
    );
    this.nft(
      i,
      'add',
      'rule',
      'inet',
      ONCE_TABLE,
      'in',
      ...match,
      'limit',
      'rate',
      '1/hour',
      'burst',
      '1',
      'packets',
      'counter',
      'drop',
    );
  }

  /** Removes the loss rules of addLoss from every host. */
  clearLoss(): void {
    for (let i = 0; i < this.hosts.length; i++) {
      try {
        this.nft(i, 'delete', 'table', 'inet', LOSS_TABLE);
      } catch {
        // No table on this host: nothing to clear.
      }
    }
  }

  private nft(i: number, ...args: string[]): void {
    execFileSync('ip', ['netns', 'exec', this.host(i).ns, 'nft', ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  }

  /** Kills every process started here and deletes every namespace (veths go with them). */
  down(): void {
    for (const c of this.children) c.kill('SIGKILL');
    for (const h of this.hosts) {
      try {
        sh(['netns', 'pids', h.ns]);
        const pids = execFileSync('ip', ['netns', 'pids', h.ns], { encoding: 'utf8' })
          .split('\n')
          .filter(Boolean);
        for (const pid of pids) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            /* already gone */
          }
        }
      } catch {
        /* namespace already gone */
      }
    }
    const routerNs = this.layout.length > 1 ? [this.routerNs] : [];
    for (const ns of [...this.hosts.map((h) => h.ns), ...routerNs, this.switchNs]) {
      try {
        sh(['netns', 'del', ns]);
      } catch {
        /* already gone */
      }
    }
    this.hosts.length = 0;
    this.restoreNeighbours();
    this.restoreNeighbours = () => {};
  }
}
