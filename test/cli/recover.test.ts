/**
 * `peer recover` on real files with the built CLI: replays received-but-unprocessed chat lines
 * exactly once (a line already stored counts as a duplicate suppressed), restores the newest good
 * checkpoint, rebuilds a replica file that is behind the log and damaged, and refuses damaged or
 * missing databases with one line, leaving them untouched.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { runCli, tempDir } from '../support/proc.js';
import { PeerStore, databasePath } from '../../src/storage/store.js';
import { fillInbox, openCheckpoints } from '../../src/storage/checkpoint.js';
import { registerStandardSources } from '../../src/cli/checkpointing.js';
import { ChatStore } from '../../src/storage/chat.js';
import { parseReplica, formatLine, type Entry } from '../../src/p2p/replication/index.js';
import type { ChatLine } from '../../src/p2p/chat.js';
import type { RecoverResult } from '../../src/commands/recover.js';

const ORIGIN = '0123456789abcdef';
const line = (n: number): ChatLine => ({
  id: `${ORIGIN}/1/${n}`,
  from: ORIGIN,
  fromName: 'bob',
  to: null,
  toName: null,
  text: `hello ${n}`,
  lamport: 10 + n,
  at: 1_700_000_000_000 + n,
  history: false,
});

async function prepare(dir: string, replicas: string): Promise<void> {
  PeerStore.open(dir, 'alice').close();
  const cp = openCheckpoints(dir, 'alice');
  registerStandardSources(
    cp,
    () => 500,
    () => false,
  );
  for (let n = 1; n <= 4; n++)
    await cp.receive({
      id: line(n).id,
      topic: 'chat',
      sender: ORIGIN,
      lamport: line(n).lamport,
      payload: JSON.stringify(line(n)),
    });
  // Line 1 was fully processed; line 2 reached chat's table but the crash came before its flag.
  await cp.processed(line(1).id, (db) => new ChatStore(db).save(line(1), 0));
  new ChatStore(cp.db).save(line(2), 0);
  cp.checkpoint();
  const entries: Entry[] = Array.from({ length: 5 }, (_, i) => ({
    origin: ORIGIN,
    seq: i + 1,
    lamport: 20 + i,
    text: `e${i + 1}`,
  }));
  await cp.logReplica('alice', entries);
  cp.close();
  fs.mkdirSync(replicas, { recursive: true });
  fs.writeFileSync(
    path.join(replicas, 'alice.txt'),
    `${formatLine(entries[0]!)}\n${formatLine(entries[1]!)}\nnot a line\n`,
  );
}

describe('peer recover', () => {
  it('replays each unprocessed message once, restores the checkpoint, rebuilds the replica file', async () => {
    const dir = tempDir('recover');
    const replicas = path.join(dir, 'replicas');
    await prepare(dir, replicas);
    const r = await runCli(['recover', '--name', 'alice', '--data-dir', dir, '--dir', replicas, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as RecoverResult;
    expect(out.unprocessedBefore).toBe(3);
    expect(out.replayed).toBe(2);
    expect(out.duplicatesSuppressed).toBe(1);
    expect(out.lamport).toBe(500);
    expect(out.lamportStart).toBeGreaterThan(500);
    expect(out.checkpoint.seq).toBe(1);
    expect(out.replicaEntriesRestored).toBe(3);
    expect(out.replicas[0]).toMatchObject({
      replica: 'alice',
      logged: 5,
      before: 2,
      damagedLines: 1,
      restored: 3,
    });
    const file = parseReplica(fs.readFileSync(path.join(replicas, 'alice.txt'), 'utf8'));
    expect(file.rejected).toEqual([]);
    expect(file.set.size).toBe(5);
    expect(fs.readFileSync(path.join(replicas, 'alice.rejected'), 'utf8')).toContain('not a line');
    // Each line stored exactly once in chat's table.
    const store = PeerStore.open(dir, 'alice');
    const lines = new ChatStore(store.db).recent(100);
    store.close();
    expect(lines.map((l) => l.id)).toEqual([1, 2, 3, 4].map((n) => line(n).id));

    const again = await runCli(['recover', '--name', 'alice', '--data-dir', dir, '--dir', replicas]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/0 unprocessed found, 0 replayed/);
    expect(again.stdout).toMatch(/replica entries restored: 0/);
  });

  it('a damaged database: exit 2, one line, file untouched; a missing one: exit 2', async () => {
    const dir = tempDir('recover-bad');
    PeerStore.open(dir, 'bob').close();
    const cp = openCheckpoints(dir, 'bob');
    fillInbox(cp, 20_000, 10);
    cp.db.pragma('wal_checkpoint(TRUNCATE)');
    cp.close();
    const file = databasePath(dir, 'bob');
    const size = fs.statSync(file).size;
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(8192, 0x5a), 0, 8192, Math.floor(size / 2 / 4096) * 4096);
    fs.closeSync(fd);
    const sha = () => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
    const before = sha();
    const r = await runCli(['recover', '--name', 'bob', '--data-dir', dir]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/damaged|cannot be read/);
    expect(sha()).toBe(before);
    const missing = await runCli(['recover', '--name', 'nobody', '--data-dir', dir]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no database for peer 'nobody'/);
    expect(fs.existsSync(databasePath(dir, 'nobody'))).toBe(false);
  });
});
