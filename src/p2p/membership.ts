/**
 * Membership: who is in the group, and who has failed.
 *
 * Algorithm. On a LAN every peer hears every other peer's multicast heartbeats directly, so each
 * peer keeps its own view by timers (no dissemination of deaths, which would let one peer with a
 * bad link talk the others into false deaths). Any datagram from a member counts as a heartbeat.
 *   alive --(silent > suspectAfterMs)--> suspect --(silent > deadAfterMs)--> dead
 * The suspicion stage is SWIM's (Das et al. 2002) with Lifeguard's refutation: the suspecting peer
 * multicasts `suspect {target, inc}` and pings the target by unicast (another path than the
 * group). A live target that hears it raises its incarnation and multicasts a heartbeat at once;
 * a heartbeat with a higher incarnation clears the suspicion everywhere.
 * A graceful leave is multicast LEAVE_COPIES times, so one lost datagram does not turn a leave
 * into a 1-second death.
 *
 * A newcomer multicasts `probe`, and members answer at once by unicast, so one-shot commands
 * learn the group in a round trip instead of a heartbeat interval. An observer (peer peers)
 * probes and listens but never heartbeats, so it never appears as a member.
 *
 * Failure modes: a peer cut off sees everyone dead and is seen dead; when the link heals,
 * heartbeats flow again and both sides mark each other alive. Memory is bounded by membersMax:
 * dead and left entries are evicted first, then newcomers are refused and counted.
 */
import { is, type Envelope, type PeerId } from './wire.js';
import type { MemberState, MemberView, Protocol, ProtocolContext } from './protocol.js';
import type { Address } from './transport/transport.js';

export interface MembershipTimings {
  /** How often a member multicasts its heartbeat. Bytes/s per peer scale with 1/this. */
  heartbeatIntervalMs: number;
  /** Silence after which a member is suspected. Several heartbeats must be lost in a row. */
  suspectAfterMs: number;
  /** Silence after which a member is dead. Crash detection takes deadAfterMs - heartbeat..deadAfterMs. */
  deadAfterMs: number;
  /** How often a suspect is pinged by unicast while suspected. */
  pingIntervalMs: number;
  /** How long dead and left members stay listed before they are forgotten. */
  deadRetentionMs: number;
}

export const TAGS_KEYS_MAX = 16;
export const TAG_KEY_CHARS_MAX = 24;
export const TAG_VALUE_CHARS_MAX = 64;
export const LEAVE_COPIES = 3;

export type Tags = Record<string, string | number | boolean>;

interface Member {
  id: PeerId;
  name: string;
  address: Address;
  incarnation: number;
  state: MemberState;
  lastSeen: number;
  stateSince: number;
  lastPing: number;
  tags: Tags;
}

export interface MembershipOptions {
  timings: MembershipTimings;
  /** Listen and probe, never heartbeat: not a member of the group. */
  observer: boolean;
  membersMax: number;
  /** Raises the node's incarnation to at least `min` (persisted by the node); returns it. */
  raiseIncarnation(min: number): number;
}

const HB = is.object({ g: is.tags(TAGS_KEYS_MAX, TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX) });
const EMPTY = is.object({});
const SUSPECT = is.object({ target: is.peerId(), inc: is.uint() });

export class Membership implements Protocol {
  readonly messages = { hb: HB, probe: EMPTY, ping: EMPTY, suspect: SUSPECT, leave: EMPTY };
  /** Newcomers refused because membersMax was reached with no dead entry to evict. */
  refused = 0;
  private readonly members = new Map<PeerId, Member>();
  private tags: Tags = {};
  private lastHeartbeat = -Infinity;

  constructor(
    private readonly ctx: ProtocolContext,
    private readonly opts: MembershipOptions,
  ) {}

  /** Announces this peer: a probe (members answer at once) and, for a member, a heartbeat. */
  start(): void {
    this.ctx.broadcast('probe', {});
    if (!this.opts.observer) this.heartbeat();
  }

  /** Tags ride on every heartbeat (Serf's tags): role, priority, load. A change is sent at once. */
  setTags(tags: Tags): void {
    this.tags = { ...tags };
    if (!this.opts.observer) this.heartbeat();
  }

  get ownTags(): Tags {
    return this.tags;
  }

  /** Every valid datagram from another peer is evidence that it is alive. */
  observe(env: Envelope, from: Address): void {
    const m = this.members.get(env.i);
    if (!m) {
      if (env.t === 'hb') this.add(env, from);
      return;
    }
    if (env.c < m.incarnation) return; // from before a restart or a refutation: stale
    const now = this.ctx.now();
    if (env.t === 'leave') return; // handled in onMessage, must not revive
    const wasIncarnation = m.incarnation;
    const before = m.state;
    if (before === 'left' && env.c === m.incarnation) return; // late datagrams after a leave
    m.lastSeen = now;
    m.incarnation = env.c;
    if (env.t === 'hb') m.tags = (env.b as { g: Tags }).g;
    const moved = m.address !== from;
    m.address = from;
    if (env.c > wasIncarnation && moved) {
      this.setState(m, 'alive', now);
      this.ctx.emit({ kind: 'restart', member: this.view(m), previousIncarnation: wasIncarnation });
    } else if (before !== 'alive') {
      this.setState(m, 'alive', now);
      this.ctx.emit({
        kind: 'alive',
        member: this.view(m),
        refuted: before === 'suspect' && env.c > wasIncarnation,
      });
    }
  }

