/**
 * The checks of `peer doctor`. Each answers one question a user with a silent LAN asks (which
 * interface, can I join the group, do my own multicasts come back, does anybody answer, is the
 * port taken, is the key file good, can I write my data, is my database healthy) with a status
 * and, when it is not a pass, the fix. Checks never change anything: sockets are opened and
 * closed, the data dir is probed with a temporary file that is removed, databases are opened
 * read-only.
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { checkGroup, defaultRouteInterface, localIPv4, resolveInterface, UsageError } from '../network.js';
import { loadKeyFile } from '../keyfile.js';
import { keyId } from '../../p2p/transport/keyring.js';
import { StoreError, checkDatabaseFiles, checkNotForeign, databasePath } from '../../storage/store.js';

export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  id: string;
  title: string;
  status: CheckStatus;
  /** What was found, one line. */
  detail: string;
  /** What to do about it; absent on a pass. */
  fix?: string;
}

/** How long the loopback round trip waits for its own datagram to come back. */
export const ROUND_TRIP_TIMEOUT_MS = 1000;
/**
 * The round trip's datagram is sent again this often until it comes back: one lost datagram (a
 * lossy LAN drops a share of what comes in) must not read as multicast blocked on this host.
 */
export const ROUND_TRIP_RESEND_MS = 200;
/** Databases checked when the data dir holds many: enough for any real setup. */
export const DATABASES_CHECKED_MAX = 32;

const result = (id: string, title: string, status: CheckStatus, detail: string, fix?: string): CheckResult =>
  fix === undefined ? { id, title, status, detail } : { id, title, status, detail, fix };

const errCode = (err: unknown) => (err as NodeJS.ErrnoException).code ?? (err as Error).message;

export function checkInterfaces(): CheckResult {
  const locals = localIPv4();
  const title = 'interfaces';
  if (locals.length === 0)
    return result(
      'interfaces',
      title,
      'fail',
      'this machine has no IPv4 address',
      'bring a network interface up (ip link, nmcli) and give it an IPv4 address',
    );
  return result('interfaces', title, 'pass', locals.map((l) => `${l.iface} ${l.address}`).join(', '));
}

/** Which interface multicast would use: the same resolution every peer command runs. */
export function checkInterfaceChoice(
  requested: string | undefined,
  ttl: number,
): {
  check: CheckResult;
  address?: string;
} {
  const title = 'multicast interface';
  try {
    const address = resolveInterface(requested);
    const iface = localIPv4().find((l) => l.address === address)?.iface ?? '?';
    const how = requested ? `--interface ${requested}` : `the default route (${defaultRouteInterface()})`;
    // Loopback with TTL 0 is a deliberate single-host group (tests, the demo): nothing to warn about.
    const loopback = address.startsWith('127.');
    const check =
      loopback && ttl > 0
        ? result(
            'interface',
            title,
            'warn',
            `${address} (${iface}) from ${how}: loopback, only peers on this machine can be reached`,
            'for a LAN pass --interface with the address of the network card the other machines share',
          )
        : result(
            'interface',
            title,
            'pass',
            `${address} (${iface}) from ${how}${loopback ? ': loopback, this host only' : ''}`,
          );
    return { check, address };
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return {
      check: result(
        'interface',
        title,
        'fail',
        err.message.split(';')[0]!,
        err.message.split(';').slice(1).join(';').trim() ||
          'pass --interface with an address of this machine',
      ),
    };
  }
}

export function checkGroupAddress(group: string): CheckResult {
  try {
    checkGroup(group);
    return result('group', 'group address', 'pass', `${group} is a multicast address`);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    const [what, ...fix] = err.message.split(';');
    return result('group', 'group address', 'fail', what!, fix.join(';').trim() || undefined);
  }
}

export function checkTtl(ttl: number, iface: string | undefined): CheckResult {
  const title = 'multicast TTL';
  if (ttl === 0) {
    const onLoopback = iface?.startsWith('127.') ?? false;
    return onLoopback
      ? result('ttl', title, 'pass', '0: datagrams stay on this host (right for loopback)')
      : result(
          'ttl',
          title,
          'warn',
          '0: datagrams stay on this host, peers on other machines never hear this one',
          'use --ttl 1 (the default) for a LAN',
        );
  }
  if (ttl === 1) return result('ttl', title, 'pass', '1: datagrams stay on the local network');
  return result(
    'ttl',
    title,
    'warn',
    `${ttl}: datagrams may cross ${ttl - 1} router(s) beyond this LAN`,
    'use --ttl 1 unless the group really spans routed subnets (and the routers forward multicast)',
  );
}

function bindSocket(socket: dgram.Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ port, address, exclusive: true }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
}

const closeSocket = (s: dgram.Socket) => new Promise<void>((resolve) => s.close(() => resolve()));

