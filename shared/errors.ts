/**
 * The one error class of the project. Pure modules throw it with a stable code; the edges
 * (CLI, HTTP server) turn the code into an exit message or an HTTP status.
 */
export class TransferlabError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = 'TransferlabError';
  }
}

export function isTransferlabError(e: unknown): e is TransferlabError {
  return e instanceof TransferlabError;
}
