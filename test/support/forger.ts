/**
 * A forger for the simulation tier: a stranger on an open group (its own address, no key) that
 * sends well-formed datagrams of every message type with extreme and crafted fields.
 *
 * What it may do is what anyone on the LAN can: claim any peer id and name (real members'
 * included), any incarnation, sequence number and Lamport time, and multicast to the group or
 * unicast to a member's address. What it knows is what the wire shows: each member's id, name,
 * address, incarnation, Lamport time, election term, token (epoch, generation) and reliable stream
 * (epoch, newest sequence). So counters are either extreme (0, 1, 2^31, 2^32, COUNTER_MAX and
 * around it, 2^53 - 1) or near the victim's current value (its term + 1, its sequence + a large
 * gap), read when the datagram is sent.
 *
 * Generators are fast-check arbitraries of functions of the group as it is at send time
 * (`Forge`), so a plan drawn from a seed replays exactly. One datagram in DECODER_TEST_EVERY has one
 * field out of its schema (negative, fractional, past 2^53, too long, a name with control
 * characters, another version) on purpose: those test the decoder.
 */
import fc from 'fast-check';
import { COUNTER_MAX } from '../../src/p2p/bounds.js';
import {
  DATAGRAM_PAYLOAD_BYTES_MAX,
  PROTOCOL_VERSION,
  VARINT_BYTES_MAX,
  writeVarint,
} from '../../src/p2p/wire.js';
import { PRIORITY_MAX } from '../../src/p2p/election.js';
import { HEARTBEAT_INTERVAL_MS_MAX } from '../../src/p2p/membership.js';
import { PIGGYBACK_UPDATES_MAX } from '../../src/p2p/swim.js';
import { ADJUSTMENT_MS_MAX, READING_MS_MAX, READINGS_PER_PEER } from '../../src/p2p/clock-sync.js';
import { RING_CONFIG_MAX } from '../../src/p2p/token-ring/index.js';
import {
  RELIABLE_FRAGMENTS_MAX,
  RELIABLE_MESSAGE_BYTES_MAX,
  RELIABLE_PAYLOAD_BYTES_MAX,
  RELIABLE_REFUSALS_MAX,
} from '../../src/p2p/reliable/index.js';
import { CHAT_HISTORY_SHARE_MAX, CHAT_HISTORY_TOPIC, CHAT_TOPIC } from '../../src/p2p/chat.js';
import { FILE_CONTROL_TOPIC, FILE_TOPIC } from '../../src/p2p/files/index.js';
import {
  CANCEL as JOB_CANCEL,
  DONE as JOB_DONE,
  JOB_TOPIC,
  JOBS as JOB_JOBS,
  OPEN as JOB_OPEN,
  encodeJob,
} from '../../src/p2p/jobs/messages.js';
import { SNAPSHOT_MARKER_TOPIC, SNAPSHOT_REPORT_CHUNKS_MAX } from '../../src/p2p/snapshot.js';
import {
  ACK_HOLDERS_MAX,
  IBLT_CELLS_MAX,
  IBLT_CELLS_MIN,
  DIGEST_FANOUT,
  DIGEST_LEVELS,
  LARGE_TOPIC,
  encodeLarge,
} from '../../src/p2p/replication/index.js';
import {
  HOLDERS_COUNT_MAX,
  KV_CHANNEL_PREFIX,
  KV_KEY_BYTES_MAX,
  KV_LARGE_TOPIC,
  KV_SCAN_ROWS_MAX,
  KV_VALUE_BYTES_MAX,
  encodeOp,
} from '../../src/p2p/kv/index.js';
import { SYNC_PAGE_ENTRIES_MAX, SYNC_REQUEST_BYTES_MIN, encodeHints } from '../../src/p2p/join/messages.js';
import type { Address } from '../../src/p2p/transport/transport.js';

/** What the wire shows of one real member when a forged datagram is sent. */
export interface Victim {
  id: string;
  name: string;
  address: Address;
  incarnation: number;
  lamport: number;
  term: number;
  tokenEpoch: number;
  tokenGen: number;
  rmEpoch: number;
  rmHi: number;
}

/** The group at send time: the member a datagram is about, and all of them. */
export interface Forge {
  victim: Victim;
  members: readonly Victim[];
  /** Ids no member has: the forger's own identities. */
  strangers: readonly string[];
  /** The coordinator the group follows (its heartbeats say so), if any. */
  coordinator: string | null;
}

/** A value computed from the group at send time. */
export type G<T> = fc.Arbitrary<(f: Forge) => T>;

export interface Forged {
  body: unknown;
  attachment?: Uint8Array;
  /** Sent just before, with the same envelope: what makes the receiver expect this one. */
  before?: Forged & { type: string };
}

/** Fields of the envelope the forger chooses; the rest (v, t) come from the step. */
export interface ForgedEnvelope {
  v: unknown;
  i: unknown;
  n: unknown;
  c: unknown;
  s: unknown;
  l: unknown;
}

/** A counter a victim has, for values near its current one. */
type Counter = 'incarnation' | 'lamport' | 'term' | 'tokenEpoch' | 'tokenGen' | 'rmEpoch' | 'rmHi';

// ---- building blocks -----------------------------------------------------------------------

