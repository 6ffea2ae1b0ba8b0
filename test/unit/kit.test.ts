/**
 * The message kit (src/p2p/kit/message.ts): one declaration gives the codec's check, the body's
 * type, the wire names both ways and a typed dispatch; and the context's soon() and bodyBytesMax().
 * The protocols converted to it must accept, refuse and send exactly what their hand-written
 * checks and literal bodies did: the reference checks below are those, as they were.
 */
import { envelopeOf, expectSameVerdicts } from '../support/messages.js';
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  Codec,
  DATAGRAM_PAYLOAD_BYTES_MAX,
  NAME_CHARS_MAX,
  OversizeError,
  bodyBytesMax,
  is,
  type Check,
  type Envelope,
} from '../../src/p2p/wire.js';
import { f, message, messages, type Body, type Origin } from '../../src/p2p/kit/message.js';
import {
  HB,
  PROBE,
  SUSPECT,
  TAGS_KEYS_MAX,
  TAG_KEY_CHARS_MAX,
  TAG_VALUE_CHARS_MAX,
} from '../../src/p2p/membership.js';
import { ELECT, PRIORITY_MAX } from '../../src/p2p/election.js';
import {
  ADJUSTMENT_MS_MAX,
  READING_MS_MAX,
  READINGS_PER_PEER,
  POLL_RETRIES,
  STATUS,
  TIME,
} from '../../src/p2p/clock-sync.js';
import { REPORT, SNAPSHOT_REPORT_CHUNK_BYTES, SNAPSHOT_REPORT_CHUNKS_MAX } from '../../src/p2p/snapshot.js';
import { CHAT_HISTORY_SHARE_MAX, HISTORY_REQUEST } from '../../src/p2p/chat.js';
import type { Protocol, ProtocolContext } from '../../src/p2p/protocol.js';
import { SimCluster } from '../support/cluster.js';
import { SOON_ROUNDS_MAX } from '../../src/p2p/node.js';
import { registered, ForgerGroup } from '../support/forger-group.js';

const MS = is.num(-READING_MS_MAX, READING_MS_MAX);
const ATTEMPT = is.uint(READINGS_PER_PEER + POLL_RETRIES);
const SNAPSHOT_ID = (v: unknown) => typeof v === 'string' && /^[0-9a-z-]{1,40}$/.test(v);
const EMPTY = is.object({});
/** The converted protocols' checks as they were written by hand before the kit. */
const BEFORE: Record<string, Check> = {
  hb: is.object(
    {},
    { g: is.tags(TAGS_KEYS_MAX, TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX), gv: is.uint(), h: is.uint() },
  ),
  probe: is.object({}, { o: is.literal(1) }),
  ping: EMPTY,
  suspect: is.object({ target: is.peerId(), inc: is.uint() }),
  leave: EMPTY,
  'el.elect': is.object({ term: is.uint(), prio: is.int(0, PRIORITY_MAX) }),
  'el.ok': is.object({ term: is.uint() }),
  'el.coord': is.object({ term: is.uint(), prio: is.int(0, PRIORITY_MAX) }),
  'clk.poll': is.object({ term: is.uint(), r: is.uint(), k: ATTEMPT }),
  'clk.time': is.object({ term: is.uint(), r: is.uint(), k: ATTEMPT, g: MS }, { o: is.bool() }),
  'clk.adj': is.object({
    term: is.uint(),
    r: is.uint(),
    a: is.num(-ADJUSTMENT_MS_MAX, ADJUSTMENT_MS_MAX),
    acc: is.num(0, ADJUSTMENT_MS_MAX),
  }),
  'clk.req': EMPTY,
  'clk.q': EMPTY,
  'clk.st': is.object({
    lamport: is.uint(),
    off: MS,
    target: MS,
    last: is.nullable(MS),
    acc: is.nullable(is.num(0, ADJUSTMENT_MS_MAX)),
    term: is.uint(),
  }),
  'sn.go': is.object({ id: SNAPSHOT_ID }),
  'sn.mk': is.object({ id: SNAPSHOT_ID }),
  'sn.rep': is.object({
    id: SNAPSHOT_ID,
    k: is.uint(SNAPSHOT_REPORT_CHUNKS_MAX - 1),
    n: is.int(1, SNAPSHOT_REPORT_CHUNKS_MAX),
    d: is.str(Math.ceil(SNAPSHOT_REPORT_CHUNK_BYTES / 3) * 4),
  }),
  'ch.hreq': is.object({ n: is.uint(CHAT_HISTORY_SHARE_MAX) }),
};

