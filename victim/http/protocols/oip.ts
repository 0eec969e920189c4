import type { Request, RequestHandler, Response } from 'express';
import { TransferlabError } from '../../../shared/errors.js';
import { API_VERSION, pixelsPerImage } from '../../../shared/protocol/index.js';
import { readBody, type RouteFace } from '../label-route.js';
import { givesProbabilities, policyRows } from '../outputs.js';
import { INPUT_NAME, MODEL_VERSION, OUTPUT_NAME, checkBatch, checkModel, protocolRouter, sendProtocolError, type ServingModel } from './serving.js';
import { badTensor, copyTensor, describeValue, onlyFields, parseJsonObject, type PixelType } from './tensors.js';

/**
 * The Open Inference Protocol v2 (KServe v2, Triton, MLServer) over HTTP/REST, as its specification
 * (kserve/open-inference-protocol, inference_rest.md) describes it: health, server and model
 * metadata, model readiness and POST /v2/models/{name}[/versions/{v}]/infer with one input tensor
 * "images" [N, H, W, C] (NHWC, as the model takes it) of FP32 pixels in [0, 1] or UINT8 pixels in
 * 0..255, flat or nested. The one output "probabilities" [N, classes] FP32 is what the output policy
 * allows: the one-hot label, the K best probabilities and zeros, or every probability. The binary
 * tensor extension is not supported (refused with a clear 400).
 */
const EXAMPLE = `{"inputs":[{"name":"${INPUT_NAME}","shape":[N,H,W,C],"datatype":"FP32","data":[…]}]}`;
const BINARY_HEADER = 'Inference-Header-Content-Length';

interface InferContext {
  id?: string;
}

function noBinary(params: unknown, where: string): void {
  if (params === undefined) return;
  if (params === null || typeof params !== 'object' || Array.isArray(params)) throw new TransferlabError('invalid_body', `${where}.parameters must be an object, not ${describeValue(params)}`, 400);
  for (const key of ['binary_data', 'binary_data_output', 'binary_data_size']) {
    if ((params as Record<string, unknown>)[key] !== undefined && (params as Record<string, unknown>)[key] !== false) {
      throw new TransferlabError('unsupported_extension', `${where}.parameters.${key}: the binary tensor data extension is not supported; send the tensor as JSON "data"`, 400);
    }
  }
}

/** The inference request's one input as images, checked against the model's [−1, H, W, C]. */
export function parseInferRequest(body: Buffer, model: ServingModel): { images: Float32Array; count: number; id?: string } {
  const doc = parseJsonObject(body, EXAMPLE);
  onlyFields(doc, ['id', 'parameters', 'inputs', 'outputs'], 'the inference request');
  if (doc.id !== undefined && typeof doc.id !== 'string') throw new TransferlabError('invalid_body', `"id" must be a string, not ${describeValue(doc.id)}`, 400);
  noBinary(doc.parameters, 'the request');
  const inputs = doc.inputs;
  if (!Array.isArray(inputs)) throw new TransferlabError('inputs_not_array', `"inputs" must be an array of input tensors, not ${describeValue(inputs)}; send ${EXAMPLE}`, 400);
  if (inputs.length !== 1) throw badTensor(`"inputs" holds ${inputs.length} tensors; this model takes exactly one, "${INPUT_NAME}"`);
  const input = inputs[0] as Record<string, unknown>;
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw badTensor(`inputs[0] must be a tensor object {name, shape, datatype, data}, not ${describeValue(input)}`);
  onlyFields(input, ['name', 'shape', 'datatype', 'parameters', 'data'], 'inputs[0]');
  if (input.name !== INPUT_NAME) throw badTensor(`inputs[0].name is ${describeValue(input.name)}; this model's input is "${INPUT_NAME}" (GET /v2/models/${model.name})`);
  noBinary(input.parameters, 'inputs[0]');
  if (input.datatype !== 'FP32' && input.datatype !== 'UINT8') {
    throw new TransferlabError('unsupported_datatype', `inputs[0].datatype is ${describeValue(input.datatype)}; send FP32 (pixels in [0, 1]) or UINT8 (pixels in 0..255)`, 400);
  }
  const [h, w, c] = model.inputShape;
  const shape = input.shape;
  const wanted = `[N, ${h}, ${w}, ${c}] (NHWC)`;
  if (!Array.isArray(shape) || shape.length !== 4 || shape.some((d) => !Number.isInteger(d) || (d as number) < 0)) {
    throw badTensor(`inputs[0].shape is ${JSON.stringify(shape)?.slice(0, 60) ?? 'missing'}; this model takes ${wanted}`);
  }
  if (shape[1] !== h || shape[2] !== w || shape[3] !== c) throw badTensor(`inputs[0].shape is [${shape.join(', ')}]; this model takes ${wanted}`);
  const count = shape[0] as number;
  checkBatch(count, model.maxBatch, 'inputs[0]');
  if (input.data === undefined) throw badTensor('inputs[0] has no "data"');
  const images = new Float32Array(count * pixelsPerImage(model.inputShape));
  copyTensor(input.data, [count, h, w, c], input.datatype as PixelType, images, 0, 'inputs[0].data');
  const outputs = doc.outputs;
  if (outputs !== undefined) {
    if (!Array.isArray(outputs)) throw new TransferlabError('invalid_body', `"outputs" must be an array of {name}, not ${describeValue(outputs)}`, 400);
    outputs.forEach((o: unknown, i) => {
      const name = (o as { name?: unknown } | null)?.name;
      if (name !== OUTPUT_NAME) throw new TransferlabError('unknown_output', `outputs[${i}].name is ${describeValue(name)}; this model's only output is "${OUTPUT_NAME}"`, 400);
      noBinary((o as { parameters?: unknown }).parameters, `outputs[${i}]`);
    });
  }
  return { images, count, ...(typeof doc.id === 'string' ? { id: doc.id } : {}) };
}

