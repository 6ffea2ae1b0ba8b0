import { Errors, Flags, type Interfaces } from '@oclif/core';
import { EXIT_INTERRUPTED, PeerCommand, oneLine } from '../cli/base.js';
import { networkFlags } from '../cli/flags.js';
import { networkSettings, startPeer } from '../cli/peer.js';
import { durationMs } from '../cli/run/duration.js';
import { inputLines, JobFeed, parseOn, resolveOn } from '../cli/run/input.js';
import { installJobs } from '../cli/run/install.js';
import { answered, attachRun, countsOf, installKeeperClient } from '../cli/run/detached.js';
import { Joblog } from '../cli/run/joblog.js';
import { RunProgress } from '../cli/run/progress-bar.js';
import { summaryJson, summaryLine, type RunSummary } from '../cli/run/render.js';
import {
  discoverWorkers,
  EXIT_ERROR,
  exitForFailures,
  RunError,
  RunSession,
  type RunEnd,
} from '../cli/run/session.js';
import { RunOutput } from '../cli/run/sink.js';
import { TransferFiles } from '../cli/run/transfer-files.js';
import { escapeForTerminal } from '../cli/sanitize.js';
import { commandFor, problemOf } from '../p2p/jobs/command.js';
import {
  JOB_ATTEMPTS_MAX,
  JOB_GRACE_MS_MAX,
  JOB_GRACE_MS_MIN,
  JOB_KILL_GRACE_MS,
  JOB_TIMEOUT_MS_MAX,
  RUN_JOBS_MAX,
  RUN_KEPT_MS,
} from '../p2p/jobs/limits.js';
import { isRunId } from '../p2p/jobs/messages.js';
import type { RunCounts, RunId, RunOptions, RunSpec, RunView } from '../p2p/jobs/types.js';
import { ReliableDelivery } from '../p2p/reliable/index.js';

/** Why `peer run` refuses an open group (peer worker refuses --allow-exec for the same reason). */
export const KEYED_ONLY =
  'commands run only in a keyed group: without --key-file any host on the LAN could run code on the workers; make a key with peer keygen and pass --key-file here and to every worker';
/** The longest --discover (a minute: workers answer a probe within milliseconds on a LAN). */
const DISCOVER_MS_MAX = 60_000;

export const RUN_EXIT_STATUS_HELP = [
  '0       every job ended with exit status 0',
  '1-100   that many jobs failed (exit status or signal not 0, or killed by --timeout)',
  '101     more than 100 jobs failed',
  '130     cancelled by Ctrl-C (every job was killed on its worker); --attach: Ctrl-C, or the run was cancelled',
  '255     any other error: bad input or flags, an open group, no worker that runs commands',
  "(GNU parallel's exit status; other peer commands exit 1 and 2)",
].join('\n');

