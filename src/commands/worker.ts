import os from 'node:os';
import { Flags } from '@oclif/core';
import { PeerCommand } from '../cli/base.js';
import { networkFlags } from '../cli/flags.js';
import { networkSettings, startPeer, stderrHealth, untilSignal } from '../cli/peer.js';
import { eventLog, paintName } from '../cli/output.js';
import { installTaskPeer, logTaskPeer, type TaskPeer } from '../cli/tasks.js';
import { priorityFlag } from '../cli/coordination.js';
import { WorkerPool } from '../cli/worker-pool.js';
import { WORKER_CONCURRENCY_MAX } from '../p2p/tasks/index.js';
import { TaskStore } from '../storage/tasks.js';

export default class Worker extends PeerCommand {
  static override summary = 'Run a peer that executes distributed tasks in worker threads.';
  static override description =
    "Joins the group as a worker: it advertises its threads and load in its heartbeats (tags wk and ld), runs the tasks the coordinator assigns in --concurrency worker threads (so the peer stays responsive), and stands in the coordinator election. Whichever worker is elected also coordinates: it assigns tasks to the least-loaded worker, reassigns a dead worker's tasks and records every task in its SQLite. Ctrl-C leaves gracefully; its unfinished tasks go to other workers. See docs/tasks.md.";
  static override examples = [
    '<%= config.bin %> worker --interface 127.0.0.1 --name w1',
    '<%= config.bin %> worker --interface 127.0.0.1 --name w2 --concurrency 2 --log-format json',
  ];
  static override flags = {
    ...networkFlags,
    concurrency: Flags.integer({
      summary: `Worker threads (1 to ${WORKER_CONCURRENCY_MAX}; default: the CPU count).`,
      min: 1,
      max: WORKER_CONCURRENCY_MAX,
    }),
    ...priorityFlag,
    'log-format': Flags.string({
      summary: 'Log lines as text or as JSON objects.',
      options: ['text', 'json'],
      default: 'text',
    }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Worker);
    const settings = networkSettings(flags);
    const concurrency = flags.concurrency ?? Math.min(WORKER_CONCURRENCY_MAX, os.availableParallelism());
    const json = flags['log-format'] === 'json';
    let proto: TaskPeer | null = null;
    const pool = new WorkerPool({
      concurrency,
      onDone: (id, outcome) => {
        // Outside the node's guard (a thread's message): a bug here must not take the peer down.
        try {
          proto?.tasks.complete(id, outcome);
        } catch (err) {
          process.stderr.write(`peer: could not report task ${id}: ${(err as Error).message}\n`);
        }
      },
    });
    let peer;
    // Task records that cannot be written (a full disk) are said once, and tasks refused meanwhile.
    const health = stderrHealth();
    try {
      peer = await startPeer(settings, {
        health,
        install: (node, store) => {
          proto = installTaskPeer(node, {
            candidate: true,
            priority: flags.priority,
            log: store ? TaskStore.of(store, health) : undefined,
            executor: pool,
          });
        },
      });
    } catch (err) {
      await pool.close();
      throw err;
    }
    const { node } = peer;
    const log = eventLog((l) => this.log(l), json);
    const group = `${settings.group}:${settings.port}`;
    logTaskPeer(
      log,
      node,
      group,
      { concurrency, priority: flags.priority },
      `${paintName(node.name)} (${node.id.slice(0, 8)}) worker with ${concurrency} threads up at ${node.address} in ${group}`,
    );
    const signal = await untilSignal();
    await peer.stop();
    await pool.close();
    log({ event: 'down', at: new Date().toISOString(), signal }, `left the group (${signal})`);
  }
}
