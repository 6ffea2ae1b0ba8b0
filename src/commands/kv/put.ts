import { Args } from '@oclif/core';
import { GroupError, PeerCommand } from '../../cli/base.js';
import { networkFlags } from '../../cli/flags.js';
import { networkSettings } from '../../cli/peer.js';
import { UsageError } from '../../cli/network.js';
import { escapeForTerminal } from '../../cli/sanitize.js';
import { showingWait } from '../../cli/progress.js';
import { KvClient, policyFlag, writeFlags, type WriteResult } from '../../cli/kv.js';
import { opProblem, type KvOp } from '../../p2p/kv/index.js';

export default class KvPut extends PeerCommand {
  static override summary = 'Set KEY to VALUE in the replicated key-value store.';
  static override description =
    'Writes and exits 0 once --acks holders committed the write durably, printing its id and Lamport time; exits 1 naming the holders that did not confirm within --timeout, 2 on bad input. Keys: 1-128 bytes, printable, no whitespace. Values: up to 512 bytes.';
  static override examples = [
    '<%= config.bin %> kv put color blue --interface 127.0.0.1',
    '<%= config.bin %> kv put greeting "hello world" --acks majority --json',
  ];
  static override enableJsonFlag = true;
  static override args = {
    key: Args.string({ description: 'The key.', required: true }),
    value: Args.string({ description: 'The value.', required: true }),
  };
  static override flags = { ...networkFlags, ...writeFlags };

  async run(): Promise<WriteResult> {
    const { args, flags } = await this.parse(KvPut);
    return writeCommand(this, { kind: 'put', key: args.key, value: args.value }, flags);
  }
}

/** Shared by put and delete: validate, write, report. */
export async function writeCommand(
  cmd: PeerCommand & { log(s: string): void },
  op: KvOp,
  flags: Parameters<typeof networkSettings>[0] & { acks: string; timeout: number },
): Promise<WriteResult> {
  const policy = policyFlag('acks', flags.acks);
  const problem = opProblem(op);
  if (problem) throw new UsageError(`${problem}`);
  const client = await showingWait(
    'looking for kv holders',
    KvClient.start(networkSettings(flags, flags.name ?? 'kv'), flags.timeout),
    { json: cmd.jsonEnabled() },
  );
  try {
    const r = await showingWait(
      'waiting for kv holders to confirm',
      client.write(op, policy, flags.acks, flags.timeout),
      { json: cmd.jsonEnabled() },
    );
    if (r.ok) {
      if (!cmd.jsonEnabled())
        cmd.log(
          `${r.op === 'put' ? 'OK' : 'DELETED'} ${r.id} lamport ${r.lamport}: confirmed by ${escapeForTerminal(r.confirmed.join(', '))}`,
        );
      return r;
    }
    const known = r.confirmed.length + r.missing.length;
    throw new GroupError(
      r.refused.length > 0
        ? `${r.id} could not be stored by ${r.refused.join(', ')} (--acks ${flags.acks}); free space there (or fix the disk) and write again`
        : `${r.id} confirmed by ${r.confirmed.length} of ${known} holders within ${flags.timeout} ms (--acks ${flags.acks}); ${r.missing.length ? `no confirmation from: ${r.missing.join(', ')}; check that they run, then write again` : `only ${known} holder(s) are known; start more ('peer kv serve') or lower --acks`}`,
      { ...r },
    );
  } finally {
    await client.stop();
  }
}
