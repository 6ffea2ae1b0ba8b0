import readline from 'node:readline';
import { Args, Flags } from '@oclif/core';
import chalk from 'chalk';
import { PeerCommand } from '../cli/base.js';
import { networkFlags } from '../cli/flags.js';
import { networkSettings, startPeer, untilSignal } from '../cli/peer.js';
import { UsageError } from '../cli/network.js';
import { clockTime, paintName } from '../cli/output.js';
import { HOLDER_DISCOVERY_MS, dirFlag, fileSink, waitFor } from '../cli/replica.js';
import {
  Replication,
  acksSatisfied,
  envelopeOverhead,
  parseAckPolicy,
  type AckPolicy,
} from '../p2p/replication.js';
import {
  ENTRY_TEXT_JSON_BYTES_MAX,
  ReplicaError,
  ReplicaFile,
  entryId,
  isEntryText,
  type Entry,
} from '../storage/replica.js';
import type { PeerEvent } from '../p2p/protocol.js';

export const EXIT_NOT_CONFIRMED = 1;

export interface AppendResult {
  ok: boolean;
  id: string;
  origin: string;
  seq: number;
  lamport: number;
  acks: string;
  confirmed: string[];
  missing: string[];
}

export default class Replicate extends PeerCommand {
  static override summary = 'Keep a replica (no message), or append MESSAGE to every replica.';
  static override description = `Without MESSAGE: joins the group as a replica holder and keeps replicas/<name>.txt (--dir moves it), one entry per line. Entries appended anywhere arrive by multicast and are written durably (fsync) before they are acknowledged; holders repair each other in the background (anti-entropy), so a holder that was down or cut off catches up when it returns. Lines typed (or piped) on stdin are appended to the group.

With MESSAGE: appends it and exits 0 once --acks holders have written it durably, printing the entry's id; otherwise exits 1 naming the holders that did not confirm within --timeout.`;
  static override examples = [
    '<%= config.bin %> replicate --interface 127.0.0.1 --name h1',
    '<%= config.bin %> replicate "deploy 42 done" --interface 127.0.0.1 --acks all',
    '<%= config.bin %> replicate "hello" --acks majority --timeout 2000 --json',
    'tail -f app.log | <%= config.bin %> replicate --name h1',
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
  };

  async run(): Promise<AppendResult | void> {
    const { args, flags } = await this.parse(Replicate);
    try {
      if (args.message === undefined) return await this.hold(flags);
      const policy = parseAckPolicy(flags.acks);
      if (!policy)
        throw new UsageError(`--acks ${flags.acks} is not valid; use all, majority or a number >= 1`);
      if (!isEntryText(args.message))
        throw new UsageError(
          `the message is over ${ENTRY_TEXT_JSON_BYTES_MAX} bytes (as JSON); split it or shorten it`,
        );
      return await this.appendOnce(args.message, policy, flags);
    } catch (err) {
      if (err instanceof ReplicaError) this.error(err.message, { exit: 2 });
      throw err;
    }
  }

  private async appendOnce(
    text: string,
    policy: AckPolicy,
    flags: Parameters<typeof networkSettings>[0] & { acks: string; timeout: number },
  ): Promise<AppendResult> {
    const settings = networkSettings(flags, flags.name ?? 'replicate');
    let rp!: Replication;
    const peer = await startPeer(settings, {
      observer: true,
      install: (node) => {
        rp = node.install(
          (ctx, n) => new Replication(ctx, n.membership, { envelopeBytes: envelopeOverhead(settings.name) }),
        );
      },
    });
    const started = Date.now();
    try {
      // Holders answer the probe at once; listen a moment more so `all` counts every one of them.
      await waitFor(
        () => rp.liveHolders().length > 0 && Date.now() - started >= HOLDER_DISCOVERY_MS,
        flags.timeout,
      );
      if (rp.liveHolders().length === 0) {
        throw new UsageError(
          `no replica holder answered within ${flags.timeout} ms; start one with 'peer replicate' (no message), and check --interface, --group and --port`,
        );
      }
      const entry = rp.append(text);
      const id = entryId(entry);
      const status = () => rp.appendStatus(id)!;
      const ok = await waitFor(
        () => acksSatisfied(policy, status().acked.length, status().known),
        Math.max(0, flags.timeout - (Date.now() - started)),
      );
      const nameOf = (pid: string) => rp.holders().find((h) => h.id === pid)?.name ?? pid.slice(0, 8);
      const result: AppendResult = {
        ok,
        id,
        origin: entry.origin,
        seq: entry.seq,
        lamport: entry.lamport,
        acks: flags.acks,
        confirmed: status().acked.map(nameOf).sort(),
        missing: status()
          .missing.map((m) => m.name)
          .sort(),
      };
      if (ok) {
        if (!this.jsonEnabled())
          this.log(`${id} lamport ${entry.lamport}: confirmed by ${result.confirmed.join(', ')}`);
        return result;
      }
      if (this.jsonEnabled()) this.logJson(result);
      process.stderr.write(
        `${this.config.bin}: ${id} confirmed by ${result.confirmed.length} of ${status().known} holders within ${flags.timeout} ms (--acks ${flags.acks}); ${result.missing.length ? `no confirmation from: ${result.missing.join(', ')}` : `only ${status().known} holder(s) are known`}\n`,
      );
      return this.exit(EXIT_NOT_CONFIRMED);
    } finally {
      await peer.stop();
    }
  }