export default class RunCommand extends PeerCommand {
  static override summary =
    'Run a command on the workers of a keyed group, once or once per input line (GNU parallel over the LAN).';
  static override description = `Jobs go to the workers (peer worker --allow-exec --key-file FILE) by free slots, without ssh. Each input line (--input FILE, or stdin when it is piped and the command has {}) is one job: {} in the command is replaced by the line, shell-quoted; without {} the line is appended. Without input the command runs once; --on all runs it once on every worker (as pdsh), --on w1,w2 on those.

Each job runs by /bin/sh -c on its worker, in a fresh directory removed after it, as its own process group: a job killed (Ctrl-C, --timeout) is killed with every process it started. A worker that dies has its jobs started again elsewhere with a higher PEER_JOB_ATTEMPT and PEER_FENCING_TOKEN: a command can run more than once (at least once), its result is recorded once. See docs/run.md.

Output: each job's stdout and stderr printed whole when it ends, in the order jobs end (--line-buffer: lines as they come; --tag: each line after worker:seq and a TAB). To a pipe or a file the bytes are exact; on a terminal what the workers send is shown escaped (no escape sequence reaches the terminal). --json prints one object per job then a summary, nothing else on stdout.

--joblog FILE writes GNU parallel's joblog (+FILE appends); --resume skips the jobs it has, --resume-failed those that ended well.

--detach hands the run to the group and exits once it is stored, printing its id: the group's coordinator keeps it (and a new one takes it over if it dies), so it runs on without this command. peer run --attach ID prints its results as peer run would (they are kept until read to the end, then ${RUN_KEPT_MS / 86_400_000} days), peer run --cancel ID cancels it. A detached run prints output whole (no --line-buffer) and takes no --transfer or --return files.

Commands run only in a keyed group: without --key-file any host on the LAN could run code on the workers, so peer run refuses an open group.`;
  static override examples = [
    '<%= config.bin %> keygen --out group.key',
    '<%= config.bin %> worker --interface 127.0.0.1 --key-file group.key --allow-exec --slots 2',
    '<%= config.bin %> run --interface 127.0.0.1 --key-file group.key -- uname -n',
    'seq 1 10 | <%= config.bin %> run --interface 127.0.0.1 --key-file group.key -- echo job {}',
    '<%= config.bin %> run --interface 127.0.0.1 --key-file group.key --on all -- uptime',
    "seq 1 20 | <%= config.bin %> run --interface 127.0.0.1 --key-file group.key --tag --joblog jobs.log -- 'sleep 0.2; echo {}'",
    "seq 1 20 | <%= config.bin %> run --interface 127.0.0.1 --key-file group.key --joblog jobs.log --resume -- 'sleep 0.2; echo {}'",
    "seq 1 5 | <%= config.bin %> run --interface 127.0.0.1 --key-file group.key --json -- 'echo {}; exit $(( {} % 2 ))'",
    '<%= config.bin %> run --interface 127.0.0.1 --key-file group.key --timeout 1s --retries 2 -- sleep 5',
    "seq 1 100 | <%= config.bin %> run --interface 127.0.0.1 --key-file group.key --detach -- 'sleep 1; echo {}'",
    '<%= config.bin %> run --interface 127.0.0.1 --key-file group.key --attach 0123456789abcdef --joblog jobs.log',
    '<%= config.bin %> run --interface 127.0.0.1 --key-file group.key --cancel 0123456789abcdef',
  ];
  static override strict = false;
  /** Its own EXIT STATUS section (help.ts): GNU parallel's codes. */
  static exitStatus = RUN_EXIT_STATUS_HELP;
  static override flags = {
    ...networkFlags,
    input: Flags.string({ char: 'a', summary: 'One job per line of this file (- for stdin).' }),
    on: Flags.string({ summary: 'Run each job on every worker (all) or on these: --on w1,w2.' }),
    jobs: Flags.integer({
      summary: 'At most N jobs running at once over all workers (default: every free slot).',
      min: 1,
    }),
    timeout: Flags.string({ summary: 'Kill a job that runs longer: 90 (seconds), 1.5s, 500ms, 5m, 2h.' }),
    retries: Flags.integer({
      summary: 'Try a failed job up to N times in all, on another worker where one is free.',
      default: 1,
      min: 1,
      max: JOB_ATTEMPTS_MAX,
    }),
    'kill-grace': Flags.string({
      summary: 'From SIGTERM to SIGKILL when a job is killed.',
      default: `${JOB_KILL_GRACE_MS}ms`,
    }),
    joblog: Flags.string({ summary: "Write GNU parallel's joblog to FILE (+FILE appends)." }),
    resume: Flags.boolean({
      summary: 'With --joblog: skip the jobs the joblog has.',
      exclusive: ['resume-failed'],
    }),
    'resume-failed': Flags.boolean({
      summary: 'With --joblog: skip the jobs the joblog has with exit status 0; run the others again.',
    }),
    'line-buffer': Flags.boolean({
      summary: 'Print output lines as they come, rather than each job whole when it ends.',
      exclusive: ['json'],
    }),
    tag: Flags.boolean({
      summary: 'Print worker:seq and a TAB before each output line (with --line-buffer, seq alone).',
    }),
    transfer: Flags.string({
      summary:
        "Send this file (relative path, {} is the input line) into each job's directory; without {}, once per worker.",
      multiple: true,
      multipleNonGreedy: true,
    }),
    return: Flags.string({
      summary:
        "Bring this file (relative to the job's directory, {} is the input line) back here after each job.",
      multiple: true,
      multipleNonGreedy: true,
    }),
    env: Flags.string({
      summary: 'Pass NAME (its value here) or NAME=VALUE to every job.',
      multiple: true,
      multipleNonGreedy: true,
    }),
    json: Flags.boolean({
      summary: 'One JSON object per job, then a summary object; nothing else on stdout.',
    }),
    discover: Flags.string({
      summary: 'How long to wait for workers (--on waits all of it).',
      default: '1s',
    }),
    detach: Flags.boolean({
      summary:
        "Hand the run to the group's coordinator, print its id once it is stored, and exit: it runs on without this command.",
    }),
    attach: Flags.string({
      summary: 'Print the results of the detached run ID as they come, until it is over (no command).',
    }),
    cancel: Flags.string({ summary: 'Cancel the detached run ID on every worker (no command).' }),
  };

