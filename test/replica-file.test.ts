import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { ReplicaError, ReplicaFile, reconcileDirectory, writeFileAtomic } from '../src/storage/replica.js';
import {
  ENTRY_TEXT_BYTES_MAX,
  ReplicaSet,
  compareEntries,
  formatLine,
  hash64,
  isEntryText,
  preferred,
  parseLine,
  serialize,
  type Entry,
} from '../src/p2p/replication/index.js';
import { COUNTER_MAX } from '../src/p2p/bounds.js';

const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-replica-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const e = (origin: string, seq: number, lamport: number, text: string): Entry => ({
  origin,
  seq,
  lamport,
  text,
});
const O1 = '1111111111111111';
const O2 = '2222222222222222';
const O3 = '3333333333333333';

/** Any UTF-16 code unit, lone surrogates and control characters included. */
const anyText = fc
  .array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 120 })
  .map((units) => String.fromCharCode(...units));

describe('replica line format', () => {
  it('round-trips any text, one line, four fields', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[0-9a-f]{16}$/),
        fc.integer({ min: 1, max: COUNTER_MAX }),
        fc.integer({ min: 0, max: COUNTER_MAX }),
        anyText.filter(isEntryText),
        (origin, seq, lamport, text) => {
          const entry = e(origin, seq, lamport, text);
          const line = formatLine(entry);
          expect(line).not.toContain('\n');
          expect(line.split('\t')).toHaveLength(4);
          expect(parseLine(line)).toEqual({ ok: true, entry });
          // The bytes written to disk decode back to the same line.
          expect(Buffer.from(line + '\n', 'utf8').toString('utf8')).toBe(line + '\n');
        },
      ),
      { numRuns: 500 },
    );
  });

  it('refuses lines that do not parse, with a reason', () => {
    const bad = [
      '',
      'hello',
      `1\t${O1}\t1`,
      `x\t${O1}\t1\t"a"`,
      `1\tABCDEF0123456789\t1\t"a"`,
      `1\t${O1}\t0\t"a"`,
      `1\t${O1}\t01\t"a"`,
      `1\t${O1}\t1\ta`,
      `1\t${O1}\t1\t"a`,
      `1\t${O1}\t1\t"\\u0041"`,
      `1\t${O1}\t1\t"${'x'.repeat(ENTRY_TEXT_BYTES_MAX + 1)}"`,
      `99999999999999999\t${O1}\t1\t"a"`,
    ];
    for (const line of bad) {
      const p = parseLine(line);
      expect(p.ok, line).toBe(false);
      if (!p.ok) expect(p.reason.length).toBeGreaterThan(0);
    }
  });

  it('orders canonically by Lamport time, origin, sequence', () => {
    const sorted = [e(O2, 1, 1, 'a'), e(O1, 2, 2, 'b'), e(O2, 1, 2, 'c'), e(O2, 2, 2, 'd'), e(O1, 1, 3, 'e')];
    const shuffled = [sorted[3]!, sorted[0]!, sorted[4]!, sorted[2]!, sorted[1]!];
    expect(shuffled.sort(compareEntries)).toEqual(sorted);
  });
});

describe('replica set', () => {
  it('never holds two entries with one identity, and its digest is order-independent', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 50 }), {
          maxLength: 200,
        }),
        (seqs) => {
          const entries = seqs.map((seq) => e(O1, seq, seq % 7, `t${seq}`));
          const a = ReplicaSet.of(entries);
          const b = ReplicaSet.of([...entries].reverse());
          const ids = new Set(entries.map((x) => x.seq));
          expect(a.size).toBe(ids.size);
          expect(b.size).toBe(ids.size);
          // Same entries in another order (content depends on seq only): same digest.
          expect(a.digest()).toBe(b.digest());
          a.sortCanonical();
          expect(a.isCanonical()).toBe(true);
          expect(a.digest()).toBe(b.digest());
          for (const x of entries) expect(a.has(x)).toBe(true);
        },
      ),
    );
  });
});

