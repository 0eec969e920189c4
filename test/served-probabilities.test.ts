import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { createRng } from '../shared/random.js';
import { saveKerasLayout } from '../scripts/keras-layout.js';
import { layersToOnnx } from '../scripts/onnx-export.js';
import { openServedModel } from '../victim/model/served-model.js';

/**
 * The served model's probabilities, for each kind of model the victim serves: a TF.js folder and
 * ONNX files, ending in a softmax or in logits. Whatever the kind, `predict` answers the same labels
 * as `label`, and probabilities that are the softmax of the network's logits (a softmax model's own
 * output is not squashed a second time). Small random nets, in process.
 */
const [H, W, C, CLASSES, N] = [8, 8, 1, 4, 12];
let dir: string;
let images: Float32Array;

function build(softmax: boolean): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [H, W, C], filters: 4, kernelSize: 3, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.flatten(),
      tf.layers.dense({ units: CLASSES, activation: softmax ? 'softmax' : 'linear', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
}

/** The reference: softmax of the logits, from the same weights without the softmax. */
const expected: { softmax?: Float32Array; labels?: Int32Array } = {};

beforeAll(async () => {
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-probabilities-'));
  const rng = createRng(3);
  images = Float32Array.from({ length: N * H * W * C }, () => rng());
  const logits = build(false);
  const withSoftmax = build(true);
  withSoftmax.setWeights(logits.getWeights());
  expected.softmax = tf.tidy(() => tf.softmax(logits.predict(tf.tensor4d(images, [N, H, W, C])) as tf.Tensor2D).dataSync() as Float32Array);
  expected.labels = tf.tidy(() => (logits.predict(tf.tensor4d(images, [N, H, W, C])) as tf.Tensor2D).argMax(1).dataSync() as Int32Array);
  // A net answering one class for every image would make the label checks vacuous.
  expect(new Set(expected.labels).size).toBeGreaterThan(1);
  writeFileSync(join(dir, 'logits.onnx'), layersToOnnx(logits));
  writeFileSync(join(dir, 'softmax.onnx'), layersToOnnx(withSoftmax));
  // Exported with a fixed batch of 5: 12 images run as 5 + 5 + 2, the last run padded.
  writeFileSync(join(dir, 'fixed-batch.onnx'), layersToOnnx(logits, { fixedBatch: 5 }));
  await saveKerasLayout(logits, join(dir, 'tfjs-logits'));
  await saveKerasLayout(withSoftmax, join(dir, 'tfjs-softmax'));
  logits.dispose();
  withSoftmax.dispose();
}, 60_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('probabilities of every kind of served model', () => {
  it.each(['logits.onnx', 'softmax.onnx', 'fixed-batch.onnx', 'tfjs-logits', 'tfjs-softmax'])('%s: the labels of label(), and the softmax of the logits', async (name) => {
    const served = await openServedModel(join(dir, name));
    try {
      const { labels, probabilities } = await served.predict(images, N);
      expect(Array.from(labels)).toEqual(Array.from(await served.label(images, N)));
      expect(Array.from(labels)).toEqual(Array.from(expected.labels as Int32Array));
      expect(probabilities).toHaveLength(N * CLASSES);
      probabilities.forEach((p, i) => expect(p).toBeCloseTo((expected.softmax as Float32Array)[i], 5));
      expect(served.probabilitiesFrom).toMatch(name.includes('softmax') ? /already probabilities|softmax output/ : /softmax of/);
    } finally {
      await served.close();
    }
  });
});
