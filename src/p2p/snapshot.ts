/**
 * Consistent global snapshots (Chandy–Lamport 1985): each peer records its own state
 * and, for every incoming channel, the messages that were in flight when the cut passed it.
 *
 * Algorithm. A snapshot has an id. A peer records its state when it first hears of the id (a
 * request from the collector, or a marker), then sends a marker on each of its outgoing channels.
 * For each incoming channel it records every message that arrives after its own recording and
 * before that channel's marker; the marker closes the channel. Once every channel is closed, its
 * local snapshot is complete: state + in-flight messages per channel. The union of all local
 * snapshots is a consistent cut: every message is either in the sender's state as not yet sent,
 * in the receiver's state as received, or in exactly one channel's in-flight list.
 *
 * What a "channel" is over multicast. Chandy–Lamport needs FIFO channels; UDP multicast is not
 * FIFO. Our channel q -> p is q's reliable multicast stream (ReliableDelivery) as p delivers it:
 * reliable delivery delivers each sender's stream exactly once in sequence order, so it is FIFO.
 * The marker is itself a message in that stream (topic SNAPSHOT_MARKER_TOPIC), so it is ordered
 * with q's application messages, and q's ONE multicast marker closes q -> p at every p at once:
 * with n peers there are n(n-1) channels but only n markers. Unicast messages (sendTo) travel in
 * per-destination streams and are not part of the channels; a capability whose state moves by
 * unicast is not covered. A peer without a reliable stream sends its marker as a plain datagram
 * (sn.mk): it has no tracked channel traffic, so FIFO is moot for it.
 *
 * The collector (`peer snapshot`, an observer) records nothing, but when a peer counts it as a
 * member and sends it a marker it answers with its own marker like any process, so that peer's
 * channel from it closes (empty: a collector sends no application messages).
 *
 * Failure modes. A lost plain marker or a crashed sender leaves a channel open: after
 * SNAPSHOT_CHANNEL_TIMEOUT_MS the local snapshot is reported incomplete, naming the open
 * channels, never silently as complete. A peer that restarts mid-snapshot starts a new stream
 * (new epoch) and answers as a fresh participant. Reports are chunked under the datagram limit
 * and bounded (SNAPSHOT_REPORT_CHUNKS_MAX); in-flight lists beyond SNAPSHOT_INFLIGHT_IDS_MAX are
 * reported as counts only.
 */
import { is, isPeerId, isPeerName, type Check, type Envelope, type PeerId } from './wire.js';
import { MEMBERS_MAX } from './config.js';
import { f, message, messages, type Body } from './kit/message.js';
import type { MemberView, Protocol, ProtocolContext } from './protocol.js';
import type { Address } from './transport/transport.js';
import type { Delivery, ReliableDelivery } from './reliable/index.js';

export const SNAPSHOT_MARKER_TOPIC = 'snap.mk';
/** A local snapshot with a channel still open this long after recording is reported incomplete. */
export const SNAPSHOT_CHANNEL_TIMEOUT_MS = 3000;
/**
 * Plain (datagram) markers are repeated this often while a recording is younger than
 * SNAPSHOT_CHANNEL_TIMEOUT_MS: a lost one would leave a channel open, and a repeat is harmless
 * (a marker on a closed channel changes nothing; plain channels carry no tracked messages).
 */
export const SNAPSHOT_MARKER_RETRY_MS = 200;
/** The collector repeats its request this often until every live peer reported. */
export const SNAPSHOT_REQUEST_RETRY_MS = 300;
/**
 * Bytes of report JSON per datagram, sent as base64 (800 characters, no JSON escaping to grow it):
 * the largest `sn.rep` body then fits the datagram from a peer with the longest name
 * (test/unit/kit.test.ts checks it against bodyBytesMax).
 */
