/**
 * Every limit of file transfer, in one place, each with why it is what it is. The roles
 * (sender.ts, receiver.ts) and the checks on what comes from the network (messages.ts) read them.
 */
/**
 * Bytes of file in one chunk (one reliable message). Large enough that the per-message cost
 * (a header, an ack, a durable write and its fsync) is small beside the bytes; small enough that
 * a restarted receiver re-fetches little and that several fit under FILE_QUEUED_BYTES_MAX.
 */
export const FILE_CHUNK_BYTES = 1024 * 1024;
/** Largest chunk an offer may announce: a receiver writes one chunk at a time, held in memory. */
export const FILE_CHUNK_BYTES_MAX = 4 * 1024 * 1024;
/**
 * Chunks in one file at most: the receiver keeps one bit per chunk, in memory and on disk (128 KiB
 * at this bound), so a forged offer cannot make it allocate more.
 */
export const FILE_CHUNKS_MAX = 1024 * 1024;
/** Largest file: FILE_CHUNKS_MAX chunks of FILE_CHUNK_BYTES (1 TiB). */
export const FILE_BYTES_MAX = FILE_CHUNKS_MAX * FILE_CHUNK_BYTES;
/** A file name's length in UTF-8 bytes: what Linux file systems allow for one path component. */
export const FILE_NAME_BYTES_MAX = 255;
/**
 * Bytes the sender lets wait in reliable delivery's queue (published, not on the wire yet) before
 * it reads the next chunk: enough to keep the link busy while the next read runs, small enough
 * that a sender's memory stays a few chunks whatever the file's size.
 */
export const FILE_QUEUED_BYTES_MAX = 4 * 1024 * 1024;
/**
 * How long the sender waits for every receiver to accept or refuse the offer before it sends the
 * chunks to those that accepted (a receiver that answers later still gets them, or asks for them).
 */
export const FILE_OFFER_WAIT_MS = 5000;
/** A receiver that has not answered the offer gets it again, by unicast, this often. */
export const FILE_OFFER_RETRY_MS = 1000;
/**
 * A receiver that has not said done and from which nothing came (an answer, an ack of a chunk, a
 * request for chunks) for this long is given up on: named "gone" when membership no longer sees
 * it live, "timed out" otherwise. Long enough for a receiver killed mid-transfer to be restarted
 * and ask for the rest.
 */
export const FILE_RECEIVER_SILENT_MS = 30_000;
/** A resuming receiver asks again for the chunks it lacks when none came for this long. */
export const FILE_NEED_RETRY_MS = 2000;
/** Chunk ranges one request asks for; the rest is asked for by the next one. */
export const FILE_NEED_RANGES_MAX = 64;
/**
 * A receiver missing chunks that gets none for this long drops the transfer: its sender is gone,
 * or gave up on this receiver (FILE_RECEIVER_SILENT_MS is half of it), and nobody else can send
 * the rest. Bounds how long a partial file stays on disk after a restart.
 */
export const FILE_STALLED_MS = 60_000;
/** Transfers a receiver takes part in at once (each holds a temporary file open). */
export const FILE_TRANSFERS_MAX = 64;
/** Transfer ids a receiver remembers after the end, to answer a late copy of an offer again. */
export const FILE_FINISHED_IDS_MAX = 1024;
/** Times a receiver sends its final answer (done or failed) when the send fails. */
export const FILE_ANSWER_ATTEMPTS_MAX = 5;
/** A reason sent with a refusal or a failure, in characters. */
export const FILE_REASON_CHARS_MAX = 200;
/**
 * Chunks a sender queues for one receiver's requests at once; it asks again for the rest when
 * these have come (bounds the sender's memory per receiver whatever a request says).
 */
export const FILE_REPAIR_CHUNKS_MAX = 256;
