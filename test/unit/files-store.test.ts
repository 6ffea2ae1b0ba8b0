/**
 * Where a receiver puts files (src/storage/files.ts): names that could leave the folder are
 * refused, a taken name gets a suffix before its extension, nothing is ever overwritten, a file
 * appears only once its SHA-256 matches, and a transfer in progress is read back after a restart
 * (a damaged or planted state file is refused, never trusted).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fsp from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ChunkSet, type IncomingTransfer } from '../../src/p2p/files/index.js';
import { IncomingFileStore, inside, openOutgoingFile, suffixed } from '../../src/storage/files.js';
import type { StorageHealth } from '../../src/storage/health.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-files-'));
});
afterEach(() => {
  vi.restoreAllMocks();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Node's FileHandle class, whose methods the store calls (it is not exported by name). */
async function fileHandleClass(): Promise<{ prototype: fsp.FileHandle }> {
  const fh = await fsp.open(path.join(dir, 'probe'), 'w');
  await fh.close();
  return fh.constructor as unknown as { prototype: fsp.FileHandle };
}

const content = Buffer.from('hello, chunked world!'); // 21 bytes: chunks of 8, 8, 5
const transfer = (over: Partial<IncomingTransfer> = {}): IncomingTransfer => ({
  id: '00112233aabbccdd',
  from: 'fedcba9876543210',
  fromName: 'alice',
  name: 'notes.txt',
  bytes: content.length,
  sha256: createHash('sha256').update(content).digest('hex'),
  chunkBytes: 8,
  ...over,
});

/** Writes the chunks `indexes` of `content` as the receiver does, each with the set it holds after. */
async function writeChunks(
  store: IncomingFileStore,
  t: IncomingTransfer,
  indexes: number[],
  held = new ChunkSet(3),
) {
  for (const i of indexes) {
    held = held.with(i);
    await store.write(t.id, i * 8, content.subarray(i * 8, i * 8 + 8), held);
  }
  return held;
}

describe('names', () => {
  it('suffixes before the extension, never for a leading dot', () => {
    expect(suffixed('report.pdf', 0)).toBe('report.pdf');
    expect(suffixed('report.pdf', 1)).toBe('report (1).pdf');
    expect(suffixed('a.tar.gz', 2)).toBe('a.tar (2).gz');
    expect(suffixed('README', 3)).toBe('README (3)');
    expect(suffixed('.bashrc', 1)).toBe('.bashrc (1)');
  });

  it.each(['..', '.', '', '../x', 'a/b', '/etc/passwd', 'a\0b', 'a\x1b[2Jb'])(
    'refuses %j inside a folder',
    (name) => {
      expect(() => inside(dir, name)).toThrow(RangeError);
    },
  );

  it('refuses a sender name that is no folder name before writing anything', async () => {
    const store = new IncomingFileStore(dir, 'bob');
    await expect(store.begin(transfer({ fromName: '..' }))).rejects.toThrow(/unsafe sender name/);
    expect(fs.readdirSync(dir)).toEqual([]);
    expect(() => new IncomingFileStore(dir, '..')).toThrow(RangeError);
  });
});