  private json = false;

  async run(): Promise<void> {
    const { flags, argv } = await this.parse(RunCommand);
    this.json = flags.json;
    const words = argv as string[];
    if (flags['key-file'] === undefined || flags.open) throw new RunError(KEYED_ONLY);
    const byId = flags.attach !== undefined ? '--attach' : flags.cancel !== undefined ? '--cancel' : null;
    if (byId) return this.byId(byId, flags, words);
    if (words.length === 0)
      throw new RunError('give the command after --: peer run [flags] -- CMD [ARGS...]');
    if ((flags.resume || flags['resume-failed']) && flags.joblog === undefined)
      throw new RunError('--resume and --resume-failed need --joblog FILE');
    if (flags.detach) detachable(flags);
    const graceMs = durationMs('--kill-grace', flags['kill-grace'], JOB_GRACE_MS_MIN, JOB_GRACE_MS_MAX);
    const spec: Omit<RunSpec, 'run'> = {
      kind: 'exec',
      words,
      env: (flags.env ?? []).map(envPair),
      detached: false,
      timeoutMs:
        flags.timeout === undefined ? null : durationMs('--timeout', flags.timeout, 1, JOB_TIMEOUT_MS_MAX),
      graceMs,
      output: flags['line-buffer'] ? 'line' : 'group',
      transfers: flags.transfer ?? [],
      returns: flags.return ?? [],
    };
    const problem = problemOf(spec);
    if (problem) throw new RunError(`the command cannot run: ${problem}`);
    const discoverMs = durationMs('--discover', flags.discover, 0, DISCOVER_MS_MAX);
    const on = flags.on === undefined ? null : parseOn(flags.on);
    const lines = inputLines(flags.input, words, process.stdin);
    const joblog =
      flags.joblog === undefined
        ? null
        : Joblog.open(
            flags.joblog,
            flags.resume ? 'resume' : flags['resume-failed'] ? 'resume-failed' : null,
          );
    const started = Date.now();
    const sink = new RunOutput({
      stdout: process.stdout,
      stderr: process.stderr,
      json: flags.json,
      lines: flags['line-buffer'],
      tag: flags.tag,
      joblog,
      commandOf: (input) => commandFor(words, input),
      returns: spec.returns,
      cwd: process.cwd(),
    });
    const feed = new JobFeed(lines, joblog?.skip ?? new Set());
    try {
      if (flags.detach) return await this.detach(flags, spec, feed, on, discoverMs);
      if (await feed.empty()) return this.finish(sink, feed.skipped, null, { kind: 'finished' }, started);
      const settings = networkSettings(flags, flags.name ?? `run-${process.pid}`);
      const peer = await startPeer(settings, {
        transient: true,
        install: (node) =>
          installJobs(
            node,
            node.install((ctx, n) => new ReliableDelivery(ctx, n.membership)),
            { keyed: true },
          ),
      });
      const jobs = peer.installed;
      const progress = new RunProgress({ json: flags.json });
      let session: RunSession | null = null;
      // Before the run starts nothing runs anywhere: Ctrl-C leaves at once.
      const interrupt = () =>
        session ? session.interrupt() : void peer.stop().finally(() => process.exit(EXIT_INTERRUPTED));
      process.on('SIGINT', interrupt);
      process.on('SIGTERM', interrupt);
      try {
        await discoverWorkers(jobs, {
          discoverMs,
          wholeWindow: on !== null && 'all' in on,
          names: on !== null && 'names' in on ? on.names : null,
        });
        const pins = on === null ? null : resolveOn(on, jobs.workers());
        feed.pins = pins;
        const opts: RunOptions = {
          retries: flags.retries,
          maxRunning: flags.jobs ?? null,
          workers: on === null ? null : 'all' in on ? 'all' : pins,
          files: new TransferFiles(process.cwd()),
        };
        session = new RunSession(jobs, (l) => peer.node.on(l), feed, sink, graceMs);
        const s = session;
        progress.start(() => ({
          counts: s.counts() ?? emptyCounts(),
          done: sink.recorded,
          failed: sink.failed,
        }));
        const end = await session.run(spec, opts);
        progress.stop();
        return this.finish(sink, feed.skipped, s, end, started);
      } finally {
        progress.stop();
        process.off('SIGINT', interrupt);
        process.off('SIGTERM', interrupt);
        await peer.stop();
      }
    } finally {
      joblog?.close();
    }
  }