export const SNAPSHOT_REPORT_CHUNK_BYTES = 600;
const CHUNK_BASE64_CHARS = Math.ceil(SNAPSHOT_REPORT_CHUNK_BYTES / 3) * 4;
export const SNAPSHOT_REPORT_CHUNKS_MAX = 64;
/** Ids listed per channel in a report (the count is always exact). */
export const SNAPSHOT_INFLIGHT_IDS_MAX = 32;
/**
 * Addresses one snapshot's report is sent to. A collector asks from one address (a second one
 * rarely); anyone can send `sn.go` from many, and each would get up to SNAPSHOT_REPORT_CHUNKS_MAX
 * datagrams back: a bound on what one request can make a peer send, and on the set's memory.
 */
export const SNAPSHOT_REQUESTERS_MAX = 4;
/** Characters of one in-flight message id in a report (reliable delivery's keys are far shorter). */
export const SNAPSHOT_INFLIGHT_ID_CHARS_MAX = 120;
/** Snapshots a peer remembers (older ones are dropped). */
export const SNAPSHOTS_KEPT_MAX = 8;
const SNAPSHOT_ID_RE = /^[0-9a-z-]{1,40}$/;

export const isSnapshotId = (v: unknown): v is string => typeof v === 'string' && SNAPSHOT_ID_RE.test(v);

/** One message recorded in flight on a channel. */
export interface InFlight {
  id: string;
  topic: string;
  payload: string;
}

export interface LocalSnapshot {
  id: string;
  peer: PeerId;
  name: string;
  state: unknown;
  /** Lamport time when the state was recorded. */
  lamport: number;
  /** Messages in flight per incoming channel (by sender id), closed channels only. */
  channels: Record<PeerId, InFlight[]>;
  /** Channels still open (no marker yet). */
  open: PeerId[];
  complete: boolean;
}

interface Recording {
  id: string;
  state: unknown;
  lamport: number;
  recordedAt: number;
  channels: Map<PeerId, InFlight[]>;
  open: Set<PeerId>;
  /** Where to send the report, once complete or timed out. */
  requesters: Set<Address>;
  reported: boolean;
}

/**
 * The algorithm alone, over abstract FIFO channels: fed markers and messages in delivery order,
 * it records. No network, no time: the Snapshot protocol and the tests drive it.
 */
export class SnapshotCore {
  private readonly recordings = new Map<string, Recording>();

  constructor(
    private readonly self: PeerId,
    private readonly record: () => unknown,
    private readonly lamport: () => number,
    private readonly sendMarker: (id: string) => void,
  ) {}

  /** Records now (if not yet) with channels from `peers`; returns true if this call recorded. */
  begin(id: string, peers: readonly PeerId[], now: number): boolean {
    if (this.recordings.has(id)) return false;
    const r: Recording = {
      id,
      state: this.record(),
      lamport: this.lamport(),
      recordedAt: now,
      channels: new Map(),
      open: new Set(peers.filter((p) => p !== this.self)),
      requesters: new Set(),
      reported: false,
    };
    for (const p of r.open) r.channels.set(p, []);
    this.recordings.set(id, r);
    while (this.recordings.size > SNAPSHOTS_KEPT_MAX)
      this.recordings.delete(this.recordings.keys().next().value!);
    // Recording and the marker are one atomic step: nothing we send can fall between them.
    this.sendMarker(id);
    return true;
  }

  /** A marker from `from` on its channel: record first if this is news, then close the channel. */
  marker(id: string, from: PeerId, peers: readonly PeerId[], now: number): void {
    // First marker: the channel it came on is empty by definition (FIFO: nothing after it yet).
    if (this.begin(id, peers, now)) this.recordings.get(id)!.channels.set(from, []);
    const r = this.recordings.get(id)!;
    if (!r.channels.has(from)) r.channels.set(from, []); // a peer we did not know when recording
    r.open.delete(from);
  }

  /** An application message delivered on channel `from`: in flight for every recording with that channel open. */
  message(from: PeerId, m: InFlight): void {
    for (const r of this.recordings.values()) if (r.open.has(from)) r.channels.get(from)!.push(m);
  }

  has(id: string): boolean {
    return this.recordings.has(id);
  }

