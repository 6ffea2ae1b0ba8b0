/**
 * Chat: group messages and direct messages on top of reliable delivery, with history for late
 * joiners.
 *
 * Algorithm.
 * - A group message is one reliable multicast on topic `chat`; a direct message is one reliable
 *   unicast (acked, retried) on the same topic. The payload is `<sender wall ms> <text>`: the
 *   wall time is for display only, order comes from the Lamport time the sender stamped.
 * - Members that run chat say so with the membership tag `chat`, so a `peer up` in the same group
 *   is not waited for, and `/who` lists only chat members. Presence (`onPresence`) is derived
 *   from the same list at each tick: a member is announced when it first shows with the tag, and
 *   its departure when membership says it left or is dead. A member still live whose tag went
 *   missing at the same incarnation is not announced gone: that is an older heartbeat arriving
 *   late (reordering), not a departure. One-shot senders never carry the tag: their lines show
 *   under their name, but they are never announced.
 * - A line is one message whatever its size, up to CHAT_TEXT_BYTES_MAX: reliable delivery sends
 *   one that does not fit a datagram in fragments and delivers it whole, after the sender's
 *   earlier lines and before its later ones (order is kept per topic, and every line is on
 *   `chat`).
 * - History: a newcomer asks one chat member (`ch.hreq {n}`, unicast) for its last n lines; the
 *   member answers with one reliable unicast per line on topic `chat.h` (public lines and the
 *   newcomer's own direct messages only), long lines included, the newest lines up to
 *   CHAT_HISTORY_SHARE_BYTES_MAX. Lines are de-duplicated by message id, so history
 *   that overlaps live traffic or a local store shows once. With no answer within
 *   CHAT_HISTORY_RETRY_MS another member is asked, up to CHAT_HISTORY_ATTEMPTS_MAX times.
 * - Re-sync after a partition: when a chat member we knew comes back after being gone from our
 *   view (a partition healed, our link came back), we ask it for its recent lines too. What a
 *   sender still alive missed is repaired by reliable delivery; this covers a sender that finished
 *   and left while we were cut off (a one-shot `peer chat --send`), whose stream nobody can repair.
 *
 * Failure modes: what reliable delivery reports lost is passed on (`onLost`), never hidden; a
 * history request that finds too much history already queued for sending is not answered (the
 * newcomer asks another member) and counted; a malformed payload from the wire is dropped and
 * counted, a text over the limit refused and counted ('chat-text').
 */
import { is, isPeerName, type PeerId } from './wire.js';
import { f, message, messages, type Origin } from './kit/message.js';
import { loadable } from './bounds.js';
import type { MemberView, Protocol, ProtocolContext } from './protocol.js';
import {
  ReliableDelivery,
  messageKey,
  type AckStatus,
  type Delivery,
  type LostReport,
  type MessageId,
  type SendResult,
} from './reliable/index.js';
import type { Tags } from './membership.js';

export const CHAT_TOPIC = 'chat';
export const CHAT_HISTORY_TOPIC = 'chat.h';
/** Membership tag of peers running chat. */
export const CHAT_TAG = 'chat';
/**
 * Longest text, in UTF-8 bytes: a pasted stack trace, log or config file fits. More is a file
 * (`--send-file`), streamed to disk: every chat member keeps lines in memory (up to
 * CHAT_HISTORY_KEEP_BYTES_MAX), stores each in SQLite and shows it whole on a terminal.
 */
export const CHAT_TEXT_BYTES_MAX = 1024 * 1024;
/** Lines one member sends a newcomer. */
export const CHAT_HISTORY_SHARE_MAX = 50;
/**
 * History bytes (payloads) one member sends a newcomer at most: the newest lines that fit. 8 MiB
 * always holds the newest line (1 MiB of text is at most 6 MiB as JSON, every character escaped),
 * costs a LAN link well under a second, and bounds what one request makes a member queue.
 */