const SAFE_MAX = Number.MAX_SAFE_INTEGER;
/** Where fixed-width and safe-integer arithmetic ends, and where the counter bound sits. */
const EXTREME_UINTS: readonly number[] = [
  0,
  1,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  COUNTER_MAX - 1,
  COUNTER_MAX,
  COUNTER_MAX + 1,
  SAFE_MAX - 1,
  SAFE_MAX,
];
/** Steps a forged counter takes from the victim's: the same, next, a little ahead, a large gap. */
const GAPS: readonly number[] = [0, 1, 2, 1000, 2 ** 20, 2 ** 31, 2 ** 40];
/** Values no schema of ours takes for a number (or for most strings): they test the decoder. */
const BAD_VALUES: readonly unknown[] = [-1, 0.5, 2 ** 53, 1e300, '1', null, 'x'.repeat(2000), {}, []];
/** Names the decoder must refuse: control characters, a bidi override, too long, padded, empty. */
const BAD_NAMES: readonly string[] = ['esc\x1b[2J', '\u202eevil', 'n'.repeat(65), ' pad', ''];

const k = <T>(a: fc.Arbitrary<T>): G<T> => a.map((v) => () => v);
const konst = <T>(v: T): G<T> => fc.constant(() => v);

/** An object whose fields are generated; `optional` fields may be absent. */
function rec(shape: Record<string, G<unknown>>, optional: Record<string, G<unknown>> = {}): G<unknown> {
  const keys = Object.keys(shape);
  const opt = Object.keys(optional);
  return fc
    .tuple(
      fc.tuple(...keys.map((key) => shape[key]!)),
      fc.tuple(...opt.map((key) => fc.option(optional[key]!, { nil: undefined }))),
    )
    .map(([req, opts]) => (f: Forge) => {
      const o: Record<string, unknown> = {};
      keys.forEach((key, j) => (o[key] = req[j]!(f)));
      opt.forEach((key, j) => {
        const g = opts[j];
        if (g !== undefined) o[key] = g(f);
      });
      return o;
    });
}

function arr<T>(item: G<T>, maxLength: number): G<T[]> {
  return fc.array(item, { maxLength }).map((gs) => (f: Forge) => gs.map((g) => g(f)));
}

function nullable<T>(g: G<T>): G<T | null> {
  return fc.oneof({ arbitrary: konst(null), weight: 1 }, { arbitrary: g, weight: 3 });
}

/** An unsigned counter: extreme, near the victim's own `near`, small, or any. */
function uint(near?: Counter): G<number> {
  const parts: Array<{ arbitrary: G<number>; weight: number }> = [
    { arbitrary: k(fc.constantFrom(...EXTREME_UINTS)), weight: 4 },
    { arbitrary: k(fc.nat({ max: 16 })), weight: 2 },
    { arbitrary: k(fc.maxSafeNat()), weight: 1 },
  ];
  if (near)
    parts.push({
      arbitrary: fc.tuple(fc.constantFrom(...GAPS), fc.boolean()).map(
        ([gap, back]) =>
          (f: Forge) =>
            Math.max(0, f.victim[near] + (back ? -gap : gap)),
      ),
      weight: 6,
    });
  return fc.oneof(...parts);
}

/** An integer of a bounded schema field: its ends, or anything between. */
function bounded(min: number, max: number): G<number> {
  return fc.oneof(k(fc.constantFrom(min, max)), k(fc.integer({ min, max })));
}

/** A number of a float field: its ends, zero, a fraction, a wall-clock reading if in range, or any. */
function float(min: number, max: number): G<number> {
  const special = [min, max, 0, -0.5, 0.25, 1.7e12, -1.7e12].filter((x) => x >= min && x <= max);
  return fc.oneof(
    k(fc.constantFrom(...special)),
    k(fc.double({ min, max, noNaN: true, noDefaultInfinity: true })),
  );
}

/** Text that must never reach a terminal raw, and text at a length limit. */
const HOSTILE_TEXTS: readonly string[] = [
  'A\x1b]0;pwned\x07B\x1b[2J',
  '\x1b[31mred\x1b[0m',
  'back\rover',
  '\u202eevil\u202c',
  'nul\x00byte',
  '\x7f\x9b2J',
  '',
  ' ',
  'é😀',
  '\ud800',
];
function text(maxChars: number, minChars = 0): G<string> {
  return fc.oneof(
    { arbitrary: k(fc.constantFrom(...HOSTILE_TEXTS.filter((t) => t.length >= minChars))), weight: 4 },
    { arbitrary: k(fc.string({ minLength: minChars, maxLength: Math.min(maxChars, 24) })), weight: 3 },
    { arbitrary: konst('x'.repeat(maxChars)), weight: 1 },
  );
}

const hex16 = fc.stringMatching(/^[0-9a-f]{16}$/);

/** A peer id: the victim's, the coordinator's, another member's, one of the forger's, or any. */
const peerId: G<string> = fc.oneof(
  { arbitrary: fc.constant((f: Forge) => f.victim.id), weight: 5 },
  { arbitrary: fc.constant((f: Forge) => f.coordinator ?? f.victim.id), weight: 3 },
  { arbitrary: fc.nat().map((j) => (f: Forge) => f.members[j % f.members.length]!.id), weight: 3 },
  { arbitrary: fc.nat().map((j) => (f: Forge) => f.strangers[j % f.strangers.length]!), weight: 3 },
  { arbitrary: k(fc.constantFrom('0'.repeat(16), 'f'.repeat(16))), weight: 1 },
  { arbitrary: k(hex16), weight: 1 },
);

