import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { apgd, apgdCheckpoints, apgdTargeted } from '../shared/attacks/apgd.js';
import { dlrLoss } from '../shared/attacks/losses.js';
import type { Model } from '../shared/model/model.js';

/** 4 pixels, 5 classes, z = x·W + b: a target is reachable from the test image only by moving every pixel. */
const W = [
  [1.0, -0.5, 0.3, 0.0, -0.2],
  [-0.4, 0.9, 0.1, -0.3, 0.2],
  [0.6, 0.2, -0.8, 0.5, 0.0],
  [-0.2, -0.6, 0.4, 0.7, 0.1],
];
const linear5: Model = {
  bounds: [0, 1],
  inputShape: [2, 2, 1],
  logits: (x) => tf.add(tf.matMul(tf.reshape(x, [x.shape[0], 4]), tf.tensor2d(W)), tf.tensor1d([0, 0, 0, 0, 0])),
};
/** Logits that do not depend on the input: the loss can never rise, so every checkpoint must halve. */
const flat: Model = { bounds: [0, 1], inputShape: [2, 2, 1], logits: (x) => tf.add(tf.mul(tf.reshape(x, [x.shape[0], 4]).slice([0, 0], [-1, 1]), 0), tf.tensor2d([[2, 1, 0, -1, 0.5]])) };

const image = (v: number[][]) => tf.tensor4d(v.flat(), [v.length, 2, 2, 1]);
const labelsOf = (m: Model, x: tf.Tensor4D) => tf.tidy(() => m.logits(x).argMax(1).dataSync() as Int32Array);

describe('APGD (Croce & Hein 2020)', () => {
  it('checks its step size at the documented checkpoints p0 = 0, p1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)', () => {
    expect(apgdCheckpoints(100)).toEqual([22, 41, 57, 70, 80, 87, 93, 99]);
    expect(apgdCheckpoints(10)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('the DLR loss is > 0 exactly when the label lost, and does not change when the logits are scaled or shifted', () => {
    const z = tf.tensor2d([[3, 1, 0.5, -1, 0], [1, 4, 0, 0.2, -2]]);
    const y = tf.tensor1d([0, 0], 'int32');
    const a = dlrLoss(z, y).arraySync();
    const b = dlrLoss(tf.add(tf.mul(z, 7), 3) as tf.Tensor2D, y).arraySync();
    expect(a[0]).toBeLessThan(0);
    expect(a[1]).toBeGreaterThan(0);
    // −(3 − 1) / (3 − 0.5): the label against the best other, over the first minus the third logit.
    expect(a[0]).toBeCloseTo(-0.8, 5);
    b.forEach((v, i) => expect(v).toBeCloseTo(a[i], 4));
  });

  it('halves the step size at every checkpoint where the loss never rose, from 2ε, restarting from the best point', () => {
    const seen: { iteration: number; stepSizes: Float32Array; halved: Uint8Array }[] = [];
    const x = image([[0.5, 0.5, 0.5, 0.5]]);
    const r = apgd(flat, x, Int32Array.of(0), { epsilon: 0.1, steps: 100, onCheckpoint: (c) => seen.push(c) });
    expect(seen.map((c) => c.iteration)).toEqual(apgdCheckpoints(100));
    seen.forEach((c, j) => {
      expect(c.halved[0]).toBe(1);
      expect(c.stepSizes[0]).toBeCloseTo(0.2 / 2 ** (j + 1), 7);
    });
    expect(r.fooled[0]).toBe(0);
    tf.dispose([x, r.adversarial]);
  });

  it('keeps its step size at the first checkpoint when the loss rose (ρ = 0), and halves once it stops rising', () => {
    const seen: { stepSizes: Float32Array; halved: Uint8Array }[] = [];
    const x = image([[0.2, 0.7, 0.4, 0.5]]);
    // Cross-entropy of class 0 on a linear model rises until the iterate reaches the ball's corner, then stays.
    apgd(linear5, x, Int32Array.of(0), { epsilon: 0.05, steps: 100, rho: 0, onCheckpoint: (c) => seen.push(c) }).adversarial.dispose();
    expect(seen[0].halved[0]).toBe(0);
    expect(seen[0].stepSizes[0]).toBeCloseTo(0.1, 7);
    expect(seen[1].halved[0]).toBe(1);
    x.dispose();
  });

  it('never leaves the ε-ball or [0, 1] at any iterate', () => {
    const rand = tf.randomUniform([6, 2, 2, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
    const x = tf.tidy(() => tf.div(tf.round(tf.mul(rand, 4)), 4) as tf.Tensor4D);
    const xs = x.dataSync();
    const eps = 0.3;
    let worst = 0;
    let iterates = 0;
    const judge = (v: tf.Tensor4D) => {
      const a = v.dataSync();
      iterates++;
      a.forEach((p, i) => {
        worst = Math.max(worst, Math.abs(p - xs[i]) - eps, -p, p - 1);
      });
      return v.clone();
    };
    for (const loss of ['ce', 'dlr'] as const) {
      const r = apgd(linear5, x, Int32Array.from([0, 1, 2, 3, 4, 0]), { epsilon: eps, steps: 30, loss, judge, seed: 5 });
      r.adversarial.dispose();
    }
    expect(iterates).toBe(62);
    expect(worst).toBeLessThanOrEqual(1e-6);
    tf.dispose([rand, x]);
  });

  it('APGD-T reaches its target on a hand-made linear model', () => {
    const x = image([[0.9, 0.1, 0.5, 0.2]]);
    expect(Array.from(labelsOf(linear5, x))).toEqual([0]);
    // Class 1 needs z_1 − z_0 = −1.5·d0 + 1.3·d1 − 0.4·d2 − 0.4·d3 − 1.5 > 0 (and to beat the rest): the corner
    // d = (−ε, +ε, −ε, −ε) clipped to [0, 1] first gets there between ε 0.45 and 0.5; no step size is given.
    const r = apgd(linear5, x, Int32Array.of(0), { epsilon: 0.5, steps: 100, targets: Int32Array.of(1) });
    expect(r.fooled[0]).toBe(1);
    expect(r.reached?.[0]).toBe(1);
    expect(Array.from(labelsOf(linear5, r.adversarial))).toEqual([1]);
    const untargeted = apgdTargeted(linear5, x, Int32Array.of(0), { epsilon: 0.5, steps: 50, targetClasses: 4 });
    expect(untargeted.fooled[0]).toBe(1);
    expect(labelsOf(linear5, untargeted.adversarial)[0]).not.toBe(0);
    tf.dispose([x, r.adversarial, untargeted.adversarial]);
  });
});
