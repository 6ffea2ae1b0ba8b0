/**
 * Event handlers (`peer up --handler [EVENT[,EVENT]=]CMD`), with Serf's contract
 * (https://www.serf.io/docs/agent/event-handlers.html):
 *  - CMD runs under /bin/sh for every event its filter takes (no filter: every event). Filters:
 *    member-join, member-leave, member-failed, member-update, user, user:NAME, query, query:NAME.
 *  - The event is in the environment (PEER_EVENT, PEER_SELF_NAME, PEER_SELF_TAGS, PEER_TAG_<KEY>,
 *    PEER_USER_EVENT and PEER_USER_LTIME, PEER_QUERY_NAME and PEER_QUERY_LTIME) and on stdin: for a
 *    member event one member a line, `name<TAB>address<TAB>role<TAB>k=v,k=v` as Serf writes them;
 *    for a user event or a query its payload, bytes as sent.
 *  - A query handler's stdout is this peer's answer (the first query handler that matches, up to
 *    QUERY_ANSWER_BYTES_MAX); one that fails or times out answers nothing, and says so.
 *  - Handlers run one at a time per peer, in the order events happened here, each at most
 *    `timeoutMs` (then its process group is killed). Waiting events are bounded
 *    (HANDLER_QUEUE_MAX); beyond it an event is dropped and a line says so. A handler that fails,
 *    times out or is dropped is reported as one line; the peer's protocols never wait for one:
 *    they only queue events here.
 *  - A user event is taken out of the agent's journal (src/p2p/events/journal.ts) once its handlers
 *    ended, or at once when none takes it or it is dropped; one still waiting or running when the
 *    peer stops stays there and runs after the restart (so a handler a crash cut short runs again).
 * Handlers run no code from the network: what arrives is data on stdin and in a few environment
 * variables whose values pass the protocol's checks (names and tags of a restricted alphabet).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { UsageError } from './network.js';
import { escapeForTerminal } from './sanitize.js';
import type { EventLog } from './output.js';
import {
  formatTags,
  isEventName,
  QUERY_ANSWER_BYTES_MAX,
  type EventMember,
  type HandlerEvent,
  type UserTags,
} from '../p2p/events/index.js';

/** Events waiting for their handlers at most; each holds up to EVENT_PAYLOAD_BYTES_MAX. */
export const HANDLER_QUEUE_MAX = 1000;
/** How long a handler may run unless `--handler-timeout` says otherwise, in ms. */
export const HANDLER_TIMEOUT_MS_DEFAULT = 30_000;
/** After the timeout's SIGTERM, how long a handler has before SIGKILL, in ms. */
export const HANDLER_KILL_GRACE_MS = 1000;
/** Bytes of a handler's stderr quoted when it fails (its end: the error is usually last). */
export const HANDLER_STDERR_QUOTED_BYTES_MAX = 200;
/** Handlers one peer may have. */
export const HANDLERS_MAX = 32;

const MEMBER_KINDS = ['member-join', 'member-leave', 'member-failed', 'member-update'] as const;
/** What a filter part looks like, valid or not: an event kind, with a name for user and query. */
const EVENT_WORD = /^(member-[a-z]*|user(:.*)?|query(:.*)?)$/;

export interface HandlerFilter {
  kind: HandlerEvent['kind'];
  /** For user and query filters: only this name. */
  name?: string;
}

export interface HandlerSpec {
  /** Null: every event. */
  filters: HandlerFilter[] | null;
  command: string;
}

/**
 * `[EVENT[,EVENT]=]CMD`. Text before the first '=' is a filter only when every comma-separated
 * part of it is an event (a command may hold '=' itself: `X=1 ./notify.sh` has no filter).
 */
