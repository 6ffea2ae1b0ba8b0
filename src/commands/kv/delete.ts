import { Args } from '@oclif/core';
import { PeerCommand } from '../../cli/base.js';
import { networkFlags } from '../../cli/flags.js';
import { writeFlags, type WriteResult } from '../../cli/kv.js';
import { writeCommand } from './put.js';

export default class KvDelete extends PeerCommand {
  static override summary = 'Delete KEY from the replicated key-value store.';
  static override description =
    'Writes a tombstone (it wins and loses like a put: an older put arriving late does not bring the key back) and exits 0 once --acks holders committed it; 1 naming the holders that did not confirm; 2 on bad input. Deleting a key that does not exist succeeds.';
  static override examples = [
    '<%= config.bin %> kv delete color --interface 127.0.0.1',
    '<%= config.bin %> kv delete color --acks majority --json',
  ];
  static override enableJsonFlag = true;
  static override args = { key: Args.string({ description: 'The key.', required: true }) };
  static override flags = { ...networkFlags, ...writeFlags };

  async run(): Promise<WriteResult> {
    const { args, flags } = await this.parse(KvDelete);
    return writeCommand(this, { kind: 'delete', key: args.key }, flags);
  }
}
