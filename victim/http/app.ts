import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import helmet from 'helmet';
import { pino, type Logger } from 'pino';
import { TransferlabError } from '../../shared/errors.js';
import type { Labeler } from '../../shared/labeler.js';
import { ROUTES, allowedMethods, formatOutputPolicy, openApiDocument, type BudgetStatus, type Route, type VictimInfo } from '../../shared/protocol/index.js';
import { CLASSES } from '../../shared/datasets/index.js';
import { mountAdminRoutes, type AdminKey } from './admin.js';
import type { AuditSink } from '../store/audit.js';
import type { ExtractionWatch } from '../detect/detection.js';
import { methodNotAllowed, sendError, toApiError } from './errors.js';
import { MemoryIdempotencyStore, type IdempotencyStore } from '../store/idempotency.js';
import { binaryBodyLimit, jsonBodyLimit } from './inputs.js';
import type { KeyRing } from '../store/keys.js';
import { paidRoute, type LabelRouteDeps } from './label-route.js';
import type { Prediction } from './batcher.js';
import { LABEL_ONLY, givesProbabilities, type OutputSettings } from './outputs.js';
import { labelFace, predictFace } from './protocols/transferlab.js';
import { oipFace, oipRouter } from './protocols/oip.js';
import { tfservingFace, tfservingRouter } from './protocols/tfserving.js';
import type { Protocol, ServingModel } from './protocols/serving.js';
import type { Budgets } from '../store/ledger.js';
import { authenticator, noStore, rateLimiter, requestLogger } from './middleware.js';
import type { WorkInFlight } from './server.js';

export { toApiError } from './errors.js';

/**
 * The victim's HTTP surface (docs/http-api.md), as a pure function of its collaborators
 * so tests can run it in-process with a fake model, memory audit log or frozen clock. Only labels,
 * the probabilities the output policy allows (victim/http/outputs.ts) and budget figures ever leave:
 * no logits, architecture or weights. This file assembles it: the middleware
 * (victim/http/middleware.ts), the small routes, the paid routes — one pipeline
 * (victim/http/label-route.ts) with a face per route (victim/http/protocols/) — and the error answers
 * (victim/http/errors.ts).
 */
/** What /v1/info says of the served model (maxBatch, inputRange and output come from the service). */
export type ServedModelInfo = Pick<VictimInfo, 'dataset' | 'inputShape' | 'classes' | 'classNames'>;

export const MNIST_MODEL_INFO: ServedModelInfo = { dataset: 'mnist', inputShape: [28, 28, 1], classes: CLASSES };

export interface VictimAppOptions {
  /** Labels for `count` images of model.inputShape (the micro-batcher in production). */
  label: Labeler;
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
  /** Extraction detection (victim/detect/detection.ts); undefined = off. */
  watch?: ExtractionWatch;
  /** Key of the admin endpoints; undefined = no admin endpoints. */
  adminKey?: AdminKey;
  /** Label requests still being handled, for a shutdown that waits for them. */
  inFlight?: WorkInFlight;
  /** Idempotency-Key replays (default: in memory only, an LRU of 10,000 entries). */
  idempotency?: IdempotencyStore;
  /** What answers may carry (default: the label only). */
  output?: OutputSettings;
  /** Labels and probabilities (the micro-batcher's predict); required unless the output is label-only. */
  predict?: (images: Float32Array, count: number) => Promise<Required<Prediction>>;
  /** The APIs served (default: transferlab's own); the serving protocols name the model `modelName` (default "model"). */
  protocols?: readonly Protocol[];
  modelName?: string;
}


