/**
 * The token as the roles hand it around, and the pure rules about it: how two tokens compare, what
 * a majority of a quorum set is, how a new branch is drawn.
 */
import type { PeerId } from '../wire.js';
import type { ProtocolContext } from '../protocol.js';
import { BRANCH_MAX } from './messages.js';

export interface Token {
  epoch: number;
  generation: number;
  /**
   * Branch: a random id given when a token is made and whenever a copy may be left behind (a
   * skip, a take-back). Within a branch, tokens form one line: a higher gen exists only because
   * the holder of every lower gen passed it on, and so stopped acting.
   */
  branch: number;
  quorumSet: PeerId[];
}

/** The token this peer holds: since when, and whether its one critical section was had (or given up). */
export interface Held extends Token {
  since: number;
  leased: boolean;
}

/** Token (epochA, generationA) vs (epochB, generationB), epoch first. */
export function compareTokens(
  epochA: number,
  generationA: number,
  epochB: number,
  generationB: number,
): number {
  return epochA !== epochB ? epochA - epochB : generationA - generationB;
}

/** More than half of `quorumSet` voted; members in `gone` (left long enough ago) no longer count. */
export function majority(quorumSet: PeerId[], votes: Set<PeerId>, gone: Set<PeerId>): boolean {
  let votesFor = 0;
  let size = 0;
  for (const id of quorumSet) {
    if (gone.has(id)) continue;
    size++;
    if (votes.has(id)) votesFor++;
  }
  return votesFor > size / 2;
}

/** A new random branch id, from the peer's random source. */
export function newBranch(ctx: Pick<ProtocolContext, 'random'>): number {
  return Math.floor(ctx.random() * (BRANCH_MAX + 1));
}
