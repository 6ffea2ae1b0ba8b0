/**
 * The shared output helpers show remote text escaped (sanitize.ts): names in every event line,
 * an anti-entropy failure reason, replica names in tables, the demo's narration of what peers
 * printed. The commands build their human lines from these.
 */
import { describe, expect, it } from 'vitest';
import { stripVTControlCharacters } from 'node:util';
import {
  describeMembershipEvent,
  logSync,
  memberLabel,
  paintName,
  type EventLog,
} from '../../src/cli/output.js';
import { replicaTable } from '../../src/cli/replica.js';
import { DemoContext } from '../../src/demo/context.js';
import type { MemberView } from '../../src/p2p/protocol.js';

const HOSTILE = 'A\x1b]0;pwned\x07B\x1b[2J\x9b1m\rC\u202eD';
const SHOWN = 'A\\x1b]0;pwned\\x07B\\x1b[2J\\x9b1m\\rC\\u202eD';
/** Our own colours are SGR sequences; strip them, and nothing raw may remain. */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
const plain = (s: string) => {
  const out = stripVTControlCharacters(s);
  expect(out).not.toMatch(RAW);
  return out;
};

const member: MemberView = {
  id: '0123456789abcdef',
  name: HOSTILE,
  address: '127.0.0.1:4000',
  state: 'alive',
  incarnation: 1,
  lastSeenMs: 0,
  duplicateName: false,
  tags: {},
};

describe('output helpers escape remote text', () => {
  it('names, in labels and in every membership line', () => {
    expect(plain(paintName(HOSTILE))).toBe(SHOWN);
    expect(plain(memberLabel(member))).toBe(`${SHOWN} (01234567)`);
    for (const kind of ['join', 'left'] as const)
      expect(plain(describeMembershipEvent({ kind, member })!)).toContain(SHOWN);
    const dup = describeMembershipEvent({ kind: 'duplicate-name', name: HOSTILE, ids: [member.id] })!;
    expect(plain(dup)).toContain(SHOWN);
    const refute = { kind: 'refute', incarnation: 2, by: member.id, byName: HOSTILE } as const;
    expect(plain(describeMembershipEvent(refute)!)).toContain(`suspected by ${SHOWN};`);
  });

  it('a sync partner and failure reason, a replica name, and the demo narration', () => {
    const lines: string[] = [];
    const log: EventLog = (_fields, text) => lines.push(text);
    const members = { get: (id: string) => (id === member.id ? member : undefined) };
    logSync(log, { peer: member.id, fetched: 1, pushed: 0, ok: false, reason: HOSTILE }, members);
    expect(plain(lines[0]!)).toBe(`sync with ${SHOWN}: fetched 1, pushed 0 (${SHOWN})`);
    const t = replicaTable([
      { replica: HOSTILE, before: 1, after: 2, added: 1, sha256: '', digest: HOSTILE },
    ]);
    expect(plain(t)).toContain(SHOWN);
    const said: string[] = [];
    const demo = new DemoContext('bin', 1, 'data', 'replicas', (l) => said.push(l));
    demo.step(HOSTILE);
    demo.ok(HOSTILE);
    demo.note(HOSTILE);
    for (const l of said) expect(plain(l)).toContain(SHOWN);
  });
});
