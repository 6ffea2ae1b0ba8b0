/**
 * The wire format: one UDP datagram carries one envelope.
 *
 * An envelope is a JSON object with short keys (readable in a capture, fast in V8):
 *   v  protocol version (PROTOCOL_VERSION); peers of another version are refused, counted apart
 *   t  message type, owned by one protocol module; the names are part of the protocol, never reused
 *   i  sender id: 16 lowercase hex digits, random, stable for a peer name and data dir
 *   n  sender display name
 *   c  sender incarnation: grows at every start and at every refuted suspicion (SWIM)
 *   s  per-sender datagram sequence number
 *   l  Lamport time of the send
 *   b  body, validated by the schema its protocol registered for `t`
 *
 * A message type may also carry a binary attachment after the JSON: `<JSON> 0x00 <bytes>`. JSON
 * never contains a raw 0x00 byte (control characters in strings must be escaped), so the first
 * 0x00 ends the JSON unambiguously. Bulk data uses it: reliable delivery packs its messages there
 * (p2p/reliable/), where JSON would spend most of a sender's and a receiver's CPU on quoting and
 * parsing. The type's owner registers an AttachmentDecoder, which validates and parses the bytes
 * in one pass; a type without one refuses an attachment, a type with one requires it.
 *
 * Every field is validated on decode; a datagram that fails is dropped with a reason and never
 * throws past the codec. Encoding refuses anything over DATAGRAM_PAYLOAD_BYTES_MAX so that a
 * datagram never fragments on an Ethernet LAN (1500 MTU minus IP/UDP headers leaves room).
 */

/**
 * 2: binary attachments (reliable delivery's messages moved out of the JSON body).
 * 3: the token ring is the members tagged `ring` (a version-2 ring peer would be left out of it),
 *    and an observer's probe carries `o` (a version-2 peer refuses it).
 * 4: reliable delivery's bulk lane (`rb.*`: messages larger than a datagram, in fragments), which
 *    a version-3 peer refuses: its sender would wait for acks that never come.
 * 5: beyond one multicast domain: heartbeats carry `u`, `iv` and `gv` (fan-out, interval, tags
 *    version), members are probed (`sw.*`), reached (`rc.st`) and joined (`ms.*`) by unicast; a
 *    version-4 peer would take the heartbeats but never answer a probe, and be called dead.
 * 6: a sync or hello carries its tags' version (`gv`), which a version-5 peer refuses: its
 *    members would never meet ours by unicast.
 */
export const PROTOCOL_VERSION = 6;
/** Largest encoded envelope we send or accept, in bytes. */
export const DATAGRAM_PAYLOAD_BYTES_MAX = 1200;

export const NAME_CHARS_MAX = 64;
export const TYPE_CHARS_MAX = 16;
export const PEER_ID_HEX_CHARS = 16;
export const PEER_ID_BYTES = PEER_ID_HEX_CHARS / 2;

/**
 * Frames: bulk data without the JSON envelope. A large message's fragments after its first
 * (p2p/reliable/fragments.ts) are nearly all of a transfer's datagrams, and the envelope (type,
 * id, name, incarnation, sequence, Lamport time, body keys) would be a tenth of each; a frame
 * carries only what a receiver needs to place the bytes:
 *   u8 FRAME_MARK | u8 PROTOCOL_VERSION | u8 kind | 8 bytes sender id | body (the kind's owner's)
 * A frame is taken only from a live member at the address membership knows for it (node.ts): it
 * opens nothing, adopts no counter, merges no clock; what its body says is checked by its owner
 * against state an envelope set up. The first byte tells the two apart: JSON starts with '{'.
 */
/** Neither '{' nor a sealed datagram's first byte (transport/secure.ts: its format version, 1). */
export const FRAME_MARK = 0x02;
export const FRAME_HEADER_BYTES = 3 + PEER_ID_BYTES;
/**
 * The largest frame: the UDP payload of a full Ethernet frame (1500 - 20 IP - 8 UDP = 1472) less
 * the sealing overhead of a keyed group (transport/secure.ts, 33 bytes), so keyed and open
 * groups send frames of one size and neither fragments at the IP layer.
 */