  private async hold(flags: Parameters<typeof networkSettings>[0] & { dir: string; 'log-format': string }) {
    const settings = networkSettings(flags);
    const json = flags['log-format'] === 'json';
    const log = (fields: Record<string, unknown>, text: string) =>
      this.log(
        json
          ? JSON.stringify({ at: new Date().toISOString(), ...fields })
          : `${clockTime(Date.now())} ${text}`,
      );
    const file = ReplicaFile.open(flags.dir, settings.name);
    if (file.rejected.length > 0) {
      process.stderr.write(
        `${this.config.bin}: ${file.rejected.length} line(s) of ${file.file} did not parse (first: line ${file.rejected[0]!.line}, ${file.rejected[0]!.reason}); kept aside in ${file.file.replace(/\.txt$/, '.rejected')}\n`,
      );
    }
    let rp!: Replication;
    const maxLamport = file.set.entries.reduce((m, e) => Math.max(m, e.lamport), 0);
    const peer = await startPeer(settings, {
      lamport: () => maxLamport,
      install: (node) => {
        rp = node.install(
          (ctx, n) =>
            new Replication(ctx, n.membership, {
              sink: fileSink(file),
              envelopeBytes: envelopeOverhead(settings.name),
            }),
        );
      },
    });
    const { node } = peer;
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
    node.on((e) => this.describe(e, log));

    const rl = readline.createInterface({ input: process.stdin, terminal: process.stdin.isTTY === true });
    if (process.stdin.isTTY) {
      rl.setPrompt('> ');
      rl.prompt();
    }
    rl.on('line', (line) => {
      if (line.length > 0) {
        if (!isEntryText(line)) {
          process.stderr.write(
            `${this.config.bin}: line over ${ENTRY_TEXT_JSON_BYTES_MAX} bytes, not appended\n`,
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
    const signal = await untilSignal();
    rl.close();
    await peer.stop();
    file.close();
    log({ event: 'down', signal }, `left the group (${signal})`);
  }

  private describe(e: PeerEvent, log: (f: Record<string, unknown>, t: string) => void): void {
    switch (e.kind) {
      case 'replica-append':
        if (e.via === 'local') return;
        for (const x of e.entries)
          log(
            entryFields('entry', x, e.via),
            `${chalk.green(e.via)} ${entryId(x)} ${JSON.stringify(x.text)}`,
          );
        return;
      case 'replica-sync':
        if (e.fetched + e.pushed === 0 && e.ok) return;
        log(
          { event: 'sync', peer: e.peer, fetched: e.fetched, pushed: e.pushed, ok: e.ok, reason: e.reason },
          `${e.ok ? chalk.cyan('sync') : chalk.yellow('sync')} with ${e.peer.slice(0, 8)}: fetched ${e.fetched}, pushed ${e.pushed}${e.ok ? '' : ` (${e.reason})`}`,
        );
        return;
      case 'replica-rewrite':
        log(
          { event: 'rewrite', round: e.round, sha256: e.sha256, entries: e.entries },
          `${chalk.magenta('rewrite')} canonical order, ${e.entries} entries, sha256 ${e.sha256.slice(0, 16)}`,
        );
        return;
      case 'replica-conflict':
        log(
          { event: 'conflict', peer: e.peer },
          `${chalk.red('conflict')} ${e.peer.slice(0, 8)} holds an entry with one of our ids but other text (hand-edited file?)`,
        );
        return;
      case 'join':
      case 'dead':
      case 'left':
        log({ event: e.kind, name: e.member.name, id: e.member.id }, `${e.kind} ${paintName(e.member.name)}`);
        return;
    }
  }
}

function entryFields(event: string, e: Entry, via: string): Record<string, unknown> {
  return { event, via, id: entryId(e), lamport: e.lamport, text: e.text };
}