describe('conflicting versions of one identity', () => {
  it('the preferred version wins in any order, and the indexes and digest follow', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.integer({ min: 1, max: 40 }),
            fc.integer({ min: 0, max: 3 }),
            fc.constantFrom('a', 'b', 'c'),
          ),
          {
            maxLength: 300,
          },
        ),
        (items) => {
          const versions = items.map(([seq, l, t]) => e(O1, seq, l, t));
          const set = new ReplicaSet();
          for (const v of versions) set.resolve(v);
          const reversed = ReplicaSet.of([...versions].reverse());
          // The winner per identity, computed directly.
          const best = new Map<number, Entry>();
          for (const v of versions) {
            const held = best.get(v.seq);
            best.set(v.seq, held ? preferred(held, v) : v);
          }
          expect(set.size).toBe(best.size);
          for (const w of best.values()) {
            expect(set.get(w)).toEqual(w);
            const key = hash64(formatLine(w), 1);
            expect(set.byContentHash(key[0], key[1])).toEqual(w);
          }
          // Losing versions are not findable by content any more.
          for (const v of versions) {
            const w = best.get(v.seq)!;
            if (v.lamport === w.lamport && v.text === w.text) continue;
            const key = hash64(formatLine(v), 1);
            expect(set.byContentHash(key[0], key[1])).toBeUndefined();
          }
          expect(set.digest()).toBe(ReplicaSet.of(best.values()).digest());
          expect(reversed.digest()).toBe(set.digest());
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a file holding two versions keeps the preferred one and sets the other aside', () => {
    const dir = tmp();
    const older = formatLine(e(O1, 1, 1, 'old'));
    const newer = formatLine(e(O1, 1, 5, 'new'));
    const other = formatLine(e(O2, 1, 2, 'x'));
    fs.writeFileSync(path.join(dir, 'h1.txt'), [older, other, newer].join('\n') + '\n');
    const f = ReplicaFile.open(dir, 'h1');
    f.close();
    expect(f.rejected).toEqual([
      { line: 1, reason: `another version of entry ${O1}:1 wins (line 3)`, text: older },
    ]);
    expect(fs.readFileSync(path.join(dir, 'h1.txt'), 'utf8')).toBe(`${newer}\n${other}\n`);
  });

  it('a replacement is written by flush, atomically', () => {
    const dir = tmp();
    const f = ReplicaFile.open(dir, 'h1');
    f.append([e(O1, 1, 1, 'old'), e(O2, 1, 1, 'y')]);
    expect(f.apply([e(O1, 1, 2, 'new'), e(O1, 1, 0, 'older')])).toEqual({
      added: [],
      replaced: [e(O1, 1, 2, 'new')],
    });
    f.flush();
    f.append([e(O3, 1, 3, 'z')]);
    f.close();
    expect(fs.readFileSync(path.join(dir, 'h1.txt'), 'utf8')).toBe(
      [e(O1, 1, 2, 'new'), e(O2, 1, 1, 'y'), e(O3, 1, 3, 'z')].map(formatLine).join('\n') + '\n',
    );
  });
});