describe('IncomingFileStore', () => {
  it('puts a verified file under the sender, and a second one with a suffix', async () => {
    const store = new IncomingFileStore(dir, 'bob');
    expect(await store.freeBytes()).toBeGreaterThan(0);
    for (const id of ['00112233aabbccdd', '00112233aabbccde']) {
      const t = transfer({ id });
      await store.begin(t);
      await writeChunks(store, t, [2, 0, 1]);
    }
    expect(await store.finish('00112233aabbccdd')).toEqual({
      ok: true,
      path: path.join(dir, 'alice', 'notes.txt'),
    });
    expect(await store.finish('00112233aabbccde')).toEqual({
      ok: true,
      path: path.join(dir, 'alice', 'notes (1).txt'),
    });
    expect(fs.readFileSync(path.join(dir, 'alice', 'notes.txt'))).toEqual(content);
    expect(fs.readFileSync(path.join(dir, 'alice', 'notes (1).txt'))).toEqual(content);
    expect(await store.pending()).toEqual([]);
  });

  it('never overwrites a file already there', async () => {
    fs.mkdirSync(path.join(dir, 'alice'));
    fs.writeFileSync(path.join(dir, 'alice', 'notes.txt'), 'mine');
    const store = new IncomingFileStore(dir, 'bob');
    const t = transfer();
    await store.begin(t);
    await writeChunks(store, t, [0, 1, 2]);
    expect(await store.finish(t.id)).toEqual({ ok: true, path: path.join(dir, 'alice', 'notes (1).txt') });
    expect(fs.readFileSync(path.join(dir, 'alice', 'notes.txt'), 'utf8')).toBe('mine');
  });

  it('refuses a file whose SHA-256 does not match, and leaves nothing behind', async () => {
    const store = new IncomingFileStore(dir, 'bob');
    const t = transfer({ sha256: 'f'.repeat(64) });
    await store.begin(t);
    await writeChunks(store, t, [0, 1, 2]);
    const r = await store.finish(t.id);
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.reason).toContain('damaged');
    expect(fs.existsSync(path.join(dir, 'alice'))).toBe(false);
    expect(fs.readdirSync(path.join(dir, '.partial', 'bob'))).toEqual([]);
  });

  it('after a restart, knows which chunks it holds and finishes the file', async () => {
    const t = transfer();
    const first = new IncomingFileStore(dir, 'bob');
    await first.begin(t);
    await writeChunks(first, t, [1]);
    // A restart: a new store on the same folder (the old one's handles are simply dropped).
    const again = new IncomingFileStore(dir, 'bob');
    const pending = await again.pending();
    expect(pending.map((p) => [p.transfer, p.held.has(0), p.held.has(1), p.held.has(2)])).toEqual([
      [t, false, true, false],
    ]);
    await writeChunks(again, t, [0, 2], pending[0]!.held);
    expect(await again.finish(t.id)).toEqual({ ok: true, path: path.join(dir, 'alice', 'notes.txt') });
    expect(fs.readFileSync(path.join(dir, 'alice', 'notes.txt'))).toEqual(content);
    // Another peer sharing the folder does not take over bob's transfers.
    expect(await new IncomingFileStore(dir, 'carol').pending()).toEqual([]);
  });

  it('after a crash in the middle of a state write, removes the temporary file it left', async () => {
    const t = transfer();
    const first = new IncomingFileStore(dir, 'bob');
    await first.begin(t);
    await writeChunks(first, t, [1]);
    // What a process killed between writing and renaming its state file leaves (another pid).
    const partial = path.join(dir, '.partial', 'bob');
    const leftover = path.join(partial, `.${t.id}.state.${process.pid + 1}.tmp`);
    fs.writeFileSync(leftover, '{"v":1');
    const again = new IncomingFileStore(dir, 'bob');
    expect((await again.pending()).map((p) => p.transfer)).toEqual([t]);
    expect(fs.existsSync(leftover)).toBe(false);
    await writeChunks(again, t, [0, 2]);
    expect((await again.finish(t.id)).ok).toBe(true);
    expect(fs.readdirSync(partial)).toEqual([]);
  });

  it('hashes chunks written in order as they come, so finishing reads nothing back', async () => {
    const store = new IncomingFileStore(dir, 'bob');
    const t = transfer();
    await store.begin(t);
    await writeChunks(store, t, [0, 1, 2]);
    const read = vi.spyOn((await fileHandleClass()).prototype, 'read');
    expect(await store.finish(t.id)).toEqual({ ok: true, path: path.join(dir, 'alice', 'notes.txt') });
    const bytesRead = await Promise.all(
      read.mock.results.map((r) => r.value as Promise<{ bytesRead: number }>),
    );
    expect(bytesRead.reduce((sum, r) => sum + r.bytesRead, 0)).toBe(0);
  });

  it('verifies a chunk whose first write failed and came again (it is hashed once)', async () => {
    const store = new IncomingFileStore(dir, 'bob');
    const t = transfer();
    await store.begin(t);
    const datasync = vi
      .spyOn((await fileHandleClass()).prototype, 'datasync')
      .mockRejectedValueOnce(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
    await expect(writeChunks(store, t, [0])).rejects.toThrow();
    datasync.mockRestore();
    await writeChunks(store, t, [0, 1, 2]);
    expect(await store.finish(t.id)).toEqual({ ok: true, path: path.join(dir, 'alice', 'notes.txt') });
    expect(fs.readFileSync(path.join(dir, 'alice', 'notes.txt'))).toEqual(content);
  });

  it('drops a transfer while a chunk is being written without counting it as a failing disk', async () => {
    const failed: unknown[] = [];
    const health = { failed: (f: unknown) => failed.push(f), succeeded: () => {} };
    const store = new IncomingFileStore(dir, 'bob', health as unknown as StorageHealth);
    const t = transfer();
    await store.begin(t);
    const writing = store.write(t.id, 0, content.subarray(0, 8), new ChunkSet(3).with(0));
    await store.discard(t.id);
    await writing.catch(() => {});
    expect(failed).toEqual([]);
    expect(fs.readdirSync(path.join(dir, '.partial', 'bob'))).toEqual([]);
  });

  it('refuses a damaged or planted state file and removes it', async () => {
    const t = transfer();
    const store = new IncomingFileStore(dir, 'bob');
    await store.begin(t);
    const state = path.join(dir, '.partial', 'bob', `${t.id}.state`);
    const saved = JSON.parse(fs.readFileSync(state, 'utf8')) as { transfer: IncomingTransfer };
    for (const bad of [
      '{not json',
      JSON.stringify({ ...saved, transfer: { ...saved.transfer, name: '../../evil' } }),
      JSON.stringify({ ...saved, transfer: { ...saved.transfer, fromName: '..' } }),
      JSON.stringify({ ...saved, held: Buffer.from([0xff, 0xff, 0xff]).toString('base64') }),
    ]) {
      fs.writeFileSync(state, bad);
      fs.writeFileSync(path.join(dir, '.partial', 'bob', `${t.id}.part`), '');
      const again = new IncomingFileStore(dir, 'bob');
      expect(await again.pending()).toEqual([]);
      expect(again.rejected).toBe(1);
      expect(fs.readdirSync(path.join(dir, '.partial', 'bob'))).toEqual([]);
    }
  });
});

describe('openOutgoingFile', () => {
  it('reads any range, hashes the whole, and refuses what is not a regular file', async () => {
    const file = path.join(dir, 'data.bin');
    fs.writeFileSync(file, content);
    const f = await openOutgoingFile(file);
    expect([f.name, f.bytes, f.sha256]).toEqual(['data.bin', 21, transfer().sha256]);
    expect(Buffer.from(await f.read(16, 8))).toEqual(content.subarray(16));
    await f.close();
    await expect(openOutgoingFile(dir)).rejects.toThrow(/not a regular file/);
    await expect(openOutgoingFile(path.join(dir, 'missing'))).rejects.toThrow(/cannot read .*ENOENT/);
  });
});
