import { Flags } from '@oclif/core';
import { GroupError, PeerCommand } from '../cli/base.js';
import { networkFlags } from '../cli/flags.js';
import { networkSettings, startPeer } from '../cli/peer.js';
import { clockTime, jsonMs, memberLabel, table } from '../cli/output.js';
import { installCoordination } from '../cli/coordination.js';
import { Progress } from '../cli/progress.js';
import { TAG_CLOCK } from '../p2p/clock-sync.js';

export interface ClockEntry {
  name: string;
  id: string;
  /** The row of this command's own (observer) clock. */
  self: boolean;
  coordinator: boolean;
  lamport: number;
  /** Group clock minus this peer's wall clock, in ms, as applied now. */
  offsetMs: number;
  /** Where the offset is going: differs from offsetMs while a backward correction slews. */
  targetOffsetMs: number;
  /** Group time of the peer's last applied sync (ISO), null if never synced. */
  lastSync: string | null;
  /** How long before this report that sync was, in ms. */
  lastSyncAgoMs: number | null;
  /** Estimated error bound of the peer's group clock, in ms. */
  accuracyMs: number | null;
  term: number;
}

/** How often the command re-checks a condition while it waits (not a protocol timer). */
const POLL_MS = 20;
/** How long to collect status answers once asked. */
const STATUS_COLLECT_MS = 300;

export default class Clock extends PeerCommand {
  static override summary = "Show every peer's Lamport time and group clock: offset, last sync, accuracy.";
  static override description =
    "Listens as an observer (it never shows up as a member and keeps no database), learns the coordinator, asks it for a Berkeley round and takes part in it (its own clock is adjusted but never averaged into the group's), then asks every peer for its clock status. Exits 1 if no coordinator answers within --wait.";
  static override examples = [
    '<%= config.bin %> clock --interface 127.0.0.1',
    '<%= config.bin %> clock --interface 127.0.0.1 --json',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...networkFlags,
    wait: Flags.integer({
      summary: 'How long to wait for a coordinator and its sync round, in ms.',
      default: 3000,
      min: 100,
      max: 600_000,
    }),
  };

  async run(): Promise<ClockEntry[]> {
    const { flags } = await this.parse(Clock);
    const settings = networkSettings(flags, flags.name ?? 'clock');
    const peer = await startPeer(settings, {
      observer: true,
      install: (n) => installCoordination(n, { priority: 0, candidate: false, observer: true }),
    });
    const {
      node,
      installed: { election, clock },
    } = peer;
    const deadline = Date.now() + flags.wait;
    const progress = new Progress({ json: this.jsonEnabled() });
    progress.update('waiting for the coordinator (a peer up) and its clock sync round');
    try {
      if (!(await until(() => election.coordinator() !== null, deadline)))
        throw new GroupError(
          `no coordinator answered within ${flags.wait} ms; start 'peer up' on this group, and check --interface, --group and --port`,
        );
      clock.requestRound();
      const synced = await until(() => clock.status().lastSyncMs !== null, deadline);
      if (!synced)
        this.warn(`no sync round reached this command within ${flags.wait} ms; its own row is unsynced`);
      clock.queryStatuses();
      const expected = () => node.membership.live().filter((m) => m.tags[TAG_CLOCK] === true).length;
      await until(
        () => clock.peerStatuses().length >= expected(),
        Math.min(Date.now() + STATUS_COLLECT_MS, Math.max(deadline, Date.now() + POLL_MS)),
      );
      const now = clock.groupNow();
      const own = clock.status();
      const leader = election.coordinator();
      const rows: ClockEntry[] = [
        entry(node.name, node.id, true, false, own, now),
        ...clock
          .peerStatuses()
          .map((s) => entry(s.name, s.id, false, s.id === leader, s, s.receivedAtMs))
          .sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id)),
      ];
      this.log(render(rows));
      return rows;
    } finally {
      progress.done();
      await peer.stop();
    }
  }
}

function entry(
  name: string,
  id: string,
  self: boolean,
  coordinator: boolean,
  s: {
    lamport: number;
    offsetMs: number;
    targetOffsetMs: number;
    lastSyncMs: number | null;
    accuracyMs: number | null;
    term: number;
  },
  at: number,
): ClockEntry {
  return {
    name,
    id,
    self,
    coordinator,
    lamport: s.lamport,
    offsetMs: jsonMs(s.offsetMs),
    targetOffsetMs: jsonMs(s.targetOffsetMs),
    lastSync: s.lastSyncMs === null ? null : new Date(s.lastSyncMs).toISOString(),
    lastSyncAgoMs: s.lastSyncMs === null ? null : Math.max(0, Math.round(at - s.lastSyncMs)),
    accuracyMs: s.accuracyMs === null ? null : jsonMs(s.accuracyMs),
    term: s.term,
  };
}

function render(rows: ClockEntry[]): string {
  const ms = (v: number | null, digits = 3) => (v === null ? '-' : `${v.toFixed(digits)} ms`);
  return table(
    ['NAME', 'ROLE', 'LAMPORT', 'OFFSET', 'LAST SYNC', 'ACCURACY', 'TERM'],
    rows.map((r) => [
      memberLabel(r),
      r.self ? 'this command' : r.coordinator ? 'coordinator' : 'member',
      String(r.lamport),
      ms(r.offsetMs),
      r.lastSync === null ? 'never' : `${clockTime(Date.parse(r.lastSync))} (${r.lastSyncAgoMs} ms ago)`,
      r.accuracyMs === null ? '-' : `+-${ms(r.accuracyMs)}`,
      String(r.term),
    ]),
  );
}

/** Resolves true as soon as `done()` holds, false at `deadline` (epoch ms). */
async function until(done: () => boolean, deadline: number): Promise<boolean> {
  while (!done()) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return true;
}
