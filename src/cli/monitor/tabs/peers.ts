/**
 * Peers: every member the monitor knows, with its state from membership, the coordinator and
 * ranks from the election's tags (coordinatorFromTags, rankMembers: what every peer publishes on
 * its heartbeats), Lamport time and clock offset from clock sync's status answers, and load from
 * the workers' adverts (jobs held / slots), and the tags set with peer up --tag or peer tags set.
 */
import { coordinatorFromTags, rankMembers, TAG_PRIORITY } from '../../../p2p/election.js';
import { advertOf } from '../../../p2p/jobs/index.js';
import { formatTags, userTags } from '../../../p2p/events/index.js';
import {
  ago,
  cell,
  NOT_AVAILABLE,
  stateTone,
  UNKNOWN,
  type MonitorInput,
  type Tab,
  type TabView,
} from '../model.js';

/** A clock reading older than this is shown as unknown: the peer stopped answering. */
export const CLOCK_READING_STALE_MS = 5000;

export const peersTab: Tab = {
  id: 'peers',
  title: 'Peers',
  view(input: MonitorInput): TabView {
    const members = input.members;
    const coordinator = coordinatorFromTags(members);
    const ranks = rankMembers(members);
    const live = members.filter((m) => m.state === 'alive' || m.state === 'suspect').length;
    const coordName = coordinator ? members.find((m) => m.id === coordinator)?.name : undefined;
    const electing = members.some((m) => m.tags[TAG_PRIORITY] !== undefined);
    const rows = members.map((m) => {
      const c = input.clock?.get(m.id);
      const fresh = c && input.nowWall - c.atWall <= CLOCK_READING_STALE_MS ? c : undefined;
      const advert = advertOf(m);
      return [
        cell(m.name + (m.duplicateName ? ' (dup)' : ''), m.duplicateName ? 'bad' : undefined),
        cell(m.id.slice(0, 8), 'dim'),
        cell(m.address),
        cell(m.state, stateTone(m.state)),
        cell(m.id === coordinator ? 'yes' : '', 'accent'),
        cell(ranks.has(m.id) ? String(ranks.get(m.id)) : UNKNOWN),
        cell(input.clock === null ? NOT_AVAILABLE : fresh ? String(fresh.lamport) : UNKNOWN),
        cell(
          input.clock === null
            ? NOT_AVAILABLE
            : fresh
              ? `${fresh.offsetMs >= 0 ? '+' : ''}${fresh.offsetMs.toFixed(1)} ms`
              : UNKNOWN,
        ),
        cell(advert ? `${advert.held}/${advert.slots}` : UNKNOWN),
        cell(ago(m.lastSeenMs), m.lastSeenMs > 1000 ? 'warn' : undefined),
        cell(formatTags(userTags(m.tags)), 'dim'),
      ];
    });
    return {
      kind: 'content',
      summary: [
        cell(`${live} live of ${members.length} known`),
        cell('   coordinator: '),
        coordName
          ? cell(`${coordName} (${coordinator!.slice(0, 8)})`, 'accent')
          : cell(electing ? 'none yet (election running)' : 'none (no peer runs the election)', 'dim'),
      ],
      headers: [
        'NAME',
        'ID',
        'ADDRESS',
        'STATE',
        'COORD',
        'RANK',
        'LAMPORT',
        'OFFSET',
        'LOAD',
        'LAST SEEN',
        'TAGS',
      ],
      rows,
      // Narrow terminals: the short id gives first, then the longer of name and address, so
      // LAST SEEN and the protocol columns always show (80 columns fit every column). TAGS is last:
      // it takes what is left of the line, cut at its end when the line is full.
      shrink: [[1], [0, 2]],
      empty:
        'no peer seen yet (probing the group; check --interface, --group and --port, or run peer doctor)',
    };
  },
};
