import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { ipKeyGenerator, rateLimit } from 'express-rate-limit';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import { TransferlabError } from '../../shared/errors.js';
import { HEADERS } from '../../shared/protocol/index.js';
import { closeIfDraining } from './errors.js';
import { ANONYMOUS, bearerToken, type KeyRing, type Principal } from '../store/keys.js';

/**
 * The victim's request pipeline before a route: request ids and logging, no-store headers, the
 * per-key rate limit, authentication and the media type — each a function of its settings so the
 * app (victim/http/app.ts) only assembles them in order.
 */

/** Request logging with ids minted here. */
export function requestLogger(logger: Logger): RequestHandler {
  return pinoHttp({
    logger,
    // Ids are always minted here, never taken from the client, so audit-log ids cannot be forged or
    // made to collide; the client learns its id from the X-Request-Id response header.
    genReqId: (_req, res) => {
      const id = randomUUID();
      res.setHeader(HEADERS.requestId, id);
      return id;
    },
    // No headers (Authorization carries the key), no query string, no body.
    serializers: {
      req: (req: { id: unknown; method: string; url: string; remoteAddress?: string }) => ({
        id: req.id,
        method: req.method,
        path: String(req.url).split('?')[0].slice(0, 200),
      }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
    customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info'),
  });
}

/** No caching of any answer; during shutdown every response closes its connection. */
export function noStore(draining?: () => boolean): RequestHandler {
  return (_req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    res.locals.draining = draining;
    closeIfDraining(res);
    next();
  };
}

/** Requests per second per key (per client IP on an open service); undefined when off (0). */
export function rateLimiter(perSecond: number): RequestHandler | undefined {
  if (!(perSecond > 0)) return undefined;
  return rateLimit({
    windowMs: 1000,
    limit: perSecond,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    keyGenerator: (req, res) => {
      const who = res.locals.principal as Principal | undefined;
      return who && who.id !== ANONYMOUS ? `key:${who.id}` : `ip:${ipKeyGenerator(req.ip ?? 'unknown')}`;
    },
    handler: (req, res, next) => {
      const reset = (req as Request & { rateLimit?: { resetTime?: Date } }).rateLimit?.resetTime;
      const seconds = Math.max(1, Math.ceil(((reset?.getTime() ?? Date.now() + 1000) - Date.now()) / 1000));
      res.setHeader(HEADERS.retryAfter, String(seconds));
      next(new TransferlabError('rate_limited', `more than ${perSecond} requests per second for this key; retry after ${seconds} s`, 429));
    },
  });
}

/** Run connect-style middleware as a promise; it must call next() or next(err), never answer itself. */
export function runMiddleware(mw: RequestHandler, req: Request, res: Response): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: unknown) => (err ? reject(err) : resolve());
    // Some middleware is async: a rejection it did not hand to next() must not go unhandled.
    Promise.resolve(mw(req, res, done)).catch(reject);
  });
}

/** Who is calling: a key of the ring, or (no ring: an open service) the anonymous principal. */
export function authenticator(keys: KeyRing | undefined, anonymousBudget: number | null | undefined): (req: Request) => Principal {
  return (req) => {
    const token = bearerToken(req.rawHeaders); // refuses repeated Authorization headers, even on an open service
    if (!keys) return { id: ANONYMOUS, limit: anonymousBudget ?? null };
    if (token === undefined) throw new TransferlabError('missing_api_key', 'this service needs an API key: send the header Authorization: Bearer <key>', 401);
    const who = keys.authenticate(token);
    if (!who) throw new TransferlabError('invalid_api_key', 'the API key is not valid; check the key you were issued', 401);
    return who;
  };
}

/** The body's kind from its Content-Type: JSON (UTF-8 only) or raw bytes. */
export function mediaType(req: Request): 'json' | 'binary' {
  const type = req.get('content-type');
  if (!type) throw new TransferlabError('unsupported_media_type', 'missing Content-Type; send application/json or application/octet-stream', 415);
  // Parsed here rather than with req.is(), which answers null for a request without a body and
  // would turn a missing body into a misleading "unsupported Content-Type".
  const media = type.split(';')[0].trim().toLowerCase();
  if (media === 'application/json') {
    const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(type)?.[1];
    if (charset && !/^utf-?8$/i.test(charset)) throw new TransferlabError('unsupported_media_type', `charset ${charset.slice(0, 20)} is not supported; send JSON as UTF-8`, 415);
    return 'json';
  }
  if (media === 'application/octet-stream') return 'binary';
  throw new TransferlabError('unsupported_media_type', `Content-Type ${type.slice(0, 60)} is not supported; send application/json or application/octet-stream`, 415);
}
