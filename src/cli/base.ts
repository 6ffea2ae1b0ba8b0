/**
 * The base of every command: user errors (bad flags, files, databases) become one line on stderr
 * and exit code 2, never a stack trace.
 */
import { Command } from '@oclif/core';
import { UsageError } from './network.js';
import { StoreError } from '../storage/store.js';

export const EXIT_USAGE = 2;

export abstract class PeerCommand extends Command {
  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    if (err instanceof UsageError || err instanceof StoreError) this.error(err.message, { exit: EXIT_USAGE });
    return super.catch(err);
  }
}
