/**
 * `peer event` / `peer query` hand their message to a local agent only when the agent holds the
 * command's key (or both run open): otherwise the event would go out under keys the command was
 * not given, or a keyed command's event in the open. The agent answers such a request as one of
 * another group, so the command runs as a one-shot peer with its own key.
 */
import type net from 'node:net';
import { describe, expect, it } from 'vitest';
import { relayKey, relayKeyMatches, relayServer } from '../../src/cli/agent-relay.js';
import { keyId } from '../../src/p2p/transport/keyring.js';
import type { Events } from '../../src/p2p/events/index.js';
import type { PeerNode } from '../../src/p2p/node.js';

const keyA = Buffer.alloc(32, 1);
const keyB = Buffer.alloc(32, 2);
const idOf = (k: Buffer) => keyId(k).toString('hex');

describe('relayed events and keys', () => {
  it('a command sends under its primary key, or none in an open group', () => {
    expect(relayKey(null)).toBe('');
    expect(relayKey({ file: 'k', keys: [keyA, keyB], warning: null })).toBe(idOf(keyA));
  });

  it('an agent takes a command of a key it holds, or an open one when it runs open', () => {
    expect(relayKeyMatches('', [])).toBe(true);
    expect(relayKeyMatches(idOf(keyA), [idOf(keyA)])).toBe(true);
    // Rotation: the command's key is the agent's second key.
    expect(relayKeyMatches(idOf(keyB), [idOf(keyA), idOf(keyB)])).toBe(true);
    expect(relayKeyMatches(idOf(keyB), [idOf(keyA)])).toBe(false);
    expect(relayKeyMatches('', [idOf(keyA)])).toBe(false);
    expect(relayKeyMatches(idOf(keyA), [])).toBe(false);
    expect(relayKeyMatches(undefined, [])).toBe(false);
  });

  it('an agent answers a request under another key as one of another group, publishing nothing', () => {
    const published: string[] = [];
    const events = {
      publish: (n: string) => published.push(n),
      query: (n: string) => published.push(n),
    } as unknown as Events;
    const node = {
      id: 'ffffffffffffffff',
      name: 'a',
      membership: { get: () => undefined },
    } as unknown as PeerNode;
    const serve = relayServer(events, node, '239.255.77.77:47777', () => [idOf(keyA)]);
    const replies: string[] = [];
    const conn = {
      write: (s: string) => replies.push(s),
      end: (s: string) => replies.push(s),
    } as unknown as net.Socket;
    const request = {
      op: 'event',
      group: '239.255.77.77:47777',
      name: 'deploy',
      payload: '',
      coalesce: false,
      timeoutMs: 1000,
    };
    for (const key of [idOf(keyB), '', undefined]) serve({ ...request, key }, conn);
    expect(replies.map((r) => JSON.parse(r) as unknown)).toEqual(
      Array.from({ length: 3 }, () => ({ ok: false, group: '239.255.77.77:47777' })),
    );
    expect(published).toEqual([]);
  });
});