export function oipFace(model: ServingModel): RouteFace<InferContext> {
  return {
    route: 'oip',
    async read(req, res, d) {
      if (req.get(BINARY_HEADER) !== undefined) {
        throw new TransferlabError('unsupported_extension', `${BINARY_HEADER}: the binary tensor data extension is not supported; send a JSON inference request`, 400);
      }
      const body = await readBody(req, res, d.readJson);
      const { images, count, id } = parseInferRequest(body, model);
      return { body, batch: { images, count }, context: id !== undefined ? { id } : {} };
    },
    probabilities: givesProbabilities(model.output),
    answer(res, a) {
      res.json({
        model_name: model.name,
        model_version: MODEL_VERSION,
        id: a.context.id ?? a.requestId,
        outputs: [{ name: OUTPUT_NAME, shape: [a.labels.length, model.classes], datatype: 'FP32', data: policyRows(model.output, a.labels, model.classes, a.probabilities) }],
      });
    },
    fail: sendProtocolError,
  };
}

/** GET /v2/models/{name}: the model's input and output tensors. */
export function oipMetadata(model: ServingModel) {
  const [h, w, c] = model.inputShape;
  return {
    name: model.name,
    versions: [MODEL_VERSION],
    platform: 'transferlab',
    inputs: [{ name: INPUT_NAME, datatype: 'FP32', shape: [-1, h, w, c] }],
    outputs: [{ name: OUTPUT_NAME, datatype: 'FP32', shape: [-1, model.classes] }],
  };
}

/** Every /v2 route; `infer` is the shared paid pipeline with oipFace. */
export function oipRouter(model: ServingModel, infer: (req: Request, res: Response) => Promise<void>): RequestHandler {
  const MODEL = String.raw`^/models/([^/]+)(?:/versions/([^/]+))?`;
  const known = (res: Response, name: string, version: string | undefined) => {
    const wrong = checkModel(model, name, version);
    if (wrong) sendProtocolError(res, wrong);
    return !wrong;
  };
  return protocolRouter('Open Inference Protocol', [
    { pattern: /^\/?$/, method: 'GET', handle: (_q, res) => void res.json({ name: 'transferlab-victim', version: String(API_VERSION), extensions: [] }) },
    { pattern: /^\/health\/live\/?$/, method: 'GET', handle: (_q, res) => void res.json({ live: true }) },
    { pattern: /^\/health\/ready\/?$/, method: 'GET', handle: (_q, res) => void res.json({ ready: true }) },
    { pattern: new RegExp(`${MODEL}/?$`), method: 'GET', handle: (_q, res, [n, v]) => void (known(res, n, v) && res.json(oipMetadata(model))) },
    { pattern: new RegExp(`${MODEL}/ready/?$`), method: 'GET', handle: (_q, res, [n, v]) => void (known(res, n, v) && res.json({ name: model.name, ready: true })) },
    { pattern: new RegExp(`${MODEL}/infer/?$`), method: 'POST', handle: (req, res, [n, v]) => (known(res, n, v) ? infer(req, res) : undefined) },
  ]);
}
