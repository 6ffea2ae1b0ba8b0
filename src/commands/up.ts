import { Flags } from '@oclif/core';
import { PeerCommand } from '../cli/base.js';
import { networkFlags } from '../cli/flags.js';
import { networkSettings, startPeer, stderrHealth, untilSignal } from '../cli/peer.js';
import { eventLog, paintName, type EventLog } from '../cli/output.js';
import { describeReport, securityReport } from '../cli/security.js';
import { UsageError, type JoinSeed } from '../cli/network.js';
import { installCoordination, priorityFlag } from '../cli/coordination.js';
import { logTaskPeer } from '../cli/tasks.js';
import { RunsStore } from '../storage/runs.js';
import { SqliteEventJournal } from '../storage/event-journal.js';
import { ReliableDelivery } from '../p2p/reliable/index.js';
import { installJobs } from '../cli/run/install.js';
import { logKeeper } from '../cli/run/detached.js';
import { listenMetrics, metering, metricsFlag, type MeteredModules } from '../cli/metrics.js';
import { agentFlags, agentSetup, installAgent, serveTags } from '../cli/events.js';
import { relayServer } from '../cli/agent-relay.js';
import type { Events } from '../p2p/events/index.js';
import type { PeerNode } from '../p2p/node.js';
import { watchUdpDrops } from '../cli/udp-drops.js';

/**
 * How long a peer started with --join may meet nobody before it says its seeds did not answer: a
 * seed answers within a round trip and a request is sent again within about a second, so 5 s of
 * silence means that nothing answers there, not a slow answer.
 */
const SEED_SILENCE_NOTICE_MS = 5_000;

export default class Up extends PeerCommand {
  static override summary = 'Run a headless peer that stays in the group until stopped.';
  static override description =
    'Joins the group, heartbeats, and logs membership events (join, suspect, dead, leave) as lines. It stands in the coordinator election; elected, it keeps the detached runs of peer run --detach (docs/run.md), and meanwhile keeps a copy of them. Ctrl-C or SIGTERM leaves the group gracefully, so the others see a leave at once instead of a death. SIGUSR1 prints what was dropped and why; SIGHUP re-reads --key-file (key rotation, see docs/security.md). It runs --handler scripts on member events, on user events (peer event) and on queries (peer query), and carries the --tag tags that peer peers shows and peer tags changes (docs/events.md).';
  static override examples = [
    '<%= config.bin %> up --interface 127.0.0.1 --name alice',
    '<%= config.bin %> up --interface eth0 --log-format json',
    '<%= config.bin %> up --interface 127.0.0.1 --name boss --priority 10',
    '<%= config.bin %> up --interface 127.0.0.1 --metrics 9464',
    '<%= config.bin %> up --interface eth0 --join 192.168.1.20 --join 10.0.2.7:47777',
    '<%= config.bin %> up --interface 127.0.0.1 --name db1 --tag role=db --handler user:deploy=./deploy.sh',
    "<%= config.bin %> up --interface 127.0.0.1 --handler 'member-join,member-failed=logger -t peer' --handler 'query:load=uptime'",
  ];
  static override flags = {
    ...networkFlags,
    ...priorityFlag,
    ...agentFlags,
    'log-format': Flags.string({
      summary: 'Log lines as text or as JSON objects.',
      options: ['text', 'json'],
      default: 'text',
    }),
    ...metricsFlag,
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Up);
    const settings = networkSettings(flags);
    const json = flags['log-format'] === 'json';
    // Run records that cannot be written (a full disk) are said once, and runs refused meanwhile.
    const health = stderrHealth();
    // Listening first: a port in use stops us before we join the group (docs/metrics.md).
    const metrics = await listenMetrics(flags.metrics);
    const log = eventLog((l) => this.log(l), json);
    let events: Events | null = null;
    // Set in install (a closure): typed so that the check at the end is not narrowed to null.
    let journal = null as SqliteEventJournal | null;
    const agent = agentSetup(flags, settings.dataDir, settings.name, log, () => events?.tags ?? {});
    // Ctrl-C and SIGTERM caught from before the start (see untilSignal, cli/peer.ts).
    const stopped = untilSignal();
    const peer = await startPeer(settings, {
      health,
      install: (n, store) => {
        const coordination = installCoordination(n, { priority: flags.priority, candidate: true });
        // A candidate must be able to keep detached runs (`peer task`, `peer run --detach`) when
        // elected (docs/run.md); it runs no job. Its store follows the keeper meanwhile.
        const reliable = n.install((ctx, m) => new ReliableDelivery(ctx, m.membership));
        installJobs(n, reliable, {
          keyed: Boolean(settings.keys),
          view: coordination.election,
          store: store ? RunsStore.of(store, health) : undefined,
        });
        journal = store ? SqliteEventJournal.open(store, health) : null;
        events = installAgent(n, reliable, agent, journal ?? undefined);
        return { coordination, reliable };
      },
    }).then(...metering(metrics, (installed: MeteredModules) => installed));
    const { node } = peer;
    const group = `${settings.group}:${settings.port}`;
    const control = serveTags(
      events!,
      agent,
      settings.dataDir,
      settings.name,
      log,
      relayServer(events!, node, group, () => peer.security.secure?.keyring.ids() ?? []),
    );

