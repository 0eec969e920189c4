import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildModel } from '../shared/model/architectures.js';
import { initBackend } from '../shared/engine/backend.js';
import { readMetadata } from '../shared/model/model-io.js';
import { adversarialTraining, defenceFromArgs } from '../victim/train/defence.js';
import { main as evaluateMain } from '../scripts/lab/evaluate-cli.js';
import { evaluateModel, type ModelEvaluation } from '../scripts/lab/evaluate.js';
import { describeDefence, evaluationRows, formatTable } from '../scripts/lab/evaluate-table.js';
import { trainVictim, type VictimTrainConfig } from '../victim/train/train.js';

/**
 * Adversarial training (AML.M0003) on a small model and small data: the same lenet, same seed and
 * data, trained with and without FGSM examples mixed into every batch, then attacked white-box.
 */
const BASE: Omit<VictimTrainConfig, 'out'> = { arch: 'lenet', epochs: 2, batchSize: 64, learningRate: 0.002, seed: 3, limit: 3000 };
let dir: string;
let plain: ModelEvaluation;
let hardened: ModelEvaluation;

beforeAll(async () => {
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-defence-'));
  await trainVictim({ ...BASE, out: join(dir, 'plain') });
  const defence = adversarialTraining({ recipe: 'fgsm', epsilon: 0.2, mix: 0.5 });
  await trainVictim({ ...BASE, out: join(dir, 'hardened'), defence: defence.metadata, transformBatch: defence.transformBatch });
  const opts = { count: 500, epsilons: [0.2], pgdSteps: 5, pgdStepSize: 0.1, restarts: 1, marginRestarts: 1, seed: 1 };
  plain = await evaluateModel(join(dir, 'plain'), opts);
  hardened = await evaluateModel(join(dir, 'hardened'), opts);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const at = (e: ModelEvaluation, attack: string) => e.whitebox.find((p) => p.attack === attack && p.epsilon === 0.2)?.accuracy ?? Number.NaN;

describe('adversarial training', () => {
  it('raises white-box FGSM accuracy at ε 0.2 well above the same model trained without it', () => {
    expect(at(plain, 'fgsm')).toBeLessThan(0.3);
    expect(at(hardened, 'fgsm')).toBeGreaterThan(at(plain, 'fgsm') + 0.2);
    // PGD is the stronger attack: never easier than FGSM, and the hardening still shows.
    expect(at(hardened, 'pgd')).toBeLessThanOrEqual(at(hardened, 'fgsm') + 0.02);
    expect(at(hardened, 'pgd')).toBeGreaterThan(at(plain, 'pgd'));
  });

  it('keeps clean accuracy and records the defence and its cost in metadata.json', () => {
    expect(plain.cleanAccuracy!).toBeGreaterThan(0.85);
    expect(hardened.cleanAccuracy!).toBeGreaterThan(0.85);
    expect(readMetadata(join(dir, 'hardened')).defence).toEqual({ kind: 'adversarial-training', attack: 'fgsm', epsilon: 0.2, mix: 0.5 });
    expect(readMetadata(join(dir, 'plain')).defence).toBeNull();
    expect(hardened.trainSeconds!).toBeGreaterThan(0);
    expect(describeDefence(hardened.defence)).toBe('fgsm ε 0.2 mix 0.5');
  });

  it('tabulates the models side by side', () => {
    const table = formatTable(evaluationRows([plain, hardened], [0.2], { pgdSteps: 5, restarts: 1, marginRestarts: 1 }));
    expect(table).toMatch(/white-box FGSM accuracy ε 0\.2\s+0\.\d{4}\s+0\.\d{4}/);
    expect(table).toMatch(/white-box PGD-5 accuracy ε 0\.2/);
    expect(table).toMatch(/masking check\s+/);
    expect(table).toMatch(/defence\s+none\s+fgsm ε 0\.2 mix 0\.5/);
    expect(table).not.toMatch(/transfer rate/); // no campaign was run
  });
});

describe('fine-tuning (--init)', () => {
  it('continues from a saved model and counts its epochs and time in the total', async () => {
    const defence = adversarialTraining({ recipe: 'fgsm', epsilon: 0.2, mix: 0.5 });
    const meta = await trainVictim({ ...BASE, epochs: 1, init: join(dir, 'plain'), out: join(dir, 'tuned'), defence: defence.metadata, transformBatch: defence.transformBatch });
    const from = readMetadata(join(dir, 'plain'));
    expect(meta.initialisedFrom).toEqual({ model: join(dir, 'plain'), weightsSha256: from.weightsSha256, epochs: 2, defence: null });
    expect(meta.totalEpochs).toBe(3);
    expect(meta.totalDurationSeconds as number).toBeGreaterThan(from.durationSeconds as number);
    await expect(trainVictim({ ...BASE, arch: 'papernot-mlp', epochs: 1, init: join(dir, 'plain'), out: join(dir, 'wrong') })).rejects.toMatchObject({ code: 'invalid_config' });
  });
});

describe('keeping the clean originals (--keep-clean)', () => {
  it('trains on the clean batch plus its adversarial copies, under the same labels', async () => {
    const defence = adversarialTraining({ recipe: 'fgsm', epsilon: 0.2, mix: 0.5, keepClean: true });
    const model = buildModel('lenet');
    const x = tf.randomUniform([8, 28, 28, 1]) as tf.Tensor4D;
    const y = tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], 'int32');
    const out = defence.transformBatch!(x, y, model, 0);
    if (out instanceof tf.Tensor) throw new Error('expected a batch with its own labels');
    expect(out.x.shape).toEqual([12, 28, 28, 1]);
    expect(Array.from(out.labels.dataSync())).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3]);
    expect(Array.from(out.x.slice([0, 0, 0, 0], [8, -1, -1, -1]).dataSync())).toEqual(Array.from(x.dataSync()));
    tf.dispose([x, y, out.x, out.labels]);
    model.dispose();
    const meta = await trainVictim({ ...BASE, epochs: 1, limit: 600, out: join(dir, 'kept'), defence: defence.metadata, transformBatch: defence.transformBatch });
    expect(meta.defence).toEqual({ kind: 'adversarial-training', attack: 'fgsm', epsilon: 0.2, mix: 0.5, keepClean: true });
    expect(describeDefence(meta.defence)).toBe('fgsm ε 0.2 mix 0.5 + clean');
  });
});

