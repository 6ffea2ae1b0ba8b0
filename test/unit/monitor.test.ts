/**
 * The monitor's pure parts: what each tab shows for a given snapshot, how keys move between tabs
 * and scroll, and what the whole screen looks like at a given size, without a terminal.
 */
import { describe, expect, it } from 'vitest';
import type { MemberView } from '../../src/p2p/protocol.js';
import {
  EventLog,
  FOLLOW,
  initialUi,
  reduceKey,
  TAB_IDS,
  type KeyName,
  type MonitorInput,
  type TabView,
  type UiState,
} from '../../src/cli/monitor/model.js';
import { TABS } from '../../src/cli/monitor/tabs/index.js';
import { peersTab } from '../../src/cli/monitor/tabs/peers.js';
import { replicasTab } from '../../src/cli/monitor/tabs/replicas.js';
import { SLOT_BAR_CHARS_MAX, slotBar, tasksTab } from '../../src/cli/monitor/tabs/tasks.js';
import { JOB_SLOTS_MAX, type RunView } from '../../src/p2p/jobs/index.js';
import { tokenTab } from '../../src/cli/monitor/tabs/token.js';
import { chatTab } from '../../src/cli/monitor/tabs/chat.js';
import { screen } from '../../src/cli/monitor/screen.js';
import { keyNames } from '../../src/cli/monitor/app.js';
import type { Key } from 'ink';
import ReplicateCommand from '../../src/commands/replicate.js';
import { DerivedEvents } from '../../src/cli/monitor/derived.js';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);

function member(
  name: string,
  id: string,
  tags: MemberView['tags'] = {},
  state: MemberView['state'] = 'alive',
): MemberView {
  return {
    id,
    name,
    address: `127.0.0.1:${4000 + name.length}`,
    state,
    incarnation: 1,
    lastSeenMs: 120,
    duplicateName: false,
    tags,
  };
}

function input(members: MemberView[], extra: Partial<MonitorInput> = {}): MonitorInput {
  return {
    nowWall: NOW,
    self: {
      name: 'monitor',
      id: 'f'.repeat(16),
      address: '127.0.0.1:5000',
      group: '239.255.77.77:47777',
      lamport: 9,
      role: 'observer',
    },
    members,
    clock: new Map(),
    tasks: { runs: [] },
    token: null,
    chat: null,
    log: [],
    ...extra,
  };
}

const text = (v: TabView) => {
  if (v.kind !== 'content') throw new Error('unavailable');
  return v.rows.map((r) => r.map((c) => c.text));
};
const summary = (v: TabView) => (v.kind === 'content' ? v.summary.map((c) => c.text).join('') : v.reason);

const A = '0000000000000001';
const B = '0000000000000002';
const C = '0000000000000003';

describe('Peers tab', () => {
  it('shows coordinator and ranks from election tags, Lamport and offset from clock readings, load from worker tags', () => {
    const members = [
      member('ana', A, { prio: 5, coord: false, term: 2, js: 4, jl: 1, 't.role': 'db', 't.rack': '2' }),
      member('bea', B, { prio: 5, coord: true, term: 2 }),
      member('cid', C, {}, 'suspect'),
    ];
    const clock = new Map([[A, { lamport: 42, offsetMs: -1.25, accuracyMs: 0.5, atWall: NOW - 100 }]]);
    const v = peersTab.view(input(members, { clock }));
    expect(summary(v)).toContain('coordinator: bea (00000000)');
    const rows = text(v);
    expect(rows[0]).toEqual([
      'ana',
      A.slice(0, 8),
      '127.0.0.1:4003',
      'alive',
      '',
      '2',
      '42',
      '-1.3 ms',
      '1/4',
      '120 ms',
      'rack=2,role=db',
    ]);
    expect(rows[1]!.slice(3, 7)).toEqual(['alive', 'yes', '1', '—']);
    expect(rows[2]![3]).toBe('suspect');
    expect(rows[2]![5]).toBe('—'); // not a candidate: no rank
  });

  it('says n/a for clock columns when clock sync is not in the build, and hides stale readings', () => {
    const members = [member('ana', A)];
    expect(text(peersTab.view(input(members, { clock: null })))[0]!.slice(6, 8)).toEqual(['n/a', 'n/a']);
    const stale = new Map([[A, { lamport: 1, offsetMs: 0, accuracyMs: null, atWall: NOW - 60_000 }]]);
    expect(text(peersTab.view(input(members, { clock: stale })))[0]!.slice(6, 8)).toEqual(['—', '—']);
    expect(summary(peersTab.view(input(members)))).toContain('none (no peer runs the election)');
  });
});