/** Bodies each converted type accepted, and near misses it refused (a bound, a key, a type). */
const SAMPLES: Record<string, unknown[]> = {
  hb: [
    { g: {} },
    { g: { chat: true, prio: 3 }, h: 7 },
    { g: {}, h: -1 },
    { g: {}, x: 1 },
    { h: 1 },
    { gv: 3, h: 1 },
    { g: {}, gv: -1 },
  ],
  probe: [{}, { o: 1 }, { o: 2 }, { o: true }],
  ping: [{}, { x: 1 }],
  suspect: [
    { target: '0123456789abcdef', inc: 4 },
    { target: 'nope', inc: 4 },
    { target: '0123456789abcdef' },
  ],
  'el.elect': [
    { term: 3, prio: 5 },
    { term: 3, prio: PRIORITY_MAX + 1 },
    { term: 3, priority: 5 },
  ],
  'el.ok': [{ term: 0 }, { term: 1.5 }],
  'el.coord': [
    { term: 9, prio: 0 },
    { term: 9, prio: -1 },
  ],
  'clk.poll': [
    { term: 1, r: 2, k: 0 },
    { term: 1, r: 2, k: 99 },
  ],
  'clk.time': [
    { term: 1, r: 2, k: 3, g: 1.5 },
    { term: 1, r: 2, k: 3, g: 1.5, o: true },
    { term: 1, r: 2, k: 3, g: 1.5, o: 1 },
    { term: 1, r: 2, k: 3, g: 2e15 },
  ],
  'clk.adj': [
    { term: 1, r: 2, a: -3.5, acc: 0.2 },
    { term: 1, r: 2, a: -3.5, acc: -1 },
  ],
  'clk.st': [
    { lamport: 1, off: 0, target: 0, last: null, acc: null, term: 0 },
    { lamport: 1, off: 0, target: 0, last: 5, acc: 1, term: 0 },
    { lamport: 1, off: 0, target: 0, acc: null, term: 0 },
  ],
  'sn.go': [{ id: 'snap-1' }, { id: 'Snap' }],
  'sn.rep': [
    { id: 'a', k: 0, n: 1, d: 'eA==' },
    { id: 'a', k: 64, n: 1, d: '' },
    { id: 'a', k: 0, n: 0, d: '' },
  ],
  'ch.hreq': [{ n: 50 }, { n: 51 }],
};

describe('message kit: the converted protocols check what they checked before', () => {
  it('every converted type accepts and refuses exactly as its hand-written check did', async () => {
    const g = new ForgerGroup(1);
    await g.start();
    const { bodies } = registered(g.members[0]!);
    for (const [type, before] of Object.entries(BEFORE)) {
      const after = bodies[type]!;
      expect(after, type).toBeDefined();
      const samples = SAMPLES[type] ?? [{}];
      expectSameVerdicts(type, before, after, samples);
    }
  });
});

/** An envelope around `b`, as the node stamps it. */
const envelope = (t: string, b: unknown): Envelope => envelopeOf(t, b);

describe('message kit: wire names', () => {
  // Each converted body as the protocol wrote it on the wire before, and as it now declares it.
  const cases: Array<
    [string, Record<string, unknown>, Record<string, unknown>, (b: never) => Record<string, unknown>]
  > = [
    ['hb', { g: { chat: true }, h: 3 }, { tags: { chat: true }, counter: 3 }, HB.toWire],
    ['hb', { g: {} }, { tags: {} }, HB.toWire],
    ['probe', { o: 1 }, { observer: 1 }, PROBE.toWire],
    ['probe', {}, {}, PROBE.toWire],
    [
      'suspect',
      { target: 'fedcba9876543210', inc: 4 },
      { target: 'fedcba9876543210', incarnation: 4 },
      SUSPECT.toWire,
    ],
    ['el.elect', { term: 8, prio: 2 }, { term: 8, priority: 2 }, ELECT.toWire],
    [
      'clk.time',
      { term: 1, r: 2, k: 0, g: 1.25 },
      { term: 1, round: 2, attempt: 0, reading: 1.25 },
      TIME.toWire,
    ],
    [
      'clk.time',
      { term: 1, r: 2, k: 0, g: 1.25, o: true },
      { term: 1, round: 2, attempt: 0, reading: 1.25, observer: true },
      TIME.toWire,
    ],
    [
      'clk.st',
      { lamport: 9, off: -1.5, target: 0, last: null, acc: null, term: 3 },
      { lamport: 9, offset: -1.5, targetOffset: 0, lastSync: null, accuracy: null, term: 3 },
      STATUS.toWire,
    ],
    [
      'sn.rep',
      { id: 's-1', k: 0, n: 2, d: 'eyJ9' },
      { id: 's-1', chunk: 0, chunks: 2, data: 'eyJ9' },
      REPORT.toWire,
    ],
    ['ch.hreq', { n: 50 }, { lines: 50 }, HISTORY_REQUEST.toWire],
  ];

  it.each(cases)(
    '%s: the domain body encodes to the very bytes the wire body did',
    (t, wire, domain, toWire) => {
      const codec = new Codec({ [t]: () => true });
      const before = codec.encode(envelope(t, wire));
      const after = codec.encode(envelope(t, toWire(domain as never)));
      expect(after.equals(before)).toBe(true);
    },
  );

  it.each(cases)('%s: a received wire body reaches the protocol by domain names', (t, wire, domain) => {
    const m = [HB, PROBE, SUSPECT, ELECT, TIME, STATUS, REPORT, HISTORY_REQUEST].find((x) => x.type === t)!;
    expect(m.check(wire)).toBe(true);
    expect(m.of(envelope(t, wire))).toEqual(domain);
    expect(m.of(envelope('other', wire))).toBeUndefined();
  });

  it('out() gives the type and the wire body, ready for broadcast and send', () => {
    expect(SUSPECT.out({ target: 'fedcba9876543210', incarnation: 4 })).toEqual([
      'suspect',
      { target: 'fedcba9876543210', inc: 4 },
    ]);
  });

  it('refuses a declaration that uses one wire name twice, and a set that declares one type twice', () => {
    expect(() => message('x', { a: f.uint().wire('b'), b: f.uint() })).toThrow(/wire name twice/);
    const x = message('x', {});
    expect(() => messages(x, x)).toThrow(/declared twice/);
  });
});

