import readline from 'node:readline';
import { Args, Flags } from '@oclif/core';
import chalk from 'chalk';
import { GroupError, PeerCommand } from '../cli/base.js';
import { networkFlags } from '../cli/flags.js';
import { networkSettings, startPeer, stderrHealth, untilSignal, type RunningPeer } from '../cli/peer.js';
import { logExisting, loggedSink } from '../cli/checkpointing.js';
import { UsageError } from '../cli/network.js';
import {
  describeMembershipEvent,
  eventJson,
  eventLog,
  logSync,
  paintName,
  paintPeer,
  type EventLog,
} from '../cli/output.js';
import { escapeForTerminal } from '../cli/sanitize.js';
import { showingWait } from '../cli/progress.js';
import {
  HOLDER_DISCOVERY_MS,
  POLL_MS,
  dirFlag,
  fileSink,
  installReplication,
  refusals,
  refusedTooMany,
  waitFor,
} from '../cli/replica.js';
import {
  Replication,
  acksSatisfied,
  envelopeOverhead,
  parseAckPolicy,
  type AckPolicy,
  ENTRY_TEXT_BYTES_MAX,
  appendFits,
  entryId,
  isEntryText,
  type Entry,
} from '../p2p/replication/index.js';
import { ReplicaError, ReplicaFile } from '../storage/replica.js';
import { ReliableDelivery } from '../p2p/reliable/index.js';
import type { PeerEvent } from '../p2p/protocol.js';
import type { PeerNode } from '../p2p/node.js';
import { listenMetrics, metering, metricsFlag } from '../cli/metrics.js';

/** Unconfirmed appends in flight at once when appending stdin lines (`peer replicate -`). */
export const APPEND_WINDOW = 32;

export interface AppendBatchResult {
  ok: boolean;
  appended: number;
  entries: AppendResult[];
}

export interface AppendResult {
  ok: boolean;
  id: string;
  origin: string;
  seq: number;
  lamport: number;
  acks: string;
  confirmed: string[];
  missing: string[];
  /** Holders that could not store it, with why: "h1 (disk full)". */
  refused: string[];
}

export default class Replicate extends PeerCommand {
  static override summary = 'Keep a replica (no message), or append MESSAGE to every replica.';
  static override description = `Without MESSAGE: joins the group as a replica holder and keeps replicas/<name>.txt (--dir moves it), one entry per line. Entries appended anywhere arrive by multicast and are written durably (fsync) before they are acknowledged; holders repair each other in the background (anti-entropy), so a holder that was down or cut off catches up when it returns. Lines typed (or piped) on stdin are appended to the group.

With MESSAGE: appends it and exits 0 once --acks holders have written it durably, printing the entry's id; otherwise exits 1 naming the holders that did not confirm within --timeout. With MESSAGE '-': appends every line of stdin, up to ${APPEND_WINDOW} unconfirmed at a time, and exits 0 only if every one was confirmed.

An entry is up to 1 MiB of text (${ENTRY_TEXT_BYTES_MAX} bytes of UTF-8). One too large for a datagram travels to each holder as a reliable message, and the command then joins the group for its run (holders take large messages only from members); anti-entropy and 'peer reconcile' move such entries too.`;
  static override examples = [
    '<%= config.bin %> replicate --interface 127.0.0.1 --name h1',
    '<%= config.bin %> replicate "deploy 42 done" --interface 127.0.0.1 --acks all',
    '<%= config.bin %> replicate "hello" --acks majority --timeout 2000 --json',
    'tail -f app.log | <%= config.bin %> replicate --name h1',
    'seq 1000 | <%= config.bin %> replicate - --acks all --json',
  ];
  static override enableJsonFlag = true;
  static override args = {
    message: Args.string({ description: 'Text to append (one-shot); omit to run a replica holder.' }),
  };
  static override flags = {
    ...networkFlags,
    ...dirFlag,
    acks: Flags.string({
      summary: 'Holders that must confirm a one-shot append: all, majority, or a number.',
      default: 'all',
    }),
    timeout: Flags.integer({
      summary: 'How long a one-shot append waits for confirmations, in ms.',
      default: 5_000,
      min: 1,
      max: 3_600_000,
    }),
    'log-format': Flags.string({
      summary: 'Holder log lines as text or as JSON objects.',
      options: ['text', 'json'],
      default: 'text',
    }),
    ...metricsFlag,
  };

