/**
 * The handler contract of `peer up --handler`, through the built CLI (run in a private network
 * namespace, as every test of this tier): the environment and stdin a handler gets for member
 * events, user events and queries; handlers one at a time in event order; a timeout that kills
 * the handler and is reported; a failing handler reported with its stderr; a slow handler that
 * never holds up the peer (events are acknowledged while it runs); query answers and the silent.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, startCli, tempDir, testPort, loopbackFlags, type Lines } from '../support/proc.js';

const running: Lines[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
});

const ENV = { PEER_KEY_FILE: '', PEER_OPEN: '1' };

/** A handler script in `dir` that records each run (environment, stdin, start and end) in `<dir>/<self>.log`. */
function recorder(dir: string, extra = ''): string {
  const file = path.join(dir, 'record.sh');
  fs.writeFileSync(
    file,
    `#!/bin/sh
log="${dir}/$PEER_SELF_NAME.log"
echo "start $PEER_EVENT user=$PEER_USER_EVENT ltime=$PEER_USER_LTIME query=$PEER_QUERY_NAME qltime=$PEER_QUERY_LTIME self=$PEER_SELF_NAME tags=$PEER_SELF_TAGS role=$PEER_TAG_ROLE" >> "$log"
# A payload need not end with a newline: end the line (an empty one is skipped when read).
{ sed 's/^/stdin: /'; echo; } >> "$log"
${extra}
echo "end $PEER_EVENT" >> "$log"
`,
    { mode: 0o755 },
  );
  return file;
}

function up(name: string, net: string[], ...flags: string[]): Lines {
  const p = startCli(['up', '--name', name, '--log-format', 'json', ...net, ...flags], ENV);
  running.push(p);
  return p;
}

const upLine = (p: Lines) => p.until((l) => l.json().some((e) => e.event === 'up'), 15_000, 'up');
const logged = (dir: string, name: string) => {
  try {
    return fs
      .readFileSync(path.join(dir, `${name}.log`), 'utf8')
      .split('\n')
      .filter(Boolean);
  } catch {
    return [];
  }
};

