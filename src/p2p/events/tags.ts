/**
 * User tags (Serf's tags): `role=db`, `rack=2`. They ride in membership's tags under
 * USER_TAG_PREFIX, so they never collide with a protocol's own (`chat`, `prio`...), and only
 * what passes isUserTagKey/isUserTagValue is ever shown, matched or handed to a handler: anything
 * else a member announces under the prefix is ignored (the network is hostile).
 */
import type { Tags } from '../membership.js';
import { USER_TAG_KEY_CHARS_MAX, USER_TAG_VALUE_CHARS_MAX, USER_TAGS_MAX } from './limits.js';

export const USER_TAG_PREFIX = 't.';

export type UserTags = Record<string, string>;

const KEY_RE = new RegExp(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,${USER_TAG_KEY_CHARS_MAX - 1}}$`);
// No spaces, commas or '=': a value is one word in `k=v,k=v` (PEER_SELF_TAGS, handler stdin).
const VALUE_RE = new RegExp(`^[A-Za-z0-9_.:/@+-]{0,${USER_TAG_VALUE_CHARS_MAX}}$`);

export const isUserTagKey = (k: string): boolean => KEY_RE.test(k);
export const isUserTagValue = (v: unknown): v is string => typeof v === 'string' && VALUE_RE.test(v);

/** The user tags among a member's tags (valid ones only). */
export function userTags(tags: Tags): UserTags {
  const out: UserTags = {};
  for (const [k, v] of Object.entries(tags)) {
    if (!k.startsWith(USER_TAG_PREFIX)) continue;
    const key = k.slice(USER_TAG_PREFIX.length);
    if (isUserTagKey(key) && isUserTagValue(v)) out[key] = v;
  }
  return out;
}

/** A member's tags with its user tags replaced by `user` (the protocols' own kept). */
export function withUserTags(tags: Tags, user: UserTags): Tags {
  const out: Tags = {};
  for (const [k, v] of Object.entries(tags)) if (!k.startsWith(USER_TAG_PREFIX)) out[k] = v;
  for (const [k, v] of Object.entries(user)) out[USER_TAG_PREFIX + k] = v;
  return out;
}

/** `k=v,k=v` in key order: how handlers see tags. */
export function formatTags(tags: UserTags): string {
  return Object.keys(tags)
    .sort()
    .map((k) => `${k}=${tags[k]}`)
    .join(',');
}

/** Whether `tags` has every key of `filter` with its value. */
export function matchesTags(tags: UserTags, filter: UserTags): boolean {
  return Object.entries(filter).every(([k, v]) => tags[k] === v);
}

/** Why a set of user tags cannot be set, or null when it can. */
export function userTagsProblem(tags: UserTags): string | null {
  for (const [k, v] of Object.entries(tags)) {
    if (!isUserTagKey(k))
      return `tag key '${k}' is not valid: 1-${USER_TAG_KEY_CHARS_MAX} letters, digits, '_', '.' or '-'`;
    if (!isUserTagValue(v))
      return `tag value '${v}' of '${k}' is not valid: up to ${USER_TAG_VALUE_CHARS_MAX} letters, digits or _ . : / @ + - (no spaces, commas or '=')`;
  }
  const n = Object.keys(tags).length;
  if (n > USER_TAGS_MAX) return `${n} tags: a peer carries at most ${USER_TAGS_MAX}`;
  return null;
}

/** `K=V` arguments as tags, or the problem with the first that is not one. */
export function parseTagArgs(args: readonly string[]): { tags: UserTags } | { problem: string } {
  const tags: UserTags = {};
  for (const a of args) {
    const eq = a.indexOf('=');
    if (eq <= 0) return { problem: `'${a}' is not KEY=VALUE (e.g. role=db)` };
    tags[a.slice(0, eq)] = a.slice(eq + 1);
  }
  const problem = userTagsProblem(tags);
  return problem ? { problem } : { tags };
}
