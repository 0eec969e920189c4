import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layersToOnnx } from '../scripts/onnx-export.js';
import { saveKerasLayout } from '../scripts/keras-layout.js';
import { initBackend } from '../shared/engine/backend.js';
import { createRng } from '../shared/random.js';
import { spawnVictim } from '../victim/spawn.js';
import { bytes, call, readJsonl, startVictim, type TestVictim } from './victim-client.js';

/**
 * A user's models, built inside the test in the formats users bring — a Keras model converted by
 * tensorflowjs_converter (model.json + several group1-shard*.bin, softmax last layer, no metadata)
 * and ONNX files as torch.onnx.export writes them (NCHW, dynamic or fixed batch) — served by a
 * real victim process: HTTP labels must equal the model's own, run in-process.
 */
const H = 12;
const W = 10;
const C = 3;
const CLASSES = 5;
const N = 200;
const PIXELS = H * W * C;

let dir: string;
let backend: string;
let pixels: Uint8Array;
let floats: Float32Array;
let keras: string;
let onnxNchw: string;
let onnxFixed: string;
let tfjsLabels: Int32Array;

function buildModel(): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [H, W, C], filters: 6, kernelSize: 3, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 16, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }),
      tf.layers.dense({ units: CLASSES, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }),
    ],
  });
}

/** Argmax per row of an [n, classes] score matrix. */
function argmax(scores: Float32Array, n: number, classes: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => {
    let best = 0;
    for (let k = 1; k < classes; k++) if (scores[i * classes + k] > scores[i * classes + best]) best = k;
    return best;
  });
}

async function onnxLabels(path: string, batch: number | null): Promise<Int32Array> {
  const session = await ort.InferenceSession.create(path);
  // HWC → CHW, as PyTorch would want it.
  const chw = new Float32Array(N * PIXELS);
  for (let n = 0; n < N; n++) for (let p = 0; p < H * W; p++) for (let k = 0; k < C; k++) chw[n * PIXELS + k * H * W + p] = floats[n * PIXELS + p * C + k];
  const out = new Int32Array(N);
  const step = batch ?? N;
  for (let s = 0; s < N; s += step) {
    const x = new ort.Tensor('float32', chw.subarray(s * PIXELS, (s + step) * PIXELS), [step, C, H, W]);
    const r = await session.run({ input: x });
    out.set(argmax(r.output.data as Float32Array, step, CLASSES), s);
  }
  await session.release();
  return out;
}

async function labelOverHttp(victim: TestVictim): Promise<number[]> {
  const labels: number[] = [];
  for (let s = 0; s < N; s += 100) {
    const r = await call(`${victim.url}/v1/label`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: bytes(pixels.subarray(s * PIXELS, (s + 100) * PIXELS)) });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    labels.push(...(r.body.labels ?? []));
  }
  return labels;
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

