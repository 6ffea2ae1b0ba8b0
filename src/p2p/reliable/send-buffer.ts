/**
 * The sender's repair buffer for reliable delivery: the newest messages of its stream, kept as
 * UTF-8 bytes in one ring and indexed by sequence in typed arrays.
 *
 * Why bytes and not objects: a fast sender keeps thousands of messages for the few tens of ms
 * until they are acked, long enough for every kept object (and its payload string) to be copied
 * by the young-generation GC and promoted to the old generation, then swept there. Profiling a
 * blasting sender put the GC at about a fifth of its CPU with an object per message. Here a
 * publish copies the payload's bytes once and allocates nothing that outlives the call.
 *
 * Bounds: at most `messagesMax` messages (a power of two: the sequence modulo it is the slot) and
 * `bytesMax` payload bytes. The ring starts small and doubles, up to `bytesMax` plus room for the
 * space a wrap leaves unused at the end, so a peer that publishes little holds little.
 */
export class SendBuffer {
  /** Oldest and newest sequence held (lo > hi when empty). */
  lo = 1;
  hi = 0;
  /** Payload bytes held. */
  bytes = 0;
  /** The ring; reallocated when it grows, so read it after push(). */
  ring: Buffer = Buffer.alloc(0);

  /** Where the oldest message starts and where the next may go; `wrapped`: head is before tail. */
  private tail = 0;
  private head = 0;
  private wrapped = false;
  private readonly ringBytesMax: number;
  private readonly mask: number;
  private readonly offsets: Int32Array;
  private readonly lengths: Int32Array;
  private readonly lamports: Float64Array;
  /** Bytes pushed since the start, up to and including each held message (for bytesAfter). */
  private readonly ends: Float64Array;
  private pushedBytes = 0;
  private readonly topics: string[];

  constructor(
    private readonly messagesMax: number,
    private readonly bytesMax: number,
    payloadBytesMax: number,
    private readonly ringBytesStart = 64 * 1024,
  ) {
    if (messagesMax < 1 || (messagesMax & (messagesMax - 1)) !== 0)
      throw new RangeError(`messagesMax must be a power of two, got ${messagesMax}`);
    this.mask = messagesMax - 1;
    this.ringBytesMax = bytesMax + 2 * payloadBytesMax;
    this.offsets = new Int32Array(messagesMax);
    this.lengths = new Int32Array(messagesMax);
    this.lamports = new Float64Array(messagesMax);
    this.ends = new Float64Array(messagesMax);
    this.topics = new Array<string>(messagesMax).fill('');
  }

  get size(): number {
    return this.hi - this.lo + 1;
  }

  has(seq: number): boolean {
    return seq >= this.lo && seq <= this.hi;
  }

  /**
   * Whether a message of `bytes` can be pushed now without breaking a bound (growing the ring if
   * that is what it takes). When false, drop the oldest and ask again.
   */
  fits(bytes: number): boolean {
    if (this.size > 0 && (this.size >= this.messagesMax || this.bytes + bytes > this.bytesMax)) return false;
    return this.room(bytes) >= 0 || this.grow(bytes);
  }

  /** Drops the oldest message; returns its sequence. */
  dropOldest(): number {
    const seq = this.lo;
    this.bytes -= this.lengths[seq & this.mask]!;
    this.lo++;
    if (this.size === 0) {
      this.tail = this.head = 0;
      this.wrapped = false;
    } else {
      const tail = this.offsets[this.lo & this.mask]!;
      // The oldest message now lies past the wrap: the held bytes are contiguous again.
      if (this.wrapped && tail < this.tail) this.wrapped = false;
      this.tail = tail;
    }
    return seq;
  }

  /**
   * Appends message `hi + 1` (the caller checked fits(bytes) first); returns where its bytes start
   * in `ring`.
   */
  push(topic: string, payload: string, bytes: number, lamport: number): number {
    const at = this.place(topic, bytes, lamport);
    this.ring.write(payload, at, 'utf8');
    return at;
  }

  /** As push(), the payload being `head` then `body` from `start` to `end`. */
  pushBytes(
    topic: string,
    head: Uint8Array,
    body: Buffer,
    start: number,
    end: number,
    lamport: number,
  ): number {
    const at = this.place(topic, head.length + end - start, lamport);
    this.ring.set(head, at);
    body.copy(this.ring, at + head.length, start, end);
    return at;
  }

  /** Payload bytes held of the messages after `seq` (all held ones when `seq` is older). */
  bytesAfter(seq: number): number {
    if (seq >= this.hi) return 0;
    if (seq < this.lo) return this.bytes;
    return this.pushedBytes - this.ends[seq & this.mask]!;
  }

  /** Numbers message `hi + 1` and books its room; returns where its bytes go in `ring`. */
  private place(topic: string, bytes: number, lamport: number): number {
    const at = this.room(bytes);
    if (at < 0) throw new Error('SendBuffer.push without room: call fits() first');
    const seq = ++this.hi;
    if (this.size === 1) {
      this.lo = seq;
      this.tail = at;
    } else if (at < this.head) this.wrapped = true;
    const slot = seq & this.mask;
    this.pushedBytes += bytes;
    this.ends[slot] = this.pushedBytes;
    this.offsets[slot] = at;
    this.lengths[slot] = bytes;
    this.lamports[slot] = lamport;
    this.topics[slot] = topic;
    this.head = at + bytes;
    this.bytes += bytes;
    return at;
  }

  offsetOf(seq: number): number {
    return this.offsets[seq & this.mask]!;
  }

  bytesOf(seq: number): number {
    return this.lengths[seq & this.mask]!;
  }

  lamportOf(seq: number): number {
    return this.lamports[seq & this.mask]!;
  }

  topicOf(seq: number): string {
    return this.topics[seq & this.mask]!;
  }

  /** Where `bytes` more can go in the ring now, or -1. */
  private room(bytes: number): number {
    // An empty payload takes no space: it goes at the head whatever the state.
    if (bytes === 0) return this.head;
    if (this.size === 0) return bytes <= this.ring.length ? 0 : -1;
    if (this.wrapped) return this.head + bytes <= this.tail ? this.head : -1;
    if (this.head + bytes <= this.ring.length) return this.head;
    // Wrap: the end of the ring stays unused until the tail passes it.
    return bytes <= this.tail ? 0 : -1;
  }

  /** Doubles the ring (up to its maximum), copying the held messages to its start in order. */
  private grow(bytes: number): boolean {
    const cap = this.ring.length;
    if (cap >= this.ringBytesMax) return false;
    let next = Math.max(this.ringBytesStart, cap * 2);
    while (next < this.bytes + bytes && next < this.ringBytesMax) next *= 2;
    next = Math.min(next, this.ringBytesMax);
    if (next < this.bytes + bytes) return false;
    const ring = Buffer.allocUnsafe(next);
    // Held bytes lie in one run from the tail, or two when wrapped: copy runs, not messages.
    let at = 0;
    let runFrom = 0;
    let runTo = 0;
    let runDest = 0;
    for (let seq = this.lo; seq <= this.hi; seq++) {
      const slot = seq & this.mask;
      const from = this.offsets[slot]!;
      if (from !== runTo) {
        this.ring.copy(ring, runDest, runFrom, runTo);
        runFrom = runTo = from;
        runDest = at;
      }
      runTo += this.lengths[slot]!;
      this.offsets[slot] = at;
      at += this.lengths[slot]!;
    }
    this.ring.copy(ring, runDest, runFrom, runTo);
    this.ring = ring;
    this.tail = 0;
    this.head = at;
    this.wrapped = false;
    return true;
  }
}
