import { Args } from '@oclif/core';
import { PeerCommand } from '../../cli/base.js';
import { UsageError } from '../../cli/network.js';
import { changeTags, tagsFlags, tagsLine, type TagsResult } from '../../cli/tags-command.js';
import { parseTagArgs, USER_TAGS_MAX } from '../../p2p/events/index.js';

export default class TagsSet extends PeerCommand {
  static override summary = 'Set tags on a running peer (peer up on this host).';
  static override description = `Sets KEY=VALUE tags on the peer up of --name and --data-dir, through its control socket in the data dir. The peer saves them (they survive its restart) and announces them at once: peer peers shows them, peer query --tag selects by them, and every peer's member-update handlers run. At most ${USER_TAGS_MAX} tags; keys of letters, digits, _ . -; values of letters, digits, _ . : / @ + - (docs/events.md).`;
  static override examples = [
    '<%= config.bin %> tags set role=db rack=2 --name db1',
    '<%= config.bin %> tags set version=1.4.2 --json',
  ];
  static override enableJsonFlag = true;
  static override strict = false;
  static override args = { tag: Args.string({ description: 'KEY=VALUE (one or more).', required: true }) };
  static override flags = tagsFlags;

  async run(): Promise<TagsResult> {
    const { argv, flags } = await this.parse(TagsSet);
    const parsed = parseTagArgs(argv as string[]);
    if ('problem' in parsed) throw new UsageError(parsed.problem);
    const r = await changeTags(flags, { op: 'set', tags: parsed.tags });
    if (!this.jsonEnabled()) this.log(tagsLine(r));
    return r;
  }
}
