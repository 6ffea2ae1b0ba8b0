import { Flags } from '@oclif/core';
import { PeerCommand } from '../cli/base.js';
import { networkFlags } from '../cli/flags.js';
import { networkSettings, startPeer, untilSignal } from '../cli/peer.js';
import { memberLabel, paintState, table } from '../cli/output.js';
import { showingWait } from '../cli/progress.js';
import type { MemberView } from '../p2p/protocol.js';
import { coordinatorFromTags, rankMembers } from '../p2p/election.js';
import { UsageError } from '../cli/network.js';
import { escapeForTerminal } from '../cli/sanitize.js';
import { formatTags, matchesTags, parseTagArgs, userTags, type UserTags } from '../p2p/events/index.js';

const STATES = ['alive', 'suspect', 'dead', 'left'] as const;

export interface PeerEntry {
  name: string;
  id: string;
  address: string;
  state: MemberView['state'];
  incarnation: number;
  lastSeenMs: number;
  duplicateName: boolean;
  tags: MemberView['tags'];
  /** The tags set with peer up --tag and peer tags set (`tags` holds the protocols' own as well). */
  userTags: UserTags;
  /** From the election tags: this member is the coordinator (the live claim with the highest term). */
  coordinator: boolean;
  /** Election rank among live candidates (1 = highest priority, then id); null if not a candidate. */
  rank: number | null;
}

export default class Peers extends PeerCommand {
  static override summary = 'List the members of the group.';
  static override description =
    'Probes the group (members answer at once), listens for --wait ms, and prints the members. It listens as an observer: it never shows up as a member itself.';
  static override examples = [
    '<%= config.bin %> peers --interface 127.0.0.1',
    '<%= config.bin %> peers --json --wait 500',
    '<%= config.bin %> peers --watch',
    '<%= config.bin %> peers --tag role=db --status alive',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...networkFlags,
    wait: Flags.integer({
      summary: 'How long to listen before printing, in ms.',
      default: 1500,
      min: 0,
      max: 600_000,
    }),
    watch: Flags.boolean({
      summary: 'Keep listening and redraw the table until Ctrl-C.',
      default: false,
      exclusive: ['json'],
    }),
    tag: Flags.string({
      summary: 'Only members with this tag, KEY=VALUE (repeatable: all of them).',
      multiple: true,
      multipleNonGreedy: true,
    }),
    status: Flags.string({
      summary: 'Only members in this state (repeatable).',
      options: [...STATES],
      multiple: true,
      multipleNonGreedy: true,
    }),
  };

  async run(): Promise<PeerEntry[]> {
    const { flags } = await this.parse(Peers);
    const filter = parseTagArgs(flags.tag ?? []);
    if ('problem' in filter) throw new UsageError(`--tag: ${filter.problem}`);
    const states = new Set<string>(flags.status ?? STATES);
    // Ranks and the coordinator are the whole group's; the filters choose only what is shown.
    const shown = (all: MemberView[]) =>
      all.filter((m) => states.has(m.state) && matchesTags(userTags(m.tags), filter.tags));
    const settings = networkSettings(flags, flags.name ?? 'observer');
    const peer = await startPeer(settings, { observer: true });
    try {
      if (flags.watch) {
        const draw = () =>
          process.stdout.write(`\x1b[H\x1b[2J${this.render(peer.node.membership.list(), shown)}\n`);
        draw();
        const timer = setInterval(draw, 500);
        await untilSignal();
        clearInterval(timer);
      } else {
        await showingWait('listening for peers', new Promise((r) => setTimeout(r, flags.wait)), {
          json: this.jsonEnabled(),
        });
        this.log(this.render(peer.node.membership.list(), shown));
      }
      const members = peer.node.membership.list();
      const ranks = rankMembers(members);
      const coordinator = coordinatorFromTags(members);
      return shown(members).map(
        ({ name, id, address, state, incarnation, lastSeenMs, duplicateName, tags }) => ({
          name,
          id,
          address,
          state,
          incarnation,
          lastSeenMs,
          duplicateName,
          tags,
          userTags: userTags(tags),
          coordinator: id === coordinator,
          rank: ranks.get(id) ?? null,
        }),
      );
    } finally {
      await peer.stop();
    }
  }

  private render(members: MemberView[], shown: (all: MemberView[]) => MemberView[]): string {
    if (members.length === 0)
      return 'no peers answered (check --interface, --group and --port; where multicast does not reach this host, --join HOST of a member; peer doctor tells which)';
    const ranks = rankMembers(members);
    const coordinator = coordinatorFromTags(members);
    const rows = shown(members);
    if (rows.length === 0) return `no peer matches --tag/--status among the ${members.length} that answered`;
    return table(
      ['NAME', 'ADDRESS', 'STATE', 'INC', 'LAST SEEN', 'RANK', 'TAGS'],
      rows.map((m) => [
        memberLabel(m) +
          (m.duplicateName ? ' (duplicate name)' : '') +
          (m.id === coordinator ? ' *coordinator' : ''),
        m.address,
        paintState(m.state),
        String(m.incarnation),
        `${m.lastSeenMs} ms`,
        String(ranks.get(m.id) ?? '-'),
        escapeForTerminal(formatTags(userTags(m.tags))),
      ]),
    );
  }
}
