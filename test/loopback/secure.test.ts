/**
 * The group key end to end: the built CLI as real processes on loopback (127.0.0.1, TTL 0).
 * Same key: peers join. Another key or none: never seen, and counted. Rotation by SIGHUP without
 * a split. Key files: written 0600, refused clearly when bad.
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loggedState, runCli, startCli, tempDir, testPort, type Lines } from '../support/proc.js';

const running: Lines[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await p.exited;
  }
});

function up(dir: string, port: number, name: string, keyFile: string | null): Lines {
  const args = ['up', '--interface', '127.0.0.1', '--ttl', '0', '--port', String(port), '--name', name];
  args.push('--data-dir', path.join(dir, name), '--log-format', 'json', '--profile', 'local');
  if (keyFile) args.push('--key-file', keyFile);
  const p = startCli(args, { PEER_KEY_FILE: '' });
  running.push(p);
  return p;
}

async function keygen(file: string): Promise<string> {
  const r = await runCli(['keygen', '--out', file]);
  expect(r.code).toBe(0);
  return fs.readFileSync(file, 'utf8');
}

const keyLine = (fileText: string) => fileText.split('\n').find((l) => l && !l.startsWith('#'))!;
const events = (p: Lines, kind: string) => p.json().filter((e) => e.event === kind);
const lastStats = (p: Lines) =>
  events(p, 'stats').at(-1) as unknown as {
    secure: {
      dropped: { auth: number; replay: number; stale: number; key: number; plaintext: number };
      openedByKey: Record<string, number>;
    };
    decode: Record<string, number>;
  };

/** Asks `p` for its stats (SIGUSR1) until `ok` holds for them, for up to 10 s. */
async function statsUntil(p: Lines, ok: (s: ReturnType<typeof lastStats>) => boolean, what: string) {
  for (let i = 0; i < 50; i++) {
    const s = lastStats(p);
    if (s && ok(s)) return;
    p.child.kill('SIGUSR1');
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(lastStats(p))}`);
}

describe('group key over UDP on loopback (CLI)', () => {
  it('keygen writes a 0600 file, refuses to overwrite it, replaces it with --force', async () => {
    const dir = tempDir('keygen');
    const file = path.join(dir, 'group.key');
    const first = await keygen(file);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(Buffer.from(keyLine(first), 'base64').length).toBe(32);
    const again = await runCli(['keygen', '--out', file]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/exists; pass --force/);
    expect(fs.readFileSync(file, 'utf8')).toBe(first);
    const forced = await runCli(['keygen', '--out', file, '--force']);
    expect(forced.code).toBe(0);
    expect(fs.readFileSync(file, 'utf8')).not.toBe(first);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const toStdout = await runCli(['keygen']);
    expect(Buffer.from(toStdout.stdout.trim(), 'base64').length).toBe(32);
  });

  it('bad key files are refused with one clear line; a readable one is warned about', async () => {
    const dir = tempDir('keyfiles');
    const cases: Array<[string, string | null, RegExp]> = [
      ['missing.key', null, /cannot read --key-file .*missing\.key \(ENOENT\)/],
      ['empty.key', '# nothing here\n\n', /holds no key; create one with: peer keygen/],
      ['short.key', 'abcdef\n', /line 1: not a 256-bit key \(6 hex digits, a key has 64\)/],
      ['b16.key', `${Buffer.alloc(16, 7).toString('base64')}\n`, /line 1: not a 256-bit key \(16 bytes/],
      ['junk.key', `${'a'.repeat(64)}\n!!!\n`, /line 2: not a 256-bit key \(neither base64 nor hex\)/],
    ];
    for (const [name, text, expected] of cases) {
      const file = path.join(dir, name);
      if (text !== null) fs.writeFileSync(file, text, { mode: 0o600 });
      const r = await runCli([
        'stats',
        '--interface',
        '127.0.0.1',
        '--ttl',
        '0',
        '--port',
        String(testPort()),
        '--key-file',
        file,
        '--wait',
        '0',
      ]);
      expect(r.code, name).toBe(2);
      expect(r.stderr.trim().split('\n'), name).toHaveLength(1);
      expect(r.stderr, name).toMatch(expected);
    }
    const wide = path.join(dir, 'wide.key');
    fs.writeFileSync(wide, `${'b'.repeat(64)}\n`, { mode: 0o644 });
    fs.chmodSync(wide, 0o644);
    const port = String(testPort());
    const r = await runCli([
      'stats',
      '--interface',
      '127.0.0.1',
      '--ttl',
      '0',
      '--port',
      port,
      '--key-file',
      wide,
      '--wait',
      '0',
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/readable by others \(mode 0644\); run: chmod 600/);
    const open = await runCli(
      ['stats', '--interface', '127.0.0.1', '--ttl', '0', '--port', port, '--wait', '0'],
      {
        env: { PEER_KEY_FILE: '' },
      },
    );
    expect(open.stderr).toMatch(
      new RegExp(
        `no --key-file: traffic on 239\\.255\\.77\\.77:${port} is neither encrypted nor authenticated`,
      ),
    );
  });

  it('an open group on purpose (--open or PEER_OPEN=1): no warning; --open with a key file: refused', async () => {
    const port = String(testPort());
    const stats = ['stats', '--interface', '127.0.0.1', '--ttl', '0', '--port', port, '--wait', '0'];
    const [flag, env, neither] = await Promise.all([
      runCli([...stats, '--open'], { env: { PEER_KEY_FILE: '' } }),
      runCli(stats, { env: { PEER_KEY_FILE: '', PEER_OPEN: '1' } }),
      runCli(stats, { env: { PEER_KEY_FILE: '' } }),
    ]);
    for (const r of [flag, env]) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(/key-file/);
    }
    expect(neither.stderr.match(/no --key-file: /g)).toHaveLength(1);
    const dir = tempDir('open-key');
    const key = path.join(dir, 'group.key');
    await keygen(key);
    const both = await runCli([...stats, '--open', '--key-file', key]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(
      /^peer: --open \(or PEER_OPEN\) runs the group without a key, but .* pass one of them\n$/,
    );
  });

  it('same key joins; another key and no key are never seen, and are counted', async () => {
    const dir = tempDir('secure-lo');
    const port = testPort();
    const k1 = path.join(dir, 'k1.key');
    const k2 = path.join(dir, 'k2.key');
    await keygen(k1);
    await keygen(k2);
    const a = up(dir, port, 'a', k1);
    const b = up(dir, port, 'b', k1);
    const c = up(dir, port, 'c', k2);
    const o = up(dir, port, 'o', null);
    await a.until((p) => loggedState(p, 'b') === 'alive', 10_000, 'a to see b');
    await b.until((p) => loggedState(p, 'a') === 'alive', 10_000, 'b to see a');
    await a.until(
      () => /key not in our key file/.test(a.stderr.join('')) && /unencrypted/.test(a.stderr.join('')),
      10_000,
      'a to notice the other-key and keyless peers',
    );
    a.child.kill('SIGUSR1');
    await a.until(() => events(a, 'stats').length > 0, 5_000, 'stats on SIGUSR1');
    const s = lastStats(a);
    expect(s.secure.dropped.key).toBeGreaterThan(0);
    expect(s.secure.dropped.plaintext).toBeGreaterThan(0);
    expect(s.secure.dropped.auth).toBe(0);
    expect(Object.values(s.decode).every((n) => n === 0)).toBe(true);
    for (const p of [a, b]) {
      expect(loggedState(p, 'c')).toBeUndefined();
      expect(loggedState(p, 'o')).toBeUndefined();
    }
    // Said at its start; its stderr may reach us after a has heard its datagrams.
    await o.until(
      () => /no --key-file: traffic on .* is neither encrypted nor authenticated/.test(o.stderr.join('')),
      10_000,
      'o to say its traffic is open',
    );
    // c (another key) and o (none) may have started last, the others hearing their first datagrams
    // at once: ask for their stats until they show they heard a and b, and still saw no one.
    await statsUntil(c, (st) => st.secure.dropped.key > 0, 'c to refuse the k1 datagrams');
    // The open peer's kernel refuses the sealed datagrams as undecodable.
    await statsUntil(o, (st) => (st.decode.json ?? 0) > 0, 'o to refuse the sealed datagrams');
    for (const p of [c, o]) {
      expect(loggedState(p, 'a')).toBeUndefined();
      expect(loggedState(p, 'b')).toBeUndefined();
    }
  });

  it('a stranger on the group replays, tampers and forges: all dropped and counted, the group intact', async () => {
    const dir = tempDir('attack-lo');
    const port = testPort();
    const k1 = path.join(dir, 'k1.key');
    await keygen(k1);
    const a = up(dir, port, 'a', k1);
    const b = up(dir, port, 'b', k1);
    await a.until((p) => loggedState(p, 'b') === 'alive', 10_000, 'a to see b');
    await b.until((p) => loggedState(p, 'a') === 'alive', 10_000, 'b to see a');

    // The stranger listens to the group like any host on the LAN, then sends from its own socket.
    const GROUP = '239.255.77.77';
    const captured: Buffer[] = [];
    const listen = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((resolve) => listen.bind(port, GROUP, () => resolve()));
    listen.addMembership(GROUP, '127.0.0.1');
    listen.on('message', (m) => captured.length < 20 && captured.push(m));
    const send = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => send.bind(0, '127.0.0.1', () => resolve()));
    send.setMulticastInterface('127.0.0.1');
    send.setMulticastTTL(0);
    try {
      await a.until(() => captured.length === 20, 10_000, 'the stranger to capture 20 datagrams');
      const out = (d: Buffer) => new Promise<void>((resolve) => send.send(d, port, GROUP, () => resolve()));
      // Header offsets (secure.ts): counter at 13..17, ciphertext from 17. A forgery that reuses a
      // seen nonce is refused as a replay before any decryption; with a fresh counter it must fail
      // authentication.
      const fresh = (d: Buffer, i: number) => {
        const f = Buffer.from(d);
        f.writeUInt32BE(d.readUInt32BE(13) + 500 + i, 13);
        return f;
      };
      for (const [i, d] of captured.entries()) {
        await out(d); // replayed as is
        const t = fresh(d, i);
        t[17 + (i % (t.length - 17))]! ^= 0x40; // one bit of the ciphertext or tag
        await out(t);
        await out(Buffer.concat([fresh(d, i + 100).subarray(0, 17), Buffer.alloc(d.length - 17, 0x55)]));
      }
      // A peer never receives its own datagrams, so those it sent are refused as replays whatever
      // their counter (secure.ts), forged or not; the others' forgeries fail authentication.
      const refused = (s: ReturnType<typeof lastStats>) =>
        s.secure.dropped.auth + s.secure.dropped.replay + s.secure.dropped.stale;
      const want = (p: Lines) => {
        const s = lastStats(p);
        return s !== undefined && refused(s) >= 60;
      };
      for (const p of [a, b]) {
        // The datagrams are in flight on loopback: ask for the counters until they show them all.
        let askedAt = 0;
        await p.until(
          () => {
            if (want(p)) return true;
            if (Date.now() - askedAt > 200) {
              askedAt = Date.now();
              p.child.kill('SIGUSR1');
            }
            return false;
          },
          10_000,
          'counters to show the attack',
        );
        const s = lastStats(p);
        expect(refused(s)).toBe(60);
        expect(s.secure.dropped.replay + s.secure.dropped.stale).toBeGreaterThanOrEqual(20);
        expect(s.secure.dropped.auth).toBeGreaterThan(0);
        expect(Object.values(s.decode).every((n) => n === 0)).toBe(true);
        expect(p.json().filter((e) => e.event === 'suspect' || e.event === 'dead')).toEqual([]);
      }
    } finally {
      listen.close();
      send.close();
    }
  });

  it('rotation by SIGHUP (install, use, remove) keeps the group together', async () => {
    const dir = tempDir('rotate-lo');
    const port = testPort();
    const k1 = keyLine(await keygen(path.join(dir, 'k1.key')));
    const k2 = keyLine(await keygen(path.join(dir, 'k2.key')));
    const files = { a: path.join(dir, 'a.key'), b: path.join(dir, 'b.key') };
    for (const f of Object.values(files)) fs.writeFileSync(f, `${k1}\n`, { mode: 0o600 });
    const peers = { a: up(dir, port, 'a', files.a), b: up(dir, port, 'b', files.b) };
    await peers.a.until((p) => loggedState(p, 'b') === 'alive', 10_000, 'a to see b');
    await peers.b.until((p) => loggedState(p, 'a') === 'alive', 10_000, 'b to see a');

    const reload = async (name: 'a' | 'b', lines: string[]) => {
      fs.writeFileSync(files[name], `${lines.join('\n')}\n`, { mode: 0o600 });
      const p = peers[name];
      const n = events(p, 'reload').length;
      p.child.kill('SIGHUP');
      await p.until(() => events(p, 'reload').length > n, 5_000, `${name} to reload`);
      // Not a wait for something to happen: the group runs for several heartbeat intervals under
      // each intermediate configuration, which is what must not split it.
      await new Promise((r) => setTimeout(r, 1_000));
    };
    for (const n of ['a', 'b'] as const) await reload(n, [k1, k2]); // install
    for (const n of ['a', 'b'] as const) await reload(n, [k2, k1]); // use
    for (const n of ['a', 'b'] as const) await reload(n, [k2]); // remove
    await new Promise((r) => setTimeout(r, 1_500));
    for (const [self, other] of [
      ['a', 'b'],
      ['b', 'a'],
    ] as const) {
      const p = peers[self];
      expect(loggedState(p, other)).toBe('alive');
      expect(p.json().filter((e) => e.event === 'suspect' || e.event === 'dead')).toEqual([]);
      p.child.kill('SIGUSR1');
      await p.until(() => events(p, 'stats').length > 0, 5_000, 'stats');
      const s = lastStats(p);
      expect(Object.keys(s.secure.openedByKey)).toHaveLength(2); // heard under both keys
      expect(s.secure.dropped.key).toBe(0); // and never a datagram under a key it did not hold
    }
  });
});
