/**
 * The join messages and their bounds (join/index.ts has the algorithm).
 *
 *   ms.sync  {g?: tags, a: cursor, n: nonce, o?: 1, k?: 1, p?: padding}   unicast, to a door or a member
 *   ms.page  {n: nonce, x?: next cursor, t: total} + hints attachment    unicast, the answer
 *   ms.hello {g: tags, a?: 1, p?: padding}                               unicast, to a hinted address
 *
 * A page's attachment is up to SYNC_PAGE_ENTRIES_MAX hints of HINT_BYTES each: member id (8 bytes),
 * IPv4 address (4), port (2, big-endian). No name and no incarnation: a hint only tells us where
 * to send a hello; the member's own answer brings its name, incarnation and tags.
 * A request that can be answered (a sync, a hello asking for an answer) must carry a body of at
 * least SYNC_REQUEST_BYTES_MIN bytes, padded if need be, so that an answer sent to a forged source
 * address is at most twice the size of what the forger sent (QUIC's anti-amplification rule).
 */
import net from 'node:net';
import { f, message, messages } from '../kit/message.js';
import { DATAGRAM_PAYLOAD_BYTES_MAX, PEER_ID_BYTES, isPeerId, type PeerId } from '../wire.js';
import { TAGS_KEYS_MAX, TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX } from '../membership.js';
import { MEMBERS_MAX } from '../config.js';
import { formatAddress, parseAddress, type Address } from '../transport/transport.js';

/** Hints in one page: 32 x 14 bytes leaves room for the envelope in one datagram. */
export const SYNC_PAGE_ENTRIES_MAX = 32;
/** One hint: id, IPv4 address, port. */
export const HINT_BYTES = PEER_ID_BYTES + 4 + 2;
/**
 * The smallest JSON body of a request that gets an answer. The envelope around it adds about 80
 * bytes, and an answer is at most DATAGRAM_PAYLOAD_BYTES_MAX: under 2x the request.
 */
export const SYNC_REQUEST_BYTES_MIN = DATAGRAM_PAYLOAD_BYTES_MAX / 2;
/** Pages one sync may take: enough for MEMBERS_MAX members, so a forger cannot page us for ever. */
export const SYNC_PAGES_MAX = Math.ceil(MEMBERS_MAX / SYNC_PAGE_ENTRIES_MAX);

const NONCE_MAX = 2 ** 32 - 1;
const cursor = (v: unknown): v is PeerId | '' => v === '' || isPeerId(v);
const tags = () => f.tags(TAGS_KEYS_MAX, TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX).wire('g');
const padding = () => f.optional(f.str(SYNC_REQUEST_BYTES_MIN)).wire('p');

/**
 * `tags` present: the sender is a member introducing itself (membership adds it on this, its own
 * envelope). `observer`: a one-shot command, never added. `back`: the push half of an exchange,
 * not to be answered by another sync.
 */
export const SYNC = message('ms.sync', {
  tags: f.optional(f.tags(TAGS_KEYS_MAX, TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX)).wire('g'),
  /** Which tags these are (membership's `gv`), so the member added on them asks for none. */
  tagsVersion: f.optional(f.uint()).wire('gv'),
  cursor: f.guard(cursor).wire('a'),
  nonce: f.uint(NONCE_MAX).wire('n'),
  observer: f.optional(f.literal(1)).wire('o'),
  back: f.optional(f.literal(1)).wire('k'),
  padding: padding(),
});
export const PAGE = message('ms.page', {
  nonce: f.uint(NONCE_MAX).wire('n'),
  next: f.optional(f.guard(isPeerId)).wire('x'),
  total: f.uint(MEMBERS_MAX * 2).wire('t'),
});
/** `answer`: the sender does not know us yet and asks for our own hello back. */
export const HELLO = message('ms.hello', {
  tags: tags(),
  /** As a sync's. */
  tagsVersion: f.optional(f.uint()).wire('gv'),
  answer: f.optional(f.literal(1)).wire('a'),
  padding: padding(),
});
export const JOIN_MESSAGES = messages(SYNC, PAGE, HELLO);

export interface Hint {
  id: PeerId;
  address: Address;
}

/** The hints attachment of a page; members whose address is not IPv4 are left out. */
export function encodeHints(hints: readonly Hint[]): Buffer {
  const usable = hints.filter((h) => net.isIPv4(parseAddress(h.address).host));
  const out = Buffer.alloc(Math.min(usable.length, SYNC_PAGE_ENTRIES_MAX) * HINT_BYTES);
  usable.slice(0, SYNC_PAGE_ENTRIES_MAX).forEach((h, i) => {
    const at = i * HINT_BYTES;
    const { host, port } = parseAddress(h.address);
    out.write(h.id, at, 'hex');
    host.split('.').forEach((octet, k) => (out[at + PEER_ID_BYTES + k] = Number(octet)));
    out.writeUInt16BE(port, at + PEER_ID_BYTES + 4);
  });
  return out;
}

/** The codec's decoder for a page's attachment: undefined (dropped, counted) unless well-formed. */
export function decodeHints(bytes: Buffer): Hint[] | undefined {
  if (bytes.length % HINT_BYTES !== 0 || bytes.length / HINT_BYTES > SYNC_PAGE_ENTRIES_MAX) return undefined;
  const hints: Hint[] = [];
  for (let at = 0; at < bytes.length; at += HINT_BYTES) {
    const ip = bytes.subarray(at + PEER_ID_BYTES, at + PEER_ID_BYTES + 4).join('.');
    const port = bytes.readUInt16BE(at + PEER_ID_BYTES + 4);
    if (port === 0) return undefined;
    hints.push({ id: bytes.toString('hex', at, at + PEER_ID_BYTES), address: formatAddress(ip, port) });
  }
  return hints;
}

/** Padding that brings a request body to SYNC_REQUEST_BYTES_MIN (JSON characters). */
export function paddingFor(body: Record<string, unknown>): string | undefined {
  const short = SYNC_REQUEST_BYTES_MIN - JSON.stringify(body).length - ',"p":""'.length;
  return short > 0 ? ' '.repeat(Math.min(short, SYNC_REQUEST_BYTES_MIN)) : undefined;
}

/** Whether a received request body is as large as an answer to it requires. */
export function paddedEnough(body: unknown): boolean {
  return JSON.stringify(body).length >= SYNC_REQUEST_BYTES_MIN;
}
