/**
 * The base of every command and its one exit-code rule (EXIT_STATUS_HELP): user errors (bad
 * flags, files, databases) become exactly one line on stderr ("peer: what was wrong; what to do")
 * and exit code 2; a GroupError (the group could not do it) one line and exit code 1; never a
 * stack trace and never wrapped to the terminal width. With --json the error is also printed as
 * {"error": "..."}. An error may quote remote text (a member's name, a holder's answer): the line
 * on stderr is escaped (sanitize.ts), the JSON one exact.
 */
import { Command, Errors } from '@oclif/core';
import { UsageError } from './network.js';
import { StoreError } from '../storage/store.js';
import { escapeForTerminal } from './sanitize.js';

/** The group could not do it: nobody answered, too few confirmations, a job failed, no coordinator. */
export const EXIT_GROUP = 1;
/** Bad input or a local error: a flag, the interface, a damaged database, the disk, a lock. */
export const EXIT_USAGE = 2;
/** Stopped by Ctrl-C (or SIGTERM) after cleaning up: the shell's code for SIGINT (128 + 2). */
export const EXIT_INTERRUPTED = 130;

/** The EXIT STATUS section of every command's help (help.ts): one rule, in the same words everywhere. */
export const EXIT_STATUS_HELP = [
  '0  done',
  '1  the group could not do it: nobody answered, too few confirmations, a job failed, no coordinator',
  '2  bad input or a local error: a flag, the interface, a damaged database, the disk, a lock held by another process',
].join('\n');

/** The group could not do what was asked: one line that says what to do, exit code 1. */
export class GroupError extends Error {
  override name = 'GroupError';
  constructor(
    message: string,
    /** Printed with the error under --json (what was gathered before the failure). */
    readonly json: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** oclif's framing of flag errors: a header above them and a pointer to --help below. */
const OCLIF_FRAMING = /^(See more help with|The following errors? occurred:?$)/;
/** oclif's pointer to --help below a flag error, which `help` replaces with the command's own. */
const OCLIF_HELP_POINTER = /^See more help with/;
/** oclif's header above an error a flag's parser threw. */
const OCLIF_PARSING = /^Parsing (--[a-z-]+)$/;

/**
 * `message` as one line. A flag error of oclif's ends with what to do: `; see <help>` (the
 * command's own `peer X --help`) where oclif pointed to --help.
 */
export function oneLine(message: string, help?: string): string {
  const all = message.split('\n').map((l) => l.trim());
  const lines = all.filter((l) => l !== '' && !OCLIF_FRAMING.test(l));
  // "Parsing --flag" is kept where it is the only mention of the flag (oclif's own checks).
  const line = lines
    .filter((l, i) => {
      const flag = OCLIF_PARSING.exec(l)?.[1];
      return flag === undefined || !lines[i + 1]?.includes(flag);
    })
    .join('; ');
  return help !== undefined && all.some((l) => OCLIF_HELP_POINTER.test(l)) ? `${line}; see ${help}` : line;
}

/**
 * oclif's missing-argument error (not exported by @oclif/core, hence the shape test) as one line
 * naming each argument and what it is. oclif's own text also notes that repeatable flags swallow
 * the arguments after them, which is not so here: every repeatable flag takes one value per use
 * (`multipleNonGreedy`), so `peer query --tag k=v NAME` finds its NAME.
 */
function missingArgs(err: Error): string | null {
  const args = (err as { args?: unknown }).args;
  if (!err.message.startsWith('Missing') || !Array.isArray(args)) return null;
  const named = args.filter(
    (a): a is { name: string; description?: string } => typeof (a as { name?: unknown }).name === 'string',
  );
  if (named.length === 0) return null;
  const what = named.map((a) => {
    const about = a.description?.replace(/\.$/, '');
    return about === undefined ? a.name.toUpperCase() : `${a.name.toUpperCase()} (${about})`;
  });
  return `missing ${named.length === 1 ? 'argument' : 'arguments'} ${what.join(', ')}`;
}

export abstract class PeerCommand extends Command {
  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    if (err instanceof GroupError) return this.fail(err.message, EXIT_GROUP, err.json);
    const userError =
      err instanceof UsageError ||
      err instanceof StoreError ||
      (err instanceof Errors.CLIError && !(err instanceof Errors.ExitError));
    if (!userError) return super.catch(err);
    const missing = missingArgs(err);
    if (missing !== null) return this.fail(`${missing}; see ${this.helpCommand()}`, EXIT_USAGE);
    return this.fail(err.message, EXIT_USAGE);
  }

  /**
   * --json: the object on one line, exact, so a script reads output line by line (oclif's own
   * spreads it over lines and colours it on a terminal).
   */
  override logJson(json: unknown): void {
    process.stdout.write(`${JSON.stringify(json)}\n`);
  }

  /** Where this command's help is: `peer task submit --help`. */
  protected helpCommand(): string {
    return `${this.config.bin} ${(this.id ?? '').split(':').join(' ')} --help`;
  }

  private fail(message: string, code: number, json: Record<string, unknown> = {}): never {
    const line = oneLine(message, this.helpCommand());
    if (this.jsonEnabled()) this.logJson({ ...json, error: line });
    process.stderr.write(`${this.config.bin}: ${escapeForTerminal(line)}\n`);
    return this.exit(code);
  }
}