export function createApp(opts: VictimAppOptions): express.Express {
  const clock = opts.clock ?? (() => new Date());
  const logger = opts.logger ?? pino({ level: 'silent' });
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.use(requestLogger(logger));
  app.use(helmet());
  app.use(noStore(opts.draining));

  const model = opts.model ?? MNIST_MODEL_INFO;
  const output = opts.output ?? LABEL_ONLY;
  if (givesProbabilities(output) && !opts.predict) throw new TransferlabError('invalid_config', 'an output policy with probabilities needs a model that gives them (predict)');
  const protocols = new Set(opts.protocols ?? ['transferlab']);
  const info: VictimInfo = {
    dataset: model.dataset,
    inputShape: model.inputShape,
    classes: model.classes,
    ...(model.classNames ? { classNames: model.classNames } : {}),
    inputRange: [0, 1],
    maxBatch: opts.maxBatch,
    output: formatOutputPolicy(output.policy),
    ...(output.round !== undefined && givesProbabilities(output) ? { round: output.round } : {}),
  };
  const shape = info.inputShape;
  const openapi = openApiDocument({ info, authenticated: opts.keys !== undefined });
  // Every route of the contract's table on its method, and 405 naming that method on any other.
  const serve = (route: Route, handler: RequestHandler) => {
    if (route.method === 'GET') app.get(route.path, handler);
    else app.post(route.path, handler);
    app.all(route.path, methodNotAllowed(allowedMethods(route)));
  };
  serve(ROUTES.health, (_req, res) => void res.json({ status: 'ok' }));
  const transferlab = protocols.has('transferlab');
  if (transferlab) {
    serve(ROUTES.info, (_req, res) => void res.json(info));
    serve(ROUTES.openapi, (_req, res) => void res.json(openapi));
  }

  // Free and unwatched: a client may plan its spending without spending, and reading the figure
  // tells a detector nothing about the images it will send.
  const authenticate = authenticator(opts.keys, opts.anonymousBudget);
  if (transferlab) serve(ROUTES.budget, (req, res, next) => {
    void (async () => {
      const who = authenticate(req);
      const answer: BudgetStatus = { used: await opts.budgets.used(who.id), limit: who.limit };
      res.json(answer);
    })().catch(next);
  });

  const idempotency: IdempotencyStore = opts.idempotency ?? new MemoryIdempotencyStore();
  if (opts.adminKey) mountAdminRoutes(app, { key: opts.adminKey, watch: opts.watch }, (res, e) => sendError(res, toApiError(e)), methodNotAllowed);

  const deps: LabelRouteDeps = {
    label: opts.label,
    predict: opts.predict,
    budgets: opts.budgets,
    audit: opts.audit,
    idempotency,
    watch: opts.watch,
    maxBatch: opts.maxBatch,
    shape,
    clock,
    authenticate,
    limiter: rateLimiter(opts.rateLimit),
    readJson: express.raw({ type: () => true, limit: jsonBodyLimit(shape, opts.maxBatch) }),
    readBinary: express.raw({ type: () => true, limit: binaryBodyLimit(shape, opts.maxBatch) }),
  };
  // Every paid route is the same pipeline; shutdown waits for each request it is handling.
  const paid = <C>(face: Parameters<typeof paidRoute<C>>[1]) => {
    const route = paidRoute(deps, face);
    return (req: Request, res: Response) => (opts.inFlight ? opts.inFlight.track(route(req, res)) : route(req, res));
  };
  if (transferlab) {
    const label = paid(labelFace);
    const predict = paid(predictFace(output));
    serve(ROUTES.label, (req, res) => void label(req, res));
    serve(ROUTES.predict, (req, res) => void predict(req, res));
  }
  const serving: ServingModel = { name: opts.modelName ?? 'model', inputShape: shape, classes: info.classes, maxBatch: opts.maxBatch, output };
  if (protocols.has('oip')) app.use('/v2', oipRouter(serving, paid(oipFace(serving))));
  if (protocols.has('tfserving')) app.use('/v1/models', tfservingRouter(serving, paid(tfservingFace(serving))));

  app.use((req, res) => {
    sendError(res, new TransferlabError('not_found', `no route ${req.method} ${req.path.slice(0, 100)}; see GET ${ROUTES.openapi.path}`, 404));
  });
  // Errors from middleware outside the label route (e.g. a malformed URL): never a stack trace.
  app.use((e: unknown, req: Request, res: Response, _next: NextFunction) => {
    const err = toApiError(e);
    if (err.status >= 500) req.log.error({ err: e }, 'unexpected error');
    sendError(res, err);
  });
  return app;
}
