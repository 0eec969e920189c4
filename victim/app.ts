import { createHash, randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { ipKeyGenerator, rateLimit } from 'express-rate-limit';
import helmet from 'helmet';
import { pino, type Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import { TransferlabError, isTransferlabError } from '../shared/errors.js';
import { HEADERS, PATHS, openApiDocument, type LabelResponse, type VictimInfo } from '../shared/protocol/index.js';
import { CLASSES } from '../shared/mnist.js';
import { mountAdminRoutes, type AdminKey } from './admin.js';
import type { AuditSink, AuditOutcome } from './audit.js';
import { ExtractionWatch, watchAnswer } from './detection.js';
import { MemoryIdempotencyStore, parseIdempotencyKey, type IdempotencyStore, type IdempotencyTicket } from './idempotency.js';
import { binaryBodyLimit, jsonBodyLimit, parseBinaryBatch, parseJsonBatch, parsePixelFormat, type ImageBatch } from './inputs.js';
import { ANONYMOUS, bearerToken, type KeyRing, type Principal } from './keys.js';
import type { Budgets } from './ledger.js';
import type { WorkInFlight } from './server.js';

/**
 * The victim's HTTP surface (README "The victim's HTTP API"), as a pure function of its collaborators
 * so tests can run it in-process with a fake model, memory audit log or frozen clock. Only labels
 * and budget figures ever leave: no probabilities, logits, architecture or weights.
 */
/** What /v1/info says of the served model (maxBatch, inputRange and output come from the service). */
export type ServedModelInfo = Pick<VictimInfo, 'dataset' | 'inputShape' | 'classes' | 'classNames'>;

export const MNIST_MODEL_INFO: ServedModelInfo = { dataset: 'mnist', inputShape: [28, 28, 1], classes: CLASSES };

export interface VictimAppOptions {
  /** Labels for `count` images of model.inputShape (the micro-batcher in production). */
  label: (images: Float32Array, count: number) => Promise<Int32Array>;
  /** The served model's input and classes (default: an MNIST classifier). */
  model?: ServedModelInfo;
  /** undefined = open service; every caller is the principal "anonymous". */
  keys?: KeyRing;
  /** Budget of the anonymous principal when there are no keys (null = unlimited). */
  anonymousBudget?: number | null;
  budgets: Budgets;
  audit: AuditSink;
  maxBatch: number;
  /** Requests per second per key (per client IP when open); 0 turns the limit off. */
  rateLimit: number;
  /** Request logger; undefined = silent. */
  logger?: Logger;
  clock?: () => Date;
  /** True once shutdown began: responses then close their connection. */
  draining?: () => boolean;
  /** Extraction detection (victim/detection.ts); undefined = off. */
  watch?: ExtractionWatch;
  /** Key of the admin endpoints; undefined = no admin endpoints. */
  adminKey?: AdminKey;
  /** Label requests still being handled, for a shutdown that waits for them. */
  inFlight?: WorkInFlight;
  /** Idempotency-Key replays (default: in memory only, an LRU of 10,000 entries). */
  idempotency?: IdempotencyStore;
}

/** Once shutdown began, every response tells its client to reconnect elsewhere, so connections drain. */
function closeIfDraining(res: Response): void {
  if ((res.locals.draining as (() => boolean) | undefined)?.()) res.setHeader('Connection', 'close');
}

function sendError(res: Response, err: TransferlabError): void {
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

const methodNotAllowed =
  (allow: string): RequestHandler =>
  (req, res) => {
    res.setHeader('Allow', allow);
    sendError(res, new TransferlabError('method_not_allowed', `${req.method} is not allowed on ${req.path}; use ${allow.split(', ').join(' or ')}`, 405));
  };

/** Run connect-style middleware as a promise; it must call next() or next(err), never answer itself. */
function run(mw: RequestHandler, req: Request, res: Response): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: unknown) => (err ? reject(err) : resolve());
    // Some middleware is async: a rejection it did not hand to next() must not go unhandled.
    Promise.resolve(mw(req, res, done)).catch(reject);
  });
}