export const FRAME_BYTES_MAX = 1472 - 33;

export type PeerId = string;

export interface Envelope<B = unknown> {
  v: number;
  t: string;
  i: PeerId;
  n: string;
  c: number;
  s: number;
  l: number;
  b: B;
  /** The attachment as its type's AttachmentDecoder parsed it (received envelopes only). */
  a?: unknown;
}

/** Why a datagram was dropped; 'frame': a frame (above) not from a live member at its address. */
export type DropReason =
  'oversize' | 'json' | 'envelope' | 'version' | 'type' | 'body' | 'attachment' | 'frame';

export type DecodeResult = { ok: true; env: Envelope } | { ok: false; reason: DropReason; version?: number };

/** A body check: true when the value has the exact shape the protocol expects. */
export type Check = (value: unknown) => boolean;

/**
 * Parses a type's binary attachment, given the envelope's body (already checked): the parsed value,
 * or undefined when the bytes are malformed in any way (the datagram is then dropped). Must not throw.
 */
export type AttachmentDecoder = (bytes: Buffer, body: unknown) => unknown;

/** Separates the JSON envelope from its attachment. */
const ATTACHMENT_MARK = 0x00;

export class OversizeError extends Error {
  constructor(
    readonly type: string,
    readonly bytes: number,
  ) {
    super(`message '${type}' is ${bytes} bytes, over the ${DATAGRAM_PAYLOAD_BYTES_MAX}-byte datagram limit`);
    this.name = 'OversizeError';
  }
}

/** Small, allocation-free validators for message bodies (the hot path runs them on every datagram). */
export const is = {
  uint:
    (max = Number.MAX_SAFE_INTEGER): Check =>
    (v) =>
      Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= max,
  int:
    (min: number, max: number): Check =>
    (v) =>
      Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max,
  num:
    (min: number, max: number): Check =>
    (v) =>
      typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max,
  str:
    (maxChars: number, minChars = 0): Check =>
    (v) =>
      typeof v === 'string' && v.length >= minChars && v.length <= maxChars,
  bool: (): Check => (v) => typeof v === 'boolean',
  peerId: (): Check => isPeerId,
  literal:
    (...values: unknown[]): Check =>
    (v) =>
      values.includes(v),
  nullable:
    (check: Check): Check =>
    (v) =>
      v === null || check(v),
  array:
    (item: Check, maxItems: number): Check =>
    (v) =>
      Array.isArray(v) && v.length <= maxItems && v.every(item),
  /** An object with exactly these keys (optional ones may be absent); no other keys allowed. */
  object: (required: Record<string, Check>, optional: Record<string, Check> = {}): Check => {
    const req = Object.entries(required);
    const allowed = new Set([...Object.keys(required), ...Object.keys(optional)]);
    return (v) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
      const o = v as Record<string, unknown>;
      for (const [k, check] of req) if (!check(o[k])) return false;
      for (const k in o) {
        if (!allowed.has(k)) return false;
        const opt = optional[k];
        if (opt && o[k] !== undefined && !opt(o[k])) return false;
      }
      return true;
    };
  },
  /** A map of up to maxKeys short keys to scalar values (membership tags). */
  tags:
    (maxKeys: number, keyChars: number, valueChars: number): Check =>
    (v) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
      let n = 0;
      for (const [k, x] of Object.entries(v)) {
        if (++n > maxKeys || k.length > keyChars) return false;
        if (
          typeof x === 'string'
            ? x.length > valueChars
            : typeof x === 'number'
              ? !Number.isFinite(x)
              : typeof x !== 'boolean'
        )
          return false;
      }
      return true;
    },
};

/**
 * Bytes a JSON body of `type` may take in an envelope from `senderName` that must fit one
 * datagram: the limit minus the envelope around the body, with the sequence number, incarnation
 * and Lamport time at their widest (so the room never shrinks as the counters grow).
 */
