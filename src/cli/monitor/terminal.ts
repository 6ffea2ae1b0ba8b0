/**
 * Full screen and back. Ink draws in the normal screen; the monitor switches the terminal to its
 * alternate screen (DEC private mode 1049, which xterm, tmux, screen and every SSH client's
 * terminal support) so that quitting gives back the shell exactly as it was. Restoring is
 * idempotent and runs on every way out: q, Ctrl-C, SIGINT, SIGTERM, SIGHUP, and an exception.
 */
import type { WriteStream } from 'node:tty';

/** Enter / leave the alternate screen buffer, saving / restoring the cursor (mode 1049). */
export const ALTERNATE_SCREEN_ON = '\u001b[?1049h';
export const ALTERNATE_SCREEN_OFF = '\u001b[?1049l';
/** Cursor visible again, in case the renderer died before showing it. */
export const CURSOR_SHOW = '\u001b[?25h';

export class FullScreen {
  private active = false;
  constructor(private readonly out: WriteStream) {}

  enter(): void {
    if (this.active) return;
    this.active = true;
    this.out.write(ALTERNATE_SCREEN_ON);
  }

  leave(): void {
    if (!this.active) return;
    this.active = false;
    this.out.write(CURSOR_SHOW + ALTERNATE_SCREEN_OFF);
  }
}
