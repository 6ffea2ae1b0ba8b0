/**
 * An encrypted, authenticated transport: wraps any Transport (UDP or simulated) and seals every
 * datagram with AES-256-GCM under the group key, so that a stranger on the LAN can neither read
 * the group's traffic nor inject, alter or replay a datagram. The kernel above sees plain
 * envelopes and never knows.
 *
 * Wire layout of one sealed datagram (SECURE_OVERHEAD_BYTES = 33 more than the envelope):
 *
 *   offset  bytes  field
 *   0       1      format version (SECURE_FORMAT_VERSION); a JSON envelope starts with '{' instead
 *   1       4      key id: which key of the keyring sealed it (see keyring.ts)
 *   5       8      nonce prefix: random, drawn at start (and again if the counter runs out)
 *   13      4      nonce counter: big-endian, +1 per datagram sent
 *   17      n      ciphertext of the envelope (n <= DATAGRAM_PAYLOAD_BYTES_MAX)
 *   17+n    16     GCM tag
 *
 * The 12-byte GCM nonce is bytes 5..17. Associated data = bytes 0..5 (version, key id) followed by
 * the group's name ("239.255.77.77:47777"), so a datagram sealed for one group is refused by
 * another group that happens to share the key, and the header cannot be altered.
 *
 * Nonces never repeat under a key: within a process the counter only grows and the prefix is
 * redrawn before it wraps; across processes the prefixes are 64 random bits, so two of N processes
 * that ever used one key collide with probability about N^2 / 2^65 (1e-13 for N = 10,000).
 * The prefix and counter are also the replay-window key: a datagram whose (prefix, counter) was
 * already accepted, or is older than REPLAY_WINDOW_DATAGRAMS behind the newest, is refused.
 *
 * Failure modes, all counted in `stats.dropped` and never thrown: too short or too long, a
 * plaintext envelope (a peer without a key on our group), an unknown format version, a key id we
 * do not hold, a failed tag (forged, tampered, wrong group), a replay (including anything that
 * carries our own nonce prefix: transports never hand a peer its own datagrams, so it is a copy
 * or a forgery), a datagram too old for the window, and `limited` (below). Replay state is created only after a datagram authenticates, so
 * forged datagrams cost no memory; the number of tracked senders is capped (LRU), so even holders
 * of the key cannot grow it without bound. What a capped window cannot do: refuse a replay of a
 * sender evicted from the table, or of a datagram recorded before this process started (the
 * kernel's incarnations make such stale envelopes harmless to membership; see docs/security.md).
 *
 * CPU under a flood: the cheap checks (length, format, key id, replay) cost no cryptography; a
 * decryption attempt costs about 10 us, most of it Node's per-call cipher setup. Datagrams from a
 * sender that has already authenticated (its nonce prefix has a window) are always tried when they
 * come from the IP address the window is bound to: the address its first authenticated datagram
 * came from. So nothing a stranger sends can starve a member, even from the member's own spoofed
 * address. Everything else (a new peer's first datagram, a forgery with a random prefix, and a
 * forgery that copies a member's prefix from captured traffic but comes from another address) is
 * tried only within two token buckets: per source address (UNVERIFIED_SOURCE_OPENS_PER_S) and in
 * total (UNVERIFIED_OPENS_PER_S, about 2 % of a core); the rest are dropped as `limited`. Without
 * the binding, a copied prefix got past the budget and cost a decryption per datagram.
 * A member whose address changed (DHCP, a roaming laptop) is heard within the budget from its new
 * address, and its window moves there once an authenticated datagram comes from it while the old
 * address has been quiet for REBIND_QUIET_MS. Moving on the first authenticated datagram would let
 * a stranger move it: a member's datagram captured on the wire but lost on the way to us (easy
 * during a flood) is authentic and new to us, and replayed from the stranger's address it would
 * pull the window away from the member, whose own datagrams would then compete for the budget.
 * The price: during a flood of forgeries, a peer that just started, or just changed address,
 * takes longer to be heard (each of its datagrams competes for the budget); members already known
 * at their address are not affected (see docs/security.md).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { DATAGRAM_PAYLOAD_BYTES_MAX, FRAME_BYTES_MAX, FRAME_MARK } from '../wire.js';
import { KEY_ID_BYTES, type Keyring } from './keyring.js';
import { GUARD_SOURCES_MAX, RateGuard, type GuardStats } from './guard.js';
import {
  parseAddress,
  type Address,
  type DatagramHandler,
  type Transport,
  type TransportMode,
} from './transport.js';

export const SECURE_FORMAT_VERSION = 1;
export const NONCE_PREFIX_BYTES = 8;
export const NONCE_COUNTER_BYTES = 4;
export const NONCE_BYTES = NONCE_PREFIX_BYTES + NONCE_COUNTER_BYTES;
export const TAG_BYTES = 16;
export const HEADER_BYTES = 1 + KEY_ID_BYTES + NONCE_BYTES;
export const SECURE_OVERHEAD_BYTES = HEADER_BYTES + TAG_BYTES;
/** Largest sealed datagram: 1233 bytes, still under a 1500-byte Ethernet MTU with IP and UDP headers. */
/** The largest sealed datagram: an envelope's or a frame's (wire.ts), whichever is larger, sealed. */
export const SEALED_DATAGRAM_BYTES_MAX =
  Math.max(DATAGRAM_PAYLOAD_BYTES_MAX, FRAME_BYTES_MAX) + SECURE_OVERHEAD_BYTES;