export function bodyBytesMax(type: string, senderName: string): number {
  const widest = Number.MAX_SAFE_INTEGER;
  const envelope = { v: PROTOCOL_VERSION, t: type, i: '0'.repeat(PEER_ID_HEX_CHARS), n: senderName };
  const empty = JSON.stringify({ ...envelope, c: widest, s: widest, l: widest, b: 0 });
  return DATAGRAM_PAYLOAD_BYTES_MAX - (Buffer.byteLength(empty) - 1);
}

const PEER_ID_RE = /^[0-9a-f]{16}$/;
export function isPeerId(v: unknown): v is PeerId {
  return typeof v === 'string' && PEER_ID_RE.test(v);
}

/**
 * Printable, no control characters: a name ends up in terminals and file names (a received file
 * lands in a folder named after its sender, so the characters fileNameProblem refuses are refused
 * here too: line and paragraph separators, lone surrogates).
 */
const NAME_RE = /^[^\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}\s/\\][^\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}/\\]*$/u;
export function isPeerName(v: unknown): v is string {
  return (
    typeof v === 'string' && v.length >= 1 && v.length <= NAME_CHARS_MAX && NAME_RE.test(v) && v.trim() === v
  );
}

/**
 * Encodes and decodes envelopes for a fixed set of message types. The node builds one codec from
 * the schemas every protocol module registers, so an unknown type is refused like a bad body.
 */
export class Codec {
  private readonly bodies: Map<string, Check>;
  private readonly attachments: Map<string, AttachmentDecoder>;

  constructor(bodies: Record<string, Check>, attachments: Record<string, AttachmentDecoder> = {}) {
    this.bodies = new Map(Object.entries(bodies));
    this.attachments = new Map(Object.entries(attachments));
    for (const t of this.attachments.keys())
      if (!this.bodies.has(t)) throw new Error(`attachment for unknown message type '${t}'`);
    for (const t of this.bodies.keys()) {
      if (t.length === 0 || t.length > TYPE_CHARS_MAX)
        throw new Error(`message type '${t}' must be 1-${TYPE_CHARS_MAX} chars`);
    }
  }

  has(type: string): boolean {
    return this.bodies.has(type);
  }

  /** The datagram for an envelope (its `a` is not sent) and, for types that take one, its attachment. */
  encode(env: Envelope, attachment?: Uint8Array): Buffer {
    const json = JSON.stringify({
      v: env.v,
      t: env.t,
      i: env.i,
      n: env.n,
      c: env.c,
      s: env.s,
      l: env.l,
      b: env.b,
    });
    if (!attachment) {
      const buf = Buffer.from(json);
      if (buf.length > DATAGRAM_PAYLOAD_BYTES_MAX) throw new OversizeError(env.t, buf.length);
      return buf;
    }
    const jsonBytes = Buffer.byteLength(json);
    const bytes = jsonBytes + 1 + attachment.length;
    if (bytes > DATAGRAM_PAYLOAD_BYTES_MAX) throw new OversizeError(env.t, bytes);
    const buf = Buffer.allocUnsafe(bytes);
    buf.write(json, 0, 'utf8');
    buf[jsonBytes] = ATTACHMENT_MARK;
    buf.set(attachment, jsonBytes + 1);
    return buf;
  }

