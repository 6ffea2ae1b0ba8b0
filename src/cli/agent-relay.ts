/**
 * `peer event` and `peer query` through a local agent, as `serf event` hands its event to the
 * running Serf agent: when a `peer up` of the same group runs on this host with the same data dir,
 * the command sends the event or query over that agent's control socket (tags-control.ts) and the
 * agent publishes it and reports the acks or the answers back. No peer to start, no second of
 * discovery: the agent has known the group for long, and the group knows it.
 *
 * One JSON request line; the agent answers with JSON lines: for a query each answer as it comes,
 * then the outcome. An agent of another group (or another version) says so and the command tries
 * the next socket, then runs as a one-shot peer. What the agent sends back is checked as anything
 * from outside (names are escaped where shown, answers bounded).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { PeerNode } from '../p2p/node.js';
import type { AckStatus } from '../p2p/reliable/index.js';
import {
  checkNameAndPayload,
  QUERY_ANSWER_BYTES_MAX,
  QUERY_NODES_MAX,
  QUERY_TIMEOUT_MS_MAX,
  userTagsProblem,
  type Answer,
  type Events,
  type UserTags,
} from '../p2p/events/index.js';
import { CONTROL_REPLY_MS, CONTROL_SOCKET_SUFFIX } from './tags-control.js';
import { UsageError } from './network.js';
import { escapeForTerminal } from './sanitize.js';
import type { KeySettings } from './security.js';
import { keyId } from '../p2p/transport/keyring.js';

/** The longest an agent waits for acks of a relayed event (peer event's --timeout at most), in ms. */
export const RELAY_EVENT_TIMEOUT_MS_MAX = 600_000;
/** A reply line from the agent, in bytes: an answer of QUERY_ANSWER_BYTES_MAX in base64 and names. */
const RELAY_LINE_BYTES_MAX = 64 * 1024;
/** Sockets tried in a data dir at most (one per peer name run there). */
const RELAY_SOCKETS_MAX = 32;

export interface EventRequest {
  op: 'event';
  group: string;
  /** relayKey() of the command: an agent under other keys refuses it. */
  key: string;
  name: string;
  payload: string;
  coalesce: boolean;
  timeoutMs: number;
}
export interface QueryRequest {
  op: 'query';
  group: string;
  key: string;
  name: string;
  payload: string;
  timeoutMs: number;
  tags: UserTags;
  nodes: string[];
}
export interface EventOutcome {
  lamport: number;
  acked: string[];
  missing: string[];
  complete: boolean;
}
export interface RelayedAnswer {
  from: string;
  data: Buffer | null;
  truncated: boolean;
}
export interface QueryOutcome {
  answers: RelayedAnswer[];
  silent: string[];
}

/**
 * The key a command would send under: its primary key's id, '' in an open group. An agent takes a
 * relayed event only if it holds that key (or both run open), so a command never has its event
 * sent under keys it was not given, nor a keyed command's event sent in the open.
 */
export function relayKey(keys: KeySettings | null | undefined): string {
  return keys ? keyId(keys.keys[0]!).toString('hex') : '';
}

/** Whether an agent holding `agentKeyIds` (none: open) may send for a command of `key`. */
export function relayKeyMatches(key: unknown, agentKeyIds: readonly string[]): boolean {
  if (typeof key !== 'string') return false;
  return key === '' ? agentKeyIds.length === 0 : agentKeyIds.includes(key);
}

// ---- agent side ------------------------------------------------------------------------------------

/**
 * Serves relayed events and queries on a `peer up` of `group` (GROUP:PORT) holding the keys
 * `keyIds()` gives (it changes on SIGHUP).
 */
