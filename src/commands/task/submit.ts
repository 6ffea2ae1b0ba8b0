import { Args, Flags } from '@oclif/core';
import chalk from 'chalk';
import { networkFlags } from '../../cli/flags.js';
import { UsageError } from '../../cli/network.js';
import { networkSettings, startPeer } from '../../cli/peer.js';
import {
  installTasks,
  nextEvent,
  TaskCommand,
  TaskFailure,
  timeoutFlag,
  type TaskPeer,
} from '../../cli/tasks.js';
import type { PeerEventOf } from '../../p2p/protocol.js';
import { parseTaskArgs, TASK_OPS, validateTask } from '../../p2p/task-ops.js';

export interface SubmitResult {
  id: string;
  op: string;
  args: number[];
  /** accepted: the coordinator holds it (without --wait); done or failed: its outcome. */
  state: 'accepted' | 'done' | 'failed';
  result?: string;
  error?: string;
  worker?: string | null;
  durationMs?: number | null;
}

export default class TaskSubmit extends TaskCommand {
  static override summary = 'Submit a task to the group and (with --wait) print its result.';
  static override description = `Operations: sum N..., fibonacci N (0-2000), sort N..., primes N (counts primes below N, up to 200000000). The arguments are checked here first, so bad input fails at once with one line. The task goes to the elected coordinator, which assigns it to the least-loaded worker; it is re-sent until accepted, and re-sent to a new coordinator if the old one fails. Without --wait the command ends once the task is accepted. Exit codes: 0 done (or accepted), 1 the task failed or nobody answered in time, 2 bad input. Put negative numbers after --: peer task submit sum -- 1 -2.`;
  static override examples = [
    '<%= config.bin %> task submit sum 1 2 3 --wait --interface 127.0.0.1',
    '<%= config.bin %> task submit fibonacci 100 --wait --json',
    '<%= config.bin %> task submit primes 10000000 --wait',
    '<%= config.bin %> task submit sort --wait -- 3 -1 2',
  ];
  static override enableJsonFlag = true;
  static override strict = false;
  static override args = {
    op: Args.string({ description: `Operation: ${TASK_OPS.join(', ')}.`, required: true }),
  };
  static override flags = {
    ...networkFlags,
    wait: Flags.boolean({ summary: 'Wait for the result and print it.', default: false }),
    timeout: timeoutFlag(30_000),
  };

  async run(): Promise<SubmitResult> {
    const { args, argv, flags } = await this.parse(TaskSubmit);
    const op = args.op;
    const words = (argv as string[]).slice(1);
    // Bad input fails here, before any socket is opened.
    const parsed = parseTaskArgs(op, words);
    if (!parsed.ok) throw new UsageError(parsed.error);
    const valid = validateTask(op, parsed.args);
    if (!valid.ok) throw new UsageError(valid.error);

    const settings = networkSettings(flags, flags.name ?? `task-client-${process.pid}`);
    let proto: TaskPeer | null = null;
    const peer = await startPeer(settings, {
      observer: true,
      install: (node) => {
        proto = installTasks(node, { candidate: false });
      },
    });
    const { tasks, election } = proto as unknown as TaskPeer;
    const { node } = peer;
    try {
      let id = '';
      // Subscribe before submitting: a local answer could come at once.
      const accepted = nextEvent(
        node,
        (e): e is PeerEventOf<'task-accepted'> | PeerEventOf<'task-result'> =>
          (e.kind === 'task-accepted' || e.kind === 'task-result') && e.id === id,
        flags.timeout,
      );
      const result = nextEvent(
        node,
        (e): e is PeerEventOf<'task-result'> => e.kind === 'task-result' && e.id === id,
        flags.timeout,
      );
      id = tasks.submit(valid.op, valid.args);
      const first = await accepted;
      if (!first) {
        const coord = election.coordinator();
        throw new TaskFailure(
          coord
            ? `the coordinator ${node.membership.get(coord)?.name ?? coord} did not accept task ${id} within ${flags.timeout} ms; try again or raise --timeout`
            : `no coordinator answered within ${flags.timeout} ms: start a worker (peer worker) on this group, or check --interface, --group and --port`,
          { id, op: valid.op, args: valid.args },
        );
      }
      if (!flags.wait && first.kind === 'task-accepted') {
        this.log(`task ${id} accepted (${valid.op})`);
        return { id, op: valid.op, args: valid.args, state: 'accepted' };
      }
      const r = first.kind === 'task-result' ? first : await result;
      if (!r)
        throw new TaskFailure(
          `task ${id} was accepted but no result came within ${flags.timeout} ms; see peer task list`,
          { id, op: valid.op, args: valid.args, state: 'accepted' },
        );
      const out: SubmitResult = {
        id,
        op: valid.op,
        args: valid.args,
        state: r.ok ? 'done' : 'failed',
        ...(r.ok ? { result: r.value } : { error: r.value }),
        worker: r.workerName ?? r.worker,
        durationMs: r.durationMs,
      };
      if (!r.ok)
        throw new TaskFailure(
          `task ${id} (${valid.op}) failed on ${out.worker ?? 'the coordinator'}: ${r.value}`,
          { ...out },
        );
      this.log(
        `${r.value}  ${chalk.gray(`(${valid.op}, task ${id.slice(0, 8)}, worker ${out.worker ?? '?'}, ${r.durationMs ?? '?'} ms)`)}`,
      );
      return out;
    } finally {
      await peer.stop();
    }
  }
}