  /**
   * --detach: every job handed to the keeper at once (RUN_JOBS_MAX at most); prints the run's id
   * once it is stored there.
   */
  private async detach(
    flags: Flags,
    spec: Omit<RunSpec, 'run'>,
    feed: JobFeed,
    on: ReturnType<typeof parseOn> | null,
    discoverMs: number,
  ): Promise<void> {
    const settings = networkSettings(flags, flags.name ?? `run-${process.pid}`);
    const peer = await startPeer(settings, {
      transient: true,
      install: (node) => installKeeperClient(node, true),
    });
    try {
      const jobs = peer.installed;
      if (on !== null) {
        await discoverWorkers(jobs, {
          discoverMs,
          wholeWindow: 'all' in on,
          names: 'names' in on ? on.names : null,
        });
        feed.pins = resolveOn(on, jobs.workers());
      }
      const { jobs: list, ended } = await feed.take(RUN_JOBS_MAX + 1);
      if (list.length === 0) throw new RunError('the input has no lines: there is nothing to run');
      if (!ended || list.length > RUN_JOBS_MAX)
        throw new RunError(
          `a detached run has at most ${RUN_JOBS_MAX} jobs: split the input into several runs`,
        );
      const { detached: _detached, ...kept } = spec;
      const run = await answered(
        jobs.keeper.detach(kept, list, {
          retries: flags.retries,
          maxRunning: flags.jobs ?? null,
          workers: on === null ? null : 'all' in on ? 'all' : feed.pins,
        }),
      );
      if (this.json)
        process.stdout.write(`${JSON.stringify({ type: 'detached', run, jobs: list.length })}\n`);
      else {
        process.stdout.write(`${run}\n`);
        if (process.stderr.isTTY)
          process.stderr.write(
            `peer: ${list.length} jobs kept by the group; peer run --attach ${run} prints their results\n`,
          );
      }
    } finally {
      await peer.stop();
    }
  }

  /** --attach ID or --cancel ID. */
  private async byId(flag: '--attach' | '--cancel', flags: Flags, words: string[]): Promise<void> {
    const id = (flag === '--attach' ? flags.attach : flags.cancel)!;
    if (words.length > 0) throw new RunError(`${flag} ID takes no command: the run has its own`);
    if (!isRunId(id))
      throw new RunError(`${flag} needs a run id (16 hex digits, as peer run --detach printed it)`);
    if (flags.detach || (flag === '--attach' && flags.cancel !== undefined))
      throw new RunError('give one of --detach, --attach ID and --cancel ID');
    if (flags.resume || flags['resume-failed']) throw new RunError(`${flag} does not take --resume`);
    const settings = networkSettings(flags, flags.name ?? `run-${process.pid}`);
    const peer = await startPeer(settings, {
      transient: true,
      install: (node) => installKeeperClient(node, true),
    });
    try {
      const api = peer.installed.keeper;
      if (flag === '--cancel') return this.cancelled(await answered(api.cancelRun(id)));
      return await this.attach(id, flags, api);
    } finally {
      await peer.stop();
    }
  }

  private async attach(run: RunId, flags: Flags, api: Parameters<typeof attachRun>[0]): Promise<void> {
    const started = Date.now();
    let view: RunView | null = null;
    // --joblog FILE is (re)written only once the group has the run: a mistyped id keeps the log.
    let joblog: Joblog | null = null;
    const onView = (v: RunView) => {
      view = v;
      if (flags.joblog !== undefined) joblog ??= Joblog.open(flags.joblog, null);
    };
    const sink = new RunOutput({
      stdout: process.stdout,
      stderr: process.stderr,
      json: flags.json,
      lines: false,
      tag: flags.tag,
      joblog: flags.joblog === undefined ? null : { write: (r, command) => joblog?.write(r, command) },
      commandOf: (input) => commandFor(view?.words ?? [], input),
      returns: [],
      cwd: process.cwd(),
    });
    const stop = new AbortController();
    const interrupt = () => stop.abort();
    process.on('SIGINT', interrupt);
    process.on('SIGTERM', interrupt);
    const progress = new RunProgress({ json: flags.json });
    progress.start(() => ({
      counts: countsOf(view),
      done: sink.recorded,
      failed: sink.failed,
      runningKnown: false,
    }));
    try {
      const last = await attachRun(api, run, sink, onView, stop.signal);
      progress.stop();
      // Stopped watching (the run goes on), or the run was cancelled: 130, as Ctrl-C on peer run.
      const end: RunEnd =
        last === null || last.state === 'cancelled'
          ? { kind: 'interrupted', unconfirmed: 0 }
          : { kind: 'finished' };
      return this.finish(sink, 0, { runId: run, reassigned: 0 }, end, started);
    } finally {
      progress.stop();
      process.off('SIGINT', interrupt);
      process.off('SIGTERM', interrupt);
      (joblog as Joblog | null)?.close();
    }
  }

