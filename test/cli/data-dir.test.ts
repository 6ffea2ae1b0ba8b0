/**
 * A damaged or odd data dir never passes silently, with the built CLI (inside a private network
 * namespace, since a command that wrongly accepted the data dir would start a real peer):
 * an empty database, a database missing beside its WAL, a WAL lost with pages the database lacks,
 * another program's database and a database that lost its peer id are each refused with exit 2 and
 * one line, the files left byte-identical; --data-dir naming a file says "not a directory" for
 * every kind of command; `peer recover` on a read-only data dir says so.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { BIN, runCli, tempDir, testPort, loopbackFlags } from '../support/proc.js';
import { PeerStore, databasePath } from '../../src/storage/store.js';

/** Long enough for a refusal; a command that starts a peer instead runs past it and fails the test. */
const REFUSAL_TIMEOUT_MS = 10_000;

/** The database's files (the lock file beside them is the command's own). */
const digest = (dir: string) =>
  Object.fromEntries(
    fs
      .readdirSync(dir)
      .filter((f) => f.startsWith('alice.db'))
      .sort()
      .map((f) => [
        f,
        createHash('sha256')
          .update(fs.readFileSync(path.join(dir, f)))
          .digest('hex'),
      ]),
  );

/** Runs `peer up` on `dir` and expects exit 2, one line matching `re`, and no file changed. */
async function refused(dir: string, re: RegExp): Promise<void> {
  const before = digest(dir);
  const r = await runCli(['up', '--name', 'alice', ...loopbackFlags(testPort(), dir)], {
    timeoutMs: REFUSAL_TIMEOUT_MS,
  });
  expect(r.code, r.stdout + r.stderr).toBe(2);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(re);
  expect(digest(dir)).toEqual(before);
}

/** A peer database with an identity and a few writes, left open (as a running or crashed peer's is). */
function livePeer(dir: string): PeerStore {
  const store = PeerStore.open(dir, 'alice');
  store.startIdentity();
  for (let i = 0; i < 20; i++) store.setMeta(`k${i}`, 'x'.repeat(500));
  return store;
}

