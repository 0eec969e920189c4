import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { distillationLoss, softTargets } from '../shared/model/distill.js';

beforeAll(async () => {
  await initBackend('cpu');
});

describe('distillation from the victim\'s scores', () => {
  it('the loss and its gradient in the logits are the hand-computed ones: (softmax(z/T) − q)/T', () => {
    // z = [0, ln 3]: softmax = [1/4, 3/4]; q = [1/2, 1/2]; T = 1.
    const z = tf.tensor2d([[0, Math.log(3)]]);
    const q = tf.tensor2d([[0.5, 0.5]]);
    const loss = distillationLoss(q, z as tf.Tensor2D, 1);
    // H(q, p) = −½ ln ¼ − ½ ln ¾
    expect(loss.dataSync()[0]).toBeCloseTo(-0.5 * Math.log(0.25) - 0.5 * Math.log(0.75), 5);
    const g1 = tf.grad((x: tf.Tensor) => distillationLoss(q as tf.Tensor2D, x as tf.Tensor2D, 1))(z).dataSync();
    expect(g1[0]).toBeCloseTo(-0.25, 5);
    expect(g1[1]).toBeCloseTo(0.25, 5);
    // T = 2: softmax(z/2) = [1, √3]/(1 + √3); the gradient is divided by T once more.
    const p0 = 1 / (1 + Math.sqrt(3));
    const g2 = tf.grad((x: tf.Tensor) => distillationLoss(q as tf.Tensor2D, x as tf.Tensor2D, 2))(z).dataSync();
    expect(g2[0]).toBeCloseTo((p0 - 0.5) / 2, 5);
    expect(g2[1]).toBeCloseTo((0.5 - p0) / 2, 5);
    // Two images: the mean over the batch, so each image's gradient is halved.
    const zz = tf.tensor2d([[0, Math.log(3)], [0, 0]]);
    const qq = tf.tensor2d([[0.5, 0.5], [1, 0]]);
    const g3 = tf.grad((x: tf.Tensor) => distillationLoss(qq as tf.Tensor2D, x as tf.Tensor2D, 1))(zz).dataSync();
    expect(Array.from(g3).map((v) => Number(v.toFixed(5)))).toEqual([-0.125, 0.125, -0.25, 0.25]);
    tf.dispose([z, q, loss, zz, qq]);
  });

  it('targets: missing top-k classes get no mass, rows renormalise, T softens as p^(1/T); a massless row falls back to its label', () => {
    const scores = Float32Array.from([0.6, 0.2, NaN, /* */ 0.8, 0.2, 0, /* */ 0.9, NaN, NaN, /* */ 0, NaN, NaN]);
    const t1 = softTargets(scores, [0, 0, 0, 2], 3, 1);
    expect(Array.from(t1).map((v) => Number(v.toFixed(4)))).toEqual([0.75, 0.25, 0, 0.8, 0.2, 0, 1, 0, 0, 0, 0, 1]);
    const t2 = softTargets(scores, [0, 0, 0, 2], 3, 2);
    // [0.8, 0.2] → √ → [0.894, 0.447] / 1.342 = [2/3, 1/3]
    expect(t2[3]).toBeCloseTo(2 / 3, 5);
    expect(t2[4]).toBeCloseTo(1 / 3, 5);
    expect(() => softTargets(scores, [0, 0], 3)).toThrow(/12 scores for 2 images/);
  });
});
