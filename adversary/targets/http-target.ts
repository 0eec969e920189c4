/**
 * The `http` target: any JSON API, as its target file (--target-file, http-target-file.ts) describes
 * it. The file's url is absolute, or a path joined to --victim (one file for staging and production).
 * The model's shape and classes come from the file, else from its probe (a free GET), else from
 * --input-shape / --classes; each batch is the file's body template filled with the images.
 */
import { TransferlabError } from '../../shared/errors.js';
import { readHttpTargetFile, type HttpTargetSpec } from './http-target-file.js';
import { batchBody, readBatchAnswer, readProbe, type ProbedInfo } from './http-target-body.js';
import { TargetHttp, targetUrl } from './target-http.js';
import { batchAnswer, describedModel, named, requireUint8 } from './connection.js';
import { parseInputShape } from './settings.js';
import type { TargetFactory, VictimInfo } from './target.js';

/** The file's URL, or a path under the base URL (--victim) when it starts with "/". */
export const resolveTargetUrl = (raw: string, base: string): string => targetUrl(raw.startsWith('/') ? base + raw : raw, 'http');

export const httpTarget: TargetFactory = (settings, ctx) => {
  requireUint8(ctx.format, 'http');
  if (!settings.targetFile) throw new TransferlabError('invalid_config', 'the http target needs --target-file FILE (YAML or JSON: url, body, answer, …; see docs/targets.md)');
  const file = settings.targetFile;
  const spec: HttpTargetSpec = readHttpTargetFile(file);
  const url = resolveTargetUrl(spec.url, ctx.url);
  const http = new TargetHttp('http', { ...ctx, timeoutMs: spec.timeoutMs ?? ctx.timeoutMs }, `the headers of ${file}`);
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json', ...spec.headers };
  let info: VictimInfo | undefined;

  return {
    kind: 'http',
    url,
    async describe() {
      let probed: ProbedInfo = {};
      if (spec.probe) {
        const probeUrl = resolveTargetUrl(spec.probe.url ?? spec.url, ctx.url);
        const res = await http.json({ method: 'GET', url: probeUrl, headers: spec.headers });
        probed = named(`the http target's probe at ${probeUrl} (${file})`, () => readProbe(spec.probe as NonNullable<HttpTargetSpec['probe']>, res.value));
      }
      const described = describedModel(`http (${file})`, {
        inputShape: spec.inputShape ?? probed.inputShape ?? parseInputShape(settings.inputShape),
        classes: spec.classes ?? probed.classes ?? settings.classes,
        classNames: spec.classNames ?? probed.classNames ?? settings.classNames,
      }, Math.min(spec.maxBatch, settings.maxBatch ?? Infinity), spec.answer.scores !== undefined ? 'scores' : 'label');
      const c = described.inputShape[2];
      if (spec.images.encoding === 'png-base64' && c !== 1 && c !== 3) {
        throw new TransferlabError('target_bad_shape', `${file}: png-base64 images hold 1 or 3 channels; the input shape has ${c}`);
      }
      info = described;
      return described;
    },
    async send(body, count) {
      if (!info) throw new TransferlabError('oracle_failed', 'http target: send() before describe()', 500);
      const res = await http.json({ method: spec.method, url, headers, body: batchBody(spec, body, count, info.inputShape) });
      const space = { classes: info.classes, classNames: info.classNames };
      const answers = named(`the http target at ${url} (${file})`, () => readBatchAnswer(spec, res.value, count, space));
      return batchAnswer(answers, info.classes, res.status, res.attempts);
    },
    close: () => http.close(),
  };
};
