import type { RequestHandler, Response } from 'express';
import { TransferlabError, isTransferlabError } from '../../shared/errors.js';

/**
 * How the victim's HTTP surface answers errors: every failure as the contract's
 * `{"error":{"code","message"}}` with its status, never a stack trace, and (during shutdown) with
 * `Connection: close`.
 */

/** Once shutdown began, every response tells its client to reconnect elsewhere, so connections drain. */
export function closeIfDraining(res: Response): void {
  if ((res.locals.draining as (() => boolean) | undefined)?.()) res.setHeader('Connection', 'close');
}

export function sendError(res: Response, err: TransferlabError): void {
  if (res.headersSent) return;
  closeIfDraining(res);
  res.status(err.status).json({ error: { code: err.code, message: err.message } });
}

/** Any thrown value as an API error; client-caused body-parser errors keep their 4xx, the rest are 500s that reveal nothing. */
export function toApiError(e: unknown): TransferlabError {
  if (isTransferlabError(e)) return e;
  const err = e as { type?: string; status?: number; message?: string; code?: string };
  // zlib (Z_DATA_ERROR, …) and brotli (ERR__ERROR_FORMAT_…) decoding failures: the client's bytes are wrong.
  if (typeof err.code === 'string' && /^(Z_|ERR__ERROR_)/.test(err.code)) {
    return new TransferlabError('invalid_content_encoding', 'the body is not valid data for its Content-Encoding; compress it correctly or send it uncompressed', 400);
  }
  switch (err.type) {
    case 'entity.too.large':
      return new TransferlabError('payload_too_large', `the body is larger than this endpoint accepts (${err.message ?? ''}); send fewer images per request (see maxBatch in GET /v1/info)`, 413);
    case 'encoding.unsupported':
      return new TransferlabError('unsupported_content_encoding', 'unsupported Content-Encoding; send the body uncompressed, or gzip, deflate or br', 415);
    case 'request.aborted':
      return new TransferlabError('bad_request', 'the request body ended early', 400);
    case 'request.size.invalid':
      return new TransferlabError('bad_request', 'the body length does not match Content-Length', 400);
  }
  if (typeof err.status === 'number' && err.status >= 400 && err.status < 500) {
    return new TransferlabError('bad_request', `bad request: ${err.message ?? 'malformed'}`, err.status);
  }
  return new TransferlabError('internal_error', 'internal error; the request was not charged — try again, and report it if it persists', 500);
}

export const methodNotAllowed =
  (allow: string): RequestHandler =>
  (req, res) => {
    res.setHeader('Allow', allow);
    sendError(res, new TransferlabError('method_not_allowed', `${req.method} is not allowed on ${req.path}; use ${allow.split(', ').join(' or ')}`, 405));
  };
