/** What `peer tags set` and `peer tags unset` share: their flags, and one request to the running peer. */
import { networkFlags } from './flags.js';
import { defaultName } from './peer.js';
import { UsageError } from './network.js';
import { controlSocket, requestTags, type TagsRequest } from './tags-control.js';
import type { UserTags } from '../p2p/events/index.js';

export const tagsFlags = { name: networkFlags.name, 'data-dir': networkFlags['data-dir'] };

export interface TagsResult {
  name: string;
  tags: UserTags;
}

/** Sends `req` to the peer named by the flags; its tags after the change, or a UsageError with why not. */
export async function changeTags(
  flags: { name?: string; 'data-dir': string },
  req: TagsRequest,
): Promise<TagsResult> {
  const name = flags.name ?? defaultName();
  const reply = await requestTags(controlSocket(flags['data-dir'], name), req, name, flags['data-dir']);
  if (!reply.ok) throw new UsageError(`peer '${name}' refused the change: ${reply.error}`);
  return { name, tags: reply.tags };
}

/** The tags as one line for a person. */
export function tagsLine(r: TagsResult): string {
  const tags = Object.entries(r.tags).map(([k, v]) => `${k}=${v}`);
  return `${r.name}: ${tags.length > 0 ? tags.join(' ') : 'no tags'}`;
}
