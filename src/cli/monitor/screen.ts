/**
 * The whole screen as lines of styled cells, from the model: header, tab bar, the tab's summary,
 * its table (columns sized to their content, scrolled), a position line and the key help. Pure,
 * so a test can check what a person would see at any size; the renderer only paints it.
 */
import {
  COMPOSE_HELP,
  FOLLOW,
  KEY_HELP,
  TAB_IDS,
  cell,
  type Cell,
  type MonitorInput,
  type Tab,
  type UiState,
} from './model.js';

/** Lines around the table: header, tab bar, summary, table header, position, help. */
export const CHROME_LINES = 6;
/** A column never takes more than this many characters (the last one takes the rest). */
export const COLUMN_CHARS_MAX = 40;
/** Spaces between columns; one when the table would not fit with more. */
const COLUMN_GAP_CHARS = 2;
/** A column cut to fit (TabView's `shrink`) keeps at least this many characters, and its header. */
export const COLUMN_CHARS_MIN = 6;
/** Below this size the screen only asks for a larger terminal. */
export const SCREEN_COLUMNS_MIN = 40;
export const SCREEN_ROWS_MIN = 10;

export type Line = Cell[];

export interface Screen {
  lines: Line[];
  /** Rows the current tab's table has, and how many fit. */
  tableRows: number;
  pageRows: number;
}

/** Cuts or pads a line to exactly `width` characters. */
export function fit(line: Line, width: number): Line {
  const out: Line = [];
  let left = width;
  for (const c of line) {
    if (left <= 0) break;
    const text = c.text.length > left ? c.text.slice(0, Math.max(0, left - 1)) + '…' : c.text;
    out.push({ ...c, text });
    left -= text.length;
  }
  if (left > 0) out.push(cell(' '.repeat(left)));
  return out;
}

function columnWidths(headers: string[], rows: Cell[][]): number[] {
  return headers.map((h, i) => {
    const w = Math.max(h.length, ...rows.map((r) => r[i]?.text.length ?? 0));
    return i === headers.length - 1 ? w : Math.min(w, COLUMN_CHARS_MAX);
  });
}

/**
 * Column widths and the gap between columns for `room` characters: the gap narrows to one space,
 * then the columns in `shrink` give up characters (group by group, the widest first within a
 * group, none below COLUMN_CHARS_MIN or its header), so every column shows, the last one
 * included, and only long names and addresses are cut (with an ellipsis). The last column is
 * counted at its header's width: it takes whatever is left, and its end is cut if need be.
 */
function columnLayout(
  headers: string[],
  rows: Cell[][],
  room: number,
  shrink: readonly (readonly number[])[],
): { widths: number[]; gap: number } {
  const widths = columnWidths(headers, rows);
  const last = headers.length - 1;
  const total = (gap: number) =>
    widths.reduce((sum, w, i) => sum + (i === last ? Math.min(w, headers[i]!.length) : w), 0) + gap * last;
  const gap = total(COLUMN_GAP_CHARS) <= room ? COLUMN_GAP_CHARS : 1;
  for (const group of shrink) {
    while (total(gap) > room) {
      const floor = (i: number) => Math.max(headers[i]!.length, COLUMN_CHARS_MIN);
      const cuttable = group.filter((i) => widths[i]! > floor(i));
      if (cuttable.length === 0) break;
      const widest = cuttable.reduce((a, b) => (widths[b]! > widths[a]! ? b : a));
      widths[widest]!--;
    }
  }
  return { widths, gap };
}

function tableLine(cells: Cell[], widths: number[], gap: number): Line {
  const out: Line = [];
  cells.forEach((c, i) => {
    const w = widths[i]!;
    const text = c.text.length > w ? c.text.slice(0, w - 1) + '…' : c.text.padEnd(w);
    out.push({ ...c, text: i < cells.length - 1 ? text + ' '.repeat(gap) : text.trimEnd() });
  });
  return out;
}

export function screen(
  tabs: readonly Tab[],
  input: MonitorInput,
  ui: UiState,
  columns: number,
  rows: number,
): Screen {
  // One line fewer than the terminal: a frame as tall as the terminal would scroll it.
  const height = rows - 1;
  if (columns < SCREEN_COLUMNS_MIN || height < SCREEN_ROWS_MIN - 1)
    return {
      lines: [
        fit(
          [
            cell(
              `terminal too small (${columns}x${rows}); need ${SCREEN_COLUMNS_MIN}x${SCREEN_ROWS_MIN}`,
              'warn',
            ),
          ],
          columns,
        ),
      ],
      tableRows: 0,
      pageRows: 1,
    };
  const tab = tabs[ui.tab]!;
  const view = tab.view(input);
  const header: Line = [
    cell('peer monitor', 'title'),
    cell(`  ${input.self.group} via ${input.self.address.split(':')[0]}`),
    cell(`  ${input.self.role} (not a member)`, 'dim'),
    cell(`  ${new Date(input.nowWall).toTimeString().slice(0, 8)}`),
  ];
  // Brackets as well as inverse video: the selected tab shows without colour too (NO_COLOR).
  const bar: Line = tabs.flatMap((t, i) => [
    cell(
      i === ui.tab ? `[${i + 1} ${t.title}]` : ` ${i + 1} ${t.title} `,
      i === ui.tab ? 'selected' : 'normal',
    ),
    cell(' '),
  ]);
  const pageRows = height - CHROME_LINES;
  const lines: Line[] = [header, bar];
  let tableRows = 0;
  if (view.kind === 'unavailable') {
    lines.push([cell(view.reason, 'warn')]);
    while (lines.length < height - 1) lines.push([]);
    lines.push([cell(KEY_HELP, 'dim')]);
    return { lines: lines.map((l) => fit(l, columns - 1)), tableRows, pageRows };
  } else {
    lines.push(view.summary);
    const { widths, gap } = columnLayout(view.headers, view.rows, columns - 1, view.shrink ?? []);
    lines.push(
      tableLine(
        view.headers.map((h) => cell(h, 'title')),
        widths,
        gap,
      ),
    );
    tableRows = view.rows.length;
    const maxScroll = Math.max(0, tableRows - pageRows);
    const first = Math.min(ui.scroll[TAB_IDS[ui.tab]!], maxScroll);
    const shown = view.rows.slice(first, first + pageRows);
    if (shown.length === 0) lines.push([cell(view.empty, 'dim')]);
    for (const r of shown) lines.push(tableLine(r, widths, gap));
    while (lines.length < height - 2) lines.push([]);
    const following = ui.scroll[TAB_IDS[ui.tab]!] === FOLLOW && maxScroll > 0;
    const position = cell(
      tableRows > pageRows
        ? `rows ${first + 1}-${first + shown.length} of ${tableRows}${following ? ' (following)' : ''}`
        : '',
      'dim',
    );
    // A tab that takes typed lines shows the draft (with a cursor) or how to start one; a tab may
    // also say there what its table cannot show.
    if (ui.draft !== null) {
      const room = Math.max(1, columns - 5); // the end of a long draft stays in view
      const text = ui.draft.length > room ? '…' + ui.draft.slice(-(room - 1)) : ui.draft;
      lines.push([cell('> ', 'accent'), cell(`${text}▏`)]);
    } else if (view.footer) lines.push([...view.footer, cell('   '), position]);
    else lines.push([position]);
  }
  lines.push([cell(ui.draft !== null ? COMPOSE_HELP : KEY_HELP, 'dim')]);
  return { lines: lines.map((l) => fit(l, columns - 1)), tableRows, pageRows };
}
