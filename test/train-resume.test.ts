import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../shared/engine/backend.js';
import { readMetadata } from '../shared/model/model-io.js';
import { adversarialTraining } from '../victim/train/defence.js';
import { checkpointDirOf } from '../victim/train/checkpoint.js';
import { trainVictim, type VictimTrainConfig } from '../victim/train/train.js';

/**
 * An interrupted victim training resumes from its checkpoint and ends with exactly the weights of a
 * run never interrupted: mid-epoch and at an epoch's start, with dropout (the seeded global stream),
 * and under FGSM-RS and TRADES with the overfitting guard (the attack's seeded starts, the guard's readings;
 * TRADES with the weight average too).
 */
let dir: string;
beforeAll(async () => {
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), 'transferlab-resume-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

class Interrupted extends Error {}

/** A run that dies after `at` (epoch 0-based, batch 1-based), like a killed process, leaving its checkpoint. */
async function interrupted(c: VictimTrainConfig, at: { epoch: number; batch: number }): Promise<void> {
  await expect(
    trainVictim(c, {
      onBatchEnd: ({ epoch, batch }) => {
        if (epoch === at.epoch && batch === at.batch) throw new Interrupted('killed');
      },
    }),
  ).rejects.toBeInstanceOf(Interrupted);
  expect(existsSync(checkpointDirOf(c.out))).toBe(true);
}

/** A small lenet under an adversarial recipe, with the ε warm-up and the overfitting guard. */
function guarded(recipe: 'fgsm-rs' | 'trades'): () => Omit<VictimTrainConfig, 'out'> {
  return () => {
    const defence = adversarialTraining({ recipe, epsilon: 0.2, seed: 3 });
    return {
      arch: 'lenet', epochs: 2, batchSize: 50, learningRate: 0.003, seed: 3, limit: 600, schedule: 'one-cycle', epsilonWarmup: 0.5,
      defence: defence.metadata, transformBatch: defence.transformBatch, batchLoss: defence.batchLoss, attack: defence,
      guard: { epsilon: 0.2, images: 100, steps: 3, checksPerEpoch: 2 },
      ...(recipe === 'trades' ? { weightAverage: 0.9 } : {}),
    };
  };
}

const recipes: Record<string, () => Omit<VictimTrainConfig, 'out'>> = {
  'paper-cnn with dropout': () => ({ arch: 'paper-cnn', epochs: 2, batchSize: 50, learningRate: 0.002, seed: 3, limit: 500 }),
  'lenet under FGSM-RS with the guard': guarded('fgsm-rs'),
  // TRADES changes the loss, not the batch: its seeded starts must replay through batchLoss too. It also
  // keeps a weight average, which must go on from the checkpoint's.
  'lenet under TRADES with the guard and the weight average': guarded('trades'),
};

describe.each(Object.keys(recipes))('resuming victim training: %s', (name) => {
  it('gives the same weights and guard readings as an uninterrupted run, resumed mid-epoch and at an epoch start', async () => {
    const tag = name.replace(/\W+/g, '-');
    const whole = join(dir, `${tag}-whole`);
    await trainVictim({ ...recipes[name](), out: whole });
    const out = join(dir, `${tag}-resumed`);
    // 10 batches an epoch, checkpoints after batches 3, 7 and 10 (or the guard's 5 and 10).
    await interrupted({ ...recipes[name](), out }, { epoch: 0, batch: 8 });
    await interrupted({ ...recipes[name](), out, resume: true }, { epoch: 1, batch: 2 });
    const seen: number[] = [];
    await trainVictim({ ...recipes[name](), out, resume: true, onResume: ({ epoch }) => seen.push(epoch) });
    expect(seen).toEqual([1]);
    const a = readMetadata(whole);
    const b = readMetadata(out);
    expect(b.weightsSha256).toBe(a.weightsSha256);
    expect(b.testAccuracy).toBe(a.testAccuracy);
    expect(b.guard).toEqual(a.guard);
    expect(b.weightAverage).toEqual(a.weightAverage);
    expect(b.resumedAt).toEqual({ epoch: 1, batch: 0 });
    expect(existsSync(checkpointDirOf(out))).toBe(false);
  }, 120_000);
});

describe('a checkpoint left behind', () => {
  it('is refused without --resume and under other settings, naming what differs', async () => {
    const base = recipes['paper-cnn with dropout']();
    const out = join(dir, 'left');
    await interrupted({ ...base, out }, { epoch: 0, batch: 5 });
    await expect(trainVictim({ ...base, out })).rejects.toMatchObject({ code: 'checkpoint_exists', message: expect.stringContaining('--resume') });
    await expect(trainVictim({ ...base, out, resume: true, learningRate: 0.01 })).rejects.toMatchObject({ code: 'checkpoint_mismatch', message: expect.stringContaining('learningRate') });
    expect(existsSync(checkpointDirOf(out))).toBe(true);
  }, 60_000);
});