export function parseHandler(text: string): HandlerSpec {
  const eq = text.indexOf('=');
  const parts = eq > 0 ? text.slice(0, eq).split(',') : [];
  const filters = parts.map(parseFilter);
  const filtered = parts.length > 0 && filters.every((f) => f !== null);
  // Meant as a filter (every part names an event kind) but not one: say so, never run it for every event.
  const bad = parts.find((p, i) => filters[i] === null);
  if (!filtered && bad !== undefined && parts.every((p) => EVENT_WORD.test(p)))
    throw new UsageError(
      `--handler '${text}': '${bad}' is not an event; use member-join, member-leave, member-failed, member-update, user, user:NAME, query or query:NAME (NAME: letters, digits, _ . : -)`,
    );
  const command = (filtered ? text.slice(eq + 1) : text).trim();
  if (command === '')
    throw new UsageError(
      `--handler '${text}' has no command; give EVENT=CMD or CMD, e.g. user:deploy=./deploy.sh`,
    );
  return { filters: filtered ? (filters as HandlerFilter[]) : null, command };
}

function parseFilter(s: string): HandlerFilter | null {
  if ((MEMBER_KINDS as readonly string[]).includes(s) || s === 'user' || s === 'query')
    return { kind: s as HandlerFilter['kind'] };
  const m = /^(user|query):(.*)$/.exec(s);
  return m && isEventName(m[2]) ? { kind: m[1] as 'user' | 'query', name: m[2] } : null;
}

export function handles(spec: HandlerSpec, kind: HandlerEvent['kind'], name?: string): boolean {
  return (
    spec.filters === null ||
    spec.filters.some((f) => f.kind === kind && (f.name === undefined || f.name === name))
  );
}

interface Job {
  event: HandlerEvent;
  specs: HandlerSpec[];
}

export interface RunnerOptions {
  specs: HandlerSpec[];
  timeoutMs: number;
  /** This peer's name and current user tags (read at each run: `peer tags set` changes them). */
  self: () => { name: string; tags: UserTags };
  log: EventLog;
}

