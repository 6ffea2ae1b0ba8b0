/**
 * Ends the run with one plain line, "tests: N passed, N failed, N skipped", that any CI can read
 * whatever the test runner. Before it, one "failed: FILE > TEST: ERROR" line per failure, so a CI
 * log that keeps only its tail still names what failed (scripts/test.mjs prints them again last).
 */
import { relative } from 'node:path';
import type { Reporter, TestModule } from 'vitest/node';

/** Longest error text kept on a failure line: enough for an assertion's message. */
const ERROR_CHARS_MAX = 300;

function failureLine(
  m: TestModule,
  name: string,
  errors: ReadonlyArray<{ message?: string }> | undefined,
): string {
  const message = (errors?.[0]?.message ?? 'no error message').replace(/\s+/g, ' ').trim();
  const project = m.project.name ? `[${m.project.name}] ` : '';
  return `failed: ${project}${relative(process.cwd(), m.moduleId)} > ${name}: ${message.slice(0, ERROR_CHARS_MAX)}`;
}

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const count = { passed: 0, failed: 0, skipped: 0 };
    const failures: string[] = [];
    for (const m of modules) {
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        if (state === 'passed') count.passed++;
        else if (state === 'failed') {
          count.failed++;
          failures.push(failureLine(m, t.fullName, t.result().errors));
        } else count.skipped++;
      }
      // A file that failed to load has no tests but must still count as a failure.
      if (m.state() === 'failed' && [...m.children.allTests()].length === 0) {
        count.failed++;
        failures.push(failureLine(m, '(the file did not load)', m.errors()));
      }
    }
    if (failures.length > 0) process.stdout.write(`\n${failures.join('\n')}\n`);
    process.stdout.write(
      `\ntests: ${count.passed} passed, ${count.failed} failed, ${count.skipped} skipped\n`,
    );
  }
}
