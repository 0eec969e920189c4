import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAttack, type AttackName, type AttackOptions } from '../shared/attacks/index.js';
import { ensembleOf } from '../shared/attacks/losses.js';
import { buildModel } from '../shared/model/architectures.js';
import { initBackend } from '../shared/engine/backend.js';
import { imagesTensor, loadMnist, subset } from '../shared/datasets/index.js';
import { fromLayers, labelImages, type Model } from '../shared/model/model.js';
import { seedGlobalRandom } from '../shared/random.js';
import { startCraftSplit, type CraftSplit } from '../adversary/campaign/craft-split.js';

/**
 * Crafting on two threads (this one and a worker with its own backend and its own copy of the models)
 * must give the very images one thread gives: the halves are whole internal batches and each takes its
 * slice of the whole batch's random start.
 */
let members: tf.LayersModel[];
let model: Model;
let split: CraftSplit | null;
let x: tf.Tensor4D;
let goal: Int32Array;

beforeAll(async () => {
  await initBackend();
  seedGlobalRandom(11);
  members = [buildModel('lenet'), buildModel('lenet')];
  model = ensembleOf(members.map(fromLayers), 'logits');
  const test = subset(loadMnist('test'), Int32Array.from({ length: 120 }, (_, i) => i));
  x = imagesTensor(test.images, test.count);
  goal = labelImages(model, test.images, test.count);
  split = await startCraftSplit(model, members, 'logits');
}, 60_000);

afterAll(async () => {
  await split?.close();
  x?.dispose();
});

const oneThread = (attack: AttackName, opts: AttackOptions): Float32Array => {
  const { raw, clipped } = runAttack(attack, model, x, goal, opts);
  raw.dispose();
  const out = clipped.dataSync() as Float32Array;
  clipped.dispose();
  return out;
};

describe('crafting split over two threads', () => {
  it('gives exactly the images of one thread: PGD with its random start, and targeted BIM', async () => {
    expect(split).not.toBeNull();
    const pgd: AttackOptions = { epsilon: 0.3, steps: 3, seed: 5, batchSize: 50 };
    const both = await split!.craft('pgd', x, goal, pgd);
    expect(both).toEqual(oneThread('pgd', pgd));
    // 120 images in batches of 50: the worker takes the last batch of 20 (the halves are whole batches).
    const targets = Int32Array.from(goal, (g) => (g + 1) % 10);
    const bim: AttackOptions = { epsilon: 0.2, steps: 2, seed: 5, batchSize: 50, targets };
    expect(await split!.craft('bim', x, goal, bim)).toEqual(oneThread('bim', bim));
  });

  it('reports a worker failure as an error, not a hang', async () => {
    await expect(split!.craft('pgd', x, goal, { epsilon: Number.NaN, steps: 2, batchSize: 50 })).rejects.toThrow(/epsilon/);
  });
});