export class HandlerRunner {
  private readonly queue: Job[] = [];
  private running: ChildProcess | null = null;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly opts: RunnerOptions) {
    if (opts.specs.length > HANDLERS_MAX)
      throw new UsageError(`${opts.specs.length} --handler flags: at most ${HANDLERS_MAX}`);
  }

  /** Whether a handler takes query `name` (without one the peer answers at once with no answer). */
  answers(name: string): boolean {
    return this.opts.specs.some((s) => handles(s, 'query', name));
  }

  /** Queues `event` for the handlers it matches (never waits for them). */
  push(event: HandlerEvent): void {
    const name = event.kind === 'user' || event.kind === 'query' ? event.name : undefined;
    const specs = this.opts.specs.filter((s) => handles(s, event.kind, name));
    if (this.stopped) return;
    if (specs.length === 0) return finished(event);
    if (this.queue.length >= HANDLER_QUEUE_MAX) {
      const what = describe(event);
      this.opts.log(
        { event: 'handler-dropped', at: new Date().toISOString(), handled: what, queued: this.queue.length },
        `handler queue full (${HANDLER_QUEUE_MAX} events waiting): dropped ${escapeForTerminal(what)}; handlers are too slow for the events coming`,
      );
      if (event.kind === 'query') event.answer(null);
      return finished(event);
    }
    this.queue.push({ event, specs });
    if (!this.running) void this.drain();
  }

  /** Resolves when nothing runs and nothing waits. */
  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Drops what waits and kills what runs (the peer is stopping). */
  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    if (this.running?.pid) killGroup(this.running.pid, 'SIGKILL');
  }

  private async drain(): Promise<void> {
    for (let job = this.queue.shift(); job; job = this.queue.shift()) {
      let answered = false;
      for (const spec of job.specs) {
        if (this.stopped) break;
        const out = await this.run(spec, job.event);
        const e = job.event;
        if (e.kind === 'query' && !answered && handles(spec, 'query', e.name)) {
          answered = true;
          e.answer(out);
        }
      }
      if (job.event.kind === 'query' && !answered) job.event.answer(null);
      // Stopped midway: the event stays in the journal, to run after the restart.
      if (!this.stopped) finished(job.event);
    }
    this.running = null;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Runs one handler for one event; its stdout when it exited 0, else null (reported). */
  private run(spec: HandlerSpec, event: HandlerEvent): Promise<Buffer | null> {
    const { name, tags } = this.opts.self();
    const env: NodeJS.ProcessEnv = { ...process.env, ...eventEnv(event, name, tags) };
    const started = Date.now();
    return new Promise((resolve) => {
      const child = spawn('/bin/sh', ['-c', spec.command], {
        env,
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      this.running = child;
      const stdout: Buffer[] = [];
      let stdoutBytes = 0;
      let stderr = Buffer.alloc(0);
      let timedOut = false;
      child.stdout.on('data', (d: Buffer) => {
        // One byte past the answer's limit tells the protocol it was cut.
        if (stdoutBytes <= QUERY_ANSWER_BYTES_MAX) stdout.push(d);
        stdoutBytes += d.length;
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr = Buffer.concat([stderr, d]).subarray(-HANDLER_STDERR_QUOTED_BYTES_MAX);
      });
      // A handler that does not read its stdin closes it: not an error.
      child.stdin.on('error', () => {});
      child.stdin.end(stdinOf(event));
      const timer = setTimeout(() => {
        timedOut = true;
        if (child.pid) killGroup(child.pid, 'SIGTERM');
        setTimeout(() => child.pid && killGroup(child.pid, 'SIGKILL'), HANDLER_KILL_GRACE_MS).unref();
      }, this.opts.timeoutMs);
      const done = (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
        clearTimeout(timer);
        const ms = Date.now() - started;
        const what = describe(event);
        const base = { at: new Date().toISOString(), handled: what, command: spec.command, ms };
        if (code === 0 && !timedOut) {
          this.opts.log(
            { event: 'handler', ...base, exit: 0 },
            `handler ${escapeForTerminal(spec.command)} ran for ${escapeForTerminal(what)} (${ms} ms)`,
          );
          return resolve(Buffer.concat(stdout).subarray(0, QUERY_ANSWER_BYTES_MAX + 1));
        }
        const why = timedOut
          ? `timed out after ${this.opts.timeoutMs} ms and was killed`
          : error
            ? `could not start (${error.message})`
            : signal
              ? `was killed by ${signal}`
              : `exited with ${code}`;
        const tail = stderr.toString('utf8').trim().split('\n').at(-1) ?? '';
        this.opts.log(
          { event: 'handler-failed', ...base, exit: code, signal, timedOut, stderr: tail },
          `handler ${escapeForTerminal(spec.command)} for ${escapeForTerminal(what)} ${why}${tail ? `: ${escapeForTerminal(tail)}` : ''}`,
        );
        resolve(null);
      };
      child.on('error', (err) => done(null, null, err));
      child.on('close', (code, signal) => done(code, signal));
    });
  }
}

/** The event's environment variables (Serf's, PEER_ for SERF_). */
export function eventEnv(event: HandlerEvent, selfName: string, selfTags: UserTags): Record<string, string> {
  const env: Record<string, string> = {
    PEER_EVENT: event.kind,
    PEER_SELF_NAME: selfName,
    PEER_SELF_ROLE: selfTags.role ?? '',
    PEER_SELF_TAGS: formatTags(selfTags),
  };
  for (const [k, v] of Object.entries(selfTags))
    env[`PEER_TAG_${k.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}`] = v;
  if (event.kind === 'user') {
    env.PEER_USER_EVENT = event.name;
    env.PEER_USER_LTIME = String(event.lamport);
  } else if (event.kind === 'query') {
    env.PEER_QUERY_NAME = event.name;
    env.PEER_QUERY_LTIME = String(event.lamport);
  }
  return env;
}

/** What the handler reads on stdin. */
export function stdinOf(event: HandlerEvent): Buffer {
  if (event.kind === 'user' || event.kind === 'query') return event.payload;
  return Buffer.from(event.members.map(memberLine).join(''));
}

/** A user event whose handlers ended (or that none will run) leaves the journal. */
function finished(event: HandlerEvent): void {
  if (event.kind === 'user') event.done();
}

function memberLine(m: EventMember): string {
  return `${m.name}\t${m.address}\t${m.tags.role ?? ''}\t${formatTags(m.tags)}\n`;
}

function describe(event: HandlerEvent): string {
  if (event.kind === 'user') return `user event ${event.name} from ${event.fromName}`;
  if (event.kind === 'query') return `query ${event.name} from ${event.fromName}`;
  return `${event.kind} ${event.members.map((m) => m.name).join(', ')}`;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}
