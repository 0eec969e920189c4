import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { attackGradient, fgsm, inputGradientSign, pgd } from '../shared/attacks/index.js';
import type { CraftingLoss } from '../shared/attacks/losses.js';
import { TransferlabError } from '../shared/errors.js';
import type { Model } from '../shared/model/model.js';
import { linear, W } from './linear-model.js';

const logitsOf = (x: number[]): number[] => [0, 1, 2].map((k) => x.reduce((s, xi, i) => s + xi * W[i][k], 0));
const column = (k: number): number[] => W.map((row) => row[k]);

/** The strongest class other than `except`, by hand. */
function runnerUp(z: number[], except: number): number {
  let best = -1;
  for (let k = 0; k < z.length; k++) if (k !== except && (best < 0 || z[k] > z[best])) best = k;
  return best;
}

/**
 * ∂/∂x of the margin on a linear model, by hand: untargeted max_{j≠y} z_j − z_y → W[:, j*] − W[:, y];
 * targeted z_t − max_{j≠t} z_j → W[:, t] − W[:, j*].
 */
function handMargin(x: number[], label: number, targeted: boolean): number[] {
  const j = runnerUp(logitsOf(x), label);
  const [plus, minus] = targeted ? [label, j] : [j, label];
  return column(plus).map((w, i) => w - column(minus)[i]);
}

const images = [
  [0.1, 0.9, 0.5, 0.3],
  [0.0, 1.0, 0.95, 0.02],
  [0.7, 0.2, 0.4, 0.6],
];
const x = (): tf.Tensor4D => tf.tensor4d(images.flat(), [3, 2, 2, 1]);

describe('the CW margin loss', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('untargeted gradient is W[:, runner-up] − W[:, y] for every image', () => {
    const labels = Int32Array.from([0, 2, 1]);
    const input = x();
    const g = attackGradient(linear, input, labels, false, { loss: 'margin' });
    const got = Array.from(g.dataSync());
    const want = images.flatMap((img, n) => handMargin(img, labels[n], false));
    got.forEach((v, i) => expect(v).toBeCloseTo(want[i], 5));
    // The runner-up differs between images here, so a wrong exclusion of the label would show.
    expect(new Set(images.map((img, n) => runnerUp(logitsOf(img), labels[n]))).size).toBeGreaterThan(1);
    tf.dispose([g, input]);
  });

  it('targeted gradient is W[:, t] − W[:, strongest other class]', () => {
    const targets = Int32Array.from([2, 0, 0]);
    const input = x();
    const g = attackGradient(linear, input, targets, true, { loss: 'margin' });
    const got = Array.from(g.dataSync());
    const want = images.flatMap((img, n) => handMargin(img, targets[n], true));
    got.forEach((v, i) => expect(v).toBeCloseTo(want[i], 5));
    tf.dispose([g, input]);
  });

  it('FGSM on the margin steps ε along the sign of the hand gradient, and both FGSM paths agree', () => {
    const labels = Int32Array.from([0, 2, 1]);
    const input = x();
    const eps = 0.1;
    const { raw, clipped } = fgsm(linear, input, labels, { epsilon: eps, loss: 'margin' });
    const dir = inputGradientSign(linear, input, labels, false, 500, { loss: 'margin' });
    const want = images.flatMap((img, n) => handMargin(img, labels[n], false).map((g, i) => img[i] + eps * Math.sign(g)));
    Array.from(raw.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(want[i], 6));
    const clippedWant = want.map((v) => Math.min(1, Math.max(0, v)));
    Array.from(clipped.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(clippedWant[i], 6));
    expect(Array.from(dir.dataSync())).toEqual(want.map((v, i) => Math.sign(v - images.flat()[i])));
    tf.dispose([raw, clipped, dir, input]);
  });

  it('keeps a usable gradient where cross-entropy saturates', () => {
    // Scaled far out along class 2's direction the softmax is certain: CE's gradient underflows, the margin's does not.
    const confident: Model = { bounds: [-1e3, 1e3], inputShape: [2, 2, 1], logits: (v) => tf.mul(linear.logits(v), 200) };
    const input = tf.tensor4d([0, 0, 0, 1], [1, 2, 2, 1]);
    const labels = Int32Array.from([2]);
    const ce = attackGradient(confident, input, labels, false, { loss: 'ce' });
    const margin = attackGradient(confident, input, labels, false, { loss: 'margin' });
    expect(Math.max(...Array.from(ce.dataSync()).map(Math.abs))).toBeLessThan(1e-6);
    expect(Math.max(...Array.from(margin.dataSync()).map(Math.abs))).toBeGreaterThan(1);
    tf.dispose([ce, margin, input]);
  });

  it('a crafting temperature T is cross-entropy on logits / T (here: the model with W / T)', () => {
    const labels = Int32Array.from([0, 2, 1]);
    const input = x();
    const cooled: Model = { bounds: [0, 1], inputShape: [2, 2, 1], logits: (v) => tf.div(linear.logits(v), 10) };
    const got = attackGradient(linear, input, labels, false, { temperature: 10 });
    const want = attackGradient(cooled, input, labels, false);
    const plain = attackGradient(linear, input, labels, false);
    const g = Array.from(got.dataSync());
    Array.from(want.dataSync()).forEach((v, i) => expect(g[i]).toBeCloseTo(v, 6));
    expect(Array.from(plain.dataSync()).some((v, i) => Math.abs(v - g[i]) > 1e-3)).toBe(true);
    expect(() => attackGradient(linear, input, labels, false, { temperature: 0 })).toThrow(/temperature/);
    tf.dispose([got, want, plain, input]);
  });

  it('an unknown loss is refused with a clear error', () => {
    const input = x();
    expect(() => pgd(linear, input, Int32Array.from([0, 1, 2]), { epsilon: 0.1, loss: 'hinge' as CraftingLoss })).toThrow(TransferlabError);
    expect(() => pgd(linear, input, Int32Array.from([0, 1, 2]), { epsilon: 0.1, loss: 'hinge' as CraftingLoss })).toThrow(/unknown loss 'hinge'/);
    input.dispose();
  });
});
