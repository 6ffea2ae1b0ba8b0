/**
 * `peer token-ring`'s menu as a person sees it: the built CLI in a real terminal (a tmux pane on
 * a private tmux server) next to bob, a ring member in long turns (`--hold`), and upa, a `peer up`
 * bystander. The header must count the ring only and say what this peer is doing; the menu must
 * offer only what can be done now (no release outside the critical section, no second request
 * while waiting); event lines must not land inside the menu; leaving gives the shell back with 0.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Tmux } from '../support/tmux.js';
import { BIN, startCli, tempDir, testPort, type Lines, loopbackFlags } from '../support/proc.js';

const term = new Tmux('token-ring', 'ring');
const pane = () => term.pane();
/** bob's turns: long enough to ask for the critical section while bob is inside his. */
const BOB_HOLD_MS = 3000;

async function until(what: string, pred: (text: string) => boolean, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = pane();
    // The menu's key help ends its block: a line printed on top of the menu runs on after it.
    expect(text, 'a line printed inside the menu').not.toMatch(/⏎ select./);
    if (pred(text)) return text;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; pane:\n${text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The menu on screen: its header and its choices. */
function menu(text: string): { header: string; choices: string[] } {
  const lines = text.split('\n');
  const at = lines.findLastIndex((l) => l.startsWith('? '));
  const choices: string[] = [];
  for (const l of lines.slice(at + 1)) {
    const m = /^[❯ ] (\S.*)$/.exec(l);
    if (!m) break;
    choices.push(m[1]!.trim());
  }
  return { header: at < 0 ? '' : lines[at]!.slice(2), choices };
}

const running: Lines[] = [];

afterEach(async () => {
  term.killSession();
  for (const p of running.splice(0)) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
});
afterAll(() => term.killServer());

describe('peer token-ring in a terminal', () => {
  it('the menu says who is in the ring and offers only what can be done now', async () => {
    const net = loopbackFlags(testPort(), tempDir('ring-menu'), 'local');
    const upa = startCli(['up', '--name', 'upa', '--log-format', 'json', ...net], { PEER_KEY_FILE: '' });
    running.push(upa);
    const bob = startCli(['token-ring', '--name', 'bob', '--hold', String(BOB_HOLD_MS), '--json', ...net], {
      PEER_KEY_FILE: '',
    });
    running.push(bob);
    await upa.until((l) => l.json().some((e) => e.event === 'up'), 10_000, 'upa up');
    await bob.until((l) => l.json().some((e) => e.event === 'up'), 10_000, 'bob up');
    const cmd = `PEER_KEY_FILE= NO_COLOR=1 ${process.execPath} ${BIN} token-ring --name alice ${net.join(' ')}; echo EXIT=$?; sleep 600`;
    term.start(cmd, 120, 40);

    // The ring is alice and bob: upa runs `peer up`, it is not in the ring and not announced.
    const first = await until('the ring of 2 and a token', (t) =>
      /^the token is going round; ring of 2: (alice, bob|bob, alice)$/.test(menu(t).header),
    );
    expect(menu(first).choices).toEqual([
      'Request the critical section',
      'Show where the token is',
      'Leave the ring',
    ]);
    expect(first).toMatch(/ join +bob$/m);
    expect(first).not.toMatch(/upa/);

    // Where the token is: one line, naming ring members only.
    term.keys('Down', 'Enter');
    await until('the token line', (t) =>
      /token at (alice|bob), generation \d+, epoch \d+, ring of 2: (alice, bob|bob, alice)$/m.test(t),
    );

    // Asked while bob is inside his turn: alice waits, and can withdraw but not ask again.
    const bobEnters = () => bob.json().filter((e) => e.event === 'enter').length;
    const before = bobEnters();
    await bob.until(() => bobEnters() > before, 2 * BOB_HOLD_MS + 5_000, 'bob enters');
    term.keys('Up', 'Enter');
    const waiting = await until('waiting', (t) => menu(t).header.startsWith('waiting for the token;'));
    expect(menu(waiting).choices).toEqual([
      'Withdraw the request',
      'Show where the token is',
      'Leave the ring',
    ]);
    term.keys('Enter');
    await until('withdrawn', (t) => /request withdrawn$/m.test(t) && menu(t).header.startsWith('the token'));

    // Asked again: alice enters when bob passes the token on, and can release but not ask.
    term.keys('Enter');
    const inside = await until(
      'the critical section',
      (t) => /^in the critical section with fencing token \d+; ring of 2/.test(menu(t).header),
      2 * BOB_HOLD_MS + 10_000,
    );
    expect(inside).toMatch(/ enter +fencing token \d+ \(epoch \d+\)$/m);
    expect(menu(inside).choices).toEqual([
      'Release the critical section',
      'Show where the token is',
      'Leave the ring (releases the critical section)',
    ]);
    term.keys('Enter');
    const released = await until(
      'released',
      (t) => / exit +fencing token \d+ after \d+ ms$/m.test(t) && menu(t).header.startsWith('the token'),
    );
    expect(menu(released).choices[0]).toBe('Request the critical section');

    // Leaving: the shell gets its screen back, exit code 0, and bob sees alice leave the ring.
    term.keys('Down', 'Down', 'Enter');
    await until('the shell again', (t) => /EXIT=0/.test(t));
    expect(pane()).toMatch(/ left the ring$/m);
    await bob.until(
      (l) => l.json().some((e) => e.event === 'left' && e.peer === 'alice'),
      10_000,
      'bob sees alice leave',
    );
    expect(bob.json().some((e) => e.peer === 'upa')).toBe(false);
  }, 90_000);
});
