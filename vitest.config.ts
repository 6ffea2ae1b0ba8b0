import { defineConfig } from 'vitest/config';

const shared = {
  // @oclif/test captures command output only when vitest leaves the console alone.
  disableConsoleIntercept: true,
  testTimeout: 30_000,
  hookTimeout: 60_000,
  pool: 'forks' as const,
};

/**
 * Two groups (`npm test` runs them at the same time, scripts/test.mjs; `vitest run` one after the other):
 *  - `sim`: simulation, unit and contract tests: CPU-bound, virtual time, run in parallel (at the
 *    lowest CPU priority under `npm test`);
 *  - `real`: tests that start real peer processes (loopback, CLI, LAN namespaces, crashes). They
 *    run one file at a time, because a peer starved of CPU on a 2-core machine misses
 *    heartbeats, and timing faults of the test machine must not look like protocol bugs.
 */
const REAL = [
  'test/loopback/**/*.test.ts',
  'test/cli/**/*.test.ts',
  'test/lan/**/*.test.ts',
  'test/crash/**/*.test.ts',
];

export default defineConfig({
  test: {
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      {
        test: {
          ...shared,
          name: 'sim',
          include: ['test/**/*.test.ts'],
          exclude: REAL,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: { ...shared, name: 'real', include: REAL, fileParallelism: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
