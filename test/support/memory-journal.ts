/**
 * The events journal in memory, for simulations: its rows outlive a crash of the peer (a test
 * keeps the object across crash and restart, as a real disk keeps the SQLite file), and each
 * append asks a SimDisk what the write does. A failed append stores nothing, as a SQLite
 * transaction that failed leaves nothing behind.
 */
import type { EventJournal, JournaledEvent } from '../../src/p2p/events/index.js';
import type { WriteFailure } from '../../src/p2p/write-failure.js';
import type { SimDisk } from './sim-disk.js';

/** Bytes a row takes besides its payload (key, name, numbers), near enough for a full disk. */
const ROW_OVERHEAD_BYTES = 128;

export class MemoryJournal implements EventJournal {
  readonly rows = new Map<string, JournaledEvent>();
  /** Appends that failed. */
  failed = 0;

  constructor(private readonly disk: SimDisk) {}

  append(e: JournaledEvent): WriteFailure | null {
    const bytes = e.payload.length + ROW_OVERHEAD_BYTES;
    const { stored, error } = this.disk.write(bytes);
    if (error) {
      this.disk.release(stored);
      this.failed++;
      return { kind: error.code === 'ENOSPC' ? 'full' : 'io', file: 'journal', code: error.code };
    }
    if (!this.rows.has(e.key)) this.rows.set(e.key, { ...e, payload: Buffer.from(e.payload) });
    return null;
  }

  done(key: string): void {
    const e = this.rows.get(key);
    if (!e) return;
    this.rows.delete(key);
    this.disk.release(e.payload.length + ROW_OVERHEAD_BYTES);
  }

  pending(max: number): JournaledEvent[] {
    return [...this.rows.values()].slice(0, max);
  }
}