describe('Replicas tab', () => {
  it('is converged when every live holder advertises one digest, and names the one behind otherwise', () => {
    const d1 = 'aaaaaaaaaaaaaaaa';
    const d2 = 'bbbbbbbbbbbbbbbb';
    const same = [member('ana', A, { rp: `${d1}:3` }), member('bea', B, { rp: `${d1}:3` }), member('cid', C)];
    expect(summary(replicasTab.view(input(same)))).toBe(`converged: 2 live holder(s), digest ${d1}`);
    const diff = [
      member('ana', A, { rp: `${d1}:3` }),
      member('bea', B, { rp: `${d1}:3` }),
      member('cid', C, { rp: `${d2}:2` }),
    ];
    const v = replicasTab.view(input(diff));
    expect(summary(v)).toMatch(/not converged: 2 different digests among 3 live holders/);
    expect(text(v).map((r) => [r[0], r[3], r[5]])).toEqual([
      ['ana', '3', ''],
      ['bea', '3', ''],
      ['cid', '2', 'behind or diverged'],
    ]);
    // A dead holder does not count against convergence.
    const deadBehind = [member('ana', A, { rp: `${d1}:3` }), member('cid', C, { rp: `${d2}:2` }, 'dead')];
    expect(summary(replicasTab.view(input(deadBehind)))).toMatch(/^converged: 1 live/);
  });
});

describe('Replicas tab hint', () => {
  it('names the real way to hold a replica (peer replicate with no message), no flag that does not exist', () => {
    const v = replicasTab.view(input([member('ana', A)]));
    if (v.kind !== 'content') throw new Error('unavailable');
    expect(v.empty).toMatch(/peer replicate, with no message/);
    const named = [...v.empty.matchAll(/--([\w-]+)/g)].map((m) => m[1]!);
    for (const flag of named) expect(['help', ...Object.keys(ReplicateCommand.flags)]).toContain(flag);
  });
});