  async run(): Promise<AppendResult | AppendBatchResult | void> {
    const { args, flags } = await this.parse(Replicate);
    try {
      if (args.message === undefined) return await this.hold(flags);
      // PEER_METRICS exported for the holders of this shell must not break its appends: only the
      // flag given here is refused.
      if (flags.metrics !== undefined && flags.metrics !== process.env.PEER_METRICS)
        throw new UsageError('--metrics is for a holder, which runs until stopped: omit MESSAGE');
      const policy = parseAckPolicy(flags.acks);
      if (!policy)
        throw new UsageError(`--acks ${flags.acks} is not valid; use all, majority or a number >= 1`);
      const batch = args.message === '-';
      const texts = batch ? await readStdinLines() : [args.message];
      const tooLong = texts.findIndex((t) => !isEntryText(t));
      if (tooLong >= 0)
        throw new UsageError(
          `${batch ? `line ${tooLong + 1} of stdin` : 'the message'} is over ${ENTRY_TEXT_BYTES_MAX} bytes (1 MiB and 2 KiB, as UTF-8); split it into several entries`,
        );
      if (texts.length === 0) throw new UsageError('no lines on stdin to append');
      const results = await showingWait(
        'waiting for replica holders to confirm',
        this.appendAll(texts, policy, flags),
        { json: this.jsonEnabled() },
      );
      const failed = results.filter((r) => !r.ok);
      const out = batch
        ? { ok: failed.length === 0, appended: results.length, entries: results }
        : results[0]!;
      if (failed.length === 0) return out;
      const f = failed[0]!;
      const known = f.confirmed.length + f.missing.length;
      const first = batch ? `${failed.length} of ${results.length} entries were not confirmed; first ` : '';
      throw new GroupError(
        f.refused.length > 0
          ? `${first}${f.id} could not be stored by ${f.refused.join(', ')} (--acks ${flags.acks}); free space there (or fix the disk) and append again`
          : `${first}${f.id} confirmed by ${f.confirmed.length} of ${known} holders within ${flags.timeout} ms (--acks ${flags.acks}); ${f.missing.length ? `no confirmation from: ${f.missing.join(', ')}; check that they run${f.confirmed.length ? ' (they get it from the others by repair)' : ', then append again'}` : `only ${known} holder(s) are known; start more ('peer replicate') or lower --acks`}`,
        { ...out },
      );
    } catch (err) {
      if (err instanceof ReplicaError) this.error(err.message, { exit: 2 });
      throw err;
    }
  }

  /**
   * Appends every text, at most APPEND_WINDOW unconfirmed at a time (flow control), each waiting
   * up to --timeout for its acknowledgements.
   */
  private async appendAll(
    texts: string[],
    policy: AckPolicy,
    flags: Parameters<typeof networkSettings>[0] & { acks: string; timeout: number },
  ): Promise<AppendResult[]> {
    const settings = networkSettings(flags, flags.name ?? 'replicate');
    const envelopeBytes = envelopeOverhead(settings.name);
    // An observer cannot send large messages (large.ts): join only when a text needs them.
    const transient = texts.some((t) => !appendFits(t, envelopeBytes));
    const peer = await startPeer(settings, {
      observer: !transient,
      transient,
      install: (node) => installReplication(node).rp,
    });
    const rp = peer.installed;
    const started = Date.now();
    try {
      // Holders answer the probe at once; listen a moment more so `all` counts every one of them.
      await waitFor(
        () => rp.liveHolders().length > 0 && Date.now() - started >= HOLDER_DISCOVERY_MS,
        flags.timeout,
      );
      if (rp.liveHolders().length === 0) {
        throw new GroupError(
          `no replica holder answered within ${flags.timeout} ms; start one with 'peer replicate' (no message), and check --interface, --group and --port`,
        );
      }
      const results: AppendResult[] = [];
      const pending = new Map<string, { entry: Entry; sentAt: number }>();
      let next = 0;
      while (next < texts.length || pending.size > 0) {
        while (pending.size < APPEND_WINDOW && next < texts.length) {
          const entry = rp.append(texts[next++]!);
          pending.set(entryId(entry), { entry, sentAt: Date.now() });
        }
        for (const [id, { entry, sentAt }] of pending) {
          const st = rp.appendStatus(id)!;
          const ok = acksSatisfied(policy, st.acked.length, st.known);
          if (!ok && !refusedTooMany(policy, st) && Date.now() - sentAt < flags.timeout) continue;
          pending.delete(id);
          rp.settle(id);
          const r: AppendResult = {
            ok,
            id,
            origin: entry.origin,
            seq: entry.seq,
            lamport: entry.lamport,
            acks: flags.acks,
            confirmed: st.confirmed,
            missing: st.missing.map((m) => m.name).sort(),
            refused: ok ? [] : refusals(st.refused),
          };
          results.push(r);
          if (ok && !this.jsonEnabled())
            this.log(
              `${id} lamport ${entry.lamport}: confirmed by ${escapeForTerminal(r.confirmed.join(', '))}`,
            );
        }
        if (pending.size > 0) await new Promise((r) => setTimeout(r, POLL_MS));
      }
      return results;
    } finally {
      await peer.stop();
    }
  }

