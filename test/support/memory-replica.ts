import {
  ReplicaSet,
  contentDigest,
  formatLine,
  parseLine,
  parseReplica,
  serialize,
  type ApplyResult,
  type Entry,
  type ReplicaSink,
} from '../../src/p2p/replication/index.js';
import type { SimDisk } from './sim-disk.js';

/**
 * A replica held in memory: the simulation's model of a file (its content survives a crash). With
 * a SimDisk it meets the disk's faults and handles them as ReplicaFile does: the set changes only
 * after an append was stored whole; a failed append may leave a torn tail, cut off before the next
 * append; a restart (reopen) reads the content back with the file's own parser, which rejects a
 * torn line (a line parses only when whole: it ends with the closing quote of its JSON text).
 */
export class MemoryReplica implements ReplicaSink {
  readonly set: ReplicaSet;
  /** The "file": one formatted line per entry, in file order (what survives a crash). */
  lines: string[];
  /** Part of a failed append after the last whole line (a torn write), until it is cut off. */
  tail = '';
  /** Lines a reopen rejected (torn or damaged), as ReplicaFile.open keeps them aside. */
  rejected = 0;
  private dirty = false;

  constructor(
    lines: string[] = [],
    private readonly disk: SimDisk | null = null,
  ) {
    this.set = new ReplicaSet();
    for (const line of lines) {
      const p = parseLine(line);
      if (!p.ok) throw new Error(`bad line in memory replica: ${p.reason}`);
      this.set.resolve(p.entry);
    }
    this.lines = this.set.entries.map(formatLine);
  }

  /** The file's content: whole lines, then any torn tail. */
  content(): string {
    return (this.lines.length > 0 ? this.lines.join('\n') + '\n' : '') + this.tail;
  }

  /** A restart: the content read back, torn or damaged lines rejected (counted in `rejected`). */
  static reopen(content: string, disk: SimDisk | null = null): MemoryReplica {
    const { set, rejected } = parseReplica(content);
    const r = new MemoryReplica(set.entries.map(formatLine), disk);
    r.rejected = rejected.length;
    return r;
  }

  apply(entries: readonly Entry[]): ApplyResult {
    const { added, replaced } = this.set.plan(entries);
    if (added.length > 0) {
      if (this.tail) {
        this.disk?.release(this.tail.length);
        this.tail = '';
      }
      const data = serialize(added);
      const w = this.disk?.write(data.length) ?? { stored: data.length, error: null };
      if (w.error) {
        this.tail = data.slice(0, w.stored);
        return {
          added: [],
          replaced: [],
          failure: { kind: w.error.code === 'ENOSPC' ? 'full' : 'io', file: 'memory', code: w.error.code },
        };
      }
      for (const e of added) this.lines.push(formatLine(e));
    }
    for (const e of [...added, ...replaced]) this.set.resolve(e);
    if (replaced.length > 0) this.dirty = true;
    return { added, replaced };
  }

  append(entries: readonly Entry[]): Entry[] {
    return this.apply(entries).added;
  }

  flush(): boolean {
    if (!this.dirty) return true;
    this.lines = this.set.entries.map(formatLine);
    this.tail = '';
    this.dirty = false;
    return true;
  }

  rewriteCanonical(): string {
    this.set.sortCanonical();
    this.lines = this.set.entries.map(formatLine);
    this.tail = '';
    this.dirty = false;
    return contentDigest(this.set.entries);
  }
}
