/**
 * Chat: the group's lines in Lamport order (chat.ts over reliable delivery), with a line to type
 * into. The monitor reads every group line from its start on (an observer gets no history: members
 * send history by reliable unicast to members only); direct messages between others never reach it.
 */
import { clockTime } from '../../output.js';
import { cell, type MonitorInput, type Tab, type TabView } from '../model.js';

export const chatTab: Tab = {
  id: 'chat',
  title: 'Chat',
  view(input: MonitorInput): TabView {
    const chat = input.chat;
    if (chat === null)
      return { kind: 'unavailable', reason: 'chat (send and read) is not available in this build' };
    const self = input.self.id;
    return {
      kind: 'content',
      summary: [
        cell(`${chat.lines.length} line(s)   ${chat.members} chat member(s) online`),
        ...(chat.error ? [cell(`   not sent: ${chat.error}`, 'bad')] : []),
      ],
      headers: ['TIME', 'FROM', 'TO', 'TEXT'],
      rows: chat.lines.map((l) => [
        cell(clockTime(l.at), 'dim'),
        cell(l.fromName, l.from === self ? 'accent' : undefined),
        cell(
          l.to === null ? 'all' : `${l.toName ?? l.to.slice(0, 8)} (direct)`,
          l.to === null ? 'dim' : 'warn',
        ),
        cell(l.history ? `${l.text}  (history)` : l.text),
      ]),
      empty: 'no chat line yet (peers chat with: peer chat)',
      footer: [cell('Enter: write to the group', 'accent')],
    };
  },
};
