import fs from 'node:fs';
import path from 'node:path';
import { Flags } from '@oclif/core';
import { PeerCommand } from '../cli/base.js';
import { UsageError } from '../cli/network.js';
import { formatKey, newKey } from '../cli/keyfile.js';
import { keyId } from '../p2p/transport/keyring.js';

export interface KeygenResult {
  /** Key id (hex) as counted by `peer stats`. */
  keyId: string;
  /** The file written, or null when the key went to stdout. */
  file: string | null;
  /** The key itself, only when it was not written to a file. */
  key?: string;
}

/** Owner read and write only: the key is the group's only secret. */
const KEY_FILE_MODE = 0o600;
/** Directories keygen creates for --out (e.g. ~/.peer on a fresh machine): the owner's alone. */
const KEY_DIR_MODE = 0o700;

export default class Keygen extends PeerCommand {
  static override summary = 'Create a new 256-bit group key.';
  static override description =
    'Writes a random AES-256 key, base64, to --out (mode 0600, creating missing directories with mode 0700; never over an existing file unless --force) or to stdout. Give the same file to every peer with --key-file or PEER_KEY_FILE. To rotate, see docs/security.md.';
  static override examples = [
    '<%= config.bin %> keygen --out ~/.peer/group.key',
    '<%= config.bin %> up --interface 127.0.0.1 --key-file ~/.peer/group.key',
    '<%= config.bin %> keygen >> ~/.peer/group.key   # adds a second accepted key (rotation step 1)',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    out: Flags.string({
      summary:
        'File to write the key to (mode 0600; missing directories are created 0700); stdout if absent.',
    }),
    force: Flags.boolean({ summary: 'Replace --out if it exists.', dependsOn: ['out'] }),
  };

  async run(): Promise<KeygenResult> {
    const { flags } = await this.parse(Keygen);
    const key = newKey();
    const id = keyId(key).toString('hex');
    if (!flags.out) {
      this.log(formatKey(key));
      return { keyId: id, file: null, key: formatKey(key) };
    }
    const file = flags.out;
    const text = `# peer group key ${id}, created ${new Date().toISOString()}\n${formatKey(key)}\n`;
    writeKeyFile(file, text, flags.force ?? false);
    this.logToStderr(`peer: wrote key ${id} to ${file} (mode 0600)`);
    return { keyId: id, file };
  }
}

function writeKeyFile(file: string, text: string, force: boolean): void {
  const fail = (err: unknown): never => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST')
      throw new UsageError(
        `${file} exists; pass --force to replace it (peers using its key will no longer join)`,
      );
    throw new UsageError(
      `cannot write ${file} (${code ?? (err as Error).message}); check the path and permissions`,
    );
  };
  // Only the directories that are missing are created; an existing one keeps its mode.
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: KEY_DIR_MODE });
  } catch (err) {
    fail(err);
  }
  if (!force) {
    // 'wx': created exclusively, with the mode from the start: never a moment when others can read it.
    try {
      fs.writeFileSync(file, text, { flag: 'wx', mode: KEY_FILE_MODE });
    } catch (err) {
      fail(err);
    }
    return;
  }
  // Replacing: write a private temporary file beside it, then rename over, so the old key file is
  // never half-written and the new one never has a wider mode.
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, text, { flag: 'wx', mode: KEY_FILE_MODE });
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    fail(err);
  }
}