/** Width of the per-sender replay window, in datagrams: reordering deeper than this is refused. */
export const REPLAY_WINDOW_DATAGRAMS = 1024;
/** Senders (nonce prefixes) whose replay window is kept; least recently heard evicted first. */
export const REPLAY_SENDERS_MAX = 4096;
/** Decryption attempts per second for datagrams from senders not yet authenticated, in total. */
export const UNVERIFIED_OPENS_PER_S = 2000;
export const UNVERIFIED_OPENS_BURST = 2000;
/** The same, per source address: a new peer needs one success; a single flooder cannot take all. */
export const UNVERIFIED_SOURCE_OPENS_PER_S = 50;
export const UNVERIFIED_SOURCE_OPENS_BURST = 100;
/**
 * A window moves to a new source address only once its bound address has authenticated nothing for
 * this long: 5 heartbeat intervals of the lan profile, far more than any flood lets through.
 */
export const REBIND_QUIET_MS = 1000;
/** The counter value after which the prefix is redrawn (the counter field is 32 bits). */
const NONCE_COUNTER_MAX = 0xffffffff;
const PLAINTEXT_FIRST_BYTE = 0x7b; // '{': every JSON envelope starts with it

/** An unsealed envelope or frame (wire.ts), as a keyless peer sends them. */
function isPlaintext(data: Uint8Array): boolean {
  return data[0] === PLAINTEXT_FIRST_BYTE || data[0] === FRAME_MARK;
}

export type SecureDropReason =
  'short' | 'oversize' | 'plaintext' | 'format' | 'key' | 'limited' | 'auth' | 'replay' | 'stale';

export const SECURE_DROP_REASONS: readonly SecureDropReason[] = [
  'short',
  'oversize',
  'plaintext',
  'format',
  'key',
  'limited',
  'auth',
  'replay',
  'stale',
];

export interface SecureStats {
  sealed: number;
  opened: number;
  dropped: Record<SecureDropReason, number>;
  /** Datagrams accepted per key id (hex): shows when an old key is no longer used by anyone. */
  openedByKey: Record<string, number>;
  /** Replay windows held now (at most REPLAY_SENDERS_MAX). */
  sendersTracked: number;
  sendersEvicted: number;
  /** Windows moved to a sender's new source address. */
  sendersMoved: number;
  /** Per-source buckets for datagrams from senders not yet authenticated. */
  unverifiedSources: GuardStats;
}

