/**
 * Events: Serf's member events, user events and queries, for handlers (the scripts `peer up
 * --handler` runs) to act on.
 *
 * Algorithm.
 * - Agents (`peer up`) carry the membership tag EVENTS_TAG. One-shot commands (`peer event`,
 *   `peer query`) join the group only for their run and never carry it, so they never show up
 *   as member events nor answer queries.
 * - Member events are derived from membership at each tick, as chat's presence is: an agent seen
 *   live that was not (first seen, or back after a death or a leave) is a `member-join`; one that
 *   was live and is now dead a `member-failed`, left a `member-leave`; one whose user tags
 *   changed a `member-update`. The members of one kind found at one tick go to the handler
 *   together, one a line, as Serf's coalesced member events do.
 * - A user event is one reliable multicast on USER_EVENT_TOPIC: every live member gets it exactly
 *   once while its sender lives, or reliable delivery reports the loss; its sender counts the acks.
 *   An agent acks an event only once it is in its journal (journal.ts): durable, so a crash before
 *   its handlers ran loses nothing (the restarted agent runs what its journal holds, at its first
 *   tick); a failed write, or a journal at EVENTS_JOURNAL_EVENTS_MAX, is never acked. An event
 *   leaves the journal when its handlers ended (`done`). Its time is the Lamport time its sender
 *   stamped.
 *   A coalesced event is held EVENTS_QUIESCENT_MS after the last of its kind (EVENTS_COALESCE_MS
 *   at most) and only the latest of each name then runs: Serf's coalescing.
 * - A query is one reliable multicast on QUERY_TOPIC with an id, a timeout and optional filters
 *   (user tags, member names). Every agent that matches answers once by reliable unicast on
 *   ANSWER_TOPIC: its handler's output, or no answer at once when it has no handler for the
 *   query. The asker expects an answer from the agents that matched in its own view when it
 *   asked (and takes one from an agent that matches and joined since); it ends at its timeout or
 *   once every expected agent answered, and names those that did not.
 *
 * Message format: a JSON header line, then the payload's bytes (so a payload may be binary).
 * Everything received is hostile until checked: a header that fails its check, a name that is not
 * an event name, a payload or answer over its limit, an answer to a query we never asked or from an
 * agent that does not match it, a second answer from one agent: each is dropped and counted under
 * the node's refused counters ('event', 'query', 'answer'), never handed to a handler. Replays are
 * reliable delivery's (each message delivered once per stream). What this does not stop in an open
 * group: anyone on the LAN can publish any event or query, so a handler must treat its stdin as
 * data from anyone (docs/events.md; a keyed group, --key-file, stops it).
 */
import { is, type PeerId } from '../wire.js';
import type { MemberView, Protocol, ProtocolContext } from '../protocol.js';
import type { Membership } from '../membership.js';
import { messageKey, type AckStatus, type Delivery, type ReliableDelivery } from '../reliable/index.js';
import {
  EVENT_NAME_CHARS_MAX,
  EVENT_PAYLOAD_BYTES_MAX,
  EVENTS_COALESCE_MS,
  EVENTS_COALESCE_NAMES_MAX,
  EVENTS_JOURNAL_EVENTS_MAX,
  EVENTS_QUIESCENT_MS,
  QUERIES_OPEN_MAX,
  QUERY_ANSWER_BYTES_MAX,
  QUERY_ID_CHARS,
  QUERY_MEMBERS_MAX,
  QUERY_TIMEOUT_MS_MAX,
  USER_TAGS_MAX,
  USER_TAG_KEY_CHARS_MAX,
  USER_TAG_VALUE_CHARS_MAX,
} from './limits.js';
import { isJournaledEvent, type EventJournal, type JournaledEvent } from './journal.js';
import { WriteFailedError } from '../write-failure.js';
import { isUserTagKey, isUserTagValue, matchesTags, userTags, withUserTags, type UserTags } from './tags.js';

/** Membership tag of agents: peers that run handlers and answer queries. */
export const EVENTS_TAG = 'ev';
export const USER_EVENT_TOPIC = 'ev.u';
export const QUERY_TOPIC = 'ev.q';
export const ANSWER_TOPIC = 'ev.a';
/** Member names one query may be limited to (`peer query --node`). */
export const QUERY_NODES_MAX = 16;
/** A header line, in bytes: a query's with QUERY_NODES_MAX names and USER_TAGS_MAX tags fits. */
const HEADER_BYTES_MAX = 2048;

