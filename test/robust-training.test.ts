import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgdWithRestarts } from '../shared/attacks/restarts.js';
import { pgd } from '../shared/attacks/index.js';
import { initBackend } from '../shared/engine/backend.js';
import { imagesTensor, loadMnist } from '../shared/datasets/index.js';
import { loadModel, readMetadata } from '../shared/model/model-io.js';
import { fromLayers, labelImages } from '../shared/model/model.js';
import { buildModel } from '../shared/model/architectures.js';
import { evaluateModel, type ModelEvaluation } from '../scripts/lab/evaluate.js';
import { adversarialTraining, type DefenceSettings } from '../victim/train/defence.js';
import { OverfitGuard, GUARD_DEFAULTS } from '../victim/train/guard.js';
import { oneCycle } from '../victim/train/schedule.js';
import { trainVictim, type VictimTrainConfig } from '../victim/train/train.js';

/**
 * Robust training and the evaluation that checks it, on lenet and a few thousand MNIST images:
 * an FGSM-trained model (which masks gradients), a PGD-trained one and an FGSM-RS one with the
 * overfitting guard, all at ε 0.2, then the strong white-box evaluation and the masking check.
 */
const EPS = 0.2;
const BASE: Omit<VictimTrainConfig, 'out'> = { arch: 'lenet', epochs: 3, batchSize: 50, learningRate: 0.003, seed: 5, limit: 4000, schedule: 'one-cycle' };
const EVAL = { count: 300, epsilons: [0.1, 0.2], pgdSteps: 20, pgdStepSize: 0.02, restarts: 2, marginRestarts: 1, seed: 2 };
let dir: string;
const evals: Record<string, ModelEvaluation> = {};

async function trainWith(name: string, s: Omit<DefenceSettings, 'epsilon'>, extra: Partial<VictimTrainConfig> = {}): Promise<string> {
  const defence = adversarialTraining({ epsilon: EPS, seed: 5, ...s });
  const out = join(dir, name);
  await trainVictim({ ...BASE, ...extra, out, defence: defence.metadata, transformBatch: defence.transformBatch, attack: defence, epsilonWarmup: s.recipe === 'fgsm' ? 0 : 1 });
  return out;
}