describe('Tasks tab', () => {
  it('lists the runs the keeper announced, newest first, with their jobs done and failed', () => {
    const members = [member('w1', A, { js: 2, jl: 1 })];
    const run = (id: string, state: RunView['state'], done: number, failed: number): RunView => ({
      run: id.padStart(16, '0'),
      kind: 'op',
      words: ['sum', '1', '2'],
      submitterName: 'ana',
      createdAtWallMs: NOW - 2500,
      state,
      jobs: 3,
      done,
      failed,
    });
    const runs = [
      run('3', 'open', 1, 0),
      run('2', 'done', 2, 1),
      { ...run('1', 'cancelled', 0, 0), kind: 'exec' as const, words: ['make', 'test'] },
    ];
    const v = tasksTab.view(input(members, { tasks: { runs } }));
    expect(summary(v)).toMatch(/^runs: open 1 {3}done 1 {3}cancelled 1 .* {3}workers: 1$/);
    const rows = text(v);
    expect(rows[0]!.slice(0, 3)).toEqual(['worker w1', 'alive', '█░ 1/2']);
    expect(rows.slice(1)).toEqual([
      ['0000000000000003', 'open', 'sum 1 2', '1 done, 0 failed of 3', 'ana', '2.5 s'],
      ['0000000000000002', 'done', 'sum 1 2', '2 done, 1 failed of 3', 'ana', '2.5 s'],
      ['0000000000000001', 'cancelled', 'command: make test', '0 done, 0 failed of 3', 'ana', '2.5 s'],
    ]);
    expect(tasksTab.view(input(members, { tasks: null }))).toEqual({
      kind: 'unavailable',
      reason: 'tasks are not available in this build',
    });
  });

  it('shows each worker’s slots, jobs held and whether it runs commands, from its advert', () => {
    const members = [
      // A worker with --allow-exec, 3 slots, 2 jobs held.
      member('w1', A, { js: 3, jl: 2, ex: '1' }),
      // Built-in ops only; holds more than its slots (the rest queued).
      member('w2', B, { js: 2, jl: 5 }),
      // A worker whose advert is out of bounds.
      member('w4', '0000000000000004', { js: 0, jl: 1 }),
      // Not a worker.
      member('up', '0000000000000005', { prio: 1 }),
    ];
    const v = tasksTab.view(input(members));
    const rows = text(v);
    expect(rows.map((r) => r[0])).toEqual(['worker w1', 'worker w2', 'worker w4']);
    expect(rows[0]!.slice(2, 5)).toEqual(['██░ 2/3', '', 'exec allowed']);
    expect(rows[1]!.slice(2, 5)).toEqual(['██ 2/2 +3 queued', '', 'built-in ops only']);
    expect(rows[2]!.slice(2, 5)).toEqual(['—', '', '—']);
    expect(summary(v)).toMatch(/workers: 3$/);
    if (v.kind !== 'content') throw new Error('unavailable');
    expect(v.footer?.map((c) => c.text).join('')).toBe(
      'jobs held: 7 in 5 slots (workers’ counts; only a run’s host sees its jobs)',
    );
    // A dead worker keeps its row, without an advert to read.
    const dead = text(tasksTab.view(input([member('w1', A, { js: 3, jl: 2, ex: '1' }, 'dead')])));
    expect(dead[0]!.slice(0, 2)).toEqual(['worker w1', 'dead']);
    expect(dead[0]!.slice(2, 5)).toEqual(['—', '', '—']);
  });

  it('draws a bar of at most SLOT_BAR_CHARS_MAX, full only when every slot is busy', () => {
    expect(slotBar(0, 4)).toBe('░░░░');
    expect(slotBar(4, 4)).toBe('████');
    expect(slotBar(1, JOB_SLOTS_MAX)).toBe('█' + '░'.repeat(SLOT_BAR_CHARS_MAX - 1));
    expect(slotBar(JOB_SLOTS_MAX - 1, JOB_SLOTS_MAX)).toBe('█'.repeat(SLOT_BAR_CHARS_MAX - 1) + '░');
    expect(slotBar(JOB_SLOTS_MAX * 3, JOB_SLOTS_MAX)).toBe('█'.repeat(SLOT_BAR_CHARS_MAX));
  });
});

describe('Token tab', () => {
  it('shows the ring in id order, the holder, epoch, generation and rotation rate', () => {
    const members = [member('ana', A), member('bea', B), member('cid', C, {}, 'suspect')];
    const token = { epoch: 2, generation: 41, holder: B, ring: [A, B, C], passesPerSecond: 6 };
    const v = tokenTab.view(input(members, { token }));
    expect(summary(v)).toBe('holder bea   epoch 2   generation 41   6.0 passes/s (2.00 rotations/s)');
    expect(text(v)).toEqual([
      ['1', 'ana', A.slice(0, 8), 'alive', ''],
      ['2', 'bea', B.slice(0, 8), 'alive', 'holds gen 41'],
      ['3', 'cid', C.slice(0, 8), 'suspect', ''],
    ]);
    const none = { epoch: 0, generation: 0, holder: '' as const, ring: [A], passesPerSecond: null };
    expect(summary(tokenTab.view(input(members, { token: none })))).toMatch(/^no token seen yet/);
  });
});

