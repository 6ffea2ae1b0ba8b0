/**
 * Group key files: one 256-bit key per line, base64 (44 characters, as `peer keygen` writes) or
 * hex (64 digits). The first key is the one used to send; every key listed is accepted, which is
 * how a key is rotated without downtime (docs/security.md). Blank lines and anything after '#'
 * are ignored. Every problem is one line that names the file, the line and what to do.
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { KEY_BYTES, KEYS_MAX } from '../p2p/transport/keyring.js';
import { UsageError } from './network.js';

/** A key file is a few lines; anything larger is not one. */
export const KEY_FILE_BYTES_MAX = 16 * 1024;

const BASE64_KEY_RE = /^[A-Za-z0-9+/]{43}=$/;
const HEX_KEY_RE = /^[0-9a-fA-F]{64}$/;

export interface LoadedKeys {
  keys: Buffer[];
  /** A warning to print (the file is readable by others), or null. */
  warning: string | null;
}

export function loadKeyFile(file: string): LoadedKeys {
  let text: string;
  let mode: number;
  try {
    const st = fs.statSync(file);
    if (!st.isFile())
      throw new UsageError(`--key-file ${file} is not a file; create one with: peer keygen --out ${file}`);
    if (st.size > KEY_FILE_BYTES_MAX)
      throw new UsageError(
        `--key-file ${file} is ${st.size} bytes, too large for a key file (one key per line)`,
      );
    mode = st.mode & 0o777;
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new UsageError(
      `cannot read --key-file ${file} (${code}); check the path and permissions, or create one with: peer keygen --out ${file}`,
    );
  }
  const keys = parseKeys(text, file);
  const warning =
    mode & 0o077
      ? `key file ${file} is readable by others (mode ${mode.toString(8).padStart(4, '0')}); run: chmod 600 ${file}`
      : null;
  return { keys, warning };
}

/** The keys of a key file's text, in order, duplicates removed. */
export function parseKeys(text: string, file = 'key file'): Buffer[] {
  const keys: Buffer[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/#.*$/, '').trim();
    if (line === '') continue;
    const key = parseKey(line, `${file} line ${i + 1}`);
    if (!keys.some((k) => k.equals(key))) keys.push(key);
  }
  if (keys.length === 0)
    throw new UsageError(`${file} holds no key; create one with: peer keygen --out ${file}`);
  if (keys.length > KEYS_MAX)
    throw new UsageError(`${file} lists ${keys.length} keys; at most ${KEYS_MAX} are accepted at once`);
  return keys;
}

function parseKey(text: string, where: string): Buffer {
  if (HEX_KEY_RE.test(text)) return Buffer.from(text, 'hex');
  if (BASE64_KEY_RE.test(text)) {
    const key = Buffer.from(text, 'base64');
    // The regex admits 43 characters + '=' that decode to 32 bytes; check anyway.
    if (key.length === KEY_BYTES && key.toString('base64') === text) return key;
  }
  const hint = /^[0-9a-fA-F]+$/.test(text)
    ? `${text.length} hex digits, a key has 64`
    : /^[A-Za-z0-9+/]+={0,2}$/.test(text)
      ? `${Buffer.from(text, 'base64').length} bytes of base64, a key has ${KEY_BYTES}`
      : 'neither base64 nor hex';
  throw new UsageError(
    `${where}: not a 256-bit key (${hint}); each line holds one key as written by peer keygen`,
  );
}

export function newKey(): Buffer {
  return randomBytes(KEY_BYTES);
}

export function formatKey(key: Buffer): string {
  return key.toString('base64');
}
