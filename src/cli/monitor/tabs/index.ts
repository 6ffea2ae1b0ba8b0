/** The monitor's tabs, in the order shown (keys 1-6). Each is a small module over MonitorInput. */
import type { Tab } from '../model.js';
import { peersTab } from './peers.js';
import { tasksTab } from './tasks.js';
import { replicasTab } from './replicas.js';
import { logsTab } from './logs.js';
import { chatTab, tokenTab } from './unavailable.js';

export const TABS: readonly Tab[] = [peersTab, chatTab, tasksTab, tokenTab, replicasTab, logsTab];