const peerIds = (max: number): G<unknown> =>
  fc.oneof(
    arr(peerId, Math.min(max, 8)),
    fc.constant((f: Forge) => f.members.map((m) => m.id)),
    konst(Array.from({ length: max }, (_, j) => j.toString(16).padStart(16, '0'))),
  );

const bool: G<unknown> = k(fc.boolean());
const empty: G<unknown> = rec({});
const b64 = (maxChars: number): G<unknown> =>
  fc.oneof(
    k(
      fc
        .uint8Array({ maxLength: Math.floor((Math.min(maxChars, 400) * 3) / 4) })
        .map((b) => Buffer.from(b).toString('base64')),
    ),
    konst('A'.repeat(maxChars)),
    k(fc.constantFrom('!!', '====', 'a', '')),
  );

// ---- message bodies, by type ---------------------------------------------------------------

const TAG_KEYS = ['prio', 'coord', 'term', 'clk', 'chat', 'rp', 'kv', 'wk', 'ld', 'js', 'jl', 'ex'];
const tagValue: G<unknown> = fc.oneof(
  bool,
  uint('term'),
  bounded(0, PRIORITY_MAX),
  k(fc.constantFrom(`${'0'.repeat(16)}:0`, `${'f'.repeat(16)}:9999999999999999`, 'garbage', 'x'.repeat(64))),
  k(fc.constantFrom(2 ** 53, -1, 0.5, 1e308)),
  text(64),
);
const tags: G<unknown> = fc
  .array(fc.tuple(fc.oneof(fc.constantFrom(...TAG_KEYS), fc.string({ maxLength: 25 })), tagValue), {
    maxLength: 9,
  })
  .map((kv) => (f: Forge) => Object.fromEntries(kv.map(([key, v]) => [key, v(f)])));

const prio = bounded(0, PRIORITY_MAX);
const ms = float(-READING_MS_MAX, READING_MS_MAX);
const adjustment = float(-ADJUSTMENT_MS_MAX, ADJUSTMENT_MS_MAX);
const accuracy = float(0, ADJUSTMENT_MS_MAX);
const attempt = bounded(0, READINGS_PER_PEER + 1);
const clockRound = fc.oneof(uint(), k(fc.nat({ max: 8 })));
const gen = uint('tokenGen');
const epoch = uint('tokenEpoch');
const branch = bounded(0, 0xffffffff);
const cfg = peerIds(RING_CONFIG_MAX);

