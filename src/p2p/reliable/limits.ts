/**
 * Every limit of reliable delivery, in one place: what a sender keeps, what a receiver holds, how
 * often each side speaks, and how far a number from the network may move a stream. The roles
 * (sender.ts, receiver.ts, unicast.ts) read them from here; each says why it is what it is.
 */
/** Messages the sender keeps for repair (a power of two). A receiver further behind loses the difference. */
export const RELIABLE_BUFFER_MESSAGES_MAX = 8192;
/** Payload bytes the sender keeps for repair (with RELIABLE_BUFFER_MESSAGES_MAX, whichever is hit first). */
export const RELIABLE_BUFFER_BYTES_MAX = 4 * 1024 * 1024;
/**
 * Largest payload of the small lane, in UTF-8 bytes: one such message always fits one datagram.
 * Larger messages, and binary ones, go in the bulk lane as fragments (fragments.ts).
 */
export const RELIABLE_PAYLOAD_BYTES_MAX = 700;
/** Largest message, in bytes (fragmented): a transfer of more goes as several (files go in chunks). */
export const RELIABLE_MESSAGE_BYTES_MAX = 64 * 1024 * 1024;
/**
 * Bytes of large messages a sender lets wait for its windows (multicast and unicast each): the
 * caller's own buffers, held until sent. Past it publish() throws and sendTo() fails 'busy': a
 * long transfer publishes its next part when queuedBytes() is low instead.
 */
export const RELIABLE_QUEUE_BYTES_MAX = 256 * 1024 * 1024;
/** Fragments in one message: RELIABLE_MESSAGE_BYTES_MAX in fragments of at least 64 bytes. */
export const RELIABLE_FRAGMENTS_MAX = 2 ** 20;
/**
 * Partial messages a receiver holds from one sender, in bytes: a multicast and a unicast message
 * of the largest size at once (one of each is reassembled at a time: fragments.ts).
 */
export const RELIABLE_REASSEMBLY_BYTES_PER_SENDER_MAX = 2 * RELIABLE_MESSAGE_BYTES_MAX;
/** Partial messages a receiver holds from all senders, in bytes. */
export const RELIABLE_REASSEMBLY_BYTES_TOTAL_MAX = 256 * 1024 * 1024;
/** A receiver repeats a refusal on its acks this long (acks may be lost; each tick sends one). */
export const RELIABLE_REFUSAL_REPEAT_MS = 2000;
/** Refusals one ack carries. */
export const RELIABLE_REFUSALS_MAX = 16;
/**
 * The bulk lane's repair buffer: fragments kept until every receiver acked them (flow control
 * never drops one before). Twice the largest window: what is in flight, and the acked fragments
 * a receiver the sender no longer waits for may still ask for.
 */
export const RELIABLE_BULK_BUFFER_MESSAGES_MAX = 8192;
export const RELIABLE_BULK_BUFFER_BYTES_MAX = 4 * 1024 * 1024;
/**
 * The bulk sender's window: bytes sent and not yet acked by the slowest live receiver. It starts
 * at RELIABLE_BULK_WINDOW_START_BYTES, grows by what is acked (doubling each round trip) up to
 * RELIABLE_BULK_WINDOW_BYTES_MAX, and shrinks by RELIABLE_BULK_WINDOW_CUT on a round trip with
 * NACKs, down to RELIABLE_BULK_WINDOW_MIN_BYTES (flow.ts says why these). The largest window,
 * 2 MiB, was measured with `npm run bench -- files` (a 128 MiB file to four receivers, each in
 * its own process on a namespace LAN, writing to tmpfs): 1 MiB took 4.5 s without loss and
 * 17.3 s at 10 % loss; 2 MiB 4.6 s and 9.8 s, with no socket-buffer overflow and receivers under
 * 110 MiB; 4 MiB (256 MiB file) overflowed the receivers' socket buffers while they wrote, the
 * repairs tripling the bytes sent, and took them to 145 MiB.
 */