/**
 * Peers bind the group port with SO_REUSEADDR, so they share it. A bind with SO_REUSEADDR fails
 * only if a socket WITHOUT it holds the port: another program, which will take datagrams meant
 * for us. A second bind without SO_REUSEADDR tells whether peers already share the port here.
 */
export async function checkPort(group: string, port: number): Promise<CheckResult> {
  const title = 'group port';
  const shared = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  shared.on('error', () => {});
  try {
    await bindSocket(shared, port, group);
  } catch (err) {
    const code = errCode(err);
    return code === 'EADDRINUSE'
      ? result(
          'port',
          title,
          'fail',
          `UDP port ${port} is held by another program (not a peer: peers share the port)`,
          `find it with: ss -ulpn 'sport = :${port}'; stop it, or pass --port with another port on every peer`,
        )
      : result(
          'port',
          title,
          'fail',
          `cannot bind ${group}:${port} (${code})`,
          'pass --port with a free port (1024-65535)',
        );
  } finally {
    await closeSocket(shared);
  }
  const alone = dgram.createSocket({ type: 'udp4' });
  alone.on('error', () => {});
  try {
    await bindSocket(alone, port, group);
    return result('port', title, 'pass', `UDP port ${port} is free`);
  } catch {
    return result('port', title, 'pass', `UDP port ${port} is shared with other peers on this host (normal)`);
  } finally {
    await closeSocket(alone);
  }
}

export interface MulticastResults {
  join: CheckResult;
  roundTrip: CheckResult;
}

/**
 * Joins the group on the chosen interface, then sends a datagram to the group from a second
 * socket (as a peer sends: from the interface address, with the configured TTL, loopback on)
 * and waits for it to come back. A failure here with a join that worked means the host drops
 * its own multicast: a firewall rule (INPUT on the group port) or multicast loopback off.
 */
export async function checkMulticast(
  group: string,
  port: number,
  iface: string,
  ttl: number,
  timeoutMs = ROUND_TRIP_TIMEOUT_MS,
): Promise<MulticastResults> {
  const rx = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  rx.on('error', () => {});
  const skipped = result('round-trip', 'loopback round trip', 'skip', 'needs the group join to work');
  try {
    await new Promise<void>((resolve, reject) => {
      rx.once('error', reject);
      rx.bind({ port, address: group }, () => {
        rx.off('error', reject);
        resolve();
      });
    });
    rx.addMembership(group, iface);
  } catch (err) {
    await closeSocket(rx);
    return {
      join: result(
        'join',
        'group join',
        'fail',
        `cannot join ${group}:${port} on ${iface} (${errCode(err)})`,
        'check that the interface is up and has multicast on (ip link show: MULTICAST), or pass another --interface',
      ),
      roundTrip: skipped,
    };
  }
  const join = result('join', 'group join', 'pass', `joined ${group}:${port} on ${iface}`);
  const tx = dgram.createSocket({ type: 'udp4' });
  tx.on('error', () => {});
  const nonce = `peer-doctor ${randomBytes(8).toString('hex')}`;
  let resend: NodeJS.Timeout | undefined;
  try {
    await bindSocket(tx, 0, iface);
    tx.setMulticastInterface(iface);
    tx.setMulticastTTL(ttl);
    tx.setMulticastLoopback(true);
    const started = performance.now();
    const send = () => tx.send(nonce, port, group);
    resend = setInterval(send, ROUND_TRIP_RESEND_MS);
    const back = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      rx.on('message', (msg) => {
        if (msg.toString('utf8') !== nonce) return; // a peer's datagram, not ours
        clearTimeout(timer);
        resolve(true);
      });
    });
    send();
    const ok = await back;
    const ms = Math.round(performance.now() - started);
    return {
      join,
      roundTrip: ok
        ? result(
            'round-trip',
            'loopback round trip',
            'pass',
            `a datagram sent to ${group}:${port} came back in ${ms} ms`,
          )
        : result(
            'round-trip',
            'loopback round trip',
            'fail',
            `a datagram sent to ${group}:${port} from ${iface} did not come back within ${timeoutMs} ms`,
            `a firewall drops multicast: allow UDP port ${port} in (e.g. nft add rule inet filter input udp dport ${port} accept), and check the interface is up`,
          ),
    };
  } catch (err) {
    return {
      join,
      roundTrip: result(
        'round-trip',
        'loopback round trip',
        'fail',
        `cannot send to ${group}:${port} from ${iface} (${errCode(err)})`,
        'check that the interface is up and has a route for multicast (ip route get ' + group + ')',
      ),
    };
  } finally {
    clearInterval(resend);
    await Promise.all([closeSocket(tx), closeSocket(rx)]);
  }
}