describe('replica file', () => {
  it('appends durably, once per identity, and reopens to the same content', () => {
    const dir = tmp();
    const f = ReplicaFile.open(dir, 'h1');
    expect(f.append([e(O1, 1, 5, 'a'), e(O1, 2, 3, 'b\nc')]).length).toBe(2);
    expect(f.append([e(O1, 1, 5, 'a'), e(O2, 1, 1, 'd')]).map((x) => x.text)).toEqual(['d']);
    f.close();
    const content = fs.readFileSync(path.join(dir, 'h1.txt'), 'utf8');
    expect(content.split('\n')).toHaveLength(4);
    const again = ReplicaFile.open(dir, 'h1');
    expect(again.rejected).toEqual([]);
    expect(again.set.entries.map((x) => x.text)).toEqual(['a', 'b\nc', 'd']);
    again.close();
  });

  it('rewrites atomically in canonical order and leaves no temp file', () => {
    const dir = tmp();
    const f = ReplicaFile.open(dir, 'h1');
    f.append([e(O2, 1, 9, 'z'), e(O1, 1, 2, 'y'), e(O3, 4, 2, 'x')]);
    const sha = f.rewriteCanonical();
    const data = fs.readFileSync(path.join(dir, 'h1.txt'));
    expect(createHash('sha256').update(data).digest('hex')).toBe(sha);
    expect(
      data
        .toString()
        .trimEnd()
        .split('\n')
        .map((l) => (parseLine(l) as { entry: Entry }).entry.text),
    ).toEqual(['y', 'x', 'z']);
    // Appends after a rewrite still go to the (new) file.
    f.append([e(O1, 2, 10, 'w')]);
    f.close();
    expect(fs.readFileSync(path.join(dir, 'h1.txt'), 'utf8').trimEnd().split('\n')).toHaveLength(4);
    expect(fs.readdirSync(dir)).toEqual(['h1.txt']);
  });

  it('a failed rewrite leaves the old file whole and says why in one line', () => {
    const dir = tmp();
    const file = path.join(dir, 'h1.txt');
    fs.writeFileSync(file, formatLine(e(O1, 1, 1, 'keep')) + '\n');
    // Renaming a file over a directory fails after the temp file was written.
    const blocked = path.join(dir, 'blocked.txt');
    fs.mkdirSync(blocked);
    fs.writeFileSync(path.join(blocked, 'x'), '');
    expect(() => writeFileAtomic(blocked, 'new content\n')).toThrow(ReplicaError);
    expect(() => writeFileAtomic(blocked, 'new content\n')).toThrow(
      /^cannot rewrite .*blocked\.txt \(E[A-Z]+\); /,
    );
    expect(fs.readdirSync(dir).sort()).toEqual(['blocked.txt', 'h1.txt']);
    expect(fs.readFileSync(file, 'utf8')).toBe(formatLine(e(O1, 1, 1, 'keep')) + '\n');
  });

  it('keeps unparsable and duplicate lines aside with their line numbers, never drops them', () => {
    const dir = tmp();
    const good1 = formatLine(e(O1, 1, 1, 'one'));
    const good2 = formatLine(e(O1, 2, 2, 'two'));
    const lines = [
      good1,
      'hand-edited garbage',
      good2,
      good1,
      `3\t${O1}\t3\tnot json`,
      `4\t${O1}\t4\t"cut off`,
    ];
    fs.writeFileSync(path.join(dir, 'h1.txt'), lines.join('\n'));
    const f = ReplicaFile.open(dir, 'h1');
    f.close();
    expect(f.rejected.map((r) => r.line)).toEqual([2, 4, 5, 6]);
    expect(f.rejected[1]!.reason).toMatch(/duplicate/);
    expect(fs.readFileSync(path.join(dir, 'h1.txt'), 'utf8')).toBe(`${good1}\n${good2}\n`);
    const aside = fs.readFileSync(path.join(dir, 'h1.rejected'), 'utf8');
    for (const r of f.rejected) {
      expect(aside).toContain(`line ${r.line}: ${r.reason}`);
      expect(aside).toContain(`\n${r.text}\n`);
    }
    // Now the file is clean: nothing more is rejected.
    const again = ReplicaFile.open(dir, 'h1');
    again.close();
    expect(again.rejected).toEqual([]);
  });

  it('keeps aside a line whose Lamport time or seq is past COUNTER_MAX: no peer could have stamped it', () => {
    // A holder starts its clock above every entry it holds: such a line would refuse it a start.
    const dir = tmp();
    const good = formatLine(e(O1, 1, 1, 'ok'));
    const lines = [good, `${COUNTER_MAX + 1}\t${O1}\t2\t"late"`, `1\t${O1}\t${COUNTER_MAX + 1}\t"far"`];
    for (const line of lines.slice(1)) expect(parseLine(line)).toMatchObject({ ok: false });
    expect(parseLine(formatLine(e(O1, COUNTER_MAX, COUNTER_MAX, 'edge'))).ok).toBe(true);
    fs.writeFileSync(path.join(dir, 'h1.txt'), lines.join('\n'));
    const f = ReplicaFile.open(dir, 'h1');
    f.close();
    expect(f.rejected.map((r) => [r.line, r.reason])).toEqual([
      [2, 'Lamport time is past what a peer can count to'],
      [3, 'sequence is past what a peer can count to'],
    ]);
    expect(fs.readFileSync(path.join(dir, 'h1.txt'), 'utf8')).toBe(`${good}\n`);
    expect(fs.readFileSync(path.join(dir, 'h1.rejected'), 'utf8')).toContain(`\n${lines[1]}\n`);
  });

  it('an unwritable directory is one clear error', () => {
    const dir = tmp();
    const notADir = path.join(dir, 'plain');
    fs.writeFileSync(notADir, '');
    let err: unknown;
    try {
      ReplicaFile.open(path.join(notADir, 'replicas'), 'h1');
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(ReplicaError);
    expect((err as Error).message).toMatch(/^cannot write to the replica directory .* \(ENOTDIR\); .*--dir$/);
    expect((err as Error).message).not.toContain('\n');
  });
});

describe('offline reconcile', () => {
  it('merges three overlapping files into identical files in canonical order', () => {
    const dir = tmp();
    const all = Array.from({ length: 30 }, (_, i) =>
      e([O1, O2, O3][i % 3]!, Math.floor(i / 3) + 1, (i * 7) % 11, `m${i}\t"${i}"`),
    );
    const pick = (f: (i: number) => boolean) => all.filter((_, i) => f(i));
    const parts = {
      r1: pick((i) => i % 2 === 0),
      r2: pick((i) => i % 3 !== 0),
      r3: pick((i) => i < 10 || i === 29),
    };
    for (const [name, entries] of Object.entries(parts))
      fs.writeFileSync(path.join(dir, `${name}.txt`), serialize([...entries].reverse()));
    fs.writeFileSync(path.join(dir, 'notes.md'), 'not a replica');
    const rows = reconcileDirectory(dir);
    expect(rows.map((r) => r.replica)).toEqual(['r1', 'r2', 'r3']);
    const union = new Set(
      Object.values(parts)
        .flat()
        .map((x) => `${x.origin}:${x.seq}`),
    );
    for (const r of rows) {
      expect(r.after).toBe(union.size);
      expect(r.added).toBe(union.size - parts[r.replica as keyof typeof parts].length);
      expect(r.before).toBe(parts[r.replica as keyof typeof parts].length);
    }
    const contents = rows.map((r) => fs.readFileSync(path.join(dir, `${r.replica}.txt`), 'utf8'));
    expect(new Set(contents).size).toBe(1);
    const entries = contents[0]!
      .trimEnd()
      .split('\n')
      .map((l) => (parseLine(l) as { entry: Entry }).entry);
    expect(entries).toEqual([...entries].sort(compareEntries));
    expect(createHash('sha256').update(contents[0]!).digest('hex')).toBe(rows[0]!.digest);
    // Idempotent: a second run adds nothing and changes no byte.
    const second = reconcileDirectory(dir);
    expect(second.every((r) => r.added === 0)).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'r1.txt'), 'utf8')).toBe(contents[0]);
    expect(fs.readFileSync(path.join(dir, 'notes.md'), 'utf8')).toBe('not a replica');
  });

  it('gives every file the preferred version where files hold different versions', () => {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'a.txt'), serialize([e(O1, 1, 1, 'old'), e(O2, 1, 1, 'p')]));
    fs.writeFileSync(path.join(dir, 'b.txt'), serialize([e(O1, 1, 4, 'new')]));
    fs.writeFileSync(path.join(dir, 'c.txt'), serialize([e(O1, 1, 4, 'new'), e(O2, 1, 1, 'p')]));
    const rows = reconcileDirectory(dir);
    expect(rows.map((r) => [r.replica, r.before, r.after, r.added, r.replaced])).toEqual([
      ['a', 2, 2, 0, 1],
      ['b', 1, 2, 1, 0],
      ['c', 2, 2, 0, 0],
    ]);
    const want = serialize([e(O1, 1, 4, 'new'), e(O2, 1, 1, 'p')].sort(compareEntries));
    for (const n of ['a', 'b', 'c']) expect(fs.readFileSync(path.join(dir, `${n}.txt`), 'utf8')).toBe(want);
  });

  it('keeps a bad line of one file aside and still merges the rest', () => {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'a.txt'), `${formatLine(e(O1, 1, 1, 'x'))}\noops\n`);
    fs.writeFileSync(path.join(dir, 'b.txt'), `${formatLine(e(O2, 1, 1, 'y'))}\n`);
    const rows = reconcileDirectory(dir);
    expect(rows.map((r) => [r.replica, r.before, r.after, r.rejected])).toEqual([
      ['a', 1, 2, 1],
      ['b', 1, 2, 0],
    ]);
    expect(fs.readFileSync(path.join(dir, 'a.rejected'), 'utf8')).toContain('line 2');
  });

  it('keeps a line that is not valid UTF-8 aside byte for byte, never rewritten as U+FFFD, reported once', () => {
    const dir = tmp();
    // "café" written by a Latin-1 editor: 0xE9 alone is not UTF-8.
    const latin1 = Buffer.concat([Buffer.from(`2\t${O1}\t2\t"caf`), Buffer.from([0xe9]), Buffer.from('"')]);
    const good = formatLine(e(O1, 1, 1, 'x'));
    fs.writeFileSync(
      path.join(dir, 'a.txt'),
      Buffer.concat([Buffer.from(`${good}\n`), latin1, Buffer.from('\n')]),
    );
    fs.writeFileSync(path.join(dir, 'b.txt'), `${formatLine(e(O2, 1, 1, 'y'))}\n`);
    const rows = reconcileDirectory(dir);
    expect(rows.map((r) => [r.replica, r.before, r.after, r.rejected])).toEqual([
      ['a', 1, 2, 1],
      ['b', 1, 2, 0],
    ]);
    const merged = fs.readFileSync(path.join(dir, 'a.txt'));
    expect(merged.toString('utf8')).not.toContain('\ufffd');
    expect(merged.equals(fs.readFileSync(path.join(dir, 'b.txt')))).toBe(true);
    const aside = fs.readFileSync(path.join(dir, 'a.rejected'));
    expect(aside.includes(Buffer.concat([Buffer.from('\n'), latin1, Buffer.from('\n')]))).toBe(true);
    expect(aside.toString('latin1')).toMatch(/a\.txt line 2: not valid UTF-8\n/);
    // Reported once: the line is aside now, so a second reconcile rejects nothing.
    expect(reconcileDirectory(dir).map((r) => r.rejected)).toEqual([0, 0]);
  });
});

