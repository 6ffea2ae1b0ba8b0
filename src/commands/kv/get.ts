import { Args } from '@oclif/core';
import { GroupError, PeerCommand } from '../../cli/base.js';
import { networkFlags } from '../../cli/flags.js';
import { networkSettings } from '../../cli/peer.js';
import { UsageError } from '../../cli/network.js';
import { EXIT_NOT_FOUND, KvClient, policyFlag, readFlags, type ReadResult } from '../../cli/kv.js';
import { keyProblem } from '../../p2p/kv/index.js';
import { escapeForTerminal } from '../../cli/sanitize.js';
import { showingWait } from '../../cli/progress.js';

export default class KvGet extends PeerCommand {
  static override summary = 'Print the value of KEY.';
  static override description =
    'Asks every kv holder and waits until --read of them answered (default: a majority); prints the newest value among the answers (last writer wins). With --read majority after a write with --acks majority (or any read after --acks all), the read returns that write or a later one. Exits 0 with the value, 3 if the key does not exist (or was deleted), 1 if too few holders answered within --timeout, 2 on bad input. Control characters, escape sequences, CR/LF/TAB and bidi characters in the value are printed as visible escapes (\\x1b, \\n, \\u202e), so a value cannot drive the terminal; --json prints the exact value.';
  static override examples = [
    '<%= config.bin %> kv get color --interface 127.0.0.1',
    '<%= config.bin %> kv get color --read all --json',
  ];
  static override enableJsonFlag = true;
  static override args = { key: Args.string({ description: 'The key.', required: true }) };
  static override flags = { ...networkFlags, ...readFlags };

  async run(): Promise<ReadResult> {
    const { args, flags } = await this.parse(KvGet);
    const policy = policyFlag('read', flags.read);
    const problem = keyProblem(args.key);
    if (problem) throw new UsageError(problem);
    const client = await showingWait(
      'looking for kv holders',
      KvClient.start(networkSettings(flags, flags.name ?? 'kv'), flags.timeout, true),
      { json: this.jsonEnabled() },
    );
    try {
      const r = await showingWait(
        'waiting for kv holders to answer',
        client.read(args.key, policy, flags.timeout),
        { json: this.jsonEnabled() },
      );
      if (!r.ok)
        throw new GroupError(
          `${r.answered.length} of ${r.known} holders answered within ${flags.timeout} ms (--read ${flags.read})${r.answered.length ? `: ${r.answered.join(', ')}` : ''}; start the others ('peer kv serve') or read again with a longer --timeout`,
          { ...r },
        );
      if (!r.found) {
        process.stderr.write(`${this.config.bin}: ${args.key}: not found${r.version ? ' (deleted)' : ''}\n`);
        process.exitCode = EXIT_NOT_FOUND;
        // A value is any text a writer chose: escaped for a person, exact with --json.
      } else if (!this.jsonEnabled()) this.log(escapeForTerminal(r.value!));
      return r;
    } finally {
      await client.stop();
    }
  }
}
