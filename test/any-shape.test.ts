import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { jacobianStep } from '../adversary/campaign/augmentation.js';
import { ARCHITECTURES, buildModel } from '../shared/model/architectures.js';
import { initBackend } from '../shared/engine/backend.js';
import { flipDistances, planeGrid } from '../shared/boundary.js';
import { fromLayers, labelImages } from '../shared/model/model.js';
import { createRng, seedGlobalRandom, uniformSigned } from '../shared/random.js';
import { trainClassifier } from '../shared/model/training.js';

/** Models, training, augmentation and boundary maths on images that are not 28×28×1. */
beforeAll(async () => {
  await initBackend();
});

const rgb = { inputShape: [16, 20, 3] as const, classes: 4 };
const images = (n: number, seed: number) => Float32Array.from(uniformSigned(n * 16 * 20 * 3, seed), (v) => (v + 1) / 2);

describe('any input shape and class count', () => {
  it('builds every architecture for the shape and class count it is given, and refuses images too small for it', () => {
    for (const name of ARCHITECTURES) {
      const m = buildModel(name, rgb);
      expect(m.inputs[0].shape).toEqual([null, 16, 20, 3]);
      expect(m.outputs[0].shape).toEqual([null, 4]);
      m.dispose();
    }
    expect(() => buildModel('lenet', { inputShape: [12, 12, 3], classes: 3 })).toThrow(/lenet needs images of at least 16×16; these are 12×12/);
    expect(() => buildModel('papernot-mlp', { inputShape: [8, 8, 1], classes: 1 })).toThrow(/at least 2 classes/);
  });

  it('trains on RGB images with shifts, labels them, and grows them along the Jacobian', () => {
    seedGlobalRandom(5);
    const model = buildModel('lenet', rgb);
    const n = 64;
    const x = images(n, 1);
    // A learnable rule: the class is which quarter of the red channel's mean the image falls into.
    const labels = Int32Array.from({ length: n }, (_, i) => i % 4);
    for (let i = 0; i < n; i++) for (let p = 0; p < 320; p++) x[i * 960 + 3 * p] = labels[i] / 4 + 0.1;
    const before = tf.memory().numTensors;
    const summary = trainClassifier(model, x, labels, { epochs: 15, batchSize: 16, learningRate: 0.01, seed: 2, shift: 2 });
    expect(tf.memory().numTensors).toBe(before);
    expect(summary.accuracy).toBeGreaterThan(0.5);
    const m = fromLayers(model);
    expect(m.inputShape).toEqual([16, 20, 3]);
    const predicted = labelImages(m, x, n);
    expect(predicted.filter((p, i) => p === labels[i]).length).toBeGreaterThan(n / 2);
    const grown = jacobianStep(m, x.subarray(0, 8 * 960), labels.subarray(0, 8), 0.1);
    expect(grown.length).toBe(8 * 960);
    const moved = grown.filter((v, i) => Math.abs(v - x[i]) > 1e-6).length;
    expect(moved).toBeGreaterThan(960);
    expect(() => trainClassifier(model, x, labels, { epochs: 1, batchSize: 16, learningRate: 0.01, seed: 2, shift: 8 })).toThrow(/shift must be an integer in 0\.\.7/);
    model.dispose();
  });

  it('shifts RGB images by whole pixels, every channel with its pixel', () => {
    const [h, w, c] = [16, 20, 3];
    const model = buildModel('papernot-mlp', { inputShape: [h, w, c], classes: 2 });
    const x = Float32Array.from({ length: h * w * c }, (_, i) => (i + 1) / (h * w * c));
    let seen: Float32Array | undefined;
    trainClassifier(model, x, Int32Array.of(1), {
      epochs: 1, batchSize: 1, learningRate: 0.001, seed: 4, shift: 2,
      transformBatch: (batch) => ((seen = batch.dataSync() as Float32Array), batch),
    });
    // The training loop draws the batch's offset from its own stream, seeded seed + 0x5eed: dy, then dx.
    const r = createRng(4 + 0x5eed);
    const dy = Math.floor(r() * 5) - 2;
    const dx = Math.floor(r() * 5) - 2;
    expect(dy !== 0 || dx !== 0).toBe(true);
    for (let row = 0; row < h; row++) {
      for (let col = 0; col < w; col++) {
        for (let k = 0; k < c; k++) {
          const [sr, sc] = [row + dy, col + dx];
          const want = sr >= 0 && sr < h && sc >= 0 && sc < w ? x[(sr * w + sc) * c + k] : 0;
          expect(seen![(row * w + col) * c + k]).toBe(want);
        }
      }
    }
    model.dispose();
  });

  it('bisects and maps planes of RGB images, the size read off the arrays', async () => {
    const x = images(3, 9);
    const d = Float32Array.from(x, (_, i) => (i % 2 ? 1 : -1));
    // A labeler that flips once the mean pixel moves: a boundary every image reaches.
    const label = async (probe: Float32Array, count: number) =>
      Int32Array.from({ length: count }, (_, i) => (probe.subarray(i * 960, (i + 1) * 960).reduce((a, b) => a + b, 0) / 960 > 0.6 ? 1 : 0));
    const r = await flipDistances(x, Float32Array.from(x, () => 1), 3, label);
    expect(r.epsilons.every((e) => e !== null && e > 0)).toBe(true);
    const grid = planeGrid(x.subarray(0, 960), d.subarray(0, 960), { size: 5, extent: 0.5, rng: createRng(1) });
    expect(grid.points.length).toBe(25 * 960);
    await expect(flipDistances(x, d.subarray(0, 959), 3, label)).rejects.toThrow(/directions holds 959 values; expected 3 × 960/);
  });
});