describe('replica file on a failing disk', () => {
  /** Makes the next write store `bytes` bytes and the one after fail with `code`, as a disk filling up does. */
  function failNextWrite(bytes: number, code: string): void {
    const real = fs.writeSync.bind(fs) as (fd: number, b: Buffer, off: number, len?: number) => number;
    let calls = 0;
    const spy = vi.spyOn(fs, 'writeSync').mockImplementation(((
      fd: number,
      b: Buffer,
      off?: number | null,
    ) => {
      if (calls++ === 0 && bytes > 0) return real(fd, b, off ?? 0, bytes);
      spy.mockRestore();
      throw Object.assign(new Error(`${code}: simulated`), { code });
    }) as typeof fs.writeSync);
  }

  it('a short write then ENOSPC: nothing held, the torn part cut off, the retry written whole', () => {
    const dir = tmp();
    const f = ReplicaFile.open(dir, 'h1');
    f.append([e(O1, 1, 1, 'kept')]);
    const lost = e(O1, 2, 2, 'x'.repeat(100));
    failNextWrite(20, 'ENOSPC');
    let failure: unknown;
    try {
      failure = f.apply([lost]).failure;
    } catch (err) {
      failure = err; // the code before the fix threw here
    }
    expect(failure).toMatchObject({ code: 'ENOSPC' });
    expect(f.set.has(lost), 'an entry the disk refused is held').toBe(false);
    expect(fs.readFileSync(path.join(dir, 'h1.txt'), 'utf8')).toBe(formatLine(e(O1, 1, 1, 'kept')) + '\n');
    // Space returns: the same entry is written (not taken for a duplicate), and reads back whole.
    expect(f.apply([lost]).added).toEqual([lost]);
    f.close();
    const again = ReplicaFile.open(dir, 'h1');
    expect(again.rejected).toEqual([]);
    expect(again.set.entries.map((x) => x.seq)).toEqual([1, 2]);
    again.close();
  });

  it('a torn tail that could not be cut survives a failed rewrite and is cut before the next append', () => {
    const dir = tmp();
    const f = ReplicaFile.open(dir, 'h1');
    f.append([e(O1, 1, 1, 'kept')]);
    failNextWrite(20, 'ENOSPC');
    const cut = vi.spyOn(fs, 'ftruncateSync').mockImplementationOnce(() => {
      throw Object.assign(new Error('EIO: simulated'), { code: 'EIO' });
    });
    expect(f.apply([e(O1, 2, 2, 'x'.repeat(100))]).failure?.kind).toBe('full');
    cut.mockRestore();
    // The torn part is still there; a canonical rewrite then fails too (the rename is refused).
    vi.spyOn(fs, 'renameSync').mockImplementationOnce(() => {
      throw Object.assign(new Error('ENOSPC: simulated'), { code: 'ENOSPC' });
    });
    expect(() => f.rewriteCanonical()).toThrow(ReplicaError);
    vi.restoreAllMocks();
    // The next append cuts the torn part first: the file reads back whole.
    expect(f.apply([e(O1, 3, 3, 'after')]).added).toHaveLength(1);
    f.close();
    const again = ReplicaFile.open(dir, 'h1');
    expect(again.rejected).toEqual([]);
    expect(again.set.entries.map((x) => x.text)).toEqual(['kept', 'after']);
    again.close();
  });

  it('an EIO with nothing written leaves the file and the set as they were', () => {
    const dir = tmp();
    const f = ReplicaFile.open(dir, 'h1');
    failNextWrite(0, 'EIO');
    const r = f.apply([e(O2, 1, 1, 'a')]);
    expect(r).toEqual({ added: [], replaced: [], failure: { kind: 'io', file: f.file, code: 'EIO' } });
    expect(f.set.size).toBe(0);
    expect(f.apply([e(O2, 1, 1, 'a')]).added).toHaveLength(1);
    f.close();
  });
});
