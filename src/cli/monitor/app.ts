/**
 * The monitor's renderer, with Ink (React for terminals): it paints the lines screen() computes
 * and turns key presses into reduceKey() calls. Ink writes a frame only when its text changed, and
 * on a TTY wraps each write in a synchronized update (DEC mode 2026), so terminals that support it
 * (and tmux, kitty, iTerm2, WezTerm, Windows Terminal, foot...) swap whole frames: no flicker at
 * REFRESH_MS, locally or over SSH. Ink's incrementalRendering option is not used: in 6.8.0 it
 * redraws a frame shorter than the terminal one line lower each time.
 * No JSX: React.createElement keeps the build's tsconfig as it is.
 */
import React, { useEffect, useRef, useState } from 'react';
import { Box, Text, useInput, useStdout, type Key } from 'ink';
import { reduceKey, initialUi, type KeyName, type MonitorInput, type Tab, type Tone } from './model.js';
import { screen } from './screen.js';

/** Redraws per second: 4, over the 2 the issue asks for; Ink skips lines that did not change. */
export const REFRESH_MS = 250;

const h = React.createElement;

const STYLE: Record<Tone, { color?: string; dimColor?: boolean; bold?: boolean; inverse?: boolean }> = {
  normal: {},
  good: { color: 'green' },
  warn: { color: 'yellow' },
  bad: { color: 'red' },
  dim: { dimColor: true },
  accent: { color: 'cyan' },
  title: { bold: true },
  selected: { inverse: true, bold: true },
};

/**
 * The keys one read of the terminal holds. A key alone comes with its flags set; text typed fast
 * or pasted comes as one string, line ends included ("one\rtwo\r"): each line end is an Enter,
 * in its place. Control characters in the text are dropped.
 */
export function keyNames(input: string, key: Key): KeyName[] {
  if (key.ctrl && input === 'c') return ['interrupt'];
  if (key.escape) return ['escape'];
  if (key.return) return ['enter'];
  if (key.backspace || key.delete) return ['backspace'];
  if (key.tab) return [key.shift ? 'shift-tab' : 'tab'];
  if (key.leftArrow) return ['left'];
  if (key.rightArrow) return ['right'];
  if (key.upArrow) return ['up'];
  if (key.downArrow) return ['down'];
  if (key.pageUp) return ['pageup'];
  if (key.pageDown) return ['pagedown'];
  if (key.home) return ['home'];
  if (key.end) return ['end'];
  if (key.ctrl || key.meta) return [];
  const out: KeyName[] = [];
  input.split(/\r\n|\r|\n/).forEach((part, i) => {
    if (i > 0) out.push('enter');
    const text = [...part].filter((ch) => ch >= ' ' && ch !== '\u007f').join('');
    if (text) out.push(`char:${text}`);
  });
  return out;
}

interface Props {
  tabs: readonly Tab[];
  snapshot: () => MonitorInput;
  onQuit: () => void;
  /** Sends a chat line to the group. */
  onSend: (text: string) => void;
}

function useTerminalSize(): { columns: number; rows: number } {
  const { stdout } = useStdout();
  const read = () => ({ columns: stdout.columns || 80, rows: stdout.rows || 24 });
  const [size, setSize] = useState(read);
  useEffect(() => {
    const onResize = () => setSize(read());
    stdout.on('resize', onResize);
    return () => {
      stdout.off('resize', onResize);
    };
  });
  return size;
}

export function MonitorApp({ tabs, snapshot, onQuit, onSend }: Props): React.ReactElement {
  const { columns, rows } = useTerminalSize();
  const [ui, setUi] = useState(initialUi);
  // Keys are applied to this, never to the `ui` of the last render: keys that come faster than
  // React renders (a paste, fast typing: Enter right behind the text) each see the state the one
  // before left, instead of all starting from the same stale copy and losing lines.
  const current = useRef(ui);
  const [input, setInput] = useState(snapshot);
  useEffect(() => {
    const t = setInterval(() => setInput(snapshot()), REFRESH_MS);
    return () => clearInterval(t);
  }, [snapshot]);
  const s = screen(tabs, input, ui, columns, rows);
  useInput((text, key) => {
    let sent = false;
    for (const name of keyNames(text, key)) {
      const now = current.current;
      const next = reduceKey(now, name, {
        tabCount: tabs.length,
        pageRows: s.pageRows,
        maxScroll: Math.max(0, s.tableRows - s.pageRows),
        canCompose: tabs[now.tab]!.id === 'chat' && input.chat !== null,
      });
      if (next === 'quit') return onQuit();
      if ('send' in next) {
        onSend(next.send);
        sent = true;
      }
      current.current = 'send' in next ? next.ui : next;
    }
    setUi(current.current);
    if (sent) setInput(snapshot()); // show the lines at once
  });
  return h(
    Box,
    { flexDirection: 'column', width: columns, height: s.lines.length },
    ...s.lines.map((line, i) =>
      h(
        Text,
        { key: i, wrap: 'truncate-end' },
        ...line.map((c, j) => h(Text, { key: j, ...STYLE[c.tone ?? 'normal'] }, c.text)),
      ),
    ),
  );
}
