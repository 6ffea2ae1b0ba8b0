/**
 * What `peer up` adds for tags, handlers, user events and queries (docs/events.md): the flags, the
 * Events protocol on the peer's reliable delivery, the handler runner fed by it, and the control
 * socket of `peer tags`.
 */
import { Flags } from '@oclif/core';
import type net from 'node:net';
import type { PeerNode } from '../p2p/node.js';
import { ReliableDelivery } from '../p2p/reliable/index.js';
import {
  Events,
  EVENTS_TAG,
  parseTagArgs,
  type EventJournal,
  type EventMember,
  type UserTags,
} from '../p2p/events/index.js';
import { HANDLER_TIMEOUT_MS_DEFAULT, HandlerRunner, parseHandler } from './handlers.js';
import { durationMs } from './run/duration.js';
import { UsageError } from './network.js';
import { discoverSettled } from './peer.js';
import type { EventLog } from './output.js';
import { applyRequest, controlSocket, loadTags, saveTags, serveControl } from './tags-control.js';

/** The longest `--handler-timeout`, in ms. */
export const HANDLER_TIMEOUT_MS_MAX = 3_600_000;

export const agentFlags = {
  tag: Flags.string({
    summary: 'A tag of this peer, KEY=VALUE (repeatable); peer tags set changes them while it runs.',
    multiple: true,
    multipleNonGreedy: true,
  }),
  handler: Flags.string({
    summary:
      'Run CMD on events: [EVENT[,EVENT]=]CMD (repeatable). EVENT: member-join, member-leave, member-failed, member-update, user, user:NAME, query, query:NAME; none: every event (docs/events.md).',
    multiple: true,
    multipleNonGreedy: true,
  }),
  'handler-timeout': Flags.string({
    summary: 'How long a handler may run before it is killed (500ms, 30s, 5m).',
    default: `${HANDLER_TIMEOUT_MS_DEFAULT / 1000}s`,
  }),
};

export interface AgentFlagValues {
  tag?: string[];
  handler?: string[];
  'handler-timeout': string;
}

/** Checked flags and saved tags: everything that can fail before the peer starts. */
export interface AgentSetup {
  tags: UserTags;
  runner: HandlerRunner;
  /** Where `peer tags` reaches this peer; null when the data dir's path is too long for a socket. */
  socket: string | null;
}

export function agentSetup(
  flags: AgentFlagValues,
  dataDir: string,
  name: string,
  log: EventLog,
  self: () => UserTags,
): AgentSetup {
  const parsed = parseTagArgs(flags.tag ?? []);
  if ('problem' in parsed) throw new UsageError(`--tag: ${parsed.problem}`);
  // A data dir too deep for a unix socket costs `peer tags` only, not the peer (said at start).
  let socket: string | null = null;
  try {
    socket = controlSocket(dataDir, name);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`peer: ${err.message}; until then peer tags cannot reach this peer\n`);
  }
  // Flags win over what `peer tags set` saved last time, key by key.
  const tags = { ...loadTags(dataDir, name), ...parsed.tags };
  const bad = parseTagArgs(Object.entries(tags).map(([k, v]) => `${k}=${v}`));
  if ('problem' in bad)
    throw new UsageError(`--tag with the saved tags: ${bad.problem}; peer tags unset some first`);
  const runner = new HandlerRunner({
    specs: (flags.handler ?? []).map(parseHandler),
    timeoutMs: durationMs('--handler-timeout', flags['handler-timeout'], 1, HANDLER_TIMEOUT_MS_MAX),
    self: () => ({ name, tags: self() }),
    log,
  });
  return { tags, runner, socket };
}

/**
 * Installs Events as an agent on the peer's reliable delivery, feeding the runner; each user event
 * acked only once in `journal` (the peer's SQLite file).
 */
export function installAgent(
  node: PeerNode,
  reliable: ReliableDelivery,
  setup: AgentSetup,
  journal: EventJournal | undefined,
): Events {
  const events = node.install(
    (ctx, n) =>
      new Events(ctx, n.membership, reliable, {
        agent: true,
        answers: (q) => setup.runner.answers(q),
        tags: setup.tags,
        journal,
      }),
  );
  events.onEvent((e) => setup.runner.push(e));
  return events;
}

/**
 * Serves `peer tags` once the peer runs (each change saved, then announced, then answered), and
 * `peer event` / `peer query` handed to this agent (`relay`, agent-relay.ts).
 */
export function serveTags(
  events: Events,
  setup: AgentSetup,
  dataDir: string,
  name: string,
  log: EventLog,
  relay: (req: Record<string, unknown>, conn: net.Socket) => void,
): net.Server | null {
  // The tags it starts with (the flags may have changed them) are saved as `peer tags set` would;
  // a disk that refuses is said, and the peer runs on with them (a restart would not have them).
  try {
    saveTags(dataDir, name, setup.tags);
  } catch (err) {
    process.stderr.write(
      `peer: cannot save the tags in ${dataDir} (${(err as Error).message}); they hold until this peer stops\n`,
    );
  }
  if (setup.socket === null) return null;
  return serveControl(
    setup.socket,
    (req) => {
      const r = applyRequest(events.tags, req);
      if (!r.ok) return r;
      try {
        saveTags(dataDir, name, r.tags);
      } catch (err) {
        return { ok: false, error: `cannot save the tags: ${(err as Error).message}` };
      }
      events.setTags(r.tags);
      log({ event: 'tags', at: new Date().toISOString(), tags: r.tags }, `tags now ${formatted(r.tags)}`);
      return r;
    },
    relay,
  );
}

function formatted(tags: UserTags): string {
  const s = Object.entries(tags)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return s === '' ? '(none)' : s;
}

/** How long `peer event` and `peer query` look for agents before sending, at most, in ms. */
export const AGENT_DISCOVERY_MS = 3000;
/**
 * Discovery ends once the agents seen have not changed for this long, probing again meanwhile, as
 * chat's --send (src/cli/chat.ts says why less lost a reader at 10 % loss). An agent we
 * meet only after publishing is neither waited for nor sent what came before, and the agents
 * must have heard our heartbeats too (an event in several fragments, over about a datagram, is
 * taken only from a member the agent knows: src/p2p/reliable/fragments.ts).
 */
export const AGENT_DISCOVERY_SETTLE_MS = 1000;

/** The agents of the group once their list settled (or AGENT_DISCOVERY_MS passed). */
export function discoverAgents(
  events: Events,
  node: Pick<PeerNode, 'membership' | 'join'>,
): Promise<EventMember[]> {
  return discoverSettled(node.membership, {
    list: () => events.agents(),
    settleMs: AGENT_DISCOVERY_SETTLE_MS,
    maxMs: AGENT_DISCOVERY_MS,
    busy: () => node.join.greeting(),
  });
}

/** Up to `max` bytes of stdin; more is an error that names `what`. */
export async function readStdinBounded(max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const c of process.stdin) {
    const b = c as Buffer;
    bytes += b.length;
    if (bytes > max) throw new UsageError(`${what} on stdin is over the ${max}-byte limit; send less`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** A one-shot client's Events (not an agent) on a reliable delivery whose audience is the agents. */
export function installClient(node: PeerNode): Events {
  const reliable = node.install(
    (ctx, n) => new ReliableDelivery(ctx, n.membership, { audience: (m) => m.tags[EVENTS_TAG] === true }),
  );
  return node.install((ctx, n) => new Events(ctx, n.membership, reliable, { agent: false }));
}
