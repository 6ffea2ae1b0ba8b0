/**
 * Datagrams the kernel drops without a word to the process. Linux fails a UDP send with ENOBUFS
 * when the neighbour (ARP) table, which every network namespace of a machine shares (1,024
 * entries by default), or a device queue has no room, and tells only a socket with IP_RECVERR,
 * which Node's dgram cannot set; a full receive buffer is dropped on arrival. Both are counted per
 * network namespace in /proc/net/snmp (SndbufErrors, RcvbufErrors). A peer whose heartbeats die
 * there is called dead by the others while it sees nothing wrong, so `peer up` reads the counters
 * and says so (50 peers in namespaces on one host lost most of their sends this way: each needs an
 * entry per other peer, 2,450 in all).
 */
import { readFileSync } from 'node:fs';
import type { EventLog } from './output.js';

/** How often `peer up` reads the counters. */
export const UDP_DROPS_CHECK_MS = 10_000;
/** Its first reading, sooner: a host that drops at start (a full neighbour table) is told at once. */
export const UDP_DROPS_FIRST_CHECK_MS = 2_000;
/** At most one notice in this long; its count covers everything since the last notice. */
export const UDP_DROPS_NOTICE_EVERY_MS = 60_000;

/**
 * One table of /proc/net/snmp or /proc/net/netstat: a line of names after `prefix` ("Udp:",
 * "IpExt:"), then a line of values. Empty when the table is missing or malformed.
 */
export function procTable(text: string, prefix: string): Record<string, number> {
  const [names, values] = text.split('\n').filter((l) => l.startsWith(`${prefix} `));
  if (!names || !values) return {};
  const n = names.split(/\s+/).slice(1);
  const v = values.split(/\s+/).slice(1).map(Number);
  if (n.length !== v.length || v.some((x) => !Number.isFinite(x))) return {};
  return Object.fromEntries(n.map((name, i) => [name, v[i]!]));
}

export interface UdpDrops {
  /** Sends dropped in the kernel (SndbufErrors). */
  sent: number;
  /** Arrivals dropped for a full receive buffer (RcvbufErrors). */
  received: number;
}

/** This namespace's counts so far, or null where there is no /proc/net/snmp (not Linux). */
export function readUdpDrops(read = () => readFileSync('/proc/net/snmp', 'utf8')): UdpDrops | null {
  let text: string;
  try {
    text = read();
  } catch {
    return null;
  }
  const udp = procTable(text, 'Udp:');
  if (udp.SndbufErrors === undefined || udp.RcvbufErrors === undefined) return null;
  return { sent: udp.SndbufErrors, received: udp.RcvbufErrors };
}

/**
 * Decides what to say about the counts read every UDP_DROPS_CHECK_MS: drops since the last notice,
 * at most one notice per UDP_DROPS_NOTICE_EVERY_MS. A state machine over the readings, so the
 * rule is tested without a kernel that drops.
 */
export class UdpDropNotices {
  private last: UdpDrops;
  private pending: UdpDrops = { sent: 0, received: 0 };
  private noticedAt = -Infinity;

  constructor(first: UdpDrops) {
    this.last = first;
  }

  /** The drops to report now, or null. */
  read(now: number, counts: UdpDrops): UdpDrops | null {
    // A counter that went down was reset (a new namespace under the same process): start over.
    const sent = Math.max(0, counts.sent - this.last.sent);
    const received = Math.max(0, counts.received - this.last.received);
    this.last = counts;
    this.pending = { sent: this.pending.sent + sent, received: this.pending.received + received };
    if (this.pending.sent + this.pending.received === 0 || now - this.noticedAt < UDP_DROPS_NOTICE_EVERY_MS)
      return null;
    const out = this.pending;
    this.pending = { sent: 0, received: 0 };
    this.noticedAt = now;
    return out;
  }
}

/** The notice's line: what was lost, what it does to the group, and what to do. */
export function describeUdpDrops(d: UdpDrops): string {
  const parts: string[] = [];
  if (d.sent > 0)
    parts.push(
      `${d.sent} outgoing UDP datagram(s) (a full neighbour table or device queue; with many containers or namespaces on one host raise net.ipv4.neigh.default.gc_thresh3)`,
    );
  if (d.received > 0)
    parts.push(
      `${d.received} incoming UDP datagram(s) (a full receive buffer: this host is too busy to read them in time)`,
    );
  return `this host's kernel dropped ${parts.join(' and ')}; the group may miss our heartbeats or we theirs`;
}

/** Reads the counters (first after UDP_DROPS_FIRST_CHECK_MS, then every UDP_DROPS_CHECK_MS) and logs a notice when the kernel drops. Returns the stop. */
export function watchUdpDrops(log: EventLog): () => void {
  const first = readUdpDrops();
  if (!first) return () => {};
  const notices = new UdpDropNotices(first);
  const check = () => {
    const counts = readUdpDrops();
    const d = counts && notices.read(Date.now(), counts);
    if (d) log({ event: 'udp-drops', sent: d.sent, received: d.received }, describeUdpDrops(d));
  };
  let timer: NodeJS.Timeout = setTimeout(() => {
    check();
    timer = setInterval(check, UDP_DROPS_CHECK_MS);
    timer.unref();
  }, UDP_DROPS_FIRST_CHECK_MS);
  timer.unref();
  return () => clearTimeout(timer);
}
