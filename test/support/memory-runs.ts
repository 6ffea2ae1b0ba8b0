/**
 * A RunStore in memory (src/p2p/jobs/types.ts), for the simulation tier: what src/storage/runs.ts
 * keeps in SQLite, with the same answers. Given a SimDisk, each write asks it first: a write the
 * disk refuses changes nothing and says why, as the SQLite store does.
 */
import type {
  JobInput,
  JobResult,
  KeptRun,
  RunId,
  RunState,
  RunStore,
  RunView,
  StoreWrite,
} from '../../src/p2p/jobs/types.js';
import { writeFailure } from '../../src/storage/health.js';
import type { SimDisk } from './sim-disk.js';

interface Entry {
  run: KeptRun;
  jobs: Map<number, JobInput>;
  results: Map<number, JobResult>;
  /** Insertion order, as SQLite's rowid. */
  order: number;
}

const failed = (f: StoreWrite['failed']): StoreWrite => ({ first: false, failed: f });
const wrote = (first: boolean): StoreWrite => ({ first, failed: null });

export class MemoryRunStore implements RunStore {
  readonly runs = new Map<RunId, Entry>();
  private order = 0;

  constructor(private readonly disk: SimDisk | null = null) {}

  openRun(run: KeptRun, jobs: JobInput[]): StoreWrite {
    if (this.runs.has(run.spec.run)) return wrote(false);
    const f = this.write(JSON.stringify(run).length + jobs.length * 16);
    if (f) return failed(f);
    this.runs.set(run.spec.run, {
      run: structuredClone(run),
      jobs: new Map(jobs.map((j) => [j.job, { ...j }])),
      results: new Map(),
      order: this.order++,
    });
    return wrote(true);
  }

  finish(r: JobResult): StoreWrite {
    const e = this.runs.get(r.run);
    if (!e || !e.jobs.has(r.job) || e.results.has(r.job)) return wrote(false);
    const f = this.write(r.stdout.length + r.stderr.length + 200);
    if (f) return failed(f);
    e.results.set(r.job, { ...r, stdout: r.stdout.slice(), stderr: r.stderr.slice() });
    return wrote(true);
  }

  setState(run: RunId, state: RunState, collectedAtWallMs: number | null): StoreWrite {
    const e = this.runs.get(run);
    if (!e) return wrote(false);
    const f = this.write(32);
    if (f) return failed(f);
    e.run.state = state;
    e.run.collectedAtWallMs = collectedAtWallMs;
    return wrote(true);
  }

  get(run: RunId): KeptRun | undefined {
    const e = this.runs.get(run);
    return e && structuredClone(e.run);
  }

  view(run: RunId): RunView | undefined {
    const e = this.runs.get(run);
    return e && viewOf(e);
  }

  openRuns(limit: number): Array<{ run: KeptRun; open: JobInput[] }> {
    return [...this.runs.values()]
      .filter((e) => e.run.state === 'open')
      .sort((a, b) => a.order - b.order)
      .slice(0, limit)
      .map((e) => ({
        run: structuredClone(e.run),
        open: [...e.jobs.values()].filter((j) => !e.results.has(j.job)).sort((a, b) => a.job - b.job),
      }));
  }

  results(
    run: RunId,
    afterJob: number,
    bytesMax: number,
    limit: number,
  ): { results: JobResult[]; inputs: Array<string | null>; more: boolean } {
    const e = this.runs.get(run);
    if (!e) return { results: [], inputs: [], more: false };
    const all = [...e.results.values()].filter((r) => r.job > afterJob).sort((a, b) => a.job - b.job);
    const out: JobResult[] = [];
    let bytes = 0;
    for (const r of all) {
      const size = r.stdout.length + r.stderr.length;
      if (out.length >= limit || (out.length > 0 && bytes + size > bytesMax)) break;
      out.push(r);
      bytes += size;
    }
    const inputs = out.map((r) => e.jobs.get(r.job)?.input ?? null);
    return { results: out, inputs, more: out.length < all.length };
  }

  list(offset: number, limit: number): RunView[] {
    return [...this.runs.values()]
      .sort((a, b) => b.order - a.order)
      .slice(offset, offset + limit)
      .map(viewOf);
  }

  count(): number {
    return this.runs.size;
  }

  prune(collectedBeforeWallMs: number, keep: number): number {
    const collected = [...this.runs.values()]
      .filter((e) => e.run.collectedAtWallMs !== null)
      .sort((a, b) => a.run.collectedAtWallMs! - b.run.collectedAtWallMs!);
    let n = 0;
    for (const e of collected)
      if (e.run.collectedAtWallMs! < collectedBeforeWallMs || this.runs.size > keep) {
        this.runs.delete(e.run.spec.run);
        n++;
      }
    return n;
  }

  /** The failure of a write of `bytes` on the disk, or null when it went through. */
  private write(bytes: number): StoreWrite['failed'] {
    const error = this.disk?.write(bytes).error;
    return error ? writeFailure('runs.db', error).kind : null;
  }
}

function viewOf(e: Entry): RunView {
  let done = 0;
  let failedJobs = 0;
  for (const r of e.results.values()) {
    if (r.cancelled) continue;
    if (r.started && r.exit === 0 && r.signal === 0) done++;
    else failedJobs++;
  }
  return {
    run: e.run.spec.run,
    kind: e.run.spec.kind,
    words: [...e.run.spec.words],
    submitterName: e.run.submitterName,
    createdAtWallMs: e.run.createdAtWallMs,
    state: e.run.state,
    jobs: e.jobs.size,
    done,
    failed: failedJobs,
  };
}
