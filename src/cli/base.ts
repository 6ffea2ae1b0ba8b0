/**
 * The base of every command: user errors (bad flags, files, databases) become exactly one line on
 * stderr ("peer: what was wrong; what to do") and exit code 2, never a stack trace and never
 * wrapped to the terminal width. With --json the error is also printed as {"error": "..."}.
 * An error may quote remote text (a member's name, a holder's answer): the line on stderr is
 * escaped (sanitize.ts), the JSON one exact.
 */
import { Command, Errors } from '@oclif/core';
import { UsageError } from './network.js';
import { StoreError } from '../storage/store.js';
import { escapeForTerminal } from './sanitize.js';

export const EXIT_USAGE = 2;

/** oclif's framing of flag errors: a header above them and a pointer to --help below. */
const OCLIF_FRAMING = /^(See more help with|The following errors? occurred:?$)/;
/** oclif's header above an error a flag's parser threw. */
const OCLIF_PARSING = /^Parsing (--[a-z-]+)$/;

export function oneLine(message: string): string {
  const lines = message
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !OCLIF_FRAMING.test(l));
  // "Parsing --flag" is kept where it is the only mention of the flag (oclif's own checks).
  return lines
    .filter((l, i) => {
      const flag = OCLIF_PARSING.exec(l)?.[1];
      return flag === undefined || !lines[i + 1]?.includes(flag);
    })
    .join('; ');
}

export abstract class PeerCommand extends Command {
  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    const userError =
      err instanceof UsageError ||
      err instanceof StoreError ||
      (err instanceof Errors.CLIError && !(err instanceof Errors.ExitError));
    if (!userError) return super.catch(err);
    const line = oneLine(err.message);
    if (this.jsonEnabled()) this.logJson({ error: line });
    process.stderr.write(`${this.config.bin}: ${escapeForTerminal(line)}\n`);
    return this.exit(EXIT_USAGE);
  }
}
