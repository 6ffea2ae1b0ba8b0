/**
 * The chat hook of the checkpoint store: a received line is recorded and processed in one durable
 * transaction, exactly once however often it arrives.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import Database from 'better-sqlite3';
import { tempDir } from '../support/proc.js';
import { PeerStore } from '../../src/storage/store.js';
import { openCheckpoints } from '../../src/storage/checkpoint.js';
import { ChatStore } from '../../src/storage/chat.js';
import { receiveChatLine, startCheckpointing, type Checkpointing } from '../../src/cli/checkpointing.js';
import {
  CHECKPOINT_INTERVAL_MS,
  LAMPORT_CHECKPOINT_SLACK_TICKS,
  recover,
  recoveryLine,
} from '../../src/storage/recovery.js';
import { STORAGE_RECOVERED_AFTER_MS, StorageHealth, writeFailure } from '../../src/storage/health.js';
import type { ChatLine } from '../../src/p2p/chat.js';
import type { PeerNode } from '../../src/p2p/node.js';

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

describe('the line a restarted peer prints', () => {
  it('says whether the last run stopped cleanly or crashed, and what happened to its clock', () => {
    const dir = tempDir('exit-kind');
    PeerStore.open(dir, 'eve').close();
    const health = new StorageHealth(
      () => {},
      () => 0,
    );
    // Only the node's Lamport time is read by the checkpoints.
    const run = (lamport: number) => {
      const c = startCheckpointing(dir, 'eve', health);
      c.attach({ lamport } as unknown as PeerNode);
      return c;
    };
    run(130).close(true); // a graceful stop
    const afterClean = run(140);
    expect(recoveryLine(afterClean.report)).toMatch(
      /^resumed after a clean exit: message clock at 130, 0 unprocessed messages replayed/,
    );
    // A crash: the last checkpoint is a periodic one (the first is written on attach), not a final one.
    afterClean.close(false);
    const afterCrash = startCheckpointing(dir, 'eve', health);
    expect(recoveryLine(afterCrash.report)).toMatch(
      /^recovered after a crash: message clock moved ahead from 140 to 100,140 \(past any time stamped before the crash\), 0 unprocessed messages replayed/,
    );
    afterCrash.close(true);
  });
});

/** Checkpointing of a fresh data dir, its storage health saying nothing. */
function quietCheckpointing(dirName: string): Checkpointing {
  const dir = tempDir(dirName);
  PeerStore.open(dir, 'eve').close();
  return startCheckpointing(
    dir,
    'eve',
    new StorageHealth(
      () => {},
      () => Date.now(),
    ),
  );
}

