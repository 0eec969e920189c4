import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runQueryAttackCommand } from '../adversary/query/command.js';
import type { ImageRecord, QueryAttackResults } from '../adversary/query/run.js';
import { loadDataset } from '../shared/datasets/index.js';
import { initBackend } from '../shared/engine/backend.js';
import { trainVictim } from '../victim/train/train.js';
import { writeShapesTree } from './shapes-tree.js';
import { ledgerTotal, startKeyedVictim, type KeyedVictim } from './victim-client.js';

/**
 * The query attack on a victim that serves 16×16 RGB images in 3 classes (an ImageFolder tree of
 * coloured shapes, as in the ImageFolder campaign test): the same select step as the campaign picks
 * the attacker's images from --dataset, RayS and HopSkipJump search in 768 dimensions, every example
 * written is the reported distance from its clean image, and the queries counted are the victim's.
 */
const SIZE = 16;
const PIXELS = SIZE * SIZE * 3;
const KEYS = { ray: 'ray-0123456789abcdef', hop: 'hop-0123456789abcdef', none: 'none-0123456789abcdef' };
let dir: string;
let tree: string;
let victim: KeyedVictim;
const read = <T>(path: string) => JSON.parse(readFileSync(path, 'utf8')) as T;

beforeAll(async () => {
  const { backend } = await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-query-folder-'));
  // 50 per class: 30 test images, room for a seed set of 10 and 12 images to attack.
  tree = writeShapesTree(join(dir, 'shapes'), { size: SIZE, perClass: 50, seed: 3 });
  const model = join(dir, 'victim');
  await trainVictim({ arch: 'lenet', dataset: tree, epochs: 8, batchSize: 32, learningRate: 0.003, seed: 2, out: model });
  victim = await startKeyedVictim({ dir, model, backend, keys: KEYS, budget: 100_000, rateLimit: 100_000 });
}, 180_000);

afterAll(async () => {
  await victim?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Each example's L∞ distance from its clean test image, recomputed from the bytes written. */
function checkExamples(run: string, r: QueryAttackResults, records: ImageRecord[]): void {
  const test = loadDataset(tree).test;
  const adv = readFileSync(join(run, 'adversarial.u8'));
  expect(adv.length).toBe(records.length * PIXELS);
  const found = records.filter((x) => x.linf !== null);
  expect(found.length).toBeGreaterThan(0);
  records.forEach((rec, i) => {
    if (rec.linf === null) return;
    let linf = 0;
    for (let p = 0; p < PIXELS; p++) {
      const v = adv[i * PIXELS + p] / 255;
      // 8-bit pixels are in [0, 1] by construction; the clean image is too.
      expect(test.images[rec.testIndex * PIXELS + p]).toBeGreaterThanOrEqual(0);
      expect(test.images[rec.testIndex * PIXELS + p]).toBeLessThanOrEqual(1);
      linf = Math.max(linf, Math.abs(v - test.images[rec.testIndex * PIXELS + p]));
    }
    expect(linf).toBeCloseTo(rec.linf, 5);
    expect(rec.truth).toBe(test.labels[rec.testIndex]);
  });
  // Success at ε counts exactly the images with an example inside the ε-ball (L∞): any in the record of
  // improvements, since an L2 attack's best example need not be its nearest in L∞.
  for (const e of r.config.epsilons) {
    const within = records.filter((rec) => rec.trace.some((t) => t[1] <= e + 1e-6)).length;
    expect(r.epsilons.find((x) => x.epsilon === e)?.success).toBeCloseTo(within / records.length, 9);
  }
}

describe('query attacks on a victim serving 16×16 RGB images', () => {
  it('RayS with --dataset: the victim\'s shape, examples within their reported ε, queries = the victim\'s ledger', async () => {
    const run = join(dir, 'rays');
    await runQueryAttackCommand({ victim: victim.url, apiKey: KEYS.ray, dataset: tree, seedSize: 10, attack: 'rays', images: 8, queriesPerImage: 300, epsilons: [0.2, 0.4, 0.6] }, () => run);
    const r = read<QueryAttackResults>(join(run, 'results.json'));
    const records = read<ImageRecord[]>(join(run, 'images.json'));
    expect(r.dataset).toMatchObject({ name: 'shapes', kind: 'image-folder', shape: [SIZE, SIZE, 3], classes: 3, testImages: 30 });
    expect(r.victim.info.inputShape).toEqual([SIZE, SIZE, 3]);
    expect(r.stopped).toBeNull();
    expect(records).toHaveLength(8);
    expect(r.queries.attack).toBe(ledgerTotal(victim.files.ledger, 'ray'));
    expect(r.queries.attack).toBe(r.queries.cleanLabels + r.queries.probes);
    expect(r.queries.cleanLabels).toBe(8);
    checkExamples(run, r, records);
    // Every image has an example; in 768 dimensions RayS needs larger ε than on MNIST within 300 queries.
    expect(r.curve.at(-1)!.found).toBe(8);
    expect(r.epsilons.find((e) => e.epsilon === 0.6)!.success).toBeGreaterThan(0.5);
    expect(r.curve.at(-1)!.medianLinf!).toBeLessThanOrEqual(r.curve[0].medianLinf!);
  }, 120_000);

  it('HopSkipJump L2, targeted: starts from the seed set\'s images of the target, every example reaches it', async () => {
    const run = join(dir, 'hsja');
    await runQueryAttackCommand({ victim: victim.url, apiKey: KEYS.hop, dataset: tree, seedSize: 10, attack: 'hsja', norm: 'l2', targeted: true, images: 6, queriesPerImage: 150 }, () => run);
    const r = read<QueryAttackResults>(join(run, 'results.json'));
    const records = read<ImageRecord[]>(join(run, 'images.json'));
    expect(r.queries.attack).toBe(ledgerTotal(victim.files.ledger, 'hop'));
    expect(r.queries.startingPool).toBe(10);
    checkExamples(run, r, records);
    for (const rec of records) if (rec.linf !== null) expect(rec.label).toBe(rec.target);
  }, 120_000);

  it('refuses images of another shape, or more images than the folder holds, before any query is paid', async () => {
    // Unset --dataset: the victim's dataset is not a built-in one, so MNIST is tried and refused by shape.
    await expect(runQueryAttackCommand({ victim: victim.url, apiKey: KEYS.none, images: 4 }, () => join(dir, 'mnist'))).rejects.toThrow(/takes 16×16×3 images in 3 classes.*28×28×1.*--dataset/s);
    await expect(runQueryAttackCommand({ victim: victim.url, apiKey: KEYS.none, dataset: tree, seedSize: 10, images: 25 }, () => join(dir, 'big'))).rejects.toMatchObject({ code: 'invalid_split', message: expect.stringMatching(/exceed the 30 test images.*--images/) });
    expect(ledgerTotal(victim.files.ledger, 'none')).toBe(0);
  });
});
