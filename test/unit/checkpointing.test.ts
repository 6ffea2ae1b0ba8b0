/**
 * The chat hook of the checkpoint store: a received line is recorded and processed in one durable
 * transaction, exactly once however often it arrives.
 */
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/proc.js';
import { PeerStore } from '../../src/storage/store.js';
import { openCheckpoints } from '../../src/storage/checkpoint.js';
import { ChatStore } from '../../src/storage/chat.js';
import { receiveChatLine } from '../../src/cli/checkpointing.js';
import { recover } from '../../src/storage/recovery.js';
import type { ChatLine } from '../../src/p2p/chat.js';

const line: ChatLine = {
  id: '00112233445566ff/3/9',
  from: '00112233445566ff',
  fromName: 'cy',
  to: null,
  toName: null,
  text: 'olá\tmundo',
  lamport: 77,
  at: 1_700_000_000_000,
  history: false,
};

describe('receiveChatLine', () => {
  it('stores a line once, flags it processed in the same commit, and reports repeats as duplicates', async () => {
    const dir = tempDir('chat-hook');
    PeerStore.open(dir, 'cy').close();
    const cp = openCheckpoints(dir, 'cy');
    const outcomes = await Promise.all([receiveChatLine(cp, line), receiveChatLine(cp, line)]);
    expect(outcomes).toEqual(['new', 'duplicate']);
    expect(await receiveChatLine(cp, { ...line, history: true })).toBe('duplicate');
    expect(cp.status(line.id)).toBe('processed');
    expect(new ChatStore(cp.db).recent(10)).toEqual([line]);
    // Nothing is left for a replay to do.
    expect(recover(cp, { integrity: 'full' }).unprocessedBefore).toBe(0);
    cp.close();
  });
});
