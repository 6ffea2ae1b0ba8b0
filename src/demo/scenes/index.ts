/**
 * The demo's scenes, in the order they play. A capability adds its scene by adding one import
 * and one entry here; each scene starts and stops its own peers.
 */
import type { DemoScene } from '../context.js';
import { chatScene } from './chat.js';
import { membershipScene } from './membership.js';
import { replicationScene } from './replication.js';
import { recoverScene } from './recover.js';
import { tokenRingScene } from './token-ring.js';
import { kvScene } from './kv.js';
import { electionScene } from './election.js';
import { tasksScene } from './tasks.js';

export const SCENES: DemoScene[] = [
  membershipScene,
  chatScene,
  replicationScene,
  recoverScene,
  tokenRingScene,
  kvScene,
  electionScene,
  tasksScene,
];