describe('defence settings', () => {
  it('are validated before any training', () => {
    expect(defenceFromArgs({ adversarial: 'none' })).toBeUndefined();
    expect(() => defenceFromArgs({ adversarial: 'fgsm', eps: 0, mix: 2 })).toThrow(/--eps must be in \(0, 1\].*--mix must be in \(0, 1\]/);
    expect(defenceFromArgs({ adversarial: 'pgd', eps: 0.3, mix: 0.5, 'pgd-steps': 7 })?.metadata).toEqual({
      kind: 'adversarial-training', attack: 'pgd', epsilon: 0.3, mix: 0.5, steps: 7, alpha: (2.5 * 0.3) / 7, randomStart: 'uniform in the ε-ball',
    });
    expect(defenceFromArgs({ adversarial: 'fgsm-rs', eps: 0.3 })?.metadata).toMatchObject({ attack: 'fgsm-rs', alpha: 0.375, mix: 1 });
    expect(() => defenceFromArgs({ adversarial: 'fgsm-rs', eps: 0.3, alpha: -1 })).toThrow(/--alpha must be in \(0, 2\]/);
    expect(() => defenceFromArgs({ adversarial: 'bogus' })).toThrow(/--adversarial must be one of none, fgsm, fgsm-rs, pgd/);
  });

  it('the evaluation command refuses missing models and bad budgets in one message', async () => {
    await expect(evaluateMain(['--models', join(dir, 'nothing'), '--epsilons', '0', '--out', join(dir, 'eval')])).rejects.toMatchObject({
      code: 'invalid_arguments',
      message: expect.stringMatching(/no model in .*nothing.*--epsilons must be in \(0, 1\]/),
    });
  });
});
