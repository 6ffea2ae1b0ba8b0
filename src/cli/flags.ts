/**
 * Flags shared by every networked command. Each has an environment variable so a shell can set
 * it once (export PEER_INTERFACE=127.0.0.1).
 */
import os from 'node:os';
import path from 'node:path';
import { Flags } from '@oclif/core';
import { notADirectory } from '../storage/store.js';
import { UsageError } from './network.js';
import { DEFAULT_GROUP, DEFAULT_PORT, DEFAULT_TTL, PROFILES, type ProfileName } from '../p2p/config.js';
import { REACH_MODES } from '../p2p/reach.js';

const dataDirOptions = {
  summary: 'Directory of the peer databases.',
  env: 'PEER_DATA_DIR',
  default: path.join(os.homedir(), '.peer'),
};

/** --data-dir without the "not a directory" check, for `peer doctor`, which reports it itself. */
export const uncheckedDataDirFlag = Flags.string(dataDirOptions);

export const networkFlags = {
  name: Flags.string({ summary: 'Name shown to the group (default: the host name).', env: 'PEER_NAME' }),
  group: Flags.string({ summary: 'Multicast group address.', env: 'PEER_GROUP', default: DEFAULT_GROUP }),
  port: Flags.integer({
    summary: 'Multicast group port.',
    env: 'PEER_PORT',
    default: DEFAULT_PORT,
    min: 1,
    max: 65535,
  }),
  interface: Flags.string({
    summary: 'IPv4 address (or name) of the interface to use (default: the interface of the default route).',
    env: 'PEER_INTERFACE',
  }),
  join: Flags.string({
    summary:
      'Seed to join through where multicast does not reach: HOST[:PORT] of a peer (PORT defaults to --port). Repeatable; PEER_JOIN takes a comma-separated list.',
    env: 'PEER_JOIN',
    multiple: true,
    multipleNonGreedy: true,
    delimiter: ',',
  }),
  transport: Flags.string({
    summary:
      'How group messages travel: auto (multicast, plus a direct copy to each member that multicast does not reach), multicast (multicast only), unicast (a direct copy to each member, never multicast: for networks that carry no multicast, such as VPNs and cloud networks).',
    env: 'PEER_TRANSPORT',
    options: [...REACH_MODES],
    default: 'auto',
  }),
  ttl: Flags.integer({
    summary: 'Multicast TTL: 0 stays on this host, 1 stays on the LAN.',
    env: 'PEER_TTL',
    default: DEFAULT_TTL,
    min: 0,
    max: 255,
  }),
  'data-dir': Flags.string({
    ...dataDirOptions,
    // Checked here so that every command says it, even those that never open a database.
    parse: async (dir) => {
      const problem = notADirectory(dir);
      if (problem) throw new UsageError(`--data-dir ${problem}; pass a directory`);
      return dir;
    },
  }),
  'key-file': Flags.string({
    summary:
      'Group key file (peer keygen): encrypts and authenticates all traffic. Without it the group runs open.',
    env: 'PEER_KEY_FILE',
  }),
  open: Flags.boolean({
    summary:
      'The group runs without a key on purpose: do not warn that its traffic is neither encrypted nor authenticated (docs/security.md).',
    env: 'PEER_OPEN',
    default: false,
  }),
  profile: Flags.string({
    summary: 'Timing profile: lan (fast failure detection) or local (many peers on one busy host).',
    env: 'PEER_PROFILE',
    options: Object.keys(PROFILES) as ProfileName[],
    default: 'lan',
  }),
};