const NAME_RE = new RegExp(`^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,${EVENT_NAME_CHARS_MAX - 1}}$`);
/** An event or query name: letters, digits and _ . : - (it goes into the handler's environment). */
export const isEventName = (v: unknown): v is string => typeof v === 'string' && NAME_RE.test(v);

export type MemberEventKind = 'member-join' | 'member-leave' | 'member-failed' | 'member-update';

export interface EventMember {
  id: PeerId;
  name: string;
  address: string;
  tags: UserTags;
}

export interface UserEvent {
  kind: 'user';
  name: string;
  payload: Buffer;
  lamport: number;
  fromName: string;
  coalesce: boolean;
  /** Takes it out of the journal: call once its handlers ended (or none will run it). */
  done(): void;
}

export interface QueryEvent {
  kind: 'query';
  id: string;
  name: string;
  payload: Buffer;
  lamport: number;
  fromName: string;
  /** Sends the answer (once; later calls do nothing): the handler's output, or null for none. */
  answer(data: Buffer | null): void;
}

/** What handlers are run for. */
export type HandlerEvent = { kind: MemberEventKind; members: EventMember[] } | UserEvent | QueryEvent;

/** A user event published. */
export interface Published {
  /** Its Lamport time. */
  lamport: number;
  /** Who acked it so far (undefined once reliable delivery no longer holds it). */
  status(): AckStatus | undefined;
}

export interface QuerySpec {
  name: string;
  payload: Buffer;
  timeoutMs: number;
  /** Only agents with all these user tags answer. */
  tags?: UserTags;
  /** Only agents with these names answer. */
  nodes?: string[];
}

export interface Answer {
  from: EventMember;
  /** The handler's output; null: the agent has no handler for this query. */
  data: Buffer | null;
  truncated: boolean;
}

export interface QueryResult {
  answers: Answer[];
  /** Agents expected to answer that did not. */
  silent: EventMember[];
}

export class EventsError extends Error {
  override name = 'EventsError';
}

export type EventsMembership = Pick<Membership, 'list' | 'live' | 'get' | 'setTags' | 'ownTags' | 'version'>;

export interface EventsOptions {
  /** An agent (`peer up`): tags itself, reports member events, receives events, answers queries. */
  agent: boolean;
  /** Whether this agent has a handler for query `name`; without one it answers at once with none. */
  answers?: (name: string) => boolean;
  /** The user tags to start with. */
  tags?: UserTags;
  /** Where an agent makes each user event durable before acking it; none: acked at delivery. */
  journal?: EventJournal;
}

const isTagFilter = is.tags(USER_TAGS_MAX, USER_TAG_KEY_CHARS_MAX, USER_TAG_VALUE_CHARS_MAX);
const USER_HEADER = is.object({ n: isEventName }, { c: is.literal(1) });
const QUERY_HEADER = is.object(
  { q: is.str(QUERY_ID_CHARS, QUERY_ID_CHARS), n: isEventName, t: is.uint(QUERY_TIMEOUT_MS_MAX) },
  { g: isTagFilter, m: is.array(is.str(64, 1), QUERY_NODES_MAX) },
);
const ANSWER_HEADER = is.object(
  { q: is.str(QUERY_ID_CHARS, QUERY_ID_CHARS), a: is.literal(0, 1) },
  { x: is.literal(1) },
);

interface OpenQuery {
  spec: QuerySpec;
  deadline: number;
  expected: Map<PeerId, EventMember>;
  answers: Map<PeerId, Answer>;
  onAnswer: (a: Answer) => void;
  onDone: (r: QueryResult) => void;
}

interface Held {
  event: UserEvent;
  firstAt: number;
  lastAt: number;
}