  onMessage(env: Envelope, from: Address): void {
    switch (env.t) {
      case 'probe':
      case 'ping':
        if (!this.opts.observer) this.ctx.send(from, 'hb', { g: this.tags });
        return;
      case 'suspect': {
        const { target, inc } = env.b as { target: PeerId; inc: number };
        if (target === this.ctx.self.id && !this.opts.observer && inc >= this.ctx.self.incarnation) {
          const now = this.opts.raiseIncarnation(inc + 1);
          this.ctx.emit({ kind: 'refute', incarnation: now, by: env.i });
          this.heartbeat();
        }
        return;
      }
      case 'leave': {
        const m = this.members.get(env.i);
        if (!m || env.c < m.incarnation || m.state === 'left') return;
        this.setState(m, 'left', this.ctx.now());
        this.ctx.emit({ kind: 'left', member: this.view(m) });
        return;
      }
      // hb carries nothing beyond what observe() took from it.
    }
  }

  tick(now: number): void {
    if (!this.opts.observer && now - this.lastHeartbeat >= this.opts.timings.heartbeatIntervalMs)
      this.heartbeat();
    const t = this.opts.timings;
    for (const m of this.members.values()) {
      const silent = now - m.lastSeen;
      if (m.state === 'alive' && silent > t.suspectAfterMs) {
        this.setState(m, 'suspect', now);
        this.ctx.emit({ kind: 'suspect', member: this.view(m), by: 'timeout' });
        if (!this.opts.observer) {
          this.ctx.broadcast('suspect', { target: m.id, inc: m.incarnation });
          this.ping(m, now);
        }
      } else if (m.state === 'suspect') {
        if (silent > t.deadAfterMs) {
          this.setState(m, 'dead', now);
          this.ctx.emit({ kind: 'dead', member: this.view(m), silentMs: silent });
        } else if (!this.opts.observer && now - m.lastPing >= t.pingIntervalMs) {
          this.ping(m, now);
        }
      } else if ((m.state === 'dead' || m.state === 'left') && now - m.stateSince > t.deadRetentionMs) {
        this.members.delete(m.id);
      }
    }
  }

  leave(): void {
    if (this.opts.observer) return;
    for (let i = 0; i < LEAVE_COPIES; i++) this.ctx.broadcast('leave', {});
  }

  /** Every known member except this peer, ordered by name then id. */
  list(): MemberView[] {
    return [...this.members.values()]
      .map((m) => this.view(m))
      .sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
  }

  get(id: PeerId): MemberView | undefined {
    const m = this.members.get(id);
    return m && this.view(m);
  }

  /** Members currently alive or suspected (suspects may still be alive: SWIM keeps them in). */
  live(): MemberView[] {
    return this.list().filter((m) => m.state === 'alive' || m.state === 'suspect');
  }

  private heartbeat(): void {
    this.lastHeartbeat = this.ctx.now();
    this.ctx.broadcast('hb', { g: this.tags });
  }

  private ping(m: Member, now: number): void {
    m.lastPing = now;
    this.ctx.send(m.address, 'ping', {});
  }

  private add(env: Envelope, from: Address): void {
    if (this.members.size >= this.opts.membersMax && !this.evictOne()) {
      this.refused++;
      return;
    }
    const now = this.ctx.now();
    const m: Member = {
      id: env.i,
      name: env.n,
      address: from,
      incarnation: env.c,
      state: 'alive',
      lastSeen: now,
      stateSince: now,
      lastPing: -Infinity,
      tags: (env.b as { g: Tags }).g,
    };
    this.members.set(m.id, m);
    this.ctx.emit({ kind: 'join', member: this.view(m) });
    const ids = this.idsNamed(m.name);
    if (ids.length > 1) this.ctx.emit({ kind: 'duplicate-name', name: m.name, ids });
  }

  /** Forgets the dead or left member that changed state longest ago. */
  private evictOne(): boolean {
    let oldest: Member | undefined;
    for (const m of this.members.values()) {
      if ((m.state === 'dead' || m.state === 'left') && (!oldest || m.stateSince < oldest.stateSince))
        oldest = m;
    }
    if (oldest) this.members.delete(oldest.id);
    return oldest !== undefined;
  }

  private setState(m: Member, state: MemberState, now: number): void {
    m.state = state;
    m.stateSince = now;
  }

  private idsNamed(name: string): PeerId[] {
    const ids = [...this.members.values()]
      .filter((x) => x.name === name && (x.state === 'alive' || x.state === 'suspect'))
      .map((x) => x.id);
    if (!this.opts.observer && this.ctx.self.name === name) ids.push(this.ctx.self.id);
    return ids;
  }

  private view(m: Member): MemberView {
    return {
      id: m.id,
      name: m.name,
      address: m.address,
      state: m.state,
      incarnation: m.incarnation,
      lastSeenMs: Math.max(0, Math.round(this.ctx.now() - m.lastSeen)),
      duplicateName: this.idsNamed(m.name).length > 1,
      tags: m.tags,
    };
  }
}
