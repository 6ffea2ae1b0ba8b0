/**
 * What protocols know of a write that storage could not make (a full disk, an I/O error): its kind
 * and file, and the error a holder's own append throws. Storage classifies the errors it meets
 * into these (storage/health.ts); a protocol only ever reports them and acknowledges nothing that
 * failed (nothing is acknowledged before it is durable).
 */
export type WriteFailureKind = 'full' | 'io' | 'other';

export interface WriteFailure {
  kind: WriteFailureKind;
  /** The file the write went to. */
  file: string;
  /** The error code (ENOSPC, SQLITE_FULL...) or message, one line. */
  code: string;
}

/** The failure in a few words, for a log line or an error message. */
export function failureReason(kind: WriteFailureKind, code = ''): string {
  switch (kind) {
    case 'full':
      return 'disk full';
    case 'io':
      return 'I/O error';
    default:
      return code ? `write error ${code}` : 'write error';
  }
}

/** Thrown by a local write (a holder appending its own entry) that storage refused. */
export class WriteFailedError extends Error {
  override name = 'WriteFailedError';
  constructor(readonly failure: WriteFailure) {
    super(
      `cannot store the entry: writes to ${failure.file} fail (${failureReason(failure.kind, failure.code)}); free space or fix the disk, then write again`,
    );
  }
}
