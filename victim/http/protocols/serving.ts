import type { Request, RequestHandler, Response } from 'express';
import { TransferlabError } from '../../../shared/errors.js';
import { closeIfDraining } from '../errors.js';
import { PATHS } from '../../../shared/protocol/index.js';
import type { OutputSettings } from '../outputs.js';

/**
 * What the serving protocols' routes (OIP in oip.ts, TF Serving in tfserving.ts) share: the served
 * model's name and version, their error shape (`{"error": "<message>"}`, as both specs document it,
 * with the transferlab error code in the X-Error-Code header so clients need not parse messages), and
 * a small dispatcher that reads a path by pattern and answers 404/405 in that shape.
 */
export const PROTOCOLS = ['transferlab', 'oip', 'tfserving'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** The one version of the one model the victim serves, as both protocols name it. */
export const MODEL_VERSION = '1';
/** The input tensor's and the output tensor's names in both protocols' metadata. */
export const INPUT_NAME = 'images';
export const OUTPUT_NAME = 'probabilities';
export const ERROR_CODE_HEADER = 'X-Error-Code';

export interface ServingModel {
  name: string;
  inputShape: [number, number, number];
  classes: number;
  maxBatch: number;
  output: OutputSettings;
}

export function sendProtocolError(res: Response, err: TransferlabError): void {
  if (res.headersSent) return;
  closeIfDraining(res);
  res.status(err.status).setHeader(ERROR_CODE_HEADER, err.code);
  res.json({ error: err.message });
}

/** 404 for a model name or version this victim does not serve, naming what it does serve. */
export function checkModel(model: ServingModel, name: string, version: string | undefined): TransferlabError | undefined {
  if (name !== model.name) return new TransferlabError('unknown_model', `no model named "${name.slice(0, 100)}"; this server serves "${model.name}" (version ${MODEL_VERSION})`, 404);
  if (version !== undefined && version !== MODEL_VERSION) {
    return new TransferlabError('unknown_version', `model "${model.name}" has no version "${version.slice(0, 40)}"; its only version is ${MODEL_VERSION}`, 404);
  }
  return undefined;
}

/** One route of a protocol: its method, and what answers it given the path's captures. */
export interface ProtocolRoute {
  pattern: RegExp;
  method: 'GET' | 'POST';
  handle: (req: Request, res: Response, captures: string[]) => void | Promise<void>;
}

/**
 * Middleware answering every path under a protocol's prefix: the first pattern that matches decides
 * (another method there gets 405 with Allow), no match is a 404 — all in the protocol's error shape.
 */
export function protocolRouter(name: string, routes: ProtocolRoute[]): RequestHandler {
  return (req, res, next) => {
    const path = req.path;
    const matches = routes.map((r) => ({ r, m: r.pattern.exec(path) })).filter((x) => x.m);
    if (matches.length === 0) {
      sendProtocolError(res, new TransferlabError('not_found', `no ${name} route ${req.method} ${req.originalUrl.split('?')[0].slice(0, 100)}; see docs/http-api.md or GET ${PATHS.openapi}`, 404));
      return;
    }
    const hit = matches.find((x) => x.r.method === req.method || (x.r.method === 'GET' && req.method === 'HEAD'));
    if (!hit) {
      const allow = [...new Set(matches.map((x) => (x.r.method === 'GET' ? 'GET, HEAD' : x.r.method)))].join(', ');
      res.setHeader('Allow', allow);
      sendProtocolError(res, new TransferlabError('method_not_allowed', `${req.method} is not allowed on ${req.originalUrl.split('?')[0].slice(0, 100)}; use ${allow}`, 405));
      return;
    }
    let captures: string[];
    try {
      captures = (hit.m as RegExpExecArray).slice(1).map((c) => (c === undefined ? c : decodeURIComponent(c))) as string[];
    } catch {
      sendProtocolError(res, new TransferlabError('bad_request', 'the path is not valid percent-encoding', 400));
      return;
    }
    Promise.resolve(hit.r.handle(req, res, captures)).catch(next);
  };
}

/** Checks the batch size of a protocol request: 1..maxBatch images. */
export function checkBatch(count: number, maxBatch: number, where: string): void {
  if (count === 0) throw new TransferlabError('empty_batch', `${where} holds no images; send at least one`, 400);
  if (count > maxBatch) throw new TransferlabError('batch_too_large', `${where} holds ${count} images but at most ${maxBatch} are accepted per request; split it`, 413);
}