async function until(what: string, pred: () => boolean, timeoutMs = 15_000, shown = ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}${shown && `; ${shown}:\n${fs.readFileSync(shown, 'utf8')}`}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('peer up --handler', () => {
  it('gets member events and user events with their environment and stdin, one at a time, in order', async () => {
    const dir = tempDir('handlers');
    const net = loopbackFlags(testPort(), tempDir('handlers-data'), 'local');
    const h = recorder(dir, 'sleep 0.2');
    const a = up('alice', net, '--tag', 'role=db', '--handler', h);
    await upLine(a);
    const b = up('bob', net, '--tag', 'role=web', '--tag', 'rack=2');
    await upLine(b);
    await until('alice runs member-join for bob', () =>
      logged(dir, 'alice').some((l) => l.startsWith('end member-join')),
    );
    expect(logged(dir, 'alice').slice(0, 3)).toEqual([
      'start member-join user= ltime= query= qltime= self=alice tags=role=db role=db',
      expect.stringMatching(/^stdin: bob\t127\.0\.0\.1:\d+\tweb\track=2,role=web$/),
      'end member-join',
    ]);

    const cli = net;
    const sent: number[] = [];
    for (const n of [1, 2, 3]) {
      const r = await runCli(['event', `step${n}`, `payload ${n}`, '--json', ...cli], { env: ENV });
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { acked: string[]; lamport: number };
      expect(out.acked.sort()).toEqual(['alice', 'bob']);
      sent.push(out.lamport);
    }
    await until(
      'three user events handled',
      () => logged(dir, 'alice').filter((l) => l === 'end user').length === 3,
    );
    const users = logged(dir, 'alice').slice(3);
    expect(users).toEqual(
      [1, 2, 3].flatMap((n) => [
        `start user user=step${n} ltime=${sent[n - 1]} query= qltime= self=alice tags=role=db role=db`,
        `stdin: payload ${n}`,
        'end user',
      ]),
    );
    // One at a time: every start is followed by its own end before the next start.
    expect(
      logged(dir, 'alice')
        .filter((l) => l.startsWith('start') || l.startsWith('end'))
        .map((l) => l.split(' ')[0]),
    ).toEqual(Array.from({ length: 4 }, () => ['start', 'end']).flat());
    // bob has no handler: it acked all the same.
    expect(logged(dir, 'bob')).toEqual([]);
    const runs = a.json().filter((e) => e.event === 'handler');
    // peer event runs with alice's data dir, so alice sends the events (src/cli/agent-relay.ts).
    expect(runs.map((e) => e.handled)).toEqual([
      'member-join bob',
      'user event step1 from alice',
      'user event step2 from alice',
      'user event step3 from alice',
    ]);
  }, 90_000);

  it('a handler over --handler-timeout is killed and reported; a failing one is reported with its stderr; neither holds the peer up', async () => {
    const dir = tempDir('handlers-slow');
    const net = loopbackFlags(testPort(), tempDir('handlers-data'), 'local');
    const a = up(
      'alice',
      net,
      '--handler-timeout',
      '500ms',
      '--handler',
      `user:slow=echo started > ${dir}/slow; exec sleep 30`,
      '--handler',
      'user:fail=echo boom >&2; exit 3',
      '--handler',
      `user:after=echo ran > ${dir}/after`,
    );
    await upLine(a);
    const cli = net;
    const slow = await runCli(['event', 'slow', ...cli], { env: ENV });
    expect(slow.code, slow.stderr).toBe(0);
    // While the slow handler runs, the peer still acknowledges events: its protocols never wait.
    await until('the slow handler started', () => fs.existsSync(`${dir}/slow`));
    const fail = await runCli(['event', 'fail', ...cli], { env: ENV });
    expect(fail.code, fail.stderr).toBe(0);
    const after = await runCli(['event', 'after', ...cli], { env: ENV });
    expect(after.code, after.stderr).toBe(0);
    await until('the handler after them ran', () => fs.existsSync(`${dir}/after`));
    const failed = a.json().filter((e) => e.event === 'handler-failed');
    expect(failed.map((e) => [e.handled, e.timedOut, e.exit, e.stderr])).toEqual([
      ['user event slow from alice', true, null, ''],
      ['user event fail from alice', false, 3, 'boom'],
    ]);
    expect(failed[0]!.ms as number).toBeGreaterThanOrEqual(500);
    expect(failed[0]!.ms as number).toBeLessThan(5_000);
  }, 90_000);

  it('a query gets every handler output; a peer without a handler answers with none; one too slow is named silent', async () => {
    const net = loopbackFlags(testPort(), tempDir('handlers-data'), 'local');
    const a = up('alice', net, '--handler', 'query:load=echo "load of $PEER_SELF_NAME: $(cat)"');
    const b = up('bob', net);
    const c = up('carol', net, '--tag', 'role=db', '--handler', 'query=sleep 10');
    await Promise.all([upLine(a), upLine(b), upLine(c)]);
    const cli = net;
    const all = await runCli(['query', 'load', 'now', '--timeout', '3s', '--json', ...cli], { env: ENV });
    expect(all.code).toBe(1);
    expect(JSON.parse(all.stdout.trim().split('\n').at(-1)!)).toEqual({
      error: expect.stringMatching(/^1 of 3 peers did not answer within 3s: carol/),
      name: 'load',
      answers: expect.arrayContaining([
        { from: 'alice', answer: 'load of alice: now\n', truncated: false },
        { from: 'bob', answer: null, truncated: false },
      ]),
      silent: ['carol'],
    });
    const some = await runCli(['query', 'load', 'x', '--node', 'alice', '--node', 'bob', ...cli], {
      env: ENV,
    });
    expect(some.code, some.stderr).toBe(0);
    expect(some.stdout).toMatch(/^alice: load of alice: x$/m);
    expect(some.stdout).toMatch(/^bob: \(no handler\)$/m);
    const none = await runCli(['query', 'load', '--tag', 'role=nothing', ...cli], { env: ENV });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no peer matches query load/);
  }, 90_000);
});