beforeAll(async () => {
  backend = (await initBackend()).backend;
  dir = mkdtempSync(join(tmpdir(), 'transferlab-user-models-'));
  const rng = createRng(7);
  // Mostly-dark images with a few bright blobs, so the random net does not answer one class for all.
  pixels = Uint8Array.from({ length: N * PIXELS }, () => Math.floor(rng() ** 3 * 256));
  floats = Float32Array.from(pixels, (p) => p / 255);
  const model = buildModel();
  keras = join(dir, 'keras-web-model');
  const shards = await saveKerasLayout(model, keras, { shardBytes: 2000 });
  expect(shards.length).toBeGreaterThan(2);
  onnxNchw = join(dir, 'net.onnx');
  writeFileSync(onnxNchw, layersToOnnx(model));
  onnxFixed = join(dir, 'net-batch1.onnx');
  writeFileSync(onnxFixed, layersToOnnx(model, { fixedBatch: 1 }));
  tfjsLabels = tf.tidy(() => (model.predict(tf.tensor4d(floats, [N, H, W, C])) as tf.Tensor2D).argMax(1).dataSync() as Int32Array);
  // A net that answers one class for everything would make the equality checks vacuous.
  expect(new Set(tfjsLabels).size).toBeGreaterThan(1);
  model.dispose();
  writeFileSync(join(dir, 'classes.txt'), ['circle', 'square', 'star', 'moon', 'heart'].join('\n') + '\n');
}, 60_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function serve(model: string, extra: string[] = []): Promise<{ victim: TestVictim; audit: string }> {
  const audit = join(dir, `audit-${Math.random().toString(36).slice(2)}.jsonl`);
  const victim = await startVictim(['--model', model, '--audit-log', audit, '--ledger', `${audit}.ledger`, '--rate-limit', '0', ...extra], backend);
  return { victim, audit };
}

describe('a user model behind a real victim process', () => {
  it('serves a Keras-converted TF.js folder (several shards, softmax last layer): HTTP labels = the model\'s own', async () => {
    const { victim, audit } = await serve(keras, ['--classes', join(dir, 'classes.txt'), '--detector', 'prada']);
    try {
      const info = await call(`${victim.url}/v1/info`);
      expect(info.body).toMatchObject({ dataset: null, inputShape: [H, W, C], classes: CLASSES, classNames: ['circle', 'square', 'star', 'moon', 'heart'] });
      expect(await labelOverHttp(victim)).toEqual(Array.from(tfjsLabels));
      // The OpenAPI document follows the model: its schemas describe 12×10×3 images and 5 classes.
      const doc = (await call(`${victim.url}/v1/openapi.json`)).body as unknown as { components: object };
      const ajv = new Ajv2020({ strict: false });
      ajv.addSchema({ $id: 'doc', ...doc });
      const request = ajv.compile({ $ref: 'doc#/components/schemas/LabelRequest' });
      const nested = Array.from({ length: H }, () => Array.from({ length: W }, () => new Array(C).fill(0.5)));
      expect(request({ inputs: [nested, new Array(PIXELS).fill(0)] })).toBe(true);
      expect(request({ inputs: [new Array(28 * 28).fill(0)] })).toBe(false);
      expect(ajv.compile({ $ref: 'doc#/components/schemas/Info' })(info.body)).toBe(true);
      expect(ajv.compile({ $ref: 'doc#/components/schemas/Labels' })({ labels: [CLASSES], budget: { used: 1, limit: null } })).toBe(false);
      const manifest = JSON.parse(readFileSync(join(keras, 'model.json'), 'utf8')) as { weightsManifest: { paths: string[] }[] };
      const weights = Buffer.concat(manifest.weightsManifest[0].paths.map((p) => readFileSync(join(keras, p))));
      const start = readJsonl<{ event?: string; model?: { weightsSha256: string; format: string } }>(audit).find((r) => r.event === 'service_started');
      expect(start?.model).toMatchObject({ weightsSha256: sha256(weights), format: 'tfjs-layers' });
      expect(victim.output()).toContain(sha256(weights));
      // PRADA watches this model's 12×10×3 images and 5 classes like any other.
      expect(victim.output()).toMatch(/extraction detector: PRADA/);
    } finally {
      expect(await victim.stop()).toBe(0);
    }
  }, 60_000);

  it('serves an ONNX file (NCHW, dynamic batch): HTTP labels = ONNX Runtime\'s own = TF.js\'s', async () => {
    const own = await onnxLabels(onnxNchw, null);
    expect(own).toEqual(tfjsLabels);
    const { victim, audit } = await serve(onnxNchw);
    try {
      expect((await call(`${victim.url}/v1/info`)).body).toMatchObject({ dataset: null, inputShape: [H, W, C], classes: CLASSES });
      expect(await labelOverHttp(victim)).toEqual(Array.from(own));
      const start = readJsonl<{ event?: string; model?: { weightsSha256: string } }>(audit).find((r) => r.event === 'service_started');
      expect(start?.model?.weightsSha256).toBe(sha256(readFileSync(onnxNchw)));
      expect(victim.output()).toMatch(/NCHW \(from the model\)/);
    } finally {
      expect(await victim.stop()).toBe(0);
    }
  }, 60_000);

  it('serves an ONNX file exported with a fixed batch of 1, padding nothing into the answers', async () => {
    const own = await onnxLabels(onnxFixed, 1);
    const { victim } = await serve(onnxFixed, ['--dataset', 'shapes', '--budget', String(N)]);
    try {
      expect((await call(`${victim.url}/v1/info`)).body).toMatchObject({ dataset: 'shapes', inputShape: [H, W, C] });
      expect(await labelOverHttp(victim)).toEqual(Array.from(own));
      // Budgets hold for any model: the budget is spent, the next image is refused and not charged.
      const more = await call(`${victim.url}/v1/label`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: bytes(pixels.subarray(0, PIXELS)) });
      expect([more.status, more.body.error?.code]).toEqual([429, 'budget_exhausted']);
    } finally {
      expect(await victim.stop()).toBe(0);
    }
  }, 60_000);

  it('refuses an unservable model at start-up with a message naming the problem, never at the first request', async () => {
    const bad = join(dir, 'bad-keras');
    mkdirSync(bad);
    const json = JSON.parse(readFileSync(join(keras, 'model.json'), 'utf8')) as {
      modelTopology: { model_config: { config: { layers: { class_name: string }[] } } };
      weightsManifest: { paths: string[] }[];
    };
    json.modelTopology.model_config.config.layers[1].class_name = 'MyFancyPooling';
    writeFileSync(join(bad, 'model.json'), JSON.stringify(json));
    for (const f of json.weightsManifest[0].paths) writeFileSync(join(bad, f), readFileSync(join(keras, f)));
    let message = '';
    try {
      const v = await spawnVictim({ args: ['--model', bad, '--port', '0', '--no-train', '--backend', backend, '--audit-log', join(dir, 'bad.jsonl'), '--ledger', join(dir, 'bad.ledger')], timeoutMs: 60_000 });
      await v.stop();
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/victim exited \(code 1\)/);
    expect(message).toMatch(/model_unservable.*MyFancyPooling.*Custom Keras layers are not supported/s);
  }, 60_000);
});
