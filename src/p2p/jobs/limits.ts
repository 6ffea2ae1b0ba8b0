/**
 * Every limit of the jobs protocol, in one place, each with why it is what it is. The roles
 * (dispatcher.ts, runner.ts) and the checks on what comes from the network (messages.ts,
 * command.ts) read them.
 */

// ---- pipelining and credits

/**
 * Jobs a worker holds queued per slot, beyond the one running: a slot starts its next job in the
 * same event-loop turn as the last one ends, with no round trip to the submitter in between. Two,
 * so that a result and its refill (one round trip) overlap two short jobs.
 */
export const JOB_PIPELINE_PER_SLOT = 2;
/** Slots a worker may advertise: more would let one advert claim a submitter's whole window. */
export const JOB_SLOTS_MAX = 256;
/** How often a worker refreshes its held count in its membership tags, at most. */
export const JOB_TAGS_INTERVAL_MS = 200;
/**
 * Jobs of input a submitter holds beyond those the workers hold, so each turn has jobs ready to
 * refill the credits a batch of results frees; the rest of the input stays unread.
 */
export const JOB_FEED_AHEAD_MIN = 64;

// ---- the shape of a run

/** Words of a command template: far more than any command line a person writes. */
export const JOB_WORDS_MAX = 4096;
/** One word, in UTF-8 bytes: Linux's MAX_ARG_STRLEN, the longest argument exec accepts. */
export const JOB_WORD_BYTES_MAX = 128 * 1024;
/** A command after substitution, in UTF-8 bytes: well under Linux's ARG_MAX of 2 MiB. */
export const JOB_COMMAND_BYTES_MAX = 256 * 1024;
/** Variables passed with `--env`, and their bytes in all (names and values). */
export const JOB_ENV_MAX = 64;
export const JOB_ENV_BYTES_MAX = 64 * 1024;
/** A variable's name: what a POSIX shell accepts as one. */
export const JOB_ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** Names the protocol sets itself (PEER_JOB_ID...) and the key file's, never passed from a submitter. */
export const JOB_ENV_RESERVED_PREFIX = 'PEER_';
/** Longest per-job timeout: a week, beyond which a "job" is a service. */
export const JOB_TIMEOUT_MS_MAX = 7 * 24 * 3600 * 1000;
/** SIGTERM to SIGKILL: at least long enough to be a signal, at most what a person waits for Ctrl-C. */
export const JOB_GRACE_MS_MIN = 100;
export const JOB_GRACE_MS_MAX = 60_000;
/** Default grace (`--kill-grace`): GNU parallel's --termseq escalates within 375 ms; we are kinder. */
export const JOB_KILL_GRACE_MS = 2000;
/** `--transfer` and `--return` paths of a run, and the bytes of one path (Linux's PATH_MAX). */
export const JOB_PATHS_MAX = 16;
export const JOB_PATH_BYTES_MAX = 4096;
/** One `--transfer` or `--return` file: reliable delivery carries one message of at most 64 MiB. */
export const JOB_FILE_BYTES_MAX = 64 * 1024 * 1024;
/**
 * Bytes reliable delivery may hold unacked before a submitter places another job that needs files:
 * two files' worth, so one is on the wire while the next is queued, and memory stays bounded.
 */
export const JOB_FILES_IN_FLIGHT_BYTES_MAX = 2 * JOB_FILE_BYTES_MAX;
/**
 * `--transfer` files a worker holds for its runs at once (each run's shared files, and those of
 * the jobs it holds): beyond it a file is refused and the job that needed it fails without running.
 */
export const JOB_WORKER_FILE_BYTES_MAX = 1024 * 1024 * 1024;
/**
 * How long a submitter places nothing more on a worker that said a file did not get there: a
 * worker out of room for files frees it as its jobs start, and sending the files again at once
 * would only loop them over the LAN. A few round trips: a file lost on the way costs no more.
 */
export const JOB_MISSING_FILE_PAUSE_MS = 200;
/** One input line in UTF-8 bytes: a line, not a file. */
export const JOB_INPUT_BYTES_MAX = 64 * 1024;
/** Tries of a job in all (`--retries`): bounds the attempt numbers a peer accepts. */
export const JOB_ATTEMPTS_MAX = 1000;

// ---- messages

/** Jobs in one jb.jobs, results in one jb.done: a turn's worth, small enough to decode at once. */
export const JOB_BATCH_MAX = 64;
/**
 * Bytes of a jb.jobs payload a submitter packs before starting another: what reliable delivery
 * sends in one datagram of its small lane (RELIABLE_PAYLOAD_BYTES_MAX), so a batch is one datagram.
 */
export const JOB_BATCH_PACK_BYTES = 700;
/** Entries of one jb.cancel or jb.full. */
export const JOB_CANCEL_ENTRIES_MAX = 1024;
/** Output kept per job and stream: the head is kept, the rest dropped and the result marked truncated. */
export const JOB_OUTPUT_BYTES_MAX = 16 * 1024 * 1024;
/**
 * Bytes of output a worker puts in one jb.done: the rest of the batch's results wait for the next
 * one, so one reassembled message stays well under reliable delivery's 64 MiB.
 */