export const RELIABLE_BULK_WINDOW_START_BYTES = 256 * 1024;
export const RELIABLE_BULK_WINDOW_MIN_BYTES = 64 * 1024;
export const RELIABLE_BULK_WINDOW_BYTES_MAX = 2 * 1024 * 1024;
export const RELIABLE_BULK_WINDOW_CUT = 0.75;
/**
 * A bulk-lane receiver acks at once when this many more fragments can be acked: the sender's
 * window moves on acks, so they must come many times per window (64 fragments are about 64 KiB),
 * not once per tick.
 */
export const RELIABLE_BULK_ACK_EVERY_MESSAGES = 64;
/**
 * Delivered messages a stream lets wait for their durable writes while it still acks what it
 * received, so the sender's window moves on (durable.ts): 8 file chunks of 1 MiB being written
 * while the next ones arrive.
 */
export const RELIABLE_WRITES_AHEAD_MAX = 8;
/**
 * The bulk lane's repairs, a token bucket of fragments: far fewer at once than the small lane's,
 * since each is a full frame and a burst of thousands overruns a switch port's queue and the
 * repairs are lost in turn. Measured with a 256 MiB `peer chat --send-file` to four receivers on
 * a namespace LAN (one run each): with the small lane's bucket (100,000/s, bursts of 4,096) the
 * sender sent 1.87x the file without loss; 50,000/s and 512, 1.65x; 20,000/s and 256, 1.23x in
 * the same 9.7 s, though 10 % loss then took 23 s instead of 19 s (1.53x either way).
 */
export const RELIABLE_BULK_REPAIR_MESSAGES_PER_S = 20_000;
export const RELIABLE_BULK_REPAIR_BURST_MESSAGES = 256;
/** The bulk lane NACKs a lasting gap this often, as data arrives (receiver.ts). */
export const RELIABLE_BULK_NACK_INTERVAL_MS = 10;
/**
 * The bulk lane's NACKs as data arrives ask only for gaps past those asked for within this many
 * ms (their repairs may be on their way), then for all again. Measured on a namespace LAN (64 MiB
 * to 4 receivers, 10 % loss on every host): 10 ms moved 26 MiB/s at 2.2 bytes sent per byte,
 * 20 ms 21 MiB/s at 1.6, 40 ms 17 MiB/s at 1.5.
 */
export const RELIABLE_BULK_RENACK_MS = 20;
/** NACKs the bulk lane sends at once when more gaps remain than one lists (receiver.ts). */
export const RELIABLE_BULK_NACKS_PER_ROUND = 8;
/** Fragments of one unicast stream sent and not yet acked: its window. */
export const RELIABLE_UNICAST_WINDOW_MESSAGES = 256;
/** Topic names: short, [a-z0-9.-]. */
export const RELIABLE_TOPIC_CHARS_MAX = 24;
/** Messages in one datagram (the byte limit usually binds first). */
export const RELIABLE_BATCH_MESSAGES_MAX = 128;
/** Messages in one unicast datagram: each is acked and retried on its own. */
export const RELIABLE_UNICAST_BATCH_MESSAGES_MAX = 1;
/** Out-of-order messages one receiver holds per stream while waiting for a gap to be repaired. */
export const RELIABLE_RECEIVE_WINDOW_MESSAGES_MAX = 8192;
/** Out-of-order messages held over all streams. */
export const RELIABLE_HELD_MESSAGES_TOTAL_MAX = 65_536;
/** Streams (senders) tracked at once by a receiver. */
export const RELIABLE_STREAMS_MAX = 1024;
/** A receiver acks at once, without waiting for its tick, when this many more messages can be acked. */
export const RELIABLE_ACK_EVERY_MESSAGES = 512;
/** A gap must be this old before it is NACKed: datagrams reordered by a few ms fill it first. */
export const RELIABLE_NACK_DELAY_MS = 5;
/** Between two NACKs for the same gap (the repair may itself be lost). */
export const RELIABLE_NACK_INTERVAL_MS = 40;
/** Ranges and messages asked for in one NACK. */
export const RELIABLE_NACK_RANGES_MAX = 32;
export const RELIABLE_NACK_MESSAGES_MAX = 1024;
/** Repair rate per sender: a token bucket of messages. */
export const RELIABLE_REPAIR_MESSAGES_PER_S = 100_000;
export const RELIABLE_REPAIR_BURST_MESSAGES = 4096;
/** While a tracked receiver has not acked the newest message, the sender announces it this often. */
export const RELIABLE_ANNOUNCE_MS = 50;
/** Announce period otherwise, for receivers the sender does not know yet. */
export const RELIABLE_IDLE_ANNOUNCE_MS = 1000;
/**
 * Once every tracked receiver has acked our newest message, the idle period doubles after each
 * announce up to this: nobody lacks our tail then, and an idle group's announces would otherwise
 * be a datagram per member per second, for ever, to every member. New data, a lagging receiver
 * or a new one puts it back to RELIABLE_IDLE_ANNOUNCE_MS.
 */