export function createApp(opts: VictimAppOptions): express.Express {
  const clock = opts.clock ?? (() => new Date());
  const logger = opts.logger ?? pino({ level: 'silent' });
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use(
    pinoHttp({
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
    }),
  );
  app.use(helmet());
  app.use((_req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    res.locals.draining = opts.draining;
    closeIfDraining(res);
    next();
  });

  const model = opts.model ?? MNIST_MODEL_INFO;
  const info: VictimInfo = {
    dataset: model.dataset,
    inputShape: model.inputShape,
    classes: model.classes,
    ...(model.classNames ? { classNames: model.classNames } : {}),
    inputRange: [0, 1],
    maxBatch: opts.maxBatch,
    output: 'label',
  };
  const shape = info.inputShape;
  const openapi = openApiDocument({ info, authenticated: opts.keys !== undefined });
  app.get(PATHS.health, (_req, res) => void res.json({ status: 'ok' }));
  app.all(PATHS.health, methodNotAllowed('GET, HEAD'));
  app.get(PATHS.info, (_req, res) => void res.json(info));
  app.all(PATHS.info, methodNotAllowed('GET, HEAD'));
  app.get(PATHS.openapi, (_req, res) => void res.json(openapi));
  app.all(PATHS.openapi, methodNotAllowed('GET, HEAD'));

  const limiter =
    opts.rateLimit > 0
      ? rateLimit({
          windowMs: 1000,
          limit: opts.rateLimit,
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
            next(new TransferlabError('rate_limited', `more than ${opts.rateLimit} requests per second for this key; retry after ${seconds} s`, 429));
          },
        })
      : undefined;
  const readJson = express.raw({ type: () => true, limit: jsonBodyLimit(shape, opts.maxBatch) });
  const readBinary = express.raw({ type: () => true, limit: binaryBodyLimit(shape, opts.maxBatch) });

  const idempotency: IdempotencyStore = opts.idempotency ?? new MemoryIdempotencyStore();
  if (opts.adminKey) mountAdminRoutes(app, { key: opts.adminKey, watch: opts.watch }, (res, e) => sendError(res, toApiError(e)), methodNotAllowed);

  const authenticate = (req: Request): Principal => {
    const token = bearerToken(req.rawHeaders); // refuses repeated Authorization headers, even on an open service
    if (!opts.keys) return { id: ANONYMOUS, limit: opts.anonymousBudget ?? null };
    if (token === undefined) throw new TransferlabError('missing_api_key', 'this service needs an API key: send the header Authorization: Bearer <key>', 401);
    const who = opts.keys.authenticate(token);
    if (!who) throw new TransferlabError('invalid_api_key', 'the API key is not valid; check the key you were issued', 401);
    return who;
  };

  const mediaType = (req: Request): 'json' | 'binary' => {
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
  };

  const labelRoute = async (req: Request, res: Response) => {
    const started = performance.now();
    let principal: Principal | undefined;
    let payloadSha256: string | null = null;
    let images = 0;
    let ticket: IdempotencyTicket | undefined;
    const audit = (outcome: AuditOutcome, status: number, code?: string) =>
      opts.audit.record({
        time: clock().toISOString(),
        requestId: String(req.id),
        keyId: principal?.id ?? null,
        images,
        payloadSha256,
        outcome,
        status,
        ...(code ? { code } : {}),
        durationMs: Math.round((performance.now() - started) * 10) / 10,
      });
    try {
      principal = authenticate(req);
      res.locals.principal = principal;
      if (limiter) await run(limiter, req, res);
      const client = ExtractionWatch.clientOf(principal, ipKeyGenerator(req.ip ?? 'unknown'));
      await opts.watch?.check(client); // a blocked client is refused before anything is read or charged
      const idempotencyKey = parseIdempotencyKey(req.get(HEADERS.idempotencyKey));
      const kind = mediaType(req);
      const format = kind === 'binary' ? parsePixelFormat(req.get(HEADERS.pixelFormat)) : 'uint8';
      await run(kind === 'json' ? readJson : readBinary, req, res);
      const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      payloadSha256 = createHash('sha256').update(body).digest('hex');
      const batch: ImageBatch = kind === 'json' ? parseJsonBatch(body, shape, opts.maxBatch) : parseBinaryBatch(body, format, shape, opts.maxBatch);
      images = batch.count;
      if (idempotencyKey !== undefined) {
        // A repeat of a request already charged: the same labels again, charged nothing, not re-watched.
        const outcome = await idempotency.replayOrClaim(principal.id, idempotencyKey, payloadSha256);
        if ('labels' in outcome) {
          await audit('replayed', 200);
          const answer: LabelResponse = { labels: Array.from(outcome.labels), budget: { used: await opts.budgets.used(principal.id), limit: principal.limit } };
          closeIfDraining(res);
          res.setHeader(HEADERS.idempotentReplayed, 'true'); // as Stripe does: the client can tell nothing was charged
          res.json(answer);
          return;
        }
        ticket = outcome.ticket;
      }
      const reservation = await opts.budgets.reserve(principal, batch.count);
      let labels: Int32Array;
      try {
        labels = await opts.label(batch.images, batch.count);
      } catch (e) {
        await opts.budgets.release(reservation);
        req.log.error({ err: e }, 'model call failed');
        throw new TransferlabError('model_failed', 'the model failed on this batch; nothing was charged — try again', 500);
      }
      // The model call may have kept the event loop busy while the client hung up (or timed out): let
      // it look at the connection once more. Nobody can receive these labels then, so they are not
      // charged (a retry with the same Idempotency-Key is served normally). The requests of one model
      // call all resume in the same turn, so their charges still share a group commit.
      await new Promise<void>((resume) => setImmediate(resume));
      if (req.socket.destroyed || !req.socket.writable) {
        await opts.budgets.release(reservation);
        throw new TransferlabError('client_disconnected', 'the client closed the connection before its labels were ready; nothing was charged', 499);
      }
      // Charged from here on (commit counts the charge at once, even when the ledger write fails), so
      // a retry with the same Idempotency-Key must get these labels rather than pay again. A store
      // that can writes the record in the same atomic step as the charge (Redis); otherwise both
      // records are written in the same turn, so they share the group commit (files).
      const record = ticket && opts.budgets.commitWithRecord ? idempotency.recordFor?.(ticket, labels) : undefined;
      const committing = record ? opts.budgets.commitWithRecord!(reservation, record) : opts.budgets.commit(reservation);
      const remembered =
        ticket && !record
          ? idempotency.finish(ticket, labels).catch((e: unknown) => {
              // The charge stands and a repeat to this process is still free; only a restart forgets it.
              req.log.error({ err: e }, 'idempotency record write failed');
            })
          : undefined;
      const used = await committing;
      if (opts.watch) await watchAnswer(opts.watch, req, principal.id, client, batch.images, labels);
      try {
        await audit('answered', 200);
      } catch (e) {
        // No answer may leave without its audit line; the charge stands (it is already durable).
        req.log.error({ err: e }, 'audit log write failed');
        throw new TransferlabError('audit_unavailable', 'the audit log cannot be written; try again later', 503);
      }
      await remembered;
      const answer: LabelResponse = { labels: Array.from(labels), budget: { used, limit: principal.limit } };
      closeIfDraining(res);
      res.json(answer);
    } catch (e) {
      if (ticket) await idempotency.abandon(ticket).catch(() => {}); // no-op once charged
      const err = toApiError(e);
      if (err.status >= 500 && err.code === 'internal_error') req.log.error({ err: e }, 'unexpected error');
      if (err.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="transferlab"');
      try {
        await audit(err.code === 'client_disconnected' ? 'abandoned' : err.status >= 500 ? 'failed' : 'rejected', err.status, err.code);
      } catch (auditError) {
        // Refusing to answer because the refusal could not be audited would help nobody; log loudly.
        req.log.error({ err: auditError }, 'audit log write failed');
      }
      sendError(res, err);
    }
  };
  app.post(PATHS.label, (req, res) => void (opts.inFlight ? opts.inFlight.track(labelRoute(req, res)) : labelRoute(req, res)));
  app.all(PATHS.label, methodNotAllowed('POST'));

  app.use((req, res) => {
    sendError(res, new TransferlabError('not_found', `no route ${req.method} ${req.path.slice(0, 100)}; see GET ${PATHS.openapi}`, 404));
  });
  // Errors from middleware outside the label route (e.g. a malformed URL): never a stack trace.
  app.use((e: unknown, req: Request, res: Response, _next: NextFunction) => {
    const err = toApiError(e);
    if (err.status >= 500) req.log.error({ err: e }, 'unexpected error');
    sendError(res, err);
  });
  return app;
}