describe('message kit: inferred types', () => {
  it('a body is typed from its declaration, by domain names, optional fields optional', () => {
    expectTypeOf<Body<typeof TIME>>().toEqualTypeOf<{
      term: number;
      round: number;
      attempt: number;
      reading: number;
      observer?: boolean;
    }>();
    expectTypeOf<Body<typeof STATUS>>().toEqualTypeOf<{
      lamport: number;
      offset: number;
      targetOffset: number;
      lastSync: number | null;
      accuracy: number | null;
      term: number;
    }>();
    expectTypeOf<Body<typeof PROBE>>().toEqualTypeOf<{ observer?: 1 }>();
    expectTypeOf<Body<typeof HB>>().toEqualTypeOf<{
      tags?: Record<string, string | number | boolean>;
      tagsVersion?: number;
      counter?: number;
      interval?: number;
      fanout?: 0 | 1;
    }>();
    const L = message('l', { mode: f.literal('a', 'b'), ids: f.array(f.peerId(), 4) });
    expectTypeOf<Body<typeof L>>().toEqualTypeOf<{ mode: 'a' | 'b'; ids: string[] }>();
    expect(L.check({ mode: 'a', ids: ['0123456789abcdef'] })).toBe(true);
    expect(L.check({ mode: 'c', ids: [] })).toBe(false);
  });
});

describe('message kit: typed dispatch', () => {
  const PING = message('t.ping', { count: f.uint(10).wire('c') });
  const PONG = message('t.pong', {});
  const SET = messages(PING, PONG);

  it('hands each handler its checked body by domain names and who sent it; other types go nowhere', () => {
    const got: Array<[string, unknown, Origin]> = [];
    const onMessage = SET.dispatch({
      't.ping': (b, from) => {
        expectTypeOf(b).toEqualTypeOf<{ count: number }>();
        got.push(['ping', b, from]);
      },
      't.pong': (b, from) => got.push(['pong', b, from]),
    });
    expect(SET.checks).toEqual({ 't.ping': PING.check, 't.pong': PONG.check });
    onMessage(envelope('t.ping', { c: 3 }), '10.0.0.1:4000');
    onMessage(envelope('t.pong', {}), '10.0.0.2:4000');
    onMessage(envelope('t.other', {}), '10.0.0.3:4000');
    const from = { id: '0123456789abcdef', name: 'alice', incarnation: 2, lamport: 40 };
    expect(got).toEqual([
      ['ping', { count: 3 }, { ...from, address: '10.0.0.1:4000' }],
      ['pong', {}, { ...from, address: '10.0.0.2:4000' }],
    ]);
  });

  it('its check refuses what the declaration bounds', () => {
    expect(PING.check({ c: 10 })).toBe(true);
    expect(PING.check({ c: 11 })).toBe(false);
    expect(PING.check({ count: 3 })).toBe(false);
    expect(PONG.check({ c: 1 })).toBe(false);
  });
});