  private cancelled(v: RunView): void {
    if (this.json) process.stdout.write(`${JSON.stringify({ type: 'cancel', ...v })}\n`);
    else if (v.state === 'done')
      process.stdout.write(
        `run ${v.run} had ended already: ${v.done} ok, ${v.failed} failed of ${v.jobs} jobs\n`,
      );
    else
      process.stdout.write(
        `run ${v.run} cancelled on every worker: ${v.done + v.failed} of ${v.jobs} jobs had ended\n`,
      );
  }

  /** The summary (--json, or a line on a terminal) and the exit status. */
  private finish(
    sink: RunOutput,
    skipped: number,
    run: { runId: RunId | null; reassigned: number } | RunSession | null,
    end: RunEnd,
    started: number,
  ): void {
    const interrupted = end.kind === 'interrupted' || end.kind === 'left';
    const exit = interrupted ? EXIT_INTERRUPTED : exitForFailures(sink.failed);
    const summary: RunSummary = {
      run: run?.runId ?? null,
      jobs: sink.recorded,
      ok: sink.ok,
      failed: sink.failed,
      cancelled: sink.cancelled,
      skipped,
      reassigned: run instanceof RunSession ? (run.counts()?.reassigned ?? 0) : (run?.reassigned ?? 0),
      wallMs: Date.now() - started,
      exit,
    };
    if (this.json) process.stdout.write(`${summaryJson(summary)}\n`);
    else if (process.stderr.isTTY) process.stderr.write(`${summaryLine(summary)}\n`);
    if (end.kind === 'interrupted' && end.unconfirmed !== 0)
      process.stderr.write(
        `peer: ${end.unconfirmed < 0 ? 'some workers' : `${end.unconfirmed} worker(s)`} did not confirm their jobs were killed; they kill them once they see this run gone\n`,
      );
    if (exit !== 0) this.exit(exit);
  }

  /** Every error is one line and exit 255 (GNU parallel's code), as {"error"} too with --json. */
  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    if (err instanceof Errors.ExitError) throw err;
    const line = oneLine(err.message, this.helpCommand());
    // A flag oclif could not parse fails before this.json is set: --json among our flags counts.
    if (this.json || ourFlags(this.argv).includes('--json'))
      process.stdout.write(`${JSON.stringify({ error: line })}\n`);
    process.stderr.write(`${this.config.bin}: ${escapeForTerminal(line)}\n`);
    return this.exit(EXIT_ERROR);
  }
}

type Flags = Interfaces.InferredFlags<typeof RunCommand.flags>;

/** What --detach refuses: output as it comes and files, which nobody would be there to take. */
function detachable(flags: Flags): void {
  if (flags['line-buffer'])
    throw new RunError('--detach prints each job whole: it does not take --line-buffer');
  if ((flags.transfer ?? []).length > 0 || (flags.return ?? []).length > 0)
    throw new RunError(
      '--detach takes no --transfer or --return files: nobody would be here to send or take them',
    );
  if (flags.joblog !== undefined)
    throw new RunError('--detach writes no joblog: give --joblog to peer run --attach ID');
}

/** The words before `--`: after it they are the command's (`-- tool --json`). */
function ourFlags(argv: string[]): string[] {
  const end = argv.indexOf('--');
  return end < 0 ? argv : argv.slice(0, end);
}

/** --env NAME (its value here) or NAME=VALUE. */
function envPair(text: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq > 0) return [text.slice(0, eq), text.slice(eq + 1)];
  const value = process.env[text];
  if (value === undefined) throw new RunError(`--env ${text}: ${text} is not set here; pass ${text}=VALUE`);
  return [text, value];
}

function emptyCounts(): RunCounts {
  return {
    fed: 0,
    inputEnded: false,
    workers: [],
    queued: 0,
    running: 0,
    done: 0,
    failed: 0,
    cancelled: 0,
    reassigned: 0,
  };
}
