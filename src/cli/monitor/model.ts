/**
 * The monitor's state model, pure: what each tab shows is a function of a MonitorInput (a
 * snapshot the feeds take from the node and the protocol modules) and of the UI state (selected
 * tab, scroll). No terminal, no clock, no sockets here, so tests can check every tab's content
 * and every key without rendering.
 */
import type { MemberView, PeerEvent } from '../../p2p/protocol.js';
import type { PeerId } from '../../p2p/wire.js';
import type { RunView } from '../../p2p/jobs/index.js';
import type { ChatLine } from '../../p2p/chat.js';
import { escapeForTerminal } from '../sanitize.js';

/** Lines kept in the Logs tab; older ones are dropped. */
export const LOG_LINES_MAX = 1000;

export type Tone = 'normal' | 'good' | 'warn' | 'bad' | 'dim' | 'accent' | 'title' | 'selected';
export interface Cell {
  text: string;
  tone?: Tone;
}
export type Row = Cell[];

/** What one tab shows: a note (one line), a table, or plain lines; or why it cannot show anything. */
export type TabView =
  | { kind: 'unavailable'; reason: string }
  | {
      kind: 'content';
      summary: Cell[];
      headers: string[];
      rows: Row[];
      empty: string;
      /**
       * The line under the table when not typing: how to start typing on a tab that takes typed
       * lines, or a note on what the table can and cannot show.
       */
      footer?: Cell[];
      /**
       * Columns that may be cut (with an ellipsis) when the table is wider than the screen, in
       * groups: the first group gives up characters first (screen.ts).
       */
      shrink?: readonly (readonly number[])[];
    };

export interface ClockReading {
  lamport: number;
  offsetMs: number;
  accuracyMs: number | null;
  /** Wall time (ms) when the reading arrived. */
  atWall: number;
}

export interface TokenInfo {
  epoch: number;
  /** The fencing number: rises at every pass and every regeneration. */
  generation: number;
  /** Who holds it, as last seen in a pass or a beat; '' when unknown. */
  holder: PeerId | '';
  /** The ring order the peers use: live members that run the ring, by id. */
  ring: PeerId[];
  /** Generations per second over the last ROTATION_WINDOW_MS, or null before two samples. */
  passesPerSecond: number | null;
}

export interface ChatView {
  /** Recent lines in Lamport order, own lines included. */
  lines: ChatLine[];
  /** Live members running chat. */
  members: number;
  /** Why the last line typed was not sent, or null. */
  error: string | null;
}

export interface LogLine {
  atWall: number;
  kind: string;
  text: string;
  tone: Tone;
}

export interface MonitorInput {
  nowWall: number;
  self: { name: string; id: PeerId; address: string; group: string; lamport: number; role: 'observer' };
  members: MemberView[];
  /** Clock statuses by peer, or null when clock sync is not in this build. */
  clock: Map<PeerId, ClockReading> | null;
  /** The detached runs the keeper announced, newest first, or null when jobs are not in this build. */
  tasks: { runs: RunView[] } | null;
  /** What the token ring's passes and beats reveal, or null when it is not in this build. */
  token: TokenInfo | null;
  /** Chat lines, or null when chat is not in this build. */
  chat: ChatView | null;
  log: readonly LogLine[];
}

export const TAB_IDS = ['peers', 'chat', 'tasks', 'token', 'replicas', 'logs'] as const;
export type TabId = (typeof TAB_IDS)[number];

export interface Tab {
  id: TabId;
  title: string;
  view(input: MonitorInput): TabView;
}

// ---- UI state and keys ----

export interface UiState {
  tab: number;
  /** First row shown, per tab. */
  scroll: Record<TabId, number>;
  /** The chat line being typed, or null when not composing. */
  draft: string | null;
}

/** Scrolled to the end: the tab follows new rows (the Logs and Chat tabs start so). */
export const FOLLOW = Number.MAX_SAFE_INTEGER;
/** Longest chat draft, in characters (the chat module checks the exact byte limit on send). */
export const DRAFT_CHARS_MAX = 700;

export const initialUi = (): UiState => ({
  tab: 0,
  scroll: { peers: 0, chat: FOLLOW, tasks: 0, token: 0, replicas: 0, logs: FOLLOW },
  draft: null,
});

/** A key press, in the library-neutral form the reducer understands; `char:x` is a printable key. */
export type KeyName =
  | 'left'
  | 'right'
  | 'tab'
  | 'shift-tab'
  | 'up'
  | 'down'
  | 'pageup'
  | 'pagedown'
  | 'home'
  | 'end'
  | 'enter'
  | 'escape'
  | 'backspace'
  | 'interrupt'
  | `char:${string}`;

export const KEY_HELP = '←/→ or Tab: switch tab   1-6: jump   ↑/↓ PgUp/PgDn Home/End: scroll   q: quit';
export const COMPOSE_HELP =
  'Enter: send to the group   Esc or Enter on an empty line: stop writing   Ctrl-C: quit';

export interface KeyContext {
  tabCount: number;
  /** Body height. */
  pageRows: number;
  /** The last first-row the current tab can show (rows - pageRows). */
  maxScroll: number;
  /** The current tab takes typed lines (Chat, when available). */
  canCompose: boolean;
}

export type KeyResult = UiState | 'quit' | { ui: UiState; send: string };

