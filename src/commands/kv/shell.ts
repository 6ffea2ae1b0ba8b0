import readline from 'node:readline';
import { PeerCommand } from '../../cli/base.js';
import { networkFlags } from '../../cli/flags.js';
import { networkSettings } from '../../cli/peer.js';
import { KvClient, policyFlag, readFlags, writeFlags } from '../../cli/kv.js';
import { keyProblem, opProblem } from '../../p2p/kv/index.js';
import type { AckPolicy } from '../../p2p/replication/index.js';
import { escapeForTerminal } from '../../cli/sanitize.js';
import { showingWait } from '../../cli/progress.js';

export const EXIT_SOME_FAILED = 1;

export type ShellCommand =
  | { kind: 'put'; key: string; value: string }
  | { kind: 'get'; key: string }
  | { kind: 'delete'; key: string }
  | { kind: 'dump' }
  | { kind: 'help' }
  | { kind: 'exit' }
  | { kind: 'empty' }
  | { kind: 'error'; message: string };

const USAGE = 'use PUT KEY VALUE (or POST), GET KEY, DELETE KEY, DUMP, help or exit';
/** What `help` prints: one command a line. */
const HELP = [
  'PUT KEY VALUE    store VALUE (the rest of the line, spaces included) under KEY; POST is the same',
  'GET KEY          print the value of KEY, or NOT FOUND',
  'DELETE KEY       delete KEY',
  'DUMP             list every key and value of one holder',
  'help             this list',
  'exit             leave (also quit, or Ctrl-D)',
  'Up and Down recall earlier lines; commands are case-insensitive.',
].join('\n');
/** Lines the interactive prompt keeps for Up-arrow recall. */
const HISTORY_LINES_MAX = 500;

/** One line of the shell's commands (PUT, GET, ...); the verb is case-insensitive, VALUE is the rest. */
export function parseShellLine(line: string): ShellCommand {
  const m = /^\s*(\S+)(?:\s+(\S+))?(?:\s(.*))?$/s.exec(line);
  if (!m) return { kind: 'empty' };
  const verb = m[1]!.toUpperCase();
  const key = m[2];
  const rest = m[3];
  switch (verb) {
    case 'EXIT':
    case 'QUIT':
      return { kind: 'exit' };
    case 'HELP':
    case '?':
      return { kind: 'help' };
    case 'DUMP':
      return key === undefined ? { kind: 'dump' } : { kind: 'error', message: 'DUMP takes no arguments' };
    case 'GET':
    case 'DELETE': {
      if (key === undefined || rest !== undefined)
        return { kind: 'error', message: `${verb} takes one argument: ${verb} KEY` };
      const problem = keyProblem(key);
      if (problem) return { kind: 'error', message: problem };
      return { kind: verb === 'GET' ? 'get' : 'delete', key };
    }
    case 'PUT':
    case 'POST': {
      if (key === undefined || rest === undefined)
        return { kind: 'error', message: `${verb} takes a key and a value: ${verb} KEY VALUE` };
      const problem = opProblem({ kind: 'put', key, value: rest });
      if (problem) return { kind: 'error', message: problem };
      return { kind: 'put', key, value: rest };
    }
    default:
      return { kind: 'error', message: `unknown command '${m[1]}'; ${USAGE}` };
  }
}

export default class KvShell extends PeerCommand {
  static override summary = 'An interactive prompt for the kv store: PUT/POST, GET, DELETE, DUMP.';
  static override description = `Joins the group as a client and reads commands, one per line: PUT KEY VALUE (POST is the same: the store has no create-only write), GET KEY, DELETE KEY, DUMP, help, exit. VALUE is the rest of the line, spaces included. On a terminal it prompts (Up and Down recall earlier lines; exit, quit, Ctrl-D or Ctrl-C leave); otherwise it reads lines from stdin (for scripts) and exits ${EXIT_SOME_FAILED} if any command failed (an error is one line on stderr; a key not found is an answer, not a failure).`;
  static override examples = [
    '<%= config.bin %> kv shell --interface 127.0.0.1',
    'printf "PUT a 1\\nGET a\\nDUMP\\n" | <%= config.bin %> kv shell --interface 127.0.0.1',
  ];
  static override flags = { ...networkFlags, acks: writeFlags.acks, ...readFlags };

