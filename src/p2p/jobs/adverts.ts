/**
 * Worker adverts ride in membership tags (as the tasks protocol's `wk`/`ld`): `js` slots, `jl`
 * jobs held now (running and queued, for every submitter), `ex` '1' when it runs shell commands
 * (a keyed group and `--allow-exec`). Tags come with every heartbeat and every probe answer, so a
 * one-shot submitter knows the workers and their room as soon as it has heard them, without a
 * message of our own. A tag is the member's word: read with bounds, never trusted further.
 */
import type { MemberView } from '../protocol.js';
import type { Tags } from '../membership.js';
import type { WorkerAdvert } from './types.js';
import { JOB_PIPELINE_PER_SLOT, JOB_SLOTS_MAX } from './limits.js';

export const TAG_SLOTS = 'js';
export const TAG_HELD = 'jl';
export const TAG_EXEC = 'ex';

/** Jobs a worker with `slots` slots holds at most: each slot's running job and its queue. */
export function windowOf(slots: number): number {
  return slots * (1 + JOB_PIPELINE_PER_SLOT);
}

/** A live member's advert as a worker, or null when it is not one (or its tags are out of bounds). */
export function advertOf(m: MemberView): WorkerAdvert | null {
  if (m.state !== 'alive' && m.state !== 'suspect') return null;
  const slots = m.tags[TAG_SLOTS];
  const held = m.tags[TAG_HELD] ?? 0;
  if (typeof slots !== 'number' || !Number.isSafeInteger(slots) || slots < 1 || slots > JOB_SLOTS_MAX)
    return null;
  const window = windowOf(slots);
  const h =
    typeof held === 'number' && Number.isSafeInteger(held) && held >= 0 ? Math.min(held, window) : window;
  return { id: m.id, name: m.name, slots, held: h, allowExec: m.tags[TAG_EXEC] === '1' };
}

/** Our own tags with this worker's advert in them (the other protocols' tags kept). */
export function advertTags(own: Tags, slots: number, held: number, allowExec: boolean): Tags {
  const tags: Tags = { ...own, [TAG_SLOTS]: slots, [TAG_HELD]: held };
  if (allowExec) tags[TAG_EXEC] = '1';
  else delete tags[TAG_EXEC];
  return tags;
}
