import type { Request, Response } from 'express';
import { TransferlabError } from '../../../shared/errors.js';
import { HEADERS, PATHS, formatOutputPolicy, type LabelResponse, type PredictResponse } from '../../../shared/protocol/index.js';
import { sendError } from '../errors.js';
import { parseBinaryBatch, parseJsonBatch, parsePixelFormat } from '../inputs.js';
import { readBody, type LabelRouteDeps, type RouteFace } from '../label-route.js';
import { mediaType } from '../middleware.js';
import { givesProbabilities, predictField, type OutputSettings } from '../outputs.js';

/**
 * The transferlab API's own paid routes over the shared pipeline (victim/http/label-route.ts):
 * POST /v1/label (labels, whatever the output policy) and POST /v1/predict (the labels with the K
 * best or all probabilities, as the policy allows; refused on a label-only victim). Both take the same
 * bodies: binary uint8/float32 pixels or JSON {"inputs": […]}; errors are the contract's envelope.
 */
async function readImages(req: Request, res: Response, d: LabelRouteDeps) {
  const kind = mediaType(req);
  const format = kind === 'binary' ? parsePixelFormat(req.get(HEADERS.pixelFormat)) : 'uint8';
  const body = await readBody(req, res, kind === 'json' ? d.readJson : d.readBinary);
  const batch = kind === 'json' ? parseJsonBatch(body, d.shape, d.maxBatch) : parseBinaryBatch(body, format, d.shape, d.maxBatch);
  return { body, batch, context: undefined };
}

export const labelFace: RouteFace = {
  read: readImages,
  probabilities: false,
  answer(res, a) {
    const answer: LabelResponse = { labels: Array.from(a.labels), budget: a.budget };
    res.json(answer);
  },
  fail: sendError,
};

/** The 403 of /v1/predict on a victim whose policy gives labels only: nothing read, nothing charged. */
export function outputNotAllowed(o: OutputSettings): TransferlabError {
  return new TransferlabError(
    'output_not_allowed',
    `this victim's output policy is "${formatOutputPolicy(o.policy)}": it answers labels only (POST ${PATHS.label}), never probabilities; nothing was charged`,
    403,
  );
}

export function predictFace(o: OutputSettings): RouteFace {
  return {
    route: 'predict',
    ...(givesProbabilities(o) ? {} : { refuse: outputNotAllowed(o) }),
    read: readImages,
    probabilities: true,
    answer(res, a) {
      const answer: PredictResponse = { labels: Array.from(a.labels), ...predictField(o, a.labels, a.probabilities as Float32Array), budget: a.budget };
      res.json(answer);
    },
    fail: sendError,
  };
}