export class Events implements Protocol {
  readonly messages = {};
  readonly onMessage = (): void => {};
  readonly stats = {
    userEvents: 0,
    coalescedAway: 0,
    queriesAnswered: 0,
    lateAnswers: 0,
    /** User events not acked: the journal's write failed, or it was full. */
    notJournaled: 0,
    /** User events run again from the journal after a restart. */
    replayed: 0,
  };
  private readonly handlers: Array<(e: HandlerEvent) => void> = [];
  /** Agents as last reported to handlers: in the group or not, and their user tags (`k=v,...`). */
  private readonly reported = new Map<PeerId, { live: boolean; tags: string }>();
  private readonly held = new Map<string, Held>();
  private readonly open = new Map<string, OpenQuery>();
  private user: UserTags;
  private tagged = false;
  /** membership.version when member events were last worked out (reportMembers). */
  private reportedVersion = -1;
  /** Events in the journal and not done (bounded by EVENTS_JOURNAL_EVENTS_MAX). */
  private journaled = 0;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly membership: EventsMembership,
    private readonly reliable: ReliableDelivery,
    private readonly opts: EventsOptions,
  ) {
    this.user = { ...(opts.tags ?? {}) };
    if (opts.agent) {
      reliable.on(USER_EVENT_TOPIC, (d) => this.onUserEvent(d));
      reliable.on(QUERY_TOPIC, (d) => this.onQuery(d));
    }
    reliable.on(ANSWER_TOPIC, (d) => this.onAnswer(d));
  }

  /** Every event for the handlers, in the order it happened here. */
  onEvent(handler: (e: HandlerEvent) => void): void {
    this.handlers.push(handler);
  }

  /** This peer's user tags. */
  get tags(): UserTags {
    return { ...this.user };
  }

  /** Replaces this peer's user tags (checked by the caller: tags.ts userTagsProblem); sent at once. */
  setTags(tags: UserTags): void {
    this.user = { ...tags };
    if (this.tagged) this.publishTags();
  }

  /** Agents live now, as handlers see them. */
  agents(): EventMember[] {
    return this.membership.live().filter(isAgent).map(eventMember);
  }

  /**
   * Publishes user event `name` to every live agent; `onSettled` once each acked or is gone (an
   * agent that could not make it durable never acks: `status()` names it pending meanwhile).
   * Throws EventsError for a bad name or a payload over EVENT_PAYLOAD_BYTES_MAX.
   */
  publish(name: string, payload: Buffer, coalesce: boolean, onSettled?: (s: AckStatus) => void): Published {
    checkNameAndPayload('event', name, payload);
    // An agent that publishes (for `peer event` through its control socket) is one of the agents:
    // its own handlers get the event too, journaled first, and it counts among the acks.
    let held: boolean | null = null;
    const withSelf = (s: AckStatus): AckStatus =>
      held === null
        ? s
        : held
          ? { ...s, acked: [this.ctx.self.id, ...s.acked] }
          : { ...s, complete: false, pending: [this.ctx.self.id, ...s.pending] };
    const id = this.reliable.publish(
      USER_EVENT_TOPIC,
      frame(coalesce ? { n: name, c: 1 } : { n: name }, payload),
      onSettled && ((s) => onSettled(withSelf(s))),
    );
    const lamport = this.reliable.lastLamport;
    if (this.opts.agent) {
      const row: JournaledEvent = {
        key: messageKey(id),
        name,
        payload,
        lamport,
        fromName: this.ctx.self.name,
        coalesce,
      };
      const refused = this.journal(row);
      held = refused === null;
      if (refused) this.stats.notJournaled++;
      else this.take(this.userEvent(row));
    }
    return {
      lamport,
      status: () => {
        const s = this.reliable.ackStatus(id);
        return s && withSelf(s);
      },
    };
  }

  /**
   * Asks query `spec` of every matching agent: `onAnswer` for each answer as it comes, `onDone`
   * once (at the timeout, or when every agent expected answered, never from inside this call).
   */
  query(spec: QuerySpec, onAnswer: (a: Answer) => void, onDone: (r: QueryResult) => void): string {
    checkNameAndPayload('query', spec.name, spec.payload);
    if (!Number.isSafeInteger(spec.timeoutMs) || spec.timeoutMs < 0 || spec.timeoutMs > QUERY_TIMEOUT_MS_MAX)
      throw new EventsError(`query timeout must be 0-${QUERY_TIMEOUT_MS_MAX} ms`);
    if ((spec.nodes?.length ?? 0) > QUERY_NODES_MAX)
      throw new EventsError(`a query names at most ${QUERY_NODES_MAX} members`);
    if (this.open.size >= QUERIES_OPEN_MAX)
      throw new EventsError(`${QUERIES_OPEN_MAX} queries are open already; wait for one to end`);
    let id = '';
    while (id.length < QUERY_ID_CHARS) id += Math.floor(this.ctx.random() * 16).toString(16);
    const expected = new Map<PeerId, EventMember>();
    for (const m of this.agents())
      if (matches(spec, m.name, m.tags) && expected.size < QUERY_MEMBERS_MAX) expected.set(m.id, m);
    // An agent that asks answers its own query too, as every agent it asks does.
    const self: EventMember = {
      id: this.ctx.self.id,
      name: this.ctx.self.name,
      address: '',
      tags: this.tags,
    };
    const asksSelf = this.opts.agent && matches(spec, self.name, self.tags);
    if (asksSelf) expected.set(self.id, self);
    this.open.set(id, {
      spec,
      deadline: this.ctx.now() + spec.timeoutMs,
      expected,
      answers: new Map(),
      onAnswer,
      onDone,
    });
    this.ctx.wakeAt(this.ctx.now() + spec.timeoutMs);
    const header: Record<string, unknown> = { q: id, n: spec.name, t: spec.timeoutMs };
    if (spec.tags && Object.keys(spec.tags).length > 0) header.g = spec.tags;
    if (spec.nodes && spec.nodes.length > 0) header.m = spec.nodes;
    this.reliable.publish(QUERY_TOPIC, frame(header, spec.payload));
    if (asksSelf) this.askSelf(id, spec, self);
    return id;
  }

  /** Returns when it next has work: a coalesced event to release, a query to end (none: Infinity). */
  tick(now: number): number {
    if (this.opts.agent && !this.tagged) {
      // On the first tick, not in the constructor: the node sends nothing before it started.
      this.tagged = true;
      this.publishTags();
      this.replayJournal();
    }
    // Member events come from membership's changes: nothing to look at while its version stands.
    if (this.opts.agent && this.membership.version !== this.reportedVersion) {
      this.reportedVersion = this.membership.version;
      this.reportMembers();
    }
    this.releaseHeld(now, false);
    for (const [id, q] of this.open)
      if (now >= q.deadline || [...q.expected.keys()].every((p) => q.answers.has(p))) this.finish(id, q);
    let next = Infinity;
    for (const h of this.held.values())
      next = Math.min(next, h.firstAt + EVENTS_COALESCE_MS, h.lastAt + EVENTS_QUIESCENT_MS);
    for (const q of this.open.values()) next = Math.min(next, q.deadline);
    return next;
  }

  private publishTags(): void {
    this.membership.setTags({ ...withUserTags(this.membership.ownTags, this.user), [EVENTS_TAG]: true });
  }

  /** Member events since the last tick (see the header). */
  private reportMembers(): void {
    const found: Record<MemberEventKind, EventMember[]> = {
      'member-join': [],
      'member-leave': [],
      'member-failed': [],
      'member-update': [],
    };
    const listed = new Set<PeerId>();
    for (const m of this.membership.list()) {
      if (!isAgent(m)) continue;
      listed.add(m.id);
      const live = m.state === 'alive' || m.state === 'suspect';
      const em = eventMember(m);
      const tags = JSON.stringify(em.tags);
      const before = this.reported.get(m.id);
      if (live && !before?.live) found['member-join'].push(em);
      else if (live && before && before.tags !== tags) found['member-update'].push(em);
      else if (!live && before?.live) found[m.state === 'dead' ? 'member-failed' : 'member-leave'].push(em);
      this.reported.set(m.id, { live, tags });
    }
    // Membership forgot them (deadRetentionMs after their end): so do we.
    for (const id of this.reported.keys()) if (!listed.has(id)) this.reported.delete(id);
    for (const [kind, members] of Object.entries(found) as Array<[MemberEventKind, EventMember[]]>)
      if (members.length > 0) this.emit({ kind, members });
  }

  /** A rejected promise withholds the ack (reliable/durable.ts): the event is not durable here. */
  private onUserEvent(d: Delivery): Promise<never> | undefined {
    const parsed = unframe(d.data, USER_HEADER);
    if (!parsed || parsed.payload.length > EVENT_PAYLOAD_BYTES_MAX) {
      this.ctx.refuse('event');
      return;
    }
    const h = parsed.header as { n: string; c?: 1 };
    const row: JournaledEvent = {
      key: d.key,
      name: h.n,
      payload: parsed.payload,
      lamport: d.lamport,
      fromName: d.fromName,
      coalesce: h.c === 1,
    };
    const refused = this.journal(row);
    if (refused) {
      this.stats.notJournaled++;
      return Promise.reject(refused);
    }
    this.stats.userEvents++;
    this.take(this.userEvent(row));
  }

  /** Appends `row` to the journal, if any; the error that withholds its ack when that failed. */
  private journal(row: JournaledEvent): Error | null {
    const journal = this.opts.journal;
    if (!journal) return null;
    if (this.journaled >= EVENTS_JOURNAL_EVENTS_MAX)
      return new EventsError(`${EVENTS_JOURNAL_EVENTS_MAX} events wait for their handlers; not acknowledged`);
    const failure = journal.append(row);
    if (failure) return new WriteFailedError(failure);
    this.journaled++;
    return null;
  }

  private userEvent(row: JournaledEvent): UserEvent {
    let done = false;
    return {
      kind: 'user',
      name: row.name,
      payload: row.payload,
      lamport: row.lamport,
      fromName: row.fromName,
      coalesce: row.coalesce,
      done: () => {
        if (done || !this.opts.journal) return;
        done = true;
        this.journaled--;
        this.opts.journal.done(row.key);
      },
    };
  }

  /** What the journal holds from before a restart: acked, and its handlers never ended. */
  private replayJournal(): void {
    for (const row of this.opts.journal?.pending(EVENTS_JOURNAL_EVENTS_MAX) ?? []) {
      if (!isJournaledEvent(row, isEventName)) continue;
      this.journaled++;
      this.stats.replayed++;
      this.emit(this.userEvent(row));
    }
  }

  /** Runs a user event now, or holds it for coalescing. */
  private take(event: UserEvent): void {
    if (!event.coalesce) return this.emit(event);
    const now = this.ctx.now();
    const held = this.held.get(event.name);
    if (held) {
      this.stats.coalescedAway++;
      // The one not run is done: it never reaches a handler.
      if (event.lamport >= held.event.lamport) {
        held.event.done();
        held.event = event;
      } else event.done();
      held.lastAt = now;
      this.ctx.wakeAt(now + EVENTS_QUIESCENT_MS);
      return;
    }
    if (this.held.size >= EVENTS_COALESCE_NAMES_MAX) this.releaseHeld(now, true);
    this.held.set(event.name, { event, firstAt: now, lastAt: now });
    this.ctx.wakeAt(now + EVENTS_QUIESCENT_MS);
  }

  /** Runs the coalesced events that are due (all of them with `all`), in Lamport order. */
  private releaseHeld(now: number, all: boolean): void {
    const due: UserEvent[] = [];
    for (const [name, h] of this.held)
      if (all || now - h.firstAt >= EVENTS_COALESCE_MS || now - h.lastAt >= EVENTS_QUIESCENT_MS) {
        due.push(h.event);
        this.held.delete(name);
      }
    due.sort((a, b) => a.lamport - b.lamport).forEach((e) => this.emit(e));
  }

  private onQuery(d: Delivery): void {
    const parsed = unframe(d.data, QUERY_HEADER);
    if (!parsed || parsed.payload.length > EVENT_PAYLOAD_BYTES_MAX) return this.ctx.refuse('query');
    const h = parsed.header as { q: string; n: string; t: number; g?: UserTags; m?: string[] };
    const spec: QuerySpec = { name: h.n, payload: parsed.payload, timeoutMs: h.t, tags: h.g, nodes: h.m };
    if (!matches(spec, this.ctx.self.name, this.user)) return;
    let answered = false;
    const answer = (data: Buffer | null): void => {
      if (answered) return;
      answered = true;
      this.stats.queriesAnswered++;
      const truncated = data !== null && data.length > QUERY_ANSWER_BYTES_MAX;
      const body = data === null ? Buffer.alloc(0) : data.subarray(0, QUERY_ANSWER_BYTES_MAX);
      const header: Record<string, unknown> = { q: h.q, a: data === null ? 0 : 1 };
      if (truncated) header.x = 1;
      this.reliable.sendTo(d.from, ANSWER_TOPIC, frame(header, body));
    };
    if (!(this.opts.answers?.(h.n) ?? false)) return answer(null);
    this.emit({
      kind: 'query',
      id: h.q,
      name: h.n,
      payload: parsed.payload,
      lamport: d.lamport,
      fromName: d.fromName,
      answer,
    });
  }

  /** This agent's own answer to its query `id`: as a remote agent's, without the network. */
  private askSelf(id: string, spec: QuerySpec, self: EventMember): void {
    let answered = false;
    const answer = (data: Buffer | null): void => {
      const q = this.open.get(id);
      if (answered || !q) return;
      answered = true;
      const truncated = data !== null && data.length > QUERY_ANSWER_BYTES_MAX;
      const a: Answer = { from: self, data: data && data.subarray(0, QUERY_ANSWER_BYTES_MAX), truncated };
      q.answers.set(self.id, a);
      q.onAnswer(a);
    };
    if (!(this.opts.answers?.(spec.name) ?? false)) return answer(null);
    const lamport = this.reliable.lastLamport;
    this.emit({
      kind: 'query',
      id,
      name: spec.name,
      payload: spec.payload,
      lamport,
      fromName: self.name,
      answer,
    });
  }

  private onAnswer(d: Delivery): void {
    const parsed = unframe(d.data, ANSWER_HEADER);
    if (!parsed || parsed.payload.length > QUERY_ANSWER_BYTES_MAX) return this.ctx.refuse('answer');
    const h = parsed.header as { q: string; a: 0 | 1; x?: 1 };
    const q = this.open.get(h.q);
    // An answer may complete the query: the next tick sees it.
    this.ctx.wakeAt(this.ctx.now());
    if (!q) {
      // Ours and ended (after its timeout), or never ours: nothing to tell the two apart by.
      this.stats.lateAnswers++;
      return;
    }
    const m = this.membership.get(d.from);
    const from = q.expected.get(d.from) ?? (m && isAgent(m) ? eventMember(m) : undefined);
    const late = !q.expected.has(d.from) && (!from || !matches(q.spec, from.name, from.tags));
    if (!from || late || q.answers.has(d.from) || q.answers.size >= QUERY_MEMBERS_MAX)
      return this.ctx.refuse('answer');
    const answer: Answer = { from, data: h.a === 1 ? parsed.payload : null, truncated: h.x === 1 };
    q.answers.set(d.from, answer);
    q.onAnswer(answer);
  }

  private finish(id: string, q: OpenQuery): void {
    this.open.delete(id);
    const silent = [...q.expected.values()].filter((m) => !q.answers.has(m.id));
    q.onDone({ answers: [...q.answers.values()], silent });
  }

  private emit(e: HandlerEvent): void {
    for (const h of this.handlers) h(e);
  }
}

