/**
 * A process that runs one job through a ProcessExecutor with a ledger, for the test of a worker
 * killed -9 (test/unit/exec.test.ts): it prints the ledger's row as one JSON line once the job
 * runs, then waits to be killed.
 *
 *   node --import tsx test/support/exec-orphan.ts <ledger.db> <job-dir> <command>
 */
import Database from 'better-sqlite3';
import { ProcessExecutor } from '../../src/cli/run/exec.js';
import { JobProcs } from '../../src/storage/job-procs.js';

const [file, jobDir, command] = process.argv.slice(2);
if (!file || !jobDir || !command) throw new Error('usage: exec-orphan.ts <ledger.db> <job-dir> <command>');
const ledger = new JobProcs(new Database(file));
const executor = new ProcessExecutor({
  slots: 1,
  allowExec: true,
  jobDir,
  shell: '/bin/sh',
  outputBytesMax: 1024,
  ledger,
});
executor.bind({ output: () => undefined, ended: () => undefined });
const run = '0123456789abcdef';
executor.start({
  run,
  job: 1,
  attempt: 1,
  seq: 1,
  fence: 1,
  command,
  env: {},
  transfers: [],
  returns: [],
  spec: {
    run,
    kind: 'exec',
    words: [command],
    env: [],
    detached: false,
    timeoutMs: null,
    graceMs: 1000,
    output: 'group',
    transfers: [],
    returns: [],
  },
});
// The row is written in the turn the shell is spawned, after the directory was made.
const timer = setInterval(() => {
  const { groups } = ledger.list();
  if (groups.length === 0) return;
  clearInterval(timer);
  process.stdout.write(`${JSON.stringify(groups[0])}\n`);
}, 10);