  decode(data: Uint8Array): DecodeResult {
    if (data.length > DATAGRAM_PAYLOAD_BYTES_MAX) return { ok: false, reason: 'oversize' };
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const mark = buf.indexOf(ATTACHMENT_MARK);
    let raw: unknown;
    try {
      raw = JSON.parse(buf.toString('utf8', 0, mark < 0 ? buf.length : mark));
    } catch {
      return { ok: false, reason: 'json' };
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      return { ok: false, reason: 'envelope' };
    const e = raw as Record<string, unknown>;
    if (e.v !== PROTOCOL_VERSION) {
      return Number.isSafeInteger(e.v)
        ? { ok: false, reason: 'version', version: e.v as number }
        : { ok: false, reason: 'envelope' };
    }
    if (
      typeof e.t !== 'string' ||
      !isPeerId(e.i) ||
      !isPeerName(e.n) ||
      !is.uint()(e.c) ||
      !is.uint()(e.s) ||
      !is.uint()(e.l) ||
      !('b' in e) ||
      Object.keys(e).length !== 8
    ) {
      return { ok: false, reason: 'envelope' };
    }
    const check = this.bodies.get(e.t);
    if (!check) return { ok: false, reason: 'type' };
    if (!check(e.b)) return { ok: false, reason: 'body' };
    const parse = this.attachments.get(e.t);
    if (!parse)
      return mark < 0 ? { ok: true, env: e as unknown as Envelope } : { ok: false, reason: 'attachment' };
    if (mark < 0) return { ok: false, reason: 'attachment' };
    const a = parse(buf.subarray(mark + 1), e.b);
    if (a === undefined) return { ok: false, reason: 'attachment' };
    e.a = a;
    return { ok: true, env: e as unknown as Envelope };
  }
}

/**
 * Unsigned LEB128 varints for attachments: up to Number.MAX_SAFE_INTEGER in at most 8 bytes.
 * Arithmetic, not bit operators, because those are 32-bit in JavaScript.
 */
export const VARINT_BYTES_MAX = 8;

export function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    bytes++;
  }
  return bytes;
}

/** Writes `n` (a safe non-negative integer) at `offset`; returns the offset after it. */
export function writeVarint(buf: Uint8Array, offset: number, n: number): number {
  while (n >= 0x80) {
    buf[offset++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  buf[offset++] = n;
  return offset;
}

/**
 * Reads attachments without throwing: every read checks the bounds, and a failed read sets `bad`
 * (the decoder then returns undefined). Values past Number.MAX_SAFE_INTEGER are bad too.
 */
export class ByteReader {
  bad = false;
  constructor(
    readonly buf: Buffer,
    public offset = 0,
  ) {}

  get done(): boolean {
    return this.offset >= this.buf.length;
  }

  u8(): number {
    if (this.offset >= this.buf.length) {
      this.bad = true;
      return 0;
    }
    return this.buf[this.offset++]!;
  }

  varint(): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < VARINT_BYTES_MAX; i++) {
      const b = this.u8();
      n += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (n > Number.MAX_SAFE_INTEGER || (b === 0 && i > 0)) this.bad = true; // too big, or not minimal
        return n;
      }
      scale *= 0x80;
    }
    this.bad = true;
    return 0;
  }

  /** `bytes` bytes as UTF-8 text (malformed sequences become U+FFFD, as TextDecoder does). */
  utf8(bytes: number): string {
    const end = this.offset + bytes;
    if (end > this.buf.length) {
      this.bad = true;
      return '';
    }
    const s = this.buf.toString('utf8', this.offset, end);
    this.offset = end;
    return s;
  }
}

/** A frame's header (see FRAME_MARK) for a kind and a sender: written once, sent before each body. */
export function frameHeader(kind: number, sender: PeerId): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  out[0] = FRAME_MARK;
  out[1] = PROTOCOL_VERSION;
  out[2] = kind;
  out.write(sender, 3, 'hex');
  return out;
}

export type FrameResult =
  | { ok: true; kind: number; sender: PeerId; body: Buffer }
  | { ok: false; reason: DropReason; version?: number };

/** Reads a frame's header (the datagram starts with FRAME_MARK); never throws. */
export function decodeFrame(data: Buffer): FrameResult {
  if (data.length > FRAME_BYTES_MAX) return { ok: false, reason: 'oversize' };
  if (data.length < FRAME_HEADER_BYTES) return { ok: false, reason: 'envelope' };
  if (data[1] !== PROTOCOL_VERSION) return { ok: false, reason: 'version', version: data[1] };
  return {
    ok: true,
    kind: data[2]!,
    sender: data.toString('hex', 3, FRAME_HEADER_BYTES),
    body: data.subarray(FRAME_HEADER_BYTES),
  };
}
