/**
 * Runs forger seeds (forger-group.ts) in a worker thread, so that a seed whose simulation never
 * returns (a protocol looping through 2^53 values in one handler) is stopped at a deadline and
 * reported with what it was doing, instead of hanging the test run. Virtual time cannot catch
 * such a loop: it never gives control back to the scheduler.
 *
 * The module is both sides: imported by a test it exports ForgerWorker; loaded in the worker
 * (through tsx, as vitest's transform does not reach worker threads) it serves seeds.
 */
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import type { RunOptions, SeedOutcome } from './forger-group.js';

type Request = { seed: number; opts: Omit<RunOptions, 'progress'> };
type Reply = { kind: 'progress'; what: string } | { kind: 'outcome'; outcome: SeedOutcome };

if (!isMainThread && parentPort) {
  const port = parentPort;
  const { runForgerSeed } = await import('./forger-group.js');
  port.on('message', (r: Request) => {
    void runForgerSeed(r.seed, {
      ...r.opts,
      progress: (what) => port.postMessage({ kind: 'progress', what } satisfies Reply),
    }).then((outcome) => port.postMessage({ kind: 'outcome', outcome } satisfies Reply));
  });
}

/** One worker thread running seeds one at a time; a seed past its deadline ends the thread. */
export class ForgerWorker {
  private worker: Worker | null = null;

  /** The seed's outcome, or a failure saying what it was doing when `deadlineMs` of wall time ran out. */
  run(seed: number, opts: Omit<RunOptions, 'progress'>, deadlineMs: number): Promise<SeedOutcome> {
    const worker = (this.worker ??= spawn());
    return new Promise((resolve, reject) => {
      let last = 'starting';
      const stop = (outcome: SeedOutcome | null, err?: Error) => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('error', onError);
        if (err) reject(err);
        else resolve(outcome!);
      };
      const timer = setTimeout(() => {
        // The simulation never returned: a handler or a tick loops. The thread is no use any more.
        void worker.terminate();
        this.worker = null;
        stop({
          seed,
          failures: [`seed ${seed} did not finish within ${deadlineMs} ms of wall time; last: ${last}`],
          sent: 0,
          accepted: {},
        });
      }, deadlineMs);
      const onMessage = (r: Reply) => {
        if (r.kind === 'progress') last = r.what;
        else stop(r.outcome);
      };
      const onError = (err: Error) => {
        this.worker = null;
        stop(null, err);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.postMessage({ seed, opts } satisfies Request);
    });
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
    this.worker = null;
  }
}

/** A worker thread that loads this very module through tsx. */
function spawn(): Worker {
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api')).href;
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); });`;
  return new Worker(code, { eval: true });
}