/** Reliable delivery: topics, and attachments of messages (varint seq and Lamport deltas, topic, payload). */
const topics: G<unknown> = fc.oneof(
  { arbitrary: k(fc.constantFrom([CHAT_TOPIC], [CHAT_HISTORY_TOPIC], [SNAPSHOT_MARKER_TOPIC])), weight: 6 },
  { arbitrary: konst([CHAT_TOPIC, CHAT_HISTORY_TOPIC, SNAPSHOT_MARKER_TOPIC]), weight: 2 },
  { arbitrary: k(fc.constantFrom(['x'.repeat(24)], ['a-1.b'])), weight: 1 },
  // Shared files (p2p/files): offers and chunks, answers and requests.
  {
    arbitrary: k(fc.constantFrom([FILE_TOPIC], [FILE_CONTROL_TOPIC], [FILE_TOPIC, FILE_CONTROL_TOPIC])),
    weight: 2,
  },
  // Where entries and kv answers too large for a datagram travel (replication/large.ts).
  {
    arbitrary: k(fc.constantFrom([LARGE_TOPIC], [`${KV_CHANNEL_PREFIX}large`], [KV_LARGE_TOPIC])),
    weight: 2,
  },
  // Jobs (p2p/jobs): runs, their jobs, results and cancels, by unicast to workers and submitters.
  { arbitrary: konst([JOB_TOPIC]), weight: 2 },
);
/** A run id: one of a few, so forged jobs, results and cancels of one run meet. */
const runId: G<string> = k(fc.constantFrom('0123456789abcdef', 'ffffffffffffffff', 'RUN', ''));
/** A payload for each topic: well-formed, hostile, or broken. */
const payload: G<string> = fc.oneof(
  fc.tuple(uint(), text(200)).map(
    ([at, t]) =>
      (f: Forge) =>
        `${String(at(f))} ${t(f)}`,
  ),
  fc.tuple(peerId, text(64, 1), uint('lamport'), uint(), text(200)).map(
    ([from, name, l, at, t]) =>
      (f: Forge) =>
        JSON.stringify([`${String(from(f))}/1/1`, from(f), name(f), null, null, t(f), l(f), at(f)]),
  ),
  k(fc.constantFrom('snap-1', 'a'.repeat(40), 'NOT A SNAPSHOT', '{', '')),
  // A large message's [type, body] (replication/large.ts): entries and kv answers, or other types.
  fc.tuple(peerId, uint(), uint('lamport'), text(200)).map(
    ([o, seq, l, t]) =>
      (f: Forge) =>
        encodeLarge('rp.app', { e: [o(f), seq(f), l(f), t(f)] }),
  ),
  fc.tuple(fc.constantFrom('rp.put', 'rp.ent'), uint(), peerId, uint(), uint('lamport'), text(200)).map(
    ([type, q, o, seq, l, t]) =>
      (f: Forge) =>
        encodeLarge(type, { q: q(f), e: [[o(f), seq(f), l(f), t(f)]] }),
  ),
  fc.tuple(uint(), peerId, uint(), uint('lamport'), text(200)).map(
    ([q, o, seq, l, v]) =>
      (f: Forge) =>
        encodeLarge('kv.val', { q: q(f), w: ['k', v(f), l(f), o(f), seq(f)], n: 3 }),
  ),
  k(fc.constantFrom('["rp.rnd",{"r":1}]', '["kv.rows",{"q":1,"r":[],"m":false}]', '["rp.app"]', '[1,2]')),
  // A run's spec and its jobs (workers run what they accept: here in a simulated executor).
  fc.tuple(runId, text(200), bool, uint()).map(
    ([run, word, detached, timeout]) =>
      (f: Forge) =>
        encodeJob(JOB_OPEN, {
          run: run(f),
          kind: 'exec',
          words: ['echo', word(f)],
          env: [],
          timeoutMs: timeout(f) || null,
          graceMs: 100,
          output: 'group',
          transfers: [],
          returns: [],
          detached: detached(f) as boolean,
        }) as string,
  ),
  fc.tuple(runId, uint(), uint(), uint(), uint('lamport'), nullable(text(200))).map(
    ([run, job, seq, att, fence, input]) =>
      (f: Forge) =>
        encodeJob(JOB_JOBS, { run: run(f), jobs: [[job(f), seq(f), att(f), fence(f), input(f)]] }) as string,
  ),
  // Results and refusals for runs nobody started, or for another worker's jobs.
  fc.tuple(runId, uint(), uint(), uint('lamport'), nullable(uint()), uint()).map(
    ([run, job, att, fence, exit, free]) =>
      (f: Forge) =>
        encodeJob(JOB_DONE, {
          run: run(f),
          free: free(f),
          seen: free(f),
          results: [
            {
              job: job(f),
              attempt: att(f),
              fence: fence(f),
              exit: exit(f),
              signal: 0,
              timedOut: false,
              cancelled: false,
              started: true,
              at: 0,
              us: 0,
              out: 0,
              err: 0,
              truncated: false,
              why: null,
            },
          ],
        }) as string,
  ),
  fc.tuple(runId, fc.constantFrom('cancel', 'done-elsewhere')).map(
    ([run, why]) =>
      (f: Forge) =>
        encodeJob(JOB_CANCEL, { run: run(f), jobs: null, why }) as string,
  ),
  k(
    fc.constantFrom(
      '{"t":"jb.jobs","b":{}}',
      '{"t":"jb.close","b":{"run":"0123456789abcdef"}}',
      '{"t":"jb.x"}',
    ),
  ),
  konst('z'.repeat(RELIABLE_PAYLOAD_BYTES_MAX)),
);
/** Deltas between the messages of one attachment after the first: the next one, or a gap. */
const SEQ_DELTAS: readonly number[] = [1, 1, 1, 2, 1000, 2 ** 40];
/**
 * The bytes of `rm.d` / `rm.u` attachments: the first message's sequence and Lamport time near
 * the victim's stream and clock or extreme, then deltas.
 */
function items(
  maxItems: number,
  body: G<string | Uint8Array> = payload,
): fc.Arbitrary<(f: Forge, topicCount: number) => Uint8Array> {
  const later = fc.tuple(
    fc.constantFrom(...SEQ_DELTAS),
    fc.constantFrom(0, 1, 2 ** 31),
    fc.nat({ max: 3 }),
    body,
  );
  return fc
    .tuple(
      fc.tuple(uint('rmHi'), uint('lamport'), fc.nat({ max: 3 }), body),
      fc.array(later, { maxLength: maxItems - 1 }),
    )
    .map(([[seq, lamport, firstTopic, firstBody], rest]) => (f: Forge, topicCount: number) => {
      const buf = Buffer.alloc(DATAGRAM_PAYLOAD_BYTES_MAX);
      const first: [number, number, number, string | Uint8Array] = [
        Math.max(1, seq(f)),
        lamport(f),
        firstTopic,
        firstBody(f),
      ];
      let off = 0;
      for (const [dSeq, dLamport, topic, body] of [
        first,
        ...rest.map(([a, b, c, p]) => [a, b, c, p(f)] as const),
      ]) {
        const p = Buffer.from(body);
        if (off + 3 * VARINT_BYTES_MAX + 1 + p.length > buf.length) break;
        off = writeVarint(buf, off, dSeq);
        off = writeVarint(buf, off, dLamport);
        buf[off++] = topic % Math.max(1, topicCount);
        off = writeVarint(buf, off, p.length);
        off += p.copy(buf, off);
      }
      return buf.subarray(0, off);
    });
}

/**
 * A bulk-lane fragment (fragments.ts): a first fragment announcing a size and a count (within
 * the bounds, at them, or past them), a later fragment, or an unknown kind; then some bytes.
 */