export const CHAT_HISTORY_SHARE_BYTES_MAX = 8 * 1024 * 1024;
/**
 * History requests are not answered while this many bytes wait to go out (reliable delivery's
 * queue): requests come from anyone, and each may queue CHAT_HISTORY_SHARE_BYTES_MAX, so a flood
 * of them must not grow a member's memory without bound.
 */
export const CHAT_HISTORY_QUEUED_BYTES_MAX = 2 * CHAT_HISTORY_SHARE_BYTES_MAX;
/** Lines kept in memory to answer newcomers and /history. */
export const CHAT_HISTORY_KEEP_MAX = 500;
/** Text bytes of the lines kept in memory: with lines of up to 1 MiB, the line count alone would allow 500 MiB. */
export const CHAT_HISTORY_KEEP_BYTES_MAX = 16 * 1024 * 1024;
/** Message ids remembered to drop history that was already seen. */
export const CHAT_SEEN_IDS_MAX = 20_000;
export const CHAT_HISTORY_RETRY_MS = 1500;
export const CHAT_HISTORY_ATTEMPTS_MAX = 3;
/** Chat members remembered, to recognise one that comes back after a partition. */
export const CHAT_KNOWN_MEMBERS_MAX = 1024;
/** Copies of a re-sync request: it is one unacknowledged datagram, and 10 % loss is common. */
const RESYNC_COPIES = 2;

export interface ChatLine {
  /** Reliable message id as a string (messageKey). */
  id: string;
  from: PeerId;
  fromName: string;
  /** Null for a group message. */
  to: PeerId | null;
  toName: string | null;
  text: string;
  lamport: number;
  /** Sender's wall clock at send, ms since the epoch. */
  at: number;
  /** Came as history from another member rather than live. */
  history: boolean;
}

/** A line this peer sent, with the reliable id to ask about its acks. */
export type SentLine = ChatLine & { messageId: MessageId };

export interface ChatOptions {
  /** Lines this peer already knows (from its store), oldest first: served to newcomers, never shown again. */
  history?: ChatLine[];
  /** How many lines to ask a member for at start (0: none). */
  historyWanted?: number;
  /**
   * Whether this peer reads the chat (default true). A one-shot sender (`--send`, piped stdin)
   * does not: it goes without the `chat` tag, so other senders do not wait for its acks (nor name
   * it "gone" when it exits a moment later), `/who` does not list it, nobody asks it for history.
   */
  reader?: boolean;
}

interface MembershipLike {
  live(): MemberView[];
  get(id: PeerId): MemberView | undefined;
  setTags(tags: Tags): void;
  readonly ownTags: Tags;
}

/** A chat member came (`joined`), said goodbye (`left`), or fell silent (`gone`, no heartbeat). */
export interface Presence {
  kind: 'joined' | 'left' | 'gone';
  member: MemberView;
}

export class ChatError extends Error {
  override name = 'ChatError';
}

/** A member's last `lines` lines, please (the asker's direct messages among them). */
export const HISTORY_REQUEST = message('ch.hreq', { lines: f.uint(CHAT_HISTORY_SHARE_MAX).wire('n') });
const MESSAGES = messages(HISTORY_REQUEST);

