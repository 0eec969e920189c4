/**
 * The `tfserving` target: TensorFlow Serving's REST API (tensorflow.org/tfx/serving/api_rest).
 * `GET /v1/models/{name}[/versions/{v}]/metadata` gives the serving_default signature (its input's
 * dtype and tensor_shape, its outputs); `POST /v1/models/{name}[/versions/{v}]:predict` takes
 * `{"signature_name", "instances": [one nested list per image]}` (the row format) and answers
 * `{"predictions": [one per image]}` — the output's value, or with several outputs an object of them.
 */
import { z } from 'zod';
import { TransferlabError } from '../../shared/errors.js';
import { imageKey } from '../oracle/image-bytes.js';
import { VictimError } from '../oracle/core.js';
import { bearer, JsonHttp } from './json-http.js';
import { DEFAULT_MAX_BATCH, DEFAULT_MODEL_NAME } from './oip.js';
import type { TargetFactory, VictimInfo } from './target.js';
import { flatten, modelValues, nest, OneHotWitness, outputClasses, pickOutput, planInput, readOutput, type InputPlan, type ValueKind } from './tensors.js';

export const SIGNATURE = 'serving_default';

/** A TensorInfo as JSON: sizes are int64, which protobuf's JSON mapping writes as strings. */
const tensorInfo = z.looseObject({
  dtype: z.string(),
  tensor_shape: z.looseObject({ dim: z.array(z.looseObject({ size: z.union([z.string(), z.number()]) })).optional(), unknown_rank: z.boolean().optional() }).optional(),
});
const signatureSchema = z.looseObject({ inputs: z.record(z.string(), tensorInfo), outputs: z.record(z.string(), tensorInfo).optional() });
const metadataSchema = z.looseObject({
  metadata: z.looseObject({ signature_def: z.looseObject({ signature_def: z.record(z.string(), z.unknown()) }) }),
});
const predictAnswerSchema = z.looseObject({ predictions: z.array(z.unknown()) });

const INPUT_TYPES: Record<string, ValueKind> = { DT_FLOAT: 'float', DT_DOUBLE: 'float', DT_HALF: 'float', DT_UINT8: 'uint8' };
const dimsOf = (t: z.infer<typeof tensorInfo>): number[] | undefined =>
  t.tensor_shape && !t.tensor_shape.unknown_rank && t.tensor_shape.dim ? t.tensor_shape.dim.map((d) => Number(d.size)) : undefined;

export const tfservingTarget: TargetFactory = (settings, ctx) => {
  const name = settings.modelName ?? DEFAULT_MODEL_NAME;
  const base = `/v1/models/${encodeURIComponent(name)}${settings.modelVersion ? `/versions/${encodeURIComponent(settings.modelVersion)}` : ''}`;
  const http = new JsonHttp('tfserving', ctx, bearer(ctx.apiKey, '--api-key'));
  const where = `tfserving target at ${ctx.url}${base}`;
  let model: { kind: ValueKind; plan: InputPlan; output?: string; classes: number } | undefined;
  // The metadata says [N, classes]; whether the rows are probabilities or one-hot labels, only answers tell.
  const witness = new OneHotWitness(`the tfserving target at ${ctx.url}${base}`);

  async function describe(): Promise<VictimInfo> {
    const { value } = await http.call('GET', `${base}/metadata`);
    const meta = metadataSchema.safeParse(value);
    if (!meta.success) throw new TransferlabError('target_bad_response', `${where}/metadata: not TF Serving's {metadata:{signature_def:{signature_def:{…}}}}`, 502);
    const signatures = meta.data.metadata.signature_def.signature_def;
    const sig = signatureSchema.safeParse(signatures[SIGNATURE]);
    if (!sig.success) throw new TransferlabError('target_bad_shape', `${where}/metadata: no usable ${SIGNATURE} signature (it has ${Object.keys(signatures).join(', ') || 'none'})`);
    const inputs = Object.entries(sig.data.inputs);
    if (inputs.length !== 1) throw new TransferlabError('target_bad_shape', `${where}: the ${SIGNATURE} signature takes ${inputs.length} inputs (${inputs.map(([n]) => n).join(', ')}); this target sends one image tensor`);
    const [inputName, input] = inputs[0];
    const kind = INPUT_TYPES[input.dtype];
    if (!kind) throw new TransferlabError('target_bad_shape', `${where}: input ${inputName} is ${input.dtype}; images are sent as ${Object.keys(INPUT_TYPES).join(', ')}`);
    const dims = dimsOf(input);
    if (!dims) throw new TransferlabError('target_bad_shape', `${where}: input ${inputName} has no known shape; give --input-shape H,W,C and --layout`);
    const plan = planInput(dims, settings, `${where} (input ${inputName})`);
    const outputs = Object.entries(sig.data.outputs ?? {});
    const output = pickOutput(outputs, ([n]) => n, settings.outputName, `the ${SIGNATURE} signature`, where);
    const outName = output?.[0] ?? settings.outputName;
    const { classes, labelsOnly } = outputClasses(output ? dimsOf(output[1]) : undefined, settings, `${where} (output ${outName ?? 'unnamed'})`);
    model = { kind, plan, output: outputs.length > 1 ? outName : undefined, classes };
    const maxBatch = Math.min(settings.maxBatch ?? DEFAULT_MAX_BATCH, plan.batch ?? Infinity);
    return { dataset: null, inputShape: plan.shape, classes, inputRange: [0, 1], maxBatch, output: labelsOnly ? 'label' : 'scores' };
  }

  return {
    kind: 'tfserving',
    url: ctx.url,
    describe,
    async send(body, count) {
      if (!model) throw new TransferlabError('oracle_failed', 'tfserving target: send() before describe()', 500);
      const m = model;
      const flat = modelValues(body, count, ctx.format, m.plan, m.kind);
      const per = m.plan.dims.reduce((a, b) => a * b, 1);
      const instances = Array.from({ length: count }, (_, n) => nest(flat, n * per, m.plan.dims));
      const res = await http.call('POST', `${base}:predict`, { signature_name: SIGNATURE, instances }, { 'Idempotency-Key': `${ctx.scope}.${imageKey(body, ctx.format)}` });
      const fail = (why: string) => new VictimError('target_bad_response', `${where}:predict: ${why}`, 502, res.status, res.attempts);
      const answer = predictAnswerSchema.safeParse(res.value);
      if (!answer.success) throw fail('the answer is not {"predictions": […]}');
      const preds = answer.data.predictions;
      if (preds.length !== count) throw fail(`${preds.length} predictions for ${count} images`);
      // With several outputs each prediction is an object of them; the chosen one is read.
      const picked = m.output ? preds.map((p) => (p && typeof p === 'object' && !Array.isArray(p) ? (p as Record<string, unknown>)[m.output as string] : undefined)) : preds;
      if (m.output && picked.some((p) => p === undefined)) throw fail(`a prediction has no output named ${m.output}`);
      const values = flatten(picked);
      if (!values) throw fail('the predictions are not numbers');
      try {
        const read = readOutput(values, count, m.classes, `${where}:predict`);
        const labelsOnly = read.scores && witness.see(values, count, m.classes);
        return { ...(labelsOnly ? { labels: read.labels, noScores: labelsOnly } : read), http: res.status, attempts: res.attempts };
      } catch (e) {
        throw e instanceof TransferlabError ? new VictimError(e.code, e.message, e.status, res.status, res.attempts) : e;
      }
    },
    close: () => http.close(),
  };
};
