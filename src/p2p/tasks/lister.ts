/**
 * Lister: a peer that asks the coordinator for its task log (`peer task list`, the monitor). It
 * fetches up to `limit` tasks, most recent first, one page (one datagram) at a time, asking for
 * the next page as soon as one arrives and re-sending an unanswered request every LIST_RETRY_MS;
 * after LIST_SENDS_MAX unanswered requests it reports what it has with an error. One listing runs
 * at a time: a new request replaces the old, whose late pages its query number tells apart.
 */
import type { ProtocolContext } from '../protocol.js';
import { LIST_LIMIT_MAX, LIST_RETRY_MS, LIST_SENDS_MAX } from './limits.js';
import type { Link } from './link.js';
import { summaryOf, type TaskBody } from './messages.js';
import type { TaskSummary } from './types.js';

interface Listing {
  query: number;
  limit: number;
  items: TaskSummary[];
  total: number;
  lastSend: number;
  sends: number;
}

export class Lister {
  private listing: Listing | null = null;
  private queries = 0;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly link: Link,
  ) {}

  /** Asks for up to `limit` tasks; answers with a 'task-list' event. */
  request(limit: number): void {
    const lim = Math.max(1, Math.min(LIST_LIMIT_MAX, Math.floor(limit)));
    this.listing = { query: ++this.queries, limit: lim, items: [], total: 0, lastSend: -Infinity, sends: 0 };
    this.tick(this.ctx.now());
  }

  tick(now: number): void {
    const l = this.listing;
    if (!l || now - l.lastSend < LIST_RETRY_MS) return;
    if (l.sends >= LIST_SENDS_MAX) {
      this.listing = null;
      this.ctx.emit({
        kind: 'task-list',
        items: l.items,
        total: l.total,
        error: this.link.coordinator()
          ? 'the coordinator did not answer'
          : 'no coordinator is known (is any peer running the election?)',
      });
      return;
    }
    const target = this.link.coordinator();
    l.lastSend = now;
    l.sends++;
    if (target)
      this.link.post(target, 'tk.list', {
        query: l.query,
        offset: l.items.length,
        limit: l.limit - l.items.length,
      });
  }

  onPage(m: TaskBody<'tk.page'>): void {
    const l = this.listing;
    if (!l || m.query !== l.query || m.offset !== l.items.length) return;
    l.total = m.total;
    l.sends = 0;
    l.items.push(...m.items.map(summaryOf));
    if (m.end || m.items.length === 0 || l.items.length >= l.limit) {
      this.listing = null;
      this.ctx.emit({ kind: 'task-list', items: l.items, total: l.total, error: null });
      return;
    }
    l.lastSend = -Infinity;
    this.tick(this.ctx.now());
  }
}