export const JOB_DONE_BYTES_MAX = 32 * 1024 * 1024;
/** A chunk of `--line-buffer` output (jb.out), and how long a worker holds one before sending it. */
export const JOB_OUT_CHUNK_BYTES_MAX = 64 * 1024;
/** Characters of a reason (why a job could not start, why a run is refused). */
export const JOB_WHY_CHARS_MAX = 200;
/** Exit codes a shell reports (0..255), and −1 for a job we killed. */
export const JOB_EXIT_MIN = -1;
export const JOB_EXIT_MAX = 255;
/** Signal numbers on Linux, real-time ones included. */
export const JOB_SIGNAL_MAX = 64;

// ---- the worker

/** Runs a worker serves at once (submitters are few; each run costs a spec and a queue). */
export const JOB_RUNS_MAX = 64;
/**
 * How long a worker serves a run whose submitter membership does not know yet (its first
 * heartbeat lost, its jobs come first): a few heartbeats, then it is taken for gone.
 */
export const JOB_SUBMITTER_UNKNOWN_MS = 2000;
/**
 * How long a worker remembers a run it dropped because its submitter seemed gone, to tell the
 * submitter if it turns out alive: membership keeps a dead member about as long (deadRetentionMs).
 */
export const JOB_DROPPED_REMEMBERED_MS = 60_000;
/** Messages a worker holds for peers membership does not know yet: a few turns of results. */
export const JOB_UNKNOWN_PEER_MESSAGES_MAX = 1024;
/**
 * Highest fence remembered per job, most recent first: enough for the jobs a worker holds over
 * many runs; a job forgotten for longer than that has long been recorded by its submitter.
 */
export const JOB_FENCES_REMEMBERED_MAX = 65_536;

// ---- the submitter

/**
 * Slack on top of a job's timeout and grace before its submitter gives up waiting for its result
 * (the worker enforces the timeout itself; this is the backstop for a worker that went mute).
 */
export const JOB_RESULT_SLACK_MS = 10_000;
/** After Ctrl-C, how long beyond the grace the submitter waits for workers to confirm the kills. */
export const JOB_CANCEL_WAIT_MS = 3000;
/**
 * How long a run with jobs to place may go without any worker that can take them before it fails:
 * long enough for a probe's answers (a one-shot submitter hears every worker within one).
 */
export const JOB_NO_WORKER_MS = 2000;
/** Exit status of a job whose pinned worker (`--on`) is gone: what GNU parallel reports for ssh failures. */
export const JOB_EXIT_WORKER_GONE = 255;
/** Job and seq numbers of a run: four billion jobs, past what any input file holds. */
export const JOB_NUMBER_MAX = 2 ** 32;

// ---- detached runs (the keeper: keeper.ts)

/** Jobs of a detached run: its whole input is handed over at once and stored, so it is bounded. */
export const RUN_JOBS_MAX = 100_000;
/**
 * Output kept per job and stream of a detached run: stored in every full peer's SQLite file until
 * collected, so far less than an attached run's JOB_OUTPUT_BYTES_MAX (the head is kept).
 */
export const RUN_OUTPUT_BYTES_MAX = 1024 * 1024;
/** How long a run is kept once collected (read to its end, or cancelled): a week to read it again. */
export const RUN_KEPT_MS = 7 * 24 * 3600 * 1000;
/** Runs a store keeps; beyond it the oldest collected go first, and a new run is refused if none is. */
export const RUNS_KEPT_MAX = 1000;
/** Open runs a keeper hosts at once: each is a run on every worker, which serve JOB_RUNS_MAX at most. */
export const RUNS_OPEN_MAX = 32;
/** Output bytes of results in one page of `peer run --attach` (jd.page): a few datagrams' worth of work to decode. */
export const RUN_PAGE_BYTES_MAX = 4 * 1024 * 1024;
/** Results in one jd.fin or jd.page. */
export const RUN_PAGE_RESULTS_MAX = 256;
/** Runs in one listing (jd.runs). */
export const RUN_LIST_MAX = 200;
/**
 * How long a new keeper waits before it places the jobs of the runs it resumes: a few heartbeats,
 * so it has heard every worker (their adverts, and their Lamport times, which lift its fences above
 * any fence the old keeper gave out).
 */
export const KEEPER_TAKEOVER_DELAY_MS = 2000;
/** How often a keeper tries again a result write that failed (a full disk): the worker's ack waits. */
export const KEEPER_WRITE_RETRY_MS = 500;
/** How often stores forget the runs kept long enough. */
export const KEEPER_PRUNE_INTERVAL_MS = 60_000;
/**
 * How long a client waits for the keeper's answer to a delivered request before it asks again
 * (requests are idempotent): a coordinator that had just lost its role ignores them.
 */
export const KEEPER_ASK_AGAIN_MS = 3000;
/** Requests a client holds for the keeper at once (callers bound them with their own timeout). */
export const KEEPER_ASKS_MAX = 64;
/**
 * How long a keeper waits before it opens a run again on a worker that said it has no such run
 * from it: the worker may still hold the run for the old keeper, not knowing the new one is the
 * coordinator yet (election news comes with heartbeats), and asking at once would loop.
 */
export const JOB_REOPEN_PAUSE_MS = 200;
/** Workers a detached run may name (`--on w1,w2`): more than a LAN has. */
export const RUN_WORKERS_NAMED_MAX = 1024;
