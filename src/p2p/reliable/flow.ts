/**
 * The bulk sender's window: how many bytes may be sent and not yet acked by the slowest live
 * receiver. The sender numbers a fragment only while the window has room (bulk.ts) and never
 * evicts a fragment a waited-for receiver has not acked, so a slow or lossy receiver slows the
 * sender down instead of losing what it still needs.
 *
 * The window grows by what is acked (doubling per round trip, as TCP's slow start) and is cut to
 * RELIABLE_BULK_WINDOW_CUT of itself, at most once per round trip, when a NACK shows loss. The cut
 * is gentler than TCP's half: on a LAN most loss is a receiver's socket buffer overflowing under
 * a burst, or random (Wi-Fi), and halving on every lossy round trip starves a transfer that loses
 * a steady few percent; a quarter still backs off fast from a real overload.
 */
import {
  RELIABLE_BULK_WINDOW_BYTES_MAX,
  RELIABLE_BULK_WINDOW_CUT,
  RELIABLE_BULK_WINDOW_MIN_BYTES,
  RELIABLE_BULK_WINDOW_START_BYTES,
} from './limits.js';

export class Window {
  bytes = RELIABLE_BULK_WINDOW_START_BYTES;
  /** No cut until the slowest receiver acks past this: the round trip of the last cut. */
  private cutUntil = 0;

  /** Receivers acked `bytes` more (the slowest one's position moved). */
  acked(bytes: number): void {
    this.bytes = Math.min(RELIABLE_BULK_WINDOW_BYTES_MAX, this.bytes + bytes);
  }

  /**
   * A receiver NACKed: cut the window unless it was already cut in this round trip.
   * `highest`: the newest sequence sent; `slowest`: the slowest receiver's acked position.
   */
  loss(highest: number, slowest: number): void {
    if (slowest < this.cutUntil) return;
    this.cutUntil = highest;
    this.bytes = Math.max(RELIABLE_BULK_WINDOW_MIN_BYTES, Math.floor(this.bytes * RELIABLE_BULK_WINDOW_CUT));
  }
}
