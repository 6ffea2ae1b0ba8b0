/**
 * Terminal safety: text that came from the network or from storage (chat lines, peer names, tags,
 * kv keys and values, task results, remote error text) is shown to a person, never obeyed by the
 * terminal. Every human output path passes such text through escapeForTerminal() before it is
 * painted; `--json` and `--log-format json` output does not (JSON.stringify escapes control
 * characters itself, and scripts need the exact text).
 *
 * What is escaped, as visible text, never emitted:
 * - C0 controls (U+0000-U+001F), DEL (U+007F) and C1 controls (U+0080-U+009F): ESC starts every
 *   terminal escape sequence (ESC [ ... for the 7-bit CSI, ESC ] ... for a title), U+009B is the
 *   8-bit CSI, BEL and BS rewrite what is shown. Escaping the introducer leaves the rest of a
 *   sequence as inert text, so `ESC]0;pwned BEL` shows whole as `\x1b]0;pwned\x07`.
 * - CR, LF and TAB too, as `\r`, `\n`, `\t`: every place peer shows remote text is one line (a
 *   chat line, a table cell, a log line), and a raw newline or CR would let a sender forge a line
 *   that looks like someone else's ("bob: ...") or overwrite the start of its own.
 * - Format characters (Unicode category Cf): bidirectional overrides and isolates (U+202A-U+202E,
 *   U+2066-U+2069), marks (U+200E, U+200F, U+061C), zero-width and invisible characters (U+200B,
 *   U+2060-U+2064, U+FEFF, U+00AD...) which reorder or hide what follows ("Trojan Source"), and
 *   the line and paragraph separators U+2028, U+2029. Except U+200C and U+200D (zero-width
 *   non-joiner and joiner: Persian, Indic scripts and emoji such as 👨‍👩‍👧 need them; they neither
 *   reorder nor hide text) and the tag characters inside an emoji flag (🏴 + tags + cancel tag).
 * - Lone surrogates (half of a UTF-16 pair): not text; terminals show them as garbage.
 *
 * Forms: `\n`, `\r`, `\t`; `\xHH` up to U+00FF; `\uHHHH` in the basic plane; `\u{HHHHH}` above;
 * hex in lower case. Everything else (any script, emoji, symbols) passes unchanged.
 *
 * Backslash: a backslash is doubled only where it would otherwise read as the start of an escape,
 * that is when the next character is one of `\ x u n r t` or is itself escaped. So `C:\Users\bob`
 * and `\d+` show unchanged, while a sender who types the six characters `\x1b[H` is shown as
 * `\\x1b[H`, never as if it had sent an ESC: the shown text always decodes to exactly one input.
 */

/** Characters shown escaped: controls, separators, format characters but ZWNJ/ZWJ, lone surrogates. */
const ESCAPED = String.raw`(?![\u200C\u200D])[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]`;
/** An emoji flag: U+1F3F4, tag characters, U+E007F (the only use of tag characters in text). */
const FLAG = String.raw`\u{1F3F4}[\u{E0020}-\u{E007E}]+\u{E007F}`;
/** A backslash that would read as an escape's start: before an escape letter or an escaped character. */
const AMBIGUOUS_BACKSLASH = String.raw`\\(?=[\\xunrt]|${ESCAPED})`;

const NEEDS_WORK = new RegExp(`${ESCAPED}|${AMBIGUOUS_BACKSLASH}`, 'u');
const TOKEN = new RegExp(`(${FLAG})|${AMBIGUOUS_BACKSLASH}|${ESCAPED}`, 'gu');

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\' };

function escapeOne(ch: string): string {
  const named = NAMED[ch];
  if (named) return named;
  const cp = ch.codePointAt(0)!;
  const hex = cp.toString(16);
  if (cp <= 0xff) return `\\x${hex.padStart(2, '0')}`;
  if (cp <= 0xffff) return `\\u${hex.padStart(4, '0')}`;
  return `\\u{${hex}}`;
}

/** `text` as one line a terminal shows and never interprets (see above). */
export function escapeForTerminal(text: string): string {
  if (!NEEDS_WORK.test(text)) return text; // the common case: no copy
  return text.replace(TOKEN, (m: string, flag: string | undefined) => (flag ? flag : escapeOne(m)));
}