/** Applies a key to the UI state: a new state, 'quit', or a line to send. */
export function reduceKey(ui: UiState, key: KeyName, k: KeyContext): KeyResult {
  if (key === 'interrupt') return 'quit';
  if (ui.draft !== null) return compose(ui, ui.draft, key);
  const id = TAB_IDS[ui.tab]!;
  const scrollBy = (d: number) => {
    const next = Math.max(0, Math.min(ui.scroll[id], k.maxScroll) + d);
    return { ...ui, scroll: { ...ui.scroll, [id]: next >= k.maxScroll && d > 0 ? FOLLOW : next } };
  };
  const page = Math.max(1, k.pageRows - 1);
  switch (key) {
    case 'escape':
    case 'char:q':
    case 'char:Q':
      return 'quit';
    case 'left':
    case 'shift-tab':
      return { ...ui, tab: (ui.tab + k.tabCount - 1) % k.tabCount };
    case 'right':
    case 'tab':
      return { ...ui, tab: (ui.tab + 1) % k.tabCount };
    case 'up':
    case 'char:k':
      return scrollBy(-1);
    case 'down':
    case 'char:j':
      return scrollBy(1);
    case 'pageup':
      return scrollBy(-page);
    case 'pagedown':
    case 'char: ':
      return scrollBy(page);
    case 'home':
    case 'char:g':
      return { ...ui, scroll: { ...ui.scroll, [id]: 0 } };
    case 'end':
    case 'char:G':
      return { ...ui, scroll: { ...ui.scroll, [id]: FOLLOW } };
    case 'enter':
      return k.canCompose ? { ...ui, draft: '' } : ui;
    default: {
      const digit = /^char:([1-9])$/.exec(key);
      const n = digit ? Number(digit[1]) : 0;
      return n >= 1 && n <= k.tabCount ? { ...ui, tab: n - 1 } : ui;
    }
  }
}

function compose(ui: UiState, draft: string, key: KeyName): KeyResult {
  switch (key) {
    case 'escape':
      return { ...ui, draft: null };
    case 'enter':
      // After a line is sent the next one is written at once, as in any chat (and a paste of
      // several lines sends each); an empty line ends writing.
      return draft.trim() === '' ? { ...ui, draft: null } : { ui: { ...ui, draft: '' }, send: draft };
    case 'backspace':
      return { ...ui, draft: [...draft].slice(0, -1).join('') };
    default:
      if (key.startsWith('char:') && draft.length < DRAFT_CHARS_MAX)
        return { ...ui, draft: (draft + key.slice(5)).slice(0, DRAFT_CHARS_MAX) };
      return ui;
  }
}

// ---- the log ----

/** The Logs tab's lines: a bounded ring, newest last. */
export class EventLog {
  private readonly lines: LogLine[] = [];
  constructor(private readonly max = LOG_LINES_MAX) {}

  add(line: LogLine): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }

  get all(): readonly LogLine[] {
    return this.lines;
  }
}

const short = (id: string) => id.slice(0, 8);
const who = (m: Pick<MemberView, 'name' | 'id'>) => `${m.name} (${short(m.id)})`;

/** One log line for a node event, or null for events too frequent to log (per-message ones). */
export function describeEvent(e: PeerEvent, atWall: number): LogLine | null {
  const line = (text: string, tone: Tone): LogLine => ({ atWall, kind: e.kind, text, tone });
  switch (e.kind) {
    case 'join':
      return line(
        `${who(e.member)} joined at ${e.member.address}, incarnation ${e.member.incarnation}`,
        'good',
      );
    case 'suspect':
      return line(`${who(e.member)} suspected: silent for ${e.member.lastSeenMs} ms`, 'warn');
    case 'alive':
      return line(`${who(e.member)} ${e.refuted ? 'refuted the suspicion' : 'is back'}`, 'good');
    case 'dead':
      return line(`${who(e.member)} died: silent for ${Math.round(e.silentMs)} ms`, 'bad');
    case 'left':
      return line(`${who(e.member)} left the group`, 'dim');
    case 'restart':
      return line(
        `${who(e.member)} recovered: restarted, incarnation ${e.previousIncarnation} -> ${e.member.incarnation}`,
        'accent',
      );
    case 'duplicate-name':
      return line(`${e.ids.length} live peers are named ${e.name}`, 'bad');
    case 'version-mismatch':
      return line(`${e.from} speaks protocol version ${e.version}; ignored`, 'bad');
    default:
      // Other modules' events (clock statuses, runs) feed the tabs, not the log.
      return null;
  }
}

// ---- formatting helpers shared by the tabs ----

export function ago(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

export function stateTone(state: MemberView['state']): Tone {
  return state === 'alive' ? 'good' : state === 'suspect' ? 'warn' : state === 'dead' ? 'bad' : 'dim';
}

/**
 * Every cell on the screen is made here, so its text is escaped here (sanitize.ts): names, tags,
 * chat lines and task results are remote, and the screen's widths count what is shown.
 */
export const cell = (raw: string, tone?: Tone): Cell => {
  const text = escapeForTerminal(raw);
  return tone ? { text, tone } : { text };
};

/** Shown in place of a value this build cannot know. */
export const NOT_AVAILABLE = 'n/a';
/** Shown in place of a value not (yet) reported. */
export const UNKNOWN = '—';
