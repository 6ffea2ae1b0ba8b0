/**
 * Tags, user events and queries end to end over loopback sockets, through the built CLI: tags set
 * at start and on a running peer (saved across its restart), seen by `peer peers` and its
 * filters, and by the other peers' member-update handlers; a user event and a query to several
 * peers; exit codes when nobody runs handlers.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loopbackFlags, runCli, startCli, tempDir, testPort, type Lines } from '../support/proc.js';

const ENV = { PEER_KEY_FILE: '', PEER_OPEN: '1' };
const running: Lines[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
});

function up(name: string, net: string[], ...flags: string[]): Lines {
  const p = startCli(['up', '--name', name, '--log-format', 'json', ...net, ...flags], ENV);
  running.push(p);
  return p;
}
const isUp = (p: Lines) => p.until((l) => l.json().some((e) => e.event === 'up'), 15_000, 'up');

interface Listed {
  name: string;
  state: string;
  userTags: Record<string, string>;
}
async function peers(net: string[], ...flags: string[]): Promise<Listed[]> {
  const r = await runCli(['peers', '--json', '--wait', '1000', ...net, ...flags], { env: ENV });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Listed[];
}

async function until(
  what: string,
  pred: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('tags, events and queries over loopback', () => {
  it('tags: set at start and while running, saved, shown and filtered, and handed to member-update handlers', async () => {
    const dataDir = tempDir('ev-tags');
    const net = loopbackFlags(testPort(), dataDir, 'local');
    const record = path.join(tempDir('ev-tags-out'), 'updates');
    const alice = up('alice', net, '--tag', 'role=db', '--handler', `member-update=cat >> ${record}`);
    const bob = up('bob', net, '--tag', 'role=web');
    await Promise.all([isUp(alice), isUp(bob)]);

    const set = await runCli(['tags', 'set', 'rack=2', '--name', 'bob', '--data-dir', dataDir], { env: ENV });
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toBe('bob: role=web rack=2\n');
    // `cat >> FILE` creates the file before it writes: wait for the whole line.
    await until(
      'alice runs member-update for bob',
      () => fs.existsSync(record) && fs.readFileSync(record, 'utf8').endsWith('\n'),
    );
    expect(fs.readFileSync(record, 'utf8')).toMatch(/^bob\t127\.0\.0\.1:\d+\tweb\track=2,role=web\n$/);

    expect((await peers(net, '--tag', 'rack=2')).map((m) => [m.name, m.userTags])).toEqual([
      ['bob', { role: 'web', rack: '2' }],
    ]);
    expect((await peers(net, '--tag', 'role=db', '--status', 'alive')).map((m) => m.name)).toEqual(['alice']);

    // Over the limit, or a bad value: refused with why, nothing changed.
    const many = await runCli(['tags', 'set', 'a=1', 'b=2', 'c=3', '--name', 'bob', '--data-dir', dataDir], {
      env: ENV,
    });
    expect(many.code).toBe(2);
    expect(many.stderr).toBe("peer: peer 'bob' refused the change: 5 tags: a peer carries at most 4\n");
    const unset = await runCli(['tags', 'unset', 'role', '--name', 'bob', '--data-dir', dataDir, '--json'], {
      env: ENV,
    });
    expect(unset.code, unset.stderr).toBe(0);
    expect(JSON.parse(unset.stdout)).toEqual({ name: 'bob', tags: { rack: '2' } });

    // What was acknowledged survives a restart.
    bob.child.kill('SIGTERM');
    await bob.exited;
    const bob2 = up('bob', net);
    await isUp(bob2);
    await until('bob back with its saved tags', async () =>
      (await peers(net, '--tag', 'rack=2', '--status', 'alive')).some((m) => m.name === 'bob'),
    );
  }, 120_000);

  it('a user event and a query reach every peer; with no peer running handlers both exit 1', async () => {
    const dataDir = tempDir('ev-send');
    const net = loopbackFlags(testPort(), dataDir, 'local');
    const none = await runCli(['event', 'deploy', 'v1', ...net], { env: ENV });
    expect(none.code).toBe(1);
    expect(none.stderr).toBe('peer: no peer in the group runs handlers (peer up); the event was not sent\n');
    const noQuery = await runCli(['query', 'load', '--timeout', '500ms', ...net], { env: ENV });
    expect(noQuery.code).toBe(1);

    const out = tempDir('ev-send-out');
    const names = ['p1', 'p2', 'p3', 'p4'];
    const ups = names.map((n) =>
      up(n, net, '--handler', `user:deploy=cat > ${out}/${n}`, '--handler', 'query:version=echo 1.2.3'),
    );
    await Promise.all(ups.map(isUp));
    await until(
      'the peers know each other',
      async () => (await peers(net, '--status', 'alive')).length === 4,
    );
    // Done once every agent acknowledged: it does not wait out --timeout (it did, keeping the
    // process alive on a timer after its answer).
    const started = Date.now();
    const sent = await runCli(['event', 'deploy', '-', '--json', '--timeout', '60s', ...net], {
      env: ENV,
      input: 'v2\n',
      timeoutMs: 30_000,
    });
    expect(sent.code, sent.stderr).toBe(0);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect((JSON.parse(sent.stdout) as { acked: string[] }).acked.sort()).toEqual(names);
    await until('every handler ran', () => names.every((n) => fs.existsSync(`${out}/${n}`)));
    for (const n of names) expect(fs.readFileSync(`${out}/${n}`, 'utf8')).toBe('v2\n');

    const q = await runCli(['query', 'version', '--json', ...net], { env: ENV });
    expect(q.code, q.stderr).toBe(0);
    const answers = (JSON.parse(q.stdout) as { answers: Array<{ from: string; answer: string }> }).answers;
    expect(answers.map((a) => `${a.from} ${a.answer}`).sort()).toEqual(names.map((n) => `${n} 1.2.3\n`));
  }, 120_000);

  it('peer event and peer query hand their message to a peer up running with the same data dir; without one they join the group', async () => {
    const shared = tempDir('ev-relay');
    const other = tempDir('ev-relay-other');
    const port = testPort();
    const out = tempDir('ev-relay-out');
    const handlers = (n: string) => [
      '--handler',
      `user:deploy=cat > ${out}/${n}`,
      '--handler',
      'query:version=echo 1.2.3',
    ];
    const local = up('local', loopbackFlags(port, shared, 'local'), ...handlers('local'));
    const remote = up('remote', loopbackFlags(port, other, 'local'), ...handlers('remote'));
    await Promise.all([isUp(local), isUp(remote)]);
    await until(
      'the peers know each other',
      async () => (await peers(loopbackFlags(port, other, 'local'), '--status', 'alive')).length === 2,
    );
    const joins = (p: Lines) => p.lines.filter((l) => /"name":"(event|query)"/.test(l)).length;
    const before = joins(local) + joins(remote);

    // Through `local`'s control socket: the same output, and no peer joins the group for it.
    const sent = await runCli(['event', 'deploy', 'v3', '--json', ...loopbackFlags(port, shared, 'local')], {
      env: ENV,
    });
    expect(sent.code, sent.stderr).toBe(0);
    expect((JSON.parse(sent.stdout) as { acked: string[] }).acked.sort()).toEqual(['local', 'remote']);
    await until('both handlers ran', () => ['local', 'remote'].every((n) => fs.existsSync(`${out}/${n}`)));
    for (const n of ['local', 'remote']) expect(fs.readFileSync(`${out}/${n}`, 'utf8')).toBe('v3');
    const q = await runCli(['query', 'version', ...loopbackFlags(port, shared, 'local')], { env: ENV });
    expect(q.code, q.stderr).toBe(0);
    expect(q.stdout.split('\n').sort()).toEqual([
      '',
      '2 answered, none silent',
      'local: 1.2.3',
      'remote: 1.2.3',
    ]);
    expect(joins(local) + joins(remote)).toBe(before);

    // A data dir no peer runs in: the one-shot path, a peer of its own that joins for the run.
    const alone = tempDir('ev-relay-none');
    const oneShot = await runCli(['query', 'version', '--json', ...loopbackFlags(port, alone, 'local')], {
      env: ENV,
    });
    expect(oneShot.code, oneShot.stderr).toBe(0);
    expect(
      (JSON.parse(oneShot.stdout) as { answers: Array<{ from: string }> }).answers.map((a) => a.from).sort(),
    ).toEqual(['local', 'remote']);
    await until('the one-shot peer was seen joining', () => joins(local) + joins(remote) > before);
  }, 120_000);

  it('a data dir too deep for the control socket costs peer tags, not the peer', async () => {
    const deep = path.join(tempDir('ev-deep'), 'd'.repeat(110));
    const net = loopbackFlags(testPort(), deep, 'local');
    const alice = up('alice', net, '--tag', 'role=db');
    await isUp(alice);
    expect(alice.stderr.join('')).toMatch(
      /is longer than the 107 bytes .*; until then peer tags cannot reach this peer\n/,
    );
    const set = await runCli(['tags', 'set', 'rack=2', '--name', 'alice', '--data-dir', deep], { env: ENV });
    expect(set.code).toBe(2);
    expect(set.stderr).toMatch(/use a shorter --data-dir\n$/);
  }, 60_000);

  it('tags that cannot be saved at start are said, and the peer runs on with them', async () => {
    const dataDir = tempDir('ev-unsaved');
    const net = loopbackFlags(testPort(), dataDir, 'local');
    // Where the save writes first: a directory there makes it fail, as a full disk would.
    fs.mkdirSync(path.join(dataDir, 'alice.tags.json.tmp'));
    const alice = up('alice', net, '--tag', 'role=db');
    await isUp(alice);
    await alice.until((l) => l.stderr.join('').includes('cannot save the tags'), 10_000, 'the line');
    expect(alice.stderr.join('')).toMatch(
      /^peer: cannot save the tags in .*; they hold until this peer stops$/m,
    );
    expect((await peers(net, '--tag', 'role=db')).map((m) => m.name)).toEqual(['alice']);
  }, 60_000);
});