describe('Chat tab', () => {
  it('shows lines with sender, group or direct, history marked, and a prompt; errors in the summary', () => {
    const line = (from: string, name: string, text: string, extra = {}) => ({
      id: `${from}:1:1`,
      from,
      fromName: name,
      to: null,
      toName: null,
      text,
      lamport: 1,
      at: NOW,
      history: false,
      ...extra,
    });
    const chat = {
      lines: [
        line(A, 'ana', 'hello', { history: true }),
        line('f'.repeat(16), 'monitor', 'hi all'),
        line(B, 'bea', 'psst', { to: C, toName: 'cid' }),
      ],
      members: 2,
      error: 'message is 900 bytes, over the 683-byte limit; split it',
    };
    const v = chatTab.view(input([member('ana', A)], { chat }));
    expect(summary(v)).toBe(
      '3 line(s)   2 chat member(s) online   not sent: message is 900 bytes, over the 683-byte limit; split it',
    );
    expect(text(v).map((r) => r.slice(1))).toEqual([
      ['ana', 'all', 'hello  (history)'],
      ['monitor', 'all', 'hi all'],
      ['bea', 'cid (direct)', 'psst'],
    ]);
    const s = screen(TABS, input([], { chat }), { ...initialUi(), tab: 1 }, 80, 20);
    expect(
      s.lines
        .at(-2)!
        .map((c) => c.text)
        .join(''),
    ).toMatch(/^Enter: write to the group/);
    const typing = screen(TABS, input([], { chat }), { ...initialUi(), tab: 1, draft: 'abc' }, 80, 20);
    expect(
      typing.lines
        .at(-2)!
        .map((c) => c.text)
        .join(''),
    ).toMatch(/^> abc▏/);
    expect(
      typing.lines
        .at(-1)!
        .map((c) => c.text)
        .join(''),
    ).toMatch(/^Enter: send to the group/);
  });
});

describe('tabs not in this build', () => {
  it('say so plainly and show no data', () => {
    const one = [member('ana', A)];
    expect(chatTab.view(input(one, { chat: null }))).toEqual({
      kind: 'unavailable',
      reason: 'chat (send and read) is not available in this build',
    });
    expect(tokenTab.view(input(one, { token: null }))).toEqual({
      kind: 'unavailable',
      reason: 'the token ring is not available in this build',
    });
    expect(tasksTab.view(input(one, { tasks: null })).kind).toBe('unavailable');
  });
});

describe('keys', () => {
  const ctx = (maxScroll = 0, canCompose = false) => ({
    tabCount: TABS.length,
    pageRows: 10,
    maxScroll,
    canCompose,
  });
  const step = (ui: UiState, k: KeyName, c = ctx()) => {
    const next = reduceKey(ui, k, c);
    if (next === 'quit' || 'send' in next) throw new Error(`unexpected ${JSON.stringify(next)}`);
    return next;
  };

  it('switch tabs with arrows, Tab, Shift-Tab and digits, wrapping around, and quit with q, Esc or Ctrl-C', () => {
    let ui: UiState = initialUi();
    const press = (k: KeyName) => TAB_IDS[(ui = step(ui, k)).tab];
    expect(press('right')).toBe('chat');
    expect(press('tab')).toBe('tasks');
    expect(press('left')).toBe('chat');
    expect(press('shift-tab')).toBe('peers');
    expect(press('left')).toBe('logs');
    expect(press('char:5')).toBe('replicas');
    expect(press('char:9')).toBe('replicas');
    for (const k of ['char:q', 'escape', 'interrupt'] as const) expect(reduceKey(ui, k, ctx())).toBe('quit');
  });

  it('scroll within bounds, and End follows new rows', () => {
    const ui = initialUi();
    const down = step(ui, 'down', ctx(5));
    expect(down.scroll.peers).toBe(1);
    expect(step(down, 'pagedown', ctx(5)).scroll.peers).toBe(FOLLOW);
    expect(step(ui, 'up', ctx(5)).scroll.peers).toBe(0);
    const logs = { ...ui, tab: TAB_IDS.indexOf('logs') };
    expect(logs.scroll.logs).toBe(FOLLOW);
    expect(step(logs, 'up', ctx(7)).scroll.logs).toBe(6);
  });

  it('compose chat lines: Enter starts, keys type (q and digits too), Backspace, Enter sends and stays, an empty Enter or Esc stops', () => {
    const chat = { ...initialUi(), tab: TAB_IDS.indexOf('chat') };
    expect(step(chat, 'enter', ctx(0, false)).draft).toBeNull(); // chat not in the build: nothing to type
    let ui = step(chat, 'enter', ctx(0, true));
    expect(ui.draft).toBe('');
    for (const k of ['char:h', 'char:i q1', 'char:x', 'backspace', 'right'] as const) ui = step(ui, k);
    expect(ui.draft).toBe('hi q1');
    expect(ui.tab).toBe(TAB_IDS.indexOf('chat'));
    // Sent, and still writing: the next line (typed fast, or pasted) is a chat line too.
    expect(reduceKey(ui, 'enter', ctx())).toEqual({ ui: { ...ui, draft: '' }, send: 'hi q1' });
    expect(step(ui, 'escape').draft).toBeNull();
    expect(reduceKey(ui, 'interrupt', ctx())).toBe('quit');
    expect(step({ ...ui, draft: '' }, 'enter').draft).toBeNull(); // an empty line ends writing
    expect(step({ ...ui, draft: '   ' }, 'enter').draft).toBeNull(); // blank: nothing sent
  });
});

