/**
 * The message kit: each message type is declared once, and from that declaration come
 *   - the check the codec runs on every received body (wire.ts), built from wire.ts's `is`;
 *   - the TypeScript type of the body, inferred (`Body<typeof SUSPECT>`), never written twice;
 *   - the mapping between the short names on the wire and the domain names a protocol uses,
 *     both ways: a protocol sends and receives `{ incarnation }`, the datagram says `{ inc }`;
 *   - a typed dispatch: a protocol gives one handler per message type and each receives its body
 *     already checked and named for the domain, so no protocol casts a body from the network.
 *
 * How to declare a protocol (membership.ts, election.ts, clock-sync.ts are the examples to copy):
 *
 *   // One declaration per message type. The key is the domain name; `.wire('inc')` gives the
 *   // short name the datagram uses (the default is the key itself). Field order is the order the
 *   // keys go on the wire. Wire names and types are part of the protocol: never reuse one.
 *   const SUSPECT = message('suspect', {
 *     target: f.peerId(),
 *     incarnation: f.uint().wire('inc'),
 *   });
 *   const LEAVE = message('leave', {});
 *   const MESSAGES = messages(SUSPECT, LEAVE);
 *
 *   class Membership implements Protocol {
 *     readonly messages = MESSAGES.checks;           // what the node's codec validates
 *     readonly onMessage = MESSAGES.dispatch({       // one handler per type, typed bodies
 *       suspect: (b, from) => this.onSuspect(b.target, b.incarnation, from),
 *       leave: (_b, from) => this.onLeave(from),
 *     });
 *     ...
 *     this.ctx.broadcast(...SUSPECT.out({ target, incarnation }));   // mapped to the wire names
 *   }
 *
 * A type that needs its body outside its handler (membership reads every heartbeat in observe())
 * uses `HB.of(env)`: the body when the envelope is of that type, undefined otherwise.
 *
 * The node accepts this shape and the older one (a `messages: Record<string, Check>` written by
 * hand with an `onMessage` that switches on `env.t`) side by side: both are a Protocol.
 */
import { is, type Check, type Envelope, type PeerId } from '../wire.js';
import type { Address } from '../transport/transport.js';

/** One field of a body: its check, whether it may be absent, and its name on the wire. */
export interface Field<T, Optional extends boolean = boolean> {
  readonly check: Check;
  readonly optional: Optional;
  /** The key in the datagram; null: the domain name itself. */
  readonly wireName: string | null;
  /** The same field under a short name on the wire. */
  wire(name: string): Field<T, Optional>;
  /** Type only: never set. */
  readonly value?: T;
}

// `any` here only lets every Field<T> stand for "some field"; the bodies are typed from each T.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyField = Field<any, boolean>;
export type Fields = Record<string, AnyField>;

type ValueOf<F> = F extends Field<infer T, boolean> ? T : never;
type RequiredKeys<F extends Fields> = { [K in keyof F]: F[K]['optional'] extends true ? never : K }[keyof F];
type OptionalKeys<F extends Fields> = { [K in keyof F]: F[K]['optional'] extends true ? K : never }[keyof F];
type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The decoded body of a declaration's fields, by domain name. */
export type BodyOf<F extends Fields> = Simplify<
  { [K in RequiredKeys<F>]: ValueOf<F[K]> } & { [K in OptionalKeys<F>]?: ValueOf<F[K]> }
>;

function field<T, O extends boolean = false>(
  check: Check,
  optional = false as O,
  wireName: string | null = null,
): Field<T, O> {
  return { check, optional, wireName, wire: (name) => field<T, O>(check, optional, name) };
}

/** The scalar shapes of wire.ts's `is`, as fields that carry their TypeScript type. */
export const f = {
  uint: (max?: number) => field<number>(is.uint(max)),
  int: (min: number, max: number) => field<number>(is.int(min, max)),
  num: (min: number, max: number) => field<number>(is.num(min, max)),
  str: (maxChars: number, minChars?: number) => field<string>(is.str(maxChars, minChars)),
  bool: () => field<boolean>(is.bool()),
  peerId: () => field<PeerId>(is.peerId()),
  literal: <const V extends ReadonlyArray<string | number | boolean>>(...values: V) =>
    field<V[number]>(is.literal(...values)),
  nullable: <T>(inner: Field<T, false>) => field<T | null>(is.nullable(inner.check)),
  array: <T>(item: Field<T, false>, maxItems: number) => field<T[]>(is.array(item.check, maxItems)),
  /** Up to maxKeys short keys to scalar values (membership tags). */
  tags: (maxKeys: number, keyChars: number, valueChars: number) =>
    field<Record<string, string | number | boolean>>(is.tags(maxKeys, keyChars, valueChars)),
  /** A value checked by a type guard of the protocol's own (a snapshot id, say). */
  guard: <T>(check: (v: unknown) => v is T) => field<T>(check),
  /** The field may be absent; an absent field is not sent. */
  optional: <T>(inner: Field<T, false>): Field<T, true> => field<T, true>(inner.check, true, inner.wireName),
};