describe('context: bodyBytesMax', () => {
  /** A body of exactly `bytes` JSON bytes: {"x":"..."}. */
  const bodyOf = (bytes: number) => ({ x: 'y'.repeat(bytes - '{"x":""}'.length) });
  const widest = Number.MAX_SAFE_INTEGER;
  const codec = new Codec({ 'sn.rep': () => true, hb: () => true });

  it.each([
    ['hb', 'alice'],
    ['sn.rep', 'ü'.repeat(NAME_CHARS_MAX)],
  ])(
    'a %s body of bodyBytesMax bytes from %s fits a datagram with every counter at its widest; one more does not',
    (t, name) => {
      const room = bodyBytesMax(t, name);
      const env = { ...envelope(t, bodyOf(room)), n: name, c: widest, s: widest, l: widest };
      expect(codec.encode(env).length).toBe(DATAGRAM_PAYLOAD_BYTES_MAX);
      expect(() => codec.encode({ ...env, b: bodyOf(room + 1) })).toThrow(OversizeError);
    },
  );

  it('the largest snapshot report chunk fits from a peer with the longest name', () => {
    const longest = '\u4e00'.repeat(NAME_CHARS_MAX); // 3 bytes each in UTF-8
    const chunk = {
      id: 'z'.repeat(40),
      chunk: SNAPSHOT_REPORT_CHUNKS_MAX - 1,
      chunks: SNAPSHOT_REPORT_CHUNKS_MAX,
      data: Buffer.alloc(SNAPSHOT_REPORT_CHUNK_BYTES).toString('base64'),
    };
    expect(REPORT.check(REPORT.toWire(chunk))).toBe(true);
    expect(Buffer.byteLength(JSON.stringify(REPORT.toWire(chunk)))).toBeLessThanOrEqual(
      bodyBytesMax('sn.rep', longest),
    );
  });

  it('the node computes it for its own name', async () => {
    const c = new SimCluster(1);
    const p = await c.add('bob');
    expect(p.node.context.bodyBytesMax('hb')).toBe(bodyBytesMax('hb', 'bob'));
    expect(p.node.context.bodyBytesMax('sn.rep')).toBe(
      bodyBytesMax('hb', 'bob') - 'sn.rep'.length + 'hb'.length,
    );
  });
});

describe('context: soon', () => {
  /** A protocol of the older shape (hand-written checks, onMessage): the node still takes it. */
  function recorder(log: string[]) {
    return (ctx: ProtocolContext): Protocol => ({
      messages: { 't.go': is.object({ n: is.uint() }) },
      onMessage: (env) => {
        const n = (env.b as { n: number }).n;
        ctx.soon(() => log.push(`soon ${n}`));
        ctx.soon(() => ctx.soon(() => log.push(`soon in soon ${n}`)));
        log.push(`message ${n}`);
      },
      tick: () => {},
    });
  }

  it('runs after the message that asked, before the next one; from outside a message, on the next turn', async () => {
    const log: string[] = [];
    const r = new SimCluster(3, {}, undefined, (node) => void node.install(recorder(log)));
    const q = await r.add('q');
    const sender = await r.add('s');
    r.rt.runFor(500);
    sender.node.context.send(q.address, 't.go', { n: 1 });
    sender.node.context.send(q.address, 't.go', { n: 2 });
    r.rt.runFor(500);
    expect(log).toEqual(['message 1', 'soon 1', 'soon in soon 1', 'message 2', 'soon 2', 'soon in soon 2']);

    log.length = 0;
    q.node.context.soon(() => log.push('outside'));
    expect(log).toEqual([]);
    r.rt.runFor(1);
    expect(log).toEqual(['outside']);
  });

  it('callbacks that keep queueing more run SOON_ROUNDS_MAX rounds a turn, then yield to the event loop', async () => {
    const r = new SimCluster(5);
    const q = await r.add('q');
    let runs = 0;
    const again = () => {
      runs++;
      if (runs < 3 * SOON_ROUNDS_MAX) q.node.context.soon(again);
    };
    q.node.context.soon(again); // outside a message: booked for the runtime's next turn
    let seenByTheNextEvent = -1;
    r.rt.schedule(0, () => (seenByTheNextEvent = runs)); // due at the same instant, booked after it
    r.rt.runFor(0);
    expect(seenByTheNextEvent).toBe(SOON_ROUNDS_MAX);
    expect(runs).toBe(3 * SOON_ROUNDS_MAX);
    await q.node.stop();
  });

  it('drops what is still queued when the node stops: a stopped peer sends nothing', async () => {
    const r = new SimCluster(4);
    const q = await r.add('q');
    const log: string[] = [];
    q.node.context.soon(() => log.push('after stop'));
    await q.node.stop();
    r.rt.runFor(10);
    expect(log).toEqual([]);
  });
});
