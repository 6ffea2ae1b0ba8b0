/**
 * Bracketed paste for a readline prompt: a block of lines pasted into the terminal becomes one
 * message, not one message per line.
 *
 * With bracketed paste on (ESC[?2004h, which we write at start and undo at exit), the terminal
 * wraps whatever is pasted in ESC[200~ ... ESC[201~. Node's readline turns those into keypress
 * events named `paste-start` and `paste-end`, but still cuts the paste into lines at each CR
 * and emits each as a line. So the lines readline emits between the two are held here, and the
 * line the user finally ends with Enter (the paste's last line, still editable, or an empty one
 * when the paste ended with a newline) is joined to them with "\n": one message, sent when the
 * user presses Enter, as a single typed line is. A terminal that does not support bracketed paste
 * ignores the mode and sends lines as typed: one message each, as before.
 */
import type { EventEmitter } from 'node:events';

const PASTE_MODE_ON = '\x1b[?2004h';
const PASTE_MODE_OFF = '\x1b[?2004l';

interface Key {
  name?: string;
}

export class PasteJoiner {
  private pasting = false;
  private held: string[] = [];
  private readonly onKey = (_s: unknown, key: Key | undefined) => {
    if (key?.name === 'paste-start') this.pasting = true;
    else if (key?.name === 'paste-end') this.pasting = false;
  };

  /** `input` emits readline's keypress events (a terminal stdin read by readline). */
  constructor(
    private readonly input: EventEmitter,
    private readonly output: NodeJS.WritableStream,
  ) {
    input.on('keypress', this.onKey);
    output.write(PASTE_MODE_ON);
  }

  /** Whether lines of a paste are held, waiting for the Enter that sends them. */
  get holding(): boolean {
    return this.held.length > 0;
  }

  /**
   * A line readline emitted: null while it belongs to a paste not yet sent; otherwise the
   * message, the held lines and this one joined by "\n" (without a last empty line).
   */
  line(l: string): string | null {
    if (this.pasting) {
      this.held.push(l);
      return null;
    }
    if (this.held.length === 0) return l;
    const lines = [...this.held, l];
    this.held = [];
    if (lines.at(-1) === '') lines.pop();
    return lines.join('\n');
  }

  /** Stops listening and turns the terminal's bracketed paste off again. */
  close(): void {
    this.input.off('keypress', this.onKey);
    this.output.write(PASTE_MODE_OFF);
  }
}
