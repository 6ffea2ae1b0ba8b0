import path from 'node:path';
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Flags } from '@oclif/core';
import { GroupError, PeerCommand } from '../cli/base.js';
import { networkFlags } from '../cli/flags.js';
import { networkSettings, startPeer } from '../cli/peer.js';
import { memberLabel, table } from '../cli/output.js';
import { escapeForTerminal } from '../cli/sanitize.js';
import { Progress } from '../cli/progress.js';
import { UsageError } from '../cli/network.js';
import { waitFor, HOLDER_DISCOVERY_MS } from '../cli/replica.js';
import { Snapshot, type GlobalSnapshot } from '../p2p/snapshot.js';
import { nameOrUnheard } from '../p2p/names.js';
import { writeFileAtomic } from '../storage/replica.js';

export type SnapshotResult = GlobalSnapshot & { takenAt: string; file: string };

export default class SnapshotCommand extends PeerCommand {
  static override summary = 'Take a consistent global snapshot of all live peers (Chandy–Lamport).';
  static override description =
    "Asks every live peer to record its state (its checkpoint: Lamport time, peers seen, token generation, tasks, chat lines, replica positions) and the messages in flight on each incoming channel, waits for every report, prints them and saves them as JSON. A channel is one sender's reliable multicast stream as one receiver delivers it; see docs/recovery.md. Exit 0 when every live peer reported a complete snapshot, 1 otherwise (what was gathered is still saved and printed).";
  static override examples = [
    '<%= config.bin %> snapshot --interface 127.0.0.1',
    '<%= config.bin %> snapshot --json --out snap.json',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...networkFlags,
    out: Flags.string({ summary: 'File to save the snapshot to (default: <data-dir>/snapshots/<id>.json).' }),
    wait: Flags.integer({
      summary: 'How long to wait for every report, in ms.',
      default: 5000,
      min: 100,
      max: 600_000,
    }),
  };

  async run(): Promise<SnapshotResult> {
    const { flags } = await this.parse(SnapshotCommand);
    const settings = networkSettings(flags, flags.name ?? 'snapshot');
    const out = flags.out ?? path.join(flags['data-dir'], 'snapshots');
    const peer = await startPeer(settings, {
      observer: true,
      install: (node) => node.install((ctx, n) => new Snapshot(ctx, n.membership, { record: () => null })),
    });
    const s = peer.installed;
    const progress = new Progress({ json: flags.json });
    progress.update('waiting for every peer to record its state');
    try {
      await waitFor(() => peer.node.membership.live().length > 0, HOLDER_DISCOVERY_MS * 3);
      if (peer.node.membership.live().length === 0)
        throw new GroupError(
          `no live peer answered within ${HOLDER_DISCOVERY_MS * 3} ms; start one with 'peer up', and check --interface, --group and --port (or run peer doctor)`,
        );
      const id = `s-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
      const takenAt = new Date().toISOString();
      s.request(id);
      await waitFor(() => s.collected() && (s.result()?.complete ?? false), flags.wait);
      const g = s.result()!;
      const file = flags.out ?? path.join(out, `${id}.json`);
      const result: SnapshotResult = { ...g, takenAt, file };
      try {
        fs.mkdirSync(path.dirname(file), { recursive: true });
        writeFileAtomic(file, `${JSON.stringify(result, null, 2)}\n`);
      } catch (err) {
        throw new UsageError(
          `cannot save the snapshot to ${file} (${(err as Error).message}); pass --out with a writable path`,
        );
      }
      if (!flags.json) this.print(result);
      if (g.complete) return result;
      const silent = g.missing.map((m) => m.name);
      const open = g.peers.filter((p) => !p.complete).map((p) => p.name);
      throw new GroupError(
        `the snapshot is incomplete after ${flags.wait} ms (${[
          silent.length ? `no report from: ${silent.join(', ')}` : '',
          open.length ? `channels still open at: ${open.join(', ')}` : '',
        ]
          .filter(Boolean)
          .join('; ')}); what was gathered is saved to ${file}; take it again with a longer --wait`,
        { ...result },
      );
    } finally {
      progress.done();
      await peer.stop();
    }
  }

  /** Every report came from a peer: its names and state are escaped before they are shown. */
  private print(r: SnapshotResult): void {
    const names = new Map([
      ...r.peers.map((p) => [p.peer, p.name] as const),
      ...r.missing.map((m) => [m.id, m.name] as const),
    ]);
    const nameOf = (id: string) => nameOrUnheard(names.get(id), id);
    this.log(
      table(
        ['PEER', 'LAMPORT', 'COMPLETE', 'IN FLIGHT', 'STATE'],
        r.peers.map((p) =>
          [
            p.name,
            String(p.lamport),
            p.complete ? 'yes' : `no (open: ${p.open.map(nameOf).join(', ')})`,
            String(Object.values(p.channels).reduce((t, c) => t + c.count, 0)),
            summarize(p.state),
          ].map(escapeForTerminal),
        ),
      ),
    );
    for (const m of r.missing) this.log(`${memberLabel(m)} did not report`);
    this.log(
      `snapshot ${r.id}: ${r.peers.length} peers, ${r.inFlight} messages in flight, ${r.complete ? 'complete' : 'INCOMPLETE'}; saved to ${r.file}`,
    );
  }
}

/** A short text of a peer's recorded state for the table (the JSON file has all of it). */
function summarize(state: unknown): string {
  if (typeof state !== 'object' || state === null) return String(state);
  const s = state as Record<string, unknown>;
  const parts: string[] = [];
  const peers = s.peers as { seen?: number } | undefined;
  if (peers?.seen) parts.push(`${peers.seen} peers seen`);
  const token = s.token as { gen?: number } | null | undefined;
  if (token?.gen !== undefined) parts.push(`token gen ${token.gen}`);
  const tasks = s.tasks as { total?: number; open?: number } | null | undefined;
  if (tasks?.total) parts.push(`${tasks.total} tasks (${tasks.open} open)`);
  const chat = s.chat as { lines?: number } | null | undefined;
  if (chat?.lines) parts.push(`${chat.lines} chat lines`);
  const replicas = s.replicas as Record<string, number> | undefined;
  for (const [name, n] of Object.entries(replicas ?? {})) parts.push(`replica ${name}: ${n}`);
  return parts.join(', ') || '-';
}