describe('keys from one read of the terminal', () => {
  const none = {} as Key;
  it('split text and Enter typed fast or pasted into the keys they are, in order', () => {
    expect(keyNames('one\rtwo\r', none)).toEqual(['char:one', 'enter', 'char:two', 'enter']);
    expect(keyNames('a\r\nb', none)).toEqual(['char:a', 'enter', 'char:b']);
    expect(keyNames('\r', { ...none, return: true })).toEqual(['enter']);
    expect(keyNames('x\x07y', none)).toEqual(['char:xy']);
    expect(keyNames('c', { ...none, ctrl: true })).toEqual(['interrupt']);
  });
});

describe('screen', () => {
  const members = [member('ana', A), member('bea', B)];
  it('fills the terminal but one line, fits every line in the width, and shows tabs, members and help', () => {
    const s = screen(TABS, input(members), initialUi(), 100, 30);
    expect(s.lines.length).toBe(29);
    const plain = s.lines.map((l) => l.map((c) => c.text).join(''));
    for (const l of plain) expect(l.length).toBe(99);
    expect(plain[1]).toMatch(/^\[1 Peers\] {2}2 Chat {3}3 Tasks {3}4 Token {3}5 Replicas {3}6 Logs/);
    expect(plain[3]).toMatch(/^NAME +ID +ADDRESS +STATE/);
    expect(plain[4]).toMatch(/^ana /);
    expect(plain[5]).toMatch(/^bea /);
    expect(plain.at(-1)).toMatch(/q: quit/);
  });

  it('keeps every Peers column at 80 columns, cutting long names and addresses with an ellipsis', () => {
    const long = {
      ...member('a-rather-long-peer-name-for-a-lab', A),
      address: '192.168.100.200:47777',
      lastSeenMs: 1500,
    };
    const s = screen(TABS, input([long, member('bea', B)]), initialUi(), 80, 24);
    const plain = s.lines.map((l) => l.map((c) => c.text).join(''));
    for (const l of plain) expect(l.length).toBe(79);
    expect(plain[3]).toMatch(
      /^NAME +ID +ADDRESS +STATE +COORD +RANK +LAMPORT +OFFSET +LOAD +LAST SEEN +TAGS *$/,
    );
    const row = plain[4]!;
    expect(row).toMatch(/^a-rather\S*… /); // cut further since the TAGS column
    expect(row).toMatch(/1\.5 s +$/); // LAST SEEN, whole (no tags)
    // Every row is cut at the same places: the columns stay aligned.
    expect(plain[5]).toMatch(/^bea +\S+… 127\.0\.0\.1\S* +alive /);
    expect(plain[5]).toMatch(/120 ms +$/);
  });

  it('scrolls long tables and says which rows are shown; asks for a larger terminal when too small', () => {
    const log = new EventLog(50);
    for (let i = 0; i < 80; i++) log.add({ atWall: NOW + i, kind: 'join', text: `line ${i}`, tone: 'good' });
    expect(log.all.length).toBe(50);
    const ui = { ...initialUi(), tab: TAB_IDS.indexOf('logs') };
    const s = screen(TABS, input(members, { log: log.all }), ui, 80, 20);
    const plain = s.lines.map((l) => l.map((c) => c.text).join(''));
    expect(plain.at(-2)).toMatch(/rows 38-50 of 50 \(following\)/);
    expect(plain.some((l) => l.includes('line 79'))).toBe(true);
    const tiny = screen(TABS, input(members), initialUi(), 30, 8);
    expect(tiny.lines.map((l) => l.map((c) => c.text).join('')).join('\n')).toMatch(/terminal too small/);
  });
});