export class Chat implements Protocol {
  readonly messages = MESSAGES.checks;
  readonly onMessage = MESSAGES.dispatch({
    'ch.hreq': ({ lines }, from) => this.serveHistory(lines, from),
  });
  readonly stats = {
    malformed: 0,
    historyReceived: 0,
    /** History requests not answered: too much already queued (CHAT_HISTORY_QUEUED_BYTES_MAX). */
    historySkipped: 0,
    historyServed: 0,
    /** Lines from the store that failed isChatLine: never shown or served. */
    storedRejected: 0,
  };
  private readonly lineHandlers: Array<(l: ChatLine) => unknown> = [];
  private readonly lostHandlers: Array<(r: LostReport) => void> = [];
  private readonly presenceHandlers: Array<(p: Presence) => void> = [];
  /** Chat members announced as here, as last seen with the tag. */
  private readonly present = new Map<PeerId, MemberView>();
  private readonly lines: ChatLine[] = [];
  /** UTF-8 bytes of the texts in `lines`. */
  private linesBytes = 0;
  private readonly seen = new Set<string>();
  private tagged = false;
  private historyAsked: PeerId[] = [];
  private historyAskedAt = -Infinity;
  private historyDone: boolean;
  /** Chat members seen live at some point, and those live at the last tick. */
  private readonly known = new Set<PeerId>();
  private liveLastTick = new Set<PeerId>();

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly membership: MembershipLike,
    private readonly reliable: ReliableDelivery,
    private readonly opts: ChatOptions = {},
  ) {
    for (const l of opts.history ?? []) {
      if (isChatLine(l)) this.remember(l);
      else this.stats.storedRejected++;
    }
    this.historyDone = (opts.historyWanted ?? 0) === 0;
    reliable.on(CHAT_TOPIC, (d) => this.onChat(d));
    reliable.on(CHAT_HISTORY_TOPIC, (d) => this.onHistory(d));
    reliable.onLost((r) => this.lostHandlers.forEach((h) => h(r)));
  }

  /**
   * Every new line: live, own, or history not seen before. A handler that returns a promise (its
   * durable write) delays the line's ack to its sender until the promise resolves (reliable/durable.ts).
   */
  onLine(handler: (l: ChatLine) => unknown): void {
    this.lineHandlers.push(handler);
  }

  onLost(handler: (r: LostReport) => void): void {
    this.lostHandlers.push(handler);
  }

  /** Chat members arriving and departing, as a person in the chat should hear of them. */
  onPresence(handler: (p: Presence) => void): void {
    this.presenceHandlers.push(handler);
  }

  /** Live members that run chat, by name. */
  members(): MemberView[] {
    return this.membership.live().filter((m) => m.tags[CHAT_TAG] === true);
  }

  /** Throws ChatError when the text cannot be sent as one message. */
  static checkText(text: string): void {
    if (text.length === 0) throw new ChatError('empty message: nothing to send');
    const bytes = ReliableDelivery.payloadBytes(text);
    if (bytes > CHAT_TEXT_BYTES_MAX)
      throw new ChatError(
        `message is ${bytes} bytes, over the ${CHAT_TEXT_BYTES_MAX}-byte limit; send it as a file (--send-file PATH, or /send PATH in interactive chat)`,
      );
  }

  /** Sends a group message; `onSettled` runs once every chat member has acked it or is gone. */
  say(text: string, onSettled?: (s: AckStatus) => void): SentLine {
    Chat.checkText(text);
    const at = Math.round(this.ctx.wall());
    const id = this.reliable.publish(CHAT_TOPIC, `${at} ${text}`, onSettled);
    const lamport = this.reliable.lastLamport; // the line's own time, as it goes on the wire
    return { ...this.own({ id: messageKey(id), to: null, toName: null, text, lamport, at }), messageId: id };
  }

  /** Sends a direct message to one member; `done` says whether it was acked. */
  whisper(to: PeerId, text: string, done?: (r: SendResult) => void): SentLine {
    Chat.checkText(text);
    const at = Math.round(this.ctx.wall());
    const id = this.reliable.sendTo(to, CHAT_TOPIC, `${at} ${text}`, done);
    const lamport = this.reliable.lastLamport;
    const toName = this.membership.get(to)?.name ?? to.slice(0, 8);
    return { ...this.own({ id: messageKey(id), to, toName, text, lamport, at }), messageId: id };
  }

  /** The last n lines known, in Lamport order. */
  recent(n: number): ChatLine[] {
    return [...this.lines].sort(lamportOrder).slice(-n);
  }

  /** Sends the asker its last `n` lines, or as many of the newest as CHAT_HISTORY_SHARE_BYTES_MAX holds. */
  private serveHistory(n: number, from: Origin): void {
    if (this.reliable.queuedBytes() >= CHAT_HISTORY_QUEUED_BYTES_MAX) {
      this.stats.historySkipped++;
      return;
    }
    const forThem = this.lines.filter((l) => l.to === null || l.to === from.id || l.from === from.id);
    const payloads: string[] = [];
    let bytes = 0;
    for (const l of forThem.sort(lamportOrder).slice(-n).reverse()) {
      const payload = JSON.stringify([l.id, l.from, l.fromName, l.to, l.toName, l.text, l.lamport, l.at]);
      bytes += ReliableDelivery.payloadBytes(payload);
      if (bytes > CHAT_HISTORY_SHARE_BYTES_MAX) break;
      payloads.push(payload);
    }
    for (const payload of payloads.reverse()) {
      this.stats.historyServed++;
      this.reliable.sendTo(from.id, CHAT_HISTORY_TOPIC, payload);
    }
  }

  /**
   * Returns when it next has work: the next history request, if any is due. Members coming, going
   * and changing tags wake every protocol (membership's changes), which is when presence and
   * returning members are looked at; a peer idle in a chat does not wake every tickMs for them.
   */
  tick(now: number): number {
    if (!this.tagged) {
      // On the first tick, not in the constructor: the node sends nothing before it started.
      this.tagged = true;
      if (this.opts.reader !== false)
        this.membership.setTags({ ...this.membership.ownTags, [CHAT_TAG]: true });
    }
    if (!this.historyDone && now - this.historyAskedAt >= CHAT_HISTORY_RETRY_MS) this.askHistory(now);
    if (this.opts.reader !== false) this.resyncReturning();
    this.updatePresence();
    const historyAt = this.historyAskedAt + CHAT_HISTORY_RETRY_MS;
    // Due but nobody to ask yet: a member's coming wakes us.
    return !this.historyDone && historyAt > now ? historyAt : Infinity;
  }

  /** Announces chat members that came and went since the last tick (see the header). */
  private updatePresence(): void {
    const here = this.members();
    const ids = new Set(here.map((m) => m.id));
    for (const [id, last] of this.present) {
      if (ids.has(id)) continue;
      const m = this.membership.get(id);
      const live = m?.state === 'alive' || m?.state === 'suspect';
      if (live && m.incarnation === last.incarnation) continue;
      this.present.delete(id);
      this.announce({ kind: m?.state === 'dead' ? 'gone' : 'left', member: m ?? last });
    }
    for (const m of here) {
      if (!this.present.has(m.id)) this.announce({ kind: 'joined', member: m });
      this.present.set(m.id, m);
    }
  }

  private announce(p: Presence): void {
    for (const h of this.presenceHandlers) h(p);
  }

  /** Asks every known chat member that is live again after being gone for what it has. */
  private resyncReturning(): void {
    const live = new Set(this.members().map((m) => m.id));
    for (const id of live) {
      if (this.liveLastTick.has(id)) continue;
      const m = this.membership.get(id);
      if (this.known.has(id) && m) {
        for (let i = 0; i < RESYNC_COPIES; i++)
          this.ctx.send(m.address, ...HISTORY_REQUEST.out({ lines: CHAT_HISTORY_SHARE_MAX }));
      } else if (this.known.size < CHAT_KNOWN_MEMBERS_MAX) {
        this.known.add(id);
      }
    }
    this.liveLastTick = live;
  }

  private askHistory(now: number): void {
    if (this.historyAsked.length >= CHAT_HISTORY_ATTEMPTS_MAX) {
      this.historyDone = true;
      return;
    }
    const m = this.members().find((x) => !this.historyAsked.includes(x.id));
    if (!m) return;
    this.historyAsked.push(m.id);
    this.historyAskedAt = now;
    const n = Math.min(this.opts.historyWanted ?? 0, CHAT_HISTORY_SHARE_MAX);
    this.ctx.send(m.address, ...HISTORY_REQUEST.out({ lines: n }));
  }

  private own(l: Omit<ChatLine, 'from' | 'fromName' | 'history'>): ChatLine {
    const line: ChatLine = { ...l, from: this.ctx.self.id, fromName: this.ctx.self.name, history: false };
    // Nobody waits for an ack of our own line; a failed write was reported by the handler itself.
    this.add(line)?.catch(() => {});
    return line;
  }

  private onChat(d: Delivery): Promise<unknown> | undefined {
    const sp = d.payload.indexOf(' ');
    const at = Number(d.payload.slice(0, sp));
    if (sp <= 0 || !Number.isSafeInteger(at) || at < 0) {
      this.stats.malformed++;
      return;
    }
    const text = d.payload.slice(sp + 1);
    if (!isText(text)) {
      this.ctx.refuse('chat-text');
      return;
    }
    return this.add({
      id: d.key,
      from: d.from,
      fromName: d.fromName,
      to: d.to,
      toName: d.to === null ? null : this.ctx.self.name,
      text,
      lamport: d.lamport,
      at,
      history: false,
    });
  }

  private onHistory(d: Delivery): Promise<unknown> | undefined {
    let v: unknown;
    try {
      v = JSON.parse(d.payload);
    } catch {
      v = null;
    }
    if (!isHistoryItem(v)) {
      this.stats.malformed++;
      return;
    }
    const [id, from, fromName, to, toName, text, lamport, at] = v;
    // A line served as history was stamped before the message serving it (a member's clock is
    // past every line it holds). A later time is forged, and would outlast its forger: stored,
    // served again, and a restarted peer starts its clock above the lines it stored.
    if (lamport >= d.lamport) {
      this.ctx.refuse('lamport');
      return;
    }
    // Any answer ends the search, even one with nothing new.
    this.historyDone = true;
    this.stats.historyReceived++;
    return this.add({ id, from, fromName, to, toName, text, lamport, at, history: true });
  }

  /** Hands a new line to the handlers; the promise of their writes, if any returned one. */
  private add(line: ChatLine): Promise<unknown> | undefined {
    if (this.seen.has(line.id)) return;
    this.remember(line);
    const writes: Array<PromiseLike<unknown>> = [];
    for (const h of this.lineHandlers) {
      const r = h(line);
      if (typeof r === 'object' && r !== null && typeof (r as { then?: unknown }).then === 'function')
        writes.push(r as PromiseLike<unknown>);
    }
    return writes.length > 0 ? Promise.all(writes) : undefined;
  }

  private remember(line: ChatLine): void {
    this.seen.add(line.id);
    if (this.seen.size > CHAT_SEEN_IDS_MAX) {
      const [oldest] = this.seen;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
    this.lines.push(line);
    this.linesBytes += ReliableDelivery.payloadBytes(line.text);
    while (this.lines.length > CHAT_HISTORY_KEEP_MAX || this.linesBytes > CHAT_HISTORY_KEEP_BYTES_MAX) {
      const oldest = this.lines.shift();
      if (oldest) this.linesBytes -= ReliableDelivery.payloadBytes(oldest.text);
    }
  }
}

