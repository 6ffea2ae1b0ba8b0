/**
 * The submitter of bench/tasks.ts, run as its own process inside a network namespace:
 *   node --import tsx bench/tasks-driver.ts '{"interface":"10.77.3.5","port":47781,"op":"sum","count":10000,"out":"/tmp/x.json"}'
 *
 * It is exactly what `peer task submit --repeat N --wait` runs below the command (startPeer as an
 * observer, installTaskPeer as a non-candidate, Tasks.submit N times at once, one `task-result`
 * event per task), with two differences the bench needs: every task gets its own arguments
 * (`sum i 1`, so a result can be checked against its task), and the ids with their results are
 * written to `out` so the coordinator's log can be checked id by id.
 *
 * stdout, one JSON object per line: {"ev":"ready"} once a coordinator is known, {"ev":"progress",
 * "done":N} every PROGRESS_MS, {"ev":"end",...} at the end (the full per-id report is in `out`).
 */
import fs from 'node:fs';
import os from 'node:os';
import { startPeer } from '../src/cli/peer.js';
import { installTaskPeer } from '../src/cli/tasks.js';
import { DEFAULT_GROUP } from '../src/p2p/config.js';

interface Options {
  interface: string;
  port: number;
  op: 'sum' | 'primes';
  count: number;
  /** primes: the n of every task. */
  n?: number;
  out: string;
  timeoutMs?: number;
  profile: 'lan' | 'local';
}

/** How often the driver reports how many results it has (the bench kills a worker on it). */
const PROGRESS_MS = 50;
const COORDINATOR_WAIT_MS = 30_000;
const TIMEOUT_MS_DEFAULT = 240_000;

const opts = JSON.parse(process.argv[2] ?? '{}') as Options;
const out = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);

const peer = await startPeer(
  {
    name: `bench-submitter-${process.pid}`,
    group: DEFAULT_GROUP,
    port: opts.port,
    interface: opts.interface,
    ttl: 1,
    dataDir: os.tmpdir(),
    profile: opts.profile,
    keys: null,
  },
  {
    observer: true,
    install: (node) => installTaskPeer(node, { candidate: false, observer: true }),
  },
);
const {
  node,
  installed: { tasks, election },
} = peer;

const deadline = Date.now() + COORDINATOR_WAIT_MS;
while (!election.coordinator() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
if (!election.coordinator()) {
  out({ ev: 'error', error: 'no coordinator' });
  await peer.stop();
  process.exit(1);
}
out({ ev: 'ready' });

interface Got {
  args: number[];
  results: string[];
  ok: boolean[];
  worker: string | null;
}
const byId = new Map<string, Got>();
let done = 0;
let lastAt = 0;
let resolveAll: () => void = () => {};
const all = new Promise<void>((r) => (resolveAll = r));
node.on((e) => {
  if (e.kind !== 'task-result') return;
  const g = byId.get(e.id);
  if (!g) return;
  g.results.push(e.value);
  g.ok.push(e.ok);
  g.worker = e.workerName ?? e.worker;
  if (g.results.length === 1) done++;
  lastAt = Date.now();
  if (done === opts.count) resolveAll();
});

const started = Date.now();
for (let i = 0; i < opts.count; i++) {
  const args = opts.op === 'sum' ? [i, 1] : [opts.n ?? 1_000_000];
  byId.set(tasks.submit(opts.op, args), { args, results: [], ok: [], worker: null });
}
const progress = setInterval(() => out({ ev: 'progress', done }), PROGRESS_MS);
const timer = setTimeout(resolveAll, opts.timeoutMs ?? TIMEOUT_MS_DEFAULT);
await all;
clearTimeout(timer);
clearInterval(progress);
const elapsedMs = (lastAt || Date.now()) - started;
fs.writeFileSync(opts.out, JSON.stringify(Object.fromEntries(byId)));
out({ ev: 'end', count: opts.count, done, elapsedMs });
await peer.stop();
process.exit(0);
