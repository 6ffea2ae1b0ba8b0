import { describe, expect, it } from 'vitest';
import { parseShellLine } from '../../src/commands/kv/shell.js';

describe('kv shell line parser', () => {
  it('takes the seed commands, verbs in any case, VALUE as the rest of the line', () => {
    expect(parseShellLine('PUT k v')).toEqual({ kind: 'put', key: 'k', value: 'v' });
    expect(parseShellLine('post minha_chave meu  valor ')).toEqual({
      kind: 'put',
      key: 'minha_chave',
      value: 'meu  valor ',
    });
    expect(parseShellLine('  get k')).toEqual({ kind: 'get', key: 'k' });
    expect(parseShellLine('Delete k')).toEqual({ kind: 'delete', key: 'k' });
    expect(parseShellLine('DUMP')).toEqual({ kind: 'dump' });
    expect(parseShellLine('exit')).toEqual({ kind: 'exit' });
    expect(parseShellLine('QUIT')).toEqual({ kind: 'exit' });
    expect(parseShellLine('help')).toEqual({ kind: 'help' });
    expect(parseShellLine('?')).toEqual({ kind: 'help' });
    expect(parseShellLine('   ')).toEqual({ kind: 'empty' });
    expect(parseShellLine('PUT k ')).toEqual({ kind: 'put', key: 'k', value: '' });
  });

  it('refuses malformed lines with a reason', () => {
    const err = (line: string) => {
      const c = parseShellLine(line);
      return c.kind === 'error' ? c.message : `not an error: ${c.kind}`;
    };
    expect(err('PUT k')).toMatch(/PUT takes a key and a value/);
    expect(err('GET')).toMatch(/GET takes one argument/);
    expect(err('GET a b')).toMatch(/GET takes one argument/);
    expect(err('DUMP x')).toMatch(/DUMP takes no arguments/);
    expect(err('FETCH k')).toMatch(/unknown command 'FETCH'/);
    expect(err(`PUT k ${'v'.repeat(1024 * 1024 + 1)}`)).toMatch(/at most 1048576 bytes \(1 MiB\)/);
    expect(err(`GET ${'k'.repeat(1025)}`)).toMatch(/at most 1024 bytes \(1 KiB\)/);
  });
});
