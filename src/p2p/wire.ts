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
 * Every field is validated on decode; a datagram that fails is dropped with a reason and never
 * throws past the codec. Encoding refuses anything over DATAGRAM_PAYLOAD_BYTES_MAX so that a
 * datagram never fragments on an Ethernet LAN (1500 MTU minus IP/UDP headers leaves room).
 */

export const PROTOCOL_VERSION = 1;
/** Largest encoded envelope we send or accept, in bytes. */
export const DATAGRAM_PAYLOAD_BYTES_MAX = 1200;
export const NAME_CHARS_MAX = 64;
export const TYPE_CHARS_MAX = 16;
export const PEER_ID_HEX_CHARS = 16;

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
}

export type DropReason = 'oversize' | 'json' | 'envelope' | 'version' | 'type' | 'body';

export type DecodeResult = { ok: true; env: Envelope } | { ok: false; reason: DropReason; version?: number };

/** A body check: true when the value has the exact shape the protocol expects. */
export type Check = (value: unknown) => boolean;

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

const PEER_ID_RE = /^[0-9a-f]{16}$/;
export function isPeerId(v: unknown): v is PeerId {
  return typeof v === 'string' && PEER_ID_RE.test(v);
}

/** Printable, no control characters: a name ends up in terminals and file names. */
const NAME_RE = /^[^\p{Cc}\p{Cf}\s/\\][^\p{Cc}\p{Cf}/\\]*$/u;
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

  constructor(bodies: Record<string, Check>) {
    this.bodies = new Map(Object.entries(bodies));
    for (const t of this.bodies.keys()) {
      if (t.length === 0 || t.length > TYPE_CHARS_MAX)
        throw new Error(`message type '${t}' must be 1-${TYPE_CHARS_MAX} chars`);
    }
  }

  has(type: string): boolean {
    return this.bodies.has(type);
  }

  encode(env: Envelope): Buffer {
    const buf = Buffer.from(JSON.stringify(env));
    if (buf.length > DATAGRAM_PAYLOAD_BYTES_MAX) throw new OversizeError(env.t, buf.length);
    return buf;
  }

  decode(data: Uint8Array): DecodeResult {
    if (data.length > DATAGRAM_PAYLOAD_BYTES_MAX) return { ok: false, reason: 'oversize' };
    let raw: unknown;
    try {
      raw = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
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
    return { ok: true, env: e as unknown as Envelope };
  }
}