export interface UnverifiedLimits {
  totalPerS: number;
  totalBurst: number;
  perSourcePerS: number;
  perSourceBurst: number;
}

export interface SecureOptions {
  keyring: Keyring;
  /** The group's name, bound into every tag as associated data: "group:port". */
  group: string;
  /** Called on every dropped datagram (after counting), e.g. to warn once about a keyless peer. */
  onDrop?: (reason: SecureDropReason, from: Address) => void;
  /** Tests only: a fixed nonce prefix instead of a random one. */
  noncePrefix?: Uint8Array;
  /** Tests only: the first counter value. */
  nonceCounter?: number;
  replaySendersMax?: number;
  /** Clock of the limits on unverified datagrams; default performance.now (virtual in simulation). */
  now?: () => number;
  /** Limits on decrypting datagrams from senders not yet authenticated; `false`: none (unit tests). */
  unverifiedLimits?: Partial<UnverifiedLimits> | false;
}

export type OpenResult = { ok: true; plaintext: Buffer } | { ok: false; reason: SecureDropReason };

/**
 * Sliding replay window over 32-bit counters, RFC 6479 style: a bitmap of the last
 * REPLAY_WINDOW_DATAGRAMS counters below and including `top`, indexed by counter modulo the width.
 */
class ReplayWindow {
  private top = -1;
  private readonly bits = new Uint32Array(REPLAY_WINDOW_DATAGRAMS / 32);

  /** What accepting `c` would mean, without changing anything (checked before decrypting). */
  check(c: number): 'new' | 'replay' | 'stale' {
    if (c > this.top) return 'new';
    if (this.top - c >= REPLAY_WINDOW_DATAGRAMS) return 'stale';
    const i = c % REPLAY_WINDOW_DATAGRAMS;
    return this.bits[i >>> 5]! & (1 << (i & 31)) ? 'replay' : 'new';
  }

  /** Marks `c` seen; call only after check(c) === 'new' and the datagram authenticated. */
  accept(c: number): void {
    if (c > this.top) {
      if (c - this.top >= REPLAY_WINDOW_DATAGRAMS) this.bits.fill(0);
      else
        for (let k = this.top + 1; k < c; k++) {
          const i = k % REPLAY_WINDOW_DATAGRAMS;
          this.bits[i >>> 5]! &= ~(1 << (i & 31));
        }
      this.top = c;
    }
    const i = c % REPLAY_WINDOW_DATAGRAMS;
    this.bits[i >>> 5]! |= 1 << (i & 31);
  }
}

/** One authenticated sender (nonce prefix): its replay window, bound to one source IP address. */
interface Sender {
  window: ReplayWindow;
  host: string;
  /** When the bound address last authenticated a datagram. */
  heardAt: number;
}

export class SecureTransport implements Transport {
  readonly stats: SecureStats = {
    sealed: 0,
    opened: 0,
    dropped: emptyDrops(),
    openedByKey: {},
    sendersTracked: 0,
    sendersEvicted: 0,
    sendersMoved: 0,
    unverifiedSources: { admitted: 0, rateLimited: 0, sourcesEvicted: 0, sourcesTracked: 0 },
  };
  private readonly group: Buffer;
  private prefix: Buffer;
  private counter: number;
  /** Nonce prefix (hex) -> replay window and its address; Map order is recency order (LRU). */
  private readonly windows = new Map<string, Sender>();
  private readonly now: () => number;
  private readonly sendersMax: number;
  private readonly unverifiedTotal: RateGuard | null;
  private readonly unverifiedBySource: RateGuard | null;

