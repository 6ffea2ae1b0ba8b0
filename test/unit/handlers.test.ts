import { describe, expect, it } from 'vitest';
import { eventEnv, handles, parseHandler, stdinOf } from '../../src/cli/handlers.js';
import type { HandlerEvent } from '../../src/p2p/events/index.js';

describe('--handler [EVENT[,EVENT]=]CMD', () => {
  it('reads filters before the first = only when all of it is events', () => {
    expect(parseHandler('./all.sh')).toEqual({ filters: null, command: './all.sh' });
    expect(parseHandler('member-join,member-failed=logger -t peer')).toEqual({
      filters: [{ kind: 'member-join' }, { kind: 'member-failed' }],
      command: 'logger -t peer',
    });
    expect(parseHandler('user:deploy,query=./x.sh a=b')).toEqual({
      filters: [{ kind: 'user', name: 'deploy' }, { kind: 'query' }],
      command: './x.sh a=b',
    });
    // A command that sets a variable has no filter.
    expect(parseHandler('X=1 ./notify.sh')).toEqual({ filters: null, command: 'X=1 ./notify.sh' });
  });

  it('refuses what was meant as a filter but is not one, and an empty command', () => {
    expect(() => parseHandler('member-joined=./x.sh')).toThrow(/'member-joined' is not an event/);
    expect(() => parseHandler('user:bad name=./x.sh')).toThrow(/'user:bad name' is not an event/);
    expect(() => parseHandler('user:deploy=')).toThrow(/has no command/);
  });

  it('matches events by kind and name', () => {
    const spec = parseHandler('user:deploy,query=./x.sh');
    expect(handles(spec, 'user', 'deploy')).toBe(true);
    expect(handles(spec, 'user', 'other')).toBe(false);
    expect(handles(spec, 'query', 'anything')).toBe(true);
    expect(handles(spec, 'member-join')).toBe(false);
    expect(handles(parseHandler('./all.sh'), 'member-leave')).toBe(true);
  });
});

describe('what a handler gets', () => {
  it('Serf’s environment, PEER_ for SERF_', () => {
    const user: HandlerEvent = {
      kind: 'user',
      name: 'deploy',
      payload: Buffer.from('v1'),
      lamport: 42,
      fromName: 'ops',
      coalesce: false,
      done: () => {},
    };
    expect(eventEnv(user, 'db1', { role: 'db', 'rack.no': '2' })).toEqual({
      PEER_EVENT: 'user',
      PEER_SELF_NAME: 'db1',
      PEER_SELF_ROLE: 'db',
      PEER_SELF_TAGS: 'rack.no=2,role=db',
      PEER_TAG_ROLE: 'db',
      PEER_TAG_RACK_NO: '2',
      PEER_USER_EVENT: 'deploy',
      PEER_USER_LTIME: '42',
    });
    expect(stdinOf(user).toString()).toBe('v1');
  });

  it('one member a line on stdin: name, address, role, tags', () => {
    const e: HandlerEvent = {
      kind: 'member-join',
      members: [
        { id: 'a', name: 'db1', address: '10.0.0.1:4000', tags: { role: 'db', rack: '2' } },
        { id: 'b', name: 'web1', address: '10.0.0.2:4000', tags: {} },
      ],
    };
    expect(stdinOf(e).toString()).toBe('db1\t10.0.0.1:4000\tdb\track=2,role=db\nweb1\t10.0.0.2:4000\t\t\n');
    expect(eventEnv(e, 'x', {})).toEqual({
      PEER_EVENT: 'member-join',
      PEER_SELF_NAME: 'x',
      PEER_SELF_ROLE: '',
      PEER_SELF_TAGS: '',
    });
  });
});
