import type { Request, RequestHandler, Response } from 'express';
import { TransferlabError } from '../../../shared/errors.js';
import { pixelsPerImage } from '../../../shared/protocol/index.js';
import { readBody, type RouteFace } from '../label-route.js';
import { givesProbabilities, policyRows } from '../outputs.js';
import { INPUT_NAME, MODEL_VERSION, OUTPUT_NAME, checkBatch, checkModel, protocolRouter, sendProtocolError, type ServingModel } from './serving.js';
import { copyImage, describeValue, onlyFields, parseJsonObject } from './tensors.js';

/**
 * TensorFlow Serving's REST API (tensorflow.org/tfx/serving/api_rest) for the victim's model: the
 * model status, its metadata (one `serving_default` signature: input "images" DT_FLOAT
 * [-1, H, W, C], output "probabilities" DT_FLOAT [-1, classes]) and POST
 * /v1/models/{name}[/versions/{v}]:predict with the row format (`instances`, answered with
 * `predictions`) or the columnar one (`inputs`, answered with `outputs`). Pixels are floats in
 * [0, 1], each image nested [H][W][C] ([H][W] for one channel) or flat. The output is what the
 * output policy allows: the one-hot label, the K best probabilities and zeros, or every probability.
 * classify and regress are not served.
 */
const SIGNATURE = 'serving_default';
const EXAMPLE = '{"instances": [image, …]} (each image nested [H][W][C]) or {"inputs": [image, …]}';

interface PredictContext {
  columnar: boolean;
}

/** An instance or a columnar input given by name ({"images": …}) or bare. */
function unwrap(value: unknown, where: string): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  onlyFields(value as Record<string, unknown>, [INPUT_NAME], where);
  if (!(INPUT_NAME in value)) throw new TransferlabError('invalid_body', `${where} names no input; this model's only input is "${INPUT_NAME}"`, 400);
  return (value as Record<string, unknown>)[INPUT_NAME];
}

export function parsePredictRequest(body: Buffer, model: ServingModel): { images: Float32Array; count: number; columnar: boolean } {
  const doc = parseJsonObject(body, EXAMPLE);
  onlyFields(doc, ['signature_name', 'instances', 'inputs'], 'the predict request');
  if (doc.signature_name !== undefined && doc.signature_name !== SIGNATURE) {
    throw new TransferlabError('unknown_signature', `signature_name ${describeValue(doc.signature_name)} is not served; the only signature is "${SIGNATURE}" (or leave it out)`, 400);
  }
  if ((doc.instances === undefined) === (doc.inputs === undefined)) {
    throw new TransferlabError('invalid_body', `send either "instances" (row format) or "inputs" (columnar format), not ${doc.instances === undefined ? 'neither' : 'both'}: ${EXAMPLE}`, 400);
  }
  const columnar = doc.inputs !== undefined;
  const where = columnar ? 'inputs' : 'instances';
  const list = columnar ? unwrap(doc.inputs, 'inputs') : doc.instances;
  if (!Array.isArray(list)) throw new TransferlabError('inputs_not_array', `"${where}" must be a list of images, not ${describeValue(list)}; send ${EXAMPLE}`, 400);
  checkBatch(list.length, model.maxBatch, `"${where}"`);
  const per = pixelsPerImage(model.inputShape);
  const images = new Float32Array(list.length * per);
  list.forEach((item: unknown, i) => copyImage(columnar ? item : unwrap(item, `instances[${i}]`), model.inputShape, images, i * per, `${where}[${i}]`));
  return { images, count: list.length, columnar };
}

export function tfservingFace(model: ServingModel): RouteFace<PredictContext> {
  return {
    route: 'tfserving',
    async read(req, res, d) {
      const body = await readBody(req, res, d.readJson);
      const { images, count, columnar } = parsePredictRequest(body, model);
      return { body, batch: { images, count }, context: { columnar } };
    },
    probabilities: givesProbabilities(model.output),
    answer(res, a) {
      const flat = policyRows(model.output, a.labels, model.classes, a.probabilities);
      const rows = Array.from(a.labels, (_, i) => flat.slice(i * model.classes, (i + 1) * model.classes));
      res.json(a.context.columnar ? { outputs: rows } : { predictions: rows });
    },
    fail: sendProtocolError,
  };
}

const dims = (sizes: number[]) => ({ dim: sizes.map((s) => ({ size: String(s), name: '' })), unknown_rank: false });

/** GET …/metadata: GetModelMetadataResponse as JSON, one serving_default signature. */
export function tfservingMetadata(model: ServingModel) {
  const [h, w, c] = model.inputShape;
  return {
    model_spec: { name: model.name, signature_name: '', version: MODEL_VERSION },
    metadata: {
      signature_def: {
        signature_def: {
          [SIGNATURE]: {
            inputs: { [INPUT_NAME]: { dtype: 'DT_FLOAT', tensor_shape: dims([-1, h, w, c]), name: `${SIGNATURE}_${INPUT_NAME}:0` } },
            outputs: { [OUTPUT_NAME]: { dtype: 'DT_FLOAT', tensor_shape: dims([-1, model.classes]), name: 'StatefulPartitionedCall:0' } },
            method_name: 'tensorflow/serving/predict',
          },
        },
      },
    },
  };
}

/** Every /v1/models route; `predict` is the shared paid pipeline with tfservingFace. */
export function tfservingRouter(model: ServingModel, predict: (req: Request, res: Response) => Promise<void>): RequestHandler {
  const MODEL = String.raw`^/([^/:]+)(?:/versions/([^/:]+))?`;
  const known = (res: Response, name: string, version: string | undefined) => {
    const wrong = checkModel(model, name, version);
    if (wrong) sendProtocolError(res, wrong);
    return !wrong;
  };
  const status = { model_version_status: [{ version: MODEL_VERSION, state: 'AVAILABLE', status: { error_code: 'OK', error_message: '' } }] };
  return protocolRouter('TF Serving', [
    { pattern: new RegExp(`${MODEL}/?$`), method: 'GET', handle: (_q, res, [n, v]) => void (known(res, n, v) && res.json(status)) },
    { pattern: new RegExp(`${MODEL}/metadata/?$`), method: 'GET', handle: (_q, res, [n, v]) => void (known(res, n, v) && res.json(tfservingMetadata(model))) },
    { pattern: new RegExp(`${MODEL}:predict$`), method: 'POST', handle: (req, res, [n, v]) => (known(res, n, v) ? predict(req, res) : undefined) },
    {
      pattern: new RegExp(`${MODEL}:(classify|regress)$`),
      method: 'POST',
      handle: (_q, res, [, , verb]) => sendProtocolError(res, new TransferlabError('not_found', `:${verb} is not served (it needs tf.Example inputs); use :predict`, 404)),
    },
  ]);
}
