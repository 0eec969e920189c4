import { createHash } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { ipKeyGenerator } from 'express-rate-limit';
import { TransferlabError } from '../../shared/errors.js';
import type { Labeler } from '../../shared/labeler.js';
import { HEADERS, type InputShape, type LabelResponse } from '../../shared/protocol/index.js';
import type { AuditOutcome, AuditSink } from '../store/audit.js';
import { clientErrorOf } from './client-errors.js';
import { ExtractionWatch, judgeRequest, watchAnswer } from '../detect/detection.js';
import { closeIfDraining, sendError, toApiError } from './errors.js';
import { parseIdempotencyKey, type IdempotencyStore, type IdempotencyTicket } from '../store/idempotency.js';
import { parseBinaryBatch, parseJsonBatch, parsePixelFormat, type ImageBatch } from './inputs.js';
import type { Principal } from '../store/keys.js';
import type { Budgets } from '../store/ledger.js';
import { mediaType, runMiddleware } from './middleware.js';

/**
 * POST /v1/label, in the order that keeps every promise of the API: authenticate, rate-limit, refuse
 * a blocked client, read and validate the body, replay an Idempotency-Key already charged, reserve
 * the budget, label, charge (with the Idempotency-Key record), watch, audit — then answer. Anything
 * that fails before the charge charges nothing; nothing is answered without its audit line.
 */
export interface LabelRouteDeps {
  label: Labeler;
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

export function labelRoute(d: LabelRouteDeps): (req: Request, res: Response) => Promise<void> {
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
        durationMs: Math.round((performance.now() - started) * 10) / 10,
      });
    try {
      principal = d.authenticate(req);
      res.locals.principal = principal;
      if (d.limiter) await runMiddleware(d.limiter, req, res);
      const client = ExtractionWatch.clientOf(principal, ipKeyGenerator(req.ip ?? 'unknown'));
      await d.watch?.check(client); // a blocked client is refused before anything is read or charged
      const idempotencyKey = parseIdempotencyKey(req.get(HEADERS.idempotencyKey));
      const kind = mediaType(req);
      const format = kind === 'binary' ? parsePixelFormat(req.get(HEADERS.pixelFormat)) : 'uint8';
      await runMiddleware(kind === 'json' ? d.readJson : d.readBinary, req, res);
      const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      payloadSha256 = createHash('sha256').update(body).digest('hex');
      const batch: ImageBatch = kind === 'json' ? parseJsonBatch(body, d.shape, d.maxBatch) : parseBinaryBatch(body, format, d.shape, d.maxBatch);
      images = batch.count;
      if (idempotencyKey !== undefined) {
        // A repeat of a request already charged: the same labels again, charged nothing, not re-watched.
        const outcome = await d.idempotency.replayOrClaim(principal.id, idempotencyKey, payloadSha256);
        if ('labels' in outcome) {
          await audit('replayed', 200);
          const answer: LabelResponse = { labels: Array.from(outcome.labels), budget: { used: await d.budgets.used(principal.id), limit: principal.limit } };
          closeIfDraining(res);
          res.setHeader(HEADERS.idempotentReplayed, 'true'); // as Stripe does: the client can tell nothing was charged
          res.json(answer);
          return;
        }
        ticket = outcome.ticket;
      }
      const reservation = await d.budgets.reserve(principal, batch.count);
      let labels: Int32Array;
      try {
        labels = await d.label(batch.images, batch.count);
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
      const answer: LabelResponse = { labels: Array.from(labels), budget: { used, limit: principal.limit } };
      closeIfDraining(res);
      res.json(answer);
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
      if (!answered) sendError(res, err);
    }
  };
}
