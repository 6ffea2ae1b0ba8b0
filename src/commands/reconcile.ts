import { Flags } from '@oclif/core';
import { GroupError, PeerCommand } from '../cli/base.js';
import { networkFlags } from '../cli/flags.js';
import { networkSettings, startPeer } from '../cli/peer.js';
import { UsageError } from '../cli/network.js';
import { escapeForTerminal } from '../cli/sanitize.js';
import { Progress } from '../cli/progress.js';
import { ROUND_DISCOVERY_MS, dirFlag, replicaTable, waitFor, type ReplicaRow } from '../cli/replica.js';
import { Replication, envelopeOverhead } from '../p2p/replication/index.js';
import { ReplicaError, reconcileDirectory } from '../storage/replica.js';

export interface ReconcileResult {
  ok: boolean;
  mode: 'online' | 'offline';
  replicas: ReplicaRow[];
}

export default class Reconcile extends PeerCommand {
  static override summary = 'Make every replica identical, in canonical order.';
  static override description = `Online (default): runs a round among the live replica holders, waits until every holder reports the same digest (anti-entropy runs faster meanwhile), then has each rewrite its file atomically in canonical order (Lamport time, origin, sequence). Exits 1 if they do not converge within --timeout.

--offline: merges the replica files found in --dir without any network: their union, without duplicates, in canonical order, written identically (and atomically) into every file. Lines that do not parse are kept aside in <name>.rejected. Do not run it while holders write to the same directory.`;
  static override examples = [
    '<%= config.bin %> reconcile --interface 127.0.0.1',
    '<%= config.bin %> reconcile --json --timeout 20000',
    '<%= config.bin %> reconcile --offline --dir replicas',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...networkFlags,
    ...dirFlag,
    offline: Flags.boolean({ summary: 'Merge the files in --dir without the network.', default: false }),
    timeout: Flags.integer({
      summary: 'How long to wait for the holders to converge, in ms.',
      default: 10_000,
      min: 1,
      max: 3_600_000,
    }),
  };

  async run(): Promise<ReconcileResult> {
    const { flags } = await this.parse(Reconcile);
    try {
      if (flags.offline) return this.offline(flags.dir);
      return await this.online(flags);
    } catch (err) {
      if (err instanceof ReplicaError) this.error(err.message, { exit: 2 });
      throw err;
    }
  }

  private offline(dir: string): ReconcileResult {
    const rows = reconcileDirectory(dir);
    if (rows.length === 0) throw new UsageError(`no replica files (*.txt) in ${dir}; pass --dir`);
    for (const r of rows.filter((x) => x.rejected > 0))
      process.stderr.write(
        `${this.config.bin}: ${r.rejected} line(s) of ${escapeForTerminal(r.replica)}.txt did not parse; kept aside in ${escapeForTerminal(r.replica)}.rejected\n`,
      );
    const replicas = rows.map((r) => ({
      replica: r.replica,
      before: r.before,
      after: r.after,
      added: r.added,
      sha256: r.digest,
    }));
    if (!this.jsonEnabled()) this.log(replicaTable(replicas));
    return { ok: true, mode: 'offline', replicas };
  }

  private async online(
    flags: Parameters<typeof networkSettings>[0] & { timeout: number },
  ): Promise<ReconcileResult> {
    const settings = networkSettings(flags, flags.name ?? 'reconcile');
    const peer = await startPeer(settings, {
      observer: true,
      install: (node) =>
        node.install(
          (ctx, n) => new Replication(ctx, n.membership, { envelopeBytes: envelopeOverhead(settings.name) }),
        ),
    });
    const rp = peer.installed;
    const started = Date.now();
    const progress = new Progress({ json: this.jsonEnabled() });
    try {
      progress.update('looking for replica holders');
      await waitFor(
        () => rp.liveHolders().length > 0 && Date.now() - started >= ROUND_DISCOVERY_MS,
        flags.timeout,
      );
      if (rp.liveHolders().length === 0)
        throw new GroupError(
          `no replica holder answered within ${flags.timeout} ms; start holders with 'peer replicate', and check --interface, --group and --port`,
        );
      rp.startRound();
      const ok = await waitFor(
        () => rp.roundStatus().done,
        Math.max(0, flags.timeout - (Date.now() - started)),
        () => {
          const st = rp.roundStatus();
          const agree = st.holders.length - st.waiting.length;
          progress.update(
            `reconciling ${st.holders.length} holders: ${st.agreed ? 'rewriting' : 'repairing'}, ${agree} done; waiting on ${st.waiting.join(', ')}`,
          );
        },
      );
      progress.done();
      const st = rp.roundStatus();
      const replicas: ReplicaRow[] = st.holders
        .map((h) => ({
          replica: h.name,
          before: h.before,
          after: h.entries,
          added: h.entries - h.before,
          sha256: h.sha256,
          digest: h.digest,
        }))
        .sort((a, b) => a.replica.localeCompare(b.replica));
      const result: ReconcileResult = { ok, mode: 'online', replicas };
      if (!this.jsonEnabled()) this.log(replicaTable(replicas));
      if (ok) return result;
      throw new GroupError(
        `the holders did not converge within ${flags.timeout} ms; still waiting on: ${st.waiting.join(', ')}; check that they run, or reconcile again with a longer --timeout`,
        { ...result },
      );
    } finally {
      progress.done();
      await peer.stop();
    }
  }
}
