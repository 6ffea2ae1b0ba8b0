#!/usr/bin/env node
/**
 * `npm test`: vitest's two groups (vitest.config.ts) at the same time instead of one after the
 * other. The tests that start real peer processes run one file at a time at normal priority and
 * print as they go; the simulation, unit and contract tests run alongside at the lowest CPU
 * priority (nice 19), so a real peer never waits for the CPU behind them (a peer starved of CPU
 * misses heartbeats, which must not look like a protocol bug), and they fill the time the real
 * tests spend waiting on timers. Their output is printed whole when both are done, then one line
 * for the whole run: `tests: N passed, N failed, N skipped`, after a `failed: ...` line for each
 * failed test of either group.
 *
 * Arguments go to both vitest runs (`npm test -- test/sim/chat.test.ts`); a group with no matching
 * file passes.
 */
import { spawn } from 'node:child_process';

const args = process.argv.slice(2);

/** One vitest run of `projects`; resolves to its exit code and everything it printed. */
function run(projects, { nice, live }) {
  const vitest = [
    'vitest',
    'run',
    ...projects.flatMap((p) => ['--project', p]),
    '--passWithNoTests',
    ...args,
  ];
  const [cmd, argv] = nice ? ['nice', ['-n', '19', 'npx', ...vitest]] : ['npx', vitest];
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  for (const [stream, to] of [
    [child.stdout, process.stdout],
    [child.stderr, process.stderr],
  ]) {
    stream.setEncoding('utf8');
    stream.on('data', (text) => {
      output += text;
      if (live) to.write(text);
    });
  }
  return new Promise((resolve) =>
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 1 : 0), output })),
  );
}

const [sim, real] = await Promise.all([
  // sim-unicast: a few simulations again with every peer unicast-only (vitest.config.ts).
  run(['sim', 'sim-unicast'], { nice: true, live: false }),
  run(['real'], { nice: false, live: true }),
]);
process.stdout.write('\n── simulation, unit and contract tests (run alongside, at low priority) ──\n');
process.stdout.write(sim.output);

/** The counts of the summary line test/support/summary-reporter.ts ends each run with. */
function counts(output) {
  const m = /^tests: (\d+) passed, (\d+) failed, (\d+) skipped$/m.exec(output);
  // A run that died before its reporter ran counts as one failure, never as zero tests.
  return m ? m.slice(1, 4).map(Number) : [0, 1, 0];
}
const [a, b] = [counts(sim.output), counts(real.output)];
// The real group printed first; its failures are named again here, where a log's tail shows them.
const failures = `${real.output}\n${sim.output}`.match(/^failed: .*$/gm) ?? [];
if (failures.length > 0) process.stdout.write(`\n${failures.join('\n')}\n`);
process.stdout.write(`\ntests: ${a[0] + b[0]} passed, ${a[1] + b[1]} failed, ${a[2] + b[2]} skipped\n`);
process.exit(sim.code !== 0 ? sim.code : real.code);
