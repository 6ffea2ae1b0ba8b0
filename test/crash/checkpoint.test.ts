/**
 * Crash tests of real processes: a writer using the checkpoint API under load is killed with
 * SIGKILL at random points (and once inside an open transaction); what it acknowledged on its
 * stdout (an independent log) is checked against the database after recovery: zero acknowledged
 * records lost, zero processed twice, every received message processed exactly once.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { ROOT, tempDir } from '../support/proc.js';
import { databasePath } from '../../src/storage/store.js';

const WRITER = path.join(ROOT, 'test/fixtures/checkpoint-writer.ts');
/** Kill cycles; PEER_CRASH_CYCLES=100 for the target (the bench). */
const CYCLES = Number(process.env.PEER_CRASH_CYCLES ?? 8);

interface Acks {
  received: Set<string>;
  processed: Set<string>;
  recovered: Array<{ replayed: number; seq: number | null }>;
  mid: boolean;
}

/** Runs the writer; kills it (SIGKILL) `killAfterMs` after its first ack, or on 'M' in mid mode. */
function runWriter(
  dir: string,
  run: string,
  acks: Acks,
  killAfterMs: number | null,
  mode = '',
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir, 'w', run, mode], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    let err = '';
    let armed = false;
    const deadline = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith('R ')) acks.received.add(line.split(' ')[1]!);
        else if (line.startsWith('P ')) acks.processed.add(line.slice(2));
        else if (line.startsWith('recovered ')) acks.recovered.push(JSON.parse(line.slice(10)));
        else if (line === 'M') {
          acks.mid = true;
          child.kill('SIGKILL');
        }
        if (!armed && killAfterMs !== null && line.startsWith('R ') && mode !== 'mid') {
          armed = true;
          setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        }
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(deadline);
      if (killAfterMs === null && code !== 0) reject(new Error(`writer exited ${code}: ${err}`));
      else if (killAfterMs !== null && signal !== 'SIGKILL')
        reject(new Error(`writer ended by itself (${code}): ${err}`));
      else resolve();
    });
  });
}

describe('checkpoint store under kill -9', () => {
  it(
    `${CYCLES} random kills and one mid-transaction kill: nothing acknowledged lost, nothing processed twice`,
    async () => {
      const dir = tempDir('crash');
      const acks: Acks = { received: new Set(), processed: new Set(), recovered: [], mid: false };
      for (let c = 0; c < CYCLES; c++)
        await runWriter(dir, `r${c}`, acks, 30 + Math.floor(Math.random() * 300));
      await runWriter(dir, 'mid', acks, 0, 'mid');
      expect(acks.mid).toBe(true);
      await runWriter(dir, 'final', acks, null);

      const db = new Database(databasePath(dir, 'w'), { readonly: true });
      const inbox = new Map(
        (db.prepare('SELECT id, processed FROM inbox').all() as Array<{ id: string; processed: number }>).map(
          (r) => [r.id, r.processed],
        ),
      );
      const effects = new Map<string, number>();
      for (const r of db.prepare('SELECT id, count(*) AS n FROM effects GROUP BY id').all() as Array<{
        id: string;
        n: number;
      }>)
        effects.set(r.id, r.n);
      db.close();

      expect(acks.received.size).toBeGreaterThan(1000);
      const lost = [...acks.received].filter((id) => !inbox.has(id));
      expect(lost).toEqual([]);
      // After the final recovery every received message is processed, with exactly one effect.
      const unprocessed = [...inbox].filter(([, p]) => p !== 1).map(([id]) => id);
      expect(unprocessed).toEqual([]);
      const twice = [...effects].filter(([, n]) => n > 1);
      expect(twice).toEqual([]);
      const missing = [...inbox.keys()].filter((id) => effects.get(id) !== 1);
      expect(missing).toEqual([]);
      // The transaction killed in the middle left no trace.
      expect(effects.has('never-committed')).toBe(false);
      // Crashes did catch messages between receive and process, and recovery replayed them.
      const replayed = acks.recovered.reduce((s, r) => s + r.replayed, 0);
      expect(replayed).toBeGreaterThan(0);
      for (const id of acks.processed) expect(effects.get(id)).toBe(1);
    },
    60_000 + CYCLES * 5_000,
  );
});