  async run(): Promise<void> {
    const { flags } = await this.parse(KvShell);
    const acks = policyFlag('acks', flags.acks);
    const read = policyFlag('read', flags.read);
    const client = await showingWait(
      'looking for kv holders',
      KvClient.start(networkSettings(flags, flags.name ?? 'kv-shell'), flags.timeout, true),
    );
    let failed = 0;
    const fail = (n: number, message: string) => {
      failed++;
      process.stderr.write(
        `${this.config.bin}: ${n > 0 ? `line ${n}: ` : ''}${escapeForTerminal(message)}\n`,
      );
    };
    try {
      if (process.stdin.isTTY) {
        // node:readline, not a prompt library: it gives line editing, Up-arrow history and Ctrl-D
        // as the end of input, and draws nothing but the prompt.
        const rl = readline.createInterface({
          input: process.stdin,
          output: process.stdout,
          prompt: 'kv> ',
          historySize: HISTORY_LINES_MAX,
        });
        rl.on('SIGINT', () => rl.close()); // Ctrl-C leaves, as Ctrl-D does
        this.log(`connected to ${client.kv.liveHolders().length} kv holder(s); ${USAGE}`);
        // Lines are queued as they come and run one at a time; the prompt is drawn only when none
        // is waiting, so a pasted or typed-ahead line's answer is never printed after a prompt.
        const queued: string[] = [];
        let ended = false;
        let wake = (): void => {};
        rl.on('line', (line) => {
          queued.push(line);
          wake();
        });
        rl.on('close', () => {
          ended = true;
          wake();
        });
        rl.prompt();
        let typedExit = false;
        while (!typedExit) {
          const line = queued.shift();
          if (line === undefined) {
            if (ended) break;
            await new Promise<void>((resolve) => (wake = resolve));
            continue;
          }
          typedExit = !(await this.execute(client, parseShellLine(line), 0, acks, read, flags, fail));
          if (!typedExit && queued.length === 0) rl.prompt();
        }
        rl.close();
        // After Ctrl-D or Ctrl-C the cursor is still on our prompt: the shell's starts below it.
        if (!typedExit) process.stdout.write('\n');
      } else {
        const rl = readline.createInterface({ input: process.stdin, terminal: false });
        let n = 0;
        for await (const line of rl) {
          if (!(await this.execute(client, parseShellLine(line), ++n, acks, read, flags, fail))) break;
        }
      }
    } finally {
      await client.stop();
    }
    // At a prompt an error was shown and answered; a script needs the exit code to know.
    if (failed > 0 && !process.stdin.isTTY) process.exitCode = EXIT_SOME_FAILED;
  }

  /** Runs one command; false on exit. */
  private async execute(
    client: KvClient,
    cmd: ShellCommand,
    n: number,
    acks: AckPolicy,
    read: AckPolicy,
    flags: { acks: string; read: string; timeout: number },
    fail: (n: number, message: string) => void,
  ): Promise<boolean> {
    switch (cmd.kind) {
      case 'empty':
        return true;
      case 'exit':
        return false;
      case 'help':
        this.log(HELP);
        return true;
      case 'error':
        fail(n, cmd.message);
        return true;
      case 'put':
      case 'delete': {
        const r = await showingWait(
          'waiting for kv holders to confirm',
          client.write(cmd, acks, flags.acks, flags.timeout),
        );
        if (r.ok)
          this.log(`${cmd.kind === 'put' ? 'OK' : 'DELETED'} ${r.id} (${r.confirmed.length} holders)`);
        else
          fail(
            n,
            r.refused.length > 0
              ? `${r.id} could not be stored by ${r.refused.join(', ')} (--acks ${flags.acks})`
              : `${r.id} confirmed by ${r.confirmed.length} holder(s) within ${flags.timeout} ms (--acks ${flags.acks})${r.missing.length ? `; no confirmation from: ${r.missing.join(', ')}` : ''}`,
          );
        return true;
      }
      case 'get': {
        const r = await showingWait(
          'waiting for kv holders to answer',
          client.read(cmd.key, read, flags.timeout),
        );
        if (!r.ok)
          fail(
            n,
            `${r.answered.length} of ${r.known} holders answered within ${flags.timeout} ms (--read ${flags.read})`,
          );
        else this.log(r.found ? escapeForTerminal(r.value!) : 'NOT FOUND');
        return true;
      }
      case 'dump': {
        const live = client.kv.liveHolders().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        if (live.length === 0) {
          fail(n, 'no live kv holder');
          return true;
        }
        try {
          const rows = (
            await showingWait(`waiting for ${live[0]!.name}'s table`, client.dump(live[0]!, flags.timeout))
          ).filter((v) => v.value !== null);
          // Keys and values were written by anyone in the group: escaped, one line each.
          for (const v of rows) this.log(`${escapeForTerminal(v.key)} = ${escapeForTerminal(v.value!)}`);
          this.log(`(${rows.length} key${rows.length === 1 ? '' : 's'})`);
        } catch (err) {
          fail(n, (err as Error).message);
        }
        return true;
      }
    }
  }
}
