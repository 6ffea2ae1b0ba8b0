/**
 * `peer tags set|unset` on a running `peer up`: a local control channel, and the tags file.
 *
 * The channel is a unix socket in the data dir, `<name>.ctl`, rather than a file the peer polls:
 * the command gets an answer (the tags now in force, or why not) the moment the peer applied
 * them, and an error at once when no peer runs; the socket is as private as the data dir (only
 * its owner can reach it: it is created mode 0600, and the peer's lock already says the data dir
 * is one user's). The peer saves its user tags in `<name>.tags.json` (temp file, fsync, rename)
 * before it answers, so tags acknowledged survive a restart: acknowledged means durable.
 * The file and every request are checked as the network is (tags.ts): a damaged file stops
 * `peer up` with one line, a bad request is answered with why.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { peerFile } from '../storage/store.js';
import { StoreError } from '../storage/store.js';
import { UsageError } from './network.js';
import { userTagsProblem, type UserTags } from '../p2p/events/index.js';

export const CONTROL_SOCKET_SUFFIX = '.ctl';
export const TAGS_FILE_SUFFIX = '.tags.json';
/** A tags request or reply, in bytes: a few tags. */
export const CONTROL_MESSAGE_BYTES_MAX = 4096;
/** A request line, in bytes: an event or a query (agent-relay.ts) carries up to 8 KiB of payload in base64. */
export const CONTROL_REQUEST_BYTES_MAX = 16 * 1024;
/** How long `peer tags` waits for the peer's reply, in ms. */
export const CONTROL_REPLY_MS = 5000;
/** Longest unix socket path Linux takes (sun_path is 108 bytes with its NUL). */
const SOCKET_PATH_BYTES_MAX = 107;

export type TagsRequest = { op: 'set'; tags: UserTags } | { op: 'unset'; keys: string[] };
export type TagsReply = { ok: true; tags: UserTags } | { ok: false; error: string };

export function controlSocket(dataDir: string, name: string): string {
  const p = peerFile(path.resolve(dataDir), name, CONTROL_SOCKET_SUFFIX);
  if (Buffer.byteLength(p) > SOCKET_PATH_BYTES_MAX)
    throw new UsageError(
      `the control socket ${p} is longer than the ${SOCKET_PATH_BYTES_MAX} bytes a unix socket path may be; use a shorter --data-dir`,
    );
  return p;
}

/** The user tags saved for peer `name`, or {} when none were. */
export function loadTags(dataDir: string, name: string): UserTags {
  const file = peerFile(dataDir, name, TAGS_FILE_SUFFIX);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new StoreError(`cannot read ${file}: ${(err as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    v = null;
  }
  const tags = isStringRecord(v) ? v : null;
  const problem = tags ? userTagsProblem(tags) : 'not a JSON object of strings';
  if (problem || !tags)
    throw new StoreError(`${file} is damaged (${problem}); fix it or delete it to start without saved tags`);
  return tags;
}

/** Saves the user tags of peer `name`: durable when it returns. */
export function saveTags(dataDir: string, name: string, tags: UserTags): void {
  const file = peerFile(dataDir, name, TAGS_FILE_SUFFIX);
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, `${JSON.stringify(tags)}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  const dir = fs.openSync(path.dirname(file), 'r');
  try {
    fs.fsyncSync(dir);
  } finally {
    fs.closeSync(dir);
  }
}

/** The change a request asks of `current`, or why it cannot be made. */
export function applyRequest(current: UserTags, req: TagsRequest): TagsReply {
  const next = { ...current };
  if (req.op === 'set') Object.assign(next, req.tags);
  else for (const k of req.keys) delete next[k];
  const problem = userTagsProblem(next);
  return problem ? { ok: false, error: problem } : { ok: true, tags: next };
}

/**
 * Serves `peer tags` for a running peer: `apply` makes the change (saves and announces it) and
 * returns the reply. Other requests (`op` event or query) go to `relay`, which writes its reply
 * lines on the connection and ends it. A stale socket a crashed peer left is replaced (we hold the
 * data dir's lock).
 */
export function serveControl(
  socketPath: string,
  apply: (req: TagsRequest) => TagsReply,
  relay: (req: Record<string, unknown>, conn: net.Socket) => void,
): net.Server {
  fs.rmSync(socketPath, { force: true });
  const server = net.createServer((conn) => {
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('error', () => {});
    conn.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0 && buf.length <= CONTROL_REQUEST_BYTES_MAX) return;
      conn.removeAllListeners('data');
      const req = nl < 0 ? null : parseRequest(buf.slice(0, nl));
      if (req && (req.op === 'event' || req.op === 'query')) return relay(req, conn);
      const reply: TagsReply =
        nl < 0 ? { ok: false, error: 'request too long' } : req ? handle(req, apply) : notJson;
      conn.end(`${JSON.stringify(reply)}\n`);
    });
  });
  // The peer runs on without it: `peer tags` then says no peer answers.
  server.on('error', (err) =>
    process.stderr.write(
      `peer: cannot serve peer tags on ${socketPath} (${err.message}); tags stay as they are\n`,
    ),
  );
  server.listen(socketPath, () => fs.chmodSync(socketPath, 0o600));
  server.unref();
  return server;
}

const notJson: TagsReply = { ok: false, error: 'request is not a JSON object' };

function parseRequest(line: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function handle(r: Record<string, unknown>, apply: (req: TagsRequest) => TagsReply): TagsReply {
  if (r.op === 'set' && isStringRecord(r.tags)) return apply({ op: 'set', tags: r.tags });
  if (r.op === 'unset' && Array.isArray(r.keys) && r.keys.every((k) => typeof k === 'string'))
    return apply({ op: 'unset', keys: r.keys as string[] });
  return { ok: false, error: 'request is neither a set nor an unset' };
}

/** Sends one request to the peer behind `socketPath` and returns its reply. */
export function requestTags(
  socketPath: string,
  req: TagsRequest,
  name: string,
  dataDir: string,
): Promise<TagsReply> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      conn.destroy();
      reject(
        new UsageError(
          `peer '${name}' did not answer on ${socketPath} within ${CONTROL_REPLY_MS} ms; is it stuck? check its log`,
        ),
      );
    }, CONTROL_REPLY_MS);
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write(`${JSON.stringify(req)}\n`));
    conn.on('data', (d: string) => {
      buf += d;
      if (buf.length > CONTROL_MESSAGE_BYTES_MAX) conn.destroy(new Error('reply too long'));
    });
    conn.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const absent = err.code === 'ENOENT' || err.code === 'ECONNREFUSED';
      reject(
        new UsageError(
          absent
            ? `no peer named '${name}' runs with data dir ${dataDir}; start it with peer up (--tag K=V sets tags at start), or pass its --name and --data-dir`
            : `cannot reach peer '${name}' on ${socketPath}: ${err.message}`,
        ),
      );
    });
    conn.on('end', () => {
      clearTimeout(timer);
      let reply: unknown;
      try {
        reply = JSON.parse(buf);
      } catch {
        reply = null;
      }
      const r = reply as TagsReply | null;
      if (r && (r.ok === true ? isStringRecord(r.tags) : typeof r.error === 'string')) resolve(r);
      else
        reject(
          new UsageError(
            `peer '${name}' sent a reply that is not one; is it the same version as this command?`,
          ),
        );
    });
  });
}

function isStringRecord(v: unknown): v is Record<string, string> {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    Object.values(v).every((x) => typeof x === 'string')
  );
}
