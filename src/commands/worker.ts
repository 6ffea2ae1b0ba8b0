import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Flags } from '@oclif/core';
import chalk from 'chalk';
import { PeerCommand } from '../cli/base.js';
import { networkFlags } from '../cli/flags.js';
import { networkSettings, startPeer, stderrHealth, untilSignal } from '../cli/peer.js';
import { eventJson, eventLog, paintName, type EventLog } from '../cli/output.js';
import { logTaskPeer } from '../cli/tasks.js';
import { installCoordination, priorityFlag } from '../cli/coordination.js';
import { WORKER_CONCURRENCY_MAX, WorkerPool } from '../cli/worker-pool.js';
import { OpExecutor, WorkerExecutor } from '../cli/run/ops.js';
import { UsageError } from '../cli/network.js';
import { ProcessExecutor } from '../cli/run/exec.js';
import { clearOrphans, killOrphans, type Orphans } from '../cli/run/process-group.js';
import { installJobs } from '../cli/run/install.js';
import { logKeeper } from '../cli/run/detached.js';
import { JobProcs } from '../storage/job-procs.js';
import { RunsStore } from '../storage/runs.js';
import { ReliableDelivery } from '../p2p/reliable/index.js';
import { JOB_OUTPUT_BYTES_MAX, JOB_SLOTS_MAX } from '../p2p/jobs/index.js';
import type { PeerEvent } from '../p2p/protocol.js';
import type { PeerNode } from '../p2p/node.js';

/** Why a worker refuses --allow-exec without a key (peer run says the same). */
const EXEC_NEEDS_KEY =
  '--allow-exec runs commands only in a keyed group: without --key-file any host on the LAN could run code on this machine; make a key with peer keygen and pass --key-file here and to peer run';

