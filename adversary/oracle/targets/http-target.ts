/**
 * The `http` target: any JSON API, as its target file describes it (http-target-file.ts). The model's
 * shape and classes come from the file, else from its probe (a free GET), else from the user's
 * flags or the attacker's dataset; each batch is the file's body template filled with the images.
 */
import { TransferlabError } from '../../../shared/errors.js';
import { readHttpTargetFile, type HttpTargetSpec } from './http-target-file.js';
import { batchBody, readBatchAnswer, readProbe, type ProbedInfo } from './http-target-body.js';
import { TargetHttp, targetBaseUrl } from './target-http.js';
import { batchAnswer, describedModel, named, type ConnectOptions, type TargetConnection } from './connection.js';

export interface HttpTargetOptions extends Omit<ConnectOptions, 'url' | 'modelName' | 'modelVersion' | 'token'> {
  /** The target file (YAML or JSON), or its settings already read. */
  file: string | HttpTargetSpec;
  env?: NodeJS.ProcessEnv;
}

export async function connectHttpTarget(o: HttpTargetOptions): Promise<TargetConnection> {
  const spec = typeof o.file === 'string' ? readHttpTargetFile(o.file, o.env) : o.file;
  const where = typeof o.file === 'string' ? o.file : 'the target file';
  const url = targetBaseUrl(spec.url, 'http');
  const http = new TargetHttp({ target: 'http', retries: o.retries, onRetry: o.onRetry, random: o.random, timeoutMs: spec.timeoutMs ?? o.timeoutMs });
  try {
    let probed: ProbedInfo = {};
    if (spec.probe) {
      const probeUrl = targetBaseUrl(spec.probe.url ?? spec.url, 'http');
      const res = await http.json({ method: 'GET', url: probeUrl, headers: spec.headers });
      probed = named(`the http target's probe at ${probeUrl}`, () => readProbe(spec.probe as NonNullable<HttpTargetSpec['probe']>, res.json));
    }
    const info = describedModel(`http (${where})`, {
      inputShape: spec.inputShape ?? probed.inputShape ?? o.inputShape,
      classes: spec.classes ?? probed.classes ?? o.classes,
      classNames: spec.classNames ?? probed.classNames ?? o.classNames,
    }, spec.maxBatch);
    if (spec.images.encoding === 'png-base64' && info.inputShape[2] !== 1 && info.inputShape[2] !== 3) {
      throw new TransferlabError('bad_target_shape', `${where}: png-base64 images hold 1 or 3 channels; the input shape has ${info.inputShape[2]}`);
    }
    const headers = { 'Content-Type': 'application/json', ...spec.headers };
    const space = { classes: info.classes, classNames: info.classNames };
    return {
      info,
      format: 'uint8',
      send: async (body, count) => {
        const res = await http.json({ method: spec.method, url, headers, body: batchBody(spec, body, count, info.inputShape) });
        const answers = named(`the http target at ${url} (${where})`, () => readBatchAnswer(spec, res.json, count, space));
        return batchAnswer(answers, info.classes, o.keepScores ?? false, res.status, res.attempts);
      },
      close: () => http.close(),
    };
  } catch (e) {
    http.close();
    throw e;
  }
}