  constructor(
    private readonly inner: Transport,
    private readonly opts: SecureOptions,
  ) {
    this.group = Buffer.from(opts.group, 'utf8');
    this.prefix = opts.noncePrefix ? Buffer.from(opts.noncePrefix) : randomBytes(NONCE_PREFIX_BYTES);
    if (this.prefix.length !== NONCE_PREFIX_BYTES)
      throw new Error(`nonce prefix must be ${NONCE_PREFIX_BYTES} bytes`);
    this.counter = opts.nonceCounter ?? 0;
    this.sendersMax = opts.replaySendersMax ?? REPLAY_SENDERS_MAX;
    const now = opts.now ?? (() => performance.now());
    this.now = now;
    const limits = opts.unverifiedLimits;
    if (limits === false) {
      this.unverifiedTotal = this.unverifiedBySource = null;
    } else {
      this.unverifiedTotal = new RateGuard({
        now,
        ratePerS: limits?.totalPerS ?? UNVERIFIED_OPENS_PER_S,
        burst: limits?.totalBurst ?? UNVERIFIED_OPENS_BURST,
        sourcesMax: 1,
      });
      this.unverifiedBySource = new RateGuard({
        now,
        ratePerS: limits?.perSourcePerS ?? UNVERIFIED_SOURCE_OPENS_PER_S,
        burst: limits?.perSourceBurst ?? UNVERIFIED_SOURCE_OPENS_BURST,
        sourcesMax: GUARD_SOURCES_MAX,
      });
      this.stats.unverifiedSources = this.unverifiedBySource.stats;
    }
  }

  get address(): Address {
    return this.inner.address;
  }

  get mode(): TransportMode {
    return this.inner.mode;
  }

  get keyring(): Keyring {
    return this.opts.keyring;
  }

  start(onDatagram: DatagramHandler): Promise<void> {
    return this.inner.start((data, from, via) => {
      const r = this.open(data, from);
      if (r.ok) onDatagram(r.plaintext, from, via);
      else this.opts.onDrop?.(r.reason, from);
    });
  }

  /** Sealed once: the multicast and the unicast copies are the same datagram to each receiver's replay window. */
  broadcast(data: Uint8Array, also?: readonly Address[]): void {
    this.inner.broadcast(this.seal(data), also);
  }