const fragmentHead = (kind: number, bytes: number, count: number): Buffer => {
  const head = Buffer.alloc(1 + 2 * VARINT_BYTES_MAX);
  head[0] = kind;
  return head.subarray(0, kind === 1 ? writeVarint(head, writeVarint(head, 1, bytes), count) : 1);
};
const fragment: G<Uint8Array> = fc
  .tuple(
    fc.oneof(
      // Well-formed: a first fragment whose count its size allows, or a later one.
      {
        arbitrary: fc.constantFrom([1, 5000, 6], [1, 0, 1], [1, RELIABLE_MESSAGE_BYTES_MAX, 70_000]),
        weight: 3,
      },
      { arbitrary: fc.constant([0, 0, 0]), weight: 4 },
      // Past the bounds, or of no kind.
      {
        arbitrary: fc.constantFrom(
          [1, RELIABLE_MESSAGE_BYTES_MAX + 1, 2],
          [1, SAFE_MAX, 2],
          [1, 5, 7],
          [1, 5000, 0],
          [1, 2 * RELIABLE_FRAGMENTS_MAX, RELIABLE_FRAGMENTS_MAX + 1],
          [2, 0, 0],
        ),
        weight: 1,
      },
    ),
    fc.uint8Array({ maxLength: 600 }),
  )
  .map(
    ([[kind, bytes, count], data]) =>
      () =>
        Buffer.concat([fragmentHead(kind!, bytes!, count!), data]),
  );

/** A refusal as acks carry it: a message's first sequence and a reason's index. */
const refusal: G<unknown> = fc
  .tuple(uint('rmHi'), fc.constantFrom(0, 1, 2))
  .map(([seq, reason]) => (f: Forge) => [seq(f), reason]);

function reliableData(
  maxItems: number,
  shape: Record<string, G<unknown>>,
  body?: G<string | Uint8Array>,
): fc.Arbitrary<(f: Forge) => Forged> {
  return fc.tuple(rec({ ...shape, k: topics }), items(maxItems, body)).map(([body, attach]) => (f: Forge) => {
    const b = body(f) as { k?: unknown };
    return { body: b, attachment: attach(f, Array.isArray(b.k) ? b.k.length : 0) };
  });
}

const range: G<unknown> = fc.oneof(
  fc.tuple(uint('rmHi'), uint('rmHi')).map(([a, b]) => (f: Forge) => {
    const x = a(f);
    const y = b(f);
    return typeof x === 'number' && typeof y === 'number' ? [Math.min(x, y), Math.max(x, y)] : [x, y];
  }),
  konst([0, SAFE_MAX]),
);

/** Replication entries: [origin, seq >= 1, lamport, text]; kv entries carry kv operations. */
function wireEntry(textOf: G<string>): G<unknown> {
  return fc
    .tuple(peerId, uint(), uint('lamport'), textOf)
    .map(([o, s, l, t]) => (f: Forge) => [o(f), Math.max(1, s(f)), l(f), t(f)]);
}
const replicaText = text(700);
/** The key the group writes and reads back after the forger (forger-group.ts): the forger writes it too. */
export const KV_CHECKED_KEY = 'checked-after-the-forger';
const kvKey: G<string> = fc.oneof(
  { arbitrary: text(KV_KEY_BYTES_MAX, 1), weight: 3 },
  { arbitrary: konst(KV_CHECKED_KEY), weight: 1 },
);
const kvText: G<string> = fc.oneof(
  fc.tuple(kvKey, text(KV_VALUE_BYTES_MAX)).map(
    ([key, v]) =>
      (f: Forge) =>
        encodeOp({ kind: 'put', key: key(f), value: v(f) }),
  ),
  kvKey.map((key) => (f: Forge) => encodeOp({ kind: 'delete', key: key(f) })),
  k(fc.constantFrom('P9999:x', 'P0:', 'Q', '', 'D')),
);

function replication(entryText: G<string>): Record<string, fc.Arbitrary<(f: Forge) => Forged>> {
  const entry = wireEntry(entryText);
  const q = uint();
  return {
    'rp.app': bodyOf(rec({ e: entry })),
    'rp.ack': bodyOf(rec({ o: peerId, s: uint(), k: peerIds(ACK_HOLDERS_MAX) })),
    // A holder that could not store an append says why (its disk is full, failing, or else).
    'rp.nak': bodyOf(rec({ o: peerId, s: uint(), r: k(fc.constantFrom('full', 'io', 'other')) })),
    'rp.tq': bodyOf(
      rec({
        q,
        ln: bounded(0, 1),
        lv: bounded(1, DIGEST_LEVELS),
        // Parents that exist at the deepest level, many of them, or any.
        p: fc.oneof(arr(bounded(0, DIGEST_FANOUT ** (DIGEST_LEVELS - 1) - 1), 64), arr(uint(), 64)),
      }),
    ),
    'rp.tr': bodyOf(rec({ q, h: b64(1200) })),
    'rp.iq': bodyOf(
      rec({ q, z: uint(), m: bounded(IBLT_CELLS_MIN, IBLT_CELLS_MAX), f: uint(), n: bounded(1, 256) }),
    ),
    'rp.ir': bodyOf(rec({ q, c: b64(1200) })),
    'rp.get': bodyOf(rec({ q, k: b64(1200) })),
    'rp.ent': bodyOf(rec({ q, e: arr(entry, 3) })),
    'rp.put': bodyOf(rec({ q, e: arr(entry, 3) })),
    'rp.got': bodyOf(rec({ q })),
    'rp.rnd': bodyOf(rec({ r: uint() })),
    'rp.st': bodyOf(
      rec({ r: uint(), n: uint(), h: k(hex16), b: uint(), d: text(64), k: peerIds(ACK_HOLDERS_MAX) }),
    ),
    'rp.fin': bodyOf(rec({ r: uint(), h: k(hex16) })),
  };
}

