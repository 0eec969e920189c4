import { createHash } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { ipKeyGenerator } from 'express-rate-limit';
import { TransferlabError } from '../../shared/errors.js';
import type { Labeler } from '../../shared/labeler.js';
import { HEADERS, type BudgetStatus, type InputShape } from '../../shared/protocol/index.js';
import type { AuditOutcome, AuditSink } from '../store/audit.js';
import type { Prediction } from './batcher.js';
import { clientErrorOf } from './client-errors.js';
import { ExtractionWatch, judgeRequest, watchAnswer } from '../detect/detection.js';
import { closeIfDraining, toApiError } from './errors.js';
import { parseIdempotencyKey, type IdempotencyStore, type IdempotencyTicket } from '../store/idempotency.js';
import type { ImageBatch } from './inputs.js';
import type { Principal } from '../store/keys.js';
import type { Budgets } from '../store/ledger.js';
import { runMiddleware } from './middleware.js';

/**
 * Every paid route — POST /v1/label, /v1/predict, the Open Inference Protocol's and TF Serving's
 * predict routes — is this one pipeline, in the order that keeps every promise of the API:
 * authenticate, refuse what the output policy withholds, rate-limit, refuse a blocked client, read and
 * validate the body, replay an Idempotency-Key already charged, reserve the budget, run the model
 * (the micro-batcher), charge (with the Idempotency-Key record), watch, audit — then answer. Anything
 * that fails before the charge charges nothing; nothing is answered without its audit line. What
 * differs between routes is their `RouteFace`: how the body is read and how answers and errors look.
 */
export interface LabelRouteDeps {
  label: Labeler;
  /** Labels and probabilities (the same micro-batcher); needed by faces that answer probabilities. */
  predict?: (images: Float32Array, count: number) => Promise<Required<Prediction>>;
  budgets: Budgets;
  audit: AuditSink;
  idempotency: IdempotencyStore;
  watch?: ExtractionWatch;
  maxBatch: number;
  shape: InputShape;
  clock: () => Date;
  authenticate: (req: Request) => Principal;
  limiter?: RequestHandler;
  readJson: RequestHandler;
  readBinary: RequestHandler;
}

/** What a route's answer is made of: the labels, the probabilities when the face asked for them, the budget. */
export interface Answered<C> {
  labels: Int32Array;
  probabilities?: Float32Array;
  budget: BudgetStatus;
  context: C;
  requestId: string;
}

/** One route's own look over the shared pipeline. */
export interface RouteFace<C = undefined> {
  /** The route's name in the audit log (absent for /v1/label, as before). */
  route?: string;
  /** An error refusing every request before anything is read (e.g. the output policy withholds this route's answer). */
  refuse?: TransferlabError;
  /** Reads and validates the body (after the key, rate limit and detector checks): the bytes, the images, and what the answer needs. */
  read(req: Request, res: Response, d: LabelRouteDeps): Promise<{ body: Buffer; batch: ImageBatch; context: C }>;
  /** True when the answer needs the model's probabilities (not only its labels). */
  probabilities: boolean;
  answer(res: Response, a: Answered<C>): void;
  fail(res: Response, err: TransferlabError): void;
}