  send(to: Address, data: Uint8Array): void {
    this.inner.send(to, this.seal(data));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  setMulticastLoopback(on: boolean): void {
    this.inner.setMulticastLoopback?.(on);
  }

  /** Seals one envelope under the primary key with a fresh nonce. */
  seal(plaintext: Uint8Array): Buffer {
    if (this.counter > NONCE_COUNTER_MAX) {
      this.prefix = randomBytes(NONCE_PREFIX_BYTES);
      this.counter = 0;
    }
    const { id, key } = this.opts.keyring.primary;
    const out = Buffer.allocUnsafe(HEADER_BYTES + plaintext.length + TAG_BYTES);
    out[0] = SECURE_FORMAT_VERSION;
    id.copy(out, 1);
    this.prefix.copy(out, 1 + KEY_ID_BYTES);
    out.writeUInt32BE(this.counter++, 1 + KEY_ID_BYTES + NONCE_PREFIX_BYTES);
    const nonce = out.subarray(1 + KEY_ID_BYTES, HEADER_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(this.aad(out));
    const n = cipher.update(plaintext).copy(out, HEADER_BYTES);
    cipher.final(); // GCM is a stream mode: nothing is buffered, final() only computes the tag
    cipher.getAuthTag().copy(out, HEADER_BYTES + n);
    this.stats.sealed++;
    return out;
  }

  /**
   * Checks and decrypts one datagram from `from`, counting every drop by reason; never throws.
   * Exposed for tests and the fuzzer.
   */
  open(data: Uint8Array, from: Address = ''): OpenResult {
    const r = this.tryOpen(data, from);
    if (!r.ok) this.stats.dropped[r.reason]++;
    return r;
  }

  private tryOpen(data: Uint8Array, from: Address): OpenResult {
    if (data.length < SECURE_OVERHEAD_BYTES + 1)
      return { ok: false, reason: isPlaintext(data) ? 'plaintext' : 'short' };
    if (isPlaintext(data)) return { ok: false, reason: 'plaintext' };
    if (data.length > SEALED_DATAGRAM_BYTES_MAX) return { ok: false, reason: 'oversize' };
    if (data[0] !== SECURE_FORMAT_VERSION) return { ok: false, reason: 'format' };
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const id = buf.toString('hex', 1, 1 + KEY_ID_BYTES);
    const key = this.opts.keyring.lookup(id);
    if (!key) return { ok: false, reason: 'key' };
    // Our own prefix: a copy of a datagram we sent (transports never hand us our own). Refused, or
    // its first copy would authenticate and bind our prefix's window to the sender's address,
    // and further forgeries with our prefix from there would be tried at a decryption each.
    if (
      buf.compare(
        this.prefix,
        0,
        NONCE_PREFIX_BYTES,
        1 + KEY_ID_BYTES,
        HEADER_BYTES - NONCE_COUNTER_BYTES,
      ) === 0
    )
      return { ok: false, reason: 'replay' };
    const sender = buf.toString('hex', 1 + KEY_ID_BYTES, 1 + KEY_ID_BYTES + NONCE_PREFIX_BYTES);
    const counter = buf.readUInt32BE(1 + KEY_ID_BYTES + NONCE_PREFIX_BYTES);
    const host = parseAddress(from).host;
    const known = this.windows.get(sender);
    if (known) {
      const seen = known.window.check(counter);
      if (seen !== 'new') return { ok: false, reason: seen };
    }
    if ((!known || known.host !== host) && !this.admitUnverified(from))
      return { ok: false, reason: 'limited' };

    let plaintext: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, buf.subarray(1 + KEY_ID_BYTES, HEADER_BYTES), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(this.aad(buf));
      decipher.setAuthTag(buf.subarray(buf.length - TAG_BYTES));
      plaintext = decipher.update(buf.subarray(HEADER_BYTES, buf.length - TAG_BYTES));
      decipher.final(); // throws when the tag does not match
    } catch {
      return { ok: false, reason: 'auth' };
    }

    this.remember(sender, known, host).window.accept(counter);
    this.stats.opened++;
    this.stats.openedByKey[id] = (this.stats.openedByKey[id] ?? 0) + 1;
    return { ok: true, plaintext };
  }

  /** Both buckets must have a token; the per-source one is asked first so a flooder pays its own. */
  private admitUnverified(from: Address): boolean {
    if (!this.unverifiedBySource || !this.unverifiedTotal) return true;
    return this.unverifiedBySource.admit(from) && this.unverifiedTotal.admit('*');
  }

  private aad(datagram: Buffer): Buffer {
    return Buffer.concat([datagram.subarray(0, 1 + KEY_ID_BYTES), this.group]);
  }

  /**
   * The sender's window, created if new (bound to `host`) and moved to the recent end; evicts the
   * stalest sender. Moves it to `host` if its bound address has been quiet for REBIND_QUIET_MS.
   */
  private remember(prefix: string, known: Sender | undefined, host: string): Sender {
    const now = this.now();
    const s = known ?? { window: new ReplayWindow(), host, heardAt: now };
    if (s.host !== host && now - s.heardAt >= REBIND_QUIET_MS) {
      s.host = host;
      this.stats.sendersMoved++;
    }
    if (s.host === host) s.heardAt = now;
    this.windows.delete(prefix);
    this.windows.set(prefix, s);
    if (this.windows.size > this.sendersMax) {
      const oldest = this.windows.keys().next().value as string;
      this.windows.delete(oldest);
      this.stats.sendersEvicted++;
    }
    this.stats.sendersTracked = this.windows.size;
    return s;
  }
}

function emptyDrops(): Record<SecureDropReason, number> {
  return Object.fromEntries(SECURE_DROP_REASONS.map((r) => [r, 0])) as Record<SecureDropReason, number>;
}
