import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { attackGradient, runAttack, ATTACK_NAMES } from '../shared/attacks/index.js';
import { ensembleOf, type CraftingLoss } from '../shared/attacks/losses.js';
import { gaussianKernel, smoothGradient } from '../shared/attacks/transforms.js';
import { buildModel } from '../shared/model/architectures.js';
import { imagesTensor, loadMnist, subset } from '../shared/datasets/index.js';
import { fromLayers, type Model } from '../shared/model/model.js';
import { seedGlobalRandom } from '../shared/random.js';
import { meanPerturbationL2 } from '../shared/metrics.js';

/** Linear 4-pixel, 3-class members z = x·W: small enough to check an ensemble's gradient exactly. */
const W1 = [
  [0.5, -1.0, 0.2],
  [-0.3, 0.8, -0.6],
  [1.1, 0.1, -0.9],
  [-0.7, -0.4, 1.3],
];
const W2 = [
  [-0.2, 0.4, 0.9],
  [0.6, -0.5, 0.3],
  [-0.8, 1.2, 0.1],
  [0.3, 0.2, -1.1],
];
const linear = (w: number[][]): Model => ({ bounds: [0, 1], inputShape: [2, 2, 1], logits: (x) => tf.matMul(tf.reshape(x, [x.shape[0], 4]), tf.tensor2d(w)) });
const meanW = W1.map((row, i) => row.map((v, k) => (v + W2[i][k]) / 2));

const values = (t: tf.Tensor): number[] => {
  const v = Array.from(t.dataSync());
  t.dispose();
  return v;
};

describe('an ensemble of substitutes', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  const x = () => tf.tensor4d([0.1, 0.9, 0.5, 0.3, 0.0, 1.0, 0.95, 0.02, 0.7, 0.2, 0.4, 0.6], [3, 2, 2, 1]);
  const labels = Int32Array.from([0, 2, 1]);

  for (const loss of ['ce', 'margin'] as CraftingLoss[]) {
    it(`combining losses (${loss}): the gradient is the mean of the members' gradients`, () => {
      const input = x();
      for (const targeted of [false, true]) {
        const got = values(attackGradient(ensembleOf([linear(W1), linear(W2)], 'loss'), input, labels, targeted, { loss }));
        const g1 = values(attackGradient(linear(W1), input, labels, targeted, { loss }));
        const g2 = values(attackGradient(linear(W2), input, labels, targeted, { loss }));
        got.forEach((v, i) => expect(v).toBeCloseTo((g1[i] + g2[i]) / 2, 5));
        // The members disagree, so the mean is not just either of them.
        expect(g1.some((v, i) => Math.abs(v - g2[i]) > 0.1)).toBe(true);
      }
      input.dispose();
    });
  }

  it('combining logits: the gradient is that of the members\' mean logits (here the mean weights)', () => {
    const input = x();
    const ensemble = ensembleOf([linear(W1), linear(W2)], 'logits');
    for (const loss of ['ce', 'margin'] as CraftingLoss[]) {
      const got = values(attackGradient(ensemble, input, labels, false, { loss }));
      const want = values(attackGradient(linear(meanW), input, labels, false, { loss }));
      got.forEach((v, i) => expect(v).toBeCloseTo(want[i], 5));
    }
    // Its logits (and so its labels) are the members' mean.
    const z = values(tf.tidy(() => ensemble.logits(input)));
    const z1 = values(tf.tidy(() => linear(W1).logits(input)));
    const z2 = values(tf.tidy(() => linear(W2).logits(input)));
    z.forEach((v, i) => expect(v).toBeCloseTo((z1[i] + z2[i]) / 2, 5));
    input.dispose();
  });

  it('refuses an empty ensemble', () => {
    expect(() => ensembleOf([])).toThrow(/at least one member/);
  });
});

