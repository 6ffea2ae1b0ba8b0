/**
 * Terminal output: colour (off when not a TTY or with NO_COLOR), tables, event lines. Names and
 * other remote text pass through escapeForTerminal (sanitize.ts) before they are painted.
 */
import { stripVTControlCharacters } from 'node:util';
import chalk, { type ChalkInstance } from 'chalk';
import type { MemberState, MemberView, PeerEvent, PeerEventOf } from '../p2p/protocol.js';
import type { PeerId } from '../p2p/wire.js';
import { SHORT_ID_CHARS, nameOrUnheard } from '../p2p/names.js';
import { escapeForTerminal } from './sanitize.js';

if ('NO_COLOR' in process.env) chalk.level = 0;

const PALETTE: ChalkInstance[] = [
  chalk.cyan,
  chalk.magenta,
  chalk.yellow,
  chalk.green,
  chalk.blue,
  chalk.redBright,
  chalk.cyanBright,
  chalk.magentaBright,
];

/** The same name gets the same colour on every screen and every run; shown escaped (names are remote). */
export function paintName(name: string): string {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return PALETTE[(h >>> 0) % PALETTE.length]!(escapeForTerminal(name));
}

/** A peer by the name the membership directory has for it, painted (so escaped); ids only for peers never heard. */
export function paintPeer(members: { get(id: PeerId): MemberView | undefined }, id: PeerId): string {
  return paintName(nameOrUnheard(members.get(id)?.name, id));
}

export function paintState(state: MemberState): string {
  const paint = { alive: chalk.green, suspect: chalk.yellow, dead: chalk.red, left: chalk.gray }[state];
  return paint(state);
}

const visibleLength = (s: string) => stripVTControlCharacters(s).length;

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c + ' '.repeat(widths[i]! - visibleLength(c)))
      .join('  ')
      .trimEnd();
  return [chalk.bold(line(headers)), ...rows.map(line)].join('\n');
}

export function clockTime(wallMs: number): string {
  const d = new Date(wallMs);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export function memberLabel(m: Pick<MemberView, 'name' | 'id'>): string {
  return `${paintName(m.name)} ${chalk.gray(`(${m.id.slice(0, SHORT_ID_CHARS)})`)}`;
}

/** Decimals of a duration in ms printed by --json: a microsecond, finer than anything measured here. */
export const JSON_MS_DECIMALS = 3;

/** A duration for --json, rounded to JSON_MS_DECIMALS (4.802677000000017 -> 4.803). */
export function jsonMs(ms: number): number {
  const scale = 10 ** JSON_MS_DECIMALS;
  return Math.round(ms * scale) / scale;
}

/** How a long-running command logs: readable lines stamped with the time, or JSON objects with `at`. */
export type EventLog = (fields: Record<string, unknown>, text: string) => void;

export function eventLog(print: (line: string) => void, json: boolean): EventLog {
  return (fields, text) =>
    print(
      json ? JSON.stringify({ at: new Date().toISOString(), ...fields }) : `${clockTime(Date.now())} ${text}`,
    );
}

/** An anti-entropy round with one peer (replication's and kv's sync events), unless it moved nothing. */
export function logSync(
  log: EventLog,
  e: { peer: string; fetched: number; pushed: number; ok: boolean; reason: string },
  members: { get(id: PeerId): MemberView | undefined },
): void {
  if (e.fetched + e.pushed === 0 && e.ok) return;
  log(
    { event: 'sync', peer: e.peer, fetched: e.fetched, pushed: e.pushed, ok: e.ok, reason: e.reason },
    `${e.ok ? chalk.cyan('sync') : chalk.yellow('sync')} with ${paintPeer(members, e.peer)}: fetched ${e.fetched}, pushed ${e.pushed}${e.ok ? '' : ` (${escapeForTerminal(e.reason)})`}`,
  );
}

/** One readable line for a membership event, or null for kinds another module describes. */
export function describeMembershipEvent(e: PeerEvent): string | null {
  switch (e.kind) {
    case 'join':
      return `${chalk.green('join')}    ${memberLabel(e.member)} at ${e.member.address}, incarnation ${e.member.incarnation}`;
    case 'suspect':
      return `${chalk.yellow('suspect')} ${memberLabel(e.member)}: silent for ${e.member.lastSeenMs} ms`;
    case 'alive':
      return `${chalk.green('alive')}   ${memberLabel(e.member)}${e.refuted ? ' refuted the suspicion' : ' is back'}, incarnation ${e.member.incarnation}`;
    case 'dead':
      return `${chalk.red('dead')}    ${memberLabel(e.member)}: silent for ${Math.round(e.silentMs)} ms`;
    case 'left':
      return `${chalk.gray('leave')}   ${memberLabel(e.member)} left the group`;
    case 'restart':
      return `${chalk.cyan('restart')} ${memberLabel(e.member)} restarted (incarnation ${e.previousIncarnation} -> ${e.member.incarnation}) at ${e.member.address}`;
    case 'refute':
      return `${chalk.yellow('refute')}  suspected by ${paintName(e.byName)}; now incarnation ${e.incarnation}`;
    case 'health':
      return describeHealth(e);
    case 'duplicate-name':
      return `${chalk.red('warning')} ${e.ids.length} live peers are named ${paintName(e.name)}: ${e.ids.map((i) => i.slice(0, 8)).join(', ')}`;
    case 'version-mismatch':
      return `${chalk.red('warning')} ${e.from} speaks protocol version ${e.version}; its datagrams are ignored`;
    default:
      return null;
  }
}

/** Local health (membership.ts): why this peer now waits longer before it calls a member dead. */
function describeHealth(e: PeerEventOf<'health'>): string {
  if (e.score === 0) return `${chalk.green('health')}  local health recovered: detection at normal speed`;
  const why =
    e.cause === 'stall'
      ? `our event loop stalled for ${e.stalledMs} ms`
      : e.cause === 'probe'
        ? 'a probe of a member failed and the members asked to relay it did not all answer'
        : e.heartbeatLoss === null
          ? 'too few members to measure heartbeat loss'
          : `${Math.round(e.heartbeatLoss * 100)} % of members' heartbeats lost`;
  const verb = e.score > e.previous ? 'degraded' : 'improving';
  return `${chalk.yellow('health')}  local health ${verb}: detection slowed x${e.score + 1} (${why})`;
}

/** The JSON-lines form of an event: flat, with the member's fields inlined, durations (…Ms) rounded. */
export function eventJson(e: PeerEvent, wallMs: number): Record<string, unknown> {
  const { kind, ...rest } = e as { kind: string } & Record<string, unknown>;
  for (const [k, v] of Object.entries(rest))
    if (k.endsWith('Ms') && typeof v === 'number') rest[k] = jsonMs(v);
  const member = (rest as { member?: MemberView }).member;
  delete (rest as { member?: MemberView }).member;
  return {
    event: kind,
    at: new Date(wallMs).toISOString(),
    ...(member
      ? {
          name: member.name,
          id: member.id,
          address: member.address,
          state: member.state,
          incarnation: member.incarnation,
        }
      : {}),
    ...rest,
  };
}