  recording(id: string): Recording | undefined {
    return this.recordings.get(id);
  }

  ids(): string[] {
    return [...this.recordings.keys()];
  }

  local(id: string, name: string): LocalSnapshot | null {
    const r = this.recordings.get(id);
    if (!r) return null;
    const channels: Record<PeerId, InFlight[]> = {};
    for (const [from, list] of r.channels) if (!r.open.has(from)) channels[from] = [...list];
    return {
      id,
      peer: this.self,
      name,
      state: r.state,
      lamport: r.lamport,
      channels,
      open: [...r.open],
      complete: r.open.size === 0,
    };
  }
}

/** A local snapshot as it travels: in-flight lists cut to ids, counts exact. */
export interface SnapshotReport {
  id: string;
  peer: PeerId;
  name: string;
  state: unknown;
  lamport: number;
  complete: boolean;
  open: PeerId[];
  channels: Record<PeerId, { count: number; ids: string[] }>;
}

/** Up to MEMBERS_MAX channels by sender id, each a count and its first ids. */
const isChannels: Check = (() => {
  const channel = is.object({
    count: is.uint(),
    ids: is.array(is.str(SNAPSHOT_INFLIGHT_ID_CHARS_MAX), SNAPSHOT_INFLIGHT_IDS_MAX),
  });
  return (v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
    const entries = Object.entries(v);
    return entries.length <= MEMBERS_MAX && entries.every(([from, ch]) => isPeerId(from) && channel(ch));
  };
})();

/**
 * A report as a collector reassembles it from the network: the shape toReport gives, with every
 * field bounded (the state is the peer's own JSON, bounded by the report's chunks).
 */
const isReport = is.object(
  {
    id: isSnapshotId,
    peer: is.peerId(),
    name: isPeerName,
    lamport: is.uint(),
    complete: is.bool(),
    open: is.array(is.peerId(), MEMBERS_MAX),
    channels: isChannels,
  },
  { state: () => true },
);

function isSnapshotReport(v: unknown): v is SnapshotReport {
  return isReport(v);
}

export function toReport(s: LocalSnapshot): SnapshotReport {
  const channels: SnapshotReport['channels'] = {};
  for (const [from, list] of Object.entries(s.channels))
    channels[from] = { count: list.length, ids: list.slice(0, SNAPSHOT_INFLIGHT_IDS_MAX).map((m) => m.id) };
  return {
    id: s.id,
    peer: s.peer,
    name: s.name,
    state: s.state,
    lamport: s.lamport,
    complete: s.complete,
    open: s.open,
    channels,
  };
}

export interface GlobalSnapshot {
  id: string;
  /** Peers that reported, in name order. */
  peers: SnapshotReport[];
  /** Live members that never reported. */
  missing: Array<{ id: PeerId; name: string }>;
  /** Every report complete and every live member reported. */
  complete: boolean;
  inFlight: number;
}

interface MembershipLike {
  live(): MemberView[];
}

export interface SnapshotOptions {
  /** The capability state to record (cheap, plain JSON, small: it travels in the report). */
  record: () => unknown;
  /** Reliable delivery to carry markers FIFO with the tracked topics; null: plain datagrams. */
  reliable?: ReliableDelivery | null;
  /** Reliable topics whose messages form the channels' contents. */
  topics?: readonly string[];
}

interface Collecting {
  id: string;
  startedAt: number;
  lastAsk: number;
  /** Reassembly: peer -> chunks. */
  parts: Map<PeerId, { n: number; got: Map<number, string> }>;
  reports: Map<PeerId, SnapshotReport>;
  expected: Map<PeerId, string>;
}

const REQUEST = message('sn.go', { id: f.guard(isSnapshotId) });
const MARKER = message('sn.mk', { id: f.guard(isSnapshotId) });
/** Chunk `chunk` of `chunks` of a report's JSON, as base64. */
export const REPORT = message('sn.rep', {
  id: f.guard(isSnapshotId),
  chunk: f.uint(SNAPSHOT_REPORT_CHUNKS_MAX - 1).wire('k'),
  chunks: f.int(1, SNAPSHOT_REPORT_CHUNKS_MAX).wire('n'),
  data: f.str(CHUNK_BASE64_CHARS).wire('d'),
});
const MESSAGES = messages(REQUEST, MARKER, REPORT);

