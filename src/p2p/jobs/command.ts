/**
 * The command a job runs, from its run's template and its input line, by GNU parallel's `{}`
 * rules, and the bounds a run's spec must keep. Pure: the worker builds the command it runs with
 * commandFor(), the submitter the one its joblog shows, and both get the same text.
 *
 * Rules (parallel's, for the one replacement string we support):
 *  - the words are joined by spaces, unquoted: the template is shell text (`'echo {} | wc'`);
 *  - every `{}` is replaced by the input line, shell-quoted, so a line is always one word;
 *  - a template whose first word is exactly `{}` runs the line itself as a command (unquoted
 *    there), as `parallel {} ::: 'echo a'` does; no words at all: the line is the command;
 *  - a template without `{}` gets the quoted line appended (`parallel gzip ::: a.txt`);
 *  - a job without input (null) gets nothing in place of `{}` and nothing appended.
 */
import type { RunSpec } from './types.js';
import {
  JOB_COMMAND_BYTES_MAX,
  JOB_ENV_BYTES_MAX,
  JOB_ENV_MAX,
  JOB_ENV_NAME_RE,
  JOB_ENV_RESERVED_PREFIX,
  JOB_GRACE_MS_MAX,
  JOB_GRACE_MS_MIN,
  JOB_INPUT_BYTES_MAX,
  JOB_PATHS_MAX,
  JOB_PATH_BYTES_MAX,
  JOB_TIMEOUT_MS_MAX,
  JOB_WORDS_MAX,
  JOB_WORD_BYTES_MAX,
} from './limits.js';

const PLACEHOLDER = '{}';
/** Characters a POSIX shell never treats specially: such a word needs no quotes. */
const SAFE_WORD = /^[A-Za-z0-9_/.,:=+@%^-]+$/;

/** `s` as one word of `/bin/sh`: as is when it is plain, else in single quotes (`'` as `'\''`). */
export function shellQuote(s: string): string {
  if (SAFE_WORD.test(s)) return s;
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** The command line for one job: `words` with the input placed by the rules above. */
export function commandFor(words: string[], input: string | null): string {
  if (words.length === 0) return input ?? '';
  const quoted = input === null ? '' : shellQuote(input);
  const asCommand = words[0] === PLACEHOLDER;
  let placed = false;
  const out = words.map((w, i) => {
    if (!w.includes(PLACEHOLDER)) return w;
    placed = true;
    return w.replaceAll(PLACEHOLDER, i === 0 && asCommand ? (input ?? '') : quoted);
  });
  if (!placed && input !== null) out.push(quoted);
  return out.join(' ');
}

const bytes = (s: string) => Buffer.byteLength(s);
const hasNul = (s: string) => s.includes('\0');

/** Why an input line cannot be a job's input, or null when it can. */
export function inputProblem(input: string | null): string | null {
  if (input === null) return null;
  if (hasNul(input) || input.includes('\n')) return 'the input line contains a NUL or a line feed';
  if (bytes(input) > JOB_INPUT_BYTES_MAX) return `the input line is over ${JOB_INPUT_BYTES_MAX} bytes`;
  return null;
}

/** Why a command after substitution cannot run, or null when it can. */
export function commandProblem(command: string): string | null {
  if (bytes(command) > JOB_COMMAND_BYTES_MAX) return `the command is over ${JOB_COMMAND_BYTES_MAX} bytes`;
  return null;
}

/** Why a relative path template (`--transfer`, `--return`) is refused, or null. */
export function pathProblem(path: string): string | null {
  if (path.length === 0) return 'a path is empty';
  if (hasNul(path)) return 'a path contains a NUL';
  if (path.startsWith('/')) return `'${path}' is not a relative path`;
  if (path.split('/').includes('..')) return `'${path}' goes up with '..'`;
  if (bytes(path) > JOB_PATH_BYTES_MAX) return `a path is over ${JOB_PATH_BYTES_MAX} bytes`;
  return null;
}

/**
 * A `--transfer` / `--return` path for one job: every `{}` in the template replaced by the input
 * line as is (a path is not shell text), nothing for a job without input. The result must still be
 * a relative path without `..` (pathProblem()): `{ problem }` says why it is not.
 */
export function pathFor(template: string, input: string | null): { path: string } | { problem: string } {
  const path = template.split(PLACEHOLDER).join(input ?? '');
  const problem = pathProblem(path);
  return problem === null ? { path } : { problem };
}

/** Whether a path template names one file per job (it has `{}`) rather than one for the whole run. */
export const perJobPath = (template: string): boolean => template.includes(PLACEHOLDER);

/** Why a run's spec breaks a bound (limits.ts), or null when it keeps them all. */
export function problemOf(spec: Omit<RunSpec, 'run'>): string | null {
  const { words, env } = spec;
  if (words.length > JOB_WORDS_MAX) return `the command has over ${JOB_WORDS_MAX} words`;
  if (words.some(hasNul)) return 'the command contains a NUL';
  if (words.some((w) => bytes(w) > JOB_WORD_BYTES_MAX))
    return `a word of the command is over ${JOB_WORD_BYTES_MAX} bytes`;
  const template = commandProblem(commandFor(words, null));
  if (template) return template;
  if (spec.kind === 'exec' && words.length === 0) return 'there is no command';
  if (env.length > JOB_ENV_MAX) return `over ${JOB_ENV_MAX} variables`;
  let envBytes = 0;
  for (const [name, value] of env) {
    if (!JOB_ENV_NAME_RE.test(name)) return `'${name}' is not a variable name`;
    if (name.startsWith(JOB_ENV_RESERVED_PREFIX))
      return `${name}: variables named ${JOB_ENV_RESERVED_PREFIX}* are set by peer`;
    if (hasNul(value)) return `the value of ${name} contains a NUL`;
    envBytes += bytes(name) + bytes(value);
  }
  if (envBytes > JOB_ENV_BYTES_MAX) return `the variables are over ${JOB_ENV_BYTES_MAX} bytes`;
  const t = spec.timeoutMs;
  if (t !== null && !(Number.isSafeInteger(t) && t > 0 && t <= JOB_TIMEOUT_MS_MAX))
    return `the timeout is not between 1 ms and ${JOB_TIMEOUT_MS_MAX / 86_400_000} days`;
  const g = spec.graceMs;
  if (!(Number.isSafeInteger(g) && g >= JOB_GRACE_MS_MIN && g <= JOB_GRACE_MS_MAX))
    return `the kill grace is not between ${JOB_GRACE_MS_MIN} ms and ${JOB_GRACE_MS_MAX / 1000} s`;
  for (const paths of [spec.transfers, spec.returns]) {
    if (paths.length > JOB_PATHS_MAX) return `over ${JOB_PATHS_MAX} files to transfer or return`;
    for (const p of paths) {
      const problem = pathProblem(p);
      if (problem) return problem;
    }
  }
  return null;
}
