/**
 * Chat lines read back from SQLite are validated like datagrams: the file may be damaged, and what
 * it holds came from the network. A bad row is skipped and counted, and never sets the clock.
 */
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { ChatStore } from '../../src/storage/chat.js';
import { CHAT_TEXT_BYTES_MAX, type ChatLine } from '../../src/p2p/chat.js';
import { COUNTER_MAX } from '../../src/p2p/bounds.js';

const ID = '0123456789abcdef';
const line = (n: number, extra: Partial<ChatLine> = {}): ChatLine => ({
  id: `${ID}/1/${n}`,
  from: ID,
  fromName: 'ana',
  to: null,
  toName: null,
  text: `hello ${n}`,
  lamport: n,
  at: 1_700_000_000_000,
  history: false,
  ...extra,
});

describe('ChatStore reads', () => {
  it('skip and count rows that break the wire limits, and keep hostile text for the display to escape', () => {
    const db = new Database(':memory:');
    const store = new ChatStore(db);
    const hostileText = line(1, { text: 'A\x1b]0;pwned\x07B\x1b[2J' });
    store.save(hostileText, 0);
    store.save(line(2), 0);
    const bad = [
      line(3, { fromName: 'ana\x1b[2J' }),
      line(4, { fromName: '' }),
      line(5, { toName: 'bo\u202eb', to: ID }),
      line(6, { from: 'ZZZ' }),
      line(7, { text: 'x'.repeat(CHAT_TEXT_BYTES_MAX + 1) }),
      line(COUNTER_MAX + 1),
      line(9, { at: -1 }),
    ];
    for (const l of bad) store.save(l, 0);
    db.prepare('UPDATE chat_messages SET history = 5 WHERE id = ?').run(line(2).id);
    store.save(line(10), 0);

    const got = store.recent(100);
    expect(got).toEqual([hostileText, line(10)]);
    expect(store.rejectedLastRead).toBe(bad.length + 1);
    // The count is per read: the newest row alone is the one past the bound.
    expect(store.recent(1)).toEqual([]);
    expect(store.rejectedLastRead).toBe(1);
    // A Lamport time past the bound must not be where a restarted peer stamps from.
    expect(store.maxLamport()).toBe(10);
    db.close();
  });
});
