import { describe, expect, it } from 'vitest';
import {
  UDP_DROPS_NOTICE_EVERY_MS,
  UdpDropNotices,
  describeUdpDrops,
  procTable,
  readUdpDrops,
} from '../../src/cli/udp-drops.js';

// /proc/net/snmp's Udp lines as Linux 6.x prints them (UdpLite has the same names).
const snmp = (sndbuf: number, rcvbuf: number) =>
  [
    'Ip: Forwarding DefaultTTL InReceives',
    'Ip: 1 64 3652',
    'Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors',
    `Udp: 3652 72 0 2673 ${rcvbuf} ${sndbuf} 0 0 0`,
    'UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors',
    'UdpLite: 0 0 0 0 7 7 0 0 0',
    '',
  ].join('\n');

describe('UDP drops the kernel does not report (udp-drops.ts)', () => {
  it('reads the Udp table, not UdpLite, and refuses a malformed one', () => {
    expect(readUdpDrops(() => snmp(108, 3))).toEqual({ sent: 108, received: 3 });
    expect(procTable(snmp(1, 2), 'Udp:').OutDatagrams).toBe(2673);
    expect(procTable('Udp: A B\nUdp: 1 x\n', 'Udp:')).toEqual({});
    expect(procTable('Udp: A B\nUdp: 1\n', 'Udp:')).toEqual({});
    expect(readUdpDrops(() => 'Udp: InDatagrams\nUdp: 5\n')).toBeNull();
    expect(
      readUdpDrops(() => {
        throw new Error('ENOENT');
      }),
    ).toBeNull();
  });

  it('notices drops at once, then at most once a minute with everything since, and nothing when none', () => {
    const n = new UdpDropNotices({ sent: 10, received: 0 });
    expect(n.read(10_000, { sent: 10, received: 0 })).toBeNull();
    expect(n.read(20_000, { sent: 118, received: 0 })).toEqual({ sent: 108, received: 0 });
    expect(n.read(30_000, { sent: 120, received: 1 })).toBeNull();
    expect(n.read(40_000, { sent: 125, received: 1 })).toBeNull();
    expect(n.read(20_000 + UDP_DROPS_NOTICE_EVERY_MS, { sent: 125, received: 4 })).toEqual({
      sent: 7,
      received: 4,
    });
    expect(n.read(200_000, { sent: 125, received: 4 })).toBeNull();
    // Counters that went back (another namespace) count from there, never as negative drops.
    expect(n.read(210_000, { sent: 2, received: 0 })).toBeNull();
    expect(n.read(220_000, { sent: 5, received: 0 })).toEqual({ sent: 3, received: 0 });
  });

  it('says what was lost and what to do', () => {
    expect(describeUdpDrops({ sent: 108, received: 0 })).toMatch(
      /^this host's kernel dropped 108 outgoing UDP datagram\(s\) .*net\.ipv4\.neigh\.default\.gc_thresh3.*; the group may miss our heartbeats/,
    );
    expect(describeUdpDrops({ sent: 0, received: 5 })).toMatch(
      /dropped 5 incoming UDP datagram\(s\) \(a full receive buffer/,
    );
    expect(describeUdpDrops({ sent: 1, received: 2 })).toMatch(/1 outgoing .* and 2 incoming/);
  });
});
