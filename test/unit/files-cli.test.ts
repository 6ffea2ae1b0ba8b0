/**
 * What `peer chat` prints about files (src/cli/files.ts): sizes accepted by --max-file-bytes, the
 * exact JSON line of a file received, remote names and paths escaped on a terminal, the progress bar.
 */
import { describe, expect, it } from 'vitest';
import { humanBytes, incomingLine, outcomeText, parseByteSize, progressBar } from '../../src/cli/files.js';
import { UsageError } from '../../src/cli/network.js';
import type { IncomingTransfer } from '../../src/p2p/files/index.js';

const transfer: IncomingTransfer = {
  id: '0123456789abcdef',
  from: 'fedcba9876543210',
  fromName: 'alice',
  name: 'notes.txt',
  bytes: 2048,
  sha256: 'ab'.repeat(32),
  chunkBytes: 1024,
};

describe('--max-file-bytes', () => {
  it.each([
    ['5000000', 5_000_000],
    ['512K', 512 * 1024],
    ['10M', 10 * 1024 ** 2],
    ['10MiB', 10 * 1024 ** 2],
    ['1.5g', 1.5 * 1024 ** 3],
    ['0', 0],
  ])('takes %s', (s, bytes) => {
    expect(parseByteSize('--max-file-bytes', s)).toBe(bytes);
  });

  it.each(['', 'lots', '-1', '10X', '2T5', '2000T'])('refuses %j with what to write instead', (s) => {
    expect(() => parseByteSize('--max-file-bytes', s)).toThrow(UsageError);
    expect(() => parseByteSize('--max-file-bytes', s)).toThrow(/use e\.g\. 5000000, 512K, 10M or 2G/);
  });
});

describe('lines about files', () => {
  it('a file received is exactly {"type":"file","from","name","bytes","sha256","path"} in JSON', () => {
    const line = incomingLine({ kind: 'received', transfer, path: '/d/alice/notes.txt' }, true);
    expect(line).toBe(
      `{"type":"file","from":"alice","name":"notes.txt","bytes":2048,"sha256":"${'ab'.repeat(32)}","path":"/d/alice/notes.txt"}`,
    );
    expect(incomingLine({ kind: 'progress', transfer, heldBytes: 1024 }, true)).toBeNull();
    expect(incomingLine({ kind: 'resumed', transfer, heldBytes: 1024 }, true)).toBe(
      '{"type":"file-resumed","from":"alice","name":"notes.txt","bytes":2048,"held":1024}',
    );
  });

  it('JSON keeps remote text exact; a terminal line escapes it', () => {
    const evil = { ...transfer, fromName: 'mallory\u202e', name: 'a\u001b]0;pwned\u0007.txt' };
    const json = incomingLine({ kind: 'refused', transfer: evil, reason: 'x\ny' }, true)!;
    expect(JSON.parse(json)).toEqual({
      type: 'file-refused',
      from: evil.fromName,
      name: evil.name,
      bytes: 2048,
      reason: 'x\ny',
    });
    const human = incomingLine({ kind: 'received', transfer: evil, path: '/d/\u001b[2J' }, false)!;
    expect([...human].filter((ch) => ch < ' ' || ch === '\u007f' || ch === '\u202e')).toEqual([]);
    expect(human).toContain('a\\x1b]0;pwned\\x07.txt');
    expect(human).toContain('/d/\\x1b[2J');
  });

  it('says why a receiver does not hold the file', () => {
    expect(outcomeText({ peer: 'p', name: 'bob', status: 'refused', reason: 'too large' })).toBe(
      'bob (refused: too large)',
    );
    expect(outcomeText({ peer: 'p', name: 'carol', status: 'gone', reason: '' })).toBe(
      'carol (gone before it had the whole file)',
    );
  });

  it('sizes and bars', () => {
    expect([humanBytes(512), humanBytes(5000), humanBytes(3 * 1024 ** 2 + 12_345)]).toEqual([
      '512 B',
      '4.9 KiB',
      '3.0 MiB',
    ]);
    expect(progressBar(0, 100)).toBe(`[${'.'.repeat(24)}]   0%`);
    expect(progressBar(50, 100)).toBe(`[${'#'.repeat(12)}${'.'.repeat(12)}]  50%`);
    expect(progressBar(0, 0)).toBe(`[${'#'.repeat(24)}] 100%`);
  });
});