export function checkKeyFile(file: string | undefined): CheckResult {
  const title = 'key file';
  if (file === undefined || file === '')
    return result(
      'key-file',
      title,
      'skip',
      'none given (--key-file / PEER_KEY_FILE): the group runs open, unencrypted',
      'to encrypt: peer keygen --out ~/.peer/group.key, then --key-file on every peer',
    );
  try {
    const { keys, warning } = loadKeyFile(file);
    const ids = keys.map((k) => keyId(k).toString('hex')).join(' ');
    const detail = `${file}: ${keys.length} key(s), ids ${ids} (first: sending)`;
    if (warning) {
      const [what, ...fix] = warning.split(';');
      return result('key-file', title, 'warn', `${detail}; ${what}`, fix.join(';').trim());
    }
    return result('key-file', title, 'pass', detail);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    const [what, ...fix] = err.message.split(';');
    return result(
      'key-file',
      title,
      'fail',
      what!,
      fix.join(';').trim() || `create one with: peer keygen --out ${file}`,
    );
  }
}

/** Writable: a temporary file can be created and removed (not just a mode bit: ro mounts, ACLs). */
export function checkDataDir(dir: string): CheckResult {
  const title = 'data dir';
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(dir);
  } catch {
    st = undefined;
  }
  if (st && !st.isDirectory())
    return result(
      'data-dir',
      title,
      'fail',
      `${dir} is not a directory`,
      'pass --data-dir with a writable directory',
    );
  if (!st) {
    // Not there yet: a peer creates it, so the nearest existing parent must be writable.
    let parent = path.dirname(path.resolve(dir));
    while (!fs.existsSync(parent) && parent !== path.dirname(parent)) parent = path.dirname(parent);
    try {
      fs.accessSync(parent, fs.constants.W_OK);
      if (!fs.statSync(parent).isDirectory()) throw new Error('not a directory');
      return result(
        'data-dir',
        title,
        'pass',
        `${dir} does not exist yet; a peer will create it in ${parent}`,
      );
    } catch (err) {
      return result(
        'data-dir',
        title,
        'fail',
        `${dir} does not exist and ${parent} is not writable (${errCode(err)})`,
        'pass --data-dir with a writable directory',
      );
    }
  }
  const probe = path.join(dir, `.peer-doctor-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    fs.writeFileSync(probe, 'probe', { flag: 'wx' });
    return result('data-dir', title, 'pass', `${dir} is writable`);
  } catch (err) {
    return result(
      'data-dir',
      title,
      'fail',
      `${dir} is not writable (${errCode(err)})`,
      `fix its permissions (chown/chmod) or pass --data-dir with a writable directory`,
    );
  } finally {
    fs.rmSync(probe, { force: true });
  }
}

/** The peer databases of `dir` the doctor reads: `name`'s, or up to DATABASES_CHECKED_MAX of them. */
export function databaseFiles(dir: string, name: string | undefined): string[] {
  if (name !== undefined) {
    const f = databasePath(dir, name);
    return fs.existsSync(f) ? [f] : [];
  }
  try {
    return fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.db'))
      .sort()
      .slice(0, DATABASES_CHECKED_MAX)
      .map((f) => path.join(dir, f));
  } catch {
    return [];
  }
}

/**
 * PRAGMA integrity_check on each peer database, opened read-only: the doctor never modifies one.
 * With a name, only that peer's file; without, every *.db in the data dir.
 */
export function checkDatabases(dir: string, name: string | undefined): CheckResult[] {
  const files = databaseFiles(dir, name);
  if (files.length === 0)
    return [
      result(
        'database',
        'database',
        'skip',
        name !== undefined
          ? `no database for peer '${name}' in ${dir} yet (peer up creates it)`
          : `no peer database in ${dir} yet (peer up creates one)`,
      ),
    ];
  return files.map((file) => checkDatabase(file));
}

export function checkDatabase(file: string): CheckResult {
  const title = `database ${path.basename(file)}`;
  const fix = `it was left untouched: move it aside (peer up then starts a new one, losing this peer's history) or run 'peer recover'`;
  let db: Database.Database | undefined;
  try {
    // What a peer would refuse at start (empty, lost WAL, foreign) fails here too.
    checkDatabaseFiles(file);
    db = new Database(file, { readonly: true, fileMustExist: true });
    checkNotForeign(db, file);
    const rows = db.pragma('integrity_check') as Array<{ integrity_check: string }>;
    const problems = rows.map((r) => r.integrity_check).filter((r) => r !== 'ok');
    if (problems.length === 0) return result('database', title, 'pass', `${file}: integrity_check ok`);
    return result(
      'database',
      title,
      'fail',
      `${file}: integrity_check found ${problems.length} problem(s): ${problems[0]}`,
      fix,
    );
  } catch (err) {
    if (err instanceof StoreError) {
      const [what, ...how] = err.message.split('; ');
      return result('database', title, 'fail', what!, how.join('; '));
    }
    return result(
      'database',
      title,
      'fail',
      `${file} is not a healthy SQLite database (${(err as Error).message})`,
      fix,
    );
  } finally {
    db?.close();
  }
}
