import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { describeDefence } from '../scripts/lab/evaluate-table.js';
import { trainClassifier } from '../shared/model/training.js';
import { adversarialTraining, defenceFromArgs, TRADES_BETA } from '../victim/train/defence.js';
import { klSum, tradesAttack, tradesLoss } from '../victim/train/trades.js';

/**
 * TRADES (victim/train/trades.ts) on a tiny dense model of 6×6 images: the inner maximisation stays in
 * the box and raises its KL, β = 0 is plain cross-entropy, and the KL's gradient flows through the clean
 * branch too, as in the reference's trades_loss.
 */
const SHAPE = [6, 6, 1] as const;
const N = 16;
const EPS = 0.3;

function tinyModel(seed: number): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [...SHAPE] }),
      tf.layers.dense({ units: 12, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed }) }),
      tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }),
    ],
  });
}

/** Seeded images with many pixels at exactly 0 and 1, where the [0, 1] clip bites. */
const images = (): tf.Tensor4D => tf.tidy(() => tf.clipByValue(tf.randomUniform([N, ...SHAPE], -0.5, 1.5, 'float32', 7), 0, 1) as tf.Tensor4D);
const labels = (): tf.Tensor1D => tf.tensor1d(Array.from({ length: N }, (_, i) => i % 3), 'int32');
const cleanLogP = (model: tf.LayersModel, x: tf.Tensor4D) => tf.logSoftmax(model.predict(x) as tf.Tensor2D) as tf.Tensor2D;
const klAt = (model: tf.LayersModel, x: tf.Tensor4D, xa: tf.Tensor4D) => tf.tidy(() => klSum(cleanLogP(model, x), cleanLogP(model, xa)).dataSync()[0]);

beforeAll(async () => {
  await initBackend();
});

describe('the TRADES inner maximisation', () => {
  it('never leaves the ε-ball around the image nor [0, 1]', () => {
    const model = tinyModel(1);
    const x = images();
    for (const steps of [0, 1, 5]) {
      const xa = tradesAttack(model, x, { epsilon: EPS, steps, stepSize: 0.2, seed: 3 });
      expect(tf.max(tf.abs(tf.sub(xa, x))).dataSync()[0]).toBeLessThanOrEqual(EPS + 1e-6);
      expect(tf.min(xa).dataSync()[0]).toBeGreaterThanOrEqual(0);
      expect(tf.max(xa).dataSync()[0]).toBeLessThanOrEqual(1);
      xa.dispose();
    }
  });

  it('raises the KL it maximises well above its start (x + 0.001·N(0, 1))', () => {
    const model = tinyModel(2);
    const x = images();
    const start = tradesAttack(model, x, { epsilon: EPS, steps: 0, stepSize: 0.15, seed: 4 });
    const end = tradesAttack(model, x, { epsilon: EPS, steps: 4, stepSize: 0.15, seed: 4 });
    const before = klAt(model, x, start);
    const after = klAt(model, x, end);
    expect(before).toBeLessThan(1e-3);
    expect(after).toBeGreaterThan(100 * Math.max(before, 1e-6));
  });
});

describe('the TRADES outer loss', () => {
  it('with β = 0 takes the same training step as plain cross-entropy', () => {
    const x = images();
    const y = labels();
    const data = x.dataSync() as Float32Array;
    const ys = y.dataSync() as Int32Array;
    const weightsAfter = (trades: boolean) => {
      const model = tinyModel(3);
      const defence = adversarialTraining({ recipe: 'trades', epsilon: EPS, beta: 0, seed: 1 });
      trainClassifier(model, data, ys, { epochs: 1, batchSize: N, learningRate: 0.01, seed: 2, ...(trades ? { batchLoss: defence.batchLoss } : {}) });
      return model.getWeights().map((w) => Array.from(w.dataSync()));
    };
    const plain = weightsAfter(false);
    const trades = weightsAfter(true);
    const start = tinyModel(3).getWeights().map((w) => Array.from(w.dataSync()));
    expect(trades).not.toEqual(start);
    trades.forEach((w, i) => w.forEach((v, j) => expect(v).toBeCloseTo(plain[i][j], 6)));
  });

  it('sends the KL gradient to the weights through the clean branch as well as the attacked one', () => {
    const model = tinyModel(5);
    const x = images();
    const y = labels();
    const xAdv = tradesAttack(model, x, { epsilon: EPS, steps: 3, stepSize: 0.15, seed: 6 });
    const fixedClean = model.predict(x) as tf.Tensor2D;
    const both = tf.variableGrads(() => tradesLoss(model, xAdv, y, TRADES_BETA, model.apply(x, { training: true }) as tf.Tensor2D).loss);
    // The same loss with f(x) a constant inside the KL (the clean branch stopped), its CE unchanged.
    const stopped = tf.variableGrads(() => {
      const logits = model.apply(x, { training: true }) as tf.Tensor2D;
      const kl = klSum(tf.logSoftmax(fixedClean) as tf.Tensor2D, tf.logSoftmax(model.apply(xAdv, { training: true }) as tf.Tensor2D) as tf.Tensor2D);
      return tf.add(tf.losses.softmaxCrossEntropy(tf.oneHot(y, 3), logits), tf.mul(kl, TRADES_BETA / N)) as tf.Scalar;
    });
    expect(both.value.dataSync()[0]).toBeCloseTo(stopped.value.dataSync()[0], 5);
    const diff = Object.keys(both.grads).reduce((s, k) => s + tf.sum(tf.abs(tf.sub(both.grads[k], stopped.grads[k]))).dataSync()[0], 0);
    const size = Object.keys(both.grads).reduce((s, k) => s + tf.sum(tf.abs(both.grads[k])).dataSync()[0], 0);
    expect(diff / size).toBeGreaterThan(1e-3);
  });
});

describe('--adversarial trades settings', () => {
  it('default to β 6 and 2 inner steps of 2.5 ε / 2, recorded in the metadata', () => {
    expect(defenceFromArgs({ adversarial: 'trades', eps: 0.3 })?.metadata).toEqual({
      kind: 'adversarial-training', attack: 'trades', epsilon: 0.3, steps: 2, alpha: 0.375, beta: 6,
      randomStart: '0.001·N(0, 1) around the image', loss: 'CE(f(x), y) + β · KL(f(x) ‖ f(x′)) / n, gradient through both',
    });
    expect(describeDefence(defenceFromArgs({ adversarial: 'trades', eps: 0.3 })?.metadata)).toBe('trades ε 0.3 α 0.375 K 2 β 6');
    expect(defenceFromArgs({ adversarial: 'trades', eps: 0.3, beta: 0, 'pgd-steps': 5 })?.metadata).toMatchObject({ steps: 5, alpha: 0.15, beta: 0 });
  });

  it('refuse a bad β with invalid_config naming --beta', () => {
    for (const beta of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => defenceFromArgs({ adversarial: 'trades', eps: 0.3, beta })).toThrow(expect.objectContaining({ code: 'invalid_config', message: expect.stringMatching(/--beta must be a finite number ≥ 0/) }));
    }
    expect(() => defenceFromArgs({ adversarial: 'pgd', eps: 0.3, beta: 1 })).toThrow(/--beta is a weight of --adversarial trades, not of pgd/);
    expect(() => defenceFromArgs({ adversarial: 'trades', eps: 0.3, mix: 0.5 })).toThrow(/--mix and --keep-clean do not apply to --adversarial trades/);
  });
});