describe('an odd data dir', () => {
  it('a zero-length database: exit 2, one line, not a new peer', async () => {
    const dir = tempDir('empty-db');
    fs.writeFileSync(databasePath(dir, 'alice'), '');
    await refused(dir, /alice\.db is empty \(0 bytes\).*move it aside to start a new peer$/);
  });

  it('a WAL lost with pages the database lacks: exit 2, one line', async () => {
    const live = tempDir('live');
    const dir = tempDir('lost-wal');
    const store = livePeer(live);
    // What a crash leaves after the WAL was deleted: the database and the WAL index, no WAL.
    for (const f of ['alice.db', 'alice.db-shm']) fs.copyFileSync(path.join(live, f), path.join(dir, f));
    store.close();
    await refused(dir, /alice\.db-wal is missing but .*alice\.db-shm says it held \d+ page\(s\) not yet in/);
  });

  it('a database missing beside its WAL: exit 2, one line', async () => {
    const live = tempDir('live');
    const dir = tempDir('lost-db');
    const store = livePeer(live);
    for (const f of ['alice.db-wal', 'alice.db-shm']) fs.copyFileSync(path.join(live, f), path.join(dir, f));
    store.close();
    await refused(dir, /alice\.db is missing but .*alice\.db-wal is there/);
  });

  it("another program's database, and a peer database that lost its id: exit 2, one line", async () => {
    const foreign = tempDir('foreign');
    const db = new Database(databasePath(foreign, 'alice'));
    db.exec('CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)');
    db.close();
    await refused(foreign, /alice\.db is not a peer database \(it holds the tables invoices\)/);

    const lost = tempDir('lost-id');
    const store = PeerStore.open(lost, 'alice');
    store.startIdentity();
    store.db.prepare("DELETE FROM meta WHERE key = 'peer_id'").run();
    store.db.pragma('wal_checkpoint(TRUNCATE)');
    store.close();
    await refused(lost, /alice\.db has lost its peer id, and starting would make this name a new peer/);
  });

  it('--data-dir naming a file: "not a directory", exit 2, for every kind of command', async () => {
    const file = path.join(tempDir('file'), 'plain-file');
    fs.writeFileSync(file, 'not a directory\n');
    const net = loopbackFlags(testPort(), file);
    for (const args of [
      ['up', '--name', 'alice', ...net],
      ['recover', '--name', 'alice', '--data-dir', file],
      ['chat', '--history', '5', '--name', 'alice', '--data-dir', file],
      ['task', 'list', '--local', '--name', 'alice', '--data-dir', file],
      ['kv', 'serve', '--name', 'alice', ...net],
      ['peers', ...net],
    ]) {
      const r = await runCli(args, { timeoutMs: REFUSAL_TIMEOUT_MS });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      // Where the flag's own parser refused it, oclif's pointer to --help becomes the command's.
      const command = args.slice(0, args[0] === 'task' || args[0] === 'kv' ? 2 : 1).join(' ');
      expect([
        `peer: --data-dir ${file} is not a directory; pass a directory\n`,
        `peer: --data-dir ${file} is not a directory; pass a directory; see peer ${command} --help\n`,
      ]).toContain(r.stderr);
    }
    expect(fs.readFileSync(file, 'utf8')).toBe('not a directory\n');
  });

  it('peer recover on a read-only data dir says so in one line, exit 2', () => {
    const dir = tempDir('ro');
    livePeer(dir).close();
    // A read-only bind mount: root ignores file modes.
    const r = inMountNamespace(dir, 'mount --bind -o ro "$1" "$1"', ['recover', '--name', 'alice']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `peer: data dir ${dir} is read-only (EROFS: read-only file system); make it writable, or copy it to a writable directory and pass that as --data-dir\n`,
    );
  });

  it.each([
    ['with no room at all', ''],
    [
      'with room for the lock but not the database',
      ' && rm "$1/filler" && dd if=/dev/zero of="$1/filler" bs=1k count=200 2>/dev/null',
    ],
  ])('peer up on a full disk (%s): exit 2, one line that says the disk is full', (_what, leaveRoom) => {
    const dir = tempDir('full');
    // A 256 KiB tmpfs, filled before the peer starts.
    const prepare = `mount -t tmpfs -o size=256k tmpfs "$1" && (dd if=/dev/zero of="$1/filler" bs=4k 2>/dev/null; true)${leaveRoom}`;
    const r = inMountNamespace(dir, prepare, [
      'up',
      '--name',
      'alice',
      '--interface',
      '127.0.0.1',
      '--ttl',
      '0',
    ]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(
      new RegExp(
        `^peer: cannot open ${dir}/alice\\.(lock|db): the disk holding ${dir} is full; free some space there \\(or pass another --data-dir\\) and start again\n$`,
      ),
    );
  });
});

/**
 * Runs `peer ARGS --data-dir DIR` in a mount namespace of its own (nothing is mounted on the host),
 * after the shell command `prepare` ran there with DIR as $1; returns its exit code and stderr.
 */
function inMountNamespace(dir: string, prepare: string, args: string[]): { code: number; stderr: string } {
  const script = `${prepare} && d="$1" node="$2" bin="$3" && shift 3 && exec "$node" "$bin" "$@" --data-dir "$d"`;
  try {
    execFileSync(
      'unshare',
      ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', dir, process.execPath, BIN, ...args],
      {
        env: { ...process.env, NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: REFUSAL_TIMEOUT_MS,
      },
    );
    return { code: 0, stderr: '' };
  } catch (err) {
    const e = err as { status: number; stderr: Buffer };
    return { code: e.status, stderr: e.stderr.toString() };
  }
}
