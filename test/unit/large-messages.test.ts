/**
 * The bounds of entries and kv values (1 MiB) and the pieces of src/p2p/replication/large.ts:
 * what fits a datagram, decoding a large message as hostile input, and the outbox's bound.
 */
import { describe, expect, it } from 'vitest';
import {
  ENTRY_TEXT_BYTES_MAX,
  LARGE_QUEUED_BYTES_MAX,
  LargeOutbox,
  appendFits,
  decodeLarge,
  encodeLarge,
  entryProblem,
  envelopeOverhead,
  isEntryText,
  type LargeLane,
} from '../../src/p2p/replication/index.js';
import { APPEND, MESSAGES } from '../../src/p2p/replication/messages.js';
import { KV_KEY_BYTES_MAX, KV_VALUE_BYTES_MAX, encodeOp, opProblem } from '../../src/p2p/kv/index.js';
import type { SendResult } from '../../src/p2p/reliable/index.js';

const ID = '0123456789abcdef';

describe('entry and kv value bounds', () => {
  it('an entry text is bounded in UTF-8 bytes at ENTRY_TEXT_BYTES_MAX, a multi-byte character counted whole', () => {
    expect(isEntryText('a'.repeat(ENTRY_TEXT_BYTES_MAX))).toBe(true);
    expect(isEntryText('a'.repeat(ENTRY_TEXT_BYTES_MAX + 1))).toBe(false);
    expect(isEntryText(`${'a'.repeat(ENTRY_TEXT_BYTES_MAX - 1)}é`)).toBe(false);
    // Escaping does not count: a text of control characters at the limit is an entry.
    expect(isEntryText('\u0001'.repeat(ENTRY_TEXT_BYTES_MAX))).toBe(true);
    expect(
      entryProblem({ origin: ID, seq: 1, lamport: 0, text: 'a'.repeat(ENTRY_TEXT_BYTES_MAX + 1) }),
    ).toMatch(/over 1050624 bytes/);
  });

  it('the longest kv key with the longest value is one entry; one byte more of either is refused', () => {
    const key = 'k'.repeat(KV_KEY_BYTES_MAX);
    const value = '€'.repeat(Math.floor(KV_VALUE_BYTES_MAX / 3)) + 'v';
    expect(Buffer.byteLength(value)).toBe(KV_VALUE_BYTES_MAX);
    expect(opProblem({ kind: 'put', key, value })).toBeNull();
    expect(isEntryText(encodeOp({ kind: 'put', key, value }))).toBe(true);
    expect(opProblem({ kind: 'put', key, value: `${value}v` })).toMatch(/1048577 bytes; values are at most/);
    expect(opProblem({ kind: 'put', key: `${key}k`, value })).toMatch(/1025 bytes; keys are at most/);
  });

  it('appendFits says whether an append fits one datagram whatever its numbers, at the boundary', () => {
    const overhead = envelopeOverhead('replicate');
    let text = 'x'.repeat(2000);
    while (!appendFits(text, overhead)) text = text.slice(1);
    expect(text.length).toBeGreaterThan(500);
    expect(appendFits(`${text}x`, overhead)).toBe(false);
    // A longer name leaves less room.
    expect(appendFits(text, envelopeOverhead('€'.repeat(64)))).toBe(false);
  });
});

describe('large messages', () => {
  const types = [APPEND.type];
  const entry = [ID, 1, 1, 'hello'];

  it('decodes [type, body] only for the types asked and bodies their check accepts', () => {
    expect(decodeLarge(encodeLarge('rp.app', { e: entry }), MESSAGES.checks, types)).toEqual({
      type: 'rp.app',
      body: { e: entry },
    });
    for (const bad of [
      encodeLarge('rp.rnd', { r: 1 }), // a type that never carries entries
      encodeLarge('rp.app', { e: [ID, 0, 1, 'x'] }), // seq 0 fails the check
      encodeLarge('rp.app', { e: entry, extra: 1 }), // an unknown field
      '["rp.app"]',
      '[1, {}]',
      '{"t":"rp.app"}',
      '[',
      '',
    ])
      expect(decodeLarge(bad, MESSAGES.checks, types), bad).toBeNull();
  });

  it('the outbox sends one copy per peer and key, and only while under LARGE_QUEUED_BYTES_MAX waits', () => {
    const sent: Array<{ to: string; payload: string; done: (r: SendResult) => void }> = [];
    let queued = 0;
    const lane: LargeLane = {
      sendTo: (to, _topic, payload, done) => {
        sent.push({ to, payload, done: done! });
        queued += payload.length;
        return { origin: ID, epoch: 1, seq: sent.length };
      },
      on: () => () => {},
      queuedBytes: () => queued,
    };
    const out = new LargeOutbox(lane, 'rp.large');
    const mib = 'm'.repeat(1024 * 1024);
    for (let i = 0; i < 8; i++) out.offer('peer', `k${i}`, () => mib);
    out.offer('peer', 'k0', () => mib); // a resent request while k0 is waiting or in flight
    // Four 1 MiB messages reach the bound; the rest wait as closures, not as bytes.
    expect(sent).toHaveLength(LARGE_QUEUED_BYTES_MAX / mib.length);
    expect(out.has('peer', 'k7')).toBe(true);
    // Reliable delivery puts them on the wire and acks one: the next goes.
    queued = 0;
    sent[0]!.done({ ok: true, id: { origin: ID, epoch: 1, seq: 1 } });
    expect(sent).toHaveLength(8);
    expect(out.has('peer', 'k0')).toBe(false);
    // Done with: asked again, it is sent again once there is room.
    out.offer('peer', 'k0', () => mib);
    expect(sent).toHaveLength(8);
    queued = 0;
    out.pump();
    expect(sent).toHaveLength(9);
  });
});
