/**
 * Who holds a replica: a holder advertises it in its membership tags as `rp = "<digest>:<count>"`,
 * so every peer learns who holds a replica and what it holds from heartbeats it hears anyway.
 */
import type { MemberView } from '../protocol.js';
import type { Tags } from '../membership.js';

/** Membership tag a holder advertises: "<digest>:<count>". */
export const REPLICA_TAG = 'rp';
const DIGEST_TAG_RE = /^[0-9a-f]{16}:[0-9]{1,16}$/;

/** The part of Membership replication uses (the pair harness fakes it). */
export interface Directory {
  list(): MemberView[];
  readonly ownTags: Tags;
  setTags(tags: Tags): void;
}

export type HolderView = MemberView & { digest: string; count: number };

/** Holders `dir` knows of (any state but left), with their advertised digest. */
export function holdersIn(dir: Directory): HolderView[] {
  const out: HolderView[] = [];
  for (const m of dir.list()) {
    const tag = m.tags[REPLICA_TAG];
    if (m.state === 'left' || typeof tag !== 'string' || !DIGEST_TAG_RE.test(tag)) continue;
    const colon = tag.indexOf(':');
    out.push({ ...m, digest: tag.slice(0, colon), count: Number(tag.slice(colon + 1)) });
  }
  return out;
}

export function liveHoldersIn(dir: Directory): HolderView[] {
  return holdersIn(dir).filter((h) => h.state === 'alive' || h.state === 'suspect');
}
