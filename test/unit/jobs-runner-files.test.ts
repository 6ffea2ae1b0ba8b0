/**
 * The worker's side of `--transfer` files (src/p2p/jobs/runner.ts) driven by hand, for what the
 * simulation cannot stage cheaply: a worker holding JOB_WORKER_FILE_BYTES_MAX of files refuses the
 * next (counted), answers the jobs that needed it jb.full missing-file (nothing runs), and takes it
 * once a job started and its file was let go. A file from another peer than the run's submitter,
 * or one that does not match its digest, is dropped and counted.
 */
import { describe, expect, it } from 'vitest';
import { Runner } from '../../src/p2p/jobs/runner.js';
import { decodeJob, sha256Of, type JobMessage } from '../../src/p2p/jobs/messages.js';
import { JOB_FILE_BYTES_MAX, JOB_WORKER_FILE_BYTES_MAX } from '../../src/p2p/jobs/limits.js';
import type { JobExecutor, JobsStats, StartRequest } from '../../src/p2p/jobs/types.js';
import type { MemberView, ProtocolContext } from '../../src/p2p/protocol.js';

const S = 'aaaaaaaaaaaaaaaa';
const MALLORY = 'bbbbbbbbbbbbbbbb';
const RUN = '0123456789abcdef';

function harness() {
  const refused: string[] = [];
  const ctx = {
    self: { id: 'cccccccccccccccc', name: 'w1', incarnation: 1 },
    now: () => 0,
    wall: () => 1_700_000_000_000,
    random: Math.random,
    lamport: () => 0,
    stamp: () => 1,
    emit: () => {},
    soon: (fn: () => void) => fn(),
    refuse: (c: string) => refused.push(c),
  } as unknown as ProtocolContext;
  const submitter: MemberView = {
    id: S,
    name: 's',
    address: '10.0.0.1:7000',
    state: 'alive',
    incarnation: 1,
    lastSeenMs: 0,
    duplicateName: false,
    tags: {},
  };
  const membership = {
    get: (id: string) => (id === S ? submitter : undefined),
    setTags: () => {},
    ownTags: {},
  };
  const started: StartRequest[] = [];
  // One slot: a job started stays running, so the ones after it wait in the queue with their files.
  const executor: JobExecutor = {
    slots: 1,
    allowExec: true,
    bind: () => {},
    start: (req) => void started.push(req),
    kill: () => {},
    alive: () => [],
  };
  const sent: JobMessage[] = [];
  const send = (_to: string, payload: string | Uint8Array) =>
    void sent.push(decodeJob(typeof payload === 'string' ? Buffer.from(payload) : payload)!);
  const stats = { wrongSender: 0, malformed: 0, unknownRun: 0, refusedJobs: 0, staleFences: 0 } as JobsStats;
  const runner = new Runner(ctx, send, membership, executor, true, stats);
  runner.onOpen(S, 's', {
    run: RUN,
    kind: 'exec',
    words: ['cat', 'in-{}.txt'],
    env: [],
    timeoutMs: null,
    graceMs: 2000,
    output: 'group',
    transfers: ['in-{}.txt'],
    returns: [],
    detached: false,
  });
  return { runner, refused, started, sent, stats };
}

const entry = (job: number): [number, number, number, number, string] => [job, job, 1, job, String(job)];

describe('runner: --transfer files', () => {
  it('refuses a file beyond what it holds, answers its job missing-file, takes it once room is freed', () => {
    const h = harness();
    const big = new Uint8Array(JOB_FILE_BYTES_MAX);
    const sha256 = sha256Of(big);
    const fits = JOB_WORKER_FILE_BYTES_MAX / JOB_FILE_BYTES_MAX;
    for (let job = 1; job <= fits + 1; job++) h.runner.onFile(S, { run: RUN, job, index: 0, sha256 }, big);
    expect(h.refused).toEqual(['jobs.fileBytes']);
    // Job 1 starts (with its file), job 2 waits queued, the last has no file here.
    h.runner.onJobs(S, { run: RUN, jobs: [entry(1), entry(2), entry(fits + 1)] });
    expect(h.started.map((s) => [s.job, s.transfers[0]!.path, s.transfers[0]!.data.length])).toEqual([
      [1, 'in-1.txt', JOB_FILE_BYTES_MAX],
    ]);
    const full = h.sent.find((m) => m.type === 'jb.full');
    expect(full?.body).toMatchObject({ jobs: [[fits + 1, 1]], why: 'missing-file' });
    // Job 1's file was let go when it started: the refused one fits now.
    h.runner.onFile(S, { run: RUN, job: fits + 1, index: 0, sha256 }, big);
    expect(h.refused).toEqual(['jobs.fileBytes']);
  });

  it('drops a file from another peer than the submitter, or one that does not match its digest', () => {
    const h = harness();
    const data = Buffer.from('evil');
    h.runner.onFile(MALLORY, { run: RUN, job: 1, index: 0, sha256: sha256Of(data) }, data);
    h.runner.onFile(S, { run: RUN, job: 1, index: 0, sha256: sha256Of(Buffer.from('other')) }, data);
    // A shared file where the spec names one per job.
    h.runner.onFile(S, { run: RUN, job: null, index: 0, sha256: sha256Of(data) }, data);
    expect([h.stats.wrongSender, h.stats.malformed]).toEqual([1, 2]);
    h.runner.onJobs(S, { run: RUN, jobs: [entry(1)] });
    expect(h.started).toEqual([]);
    expect(h.sent.find((m) => m.type === 'jb.full')?.body).toMatchObject({ why: 'missing-file' });
  });
});