beforeAll(async () => {
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-robust-'));
  await trainVictim({ ...BASE, out: join(dir, 'plain') });
  await trainWith('fgsm', { recipe: 'fgsm', mix: 1 });
  await trainWith('pgd', { recipe: 'pgd', steps: 5 });
  await trainWith('fgsm-rs', { recipe: 'fgsm-rs' }, { guard: { epsilon: EPS, images: 200, steps: 5, checksPerEpoch: 2 } });
  for (const name of ['fgsm', 'pgd']) evals[name] = await evaluateModel(join(dir, name), EVAL);
}, 600_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const acc = (e: ModelEvaluation, attack: string, eps = EPS) => e.whitebox.find((p) => p.attack === attack && p.epsilon === eps)?.accuracy as number;

describe('FGSM-RS', () => {
  it('starts every step inside the ε-ball and the box, from a different random point each step', () => {
    const test = loadMnist('test');
    const x = imagesTensor(test.images.subarray(0, 20 * 784), 20);
    const net = fromLayers(buildModel('lenet'));
    // A zero step leaves the attack at its random start (projected onto the ball and the box).
    const starts = [1, 2].map((seed) => pgd(net, x, test.labels.subarray(0, 20), { epsilon: 0.3, steps: 1, stepSize: 0, seed }));
    const [a, b] = starts.map((s) => s.clipped.dataSync() as Float32Array);
    const base = x.dataSync();
    let inside = true, moved = 0, differ = 0;
    for (let i = 0; i < base.length; i++) {
      if (Math.abs(a[i] - base[i]) > 0.3 + 1e-6 || a[i] < 0 || a[i] > 1) inside = false;
      if (base[i] > 0.35 && base[i] < 0.65) moved += Math.abs(a[i] - base[i]) > 0.01 ? 1 : 0;
      if (a[i] !== b[i]) differ++;
    }
    expect(inside).toBe(true);
    expect(moved).toBeGreaterThan(0);
    expect(differ).toBeGreaterThan(base.length / 2);
    tf.dispose([x, ...starts.flatMap((s) => [s.raw, s.clipped])]);
  });

  it('records the recipe, schedule and guard readings in metadata.json', () => {
    const meta = readMetadata(join(dir, 'fgsm-rs'));
    expect(meta.defence).toMatchObject({ attack: 'fgsm-rs', epsilon: EPS, alpha: 1.25 * EPS, mix: 1 });
    expect(meta.schedule).toMatchObject({ kind: 'one-cycle', peak: BASE.learningRate });
    const guard = meta.guard as { readings: { epoch: number; robustAccuracy: number }[]; heldBackImages: number; kept: unknown };
    expect(guard.heldBackImages).toBe(200);
    expect(meta.trainImages).toBe(3800);
    expect(guard.readings.map((r) => r.epoch)).toEqual([0.5, 1, 1.5, 2, 2.5, 3]);
    expect(guard.kept).not.toBeNull();
    expect(meta.testAccuracy as number).toBeGreaterThan(0.8);
  });

  it('saves a standard TF.js layers model: tf.loadLayersModel over HTTP gives the same predictions', async () => {
    const folder = join(dir, 'fgsm-rs');
    // A static file server, as a browser or any TF.js client would fetch the model from.
    const server = createServer((req, res) => createReadStream(join(folder, String(req.url).replace(/^\/+/, ''))).on('error', () => res.writeHead(404).end()).pipe(res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/model.json`;
      const elsewhere = await tf.loadLayersModel(url);
      const { model } = await loadModel(folder);
      const test = loadMnist('test');
      const a = labelImages(fromLayers(elsewhere), test.images, 200);
      const b = labelImages(fromLayers(model), test.images, 200);
      expect(Array.from(a)).toEqual(Array.from(b));
      elsewhere.dispose();
      model.dispose();
    } finally {
      server.close();
    }
  });

  it('one-cycle rate rises to its peak at 2/5 of the run and falls back to 0', () => {
    const f = oneCycle(0.005);
    expect(f(0)).toBe(0);
    expect(f(0.4)).toBeCloseTo(0.005, 12);
    expect(f(0.2)).toBeCloseTo(0.0025, 12);
    expect(f(0.7)).toBeCloseTo(0.0025, 12);
    expect(f(1)).toBe(0);
  });
});

describe('the catastrophic-overfitting guard', () => {
  it('detects a staged collapse, restores the most robust weights and lowers the step', async () => {
    const test = loadMnist('test');
    const images = test.images.subarray(0, 300 * 784);
    const labels = test.labels.subarray(0, 300);
    const guard = new OverfitGuard({ ...GUARD_DEFAULTS, epsilon: EPS, steps: 5, collapseDrop: 0.1 }, images, labels);
    const robust = (await loadModel(join(dir, 'pgd'))).model;
    const plain = (await loadModel(join(dir, 'plain'))).model;
    const defence = adversarialTraining({ recipe: 'fgsm-rs', epsilon: EPS });
    try {
      expect(guard.check(robust, { epoch: 1, learningRate: null, stepSize: defence.stepSize() })).toBe('ok');
      const robustWeights = robust.getWeights().map((w) => Array.from(w.dataSync()));
      // The collapse: the model's weights are swapped for an undefended model's, as if the single
      // step had suddenly been learnt around.
      robust.setWeights(plain.getWeights());
      const verdict = guard.check(robust, { epoch: 2, learningRate: null, stepSize: defence.stepSize() });
      expect(verdict).toBe('collapse');
      const [first, second] = guard.readings;
      expect(first.robustAccuracy - second.robustAccuracy).toBeGreaterThan(0.1);
      expect(second.event).toBe('collapse');
      expect(robust.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(robustWeights);
      expect(defence.lowerStep(GUARD_DEFAULTS.stepFactor)).toBeCloseTo(1.25 * EPS * 0.8, 12);
      // Past maxCollapses the guard says stop.
      robust.setWeights(plain.getWeights());
      guard.check(robust, { epoch: 3, learningRate: null, stepSize: null });
      robust.setWeights(plain.getWeights());
      expect(guard.check(robust, { epoch: 4, learningRate: null, stepSize: null })).toBe('stop');
      expect(guard.finish(robust)?.epoch).toBe(1);
    } finally {
      guard.dispose();
      robust.dispose();
      plain.dispose();
    }
  });
});

describe('PGD with random restarts', () => {
  it('is never weaker than one run: every image one run fools stays fooled, and it stays in the ball', async () => {
    const { model } = await loadModel(join(dir, 'pgd'));
    const net = fromLayers(model);
    const test = loadMnist('test');
    const n = 200;
    const x = imagesTensor(test.images.subarray(0, n * 784), n);
    const y = test.labels.subarray(0, n);
    const opts = { epsilon: EPS, steps: 10, stepSize: 0.05, seed: 3 };
    const one = pgd(net, x, y, opts);
    const many = pgdWithRestarts(net, x, y, { ...opts, restarts: 4 });
    const p1 = labelImages(net, one.clipped.dataSync() as Float32Array, n);
    const p4 = labelImages(net, many.clipped.dataSync() as Float32Array, n);
    let weaker = 0, stronger = 0;
    for (let i = 0; i < n; i++) {
      if (p1[i] !== y[i] && p4[i] === y[i]) weaker++;
      if (p1[i] === y[i] && p4[i] !== y[i]) stronger++;
    }
    expect(weaker).toBe(0);
    expect(many.runs).toBeGreaterThan(1);
    expect(stronger).toBeGreaterThanOrEqual(0);
    expect(Array.from(many.fooledBy).filter((r) => r >= 0).length).toBe(Array.from(p4).filter((p, i) => p !== y[i]).length);
    const gap = tf.tidy(() => tf.max(tf.abs(tf.sub(many.clipped, x))).dataSync()[0]);
    expect(gap).toBeLessThanOrEqual(EPS + 1e-6);
    tf.dispose([x, one.raw, one.clipped, many.raw, many.clipped]);
    model.dispose();
  });
});

describe('the masking check', () => {
  it('flags the FGSM-trained model: FGSM accuracy far above PGD accuracy', () => {
    const e = evals.fgsm;
    expect(acc(e, 'fgsm') - Math.min(acc(e, 'pgd'), acc(e, 'pgd-margin'))).toBeGreaterThan(0.1);
    expect(e.masking.suspected).toBe(true);
    expect(e.masking.reasons.join(' ')).toMatch(/FGSM accuracy .* exceeds .* points at ε/);
  });

  it('passes the PGD-trained model, which is robust at ε 0.1 and learnt the digits', () => {
    const e = evals.pgd;
    expect(e.cleanAccuracy as number).toBeGreaterThan(0.8);
    expect(acc(e, 'worst', 0.1)).toBeGreaterThan(0.3);
    expect(e.masking).toEqual({ suspected: false, reasons: [] });
    // The worst case per image is never above any single attack.
    for (const a of ['fgsm', 'pgd', 'pgd-margin']) expect(acc(e, 'worst')).toBeLessThanOrEqual(acc(e, a));
  });
});