function bodyOf(g: G<unknown>): fc.Arbitrary<(f: Forge) => Forged> {
  return g.map((b) => (f: Forge) => ({ body: b(f) }));
}

const kvRow: G<unknown> = fc
  .tuple(kvKey, nullable(text(KV_VALUE_BYTES_MAX)), uint('lamport'), peerId, uint())
  .map(([key, v, l, o, s]) => (f: Forge) => [key(f), v(f), l(f), o(f), Math.max(1, s(f))]);

const syncNonce = bounded(0, 2 ** 32 - 1);

/** Piggybacked updates: real members alive at made-up addresses, suspicions of any id at any incarnation. */
const swimUpdates: G<unknown> = arr(
  fc.oneof(
    fc
      .tuple(peerId, uint('incarnation'), k(fc.constantFrom('10.0.0.99:7000', '127.0.0.1:1', '0.0.0.0:0')))
      .map(([id, inc, ad]) => (f: Forge) => [0, id(f), inc(f), ad(f)]),
    fc.tuple(peerId, uint('incarnation')).map(([id, inc]) => (f: Forge) => [1, id(f), inc(f)]),
  ),
  PIGGYBACK_UPDATES_MAX,
);

const snapshotId = k(fc.oneof(fc.stringMatching(/^[0-9a-z-]{1,40}$/), fc.constant('a'.repeat(40))));

/**
 * A generator for every message type the protocols register (test/sim/forger.test.ts checks
 * that none is missing). Each yields a body, and for reliable delivery's data its attachment.
 */