export default class Worker extends PeerCommand {
  static override summary =
    'Run a peer that executes the tasks of peer task and, with --allow-exec, the commands of peer run.';
  static override description =
    "Joins the group as a worker: it advertises its slots and the jobs it holds in its heartbeats (tags js and jl), runs the built-in ops of peer task (sum, fibonacci, sort, primes) in --concurrency worker threads (so the peer stays responsive), with or without a key (they run no code from the network), and stands in the coordinator election. Whichever peer is elected keeps the tasks and the detached runs of peer run --detach (docs/run.md): it stores them in its SQLite, places their jobs on the workers' free slots, places a dead worker's jobs again and records every result once. Ctrl-C leaves gracefully; its unfinished jobs go to other workers. See docs/tasks.md.\n\nWith --allow-exec (a keyed group only) it also runs the shell commands of peer run, --slots at once, each in a fresh directory under --job-dir that is removed after, as its own process group: a cancelled, timed-out or finished job is killed with everything it started (SIGTERM, then SIGKILL after the run's grace). A worker killed -9 kills what its jobs left running when it starts again.";
  static override examples = [
    '<%= config.bin %> worker --interface 127.0.0.1 --name w1',
    '<%= config.bin %> worker --interface 127.0.0.1 --name w2 --concurrency 2 --log-format json',
    '<%= config.bin %> worker --key-file group.key --allow-exec --slots 4',
  ];
  static override flags = {
    ...networkFlags,
    concurrency: Flags.integer({
      summary: `Worker threads for the ops of peer task (1 to ${WORKER_CONCURRENCY_MAX}; default: --slots, else the CPU count, at most ${WORKER_CONCURRENCY_MAX}).`,
      min: 1,
      max: WORKER_CONCURRENCY_MAX,
    }),
    'allow-exec': Flags.boolean({
      summary:
        'Run the shell commands of peer run (needs --key-file: anyone holding the key can run code here).',
      default: false,
    }),
    slots: Flags.integer({
      summary: `Jobs at once, ops of peer task and commands of peer run (1 to ${JOB_SLOTS_MAX}; default: --concurrency, else the CPU count).`,
      min: 1,
      max: JOB_SLOTS_MAX,
    }),
    'job-dir': Flags.string({
      summary: "Where each job's directory is made (default: <tmpdir>/peer-jobs-<name>).",
    }),
    shell: Flags.string({
      summary: 'The shell that runs each command, as <shell> -c COMMAND.',
      default: '/bin/sh',
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
    const allowExec = flags['allow-exec'];
    if (allowExec && !settings.keys) throw new UsageError(EXEC_NEEDS_KEY);
    if (allowExec) checkShell(flags.shell);
    // --slots and --concurrency each default to the other: one number sizes both for most users.
    const slots = flags.slots ?? flags.concurrency ?? Math.min(JOB_SLOTS_MAX, os.availableParallelism());
    const concurrency = flags.concurrency ?? Math.min(WORKER_CONCURRENCY_MAX, slots);
    const jobDir = path.resolve(
      flags['job-dir'] ?? path.join(os.tmpdir(), `peer-jobs-${encodeURIComponent(settings.name)}`),
    );
    const json = flags['log-format'] === 'json';
    let ops: OpExecutor | null = null;
    const pool = new WorkerPool({
      concurrency,
      // The runner starts at most --slots jobs at once: they wait for a thread here.
      queueMax: slots,
      onDone: (id, outcome) => {
        // Outside the node's guard (a thread's message): a bug here must not take the peer down.
        try {
          ops?.done(id, outcome);
        } catch (err) {
          process.stderr.write(`peer: could not report job ${id}: ${(err as Error).message}\n`);
        }
      },
    });
    let peer;
    // Run records that cannot be written (a full disk) are said once, and runs refused meanwhile.
    const health = stderrHealth();
    // Ctrl-C and SIGTERM caught from before the start (see untilSignal, cli/peer.ts).
    const stopped = untilSignal();
    try {
      peer = await startPeer(settings, {
        health,
        // Before the node starts: a job taken first would look like an orphan of the last run.
        open: (store) => {
          const ledger = store ? JobProcs.of(store, health) : null;
          return { ledger, orphans: ledger && killOrphans(ledger) };
        },
        install: (node, store, opened) => {
          const { election } = installCoordination(node, { priority: flags.priority, candidate: true });
          const commands = new ProcessExecutor({
            slots,
            allowExec,
            jobDir,
            shell: flags.shell,
            outputBytesMax: JOB_OUTPUT_BYTES_MAX,
            ledger: opened.ledger,
          });
          ops = new OpExecutor(slots, pool);
          const reliable = node.install((ctx, n) => new ReliableDelivery(ctx, n.membership));
          const executor = new WorkerExecutor(ops, commands);
          // Whichever worker is elected keeps the detached runs; its store follows the keeper meanwhile.
          const jobs = installJobs(node, reliable, {
            keyed: Boolean(settings.keys),
            executor,
            view: election,
            store: store ? RunsStore.of(store, health) : undefined,
          });
          return { ...opened, commands, jobs };
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
      { concurrency, priority: flags.priority, slots, allowExec },
      `${paintName(node.name)} (${node.id.slice(0, 8)}) worker with ${concurrency} threads${allowExec ? ` and ${slots} command slots` : ''} up at ${node.address} in ${group}`,
    );
    logJobs(log, node);
    logKeeper(log, node);
    const { commands, jobs, ledger, orphans } = peer.installed;
    if (ledger && orphans) void reportOrphans(log, ledger, orphans);
    const signal = await stopped;
    // Jobs first, while the node still carries their results: killed as groups, directories removed.
    jobs.runner?.shutdown();
    await commands.close();
    await peer.stop();
    await pool.close();
    log({ event: 'down', at: new Date().toISOString(), signal }, `left the group (${signal})`);
  }
}

/** The shell must be an executable file: said at start, not by every job failing. */
function checkShell(shell: string): void {
  try {
    fs.accessSync(shell, fs.constants.X_OK);
    if (!fs.statSync(shell).isFile()) throw new Error('not a file');
  } catch {
    throw new UsageError(
      `--shell ${shell} is not an executable file; pass the path of a shell (default /bin/sh)`,
    );
  }
}

/** The log lines of the jobs this worker runs: started, killed, ended. */
function logJobs(log: EventLog, node: PeerNode): void {
  node.on((e) => {
    const line = describeJobEvent(e);
    if (line) log(eventJson(e, Date.now()), line);
  });
}

/** The human line of a job event, or null for other events (exported for its test). */
export function describeJobEvent(e: PeerEvent): string | null {
  const job = (k: { run: string; job: number; attempt: number }) =>
    `job ${chalk.gray(k.run.slice(0, 8))}/${k.job}${k.attempt > 1 ? ` (attempt ${k.attempt})` : ''}`;
  switch (e.kind) {
    case 'job-started':
      return `${chalk.blue('start')}   ${job(e)} for ${paintName(e.submitterName)}`; // paintName escapes
    case 'job-killed':
      return `${chalk.yellow('kill')}    ${job(e)}: ${e.why}`;
    case 'job-ended': {
      const how = e.signal !== 0 ? `signal ${e.signal}` : `exit ${e.exit}`;
      return `${e.exit === 0 ? chalk.green('ended') : chalk.red('ended')}   ${job(e)}, ${how}`;
    }
    default:
      return null;
  }
}

/** Says what the last run of this worker left behind, once it is cleared (nothing when it left nothing). */
async function reportOrphans(log: EventLog, ledger: JobProcs, orphans: Orphans): Promise<void> {
  if (orphans.groups.length === 0 && orphans.damaged === 0) return;
  const r = await clearOrphans(ledger, orphans);
  const stuck = r.stuck > 0 ? `; ${r.stuck} would not die (they keep their directories)` : '';
  const damaged = r.damaged > 0 ? `; ${r.damaged} damaged record(s) in the job table skipped` : '';
  log(
    { event: 'orphans', killed: r.killed, removed: r.removed, stuck: r.stuck, damaged: r.damaged },
    `${chalk.yellow('cleanup')} jobs left by the last run: ${r.killed} killed, ${r.removed} directories removed${stuck}${damaged}`,
  );
}