/** Who sent a message, and from where: the envelope's fields a handler may need. */
export interface Origin {
  readonly id: PeerId;
  readonly name: string;
  readonly incarnation: number;
  /** Lamport time of the send. */
  readonly lamport: number;
  readonly address: Address;
}

/** One declared message type. */
export interface Message<N extends string = string, B = unknown> {
  readonly type: N;
  /** Validates a body as it arrives (wire names): what the codec runs. */
  readonly check: Check;
  /** The body as it goes on the wire: domain names mapped to wire names, absent fields left out. */
  toWire(body: B): Record<string, unknown>;
  /** The arguments of `ctx.broadcast` (and, after the address, of `ctx.send`) for this body. */
  out(body: B): [type: N, body: Record<string, unknown>];
  /**
   * The body of `env` by domain names when it is of this type (the codec, or the check of a large
   * message that carried it, checked it), else undefined.
   */
  of(env: Pick<Envelope, 't' | 'b'>): B | undefined;
}

export type Body<M> = M extends Message<string, infer B> ? B : never;

/** Declares a message type: its name on the wire and its fields (see the header). */
export function message<const N extends string, F extends Fields>(type: N, fields: F): Message<N, BodyOf<F>> {
  const entries = Object.entries(fields).map(([name, fd]) => ({ name, wire: fd.wireName ?? name, fd }));
  const wires = new Set(entries.map((e) => e.wire));
  if (wires.size !== entries.length) throw new Error(`message '${type}' uses a wire name twice`);
  const required: Record<string, Check> = {};
  const optional: Record<string, Check> = {};
  for (const e of entries) (e.fd.optional ? optional : required)[e.wire] = e.fd.check;
  const check = is.object(required, optional);
  const renamed = entries.some((e) => e.wire !== e.name);
  const toWire = (body: BodyOf<F>): Record<string, unknown> => {
    const b = body as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const e of entries) if (b[e.name] !== undefined) out[e.wire] = b[e.name];
    return out;
  };
  // Only for bodies the codec checked against `check`: this is where the checked shape becomes its type.
  const fromWire = (raw: unknown): BodyOf<F> => {
    if (!renamed) return raw as BodyOf<F>;
    const w = raw as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const e of entries) if (w[e.wire] !== undefined) out[e.name] = w[e.wire];
    return out as BodyOf<F>;
  };
  return {
    type,
    check,
    toWire,
    out: (body) => [type, toWire(body)],
    of: (env) => (env.t === type ? fromWire(env.b) : undefined),
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyMessage = Message<string, any>;

/** One handler per message type of a set, each given its checked body by domain names. */
export type Handlers<Ms extends AnyMessage> = {
  [M in Ms as M['type']]: (body: Body<M>, from: Origin) => void;
};

/** The message types one protocol owns. */
export interface MessageSet<Ms extends AnyMessage> {
  /** By type, the checks the node's codec runs (Protocol.messages). */
  readonly checks: Record<string, Check>;
  /** Protocol.onMessage from one handler per type. */
  dispatch(handlers: Handlers<Ms>): (env: Envelope, from: Address) => void;
}

export function messages<const Ms extends readonly AnyMessage[]>(...ms: Ms): MessageSet<Ms[number]> {
  const checks: Record<string, Check> = {};
  for (const m of ms) {
    if (m.type in checks) throw new Error(`message type '${m.type}' declared twice`);
    checks[m.type] = m.check;
  }
  const byType = new Map<string, AnyMessage>(ms.map((m) => [m.type, m]));
  return {
    checks,
    dispatch: (handlers) => {
      const table = handlers as Record<string, (body: unknown, from: Origin) => void>;
      return (env, address) => {
        const body = byType.get(env.t)?.of(env);
        if (body === undefined) return;
        table[env.t]!(body, { id: env.i, name: env.n, incarnation: env.c, lamport: env.l, address });
      };
    },
  };
}