export const FORGERIES: Record<string, fc.Arbitrary<(f: Forge) => Forged>> = {
  // membership
  hb: bodyOf(
    rec({ g: tags }, { h: uint(), iv: bounded(0, HEARTBEAT_INTERVAL_MS_MAX), u: k(fc.constantFrom(0, 1)) }),
  ),
  probe: bodyOf(empty),
  ping: bodyOf(empty),
  suspect: bodyOf(rec({ target: peerId, inc: uint('incarnation') })),
  leave: bodyOf(empty),
  // SWIM probes: acks and nacks for probes nobody ran, requests to relay to any id
  'sw.ping': bodyOf(rec({ q: syncNonce }, { gv: uint(), up: swimUpdates })),
  'sw.ack': bodyOf(rec({ q: syncNonce }, { gv: uint(), up: swimUpdates })),
  'sw.req': bodyOf(rec({ q: syncNonce, t: peerId })),
  'sw.nack': bodyOf(rec({ q: syncNonce })),
  // join: a sync padded to be answered or not; pages of real members' hints (nobody asked for them)
  'ms.sync': bodyOf(
    rec(
      { a: fc.oneof(konst(''), peerId), n: syncNonce },
      { g: tags, o: konst(1), k: konst(1), p: konst(' '.repeat(SYNC_REQUEST_BYTES_MIN)) },
    ),
  ),
  'ms.page': fc
    .tuple(syncNonce, fc.nat({ max: SYNC_PAGE_ENTRIES_MAX }), fc.option(peerId))
    .map(([n, count, next]) => (f: Forge) => ({
      body: { n: n(f), t: count, ...(next ? { x: next(f) } : {}) },
      attachment: encodeHints(
        Array.from({ length: count }, (_, j) => f.members[j % f.members.length]!).map((m) => ({
          id: m.id,
          address: m.address,
        })),
      ),
    })),
  'ms.hello': bodyOf(rec({ g: tags }, { a: konst(1), p: konst(' '.repeat(SYNC_REQUEST_BYTES_MIN)) })),
  // reach
  'rc.st': bodyOf(
    rec({ g: k(fc.constantFrom(0, 1)) }, { n: bounded(0, 2 ** 32 - 1), e: bounded(0, 2 ** 32 - 1) }),
  ),
  // election
  'el.elect': bodyOf(rec({ term: uint('term'), prio })),
  'el.ok': bodyOf(rec({ term: uint('term') })),
  'el.coord': bodyOf(rec({ term: uint('term'), prio })),
  // clock sync
  'clk.poll': bodyOf(rec({ term: uint('term'), r: clockRound, k: attempt })),
  'clk.time': bodyOf(rec({ term: uint('term'), r: clockRound, k: attempt, g: ms }, { o: bool })),
  // An adjustment is taken only for a round the receiver answered: poll it first, same round.
  'clk.adj': fc
    .tuple(uint('term'), clockRound, attempt, adjustment, accuracy)
    .map(([term, r, k, a, acc]) => (f: Forge) => {
      const [t, round] = [term(f), r(f)];
      return {
        body: { term: t, r: round, a: a(f), acc: acc(f) },
        before: { type: 'clk.poll', body: { term: t, r: round, k: k(f) } },
      };
    }),
  'clk.req': bodyOf(empty),
  'clk.q': bodyOf(empty),
  'clk.st': bodyOf(
    rec({
      lamport: uint('lamport'),
      off: ms,
      target: ms,
      last: nullable(ms),
      acc: nullable(accuracy),
      term: uint('term'),
    }),
  ),
  // token ring
  'tok.pass': bodyOf(rec({ e: epoch, g: gen, br: branch, to: peerId, ti: uint('incarnation'), cfg })),
  'tok.pack': bodyOf(rec({ e: epoch, g: gen })),
  'tok.beat': bodyOf(rec({ e: epoch, g: gen, cfg })),
  'tok.lease': bodyOf(rec({ e: epoch, g: gen, br: branch, r: uint() })),
  'tok.lack': bodyOf(rec({ e: epoch, g: gen, r: uint() })),
  'tok.lnak': bodyOf(rec({ e: epoch, g: gen })),
  'tok.claim': bodyOf(rec({ e: epoch, b: epoch, te: epoch, tg: gen, tb: branch })),
  'tok.conf': bodyOf(rec({ e: epoch, ok: bool, p: epoch, ke: epoch, kc: cfg, g: gen })),
  // reliable delivery
  'rm.d': reliableData(8, { e: uint('rmEpoch'), jp: uint('rmHi') }),
  'rm.hi': bodyOf(rec({ e: uint('rmEpoch'), hi: uint('rmHi'), jp: uint('rmHi') })),
  'rm.nak': bodyOf(rec({ e: uint('rmEpoch'), r: arr(range, 32) })),
  'rm.gone': bodyOf(rec({ e: uint('rmEpoch'), lo: uint('rmHi') })),
  'rm.ack': bodyOf(
    rec(
      { e: uint('rmEpoch'), f: uint('rmHi'), a: uint('rmHi') },
      { rf: arr(refusal, RELIABLE_REFUSALS_MAX), rc: uint('rmHi') },
    ),
  ),
  'rm.u': reliableData(1, { e: uint('rmEpoch'), to: peerId, b: uint('rmHi') }),
  'rm.ua': bodyOf(
    rec(
      { e: uint('rmEpoch'), a: uint('rmHi') },
      { rf: arr(refusal, RELIABLE_REFUSALS_MAX), rc: uint('rmHi') },
    ),
  ),
  // reliable delivery's bulk lane: the same streams, carrying fragments
  'rb.d': reliableData(8, { e: uint('rmEpoch'), jp: uint('rmHi') }, fragment),
  'rb.hi': bodyOf(rec({ e: uint('rmEpoch'), hi: uint('rmHi'), jp: uint('rmHi') })),
  'rb.nak': bodyOf(rec({ e: uint('rmEpoch'), r: arr(range, 32) })),
  'rb.gone': bodyOf(rec({ e: uint('rmEpoch'), lo: uint('rmHi') })),
  'rb.ack': bodyOf(
    rec(
      { e: uint('rmEpoch'), f: uint('rmHi'), a: uint('rmHi') },
      { rf: arr(refusal, RELIABLE_REFUSALS_MAX), rc: uint('rmHi') },
    ),
  ),
  'rb.u': reliableData(1, { e: uint('rmEpoch'), to: peerId, b: uint('rmHi') }, fragment),
  'rb.ua': bodyOf(
    rec(
      { e: uint('rmEpoch'), a: uint('rmHi') },
      { rf: arr(refusal, RELIABLE_REFUSALS_MAX), rc: uint('rmHi') },
    ),
  ),
  // chat
  'ch.hreq': bodyOf(rec({ n: bounded(0, CHAT_HISTORY_SHARE_MAX) })),
  // replication, and the same protocol on kv's channel
  ...replication(replicaText),
  ...Object.fromEntries(
    Object.entries(replication(kvText)).map(([t, g]) => [KV_CHANNEL_PREFIX + t.slice('rp.'.length), g]),
  ),
  // kv's own
  'kv.read': bodyOf(rec({ q: uint(), k: kvKey })),
  'kv.val': bodyOf(rec({ q: uint(), w: nullable(kvRow), n: bounded(0, HOLDERS_COUNT_MAX) })),
  'kv.scan': bodyOf(rec({ q: uint(), a: nullable(kvKey), n: bounded(1, KV_SCAN_ROWS_MAX) })),
  'kv.rows': bodyOf(rec({ q: uint(), r: arr(kvRow, 3), m: bool })),
  // snapshot
  'sn.go': bodyOf(rec({ id: snapshotId })),
  'sn.mk': bodyOf(rec({ id: snapshotId })),
  'sn.rep': bodyOf(
    rec({
      id: snapshotId,
      k: bounded(0, SNAPSHOT_REPORT_CHUNKS_MAX - 1),
      n: bounded(1, SNAPSHOT_REPORT_CHUNKS_MAX),
      d: b64(800),
    }),
  ),
};

// ---- envelopes and plans -------------------------------------------------------------------

/** A name: the victim's (impersonation), or one at the length limit or beyond ASCII. */
const name: G<string> = fc.oneof(
  { arbitrary: fc.constant((f: Forge) => f.victim.name), weight: 5 },
  { arbitrary: k(fc.constantFrom('forger', 'n'.repeat(64), 'ünï😀')), weight: 3 },
);

const envelope: G<ForgedEnvelope> = fc
  .tuple(konst(PROTOCOL_VERSION), peerId, name, uint('incarnation'), uint(), uint('lamport'))
  .map(([v, i, n, c, s, l]) => (f: Forge) => ({ v: v(f), i: i(f), n: n(f), c: c(f), s: s(f), l: l(f) }));

