/**
 * Files in a real terminal (tmux panes on a private tmux server, loopback group): `/send PATH` in
 * the interactive chat sends a file and says who holds it, a file received shows as one line with
 * where it was saved; on a terminal both sides of a
 * `--send-file` show a progress bar while the file travels, cleared once it arrived.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BIN, loopbackFlags, runCli, startCli, tempDir, testPort, type Lines } from '../support/proc.js';
import { Tmux } from '../support/tmux.js';

const carolTerm = new Tmux('files', 'carol');
const bobTerm = new Tmux('files', 'bob');
const running: Lines[] = [];
const dirs: string[] = [];
/** Big enough that the transfer outlasts the second a wait takes before its bar shows. */
const BIG_FILE_BYTES = 48 * 1024 * 1024;

afterEach(async () => {
  carolTerm.killSession();
  bobTerm.killSession();
  for (const p of running.splice(0)) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
afterAll(() => carolTerm.killServer());

function setup() {
  const dataDir = tempDir('files-tty');
  dirs.push(dataDir);
  return { dataDir, net: [...loopbackFlags(testPort(), dataDir, 'local'), '--open'] };
}

describe('files in a terminal', () => {
  it('/send PATH sends the file to the chat members and says who holds it', async () => {
    const { dataDir, net } = setup();
    const bob = startCli(['chat', '--name', 'bob', '--listen', '--json', ...net]);
    running.push(bob);
    const src = path.join(dataDir, 'notes.txt');
    fs.writeFileSync(src, randomBytes(100_000));
    carolTerm.start(`NO_COLOR=1 ${process.execPath} ${BIN} chat --name carol ${net.join(' ')}; sleep 600`);
    await carolTerm.until('bob joined', () => /^[\d:.]+ bob joined$/m.test(carolTerm.pane()));
    carolTerm.keys('-l', `/send ${src}`);
    carolTerm.keys('Enter');
    await carolTerm.until('the outcome', () =>
      /notes\.txt is held by bob \(SHA-256 verified\)$/m.test(carolTerm.pane()),
    );
    expect(carolTerm.pane()).toMatch(/^sending notes\.txt \(97\.7 KiB\) to 1 member\(s\)$/m);
    await bob.until((l) => l.json().some((j) => j.type === 'file'), 10_000, "bob's file line");
    expect(
      fs.readFileSync(path.join(dataDir, 'files', 'carol', 'notes.txt')).equals(fs.readFileSync(src)),
    ).toBe(true);
    // A file to carol shows in her chat as one line, with where it was saved.
    const other = path.join(dataDir, 'from-dave.txt');
    fs.writeFileSync(other, 'hello carol');
    const dave = await runCli(['chat', '--name', 'dave', '--send-file', other, '--to', 'carol', ...net]);
    expect(dave.code, dave.stderr).toBe(0);
    const saved = path.join(dataDir, 'files', 'dave', 'from-dave.txt');
    await carolTerm.until('the file line', () =>
      carolTerm
        .pane()
        .replaceAll('\n', '')
        .includes(`dave sent from-dave.txt (11 B): saved as ${saved} (SHA-256 verified)`),
    );
    carolTerm.keys('-l', '/send /no/such/file');
    carolTerm.keys('Enter');
    await carolTerm.until('the error', () =>
      /cannot read \/no\/such\/file \(ENOENT\); check the path$/m.test(carolTerm.pane()),
    );
  });

  it(
    '--send-file shows a progress bar on both sides while the file travels, and clears it',
    { timeout: 150_000 },
    async () => {
      const { dataDir, net } = setup();
      const src = path.join(dataDir, 'big.bin');
      fs.writeFileSync(src, randomBytes(BIG_FILE_BYTES));
      // Everything each terminal was sent, bars redrawn in place included.
      const seen = (t: Tmux) => {
        const log = path.join(dataDir, `${t.session}.tty`);
        t.run('pipe-pane', '-t', t.session, '-o', `cat >> ${log}`);
        return () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '');
      };
      bobTerm.start(
        `NO_COLOR=1 ${process.execPath} ${BIN} chat --name bob --listen ${net.join(' ')}; sleep 600`,
      );
      const bobSaw = seen(bobTerm);
      await bobTerm.until('bob up', () => fs.existsSync(path.join(dataDir, 'bob.db')));
      carolTerm.start(
        `sleep 0.5; NO_COLOR=1 ${process.execPath} ${BIN} chat --name carol --send-file ${src} ${net.join(' ')}; echo EXIT=$?; sleep 600`,
      );
      const carolSaw = seen(carolTerm);
      const bar = String.raw`\[[#.]{24}\] +\d+%`;
      await carolTerm.until('exit 0', () => /EXIT=0/.test(carolTerm.pane()), 120_000);
      expect(carolSaw()).toMatch(new RegExp(`sending big\\.bin to 1 member\\(s\\) ${bar}`));
      expect(carolTerm.pane()).toMatch(/^big\.bin \(48\.0 MiB\) is held by bob \(SHA-256 verified\)$/m);
      expect(carolTerm.pane()).not.toMatch(/sending big\.bin/);
      await bobTerm.until('the saved line', () =>
        /carol sent big\.bin \(48\.0 MiB\): saved as /.test(bobTerm.pane()),
      );
      expect(bobSaw()).toMatch(new RegExp(`receiving big\\.bin from carol ${bar}`));
      await bobTerm.until('the bar cleared', () => !/receiving big\.bin/.test(bobTerm.pane()));
    },
  );
});
