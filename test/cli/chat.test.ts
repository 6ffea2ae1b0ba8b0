/**
 * Interactive `peer chat` as a person meets it: the built CLI in a real terminal (a tmux pane on a
 * private tmux server) in a loopback group with a chat member (bob, `--listen`) and a bystander
 * (alice, `peer up`). Asserts on the pane: only chat members are announced and listed by /who, a
 * one-shot `--send` shows its line under its name without joining or leaving, lines read
 * `12:03:04.120 dave: hi`, and /quit, Ctrl-D and one Ctrl-C each end the chat promptly with exit 0
 * and the terminal back in its normal mode.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BIN, runCli, startCli, tempDir, testPort, loopbackFlags, type Lines } from '../support/proc.js';
import { Tmux } from '../support/tmux.js';

const term = new Tmux('chat', 'chat');
const running: Lines[] = [];
/** How long an exit may take: the graceful leave and the store's close, on a loaded machine. */
const EXIT_WITHIN_MS = 5_000;

afterEach(async () => {
  term.killSession();
  for (const p of running.splice(0)) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
});
afterAll(() => term.killServer());

/** alice runs `peer up` (not in the chat), bob `peer chat --listen` (in it). */
async function group(): Promise<{ net: string[]; bob: Lines }> {
  const net = loopbackFlags(testPort(), tempDir('chat-tty'), 'local');
  const alice = startCli(['up', '--name', 'alice', '--log-format', 'json', ...net]);
  running.push(alice);
  await alice.until((l) => l.json().some((e) => e.event === 'up'), 10_000, 'alice up');
  const bob = startCli(['chat', '--name', 'bob', '--listen', '--json', ...net]);
  running.push(bob);
  return { net, bob };
}

/**
 * carol's interactive chat in the pane; after it the shell prints the exit code and the terminal
 * modes that a raw-mode program must give back (canonical input, echo).
 */
async function startCarol(net: string[]): Promise<void> {
  const modes = `stty -a | tr ' ;' '\\n\\n' | grep -E -x -e '-?icanon' -e '-?echo' | tr '\\n' ' '`;
  term.start(
    `NO_COLOR=1 ${process.execPath} ${BIN} chat --name carol ${net.join(' ')}; echo EXIT=$?; echo MODES: $(${modes}); sleep 600`,
  );
  await term.until('the prompt', () => /you are carol/.test(term.pane()) && /^carol>/m.test(term.pane()));
}

async function expectCleanExit(): Promise<void> {
  const start = Date.now();
  await term.until('exit 0', () => /EXIT=0/.test(term.pane()), EXIT_WITHIN_MS);
  expect(Date.now() - start).toBeLessThan(EXIT_WITHIN_MS);
  await term.until('the terminal modes', () => /MODES: /.test(term.pane()));
  expect(term.pane()).toMatch(/MODES: icanon echo/);
  // Nothing of the chat is drawn after it ended.
  expect(term.pane().split('EXIT=0')[1]).not.toMatch(/carol>/);
}

describe('peer chat in a terminal', () => {
  it('announces and lists chat members only, shows one-shot lines by name, and Ctrl-D exits 0', async () => {
    const { net } = await group();
    await startCarol(net);
    await term.until('bob joined', () => /^[\d:.]+ bob joined$/m.test(term.pane()));
    term.keys('-l', '/who');
    term.keys('Enter');
    await term.until('/who', () => /^here: /m.test(term.pane()));
    expect(term.pane()).toMatch(/^here: bob$/m);

    const dave = await runCli(['chat', '--name', 'dave', '--send', 'hi carol', ...net]);
    expect(dave.code, dave.stderr).toBe(0);
    await term.until('dave’s line', () => /dave: hi carol$/m.test(term.pane()));
    // Plain wording: wall time, name, text; the Lamport time only with --show-lamport.
    expect(term.pane()).toMatch(/^\d\d:\d\d:\d\d\.\d\d\d dave: hi carol$/m);
    // dave said goodbye before his process ended; a /who typed now is answered after it.
    term.keys('-l', '/who');
    term.keys('Enter');
    await term.until('a second /who', () => (term.pane().match(/^here: /gm) ?? []).length === 2);
    const seen = term.pane();
    expect(seen).not.toMatch(/alice (joined|left)/);
    expect(seen).not.toMatch(/dave (joined|left)/);
    expect(seen).not.toMatch(/nobody else is here/);

    term.keys('C-d');
    await expectCleanExit();
  });

  it('/quit exits 0 and gives the terminal back', async () => {
    const { net } = await group();
    await startCarol(net);
    term.keys('-l', '/quit');
    term.keys('Enter');
    await expectCleanExit();
  });

  it('one Ctrl-C exits 0 and gives the terminal back', async () => {
    const { net } = await group();
    await startCarol(net);
    term.keys('-l', 'half a line');
    term.keys('C-c');
    await expectCleanExit();
  });
});
