/**
 * The `torchserve` target: TorchServe's inference API, `POST /predictions/{name}[/{version}]` with one
 * image per request as a PNG file (the default image handlers open the body with PIL), the handler's
 * JSON back (torchserve-answer.ts), and the inference token as `Authorization: Bearer <token>`.
 * TorchServe has no route that describes a model's input, so its shape and classes come from
 * --input-shape / --classes (or the attacker's dataset).
 */
import { bytesPerImage } from '../../../shared/protocol/index.js';
import { TransferlabError } from '../../../shared/errors.js';
import { encodePng } from './png.js';
import { readTorchServeAnswer, type OneAnswer } from './torchserve-answer.js';
import { TargetHttp, targetBaseUrl } from './target-http.js';
import { batchAnswer, describedModel, named, type ConnectOptions, type TargetConnection } from './connection.js';

export const TORCHSERVE_DEFAULT_MODEL = 'model';

/** The predictions route of a model (and version), each name escaped as a path segment. */
export function predictionsPath(name: string, version?: string): string {
  return `/predictions/${encodeURIComponent(name)}${version ? `/${encodeURIComponent(version)}` : ''}`;
}

export async function connectTorchServe(o: ConnectOptions): Promise<TargetConnection> {
  const base = targetBaseUrl(o.url, 'torchserve');
  const info = describedModel('torchserve', o, 1);
  const [h, w, c] = info.inputShape;
  if (c !== 1 && c !== 3) throw new TransferlabError('bad_target_shape', `the torchserve target sends PNG images of 1 or 3 channels; --input-shape has ${c}`);
  const http = new TargetHttp({ target: 'torchserve', retries: o.retries, onRetry: o.onRetry, random: o.random, timeoutMs: o.timeoutMs });
  const url = base + predictionsPath(o.modelName ?? TORCHSERVE_DEFAULT_MODEL, o.modelVersion);
  const headers: Record<string, string> = { 'Content-Type': 'image/png' };
  if (o.token !== undefined) headers.Authorization = `Bearer ${o.token}`;
  const stride = bytesPerImage(info.inputShape, 'uint8');
  const space = { classes: info.classes, classNames: info.classNames };
  return {
    info,
    format: 'uint8',
    // maxBatch is 1, so a batch is one image; the loop keeps a longer one correct all the same.
    send: async (body, count) => {
      const answers: OneAnswer[] = [];
      let attempts = 0;
      let status = 0;
      for (let i = 0; i < count; i++) {
        const png = encodePng(body.subarray(i * stride, (i + 1) * stride), h, w, c);
        const res = await http.json({ method: 'POST', url, headers, body: png });
        attempts += res.attempts;
        status = res.status;
        answers.push(named(`the torchserve target at ${url}`, () => readTorchServeAnswer(res.json, space)));
      }
      return batchAnswer(answers, info.classes, o.keepScores ?? false, status, attempts);
    },
    close: () => http.close(),
  };
}