    logTaskPeer(
      log,
      node,
      group,
      {},
      `${paintName(node.name)} (${node.id.slice(0, 8)}) up at ${node.address} in ${group}, incarnation ${node.incarnation}`,
    );
    logKeeper(log, node);
    // Our own door among the seeds (the same --join on every host, this one's included) is no seed.
    const stopSeedReport = reportSeeds(
      log,
      node,
      settings.join ?? [],
      (s) => peer.transport.holdsDoor && s.host === settings.interface && s.port === settings.port,
    );
    const stopUdpDrops = watchUdpDrops(log);
    if (metrics) log({ event: 'metrics', url: metrics.url }, `metrics at ${metrics.url}`);
    // Counters are per process: SIGUSR1 prints ours, SIGHUP re-reads the key file (rotation).
    const stats = () => {
      const r = securityReport(peer.security, node);
      log({ event: 'stats', at: new Date().toISOString(), ...r }, `stats\n${describeReport(r)}`);
    };
    const reload = () => {
      if (!peer.security.keyFile)
        return log({ event: 'reload', error: 'no --key-file' }, 'SIGHUP: no --key-file to reload');
      try {
        const { keyIds, warning } = peer.security.reload();
        if (warning) process.stderr.write(`peer: ${warning}\n`);
        log(
          { event: 'reload', at: new Date().toISOString(), keyIds },
          `reloaded ${peer.security.keyFile}: keys ${keyIds.join(' ')}`,
        );
      } catch (err) {
        // A bad file must not stop a running peer: keep the keys we have.
        const msg = err instanceof UsageError ? err.message : String(err);
        process.stderr.write(`peer: key file not reloaded, keeping the current keys: ${msg}\n`);
      }
    };
    process.on('SIGUSR1', stats);
    process.on('SIGHUP', reload);
    const signal = await stopped;
    process.off('SIGUSR1', stats);
    process.off('SIGHUP', reload);
    stopSeedReport();
    stopUdpDrops();
    control?.close();
    agent.runner.stop();
    await peer.stop();
    journal?.close();
    await metrics?.close();
    stats();
    log({ event: 'down', at: new Date().toISOString(), signal }, `left the group (${signal})`);
  }
}

/**
 * Says when each --join seed first answers, and once, after SEED_SILENCE_NOTICE_MS, when no seed
 * answered and nobody was met: a mistyped or unreachable seed otherwise leaves the peer alone
 * without a word. A seed that is this peer's own door (`ownDoor`, asked then) is left out of it.
 * Returns what stops the notice.
 */
function reportSeeds(
  log: EventLog,
  node: PeerNode,
  seeds: readonly JoinSeed[],
  ownDoor: (seed: JoinSeed) => boolean,
): () => void {
  if (seeds.length === 0) return () => {};
  const answered = new Set<string>();
  node.join.onSeedPage((seed, page) => {
    if (answered.has(seed)) return;
    answered.add(seed);
    log({ event: 'seed', seed, members: page.total }, `seed    ${seed} answered: ${page.total} member(s)`);
  });
  const timer = setTimeout(() => {
    const given = seeds.filter((s) => !ownDoor(s)).map((s) => `${s.host}:${s.port}`);
    if (given.length === 0 || answered.size > 0 || node.membership.live().length > 0) return;
    log(
      { event: 'seeds-silent', seeds: given },
      `no peer met in ${SEED_SILENCE_NOTICE_MS / 1000} s: the --join seed(s) ${given.join(', ')} have not answered; check that a peer runs there and that UDP to that port gets through (peer doctor ${given.map((g) => `--join ${g}`).join(' ')})`,
    );
  }, SEED_SILENCE_NOTICE_MS);
  timer.unref();
  return () => clearTimeout(timer);
}
