import { Args, Flags } from '@oclif/core';
import { GroupError, PeerCommand } from '../cli/base.js';
import { networkFlags } from '../cli/flags.js';
import { networkSettings, startPeer, type NetworkSettings } from '../cli/peer.js';
import {
  relayed,
  relayKey,
  type QueryOutcome as RelayedOutcome,
  type QueryRequest,
  type RelayedAnswer,
} from '../cli/agent-relay.js';
import { UsageError } from '../cli/network.js';
import { escapeForTerminal } from '../cli/sanitize.js';
import { durationMs } from '../cli/run/duration.js';
import { paintName } from '../cli/output.js';
import { showingWait } from '../cli/progress.js';
import { discoverAgents, installClient, readStdinBounded } from '../cli/events.js';
import {
  checkNameAndPayload,
  EVENT_PAYLOAD_BYTES_MAX,
  EventsError,
  parseTagArgs,
  QUERY_ANSWER_BYTES_MAX,
  QUERY_NODES_MAX,
  QUERY_TIMEOUT_MS_MAX,
  type Answer,
  type QuerySpec,
  type QueryResult,
} from '../p2p/events/index.js';

export interface QueryAnswer {
  from: string;
  /** The handler's output as text; null: the peer has no handler for this query. */
  answer: string | null;
  /** The output was longer than QUERY_ANSWER_BYTES_MAX and was cut there. */
  truncated: boolean;
}

export interface QueryOutcome {
  name: string;
  answers: QueryAnswer[];
  /** Matching peers that did not answer within --timeout. */
  silent: string[];
}

export default class Query extends PeerCommand {
  static override summary = 'Ask every matching peer a question; print their answers.';
  static override description = `Every peer started with peer up that matches --tag and --node runs its query and query:NAME handlers with the payload on stdin, and answers with what the handler printed (up to ${QUERY_ANSWER_BYTES_MAX} bytes); a peer with no handler for NAME answers at once, with no answer. Answers are printed as they come; at the end, the peers that did not answer. Exits 0 when every matching peer answered within --timeout, 1 when some did not or none matches, 2 for bad input (docs/events.md).

NAME: 1-64 letters, digits or _ . : -. PAYLOAD: up to ${EVENT_PAYLOAD_BYTES_MAX} bytes; '-' reads it from stdin.`;
  static override examples = [
    '<%= config.bin %> query load --interface 127.0.0.1',
    '<%= config.bin %> query disk-free /var --tag role=db --timeout 2s',
    '<%= config.bin %> query version --node alice --node bob --json',
  ];
  static override enableJsonFlag = true;
  static override args = {
    name: Args.string({
      description: 'The query name (what handlers filter on: query:NAME).',
      required: true,
    }),
    payload: Args.string({ description: "The payload; '-' reads it from stdin. Default: none." }),
  };
  static override flags = {
    ...networkFlags,
    tag: Flags.string({
      summary: 'Ask only peers with this tag, KEY=VALUE (repeatable: all of them).',
      multiple: true,
      multipleNonGreedy: true,
    }),
    node: Flags.string({
      summary: `Ask only the peer of this name (repeatable, up to ${QUERY_NODES_MAX}).`,
      multiple: true,
      multipleNonGreedy: true,
    }),
    timeout: Flags.string({ summary: 'How long to wait for answers (500ms, 5s, 1m).', default: '5s' }),
  };

  async run(): Promise<QueryOutcome> {
    const { args, flags } = await this.parse(Query);
    const timeoutMs = durationMs('--timeout', flags.timeout, 1, QUERY_TIMEOUT_MS_MAX);
    const filter = parseTagArgs(flags.tag ?? []);
    if ('problem' in filter) throw new UsageError(`--tag: ${filter.problem}`);
    const nodes = flags.node ?? [];
    if (nodes.length > QUERY_NODES_MAX)
      throw new UsageError(`--node given ${nodes.length} times: at most ${QUERY_NODES_MAX}`);
    const payload =
      args.payload === '-'
        ? await readStdinBounded(EVENT_PAYLOAD_BYTES_MAX, 'the payload')
        : Buffer.from(args.payload ?? '');
    try {
      checkNameAndPayload('query', args.name, payload);
    } catch (err) {
      throw err instanceof EventsError ? new UsageError(err.message) : err;
    }
    const settings = networkSettings(flags, flags.name ?? 'query');
    const request: QueryRequest = {
      op: 'query',
      group: `${settings.group}:${settings.port}`,
      key: relayKey(settings.keys),
      name: args.name,
      payload: payload.toString('base64'),
      timeoutMs,
      tags: filter.tags,
      nodes,
    };
    // A `peer up` of the group on this host with this data dir asks at once; else we join.
    const result =
      ((await relayed(settings.dataDir, request, (a) => this.show(a))) as RelayedOutcome | null) ??
      (await this.oneShot(settings, { name: args.name, payload, timeoutMs, tags: filter.tags, nodes }));
    const outcome: QueryOutcome = {
      name: args.name,
      answers: result.answers.map((a) => ({
        from: a.from,
        answer: a.data?.toString('utf8') ?? null,
        truncated: a.truncated,
      })),
      silent: result.silent,
    };
    if (result.answers.length === 0 && result.silent.length === 0)
      throw new GroupError(
        `no peer matches query ${args.name}${flags.tag || flags.node ? ' (--tag, --node)' : ''}; check peer peers`,
        { ...outcome },
      );
    if (outcome.silent.length > 0)
      throw new GroupError(
        `${outcome.silent.length} of ${outcome.silent.length + outcome.answers.length} peers did not answer within ${flags.timeout}: ${outcome.silent.join(', ')}`,
        { ...outcome },
      );
    if (!this.jsonEnabled()) this.log(`${outcome.answers.length} answered, none silent`);
    return outcome;
  }

  /** Joins the group for this run, finds the agents, asks and collects their answers. */
  private async oneShot(settings: NetworkSettings, spec: QuerySpec): Promise<RelayedOutcome> {
    const peer = await startPeer(settings, { transient: true, install: (n) => installClient(n) });
    try {
      const events = peer.installed;
      await showingWait('looking for peers that run handlers', discoverAgents(events, peer.node), {
        json: this.jsonEnabled(),
      });
      const result = await new Promise<QueryResult>((resolve) => {
        events.query(spec, (a) => this.show(relayedAnswer(a)), resolve);
      });
      return { answers: result.answers.map(relayedAnswer), silent: result.silent.map((m) => m.name) };
    } finally {
      await peer.stop();
    }
  }

  /** One answer as it comes: the peer's name, then its output (escaped), indented under it when longer than a line. */
  private show(a: RelayedAnswer): void {
    if (this.jsonEnabled()) return;
    const name = paintName(a.from);
    if (a.data === null) return this.log(`${name}: (no handler)`);
    // Each line escaped on its own: a line of the answer can never pass for a line of ours.
    const lines = a.data.toString('utf8').replace(/\n$/, '').split('\n').map(escapeForTerminal);
    const cut = a.truncated ? ` [cut at ${QUERY_ANSWER_BYTES_MAX} bytes]` : '';
    this.log(lines.length > 1 ? `${name}:${cut}\n  ${lines.join('\n  ')}` : `${name}: ${lines[0]}${cut}`);
  }
}

function relayedAnswer(a: Answer): RelayedAnswer {
  return { from: a.from.name, data: a.data, truncated: a.truncated };
}
