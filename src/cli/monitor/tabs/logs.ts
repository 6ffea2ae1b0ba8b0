/** Logs: membership events as the node emits them, plus coordinator and replica changes the feeds derive. */
import { clockTime } from '../../output.js';
import { cell, type MonitorInput, type Tab, type TabView } from '../model.js';

export const logsTab: Tab = {
  id: 'logs',
  title: 'Logs',
  view(input: MonitorInput): TabView {
    return {
      kind: 'content',
      summary: [
        cell(`${input.log.length} event(s): joins, deaths, leaves, recoveries, elections, replica repairs`),
      ],
      headers: ['TIME', 'EVENT', 'WHAT'],
      rows: input.log.map((l) => [cell(clockTime(l.atWall), 'dim'), cell(l.kind, l.tone), cell(l.text)]),
      empty: 'no event yet',
    };
  },
};
