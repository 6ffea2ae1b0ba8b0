/**
 * Falling back from an epoch only heard of (token-ring.ts "Falling back"), on the ring state alone:
 * the promises of our own claims that made no token go back down, those that guard a real token
 * never do.
 */
import { describe, expect, it } from 'vitest';
import { RingState } from '../../src/p2p/token-ring/ring-state.js';
import type { RingView } from '../../src/p2p/token-ring/ring-view.js';
import type { ProtocolContext } from '../../src/p2p/protocol.js';

const SELF = 'a'.repeat(16);
const OTHER = 'b'.repeat(16);

function ring() {
  let now = 0;
  const ctx = { self: { id: SELF, name: 'a', incarnation: 1 }, now: () => now, emit: () => {} };
  const view = { members: () => [SELF, OTHER], gone: new Set<string>() } as unknown as RingView;
  const state = new RingState(ctx as unknown as ProtocolContext, view, undefined, 0);
  return { state, at: (t: number) => (now = t) };
}

describe('token ring fall-back (ring state)', () => {
  it("takes back the promise of its own claim that made no token, to return to a real token's epoch", () => {
    const { state, at } = ring();
    state.see(3, 10, OTHER, null); // the real ring's token, in use
    at(100);
    state.see(3 + 1000, 10, '', null); // told of an epoch nobody holds
    state.promised = 3 + 1001; // our own claim from it, refused by the others
    at(900);
    expect(state.observe(4, 11, OTHER, null)).toBe(false); // the others' new token, in use
    expect(state.fallBack()).toBe(true);
    expect(state.newestEpoch).toBe(4);
    expect(state.promised).toBe(4);
  });

  it('never falls back below a token it held itself (its own claim that made one)', () => {
    const { state, at } = ring();
    state.see(3, 10, OTHER, null);
    state.promised = 7; // our claim of epoch 7 ...
    state.see(7, 11, SELF, null); // ... made a token, which we held
    at(100);
    state.see(7 + 1000, 11, '', null); // then told of an epoch nobody holds
    state.promised = 7 + 1001;
    at(900);
    state.observe(5, 12, OTHER, null); // an older token still in use somewhere
    expect(state.fallBack()).toBe(false);
    expect(state.promised).toBe(7 + 1001);
  });
});
