/**
 * The monitor's renderer, with Ink (React for terminals): it paints the lines screen() computes
 * and turns key presses into reduceKey() calls. Ink's incremental rendering rewrites only the
 * lines that changed, so a refresh every REFRESH_MS does not flicker, locally or over SSH.
 * No JSX: React.createElement keeps the build's tsconfig as it is.
 */
import React, { useEffect, useState } from 'react';
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

export function keyName(input: string, key: Key): KeyName | null {
  if (key.ctrl && input === 'c') return 'quit';
  if (input === 'q' || input === 'Q' || key.escape) return 'quit';
  if (key.tab) return key.shift ? 'shift-tab' : 'tab';
  if (key.leftArrow) return 'left';
  if (key.rightArrow) return 'right';
  if (key.upArrow || input === 'k') return 'up';
  if (key.downArrow || input === 'j') return 'down';
  if (key.pageUp) return 'pageup';
  if (key.pageDown || input === ' ') return 'pagedown';
  if (key.home || input === 'g') return 'home';
  if (key.end || input === 'G') return 'end';
  if (/^[1-9]$/.test(input)) return `digit-${Number(input)}`;
  return null;
}

interface Props {
  tabs: readonly Tab[];
  snapshot: () => MonitorInput;
  onQuit: () => void;
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

export function MonitorApp({ tabs, snapshot, onQuit }: Props): React.ReactElement {
  const { columns, rows } = useTerminalSize();
  const [ui, setUi] = useState(initialUi);
  const [input, setInput] = useState(snapshot);
  useEffect(() => {
    const t = setInterval(() => setInput(snapshot()), REFRESH_MS);
    return () => clearInterval(t);
  }, [snapshot]);
  const s = screen(tabs, input, ui, columns, rows);
  useInput((text, key) => {
    const name = keyName(text, key);
    if (!name) return;
    const next = reduceKey(ui, name, tabs.length, s.pageRows, Math.max(0, s.tableRows - s.pageRows));
    if (next === 'quit') onQuit();
    else setUi(next);
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
