import { Flags } from '@oclif/core';
import chalk from 'chalk';
import { PeerCommand } from '../../cli/base.js';
import { networkFlags } from '../../cli/flags.js';
import { networkSettings, startPeer, stderrHealth, untilSignal } from '../../cli/peer.js';
import { installKeyValue, reportingStore } from '../../cli/kv.js';
import { UsageError } from '../../cli/network.js';
import {
  describeMembershipEvent,
  eventJson,
  eventLog,
  logSync,
  paintName,
  paintPeer,
  type EventLog,
} from '../../cli/output.js';
import { escapeForTerminal } from '../../cli/sanitize.js';
import { ReliableDelivery } from '../../p2p/reliable/index.js';
import { KeyValue, decodeOp } from '../../p2p/kv/index.js';
import { entryId } from '../../p2p/replication/index.js';
import type { PeerEvent } from '../../p2p/protocol.js';
import type { PeerNode } from '../../p2p/node.js';
import { KvStore, KvStoreError } from '../../storage/kv.js';
import { listenMetrics, metering, metricsFlag } from '../../cli/metrics.js';

export default class KvServe extends PeerCommand {
  static override summary = 'Hold the replicated key-value store (until Ctrl-C).';
  static override description =
    "Joins the group as a kv holder: keeps the operation log and the key-value table in this peer's SQLite file (--data-dir, one file per --name), acknowledges a write only once it is committed with synchronous=FULL, answers reads and dumps, and repairs the other holders' logs in the background (anti-entropy), so a holder that was down or cut off catches up when it returns. Conflicting writes resolve the same way everywhere: last writer wins by (Lamport time, peer id).";
  static override examples = [
    '<%= config.bin %> kv serve --interface 127.0.0.1 --name h1',
    '<%= config.bin %> kv serve --name h2 --log-format json',
  ];
  static override flags = {
    ...networkFlags,
    'log-format': Flags.string({
      summary: 'Log lines as text or as JSON objects.',
      options: ['text', 'json'],
      default: 'text',
    }),
    ...metricsFlag,
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(KvServe);
    const settings = networkSettings(flags);
    const json = flags['log-format'] === 'json';
    const log = eventLog((l) => this.log(l), json);
    const health = stderrHealth();
    const metrics = await listenMetrics(flags.metrics);
    // Ctrl-C and SIGTERM caught from before the start (see untilSignal, cli/peer.ts).
    const stopped = untilSignal();
    const peer = await startPeer(settings, {
      health,
      // Opened before the node: a restarted holder starts its clock above its own log.
      open: (s) => {
        try {
          return { store: KvStore.open(s!.db, { durable: true }), file: s!.file };
        } catch (err) {
          if (err instanceof KvStoreError) throw new UsageError(`${s!.file}: ${err.message}`);
          throw err;
        }
      },
      lamport: ({ store }) => store.maxLamport(),
      install: (node, _s, { store, file }) => {
        const { kv, large } = installKeyValue(node, reportingStore(store, file, health));
        return { store, kv, large };
      },
    }).then(
      ...metering(metrics, (i: { store: KvStore; kv: KeyValue; large: ReliableDelivery }) => ({
        kv: { kv: i.kv, set: i.store.set },
        reliable: i.large,
      })),
    );
    const {
      node,
      installed: { store, kv },
    } = peer;
    const keys = store.all().filter((v) => v.value !== null).length;
    log(
      { event: 'up', name: node.name, id: node.id, address: node.address, keys, operations: store.set.size },
      `${paintName(node.name)} holds the kv store (${keys} keys, ${store.set.size} operations, digest ${store.set.digest()}) at ${node.address}`,
    );
    if (metrics) log({ event: 'metrics', url: metrics.url }, `metrics at ${metrics.url}`);
    node.on((e) => this.describe(e, log, node.membership));
    const signal = await stopped;
    await peer.stop();
    await metrics?.close();
    log({ event: 'down', signal, holder: kv.isHolder }, `left the group (${signal})`);
  }

  private describe(e: PeerEvent, log: EventLog, members: PeerNode['membership']): void {
    switch (e.kind) {
      case 'kv-apply':
        if (e.via === 'repair') {
          log(
            { event: 'repair', from: e.from, count: e.entries.length },
            `${chalk.cyan('repair')} ${e.entries.length} operation(s) from ${paintPeer(members, e.from)}`,
          );
          return;
        }
        for (const x of e.entries) {
          const op = decodeOp(x.text);
          log(
            {
              event: 'apply',
              id: entryId(x),
              lamport: x.lamport,
              op: op?.kind ?? 'unknown',
              key: op?.key ?? null,
            },
            // A key is any printable text its writer chose: quoted and escaped, never raw.
            `${chalk.green(op?.kind ?? 'ignored')} ${op ? `"${escapeForTerminal(op.key)}"` : '(not a kv operation)'} ${entryId(x)} lamport ${x.lamport}`,
          );
        }
        return;
      case 'kv-sync':
        return logSync(log, e, members);
      case 'kv-conflict':
        log(
          { event: 'conflict', peer: e.peer },
          `${chalk.red('conflict')} digests differ from ${paintPeer(members, e.peer)} but no difference was found (hash collision?)`,
        );
        return;
      default: {
        const text = describeMembershipEvent(e);
        if (text) log(eventJson(e, Date.now()), text);
      }
    }
  }
}
