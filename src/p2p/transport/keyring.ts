/**
 * The group keyring, after Serf's: several 256-bit keys are accepted at once and exactly one, the
 * primary, is used to send. Rotation without downtime is install (everyone accepts the new key),
 * use (everyone sends with it, one by one), remove (nobody accepts the old one any more); at every
 * step any two peers share a key one sends with and the other accepts, so the group never splits.
 *
 * Each key is named on the wire by a 4-byte key id, a hash of the key: it lets a receiver pick the
 * key without trying them all, and reveals nothing about the key itself.
 */
import { createHash } from 'node:crypto';

export const KEY_BYTES = 32;
export const KEY_ID_BYTES = 4;
/** Keys accepted at once; rotation needs two, the rest is headroom for slow roll-outs. */
export const KEYS_MAX = 8;

const KEY_ID_LABEL = Buffer.from('peer group key id v1\0');

export function keyId(key: Uint8Array): Buffer {
  return createHash('sha256').update(KEY_ID_LABEL).update(key).digest().subarray(0, KEY_ID_BYTES);
}

export class KeyringError extends Error {
  override name = 'KeyringError';
}

export class Keyring {
  /** Key id (hex) -> key. */
  private readonly keys = new Map<string, Buffer>();
  private primaryId = '';

  /** The first key is the primary; the others are accepted. */
  constructor(keys: Uint8Array[]) {
    if (keys.length === 0) throw new KeyringError('a keyring needs at least one key');
    for (const k of keys) this.install(k);
    this.use(keys[0]!);
  }

  /** Accepts datagrams sealed with `key` from now on. Idempotent. */
  install(key: Uint8Array): void {
    if (key.length !== KEY_BYTES)
      throw new KeyringError(`a group key is ${KEY_BYTES} bytes, not ${key.length}`);
    const id = keyId(key).toString('hex');
    const known = this.keys.get(id);
    if (known) {
      // Two different keys with one 32-bit id: astronomically unlikely, but never guess which.
      if (!known.equals(key)) throw new KeyringError(`two keys share the key id ${id}; generate another key`);
      return;
    }
    if (this.keys.size >= KEYS_MAX) throw new KeyringError(`a keyring holds at most ${KEYS_MAX} keys`);
    this.keys.set(id, Buffer.from(key));
  }

  /** Sends with `key` from now on; installs it if needed. */
  use(key: Uint8Array): void {
    this.install(key);
    this.primaryId = keyId(key).toString('hex');
  }

  /** Stops accepting `key`. The primary cannot be removed: use another key first. */
  remove(key: Uint8Array): void {
    const id = keyId(key).toString('hex');
    if (id === this.primaryId) throw new KeyringError('cannot remove the key in use; use another key first');
    this.keys.delete(id);
  }

  /** Replaces the whole ring (a reloaded key file): the first key becomes the primary. */
  replace(keys: Uint8Array[]): void {
    const next = new Keyring(keys);
    this.keys.clear();
    for (const [id, k] of next.keys) this.keys.set(id, k);
    this.primaryId = next.primaryId;
  }

  get primary(): { id: Buffer; key: Buffer } {
    return { id: Buffer.from(this.primaryId, 'hex'), key: this.keys.get(this.primaryId)! };
  }

  /** The key with this id, or undefined. */
  lookup(id: string): Buffer | undefined {
    return this.keys.get(id);
  }

  /** Key ids in hex, the primary first. */
  ids(): string[] {
    return [this.primaryId, ...[...this.keys.keys()].filter((id) => id !== this.primaryId)];
  }
}
