/**
 * peer chat --send looks for chat members for up to CHAT_DISCOVERY_MS (2 s) before it sends; with
 * nobody there (a --join seed that does not answer, an empty group) a person at a terminal saw
 * nothing for those seconds. In a real terminal (a tmux pane on a private tmux server), peer on
 * loopback: the waiting line shows, then is cleared; piped, nothing of it is printed.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Tmux } from '../support/tmux.js';
import { BIN, runCli, tempDir, testPort, loopbackFlags } from '../support/proc.js';

const term = new Tmux('chatwait', 'chatwait');
const pane = () => term.pane();
const until = (what: string, pred: () => boolean, timeoutMs = 20_000) => term.until(what, pred, timeoutMs);

afterEach(() => term.killSession());
afterAll(() => term.killServer());

describe('peer chat --send in a terminal', () => {
  it('says it is looking for chat members while nobody answers, then clears that line', async () => {
    const net = loopbackFlags(testPort(), tempDir('chatwait'));
    const silentSeed = `127.0.0.1:${testPort()}`;
    term.start(
      `NO_COLOR=1 ${process.execPath} ${BIN} chat --open --send hi --join ${silentSeed} ${net.join(' ')}; echo EXIT=$?; sleep 600`,
    );
    await until('the waiting line', () => /^[|/\\-] looking for chat members \(\d s\)$/m.test(pane()));
    await until('the command to end', () => /EXIT=\d/.test(pane()));
    expect(pane()).toMatch(/no chat member answered within 2000 ms/);
    expect(pane()).not.toMatch(/looking for chat members/);
    expect(pane()).toMatch(/EXIT=1/);
    const piped = await runCli(['chat', '--open', '--send', 'hi', ...net]);
    expect(piped.code).toBe(1);
    expect(piped.stderr).not.toMatch(/looking for/);
  }, 60_000);
});
