/**
 * LAN tier for `peer chat --send-file` (issue "Messages of any size"): the built CLI in 4 network
 * namespaces on a bridge, nftables dropping 10 % of incoming UDP on every host. A 32 MiB file to
 * three `--listen --json` receivers; one receiver is killed (SIGKILL) once it holds part of the
 * file on disk and started again: it resumes from its state file, the sender exits 0, and all
 * three files are byte-identical to the original.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lanTierDecision, NetnsLan, nftAvailable } from '../support/netns.js';
import { BIN, Lines, tempDir } from '../support/proc.js';

const decision = lanTierDecision();
const PORT = 47777;
const FILE_BYTES = 32 * 1024 * 1024;
/** Start-up of node processes on a loaded 2-core machine, not the protocol. */
const START_MS = 20_000;
const TRANSFER_MS = 150_000;
/** The node prints this on stderr once its sockets are open (open group, no key file). */
const STARTED = 'no --key-file';

describe.runIf(decision.run)('peer chat --send-file on a namespace LAN with 10 % loss', () => {
  let lan: NetnsLan;
  let data: string;
  const names = ['fra', 'frb', 'frc'];
  const receivers: Lines[] = [];

  const args = (host: number, rest: string[]) =>
    [BIN, 'chat', ...rest, '--interface', lan.host(host).address, '--port', String(PORT)].concat([
      '--data-dir',
      data,
      '--profile',
      'lan',
    ]);
  const receiver = (i: number): Lines =>
    new Lines(
      lan.spawn(
        i + 1,
        process.execPath,
        args(i + 1, [
          '--name',
          names[i]!,
          '--listen',
          '--json',
          '--download-dir',
          path.join(data, names[i]!),
        ]),
        { NO_COLOR: '1' },
      ),
    );
  const started = (l: Lines) => l.stderr.join('').includes(STARTED);
  const files = (l: Lines, type: string) => l.json().filter((e) => e.type === type);

  beforeAll(async () => {
    lan = new NetnsLan(4).up();
    if (process.env.PEER_REQUIRE_LAN === '1' && !nftAvailable())
      throw new Error('nft is required in CI for the loss scenario');
    if (nftAvailable()) lan.addLoss(10);
    data = tempDir('lan-files');
    names.forEach((_, i) => receivers.push(receiver(i)));
    for (const [i, r] of receivers.entries()) await r.until(started, START_MS, `${names[i]} to start`);
  }, 60_000);

  afterAll(() => {
    lan?.down();
    if (data) fs.rmSync(data, { recursive: true, force: true });
  });

  it(
    'a 32 MiB file reaches three receivers, one killed and restarted mid-transfer, all byte-identical',
    async () => {
      const content = randomBytes(FILE_BYTES);
      const src = path.join(data, 'video.bin');
      fs.writeFileSync(src, content);
      const sha256 = createHash('sha256').update(content).digest('hex');
      const sending = lan.run(0, process.execPath, args(0, ['--name', 'fsend', '--send-file', src]), {
        env: { NO_COLOR: '1' },
        timeoutMs: TRANSFER_MS,
      });
      // frb is killed once its state file records a few chunks held.
      const partial = path.join(data, 'frb', '.partial', 'frb');
      const heldChunks = () => {
        const state = fs.existsSync(partial)
          ? fs.readdirSync(partial).find((n) => n.endsWith('.state'))
          : undefined;
        if (!state) return 0;
        try {
          const s = JSON.parse(fs.readFileSync(path.join(partial, state), 'utf8')) as { held: string };
          return [...Buffer.from(s.held, 'base64')].reduce(
            (n, b) => n + b.toString(2).replaceAll('0', '').length,
            0,
          );
        } catch {
          return 0; // read while it was being replaced
        }
      };
      await receivers[1]!.until(() => heldChunks() >= 3, TRANSFER_MS, 'frb to hold three chunks');
      receivers[1]!.child.kill('SIGKILL');
      await receivers[1]!.exited;
      expect(heldChunks()).toBeLessThan(FILE_BYTES / (1024 * 1024));
      receivers[1] = receiver(1);
      const r = await sending;
      expect([r.code, r.stderr.replace(/^.*no --key-file.*\n/m, '')]).toEqual([0, '']);
      expect(r.stdout).toMatch(
        /^video\.bin \(32\.0 MiB\) is held by fr[abc], fr[abc], fr[abc] \(SHA-256 verified\)\n$/,
      );
      expect(files(receivers[1]!, 'file-resumed')).toHaveLength(1);
      for (const [i, rec] of receivers.entries()) {
        await rec.until((l) => files(l, 'file').length === 1, 10_000, `${names[i]}'s file line`);
        const saved = path.join(data, names[i]!, 'fsend', 'video.bin');
        expect(files(rec, 'file')).toEqual([
          { type: 'file', from: 'fsend', name: 'video.bin', bytes: FILE_BYTES, sha256, path: saved },
        ]);
        expect(fs.readFileSync(saved).equals(content), `${names[i]}'s copy`).toBe(true);
      }
    },
    TRANSFER_MS + 10_000,
  );
});