function isAgent(m: MemberView): boolean {
  return m.tags[EVENTS_TAG] === true;
}

function eventMember(m: MemberView): EventMember {
  return { id: m.id, name: m.name, address: m.address, tags: userTags(m.tags) };
}

/** Whether an agent named `name` with `tags` is one the query is for. */
function matches(spec: QuerySpec, name: string, tags: UserTags): boolean {
  if (spec.nodes && spec.nodes.length > 0 && !spec.nodes.includes(name)) return false;
  return !spec.tags || matchesTags(tags, spec.tags);
}

/** Throws EventsError unless `name` is an event name and `payload` within EVENT_PAYLOAD_BYTES_MAX. */
export function checkNameAndPayload(what: 'event' | 'query', name: string, payload: Buffer): void {
  if (!isEventName(name))
    throw new EventsError(
      `${what} name '${name}' is not valid: 1-${EVENT_NAME_CHARS_MAX} letters, digits or _ . : - (starting with a letter, digit or _)`,
    );
  if (payload.length > EVENT_PAYLOAD_BYTES_MAX)
    throw new EventsError(
      `payload is ${payload.length} bytes, over the ${EVENT_PAYLOAD_BYTES_MAX}-byte limit`,
    );
}

function frame(header: Record<string, unknown>, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), payload]);
}

/** The checked header and the payload of a message, or null when it is not one. */
function unframe(data: Buffer, check: (v: unknown) => boolean): { header: unknown; payload: Buffer } | null {
  const nl = data.indexOf(10);
  if (nl < 0 || nl > HEADER_BYTES_MAX) return null;
  let header: unknown;
  try {
    header = JSON.parse(data.subarray(0, nl).toString('utf8'));
  } catch {
    return null;
  }
  if (!check(header)) return null;
  // Keys of a tag filter pass isUserTagKey's rule, not only the wire's bounds.
  const g = (header as { g?: Record<string, unknown> }).g;
  if (g && !Object.entries(g).every(([k, v]) => isUserTagKey(k) && isUserTagValue(v))) return null;
  return { header, payload: data.subarray(nl + 1) };
}
