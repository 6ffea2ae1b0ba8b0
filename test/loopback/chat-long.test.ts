/**
 * Long chat messages through the built CLI over real UDP on 127.0.0.1, TTL 0: `peer chat --send -`
 * sends the whole of its stdin as one message, which reaches two `--listen --json` receivers
 * exactly. Needs `npm run build` first.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loopbackFlags, runCli, startCli, tempDir, testPort, type Lines } from '../support/proc.js';

const running: Lines[] = [];

afterEach(async () => {
  for (const p of running.splice(0)) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
});

/** 200 KiB of text over many lines, with characters that JSON and terminals treat specially. */
function longText(): string {
  const lines: string[] = [];
  for (let i = 0; lines.join('\n').length < 200 * 1024; i++)
    lines.push(`${i}\tnaïve "quoted" \\ back\\slash — 日本語 ✓ \x1b[31mnot red\x1b[0m`);
  return lines.join('\n');
}

describe('peer chat --send - (loopback)', () => {
  it('sends 200 KiB of stdin as one message; two --listen --json receivers print its exact text', async () => {
    const port = testPort();
    const dir = tempDir('chat-long');
    const listeners = ['alice', 'bob'].map((name) => {
      const p = startCli(['chat', '--listen', '--json', '--name', name, ...loopbackFlags(port, dir)]);
      running.push(p);
      return p;
    });
    for (const [i, name] of ['alice', 'bob'].entries())
      await listeners[i]!.until(() => fs.existsSync(path.join(dir, `${name}.db`)), 10_000, `${name} up`);
    const text = longText();
    // The one newline that ends a file is not part of the message.
    const sent = await runCli(['chat', '--name', 'carol', '--send', '-', ...loopbackFlags(port, dir)], {
      input: `${text}\n`,
      timeoutMs: 30_000,
    });
    expect(sent.code, sent.stderr).toBe(0);
    const got = (p: Lines) => p.json().filter((e) => e.event === 'message' && e.from === 'carol');
    for (const p of listeners) {
      await p.until(() => got(p).length > 0, 10_000, 'the message');
      expect(got(p)).toHaveLength(1);
      expect(got(p)[0]!.text).toBe(text);
    }
  });

  it('refuses stdin over 1 MiB with exit 2, naming --send-file', async () => {
    const port = testPort();
    const r = await runCli(
      ['chat', '--name', 'carol', '--send', '-', ...loopbackFlags(port, tempDir('chat-long'))],
      {
        input: 'x'.repeat(1024 * 1024 + 1),
      },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/over the 1048576-byte limit.*--send-file/);
  });
});