/** One forged datagram: when (ms into the forging), about and to whom, and what. */
export interface Step {
  at: number;
  type: string;
  /** Index of the member the datagram is about (claimed id, counters near its own). */
  victim: number;
  /** Multicast to the group, or unicast to the target with this index (PlanOptions.targets). */
  to: 'group' | number;
  envelope: (f: Forge) => ForgedEnvelope;
  message: (f: Forge) => Forged;
  /** Null for a well-formed datagram; else the one field broken to test the decoder. */
  corrupt: Corruption | null;
}

/** One field out of its schema: in the envelope, the body, or the attachment. */
export interface Corruption {
  where: 'envelope' | 'body' | 'attachment';
  /** Which field (modulo their number), and which bad value. */
  pick: number;
  value: unknown;
}

/** One datagram in DECODER_TEST_EVERY breaks one field on purpose. */
const DECODER_TEST_EVERY = 8;
const corruption: fc.Arbitrary<Corruption | null> = fc.oneof(
  { arbitrary: fc.constant(null), weight: DECODER_TEST_EVERY - 1 },
  {
    arbitrary: fc.record({
      where: fc.constantFrom('envelope' as const, 'body' as const, 'attachment' as const),
      pick: fc.nat(),
      value: fc.constantFrom(...BAD_VALUES),
    }),
    weight: 1,
  },
);
const ENVELOPE_FIELDS = ['v', 'i', 'n', 'c', 's', 'l'] as const;
/** Versions another build might speak, and values that are no version at all. */
const BAD_VERSIONS: readonly unknown[] = [1, PROTOCOL_VERSION + 1, -1, String(PROTOCOL_VERSION)];

/** The envelope and message with the corruption applied (a copy: the originals are not touched). */
export function corrupted(c: Corruption, env: ForgedEnvelope, m: Forged): [ForgedEnvelope, Forged] {
  switch (c.where) {
    case 'envelope': {
      const field = ENVELOPE_FIELDS[c.pick % ENVELOPE_FIELDS.length]!;
      const value =
        field === 'v'
          ? BAD_VERSIONS[c.pick % BAD_VERSIONS.length]
          : field === 'n'
            ? BAD_NAMES[c.pick % BAD_NAMES.length]
            : field === 'i'
              ? 'F'.repeat(16)
              : c.value;
      return [{ ...env, [field]: value }, m];
    }
    case 'body': {
      const body = m.body as Record<string, unknown>;
      const keys = Object.keys(body);
      const key = keys.length > 0 ? keys[c.pick % keys.length]! : 'zz';
      return [env, { ...m, body: { ...body, [key]: c.value } }];
    }
    case 'attachment':
      if (!m.attachment) return [env, { ...m, attachment: Uint8Array.of(1, 0, 0, 0) }];
      // Cut short, or a varint that never ends.
      return [
        env,
        {
          ...m,
          attachment:
            c.pick % 2 === 0
              ? m.attachment.subarray(0, Math.max(0, m.attachment.length - 1 - (c.pick % 4)))
              : Buffer.concat([m.attachment, Buffer.alloc(9, 0x80)]),
        },
      ];
  }
}

export interface PlanOptions {
  types: readonly string[];
  members: number;
  /** Addresses a datagram may be unicast to: the members' and then others' (an observer). */
  targets: number;
  forgeMs: number;
  /** Datagrams per type, at least and at most. */
  perTypeMin: number;
  perTypeMax: number;
}

/** Every type, each sent a few times at random moments of the forging window, in time order. */
export function planArbitrary(o: PlanOptions): fc.Arbitrary<Step[]> {
  const stepOf = (type: string): fc.Arbitrary<Step> => {
    const message = FORGERIES[type];
    if (!message) throw new Error(`the forger has no generator for message type '${type}'`);
    return fc
      .record({
        at: fc.integer({ min: 0, max: o.forgeMs - 1 }),
        victim: fc.nat({ max: o.members - 1 }),
        to: fc.oneof(fc.constant('group' as const), fc.nat({ max: o.targets - 1 })),
        envelope,
        message,
        corrupt: corruption,
      })
      .map((s) => ({ ...s, type }));
  };
  return fc
    .tuple(...o.types.map((t) => fc.array(stepOf(t), { minLength: o.perTypeMin, maxLength: o.perTypeMax })))
    .map((perType) => perType.flat().sort((a, b) => a.at - b.at));
}

/**
 * The datagram of a step: the envelope's JSON (its fields in any order a sender may use), then
 * for types with an attachment the 0x00 mark and the bytes. Encoded by hand, not by the codec,
 * so that out-of-schema values go out as they are.
 */
export function encodeForged(type: string, env: ForgedEnvelope, m: Forged): Uint8Array {
  const json = Buffer.from(
    JSON.stringify({ v: env.v, t: type, i: env.i, n: env.n, c: env.c, s: env.s, l: env.l, b: m.body }),
  );
  if (!m.attachment) return json;
  return Buffer.concat([json, Buffer.from([0]), m.attachment]);
}

/** One line saying what a step sent, for a failure report and the holes list. */
export function describeStep(step: Step, env: ForgedEnvelope, m: Forged): string {
  const to = step.to === 'group' ? 'group' : `member ${step.to}`;
  const body = JSON.stringify(m.body);
  return `${step.type} to ${to} as ${JSON.stringify(env)} body ${body.length > 300 ? `${body.slice(0, 300)}...` : body}${
    m.attachment ? ` + ${m.attachment.length}-byte attachment` : ''
  }`;
}