describe('derived events', () => {
  it('logs a new coordinator once, and replicas converging or not', () => {
    const d = new DerivedEvents();
    const lead = [member('ana', A, { prio: 1, coord: true, term: 3 })];
    expect(d.update(lead, NOW).map((l) => l.text)).toEqual(['ana (00000000) is the coordinator, term 3']);
    expect(d.update(lead, NOW)).toEqual([]);
    const held = [
      member('ana', A, { rp: 'aaaaaaaaaaaaaaaa:1', prio: 1, coord: true, term: 3 }),
      member('bea', B, { rp: 'bbbbbbbbbbbbbbbb:0' }),
    ];
    expect(d.update(held, NOW).map((l) => l.kind)).toEqual(['diverged']);
    const same = held.map((m) => ({ ...m, tags: { ...m.tags, rp: 'aaaaaaaaaaaaaaaa:1' } }));
    expect(d.update(same, NOW).map((l) => l.kind)).toEqual(['repaired']);
  });
});

describe('terminal safety', () => {
  /** A title change, a screen clear, an 8-bit CSI, a CR and a right-to-left override. */
  const HOSTILE = 'A\x1b]0;pwned\x07B\x1b[2J\x9b1m\rC\u202eD';
  const SHOWN = 'A\\x1b]0;pwned\\x07B\\x1b[2J\\x9b1m\\rC\\u202eD';
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  const RAW = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

  it('shows remote names, chat lines, task results and log lines escaped on every tab', () => {
    const evil = member(HOSTILE, A, {
      js: 2,
      jl: 1,
      ex: '1',
      rp: 'aaaaaaaaaaaaaaaa:1',
      prio: 1,
      coord: true,
      term: 3,
    });
    const chat = {
      lines: [
        {
          id: `${A}/1/1`,
          from: A,
          fromName: HOSTILE,
          to: B,
          toName: HOSTILE,
          text: HOSTILE,
          lamport: 1,
          at: NOW,
          history: true,
        },
      ],
      members: 1,
      error: HOSTILE,
    };
    const runs: RunView[] = [
      {
        run: '1'.padStart(16, '0'),
        kind: 'op',
        words: [HOSTILE],
        submitterName: HOSTILE,
        createdAtWallMs: NOW,
        state: 'open',
        jobs: 1,
        done: 0,
        failed: 0,
      },
    ];
    const token = { epoch: 1, generation: 2, holder: A, ring: [A], passesPerSecond: 1 };
    const log = [{ atWall: NOW, kind: 'join', text: HOSTILE, tone: 'good' as const }];
    const all = input([evil], { chat, tasks: { runs }, token, log });
    for (let tab = 0; tab < TABS.length; tab++) {
      const s = screen(TABS, all, { ...initialUi(), tab }, 400, 30);
      const plain = s.lines.map((l) => l.map((c) => c.text).join(''));
      for (const l of plain) expect(l, `${TABS[tab]!.title}: ${JSON.stringify(l)}`).not.toMatch(RAW);
      // Columns other than the last are cut at 40 characters: the escaped start shows.
      expect(plain.join('\n'), TABS[tab]!.title).toContain(SHOWN.slice(0, 30));
    }
    expect(text(chatTab.view(all))[0]!.slice(1)).toEqual([SHOWN, `${SHOWN} (direct)`, `${SHOWN}  (history)`]);
  });
});