describe('the checkpoint timer', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('says writes work again once the quiet period passed with no failure, not before', () => {
    vi.useFakeTimers();
    const dir = tempDir('health-tick');
    PeerStore.open(dir, 'eve').close();
    const said: string[] = [];
    const health = new StorageHealth(
      (l) => said.push(l),
      () => Date.now(),
    );
    const c = startCheckpointing(dir, 'eve', health);
    // A kv write failed, then one got through: only the timer's tick can say so, after the quiet period.
    health.failed(writeFailure(c.cp.file, { code: 'SQLITE_FULL' }), 'kv');
    health.succeeded(c.cp.file, 'kv');
    c.attach({ lamport: 1 } as unknown as PeerNode);
    vi.advanceTimersByTime(STORAGE_RECOVERED_AFTER_MS - 1);
    expect(said).toHaveLength(1);
    vi.advanceTimersByTime(CHECKPOINT_INTERVAL_MS);
    expect(said).toEqual([
      expect.stringMatching(/failing \(disk full\)/),
      expect.stringMatching(/work again/),
    ]);
    c.close(true);
  });

  it('runs on whole seconds of the wall clock, where a heartbeat is due too, whenever it was attached', () => {
    vi.useFakeTimers({ now: 1_700_000_000_337 });
    const c = quietCheckpointing('aligned-checkpoint');
    const ranAt: number[] = [];
    c.attach({ lamport: 1 } as unknown as PeerNode, () => ranAt.push(Date.now()));
    vi.advanceTimersByTime(5 * CHECKPOINT_INTERVAL_MS);
    expect(ranAt).toEqual([1, 2, 3, 4, 5].map((k) => 1_700_000_000_000 + k * CHECKPOINT_INTERVAL_MS));
    c.close(true);
  });

  it('writes a checkpoint only when it would say something new: a clock ticking alone waits for the slack, a crash still restarts above it', () => {
    vi.useFakeTimers();
    const dir = tempDir('idle-checkpoint');
    PeerStore.open(dir, 'eve').close();
    const health = new StorageHealth(
      () => {},
      () => Date.now(),
    );
    const c = startCheckpointing(dir, 'eve', health);
    const lastSeq = () => (c.cp.db.prepare('SELECT MAX(seq) AS s FROM checkpoints').get() as { s: number }).s;
    const node = { lamport: 500 };
    c.attach(node as unknown as PeerNode);
    const first = lastSeq();
    // Idle: the clock ticks (heartbeats) and nothing else changes.
    for (let i = 0; i < 10; i++) {
      node.lamport += 50;
      vi.advanceTimersByTime(CHECKPOINT_INTERVAL_MS);
    }
    expect(lastSeq()).toBe(first);
    // A source other than the clock changed: written at the next tick.
    c.cp.db.exec('CREATE TABLE IF NOT EXISTS chat_messages (lamport INTEGER)');
    c.cp.db.exec('INSERT INTO chat_messages VALUES (520)');
    vi.advanceTimersByTime(CHECKPOINT_INTERVAL_MS);
    expect(lastSeq()).toBe(first + 1);
    // The clock alone, up to the slack: nothing; at it: written.
    const saved = node.lamport;
    node.lamport = saved + LAMPORT_CHECKPOINT_SLACK_TICKS - 1;
    vi.advanceTimersByTime(CHECKPOINT_INTERVAL_MS);
    expect(lastSeq()).toBe(first + 1);
    // A crash here: the restart is still above every time stamped.
    const reader = openCheckpoints(dir, 'eve');
    expect(recover(reader, { integrity: 'none' }).lamportStart).toBeGreaterThan(node.lamport);
    reader.close();
    node.lamport = saved + LAMPORT_CHECKPOINT_SLACK_TICKS;
    vi.advanceTimersByTime(CHECKPOINT_INTERVAL_MS);
    expect(lastSeq()).toBe(first + 2);
    c.close(true);
  });

  it('reads the database only after it changed: an idle peer runs one query a second, not one or two per source', () => {
    vi.useFakeTimers();
    const c = quietCheckpointing('idle-queries');
    c.attach({ lamport: 1 } as unknown as PeerNode);
    vi.advanceTimersByTime(CHECKPOINT_INTERVAL_MS);
    const statement = Object.getPrototypeOf(c.cp.db.prepare('SELECT 1')) as Database.Statement;
    const reads = [vi.spyOn(statement, 'get'), vi.spyOn(statement, 'all'), vi.spyOn(statement, 'iterate')];
    vi.advanceTimersByTime(10 * CHECKPOINT_INTERVAL_MS);
    const queries = reads.reduce((n, r) => n + r.mock.calls.length, 0);
    for (const r of reads) r.mockRestore();
    c.close(true);
    // One a second: the timer ran, and asked the database only whether it changed.
    expect(queries).toBe(10);
  });
});

describe('a checkpoint source that reads only the database', () => {
  it('is captured again after a write on this connection, a commit by another one, or a new table, and not while nothing changed', () => {
    const dir = tempDir('database-source');
    PeerStore.open(dir, 'eve').close();
    const cp = openCheckpoints(dir, 'eve');
    cp.db.exec('CREATE TABLE notes (n INTEGER)');
    let captures = 0;
    const tables = () =>
      (cp.db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number })
        .n;
    cp.register('notes', {
      fromDatabase: true,
      capture: () => {
        captures++;
        return {
          notes: (cp.db.prepare('SELECT count(*) AS n FROM notes').get() as { n: number }).n,
          tables: tables(),
        };
      },
    });
    let ticks = 0;
    cp.register('clock', { capture: () => ++ticks });
    const state = () => cp.latest().checkpoint!.states;
    cp.checkpoint();
    for (let i = 0; i < 3; i++) cp.checkpoint(Date.now(), { ifChanged: true });
    expect(captures).toBe(1);
    // A source that reads something else is captured every time.
    expect(ticks).toBe(4);
    expect(state()).toMatchObject({ clock: 4 });

    cp.db.prepare('INSERT INTO notes VALUES (1)').run();
    cp.checkpoint(Date.now(), { ifChanged: true });
    expect(captures).toBe(2);
    expect(state()).toMatchObject({ notes: { notes: 1 } });

    const other = new Database(cp.file);
    other.prepare('INSERT INTO notes VALUES (2)').run();
    cp.checkpoint(Date.now(), { ifChanged: true });
    expect(state()).toMatchObject({ notes: { notes: 2 } });

    const before = tables();
    other.exec('CREATE TABLE later (x INTEGER)');
    cp.checkpoint(Date.now(), { ifChanged: true });
    expect(state()).toMatchObject({ notes: { notes: 2, tables: before + 1 } });
    expect(captures).toBe(4);
    other.close();
    cp.close();
  });
});
