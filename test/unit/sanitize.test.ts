import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { escapeForTerminal } from '../../src/cli/sanitize.js';

/** What a terminal must never receive from remote text: ESC, 8-bit CSI, CR, LF, bidi and invisible controls. */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u2028-\u202e\u2060-\u2069\ufeff]/u;
const LONE_SURROGATE = /\p{Cs}/u;

/** The reader's side of the rules in sanitize.ts: turns what is shown back into the input. */
function unescape(shown: string): string {
  return shown.replace(
    /\\(?:\\|n|r|t|x([0-9a-f]{2})|u\{([0-9a-f]+)\}|u([0-9a-f]{4}))/g,
    (m, x?: string, astral?: string, bmp?: string) => {
      if (m === '\\\\') return '\\';
      if (m === '\\n') return '\n';
      if (m === '\\r') return '\r';
      if (m === '\\t') return '\t';
      return String.fromCodePoint(parseInt((x ?? astral ?? bmp)!, 16));
    },
  );
}

describe('escapeForTerminal', () => {
  it('shows the escape sequences of a hostile chat line as text', () => {
    const hostile = 'A\x1b]0;pwned\x07B\x1b[2J';
    expect(escapeForTerminal(hostile)).toBe('A\\x1b]0;pwned\\x07B\\x1b[2J');
  });

  it('escapes every C0 control, DEL and every C1 control, with CR, LF and TAB by name', () => {
    for (let cp = 0; cp <= 0x9f; cp++) {
      if (cp >= 0x20 && cp < 0x7f) continue;
      const ch = String.fromCharCode(cp);
      const named = { 0x0a: '\\n', 0x0d: '\\r', 0x09: '\\t' }[cp];
      expect(escapeForTerminal(`a${ch}b`)).toBe(`a${named ?? `\\x${cp.toString(16).padStart(2, '0')}`}b`);
    }
    expect(escapeForTerminal('\x9b2J')).toBe('\\x9b2J'); // the 8-bit CSI
  });

  it('escapes bidi overrides, isolates and marks, invisible characters and line separators', () => {
    const cases: Array<[string, string]> = [
      ['\u202a', '\\u202a'],
      ['\u202b', '\\u202b'],
      ['\u202c', '\\u202c'],
      ['\u202d', '\\u202d'],
      ['\u202e', '\\u202e'],
      ['\u2066', '\\u2066'],
      ['\u2067', '\\u2067'],
      ['\u2068', '\\u2068'],
      ['\u2069', '\\u2069'],
      ['\u200e', '\\u200e'],
      ['\u200f', '\\u200f'],
      ['\u061c', '\\u061c'],
      ['\u200b', '\\u200b'],
      ['\u2060', '\\u2060'],
      ['\ufeff', '\\ufeff'],
      ['\u00ad', '\\xad'],
      ['\u2028', '\\u2028'],
      ['\u2029', '\\u2029'],
      ['\u{e0041}', '\\u{e0041}'], // a tag character outside an emoji flag hides text
    ];
    for (const [input, shown] of cases) expect(escapeForTerminal(`x${input}y`)).toBe(`x${shown}y`);
    // "Trojan Source": the override would show the end of the line reversed.
    expect(escapeForTerminal('access\u202e nimda\u2066')).toBe('access\\u202e nimda\\u2066');
  });

  it('escapes lone surrogates but keeps pairs', () => {
    expect(escapeForTerminal('a\ud800b')).toBe('a\\ud800b');
    expect(escapeForTerminal('a\udc00')).toBe('a\\udc00');
    expect(escapeForTerminal('\ud83d\ude00')).toBe('😀');
  });

  it('passes plain text in any script, emoji and symbols unchanged', () => {
    const plain = [
      'hello, world! (ok) [1] {2} #3 ~ ` \' " <tag>',
      'Grüße, ça va? ñandú',
      '日本語のテキスト、中文文本，한국어',
      'Здравствуйте мир',
      'مرحبا بالعالم', // Arabic: right to left by itself, no control needed
      'שלום עולם',
      'नमस्ते दुनिया',
      'می‌خواهم', // Persian with a zero-width non-joiner
      '😀 👍🏽 ❤️ 🇵🇹 👨‍👩‍👧 🏳️‍🌈', // skin tone, variation selector, regional flag, ZWJ sequences
      '🏴\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}', // Scotland: a tag sequence
      'C:\\Users\\bob \\d+ a\\b', // backslashes that cannot read as escapes
      '',
    ];
    for (const s of plain) expect(escapeForTerminal(s)).toBe(s);
  });

  it('doubles a backslash exactly where it could read as an escape', () => {
    expect(escapeForTerminal('\\x1b[2J')).toBe('\\\\x1b[2J'); // typed, not an ESC
    expect(escapeForTerminal('\\n \\t \\r \\u202e \\\\')).toBe('\\\\n \\\\t \\\\r \\\\u202e \\\\\\');
    expect(escapeForTerminal('\\\x1b')).toBe('\\\\\\x1b'); // a backslash before an escaped ESC
    expect(escapeForTerminal('end\\')).toBe('end\\');
  });

  it('never lets a forbidden character through, and what is shown decodes to the input', () => {
    const text = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc.string({ unit: fc.constantFrom('\\', 'x', 'u', 'n', '{', '1', 'b', '\x1b', '\u202e', '\ud800') }),
    );
    fc.assert(
      fc.property(text, (s) => {
        const shown = escapeForTerminal(s);
        expect(shown).not.toMatch(FORBIDDEN);
        expect(shown).not.toMatch(LONE_SURROGATE);
        expect(unescape(shown)).toBe(s);
      }),
      { numRuns: 2000 },
    );
  });
});
