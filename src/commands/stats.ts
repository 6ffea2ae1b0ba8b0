import { Flags } from '@oclif/core';
import { PeerCommand } from '../cli/base.js';
import { networkFlags } from '../cli/flags.js';
import { networkSettings, startPeer } from '../cli/peer.js';
import { describeReport, securityReport, type SecurityReport } from '../cli/security.js';

export default class Stats extends PeerCommand {
  static override summary = 'Listen to the group and count what gets dropped, and why.';
  static override description =
    'Counters are per process, so this command listens itself, as an observer, for --wait ms and prints what it accepted and what it refused: rate-limited datagrams, datagrams sealed with another key or none, forgeries, replays, and envelopes the decoder refused. A running `peer up` prints its own counters on SIGUSR1 (kill -USR1 <pid>) and when it stops.';
  static override examples = [
    '<%= config.bin %> stats --interface 127.0.0.1 --key-file ~/.peer/group.key',
    '<%= config.bin %> stats --json --wait 5000',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...networkFlags,
    wait: Flags.integer({
      summary: 'How long to listen before printing, in ms.',
      default: 3000,
      min: 0,
      max: 600_000,
    }),
  };

  async run(): Promise<SecurityReport> {
    const { flags } = await this.parse(Stats);
    const settings = networkSettings(flags, flags.name ?? 'observer');
    const peer = await startPeer(settings, { observer: true });
    try {
      await new Promise((r) => setTimeout(r, flags.wait));
      const report = securityReport(peer.security, peer.node);
      this.log(describeReport(report));
      return report;
    } finally {
      await peer.stop();
    }
  }
}
