/**
 * The body of one worker thread of `peer worker`: runs one task at a time for the pool
 * (worker-pool.ts). runTask validates and never throws, so only a real crash (out of memory, a
 * bug in V8) ends this thread; the pool replaces it.
 */
import { parentPort } from 'node:worker_threads';
import { runTask } from '../p2p/jobs/ops.js';

parentPort?.on('message', (m: { id: string; op: unknown; args: unknown }) => {
  parentPort!.postMessage({ id: m.id, outcome: runTask(m.op, m.args) });
});
// The pool times a task from here: starting a thread can take longer than a short task's bound.
parentPort?.postMessage({ ready: true });