/** The raw body through one of the deps' readers (JSON or binary size limit). */
export async function readBody(req: Request, res: Response, reader: RequestHandler): Promise<Buffer> {
  await runMiddleware(reader, req, res);
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

export function paidRoute<C>(d: LabelRouteDeps, face: RouteFace<C>): (req: Request, res: Response) => Promise<void> {
  return async (req, res) => {
    const started = performance.now();
    let principal: Principal | undefined;
    let payloadSha256: string | null = null;
    let images = 0;
    let ticket: IdempotencyTicket | undefined;
    const audit = (outcome: AuditOutcome, status: number, code?: string) =>
      d.audit.record({
        time: d.clock().toISOString(),
        requestId: String(req.id),
        keyId: principal?.id ?? null,
        images,
        payloadSha256,
        outcome,
        status,
        ...(code ? { code } : {}),
        ...(face.route ? { route: face.route } : {}),
        durationMs: Math.round((performance.now() - started) * 10) / 10,
      });
    try {
      principal = d.authenticate(req);
      res.locals.principal = principal;
      if (face.refuse) throw face.refuse;
      if (d.limiter) await runMiddleware(d.limiter, req, res);
      const client = ExtractionWatch.clientOf(principal, ipKeyGenerator(req.ip ?? 'unknown'));
      await d.watch?.check(client); // a blocked client is refused before anything is read or charged
      const idempotencyKey = parseIdempotencyKey(req.get(HEADERS.idempotencyKey));
      const read = await face.read(req, res, d).catch((e: unknown) => {
        // The body's hash is audited even when what it holds was refused.
        if (Buffer.isBuffer(req.body)) payloadSha256 = createHash('sha256').update(req.body).digest('hex');
        throw e;
      });
      const { body, batch, context } = read;
      payloadSha256 = createHash('sha256').update(body).digest('hex');
      images = batch.count;
      const probabilitiesOf = async () => {
        if (!face.probabilities) return undefined;
        if (!d.predict) throw new Error('this route answers probabilities but the service was built without a predictor');
        return (await d.predict(batch.images, batch.count)).probabilities;
      };
      if (idempotencyKey !== undefined) {
        // A repeat of a request already charged: the same labels again, charged nothing, not re-watched.
        const outcome = await d.idempotency.replayOrClaim(principal.id, idempotencyKey, payloadSha256);
        if ('labels' in outcome) {
          // The record holds the labels charged for; probabilities, when this route answers them, are
          // the same deterministic model's again, computed for free.
          const probabilities = await probabilitiesOf();
          await audit('replayed', 200);
          const budget = { used: await d.budgets.used(principal.id), limit: principal.limit };
          closeIfDraining(res);
          res.setHeader(HEADERS.idempotentReplayed, 'true'); // as Stripe does: the client can tell nothing was charged
          face.answer(res, { labels: outcome.labels, probabilities, budget, context, requestId: String(req.id) });
          return;
        }
        ticket = outcome.ticket;
      }
      const reservation = await d.budgets.reserve(principal, batch.count);
      let labels: Int32Array;
      let probabilities: Float32Array | undefined;
      try {
        if (face.probabilities) {
          if (!d.predict) throw new Error('this route answers probabilities but the service was built without a predictor');
          ({ labels, probabilities } = await d.predict(batch.images, batch.count));
        } else labels = await d.label(batch.images, batch.count);
      } catch (e) {
        await d.budgets.release(reservation);
        req.log.error({ err: e }, 'model call failed');
        throw new TransferlabError('model_failed', 'the model failed on this batch; nothing was charged — try again', 500);
      }
      // The model call may have kept the event loop busy while the client hung up (or timed out): let
      // it look at the connection once more. Nobody can receive these labels then, so they are not
      // charged (a retry with the same Idempotency-Key is served normally). The requests of one model
      // call all resume in the same turn, so their charges still share a group commit.
      await new Promise<void>((resume) => setImmediate(resume));
      if (req.socket.destroyed || !req.socket.writable) {
        await d.budgets.release(reservation);
        throw new TransferlabError('client_disconnected', 'the client closed the connection before its labels were ready; nothing was charged', 499);
      }
      if (d.watch?.action === 'reject') {
        // Judged before the charge: a batch holding a flagged query is refused whole and costs nothing.
        const flagged = await judgeRequest(d.watch, req, principal.id, client, batch.images, labels);
        if (flagged.length > 0) {
          await d.budgets.release(reservation);
          res.setHeader(HEADERS.rejectedImages, flagged.join(','));
          throw new TransferlabError(
            'query_rejected',
            `the detector flagged ${flagged.length} of this batch's ${batch.count} image(s) as attack queries (indices in ${HEADERS.rejectedImages}), so the batch was refused; nothing was charged, and this key may go on querying`,
            403,
          );
        }
      }
      // Charged from here on (commit counts the charge at once, even when the ledger write fails), so
      // a retry with the same Idempotency-Key must get these labels rather than pay again. A store
      // that can writes the record in the same atomic step as the charge (Redis); otherwise both
      // records are written in the same turn, so they share the group commit (files).
      const record = ticket && d.budgets.commitWithRecord ? d.idempotency.recordFor?.(ticket, labels) : undefined;
      const committing = record ? d.budgets.commitWithRecord!(reservation, record) : d.budgets.commit(reservation);
      const remembered =
        ticket && !record
          ? d.idempotency.finish(ticket, labels).catch((e: unknown) => {
              // The charge stands and a repeat to this process is still free; only a restart forgets it.
              req.log.error({ err: e }, 'idempotency record write failed');
            })
          : undefined;
      const used = await committing;
      if (d.watch && d.watch.action !== 'reject') await watchAnswer(d.watch, req, principal.id, client, batch.images, labels);
      try {
        await audit('answered', 200);
      } catch (e) {
        // No answer may leave without its audit line; the charge stands (it is already durable).
        req.log.error({ err: e }, 'audit log write failed');
        throw new TransferlabError('audit_unavailable', 'the audit log cannot be written; try again later', 503);
      }
      await remembered;
      closeIfDraining(res);
      face.answer(res, { labels, probabilities, budget: { used, limit: principal.limit }, context, requestId: String(req.id) });
    } catch (e) {
      if (ticket) await d.idempotency.abandon(ticket).catch(() => {}); // no-op once charged
      // A body that broke the HTTP framing (or came too slowly) was already answered on the socket:
      // audit what the client got, and send nothing more.
      const answered = clientErrorOf(req);
      const err = answered ?? toApiError(e);
      if (err.status >= 500 && err.code === 'internal_error') req.log.error({ err: e }, 'unexpected error');
      if (err.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="transferlab"');
      try {
        await audit(err.code === 'client_disconnected' ? 'abandoned' : err.status >= 500 ? 'failed' : 'rejected', err.status, err.code);
      } catch (auditError) {
        // Refusing to answer because the refusal could not be audited would help nobody; log loudly.
        req.log.error({ err: auditError }, 'audit log write failed');
      }
      if (!answered && !res.headersSent) {
        closeIfDraining(res);
        face.fail(res, err);
      }
    }
  };
}
