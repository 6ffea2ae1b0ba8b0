/**
 * oclif's help with one more section on every command: the exit-code rule (base.ts), in the same
 * words for every command, present or future, so that no help can state another; except a
 * command that declares its own (static exitStatus: `peer run`, GNU parallel's codes).
 */
import { CommandHelp, Help } from '@oclif/core';
import { EXIT_STATUS_HELP } from './base.js';

class PeerCommandHelp extends CommandHelp {
  protected override sections(): ReturnType<CommandHelp['sections']> {
    // `peer run` follows GNU parallel's exit status (its issue asks for it) and says so here.
    const own = (this.command as { exitStatus?: unknown }).exitStatus;
    const rule = typeof own === 'string' ? own : EXIT_STATUS_HELP;
    return [...super.sections(), { header: 'EXIT STATUS', generate: () => rule }];
  }
}

export default class PeerHelp extends Help {
  protected override CommandHelpClass = PeerCommandHelp;
}