  private async hold(
    flags: Parameters<typeof networkSettings>[0] & { dir: string; 'log-format': string; metrics?: string },
  ) {
    const settings = networkSettings(flags);
    const json = flags['log-format'] === 'json';
    const log = eventLog((l) => this.log(l), json);
    const file = ReplicaFile.open(flags.dir, settings.name);
    if (file.rejected.length > 0) {
      process.stderr.write(
        `${this.config.bin}: ${file.rejected.length} line(s) of ${file.file} did not parse (first: line ${file.rejected[0]!.line}, ${file.rejected[0]!.reason}); kept aside in ${file.file.replace(/\.txt$/, '.rejected')}\n`,
      );
    }
    const maxLamport = file.set.entries.reduce((m, e) => Math.max(m, e.lamport), 0);
    // Entries also go to the replica log in SQLite (issue 8), from which peer recover rebuilds a
    // damaged or truncated file; the file's own fsync is what an ack waits for.
    let peer: RunningPeer<Holding> | null = null;
    const health = stderrHealth();
    const sink = loggedSink(fileSink(file, health), settings.name, () => peer?.checkpoints ?? null, health);
    const metrics = await listenMetrics(flags.metrics);
    // Ctrl-C and SIGTERM caught from before the start (see untilSignal, cli/peer.ts).
    const stopped = untilSignal();
    peer = await startPeer(settings, {
      health,
      lamport: () => maxLamport,
      install: (node) => installReplication(node, sink),
    }).then(
      ...metering(metrics, ({ rp, large }: Holding) => ({
        replica: { replication: rp, set: file.set },
        reliable: large,
      })),
    );
    const {
      node,
      installed: { rp },
    } = peer;
    void logExisting(peer.checkpoints, settings.name, file.set.entries, health);
    log(
      {
        event: 'up',
        name: node.name,
        id: node.id,
        address: node.address,
        replica: file.file,
        entries: file.set.size,
        digest: file.set.digest(),
      },
      `${paintName(node.name)} holds ${file.file} (${file.set.size} entries, digest ${file.set.digest()}) at ${node.address}`,
    );
    if (metrics) log({ event: 'metrics', url: metrics.url }, `metrics at ${metrics.url}`);
    node.on((e) => this.describe(e, log, node.membership));

    const rl = readline.createInterface({ input: process.stdin, terminal: process.stdin.isTTY === true });
    if (process.stdin.isTTY) {
      rl.setPrompt('> ');
      rl.prompt();
    }
    rl.on('line', (line) => {
      if (line.length > 0) {
        if (!isEntryText(line)) {
          process.stderr.write(
            `${this.config.bin}: line over ${ENTRY_TEXT_BYTES_MAX} bytes (1 MiB and 2 KiB), not appended; split it\n`,
          );
        } else {
          try {
            const e = rp.append(line);
            log({ event: 'appended', id: entryId(e), lamport: e.lamport }, `appended ${entryId(e)}`);
          } catch (err) {
            process.stderr.write(`${this.config.bin}: ${(err as Error).message}\n`);
          }
        }
      }
      if (process.stdin.isTTY) rl.prompt();
    });
    const signal = await stopped;
    rl.close();
    await peer.stop();
    await metrics?.close();
    sink.flush(); // a rewrite that fails on a full disk is reported, not thrown
    file.close();
    log({ event: 'down', signal }, `left the group (${signal})`);
  }

  private describe(e: PeerEvent, log: EventLog, members: PeerNode['membership']): void {
    switch (e.kind) {
      case 'replica-append':
        if (e.via === 'local') return;
        if (e.via === 'repair') {
          // Repairs can be thousands of entries: one line per batch, the sync line sums them up.
          log(
            { event: 'repair', from: e.from, count: e.entries.length, ids: e.entries.map(entryId) },
            `${chalk.cyan('repair')} ${e.entries.length} entr${e.entries.length === 1 ? 'y' : 'ies'} from ${paintPeer(members, e.from)}`,
          );
          return;
        }
        for (const x of e.entries)
          log(
            entryFields('entry', x, e.via),
            // Quoted, and escaped rather than JSON: JSON leaves U+009B and bidi controls raw.
            `${chalk.green(e.via)} ${entryId(x)} "${escapeForTerminal(x.text)}"`,
          );
        return;
      case 'replica-replace':
        for (const x of e.entries)
          log(
            { event: 'replace', from: e.from, id: entryId(x), lamport: x.lamport, text: x.text },
            `${chalk.yellow('replace')} ${entryId(x)}: took the preferred of two versions (later Lamport time, then greater text)`,
          );
        return;
      case 'replica-sync':
        return logSync(log, e, members);
      case 'replica-rewrite':
        log(
          { event: 'rewrite', round: e.round, sha256: e.sha256, entries: e.entries },
          `${chalk.magenta('rewrite')} canonical order, ${e.entries} entries, sha256 ${e.sha256.slice(0, 16)}`,
        );
        return;
      case 'replica-conflict':
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

/** What a holder runs: replication, and reliable delivery for entries too large for a datagram. */
interface Holding {
  rp: Replication;
  large: ReliableDelivery;
}

function entryFields(event: string, e: Entry, via: string): Record<string, unknown> {
  return { event, via, id: entryId(e), lamport: e.lamport, text: e.text };
}

/** Every non-empty line of stdin (for `peer replicate -`). */
async function readStdinLines(): Promise<string[]> {
  if (process.stdin.isTTY)
    throw new UsageError(
      "'-' reads the lines to append from stdin; pipe them in (or run a holder to type them)",
    );
  const lines: string[] = [];
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) if (line !== '') lines.push(line);
  return lines;
}
