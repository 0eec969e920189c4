/**
 * The `torchserve` target: TorchServe's inference API, `POST /predictions/{name}[/{version}]` with one
 * image per request as a PNG file (the default image handlers open the body with PIL), the handler's
 * JSON back (torchserve-answer.ts), and the inference token as `Authorization: Bearer <token>`
 * (--token, else --api-key). TorchServe has no route that describes a model's input, so its shape and
 * classes come from --input-shape and --classes (or --class-names); describe() pings the server (free)
 * so a wrong URL is found before the first paid query.
 */
import { bytesPerImage } from '../../shared/protocol/index.js';
import { TransferlabError } from '../../shared/errors.js';
import { encodePng } from './png.js';
import { readTorchServeAnswer, type OneAnswer } from './torchserve-answer.js';
import { TargetHttp } from './target-http.js';
import { batchAnswer, describedModel, named, requireUint8 } from './connection.js';
import { parseInputShape } from './settings.js';
import { DEFAULT_MODEL_NAME } from './oip.js';
import type { TargetFactory, VictimInfo } from './target.js';

/** The predictions route of a model (and version), each name escaped as a path segment. */
export function predictionsPath(name: string, version?: string): string {
  return `/predictions/${encodeURIComponent(name)}${version ? `/${encodeURIComponent(version)}` : ''}`;
}

export const torchserveTarget: TargetFactory = (settings, ctx) => {
  requireUint8(ctx.format, 'torchserve');
  if (settings.maxBatch !== undefined && settings.maxBatch !== 1) {
    throw new TransferlabError('invalid_config', `the torchserve target sends one image per request; --max-batch ${settings.maxBatch} does not apply (use --concurrency for requests in flight)`);
  }
  const token = settings.token ?? ctx.apiKey;
  const http = new TargetHttp('torchserve', ctx, settings.token ? '--token' : ctx.apiKey ? '--api-key' : '--token');
  const url = ctx.url + predictionsPath(settings.modelName ?? DEFAULT_MODEL_NAME, settings.modelVersion);
  const headers: Record<string, string> = { 'Content-Type': 'image/png', Accept: 'application/json' };
  if (token !== undefined) headers.Authorization = `Bearer ${token}`;
  let info: VictimInfo | undefined;

  return {
    kind: 'torchserve',
    url: ctx.url,
    async describe() {
      // What the handler answers shows only in a paid answer: --target-output declares it, and each answer is checked against it (targets/oracle.ts).
      const described = describedModel('torchserve', { inputShape: parseInputShape(settings.inputShape), classes: settings.classes, classNames: settings.classNames }, 1, settings.targetOutput ?? 'label');
      const c = described.inputShape[2];
      if (c !== 1 && c !== 3) throw new TransferlabError('target_bad_shape', `the torchserve target sends PNG images of 1 or 3 channels; --input-shape has ${c}`);
      // The health route is free and needs no token: a wrong host or port fails here, not on a paid query.
      await http.json({ method: 'GET', url: `${ctx.url}/ping` });
      info = described;
      return described;
    },
    // A batch is one image (maxBatch 1); the loop keeps a longer one correct all the same.
    async send(body, count) {
      if (!info) throw new TransferlabError('oracle_failed', 'torchserve target: send() before describe()', 500);
      const [h, w, c] = info.inputShape;
      const stride = bytesPerImage(info.inputShape, 'uint8');
      const space = { classes: info.classes, classNames: info.classNames };
      const answers: OneAnswer[] = [];
      let attempts = 0;
      let status = 0;
      for (let i = 0; i < count; i++) {
        const res = await http.json({ method: 'POST', url, headers, body: encodePng(body.subarray(i * stride, (i + 1) * stride), h, w, c) });
        attempts += res.attempts;
        status = res.status;
        answers.push(named(`the torchserve target at ${url}`, () => readTorchServeAnswer(res.value, space)));
      }
      return batchAnswer(answers, info.classes, status, attempts);
    },
    close: () => http.close(),
  };
};
