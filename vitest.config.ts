import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // @oclif/test captures command output only when vitest leaves the console alone.
    disableConsoleIntercept: true,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // LAN tests create network namespaces with fixed names per file; files run in parallel
    // processes but each file owns a distinct namespace prefix.
    pool: 'forks',
  },
});
