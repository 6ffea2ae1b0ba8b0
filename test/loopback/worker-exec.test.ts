/**
 * `peer worker --allow-exec` with real processes on loopback: a submitter in this process (the
 * jobs protocol over reliable delivery, as peer run installs it) starts jobs that ignore SIGTERM
 * and leave a background process; the built worker runs them. Ctrl-C on the worker kills every
 * job's whole group before it leaves; a worker killed -9 leaves them running, and its next start
 * kills them and removes their directories (the ledger of running groups).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  loopbackFlags,
  sleepsOf,
  startCli,
  tempDir,
  testPort,
  type Lines,
  groupKeyFile,
} from '../support/proc.js';
import { networkSettings, startPeer, type RunningPeer } from '../../src/cli/peer.js';
import { installJobs } from '../../src/cli/run/install.js';
import { ReliableDelivery } from '../../src/p2p/reliable/index.js';
import type { Jobs } from '../../src/p2p/jobs/index.js';

const SLOTS = 2;
const GRACE_MS = 300;

const children: Lines[] = [];
const submitters: Array<RunningPeer<Jobs>> = [];
const markers: string[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of submitters.splice(0)) await s.stop();
  for (const p of children.splice(0)) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await p.exited;
  }
  for (const m of markers.splice(0)) for (const pid of sleepsOf(m)) process.kill(pid, 'SIGKILL');
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function until(what: string, ok: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Setup {
  port: number;
  dataDir: string;
  jobDir: string;
  keyFile: string;
}

function setup(): Setup {
  const base = tempDir('worker-exec');
  dirs.push(base);
  const keyFile = groupKeyFile(base);
  return { port: testPort(), dataDir: path.join(base, 'data'), jobDir: path.join(base, 'jobs'), keyFile };
}

function worker(s: Setup): Lines {
  const p = startCli([
    'worker',
    ...loopbackFlags(s.port, s.dataDir, 'local'),
    '--name',
    'w1',
    '--key-file',
    s.keyFile,
    '--allow-exec',
    '--slots',
    String(SLOTS),
    '--job-dir',
    s.jobDir,
    '--log-format',
    'json',
  ]);
  children.push(p);
  return p;
}

/** Starts SLOTS jobs, each leaving `sleep m` in the background and running one itself, SIGTERM ignored. */
async function submit(s: Setup, m: string): Promise<void> {
  const peer = await startPeer(
    networkSettings({
      name: 'submitter',
      group: '239.255.77.77',
      port: s.port,
      interface: '127.0.0.1',
      ttl: 0,
      'data-dir': s.dataDir,
      profile: 'local',
      'key-file': s.keyFile,
    }),
    {
      transient: true,
      install: (node) =>
        installJobs(
          node,
          node.install((ctx, n) => new ReliableDelivery(ctx, n.membership)),
          { keyed: true },
        ),
    },
  );
  submitters.push(peer);
  const jobs = peer.installed;
  await until('the worker to be advertised', () => jobs.workers().some((w) => w.allowExec));
  const run = jobs.startRun(
    {
      kind: 'exec',
      words: [`trap "" TERM; sleep ${m} & sleep ${m}; wait`],
      env: [],
      detached: false,
      timeoutMs: null,
      graceMs: GRACE_MS,
      output: 'group',
      transfers: [],
      returns: [],
    },
    { output: () => undefined, returned: () => undefined, record: () => undefined },
    { retries: 1, maxRunning: null, workers: null },
  );
  run.feed(
    Array.from({ length: SLOTS }, (_, i) => ({ job: i + 1, seq: i + 1, input: null, pin: null })),
    true,
  );
  await until('every job to run', () => sleepsOf(m).length === 2 * SLOTS);
}

const marker = () => {
  const m = `1000.${Math.floor(Math.random() * 1e9)}`;
  markers.push(m);
  return m;
};

describe('peer worker --allow-exec (loopback)', () => {
  it('Ctrl-C kills every job with everything it started (SIGKILL after the grace) before the worker exits', async () => {
    const s = setup();
    const w = worker(s);
    const m = marker();
    await submit(s, m);
    expect(fs.readdirSync(s.jobDir)).toHaveLength(SLOTS);
    w.child.kill('SIGINT');
    expect(await w.exited).toBe(0);
    expect(sleepsOf(m)).toEqual([]);
    expect(fs.readdirSync(s.jobDir)).toEqual([]);
    const killed = w.json().filter((e) => e.event === 'job-killed');
    expect(killed.map((e) => e.why)).toEqual(Array(SLOTS).fill('shutdown'));
  });

  it('a worker killed -9 leaves its jobs running; its next start kills them and removes their directories', async () => {
    const s = setup();
    const w = worker(s);
    const m = marker();
    await submit(s, m);
    for (const sub of submitters.splice(0)) await sub.stop();
    w.child.kill('SIGKILL');
    await w.exited;
    expect(sleepsOf(m)).toHaveLength(2 * SLOTS);
    expect(fs.readdirSync(s.jobDir)).toHaveLength(SLOTS);

    const again = worker(s);
    await again.until((l) => l.json().some((e) => e.event === 'orphans'), 20_000, 'the cleanup line');
    expect(again.json().find((e) => e.event === 'orphans')).toMatchObject({
      killed: SLOTS,
      removed: SLOTS,
      stuck: 0,
    });
    expect(sleepsOf(m)).toEqual([]);
    expect(fs.readdirSync(s.jobDir)).toEqual([]);
  });
});
