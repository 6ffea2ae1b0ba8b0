import { Args, Flags } from '@oclif/core';
import { GroupError, PeerCommand } from '../cli/base.js';
import { networkFlags } from '../cli/flags.js';
import { networkSettings, startPeer, type NetworkSettings } from '../cli/peer.js';
import { relayed, relayKey, type EventOutcome, type EventRequest } from '../cli/agent-relay.js';
import { UsageError } from '../cli/network.js';
import { showingWait } from '../cli/progress.js';
import { escapeForTerminal } from '../cli/sanitize.js';
import { durationMs } from '../cli/run/duration.js';
import { discoverAgents, installClient, readStdinBounded } from '../cli/events.js';
import {
  checkNameAndPayload,
  EVENT_PAYLOAD_BYTES_MAX,
  EventsError,
  type Published,
} from '../p2p/events/index.js';
import type { AckStatus } from '../p2p/reliable/index.js';

/** The longest `--timeout` of `peer event`, in ms. */
export const EVENT_ACK_TIMEOUT_MS_MAX = 600_000;

export interface EventResult {
  name: string;
  lamport: number;
  coalesce: boolean;
  /** Agents that hold it (in their journals, for their handlers). */
  acked: string[];
  /** Agents that did not acknowledge it in time, or left meanwhile. */
  missing: string[];
}

export default class Event extends PeerCommand {
  static override summary = 'Send a user event to the handlers of every peer in the group.';
  static override description = `Every peer started with peer up gets the event once and runs its user and user:NAME handlers with the payload on stdin (docs/events.md). Exits 0 once every one of them acknowledged it (it is saved there, to run its handlers even after a crash), 1 when some did not within --timeout (they are named) or no peer runs handlers, 2 for bad input. With --coalesce, peers that get several events of this name close together run their handlers for the latest only.

NAME: 1-64 letters, digits or _ . : -. PAYLOAD: up to ${EVENT_PAYLOAD_BYTES_MAX} bytes; '-' reads it from stdin. In an open group anyone on the LAN can send any event: use --key-file.`;
  static override examples = [
    '<%= config.bin %> event deploy v42 --interface 127.0.0.1',
    'git rev-parse HEAD | <%= config.bin %> event deploy - --coalesce',
    '<%= config.bin %> event restart-cache --json',
  ];
  static override enableJsonFlag = true;
  static override args = {
    name: Args.string({
      description: 'The event name (what handlers filter on: user:NAME).',
      required: true,
    }),
    payload: Args.string({ description: "The payload; '-' reads it from stdin. Default: none." }),
  };
  static override flags = {
    ...networkFlags,
    coalesce: Flags.boolean({
      summary: 'Peers run handlers for only the latest event of this name sent close together.',
      default: false,
    }),
    timeout: Flags.string({
      summary: 'How long to wait for every peer to acknowledge the event (500ms, 5s, 1m).',
      default: '5s',
    }),
  };

  async run(): Promise<EventResult> {
    const { args, flags } = await this.parse(Event);
    const timeoutMs = durationMs('--timeout', flags.timeout, 1, EVENT_ACK_TIMEOUT_MS_MAX);
    const payload =
      args.payload === '-'
        ? await readStdinBounded(EVENT_PAYLOAD_BYTES_MAX, 'the payload')
        : Buffer.from(args.payload ?? '');
    try {
      checkNameAndPayload('event', args.name, payload);
    } catch (err) {
      throw err instanceof EventsError ? new UsageError(err.message) : err;
    }
    const settings = networkSettings(flags, flags.name ?? 'event');
    const request: EventRequest = {
      op: 'event',
      group: `${settings.group}:${settings.port}`,
      key: relayKey(settings.keys),
      name: args.name,
      payload: payload.toString('base64'),
      coalesce: flags.coalesce,
      timeoutMs,
    };
    // A `peer up` of the group on this host with this data dir sends it at once; else we join.
    const outcome =
      ((await showingWait('waiting for the peers to acknowledge', relayed(settings.dataDir, request), {
        json: this.jsonEnabled(),
      })) as EventOutcome | null) ??
      (await this.oneShot(settings, args.name, payload, flags.coalesce, timeoutMs));
    const { lamport, acked, missing } = outcome;
    const result: EventResult = { name: args.name, lamport, coalesce: flags.coalesce, acked, missing };
    if (outcome.complete && missing.length === 0) {
      if (!this.jsonEnabled())
        this.log(
          `event ${args.name} (Lamport time ${lamport}) acknowledged by ${acked.map(escapeForTerminal).join(', ')}`,
        );
      return result;
    }
    throw new GroupError(
      acked.length === 0
        ? `no peer acknowledged event ${args.name} within ${flags.timeout}; check that they run (peer peers) and send it again`
        : `event ${args.name} acknowledged by ${acked.length} of ${acked.length + missing.length} peers within ${flags.timeout}; not by ${missing.map(escapeForTerminal).join(', ')}: check that they run`,
      { ...result },
    );
  }

  /** Joins the group for this run, finds the agents, sends and waits for their acks. */
  private async oneShot(
    settings: NetworkSettings,
    name: string,
    payload: Buffer,
    coalesce: boolean,
    timeoutMs: number,
  ): Promise<EventOutcome> {
    const peer = await startPeer(settings, { transient: true, install: (n) => installClient(n) });
    try {
      const events = peer.installed;
      const agents = await showingWait(
        'looking for peers that run handlers',
        discoverAgents(events, peer.node),
        {
          json: this.jsonEnabled(),
        },
      );
      if (agents.length === 0)
        throw new GroupError('no peer in the group runs handlers (peer up); the event was not sent', {
          name,
        });
      let published: Published | undefined;
      const settled = await showingWait(
        'waiting for the peers to acknowledge',
        new Promise<AckStatus | null>((resolve) => {
          const timer = setTimeout(() => resolve(null), timeoutMs);
          published = events.publish(name, payload, coalesce, (s) => {
            clearTimeout(timer);
            resolve(s);
          });
        }),
        { json: this.jsonEnabled() },
      );
      // Timed out: who acked so far (an agent whose disk refused the event never does).
      const status = settled ?? published!.status() ?? null;
      const nameOf = (id: string) => peer.node.membership.get(id)?.name ?? id.slice(0, 8);
      const acked = (status?.acked ?? []).map(nameOf);
      const missing = status
        ? [...status.pending, ...status.gone, ...status.refused.map((r) => r.peer)].map(nameOf)
        : agents.map((a) => a.name).filter((n) => !acked.includes(n));
      return { lamport: published!.lamport, acked, missing, complete: status?.complete ?? false };
    } finally {
      await peer.stop();
    }
  }
}
