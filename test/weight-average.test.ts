import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { buildModel } from '../shared/model/architectures.js';
import { readMetadata } from '../shared/model/model-io.js';
import { WeightAverage } from '../shared/model/weight-average.js';
import { trainVictim } from '../victim/train/train.js';

let dir: string;
beforeAll(async () => {
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-average-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// The model's variables keep their own reference to what they are set to; tidy frees the fills.
const fill = (model: tf.LayersModel, v: number) => tf.tidy(() => model.setWeights(model.getWeights().map((w) => tf.fill(w.shape, v))));
const first = (model: tf.LayersModel) => model.getWeights()[0].dataSync()[0];

describe('the weight average', () => {
  it('warms its decay up with the step count, converges to weights that stay put, and is put into the model', () => {
    const model = buildModel('lenet', { inputShape: [28, 28, 1], classes: 10 });
    fill(model, 1);
    const avg = new WeightAverage(model, 0.99);
    fill(model, 3);
    avg.update(model); // decay min(0.99, 1/10) = 0.1: 0.1·1 + 0.9·3
    const probe = buildModel('lenet', { inputShape: [28, 28, 1], classes: 10 });
    avg.applyTo(probe);
    expect(first(probe)).toBeCloseTo(2.8, 5);
    expect(avg.updates).toBe(1);
    for (let i = 0; i < 2000; i++) avg.update(model);
    avg.applyTo(probe);
    expect(first(probe)).toBeCloseTo(3, 4);
    // A restored average goes on from where it was.
    const again = new WeightAverage(model, 0.99, avg.state());
    expect(again.updates).toBe(2001);
    avg.dispose();
    again.dispose();
    model.dispose();
    probe.dispose();
  });

  it('rejects a decay outside (0, 1)', () => {
    const model = buildModel('lenet', { inputShape: [28, 28, 1], classes: 10 });
    expect(() => new WeightAverage(model, 1)).toThrow(/decay/);
    model.dispose();
  });

  it('is what a training run with --weight-average saves, with its step count in the metadata', async () => {
    const base = { arch: 'lenet', epochs: 1, batchSize: 50, learningRate: 0.003, seed: 5, limit: 300 };
    await trainVictim({ ...base, out: join(dir, 'last') });
    await trainVictim({ ...base, weightAverage: 0.9, out: join(dir, 'averaged') });
    const last = readMetadata(join(dir, 'last'));
    const averaged = readMetadata(join(dir, 'averaged'));
    expect(averaged.weightAverage).toEqual({ decay: 0.9, updates: 6, applied: true });
    expect(averaged.weightsSha256).not.toBe(last.weightsSha256);
    expect(last.weightAverage).toBeUndefined();
    await expect(trainVictim({ ...base, weightAverage: 1.5, out: join(dir, 'bad') })).rejects.toMatchObject({ message: expect.stringContaining('--weight-average') });
  }, 60_000);
});