/**
 * The protocol: answers requests and markers on every long-running peer (a participant), and
 * collects reports in `peer snapshot` (a collector, which records nothing itself).
 */
export class Snapshot implements Protocol {
  readonly messages = MESSAGES.checks;
  private readonly dispatch = MESSAGES.dispatch({
    'sn.go': ({ id }, from) => {
      this.stats.requests++;
      this.core.begin(id, this.peers(), this.ctx.now());
      const r = this.core.recording(id)!;
      if (r.requesters.size < SNAPSHOT_REQUESTERS_MAX) r.requesters.add(from.address);
      // A repeated request after we reported means our report was lost: send it again.
      if (r.reported && r.requesters.has(from.address)) this.report(id, from.address);
    },
    'sn.mk': ({ id }, from) => this.onMarker(id, from.id),
    'sn.rep': (b, from) => this.onReport(from.id, b),
  });
  readonly core: SnapshotCore;
  readonly stats = { requests: 0, markers: 0, reports: 0, badReports: 0 };
  private collecting: Collecting | null = null;
  private readonly plain: boolean;
  private markerSentAt = 0;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly membership: MembershipLike,
    private readonly opts: SnapshotOptions,
  ) {
    const reliable = opts.reliable ?? null;
    this.plain = reliable === null;
    this.core = new SnapshotCore(
      ctx.self.id,
      opts.record,
      () => ctx.lamport(),
      (id) => {
        if (reliable) reliable.publish(SNAPSHOT_MARKER_TOPIC, id);
        else ctx.broadcast(...MARKER.out({ id }));
      },
    );
    if (reliable) {
      reliable.on(SNAPSHOT_MARKER_TOPIC, (d) => {
        if (!isSnapshotId(d.payload)) return;
        this.onMarker(d.payload, d.from);
        this.ctx.wakeAt(this.ctx.now());
      });
      for (const t of opts.topics ?? [])
        reliable.on(t, (d: Delivery) =>
          this.core.message(d.from, { id: d.key, topic: d.topic, payload: d.payload }),
        );
    }
  }

  /** A request or marker starts a recording, which the ticks then drive. */
  onMessage(env: Envelope, from: Address): void {
    this.dispatch(env, from);
    this.ctx.wakeAt(this.ctx.now());
  }

  /** At the fixed cadence while a recording or a collection is under way; otherwise idle. */
  tick(now: number): number | void {
    this.step(now);
    return this.busy(now) ? undefined : Infinity;
  }

  private busy(now: number): boolean {
    if (this.collecting && !this.collected()) return true;
    for (const id of this.core.ids()) {
      const r = this.core.recording(id)!;
      if (this.plain && now - r.recordedAt < SNAPSHOT_CHANNEL_TIMEOUT_MS) return true;
      if (!r.reported && r.requesters.size > 0) return true;
    }
    return false;
  }

  private step(now: number): void {
    const resend = this.plain && now - this.markerSentAt >= SNAPSHOT_MARKER_RETRY_MS;
    if (resend) this.markerSentAt = now;
    for (const id of this.core.ids()) {
      const r = this.core.recording(id)!;
      if (resend && now - r.recordedAt < SNAPSHOT_CHANNEL_TIMEOUT_MS)
        this.ctx.broadcast(...MARKER.out({ id }));
      if (r.reported || r.requesters.size === 0) continue;
      if (r.open.size === 0 || now - r.recordedAt >= SNAPSHOT_CHANNEL_TIMEOUT_MS) {
        r.reported = true;
        for (const a of r.requesters) this.report(id, a);
      }
    }
    const c = this.collecting;
    if (c && now - c.lastAsk >= SNAPSHOT_REQUEST_RETRY_MS && !this.collected()) {
      c.lastAsk = now;
      for (const m of this.membership.live())
        if (!c.reports.has(m.id)) this.ctx.send(m.address, ...REQUEST.out({ id: c.id }));
    }
  }

  /** Collector: asks every live member for snapshot `id`. Poll `collected()` and `result()`. */
  request(id: string): void {
    if (!isSnapshotId(id)) throw new Error(`bad snapshot id '${id}'`);
    const now = this.ctx.now();
    this.collecting = {
      id,
      startedAt: now,
      lastAsk: now,
      parts: new Map(),
      reports: new Map(),
      expected: new Map(),
    };
    this.ctx.broadcast(...REQUEST.out({ id }));
    this.ctx.wakeAt(now);
  }

  /** Every live member has reported. */
  collected(): boolean {
    const c = this.collecting;
    if (!c) return false;
    const live = this.membership.live();
    return live.length > 0 && live.every((m) => c.reports.has(m.id));
  }

  result(): GlobalSnapshot | null {
    const c = this.collecting;
    if (!c) return null;
    const peers = [...c.reports.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const missing = this.membership
      .live()
      .filter((m) => !c.reports.has(m.id))
      .map((m) => ({ id: m.id, name: m.name }));
    const inFlight = peers.reduce(
      (s, p) => s + Object.values(p.channels).reduce((t, ch) => t + ch.count, 0),
      0,
    );
    return {
      id: c.id,
      peers,
      missing,
      complete: missing.length === 0 && peers.every((p) => p.complete),
      inFlight,
    };
  }

  private peers(): PeerId[] {
    return this.membership.live().map((m) => m.id);
  }

  private onMarker(id: string, from: PeerId): void {
    this.stats.markers++;
    this.core.marker(id, from, this.peers(), this.ctx.now());
  }

  private report(id: string, to: Address): void {
    const local = this.core.local(id, this.ctx.self.name);
    if (!local) return;
    let rep = toReport(local);
    let bytes = Buffer.from(JSON.stringify(rep));
    if (bytes.length > SNAPSHOT_REPORT_CHUNK_BYTES * SNAPSHOT_REPORT_CHUNKS_MAX) {
      // Too big to report whole: keep the counts (always exact), drop the state and the ids.
      const channels = Object.fromEntries(
        Object.entries(rep.channels).map(([k, v]) => [k, { count: v.count, ids: [] }]),
      );
      rep = { ...rep, state: { truncated: true }, channels };
      bytes = Buffer.from(JSON.stringify(rep));
    }
    const n = Math.ceil(bytes.length / SNAPSHOT_REPORT_CHUNK_BYTES);
    for (let k = 0; k < n; k++) {
      const data = bytes
        .subarray(k * SNAPSHOT_REPORT_CHUNK_BYTES, (k + 1) * SNAPSHOT_REPORT_CHUNK_BYTES)
        .toString('base64');
      this.ctx.send(to, ...REPORT.out({ id, chunk: k, chunks: n, data }));
    }
    this.stats.reports++;
  }

  private onReport(from: PeerId, b: Body<typeof REPORT>): void {
    const c = this.collecting;
    if (!c || b.id !== c.id || c.reports.has(from)) return;
    // The codec bounded the counts and the data; the chunk must also fall inside the count.
    if (b.chunk >= b.chunks) {
      this.stats.badReports++;
      return;
    }
    const p = c.parts.get(from) ?? { n: b.chunks, got: new Map<number, string>() };
    if (p.n !== b.chunks) return;
    p.got.set(b.chunk, b.data);
    c.parts.set(from, p);
    if (p.got.size < p.n) return;
    const chunks: Buffer[] = [];
    for (let k = 0; k < p.n; k++) chunks.push(Buffer.from(p.got.get(k)!, 'base64'));
    c.parts.delete(from);
    let rep: unknown;
    try {
      rep = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      rep = null;
    }
    if (isSnapshotReport(rep) && rep.peer === from && rep.id === c.id) c.reports.set(from, rep);
    else this.stats.badReports++;
  }
}
