import { Flags } from '@oclif/core';
import { GroupError, PeerCommand } from '../../cli/base.js';
import { networkFlags } from '../../cli/flags.js';
import { networkSettings } from '../../cli/peer.js';
import { table } from '../../cli/output.js';
import { escapeForTerminal } from '../../cli/sanitize.js';
import { showingWait } from '../../cli/progress.js';
import { KvClient } from '../../cli/kv.js';
import type { KvVersion } from '../../p2p/kv/index.js';

export interface DumpResult {
  holder: string;
  keys: number;
  /** Live keys and their values. */
  entries: Record<string, string>;
  /** Every row with its version; with --tombstones, deleted keys too (value null). */
  rows: KvVersion[];
}

export default class KvDump extends PeerCommand {
  static override summary = 'Print every key and value held by one kv holder.';
  static override description =
    "Pages through one live holder's table (the first by name, or --from NAME). Holders converge to the same table, so any one will do once writes have settled; `peer kv bench` compares them all.";
  static override examples = [
    '<%= config.bin %> kv dump --interface 127.0.0.1',
    '<%= config.bin %> kv dump --json --from h2',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...networkFlags,
    from: Flags.string({ summary: 'Name of the holder to dump (default: the first live one by name).' }),
    tombstones: Flags.boolean({ summary: 'Also list deleted keys (their tombstones).', default: false }),
    timeout: Flags.integer({ summary: 'How long to wait for the holder, in ms.', default: 5_000, min: 1 }),
  };

  async run(): Promise<DumpResult> {
    const { flags } = await this.parse(KvDump);
    const client = await showingWait(
      'looking for kv holders',
      KvClient.start(networkSettings(flags, flags.name ?? 'kv'), flags.timeout, true),
      { json: this.jsonEnabled() },
    );
    try {
      const live = client.kv.liveHolders().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const h = flags.from === undefined ? live[0] : live.find((x) => x.name === flags.from);
      if (!h)
        throw new GroupError(
          `no live kv holder named '${flags.from}'; pass one of the live holders with --from: ${live.map((x) => x.name).join(', ')}`,
        );
      const all = await showingWait(`waiting for ${h.name}'s table`, client.dump(h, flags.timeout), {
        json: this.jsonEnabled(),
      });
      const rows = flags.tombstones ? all : all.filter((v) => v.value !== null);
      // No prototype: a key named __proto__ must be an ordinary entry.
      const entries = Object.create(null) as Record<string, string>;
      for (const v of all) if (v.value !== null) entries[v.key] = v.value;
      if (!this.jsonEnabled()) {
        if (rows.length > 0)
          this.log(
            table(
              ['KEY', 'VALUE', 'LAMPORT', 'WRITER'],
              rows.map((v) => [
                escapeForTerminal(v.key),
                // Quoted so that spaces show; escaped, not JSON: JSON leaves U+009B and bidi controls raw.
                v.value === null ? '(deleted)' : `"${escapeForTerminal(v.value)}"`,
                String(v.lamport),
                `${v.origin.slice(0, 8)}:${v.seq}`,
              ]),
            ),
          );
        process.stderr.write(`${Object.keys(entries).length} key(s) from ${escapeForTerminal(h.name)}\n`);
      }
      return { holder: h.name, keys: Object.keys(entries).length, entries, rows };
    } finally {
      await client.stop();
    }
  }
}
