import { Args } from '@oclif/core';
import { GroupError, PeerCommand } from '../../cli/base.js';
import { networkFlags } from '../../cli/flags.js';
import { networkSettings } from '../../cli/peer.js';
import { UsageError } from '../../cli/network.js';
import { escapeForTerminal } from '../../cli/sanitize.js';
import { showingWait } from '../../cli/progress.js';
import { KvClient, opFitsDatagram, policyFlag, writeFlags, type WriteResult } from '../../cli/kv.js';
import { KV_VALUE_BYTES_MAX, opProblem, type KvOp } from '../../p2p/kv/index.js';

export default class KvPut extends PeerCommand {
  static override summary = 'Set KEY to VALUE in the replicated key-value store.';
  static override description =
    "Writes and exits 0 once --acks holders committed the write durably, printing its id and Lamport time; exits 1 naming the holders that did not confirm within --timeout, 2 on bad input. Keys: 1-1024 bytes (1 KiB), printable, no whitespace. Values: UTF-8 text up to 1 MiB (1048576 bytes); VALUE '-' reads the value from stdin, exactly as piped (a trailing newline included). A value too large for one datagram travels to each holder as a reliable message, and the command joins the group for its run to send it.";
  static override examples = [
    '<%= config.bin %> kv put color blue --interface 127.0.0.1',
    '<%= config.bin %> kv put greeting "hello world" --acks majority --json',
    '<%= config.bin %> kv put app.config - < app.conf',
  ];
  static override enableJsonFlag = true;
  static override args = {
    key: Args.string({ description: 'The key.', required: true }),
    value: Args.string({ description: "The value, or '-' to read it from stdin.", required: true }),
  };
  static override flags = { ...networkFlags, ...writeFlags };

  async run(): Promise<WriteResult> {
    const { args, flags } = await this.parse(KvPut);
    const value = args.value === '-' ? await readStdinValue() : args.value;
    return writeCommand(this, { kind: 'put', key: args.key, value }, flags);
  }
}

/**
 * The whole of stdin as one value: UTF-8 text, at most KV_VALUE_BYTES_MAX bytes (reading stops
 * past it, so a huge pipe is refused without being held).
 */
async function readStdinValue(): Promise<string> {
  if (process.stdin.isTTY)
    throw new UsageError("'-' reads the value from stdin; pipe it in (peer kv put KEY - < FILE)");
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    bytes += chunk.length;
    if (bytes > KV_VALUE_BYTES_MAX) {
      process.stdin.destroy();
      throw new UsageError(
        `the value on stdin is over ${KV_VALUE_BYTES_MAX} bytes (1 MiB); store a larger one in parts under several keys`,
      );
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new UsageError(
      'the value on stdin is not UTF-8 text; encode binary data first (base64 -w0 FILE | peer kv put KEY -)',
    );
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
  const settings = networkSettings(flags, flags.name ?? 'kv');
  const client = await showingWait(
    'looking for kv holders',
    KvClient.start(settings, flags.timeout, !opFitsDatagram(op, settings.name)),
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