export const RELIABLE_IDLE_ANNOUNCE_MAX_MS = 30_000;
/**
 * No back-off while an observer probed this recently: it reads our stream overheard, acks
 * nothing, and learns a lost tail only from an announce. An observer probes at least every 4 s
 * (membership.ts, OBSERVER_PROBE_EVERY_MAX_MS), so this outlasts two lost probes.
 */
export const RELIABLE_OBSERVER_HEARD_MS = 15_000;
/** A gap not repaired for this long, while the sender still looks alive, is reported lost. */
export const RELIABLE_GAP_TIMEOUT_MS = 10_000;
/** Closed streams (sender dead, left or restarted) are remembered this long to ignore late datagrams. */
export const RELIABLE_CLOSED_RETENTION_MS = 60_000;
/** Unicast: retry period, give-up time, and queue bounds. */
export const RELIABLE_UNICAST_RETRY_MS = 100;
export const RELIABLE_UNICAST_TIMEOUT_MS = 5000;
export const RELIABLE_UNICAST_PENDING_MAX = 1024;
export const RELIABLE_UNICAST_PENDING_TOTAL_MAX = 8192;
/** publish() callbacks waiting for acks at once. */
export const RELIABLE_WAITERS_MAX = 4096;
/**
 * How far ahead of a stream's next position a sequence from the network may be (a message's
 * sequence, an announced `hi`, a unicast base): further is refused and counted as 'seq'
 * (bounds.ts), never adopted, so one forged number cannot move a stream past everything its sender
 * will ever send. Why 2^23 (8.4 million messages):
 * - at least RELIABLE_RECEIVE_WINDOW_MESSAGES_MAX + RELIABLE_BUFFER_MESSAGES_MAX (16,384), so no
 *   message we could still hold or have repaired is ever refused;
 * - a live sender is ahead of us by what it published while none of its datagrams reached us.
 *   Publishing is not flow-controlled, so that is its rate times the silence: the fastest sender
 *   measured (bench/chat.ts) publishes about 200,000 messages/s, and a sender silent for longer
 *   than membership's death timeout, at most (1 + HEALTH_SCORE_MAX) x deadAfterMs (22.5 s with
 *   the local profile), is declared dead, its stream closed, and rejoined at its join point when
 *   it comes back (a rejoin is gated by membership, not by this step). 200,000 x 22.5 s is 4.5
 *   million: the step leaves about twice that.
 * A forged value within the step is still adopted: the step makes the damage bounded, not nil.
 */
export const RELIABLE_SEQ_STEP_MAX = 2 ** 23;
/**
 * A tracked receiver that never acked for this long after it first owed an ack (our first message
 * after we tracked it) is not waited for by announces, join points and the bulk window.
 */
export const RELIABLE_SILENT_RECEIVER_MS = 5000;
/**
 * A tracked receiver our group sends do not reach yet (met by unicast, its address not proved:
 * reach.ts) owes no ack until they do, for at most this long after we tracked it; then its
 * silence counts as above. Reach retries its proof at 250, 500, 1000 and 2000 ms, then every
 * 2000: at 30 % loss an exchange fails about half the time, so about 1 in 100 is unproved after
 * 10 s. A member at a forged address is never proved: it holds our join point and bulk window
 * back for this plus RELIABLE_SILENT_RECEIVER_MS, once.
 */
export const RELIABLE_UNREACHED_WAIT_MS = 10_000;
