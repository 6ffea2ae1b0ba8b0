/**
 * How a peer is named to a person. Every envelope carries its sender's name (wire.ts, field `n`)
 * and the membership directory keeps it, so a peer this one heard is always named. A peer id is
 * shown only for a peer never heard here (named only in another peer's list, or forgotten since it
 * died), shortened and marked so that nobody takes it for a name.
 */
import type { PeerId } from './wire.js';

/** Characters of a peer id shown when no name is known for it (its first 32 bits: unique enough on a LAN). */
export const SHORT_ID_CHARS = 8;

/** The name when known, else "a211f05a (not heard from)". */
export function nameOrUnheard(name: string | undefined, id: PeerId): string {
  return name ?? `${id.slice(0, SHORT_ID_CHARS)} (not heard from)`;
}