describe('input diversity and translation invariance', () => {
  let model: Model;
  let x: tf.Tensor4D;
  let labels: Int32Array;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    seedGlobalRandom(3);
    model = fromLayers(buildModel('lenet'));
    const test = subset(loadMnist('test'), Int32Array.from({ length: 12 }, (_, i) => i));
    x = imagesTensor(test.images, test.count);
    labels = test.labels;
  });

  it('every attack with DI and TI stays within ε in L∞ and within the bounds', () => {
    const eps = 0.2;
    for (const name of ATTACK_NAMES) {
      const { raw, clipped } = runAttack(name, model, x, labels, { epsilon: eps, steps: 4, diversity: 1, tiKernel: 5, seed: 2 });
      const adv = values(clipped);
      raw.dispose();
      const clean = x.dataSync();
      const worst = adv.reduce((m, v, i) => Math.max(m, Math.abs(v - clean[i])), 0);
      expect(worst).toBeLessThanOrEqual(eps + 1e-6);
      expect(worst).toBeGreaterThan(eps / 2);
      expect(Math.min(...adv)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...adv)).toBeLessThanOrEqual(1);
    }
  });

  it('DI changes the gradient, is reproducible from its seed and does not depend on batchSize', () => {
    const opts = { epsilon: 0.2, steps: 3, diversity: 1, seed: 5 };
    const plain = values(runAttack('bim', model, x, labels, { epsilon: 0.2, steps: 3 }).clipped);
    const a = values(runAttack('bim', model, x, labels, opts).clipped);
    const b = values(runAttack('bim', model, x, labels, { ...opts, batchSize: 5 }).clipped);
    const other = values(runAttack('bim', model, x, labels, { ...opts, seed: 6 }).clipped);
    expect(a).toEqual(b);
    expect(a.some((v, i) => v !== plain[i])).toBe(true);
    expect(a.some((v, i) => v !== other[i])).toBe(true);
  });

  it('TI smooths a point gradient into the normalised Gaussian', () => {
    const point = tf.tensor4d(Array.from({ length: 49 }, (_, i) => (i === 24 ? 1 : 0)), [1, 7, 7, 1]);
    const kernel = gaussianKernel(5, 1);
    const out = values(smoothGradient(point, kernel));
    const k = values(kernel);
    expect(out.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
    // The centre 5×5 of the output is the kernel itself, symmetric and peaked in the middle.
    for (let r = 0; r < 5; r++) for (let c = 0; c < 5; c++) expect(out[(r + 1) * 7 + c + 1]).toBeCloseTo(k[r * 5 + c], 6);
    expect(k[12]).toBeGreaterThan(k[0]);
    expect(k[0]).toBeCloseTo(k[24], 7);
    point.dispose();
  });

  it('bad DI/TI settings are refused before any gradient', () => {
    expect(() => runAttack('pgd', model, x, labels, { epsilon: 0.1, diversity: 1.5 })).toThrow(/diversity probability/);
    expect(() => runAttack('pgd', model, x, labels, { epsilon: 0.1, tiKernel: 4 })).toThrow(/odd size/);
    expect(() => runAttack('fgsm', model, x, labels, { epsilon: 0.1, diversityScale: 0 })).toThrow(/diversity scale/);
  });
});

describe('the mean L2 norm of the perturbation', () => {
  it('averages each image\'s ‖x_adv − x‖₂, by hand', () => {
    // Two 4-pixel images: perturbations (0.3, 0.4, 0, 0) → 0.5 and (0, 0, 0, 0.2) → 0.2.
    const clean = [0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5, 0.5];
    const adv = [0.4, 0.6, 0.3, 0.4, 0.5, 0.5, 0.5, 0.3];
    expect(meanPerturbationL2(adv, clean, 4)).toBeCloseTo(0.35, 9);
    expect(meanPerturbationL2([], [], 4)).toBeNull();
    expect(() => meanPerturbationL2(adv, clean, 3)).toThrow(/whole images/);
  });
});
