/**
 * oclif's help with one more section on every command: the exit-code rule (base.ts), in the same
 * words for every command, present or future, so that no help can state another.
 */
import { CommandHelp, Help } from '@oclif/core';
import { EXIT_STATUS_HELP } from './base.js';

class PeerCommandHelp extends CommandHelp {
  protected override sections(): ReturnType<CommandHelp['sections']> {
    return [...super.sections(), { header: 'EXIT STATUS', generate: () => EXIT_STATUS_HELP }];
  }
}

export default class PeerHelp extends Help {
  protected override CommandHelpClass = PeerCommandHelp;
}
