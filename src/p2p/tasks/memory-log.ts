/**
 * A TaskLog in memory, for peers without a store (one-shot commands, the monitor, tests).
 */
import type { LogWrite, TaskLog, TaskRecord } from './types.js';

/** Memory to keep task states in when there is no store: bounded, forgetting the oldest finished. */
export const MEMORY_LOG_TASKS_MAX = 20_000;

export class MemoryTaskLog implements TaskLog {
  private readonly rows = new Map<string, TaskRecord>();

  get(id: string): TaskRecord | undefined {
    const r = this.rows.get(id);
    return r && { ...r };
  }

  save(rec: TaskRecord): LogWrite {
    const old = this.rows.get(rec.id);
    if (old && (old.state === 'done' || old.state === 'failed')) return { first: false, failed: null };
    this.rows.set(rec.id, { ...rec, submittedAt: old?.submittedAt ?? rec.submittedAt });
    this.bound();
    return { first: true, failed: null };
  }

  finish(rec: TaskRecord): LogWrite {
    const old = this.rows.get(rec.id);
    if (old && (old.state === 'done' || old.state === 'failed')) return { first: false, failed: null };
    this.rows.set(rec.id, {
      ...rec,
      args: rec.args.length > 0 ? rec.args : (old?.args ?? []),
      submitter: rec.submitter ?? old?.submitter ?? null,
      submittedAt: old?.submittedAt ?? rec.submittedAt,
    });
    this.bound();
    return { first: true, failed: null };
  }

  list(offset: number, limit: number): TaskRecord[] {
    return [...this.rows.values()].reverse().slice(offset, offset + limit);
  }

  count(): number {
    return this.rows.size;
  }

  outstanding(limit: number): TaskRecord[] {
    return [...this.rows.values()].filter((r) => r.state !== 'done' && r.state !== 'failed').slice(0, limit);
  }

  private bound(): void {
    if (this.rows.size <= MEMORY_LOG_TASKS_MAX) return;
    for (const [id, r] of this.rows) {
      if (r.state === 'done' || r.state === 'failed') {
        this.rows.delete(id);
        return;
      }
    }
  }
}