export function relayServer(events: Events, node: PeerNode, group: string, keyIds: () => readonly string[]) {
  const nameOf = (id: string) =>
    id === node.id ? node.name : (node.membership.get(id)?.name ?? id.slice(0, 8));
  return (req: Record<string, unknown>, conn: net.Socket): void => {
    const send = (v: unknown): void => void conn.write(`${JSON.stringify(v)}\n`);
    const end = (v: unknown): void => void conn.end(`${JSON.stringify(v)}\n`);
    const fail = (error: string): void => end({ ok: false, error });
    if (req.group !== group || !relayKeyMatches(req.key, keyIds())) return end({ ok: false, group });
    const payload = typeof req.payload === 'string' ? Buffer.from(req.payload, 'base64') : null;
    const timeoutMs = req.timeoutMs;
    if (
      typeof req.name !== 'string' ||
      !payload ||
      !Number.isSafeInteger(timeoutMs) ||
      (timeoutMs as number) < 1 ||
      (timeoutMs as number) > RELAY_EVENT_TIMEOUT_MS_MAX
    )
      return fail('request is not an event or a query this peer takes');
    try {
      checkNameAndPayload(req.op === 'event' ? 'event' : 'query', req.name, payload);
      if (req.op === 'event') {
        // Settled (never from inside publish) or timed out: who acked by then.
        let replied = false;
        const reply = (s: AckStatus | undefined): void => {
          if (replied) return;
          replied = true;
          clearTimeout(timer);
          const acked = (s?.acked ?? []).map(nameOf);
          const missing = s ? [...s.pending, ...s.gone, ...s.refused.map((r) => r.peer)].map(nameOf) : [];
          end({ ok: true, lamport: published.lamport, acked, missing, complete: s?.complete ?? false });
        };
        const published = events.publish(req.name, payload, req.coalesce === true, reply);
        const timer = setTimeout(() => reply(published.status()), timeoutMs as number);
        return;
      }
      const tags = isStringRecord(req.tags) ? req.tags : null;
      const nodes =
        Array.isArray(req.nodes) && req.nodes.every((n) => typeof n === 'string') ? req.nodes : null;
      if (!tags || userTagsProblem(tags) !== null || !nodes || nodes.length > QUERY_NODES_MAX)
        return fail('query filter is not one this peer takes');
      if ((timeoutMs as number) > QUERY_TIMEOUT_MS_MAX)
        return fail(`query timeout over ${QUERY_TIMEOUT_MS_MAX} ms`);
      const wire = (a: Answer) => ({
        from: a.from.name,
        data: a.data?.toString('base64') ?? null,
        truncated: a.truncated,
      });
      events.query(
        { name: req.name, payload, timeoutMs: timeoutMs as number, tags, nodes },
        (a) => send({ answer: wire(a) }),
        (r) => end({ ok: true, silent: r.silent.map((m) => m.name) }),
      );
    } catch (err) {
      // A bad name or payload, too many queries open, reliable delivery's queue full: said to the
      // command, never thrown into the socket's handler (it would stop the peer).
      fail(err instanceof Error ? err.message : String(err));
    }
  };
}

// ---- command side ----------------------------------------------------------------------------------

/**
 * Hands `req` to a `peer up` of its group that runs with data dir `dataDir`: its outcome, or null
 * when none does (then the command runs as a one-shot peer). `onAnswer` gets a query's answers as
 * they come. A UsageError when the agent refused the request (too many queries open there).
 */
export async function relayed(
  dataDir: string,
  req: EventRequest | QueryRequest,
  onAnswer: (a: RelayedAnswer) => void = () => {},
): Promise<EventOutcome | QueryOutcome | null> {
  for (const socket of agentSockets(dataDir)) {
    const r = await tryAgent(socket, req, onAnswer);
    if (r) return r;
  }
  return null;
}

function agentSockets(dataDir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dataDir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith(CONTROL_SOCKET_SUFFIX))
    .slice(0, RELAY_SOCKETS_MAX)
    .map((n) => path.join(path.resolve(dataDir), n));
}

/** One agent's outcome; null when it is not there, of another group, or answered nothing usable. */
function tryAgent(
  socket: string,
  req: EventRequest | QueryRequest,
  onAnswer: (a: RelayedAnswer) => void,
): Promise<EventOutcome | QueryOutcome | null> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(socket);
    let buf = '';
    const answers: RelayedAnswer[] = [];
    let settled = false;
    const done = (v: EventOutcome | QueryOutcome | null, err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.destroy();
      if (err) reject(err);
      else resolve(v);
    };
    // The agent answers within the request's timeout; past it and a margin, it is stuck: go one-shot.
    const timer = setTimeout(() => done(null), req.timeoutMs + CONTROL_REPLY_MS);
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write(`${JSON.stringify(req)}\n`));
    conn.on('error', () => done(null));
    conn.on('close', () => done(null));
    conn.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const v = parse(line);
        if (!v) return done(null);
        if ('answer' in v) {
          const a = relayedAnswer(v.answer);
          if (!a) return done(null);
          answers.push(a);
          onAnswer(a);
          continue;
        }
        if (v.ok === false)
          return typeof v.error === 'string'
            ? done(null, new UsageError(`the peer running here refused it: ${escapeForTerminal(v.error)}`))
            : done(null);
        if (req.op === 'event' && isEventOutcome(v)) return done(v);
        if (req.op === 'query' && isNames(v.silent)) return done({ answers, silent: v.silent });
        return done(null);
      }
      if (buf.length > RELAY_LINE_BYTES_MAX) done(null);
    });
  });
}

function parse(line: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function relayedAnswer(v: unknown): RelayedAnswer | null {
  const a = v as { from?: unknown; data?: unknown; truncated?: unknown } | null;
  if (!a || typeof a.from !== 'string' || typeof a.truncated !== 'boolean') return null;
  if (a.data !== null && typeof a.data !== 'string') return null;
  const data = a.data === null ? null : Buffer.from(a.data, 'base64');
  if (data && data.length > QUERY_ANSWER_BYTES_MAX) return null;
  return { from: a.from, data, truncated: a.truncated };
}

function isEventOutcome(v: Record<string, unknown>): v is Record<string, unknown> & EventOutcome {
  return (
    Number.isSafeInteger(v.lamport) &&
    isNames(v.acked) &&
    isNames(v.missing) &&
    typeof v.complete === 'boolean'
  );
}

function isNames(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((n) => typeof n === 'string');
}

function isStringRecord(v: unknown): v is Record<string, string> {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    Object.values(v).every((x) => typeof x === 'string')
  );
}
