/** The monitor's tabs, in the order shown (keys 1-6). Each is a small module over MonitorInput. */
import type { Tab } from '../model.js';
import { peersTab } from './peers.js';
import { chatTab } from './chat.js';
import { tasksTab } from './tasks.js';
import { tokenTab } from './token.js';
import { replicasTab } from './replicas.js';
import { logsTab } from './logs.js';

export const TABS: readonly Tab[] = [peersTab, chatTab, tasksTab, tokenTab, replicasTab, logsTab];
