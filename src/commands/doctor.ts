import { Flags } from '@oclif/core';
import chalk from 'chalk';
import { PeerCommand } from '../cli/base.js';
import { networkFlags, uncheckedDataDirFlag } from '../cli/flags.js';
import { escapeForTerminal } from '../cli/sanitize.js';
import type { ProfileName } from '../p2p/config.js';
import { runDoctor, type CheckResult, type DoctorReport } from '../cli/doctor/index.js';
import { PROBE_WAIT_MS } from '../cli/doctor/probe.js';
import { doctorSeeds, rememberedSeeds } from '../cli/doctor/network.js';
import type { ReachMode } from '../p2p/reach.js';

/** Exit code when at least one check failed (2 stays "bad flags", as for every command). */
export const EXIT_CHECK_FAILED = 1;

const MARK: Record<CheckResult['status'], string> = {
  pass: chalk.green('PASS'),
  warn: chalk.yellow('WARN'),
  fail: chalk.red('FAIL'),
  skip: chalk.gray('SKIP'),
};

export default class Doctor extends PeerCommand {
  static override summary = 'Check that this machine can join the group, and say how to fix what cannot.';
  static override description =
    'Checks, in order: the interfaces and their IPv4 addresses, which one multicast uses, the group address, the TTL, whether another program holds the group port, joining the group, a multicast round trip through the group on this host, the key file, whether other peers answer a probe, whether the --join seeds answer (by unicast, read-only; without --join, the peers the data dir remembers, which peer up tries at start), the network verdict (multicast works; the group is silent but seeds answer by unicast; multicast is blocked on this interface; unicast only, with --transport unicast, which skips the multicast checks; nothing answers) with the --join line to use, the data dir, and the health of the peer databases (read-only). Each check prints PASS, WARN, FAIL or SKIP, and the fix. Exit code 0 when nothing failed, 1 otherwise. Changes nothing.';
  static override examples = [
    '<%= config.bin %> doctor',
    '<%= config.bin %> doctor --interface 127.0.0.1 --ttl 0',
    '<%= config.bin %> doctor --json --wait 3000',
    '<%= config.bin %> doctor --join 10.77.4.2',
    '<%= config.bin %> doctor --transport unicast --join 10.77.4.2',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...networkFlags,
    // Without the shared check: a data dir that is a file is one of the doctor's own findings.
    'data-dir': uncheckedDataDirFlag,
    wait: Flags.integer({
      summary: 'How long to wait for other peers to answer the probe, in ms.',
      default: PROBE_WAIT_MS,
      min: 0,
      max: 60_000,
    }),
  };

  async run(): Promise<DoctorReport> {
    const { flags } = await this.parse(Doctor);
    const json = this.jsonEnabled();
    const given = await doctorSeeds(flags.join ?? [], flags.port);
    // Without --join, the peers `peer up` would try from this data dir.
    const seeds = given.length > 0 ? given : rememberedSeeds(flags['data-dir'], flags.name);
    const report = await runDoctor(
      {
        name: flags.name,
        group: flags.group,
        port: flags.port,
        interface: flags.interface,
        ttl: flags.ttl,
        dataDir: flags['data-dir'],
        profile: flags.profile as ProfileName,
        keyFile: flags['key-file'],
        open: flags.open,
        waitMs: flags.wait,
        seeds,
        transport: (flags.transport ?? 'auto') as ReachMode,
      },
      (c) => {
        if (json) return;
        // Details name peers that answered, files on disk and database errors: escaped.
        this.log(
          `${MARK[c.status]}  ${chalk.bold(escapeForTerminal(c.title))}: ${escapeForTerminal(c.detail)}`,
        );
        if (c.fix && c.status !== 'pass') this.log(`      ${chalk.cyan('fix:')} ${escapeForTerminal(c.fix)}`);
      },
    );
    if (!json) {
      const { pass, warn, fail, skip } = report.counts;
      this.log(
        `\n${report.ok ? chalk.green.bold('no check failed') : chalk.red.bold(`${fail} check(s) failed`)}: ${pass} passed, ${warn} warned, ${fail} failed, ${skip} skipped`,
      );
    }
    // Set, not exit(): oclif still prints the --json result, and sockets close before the exit.
    if (!report.ok) process.exitCode = EXIT_CHECK_FAILED;
    return report;
  }
}
