import { Args } from '@oclif/core';
import { PeerCommand } from '../../cli/base.js';
import { changeTags, tagsFlags, tagsLine, type TagsResult } from '../../cli/tags-command.js';

export default class TagsUnset extends PeerCommand {
  static override summary = 'Remove tags from a running peer (peer up on this host).';
  static override description =
    'Removes the tags of these KEYs from the peer up of --name and --data-dir (a key it does not have is no error), saves and announces the change (docs/events.md).';
  static override examples = ['<%= config.bin %> tags unset rack --name db1'];
  static override enableJsonFlag = true;
  static override strict = false;
  static override args = { key: Args.string({ description: 'A tag KEY (one or more).', required: true }) };
  static override flags = tagsFlags;

  async run(): Promise<TagsResult> {
    const { argv, flags } = await this.parse(TagsUnset);
    const r = await changeTags(flags, { op: 'unset', keys: argv as string[] });
    if (!this.jsonEnabled()) this.log(tagsLine(r));
    return r;
  }
}
