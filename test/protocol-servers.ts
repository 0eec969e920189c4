/**
 * Minimal, independent model servers for the target tests: a few dozen lines each of node:http serving a
 * small seeded TF.js model in the shapes their protocols document — the Open Inference Protocol v2
 * (KServe/Triton: model metadata, `/infer` with a flat FP32 NCHW tensor) and TensorFlow Serving's REST
 * API (signature metadata with int64 sizes as strings, row-format instances, softmax predictions). They
 * share nothing with the adversary's targets: each reads its protocol from the request, counts the images
 * it answers, and can refuse (401 without its token, 429 with Retry-After) as a real server does.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as tf from '@tensorflow/tfjs';

export const H = 6, W = 6, C = 1, CLASSES = 4;

/** A softmax classifier of H×W×C images, seeded; `nchw` takes [C, H, W] per image. */
export function tinyModel(nchw: boolean): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: nchw ? [C, H, W] : [H, W, C] }),
      tf.layers.dense({ units: CLASSES, activation: 'softmax', kernelInitializer: tf.initializers.randomNormal({ mean: 0, stddev: 2, seed: 11 }), biasInitializer: 'zeros' }),
    ],
  });
}

export interface ServerOpts {
  /** Requests that must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** Answer the first N predict/infer requests with 429 and this Retry-After (seconds). */
  tooMany?: { times: number; retryAfter: number };
  /** OIP: the output's name and, for a labels-only model, shape [-1] with integer labels. */
  outputName?: string;
  labelsOnly?: boolean;
}

export interface ProtocolServer {
  url: string;
  /** Images answered (the server's own count), and requests by path. */
  images: number;
  requests: string[];
  close(): Promise<void>;
}

type Handler = (method: string, path: string, body: unknown, s: ProtocolServer) => { status: number; body: unknown; headers?: Record<string, string> };

async function serve(opts: ServerOpts, handler: Handler): Promise<ProtocolServer> {
  let refused = 0;
  const state: ProtocolServer = { url: '', images: 0, requests: [], close: async () => {} };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      state.requests.push(`${req.method} ${path}`);
      const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
        res.end(JSON.stringify(body));
      };
      if (opts.token && req.headers.authorization !== `Bearer ${opts.token}`) return send(401, { error: 'missing or bad inference token' });
      const paid = req.method === 'POST';
      if (paid && opts.tooMany && refused < opts.tooMany.times) {
        refused++;
        return send(429, { error: 'too many requests' }, { 'Retry-After': String(opts.tooMany.retryAfter) });
      }
      let body: unknown;
      try {
        body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
      } catch {
        return send(400, { error: 'body is not JSON' });
      }
      const out = handler(req.method ?? 'GET', path, body, state);
      send(out.status, out.body, out.headers);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); });
  return state;
}

/** KServe v2 / Triton: the model `name` takes FP32 [N, C, H, W] and answers softmax [N, CLASSES] (or labels [N]). */
export function oipServer(name: string, model: tf.Sequential, opts: ServerOpts = {}): Promise<ProtocolServer> {
  const output = opts.outputName ?? 'probabilities';
  const outShape = opts.labelsOnly ? [-1] : [-1, CLASSES];
  return serve(opts, (method, path, body, s) => {
    if (method === 'GET' && path === `/v2/models/${name}`) {
      return { status: 200, body: { name, versions: ['1'], platform: 'tfjs', inputs: [{ name: 'image', datatype: 'FP32', shape: [-1, C, H, W] }], outputs: [{ name: output, datatype: opts.labelsOnly ? 'INT64' : 'FP32', shape: outShape }] } };
    }
    if (method !== 'POST' || path !== `/v2/models/${name}/infer`) return { status: 404, body: { error: `no route ${method} ${path}` } };
    const input = (body as { inputs?: { name: string; shape: number[]; datatype: string; data: number[] }[] })?.inputs?.[0];
    const n = input?.shape[0] ?? 0;
    if (!input || input.name !== 'image' || input.datatype !== 'FP32' || input.shape.join() !== [n, C, H, W].join() || input.data.length !== n * C * H * W) {
      return { status: 400, body: { error: `expected input "image" FP32 [N, ${C}, ${H}, ${W}]` } };
    }
    s.images += n;
    const probs = tf.tidy(() => model.predict(tf.tensor4d(input.data, [n, C, H, W])) as tf.Tensor2D);
    const data = opts.labelsOnly ? Array.from(probs.argMax(1).dataSync()) : Array.from(probs.dataSync());
    probs.dispose();
    return { status: 200, body: { model_name: name, model_version: '1', id: (body as { id?: string }).id, outputs: [{ name: output, datatype: opts.labelsOnly ? 'INT64' : 'FP32', shape: opts.labelsOnly ? [n] : [n, CLASSES], data }] } };
  });
}

/** TF Serving: the model `name`'s serving_default takes DT_FLOAT [-1, H, W, C] instances and predicts softmax rows. */
export function tfServingServer(name: string, model: tf.Sequential, opts: ServerOpts = {}): Promise<ProtocolServer> {
  const dims = (sizes: number[]) => ({ dim: sizes.map((size) => ({ size: String(size), name: '' })), unknown_rank: false });
  return serve(opts, (method, path, body, s) => {
    if (method === 'GET' && path === `/v1/models/${name}/metadata`) {
      const sig = { inputs: { pixels: { dtype: 'DT_FLOAT', tensor_shape: dims([-1, H, W, C]), name: 'serving_default_pixels:0' } }, outputs: { probs: { dtype: 'DT_FLOAT', tensor_shape: dims([-1, CLASSES]), name: 'StatefulPartitionedCall:0' } }, method_name: 'tensorflow/serving/predict' };
      return { status: 200, body: { model_spec: { name, signature_name: '', version: '1' }, metadata: { signature_def: { signature_def: { serving_default: sig }, '@type': 'type.googleapis.com/tensorflow.serving.SignatureDefMap' } } } };
    }
    if (method !== 'POST' || path !== `/v1/models/${name}:predict`) return { status: 404, body: { error: `Malformed request: ${method} ${path}` } };
    const instances = (body as { instances?: unknown })?.instances;
    if (!Array.isArray(instances) || instances.length === 0) return { status: 400, body: { error: 'Missing \'instances\' key' } };
    let x: tf.Tensor4D;
    try {
      x = tf.tensor4d(instances as number[][][][]);
    } catch (e) {
      return { status: 400, body: { error: `instances: ${(e as Error).message}` } };
    }
    if (x.shape.slice(1).join() !== [H, W, C].join()) {
      x.dispose();
      return { status: 400, body: { error: `expected instances of shape [${H}, ${W}, ${C}]` } };
    }
    s.images += x.shape[0];
    const probs = model.predict(x) as tf.Tensor2D;
    const predictions = probs.arraySync();
    tf.dispose([x, probs]);
    return { status: 200, body: { predictions } };
  });
}