/**
 * Display order: Lamport time, then sender, then the sender's own order (its stream's epoch, then
 * sequence, read from the message id), so one sender's lines always show in the order it sent
 * them. Ids are compared as text only when one is not a message id (a malformed history item).
 */
export function lamportOrder(a: ChatLine, b: ChatLine): number {
  if (a.lamport !== b.lamport) return a.lamport - b.lamport;
  if (a.from !== b.from) return a.from < b.from ? -1 : 1;
  const x = sendOrder(a.id);
  const y = sendOrder(b.id);
  if (x && y) return x[0] - y[0] || x[1] - y[1];
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** [epoch, sequence] of a message id (messageKey: `origin/epoch/seq` or `origin/epoch/to/seq`), or null. */
function sendOrder(id: string): [number, number] | null {
  const parts = id.split('/');
  if (parts.length !== 3 && parts.length !== 4) return null;
  const epoch = Number(parts[1]);
  const seq = Number(parts[parts.length - 1]);
  return Number.isSafeInteger(epoch) && Number.isSafeInteger(seq) ? [epoch, seq] : null;
}

/**
 * The limits a line has when it comes over the wire: names as the envelope's `n` (no control or
 * format characters), text within CHAT_TEXT_BYTES_MAX, a Lamport time a peer could have stamped
 * (bounds.ts). History received from a member and lines read back from storage are checked with
 * them, so a forged item or a damaged row is dropped and counted, never shown or served again.
 */
const isName = isPeerName;
const isId = is.peerId();
const isKey = is.str(120, 1);
const isUint = is.uint();
const isText = (v: unknown) =>
  typeof v === 'string' && ReliableDelivery.payloadBytes(v) <= CHAT_TEXT_BYTES_MAX;

/** Whether a line (from storage, say) has the shape and limits of one received over the wire. */
export function isChatLine(l: ChatLine): boolean {
  return (
    typeof l.history === 'boolean' &&
    isHistoryItem([l.id, l.from, l.fromName, l.to, l.toName, l.text, l.lamport, l.at])
  );
}

function isHistoryItem(
  v: unknown,
): v is [string, PeerId, string, PeerId | null, string | null, string, number, number] {
  return (
    Array.isArray(v) &&
    v.length === 8 &&
    isKey(v[0]) &&
    isId(v[1]) &&
    isName(v[2]) &&
    (v[3] === null || isId(v[3])) &&
    (v[4] === null || isName(v[4])) &&
    isText(v[5]) &&
    loadable(v[6]) &&
    isUint(v[7])
  );
}

/** How long a line waits before display, so lines delivered slightly out of Lamport order are sorted. */
export const CHAT_DISPLAY_HOLD_MS = 100;
/** Lines waiting for display at most; beyond it the oldest are released at once. */
export const CHAT_DISPLAY_PENDING_MAX = 10_000;

/**
 * Display order: holds each line CHAT_DISPLAY_HOLD_MS and releases lines in Lamport order, so a
 * reply never shows above what it answers when the original needed a repair of up to that long.
 * A line later than that may still appear below a line with a higher Lamport time (it is not
 * held back forever: a chat must stay live). Time is passed in, as everywhere in src/p2p.
 */
export class LamportOrderer {
  private pending: Array<{ line: ChatLine; at: number }> = [];

  constructor(private readonly holdMs = CHAT_DISPLAY_HOLD_MS) {}

  push(line: ChatLine, now: number): void {
    this.pending.push({ line, at: now });
  }

  /** Lines due at `now`, in Lamport order (plus any waiting line that sorts before them). */
  drain(now: number): ChatLine[] {
    if (this.pending.length === 0) return [];
    const overflow = this.pending.length > CHAT_DISPLAY_PENDING_MAX;
    let maxDue: ChatLine | null = null;
    for (const p of this.pending)
      if ((overflow || now - p.at >= this.holdMs) && (!maxDue || lamportOrder(p.line, maxDue) > 0))
        maxDue = p.line;
    if (!maxDue) return [];
    const limit = maxDue;
    const out = this.pending.filter((p) => lamportOrder(p.line, limit) <= 0).map((p) => p.line);
    this.pending = this.pending.filter((p) => lamportOrder(p.line, limit) > 0);
    return out.sort(lamportOrder);
  }

  get size(): number {
    return this.pending.length;
  }

  /** When drain() next releases a line: the oldest held line's hold ends (null: none held). */
  nextDueAt(): number | null {
    if (this.pending.length === 0) return null;
    let first = Infinity;
    for (const p of this.pending) first = Math.min(first, p.at);
    return this.pending.length > CHAT_DISPLAY_PENDING_MAX ? first : first + this.holdMs;
  }
}
