/**
 * Reading a replica file's content into a ReplicaSet. A line that does not parse, a duplicate and
 * a losing version of an identity are never dropped silently: each comes back as a rejection with
 * its line number, for the caller to keep aside and report. Content is read as bytes, so a line
 * that is not valid UTF-8 is rejected and kept byte for byte, never decoded into U+FFFD.
 */
import { entryId } from './entry.js';
import { formatLine, parseLine } from './line.js';
import { ReplicaSet } from './replica-set.js';

export interface Rejection {
  line: number;
  reason: string;
  text: string;
  /** The line's bytes when they are not valid UTF-8: kept aside as they are, never as U+FFFD. */
  raw?: Buffer;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A file's lines from its bytes. A line that is not valid UTF-8 stays bytes: decoding it would turn
 * it into U+FFFD, which then parses as a good line and is rewritten, and the original is lost.
 */
function decodeLines(bytes: Buffer): Array<string | Buffer> {
  try {
    return strictUtf8.decode(bytes).split('\n');
  } catch {
    // Some line is not UTF-8 (rare): find which, one line at a time.
  }
  const lines: Array<string | Buffer> = [];
  for (let from = 0; from <= bytes.length;) {
    const nl = bytes.indexOf(0x0a, from);
    const end = nl < 0 ? bytes.length : nl;
    const raw = bytes.subarray(from, end);
    try {
      lines.push(strictUtf8.decode(raw));
    } catch {
      lines.push(Buffer.from(raw));
    }
    from = end + 1;
  }
  return lines;
}

/**
 * Parses a file (its bytes, or text already decoded); duplicates, bad lines and lines that are not
 * valid UTF-8 come back as rejections with line numbers.
 */
export function parseReplica(content: string | Buffer): { set: ReplicaSet; rejected: Rejection[] } {
  const set = new ReplicaSet();
  const rejected: Rejection[] = [];
  const lines = typeof content === 'string' ? content.split('\n') : decodeLines(content);
  if (lines.at(-1) === '') lines.pop();
  /** Line number of the line each identity was taken from, to report a superseded version. */
  const lineOf = new Map<string, number>();
  lines.forEach((text, i) => {
    if (typeof text !== 'string')
      return void rejected.push({
        line: i + 1,
        reason: 'not valid UTF-8',
        text: text.toString('utf8'),
        raw: text,
      });
    const p = parseLine(text);
    if (!p.ok) return void rejected.push({ line: i + 1, reason: p.reason, text });
    const id = entryId(p.entry);
    const held = set.get(p.entry);
    const r = set.resolve(p.entry);
    if (r === 'same') rejected.push({ line: i + 1, reason: `duplicate of entry ${id}`, text });
    else if (r === 'kept')
      rejected.push({
        line: i + 1,
        reason: `another version of entry ${id} wins (line ${lineOf.get(id)})`,
        text,
      });
    else if (r === 'replaced') {
      rejected.push({
        line: lineOf.get(id)!,
        reason: `another version of entry ${id} wins (line ${i + 1})`,
        text: formatLine(held!),
      });
      lineOf.set(id, i + 1);
    } else lineOf.set(id, i + 1);
  });
  rejected.sort((a, b) => a.line - b.line);
  return { set, rejected };
}
