/**
 * Built-in ops on a real `peer worker` over loopback: an open group (no key) and a worker without
 * --allow-exec, the submitter in this process (the jobs protocol over reliable delivery, as peer
 * run installs it). The ops run in the worker's threads and come back as each job's output; an op
 * over its timeout has its thread stopped, and the worker runs the next ops on its replacement.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loopbackFlags, startCli, tempDir, testPort, type Lines } from '../support/proc.js';
import { networkSettings, startPeer, type RunningPeer } from '../../src/cli/peer.js';
import { installJobs } from '../../src/cli/run/install.js';
import { ReliableDelivery } from '../../src/p2p/reliable/index.js';
import type { JobResult, Jobs, RunSpec } from '../../src/p2p/jobs/index.js';

const children: Lines[] = [];
const submitters: Array<RunningPeer<Jobs>> = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of submitters.splice(0)) await s.stop();
  for (const p of children.splice(0)) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await p.exited;
  }
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function until(what: string, ok: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const opSpec = (words: string[], timeoutMs: number | null = null): Omit<RunSpec, 'run'> => ({
  kind: 'op',
  words,
  env: [],
  detached: false,
  timeoutMs,
  graceMs: 100,
  output: 'group',
  transfers: [],
  returns: [],
});

describe('peer worker: built-in ops (loopback)', () => {
  it('an open group, no --allow-exec: ops run in the threads; one over its timeout is stopped', async () => {
    const base = tempDir('worker-ops');
    dirs.push(base);
    const port = testPort();
    const dataDir = path.join(base, 'data');
    const w = startCli([
      'worker',
      ...loopbackFlags(port, dataDir, 'local'),
      '--name',
      'w1',
      '--open',
      '--slots',
      '2',
      '--log-format',
      'json',
    ]);
    children.push(w);
    const peer = await startPeer(
      networkSettings({
        name: 'submitter',
        group: '239.255.77.77',
        port,
        interface: '127.0.0.1',
        ttl: 0,
        'data-dir': dataDir,
        profile: 'local',
        open: true,
      }),
      {
        transient: true,
        install: (node) =>
          installJobs(
            node,
            node.install((ctx, n) => new ReliableDelivery(ctx, n.membership)),
            { keyed: false },
          ),
      },
    );
    submitters.push(peer);
    const jobs = peer.installed;
    await until('the worker to be advertised', () => jobs.workers().length === 1);
    expect(jobs.workers()[0]).toMatchObject({ name: 'w1', allowExec: false });

    const run = (words: string[], n: number, timeoutMs: number | null = null) => {
      const records: JobResult[] = [];
      const h = jobs.startRun(
        opSpec(words, timeoutMs),
        { output: () => undefined, returned: () => undefined, record: (r) => void records.push(r) },
        { retries: 1, maxRunning: null, workers: null },
      );
      h.feed(
        Array.from({ length: n }, (_, i) => ({ job: i + 1, seq: i + 1, input: null, pin: null })),
        true,
      );
      return records;
    };
    const text = (b: Uint8Array) => Buffer.from(b).toString();

    // Counting the primes below 2e8 takes seconds of one core: stopped at 300 ms.
    const slow = run(['primes', '200000000'], 1, 300);
    const fib = run(['fibonacci', '90'], 5);
    const bad = run(['sum', 'one'], 1);
    await until('every op to end', () => slow.length + fib.length + bad.length === 7);
    expect(slow[0]).toMatchObject({ timedOut: true, exit: -1 });
    for (const r of fib) {
      expect(r).toMatchObject({ exit: 0, started: true, workerName: 'w1' });
      expect(text(r.stdout)).toBe('2880067194370816120\n');
    }
    expect(bad[0]).toMatchObject({ exit: 1 });
    expect(text(bad[0]!.stderr)).toMatch(/^sum: 'one' is not a number/);

    // The thread that was stopped was replaced: two ops at once still run.
    const after = run(['sort', '3', '1', '2'], 2);
    await until('the ops after the timeout', () => after.length === 2);
    for (const r of after) expect(text(r.stdout)).toBe('[1,2,3]\n');
    const ended = () => w.json().filter((e) => e.event === 'job-ended').length;
    await w.until(() => ended() === 9, 10_000, 'every job-ended line');
  });
});
