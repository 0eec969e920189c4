/**
 * The `oip` target: the Open Inference Protocol v2 (KServe v2, NVIDIA Triton, Seldon MLServer), REST.
 * `GET /v2/models/{name}[/versions/{v}]` describes the model (its input's name, datatype and shape,
 * its outputs); `POST …/infer` takes `{"inputs":[{name, shape, datatype, data}]}` with the batch's
 * values flat in row-major order and answers `{"outputs":[{name, shape, datatype, data}]}`
 * (kserve/open-inference-protocol, specification/protocol/inference_rest.md).
 */
import { z } from 'zod';
import { imageKey } from '../oracle/image-bytes.js';
import { bearer, JsonHttp } from './json-http.js';
import type { TargetFactory, VictimInfo } from './target.js';
import { flatten, modelValues, OneHotWitness, outputClasses, pickOutput, planInput, readOutput, type InputPlan, type ValueKind } from './tensors.js';
import { TransferlabError } from '../../shared/errors.js';
import { VictimError } from '../oracle/core.js';

const tensorMeta = z.looseObject({ name: z.string().min(1), datatype: z.string().min(1), shape: z.array(z.number().int()) });
const metadataSchema = z.looseObject({ name: z.string().optional(), inputs: z.array(tensorMeta).min(1), outputs: z.array(tensorMeta).optional() });
const inferAnswerSchema = z.looseObject({
  outputs: z.array(z.looseObject({ name: z.string(), shape: z.array(z.number().int()).optional(), datatype: z.string().optional(), data: z.unknown() })).min(1),
});

/** Datatypes an image can be sent as: floats in [0,1], or bytes. */
const INPUT_TYPES: Record<string, ValueKind> = { FP32: 'float', FP64: 'float', FP16: 'float', UINT8: 'uint8' };
export const DEFAULT_MODEL_NAME = 'model';
export const DEFAULT_MAX_BATCH = 100;

export const oipTarget: TargetFactory = (settings, ctx) => {
  const name = settings.modelName ?? DEFAULT_MODEL_NAME;
  const base = `/v2/models/${encodeURIComponent(name)}${settings.modelVersion ? `/versions/${encodeURIComponent(settings.modelVersion)}` : ''}`;
  const http = new JsonHttp('oip', ctx, bearer(ctx.apiKey, '--api-key'));
  const where = `oip target at ${ctx.url}${base}`;
  let model: { input: z.infer<typeof tensorMeta>; kind: ValueKind; plan: InputPlan; output?: string; classes: number } | undefined;
  // The metadata says [N, classes]; whether the rows are probabilities or one-hot labels, only answers tell.
  const witness = new OneHotWitness(`the oip target at ${ctx.url}${base}`);

  async function describe(): Promise<VictimInfo> {
    const { value } = await http.call('GET', base);
    const meta = metadataSchema.safeParse(value);
    if (!meta.success) throw new TransferlabError('target_bad_response', `${where}: the model metadata is not OIP v2's {name, inputs:[{name, datatype, shape}], outputs}: ${meta.error.issues[0]?.message ?? ''}`, 502);
    const { inputs, outputs } = meta.data;
    if (inputs.length > 1) throw new TransferlabError('target_bad_shape', `${where}: the model takes ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}); this target sends one image tensor`);
    const input = inputs[0];
    const kind = INPUT_TYPES[input.datatype];
    if (!kind) throw new TransferlabError('target_bad_shape', `${where}: input ${input.name} is ${input.datatype}; images are sent as ${Object.keys(INPUT_TYPES).join(', ')}`);
    const plan = planInput(input.shape, settings, `${where} (input ${input.name})`);
    const output = pickOutput(outputs ?? [], (o) => o.name, settings.outputName, 'the model', where);
    const { classes, labelsOnly } = outputClasses(output?.shape, settings, `${where} (output ${output?.name ?? settings.outputName ?? 'unnamed'})`);
    model = { input, kind, plan, output: output?.name ?? settings.outputName, classes };
    const maxBatch = Math.min(settings.maxBatch ?? DEFAULT_MAX_BATCH, plan.batch ?? Infinity);
    return { dataset: null, inputShape: plan.shape, classes, inputRange: [0, 1], maxBatch, output: labelsOnly ? 'label' : 'scores' };
  }

  return {
    kind: 'oip',
    url: ctx.url,
    describe,
    async send(body, count) {
      if (!model) throw new TransferlabError('oracle_failed', 'oip target: send() before describe()', 500);
      const m = model;
      const request = {
        // Echoed back by the server; the run's id and the bytes' hash, like the Idempotency-Key.
        id: `${ctx.scope}.${imageKey(body, ctx.format)}`,
        inputs: [{ name: m.input.name, shape: [count, ...m.plan.dims], datatype: m.input.datatype, data: modelValues(body, count, ctx.format, m.plan, m.kind) }],
      };
      // A server that honours Idempotency-Key (transferlab's own OIP routes) does not charge a retry or a resume twice.
      const res = await http.call('POST', `${base}/infer`, request, { 'Idempotency-Key': request.id });
      const fail = (why: string) => new VictimError('target_bad_response', `${where}/infer: ${why}`, 502, res.status, res.attempts);
      const answer = inferAnswerSchema.safeParse(res.value);
      if (!answer.success) throw fail('the answer is not OIP v2\'s {outputs:[{name, shape, datatype, data}]}');
      const out = m.output ? answer.data.outputs.find((o) => o.name === m.output) : answer.data.outputs[0];
      if (!out) throw fail(`the answer has no output named ${m.output} (it has ${answer.data.outputs.map((o) => o.name).join(', ')})`);
      const values = flatten(out.data);
      if (!values) throw fail(`output ${out.name}'s data is not a list of numbers`);
      if (out.shape && out.shape[0] !== count) throw fail(`output ${out.name} has shape [${out.shape.join(', ')}] for ${count} images`);
      try {
        const read = readOutput(values, count, m.classes, `${where}/infer output ${out.name}`);
        const labelsOnly = read.scores && witness.see(values, count, m.classes);
        return { ...(labelsOnly ? { labels: read.labels, noScores: labelsOnly } : read), http: res.status, attempts: res.attempts };
      } catch (e) {
        throw e instanceof TransferlabError ? new VictimError(e.code, e.message, e.status, res.status, res.attempts) : e;
      }
    },
    close: () => http.close(),
  };
};
