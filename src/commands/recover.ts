import { Flags } from '@oclif/core';
import { PeerCommand } from '../cli/base.js';
import { networkFlags } from '../cli/flags.js';
import { dirFlag } from '../cli/replica.js';
import { escapeForTerminal } from '../cli/sanitize.js';
import { networkSettings, startPeer, untilSignal } from '../cli/peer.js';
import {
  REPLAY_HANDLERS,
  rebuildReplicas,
  registerStandardSources,
  type ReplicaRebuild,
} from '../cli/checkpointing.js';
import { UsageError } from '../cli/network.js';
import { isPeerName } from '../p2p/wire.js';
import { openCheckpoints } from '../storage/checkpoint.js';
import { PeerStore, requireDatabase } from '../storage/store.js';
import { DataDirLock } from '../storage/lock.js';
import { recover, recoveryLine, type PreviousExit, type RecoveryReport } from '../storage/recovery.js';

export interface RecoverResult {
  name: string;
  file: string;
  /** How the run before ended: a graceful stop (clean), a crash, or unknown (no checkpoint). */
  previousExit: PreviousExit;
  integrity: 'ok';
  checkpoint: { seq: number | null; takenAt: string | null; damagedSkipped: number };
  lamport: number;
  lamportStart: number;
  restored: Record<string, unknown>;
  unprocessedBefore: number;
  replayed: number;
  duplicatesSuppressed: number;
  pendingForCommand: number;
  damagedMessages: number;
  replicas: ReplicaRebuild[];
  replicaEntriesRestored: number;
  ms: number;
  rejoined: boolean;
}

export default class Recover extends PeerCommand {
  static override summary = "Check and restore a peer's state after a crash.";
  static override description =
    "Checks the peer's SQLite file (PRAGMA integrity_check and the checksums of checkpoints and messages), restores the newest good checkpoint (a damaged one falls back to the previous), processes every message that was received but not processed exactly once, and rebuilds replica files under --dir that are behind the replica log or damaged. A file that cannot be read is reported and left untouched (exit 2), and so is a peer of that name still running on the data dir, or a read-only data dir. With --rejoin it then runs as a peer in the group (like 'peer up') until Ctrl-C. Long-running commands do the same recovery by themselves when restarted; see docs/recovery.md.";
  static override examples = [
    '<%= config.bin %> recover --name alice --data-dir ~/.peer',
    '<%= config.bin %> recover --name alice --json',
    '<%= config.bin %> recover --name alice --rejoin --interface 127.0.0.1',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...networkFlags,
    ...dirFlag,
    name: Flags.string({ summary: 'Name of the peer to recover.', env: 'PEER_NAME', required: true }),
    rejoin: Flags.boolean({ summary: 'Then run as a peer in the group until Ctrl-C.', default: false }),
  };

  async run(): Promise<RecoverResult> {
    const { flags } = await this.parse(Recover);
    if (!isPeerName(flags.name)) throw new UsageError(`--name '${flags.name}' is not a valid peer name`);
    if (flags.rejoin && flags.json)
      throw new UsageError('--rejoin runs until stopped: it cannot be combined with --json');
    // A missing file is an error, never a new database; then nobody else may write while we do.
    requireDatabase(flags['data-dir'], flags.name);
    const lock = DataDirLock.acquire(flags['data-dir'], flags.name);
    let report: RecoveryReport;
    let replicas: ReplicaRebuild[];
    try {
      // Opened read-check first: an unreadable file is an error, never written to.
      const cp = openCheckpoints(flags['data-dir'], flags.name, { mustExist: true, integrity: 'full' });
      try {
        registerStandardSources(
          cp,
          () => 0,
          () => true,
        );
        report = recover(cp, { integrity: 'none', handlers: REPLAY_HANDLERS });
        replicas = rebuildReplicas(cp, flags.dir);
      } finally {
        cp.close();
      }
      // The identity tables: PeerStore checks the file once more the way every command does.
      PeerStore.open(flags['data-dir'], flags.name).close();
    } finally {
      // --rejoin takes it again through startPeer, like any peer.
      lock.release();
    }
    const result: RecoverResult = {
      name: flags.name,
      file: report.file,
      previousExit: report.previousExit,
      integrity: 'ok',
      checkpoint: {
        seq: report.checkpointSeq,
        takenAt: report.checkpointAt === null ? null : new Date(report.checkpointAt).toISOString(),
        damagedSkipped: report.checkpointsDamaged,
      },
      lamport: report.lamport,
      lamportStart: report.lamportStart,
      restored: report.restored,
      unprocessedBefore: report.unprocessedBefore,
      replayed: report.replayed,
      duplicatesSuppressed: report.duplicatesSuppressed,
      pendingForCommand: report.pending,
      damagedMessages: report.damagedMessages,
      replicas,
      replicaEntriesRestored: replicas.reduce((s, r) => s + r.restored, 0),
      ms: Math.round(report.ms),
      rejoined: false,
    };
    if (!flags.json) this.print(result, report);
    if (flags.rejoin) {
      const settings = networkSettings(flags);
      // Ctrl-C and SIGTERM caught from before the start (see untilSignal, cli/peer.ts).
      const stopped = untilSignal();
      const peer = await startPeer(settings, { onRecovered: () => undefined });
      this.log(
        `rejoined the group ${settings.group}:${settings.port} as ${peer.node.name} (${peer.node.id.slice(0, 8)}), incarnation ${peer.node.incarnation}, Lamport ${peer.node.lamport}; Ctrl-C to leave`,
      );
      result.rejoined = true;
      await stopped;
      await peer.stop();
      this.log('left the group');
    }
    return result;
  }

  /** Replica names and checkpoint fields were read from the database: escaped. */
  private print(r: RecoverResult, report: RecoveryReport): void {
    this.log(`${r.file}: integrity ok, checksums checked`);
    this.log(
      escapeForTerminal(
        r.checkpoint.seq === null
          ? 'no checkpoint found: state starts from the tables alone'
          : `restored checkpoint ${r.checkpoint.seq} of ${r.checkpoint.takenAt}${r.checkpoint.damagedSkipped ? ` (${r.checkpoint.damagedSkipped} newer damaged checkpoint(s) skipped)` : ''}`,
      ),
    );
    this.log(
      `messages: ${r.unprocessedBefore} unprocessed found, ${r.replayed} replayed, ${r.duplicatesSuppressed} duplicates suppressed, ${r.pendingForCommand} kept for their command, ${r.damagedMessages} damaged kept aside`,
    );
    for (const x of r.replicas)
      this.log(
        escapeForTerminal(
          `replica ${x.replica}: ${x.logged} logged, ${x.before} in ${x.file}${x.damagedLines ? `, ${x.damagedLines} damaged lines kept aside` : ''}, ${x.restored} entries restored${x.rewritten ? ' (file rewritten)' : ''}`,
        ),
      );
    this.log(`replica entries restored: ${r.replicaEntriesRestored}`);
    this.log(escapeForTerminal(`${recoveryLine(report)} (${r.ms} ms)`));
  }
}
